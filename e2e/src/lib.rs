//! End-to-end tests of autoid (tests only; this library is empty).
//!
//! `tests/` starts real services, all on 127.0.0.1 and free ports: OpenLDAP
//! (`openldap/run_ldap.sh` with a temporary state dir), the `autoid-agent` binary, the
//! `autoid-demo-upstream` echo server, and Envoy (`.venv/bin/envoy`, `--concurrency 2`) running
//! the built `autoid_plugin.wasm`, configured with `autoid gateway render`. They use the binaries
//! `make build` leaves in `target/release/` and fail with the command to run when something is
//! missing (`make build`, `make deps-envoy`, `apt-get install slapd ldap-utils`): they never skip.
//! Run them with `make test`, or `cargo test --release -p autoid-e2e` after `make build`.

#![forbid(unsafe_code)]
