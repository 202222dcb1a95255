//! floor filter (stub)
