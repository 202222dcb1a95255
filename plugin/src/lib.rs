//! autoid plugin (stub)
