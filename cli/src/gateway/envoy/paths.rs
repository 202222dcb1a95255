//! How the paths Envoy opens at run time (the `.wasm`, TLS files, sockets) are written.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

/// How paths Envoy opens at run time (the `.wasm`, TLS files) are written.
#[derive(Debug, Clone)]
pub(crate) enum PathStyle {
    /// Absolute.
    Absolute,
    /// Relative to this directory, the one Envoy will run in.
    RelativeTo(PathBuf),
}

/// Removes `.` and resolves `..` without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

fn absolute(path: &Path) -> Result<PathBuf> {
    Ok(lexical(&std::path::absolute(path).with_context(|| {
        format!("{}: cannot make the path absolute", path.display())
    })?))
}

impl PathStyle {
    /// `path` in this style; an error when it is not UTF-8.
    pub(crate) fn render(&self, path: &Path) -> Result<String> {
        let abs = absolute(path)?;
        let out = match self {
            PathStyle::Absolute => abs,
            PathStyle::RelativeTo(base) => {
                let base = absolute(base)?;
                let a: Vec<Component> = abs.components().collect();
                let b: Vec<Component> = base.components().collect();
                let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
                let mut rel = PathBuf::new();
                for _ in common..b.len() {
                    rel.push("..");
                }
                for c in &a[common..] {
                    rel.push(c);
                }
                rel
            }
        };
        out.to_str()
            .map(str::to_owned)
            .with_context(|| format!("{}: not UTF-8", out.display()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn relative_paths() {
        let style = PathStyle::RelativeTo("/a/b".into());
        assert_eq!(
            style.render(Path::new("/a/b/c/../d.wasm")).unwrap(),
            "d.wasm"
        );
        assert_eq!(style.render(Path::new("/a/x/y.pem")).unwrap(), "../x/y.pem");
    }
}
