//! The autoid agent: the native service beside Envoy that holds what the proxy-wasm filter must
//! not: it answers the filter's directory questions (which groups is this subject in? does this
//! password bind?) over LDAP, unwraps sessions with the gateway's private keys, and resolves the
//! upstream credentials the filter injects (env, files, AWS Secrets Manager), refreshing them.
//!
//! The filter cannot open sockets, so it calls this service through an Envoy cluster; the agent
//! keeps a small pool of multiplexed, service-account-bound `ldap3` connections (StartTLS or
//! LDAPS verified against a configured CA), escapes every value it puts into a filter, and
//! answers `503` quickly instead of hanging when the directory is down. It listens on a unix
//! socket (mode 0600) by default, which Envoy reaches with a `pipe` cluster and no token; TCP
//! only with TLS and a bearer token ([`transport`]). The HTTP contract, the transports and the
//! configuration file are documented in `docs/AGENT.md`.
//!
//! Build and test: `cargo test --release -p autoid-agent` (the integration tests start a
//! real slapd with `openldap/run_ldap.sh`; install it with `apt-get install -y slapd ldap-utils`).
#![forbid(unsafe_code)]

/// `/v1/check`: the wasm filter's decisions for gateways without wasm, over a native host.
pub mod check;
/// The JSON configuration file and the secrets (token, bind password).
pub mod config;
/// Upstream credentials from env, files and AWS Secrets Manager (`GET /v1/credentials/{api}`).
pub mod credentials;
/// The LDAP side: connection pool, TLS, group resolution, password checks.
pub mod directory;
/// Parsing distinguished names (RFC 4514) to take a group's name from its DN.
pub mod dn;
/// The environment variables the agent reads, and their old names.
pub mod env;
/// The crate's error type.
pub mod error;
/// Building LDAP filters from templates and turning entries into group names.
pub mod groups;
/// The HTTP API: routes, bearer-token check, request log.
pub mod http;
pub mod metrics;
/// Fleet replay claims in Redis (`POST /v1/replay`).
pub mod replay;
/// The RSA threads, at a lower CPU priority than the gateway's workers.
pub mod rsa_pool;
/// Session unwrapping with the gateway's private keys (`POST /v1/sessions`).
pub mod sessions;
/// Per-subject entropy keys from the epochs' master secrets (`POST /v1/streams`).
pub mod streams;
/// LDAP filter templates: placeholders filled in one pass.
pub mod template;
/// Failed password checks slowed per username and per source (`POST /v1/authenticate`).
pub mod throttle;
/// rustls client configuration from a CA file.
pub mod tls;
/// Where the agent listens: a unix socket (default), TCP with TLS, or plain TCP for development.
pub mod transport;

pub use config::{Config, Listen, Secrets};
pub use credentials::Credentials;
pub use directory::Directory;
pub use error::Error;
pub use http::{AppState, router};
pub use replay::FleetReplay;
pub use sessions::Sessions;
pub use streams::Streams;
