//! Files: secrets written atomically with mode 0600 from the start, reads whose errors name the
//! path, and key ids inferred from `<kid>.key.pem` / `<kid>.pub.pem` file names.

use std::fs::Permissions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::usage;

/// Mode of secret files: the private key, the epoch, entropy files, session files.
pub(crate) const SECRET_MODE: u32 = 0o600;
/// Mode of public files: the public key.
pub(crate) const PUBLIC_MODE: u32 = 0o644;

/// Suffix of private key files.
pub(crate) const PRIVATE_KEY_SUFFIX: &str = ".key.pem";
/// Suffix of public key files.
pub(crate) const PUBLIC_KEY_SUFFIX: &str = ".pub.pem";

#[cfg(unix)]
fn permissions(mode: u32) -> Permissions {
    use std::os::unix::fs::PermissionsExt;
    Permissions::from_mode(mode)
}

/// Fails early (before slow work such as key generation) if `path` exists and `force` is off.
pub(crate) fn check_absent(path: &Path, force: bool) -> Result<()> {
    if !force && path.symlink_metadata().is_ok() {
        bail!(
            "{}: already exists; refusing to overwrite (pass --force to replace it)",
            path.display()
        );
    }
    Ok(())
}

/// Writes `bytes` to `path` with `mode`. The data goes to a temporary file in the same
/// directory, created with `mode` (so a secret is never readable by others, not even briefly),
/// then renamed into place: readers see the old file or the new one, never half of one. Without
/// `force` an existing file is never replaced (checked atomically at the rename).
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32, force: bool) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    builder.permissions(permissions(mode));
    #[cfg(not(unix))]
    let _ = mode;
    let mut tmp = builder.tempfile_in(dir).with_context(|| {
        format!(
            "{}: cannot create a file in {}",
            path.display(),
            dir.display()
        )
    })?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("{}: write failed", path.display()))?;
    if force {
        tmp.persist(path)
            .map_err(|e| e.error)
            .with_context(|| format!("{}: cannot move the new file into place", path.display()))?;
    } else {
        match tmp.persist_noclobber(path) {
            Ok(_) => {}
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => bail!(
                "{}: already exists; refusing to overwrite (pass --force to replace it)",
                path.display()
            ),
            Err(e) => {
                return Err(e.error).with_context(|| {
                    format!("{}: cannot move the new file into place", path.display())
                });
            }
        }
    }
    Ok(())
}

/// Reads a whole file; errors name the path and what the file was expected to be.
pub(crate) fn read_bytes(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{}: cannot read {what}", path.display()))
}

/// Reads a UTF-8 text file; errors name the path and what the file was expected to be.
pub(crate) fn read_text(path: &Path, what: &str) -> Result<String> {
    let bytes = read_bytes(path, what)?;
    String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{}: {what} is not UTF-8 text", path.display()))
}

/// Reads a secret file, warning on stderr if others can read it (the content is never printed).
pub(crate) fn read_secret(path: &Path, what: &str) -> Result<Vec<u8>> {
    warn_if_exposed(path);
    read_bytes(path, what)
}

/// Reads a secret text file (see [`read_secret`]).
pub(crate) fn read_secret_text(path: &Path, what: &str) -> Result<String> {
    warn_if_exposed(path);
    read_text(path, what)
}

#[cfg(not(unix))]
fn warn_if_exposed(_: &Path) {}

#[cfg(unix)]
fn warn_if_exposed(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            eprintln!(
                "autoid: warning: {} holds a secret but has mode {mode:04o}; run: chmod 600 {}",
                path.display(),
                path.display()
            );
        }
    }
}

/// The key id: `explicit` if given, else the file name without `suffix`.
pub(crate) fn kid_for(path: &Path, explicit: Option<&str>, suffix: &str) -> Result<String> {
    if let Some(kid) = explicit {
        return Ok(kid.to_owned());
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    match name.strip_suffix(suffix) {
        Some(kid) if !kid.is_empty() => Ok(kid.to_owned()),
        _ => usage!(
            "{}: cannot infer the key id from the file name (expected <kid>{suffix}); pass --kid",
            path.display()
        ),
    }
}

/// `dir/<kid><suffix>`.
pub(crate) fn key_path(dir: &Path, kid: &str, suffix: &str) -> PathBuf {
    dir.join(format!("{kid}{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_from_file_names() {
        let p = Path::new("/x/gw-1.pub.pem");
        assert_eq!(kid_for(p, None, PUBLIC_KEY_SUFFIX).unwrap(), "gw-1");
        assert_eq!(
            kid_for(p, Some("other"), PUBLIC_KEY_SUFFIX).unwrap(),
            "other"
        );
        assert!(kid_for(Path::new("gw.pem"), None, PUBLIC_KEY_SUFFIX).is_err());
        assert!(kid_for(Path::new(".pub.pem"), None, PUBLIC_KEY_SUFFIX).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn write_refuses_to_overwrite_and_keeps_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        write_file(&path, b"one", SECRET_MODE, false).unwrap();
        assert!(write_file(&path, b"two", SECRET_MODE, false).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        write_file(&path, b"two", SECRET_MODE, true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
