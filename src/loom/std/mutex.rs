//! `std::sync::Mutex` without poisoning (as tokio's `loom/std/mutex.rs`).
//!
//! std's mutex spins briefly and then parks the waiting thread, so a
//! holder preempted in its critical section costs waiters a sleep, not a
//! core: the crate runs on Tokio workers and on blocking-pool threads that
//! may outnumber the cores.
//!
//! Poisoning is removed because it protects nothing here: every lock of
//! the crate guards state that no user code touches while it is held, so a
//! guard dropped by a panic (a bug in the crate, or an allocation failure)
//! leaves that state as consistent as any other early return would.

use std::sync::{self, LockResult};

pub(crate) use std::sync::MutexGuard;

/// `std::sync::Mutex` whose `lock` never fails (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Mutex<T: ?Sized>(sync::Mutex<T>);

impl<T> Mutex<T> {
    /// A new, unlocked mutex (also in a `static`).
    #[inline]
    pub(crate) const fn new(value: T) -> Mutex<T> {
        Mutex(sync::Mutex::new(value))
    }

    /// The value, taken out of the mutex.
    #[inline]
    #[cfg_attr(tokio_deferred_loom, allow(dead_code))]
    pub(crate) fn into_inner(self) -> T {
        recover(self.0.into_inner())
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks the mutex, blocking the thread until it is free.
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        recover(self.0.lock())
    }

    /// The value, through a unique borrow of the mutex (no locking).
    #[inline]
    #[cfg_attr(tokio_deferred_loom, allow(dead_code))]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        recover(self.0.get_mut())
    }
}

/// The value of a `LockResult`, poisoned or not.
#[inline]
fn recover<G>(result: LockResult<G>) -> G {
    result.unwrap_or_else(sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::Mutex;
    use std::sync::Arc;

    #[test]
    fn a_panic_under_the_lock_does_not_poison_it() {
        let lock = Arc::new(Mutex::new(1u32));
        let held = lock.clone();
        let panicked = std::thread::spawn(move || {
            let mut guard = held.lock();
            *guard = 2;
            panic!("under the lock");
        })
        .join();
        assert!(panicked.is_err());
        assert_eq!(*lock.lock(), 2);
        let mut lock = Arc::into_inner(lock).expect("the thread's handle is gone");
        *lock.get_mut() += 1;
        assert_eq!(lock.into_inner(), 3);
    }
}
