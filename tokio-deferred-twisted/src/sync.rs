//! The one lock adapter of the crate: `std::sync::Mutex` without poisoning.
//!
//! No user code runs while one of the crate's locks is held (closures and
//! Python calls run after the guard is dropped), so a poisoned lock can only
//! come from a panic inside the crate's own short critical sections, which
//! leave the data consistent; the guard is taken back rather than
//! propagating the poison.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, ignoring poisoning.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
