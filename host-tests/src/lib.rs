//! host (stub)
