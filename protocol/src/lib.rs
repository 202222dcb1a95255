//! autoid protocol (stub)
