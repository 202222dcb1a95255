//! Where things are: the repository, what `make build` leaves in `target/`, and a throwaway TLS
//! authority from `scripts/dev-tls.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::run;
use crate::{Error, Result};

/// The repository root (this crate's parent directory).
pub fn repo() -> PathBuf {
    let kit = Path::new(env!("CARGO_MANIFEST_DIR"));
    kit.parent().unwrap_or(kit).to_owned()
}

/// `$CARGO_TARGET_DIR` (relative to the repository), else `<repo>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Some(d) => repo().join(d),
        None => repo().join("target"),
    }
}

/// A binary `make build` leaves in `target/release`.
pub fn release_bin(name: &str) -> Result<PathBuf> {
    built(target_dir().join("release").join(name), name)
}

/// A proxy-wasm module `make build` leaves in `target/wasm32-wasip1/wasm` (`autoid_plugin`).
pub fn wasm(name: &str) -> Result<PathBuf> {
    let file = format!("{name}.wasm");
    built(target_dir().join("wasm32-wasip1/wasm").join(&file), &file)
}

fn built(path: PathBuf, what: &str) -> Result<PathBuf> {
    if !path.is_file() {
        return Err(Error::Missing {
            what: what.to_owned(),
            path,
            hint: "run `make build` first (the tests use the built binaries and modules)".into(),
        });
    }
    Ok(path)
}

/// A throwaway CA and a server certificate for 127.0.0.1 in `dir` (`scripts/dev-tls.sh`).
#[derive(Debug, Clone)]
pub struct DevTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Makes a [`DevTls`] in `dir`.
pub fn dev_tls(dir: &Path) -> Result<DevTls> {
    run(Command::new(repo().join("scripts/dev-tls.sh")).arg(dir))?;
    Ok(DevTls {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    })
}
