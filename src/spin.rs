//! The lock of a Deferred's state: a spin lock released with a plain store
//! (used as `crate::loom::Mutex`, like `std::sync::Mutex`; its tests are at
//! the end of this file).
//!
//! `std::sync::Mutex` takes two atomic read-modify-write instructions per
//! lock section: a compare-and-swap to lock and a swap to unlock (the swap
//! tells it whether a parked thread must be woken). This lock takes one:
//! the compare-and-swap; it unlocks with a release store, which is a plain
//! store on x86-64. A Deferred takes two lock sections to be created, fired
//! and awaited, and one per callback added, so the single-Deferred rows
//! drop from 9 locked instructions to 7 (`scripts/locked_ops.py`) and
//! measure 15-20 % faster on the benchmark host (BENCHMARKS.md, round 11).
//!
//! The price of the plain store is that nobody can sleep on the lock: a
//! thread that finds it held spins (`spin_loop`), then yields its time
//! slice until it is free. That fits this lock because its sections are
//! short and bounded: no user code runs under it (see DESIGN.md,
//! "Locking"), only moves of a result, a link or a waker. The lock is
//! never held across an `.await` or a callback.
//!
//! The API mirrors the part of `std::sync::Mutex` the crate uses, including
//! `LockResult` (this lock is never poisoned: a panic under it releases
//! it), so `crate::loom` can swap in loom's mutex for the model checks.

// The one module with `unsafe`: an `UnsafeCell` whose access the lock
// word serialises. See the `SAFETY` comments.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::LockResult;
use std::sync::atomic::{AtomicBool, Ordering};

/// Spins this many times on a held lock before yielding the thread.
const SPINS: u32 = 64;

/// A mutual-exclusion lock with a one-instruction release (see the module
/// docs).
pub(crate) struct Mutex<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one thread at a time
// (the compare-and-swap in `lock`), so sharing a `Mutex<T>` between
// threads only ever moves `T`'s use from one thread to another: `T: Send`
// is enough, as for `std::sync::Mutex`.
unsafe impl<T: Send> Sync for Mutex<T> {}

/// Holds the lock; releases it when dropped (also while unwinding).
pub(crate) struct MutexGuard<'a, T> {
    lock: &'a Mutex<T>,
    /// Sync only if `T: Sync` (a shared guard hands out `&T`), Send only if
    /// `T: Send`, as with `&mut T`.
    _value: PhantomData<&'a mut T>,
}

impl<T> Mutex<T> {
    /// A new, unlocked lock.
    pub(crate) const fn new(value: T) -> Self {
        Mutex {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, spinning and then yielding while another thread
    /// holds it. Never an `Err` (the lock is never poisoned).
    #[inline]
    pub(crate) fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        if self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        Ok(MutexGuard {
            lock: self,
            _value: PhantomData,
        })
    }

    /// `lock` when the first attempt failed: wait with plain loads (no
    /// cache-line ping-pong), then try again.
    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        let mut spins = 0;
        loop {
            while self.locked.load(Ordering::Relaxed) {
                if spins < SPINS {
                    spins += 1;
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// The value, taken out of the lock.
    pub(crate) fn into_inner(self) -> LockResult<T> {
        Ok(self.value.into_inner())
    }

    /// The value, through a unique borrow of the lock (no locking).
    pub(crate) fn get_mut(&mut self) -> LockResult<&mut T> {
        Ok(self.value.get_mut())
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard exists only while `locked` is true and it was
        // the one to set it (`lock`), so no other reference to the value
        // exists until it is dropped; the borrow of `self` bounds this one.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; the unique borrow of the guard makes this
        // the only reference to the value.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    /// Releases the lock: the release store publishes every write made
    /// under it to the next thread whose acquiring compare-and-swap sees it.
    #[inline]
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

impl<T> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("locked", &self.locked.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::Mutex;
    use std::sync::Arc;

    #[test]
    fn threads_incrementing_under_the_lock_lose_no_update() {
        let lock = Arc::new(Mutex::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        // A read and a separate write: a lost update if two
                        // threads were ever inside at once.
                        let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                        let seen = *guard;
                        std::hint::black_box(&seen);
                        *guard = seen + 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock().unwrap_or_else(|e| e.into_inner()), 80_000);
    }

    #[test]
    fn a_panic_under_the_lock_releases_it() {
        let lock = Arc::new(Mutex::new(1u32));
        let held = lock.clone();
        let panicked = std::thread::spawn(move || {
            let _guard = held.lock().unwrap_or_else(|e| e.into_inner());
            panic!("under the lock");
        })
        .join();
        assert!(panicked.is_err());
        // Neither poisoned nor left locked: this does not hang.
        assert_eq!(*lock.lock().unwrap_or_else(|e| e.into_inner()), 1);
    }

    #[test]
    fn get_mut_reaches_the_value_without_locking() {
        let mut lock = Mutex::new(String::from("a"));
        lock.get_mut().unwrap_or_else(|e| e.into_inner()).push('b');
        assert_eq!(*lock.lock().unwrap_or_else(|e| e.into_inner()), "ab");
    }
}
