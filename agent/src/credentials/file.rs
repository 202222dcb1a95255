//! `{"file": "path"}`: a file the agent reads at every refresh (one trailing newline dropped), so
//! replacing the file rotates the credential.

use std::path::PathBuf;

use super::{Source, SourceError};
use crate::error::Error;

/// Longest credential file read.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// A file, read at every refresh.
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    /// A source reading `path` (`at` is the field path, for errors).
    pub fn new(at: &str, path: PathBuf) -> Result<FileSource, Error> {
        if path.as_os_str().is_empty() {
            return Err(Error::config(at, "\"\"", "empty path"));
        }
        Ok(FileSource { path })
    }
}

impl Source for FileSource {
    fn describe(&self) -> String {
        format!("file:{}", self.path.display())
    }

    fn fetch(&self) -> Result<String, SourceError> {
        let fail = |e: std::io::Error| SourceError(format!("{}: {e}", self.path.display()));
        let len = std::fs::metadata(&self.path).map_err(fail)?.len();
        if len > MAX_FILE_BYTES {
            return Err(SourceError(format!(
                "{}: larger than {MAX_FILE_BYTES} bytes",
                self.path.display()
            )));
        }
        let text = std::fs::read_to_string(&self.path).map_err(fail)?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        Ok(text.strip_suffix('\r').unwrap_or(text).to_owned())
    }
}
