//! Reading the files: JSON with the failing field's path in the error, and field errors.

use std::path::Path;

use anyhow::{Result, anyhow};
use serde::de::DeserializeOwned;

/// Parses JSON with the failing field's path in the error: `file: a.b[0]: message`.
pub(super) fn parse<T: DeserializeOwned>(file: &Path, bytes: &[u8]) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            anyhow!("{}: {inner}", file.display())
        } else {
            anyhow!("{}: {path}: {inner}", file.display())
        }
    })
}

pub(super) fn read(file: &Path) -> Result<Vec<u8>> {
    std::fs::read(file).map_err(|e| anyhow!("{}: cannot read: {e}", file.display()))
}

/// A field error: `file: path: message (value: "v")`.
pub(super) fn field(file: &Path, path: &str, message: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{}: {path}: {message}", file.display())
}
