//! Locking the state workers share.

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, ignoring poisoning: a panicking test thread must not hide other failures.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
