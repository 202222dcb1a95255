//! The real servers the tests and the benchmark run against, each a child process on 127.0.0.1
//! that is stopped when its guard drops, pass or fail.
//!
//! Every launcher returns [`Result`]: the benchmark binary passes errors up with `?`; tests
//! `unwrap()` them, and an [`Error`]'s `Debug` is its message (what is missing and the command
//! that installs it, or the log of a process that exited).
//!
//! - [`slapd`]: Debian's slapd through `openldap/run_ldap.sh`, on free ports.
//! - [`agent`]: the built `autoid-agent` binary, waited on until it answers.
//! - [`envoy`]: Envoy on a bootstrap, its admin interface, stats and listeners.
//! - [`nginx`]: Debian's nginx on a rendered configuration, with a prefix of its own.
//! - [`moto`]: moto's server mode as AWS Secrets Manager.
//! - [`redis`]: Debian's redis-server, the fleet's replay claims.
//! - [`upstream`]: the demo upstream that echoes each request.
//! - [`process`]: a child process with a Drop guard, free ports, waits with a deadline.
//! - [`http`]: one HTTP/1.1 request over TCP or a unix socket (`connection: close`).
//! - [`paths`]: the repository, the built binaries and modules, the dev TLS files.
//!
//! A new server is one new module built on [`process::Proc`] and [`process::Proc::wait_ready`].

#![forbid(unsafe_code)]

pub mod agent;
pub mod clock;
pub mod envoy;
mod error;
pub mod http;
pub mod moto;
pub mod nginx;
pub mod paths;
pub mod process;
pub mod redis;
pub mod slapd;
pub mod upstream;

pub use error::{Error, Result};
pub use process::{eventually, free_port, wait_for};
