//! The filter configuration (todo)
