//! [`DeferredSemaphore`]: at most `limit` holders at a time, with a FIFO of
//! Deferreds waiting for a token (Twisted's `DeferredSemaphore`).
//!
//! ```
//! use tokio_deferred::{DeferredSemaphore, Failure};
//!
//! let sem = DeferredSemaphore::new(2).unwrap();
//! let a = sem.acquire_guard();
//! let b = sem.acquire_guard();
//! let c = sem.acquire_guard();
//! assert!(a.is_called() && b.is_called());
//! assert!(!c.is_called()); // no token left: queued
//! drop(a.try_take().unwrap().unwrap()); // a guard gives its token back on drop
//! assert!(c.is_called());
//!
//! // run(f) holds a token while f runs (at most 2 at a time here).
//! let d = sem.run(|| Ok::<_, Failure>(5));
//! # drop(b); drop(c);
//! assert_eq!(d.try_take().unwrap().unwrap(), 5);
//! ```
//!
//! Hand-over and cancellation work as for [`DeferredLock`](crate::DeferredLock):
//! a release hands the token to the oldest waiter synchronously (its
//! callbacks run before `release` returns, with no internal lock held); a
//! cancelled pending acquire leaves the queue and fails with
//! [`CancelledError`](crate::CancelledError); cancelling a fired acquire does
//! nothing.

use std::fmt;
use std::sync::Arc;

use crate::Deferred;
use crate::deferred::IntoOutcome;
use crate::error::{InvalidTokensError, TooManyReleasesError};
use crate::sync::permits::{Permit, Pool};

/// A semaphore for Deferred-based code (Twisted's `DeferredSemaphore`):
/// [`acquire`](Self::acquire) returns a [`Deferred`] that fires when one of
/// the `limit` tokens is held.
///
/// Cloning gives another handle on the same semaphore; it is
/// `Send + Sync`.
///
/// ```
/// use tokio_deferred::DeferredSemaphore;
///
/// let sem = DeferredSemaphore::new(1).unwrap();
/// let first = sem.acquire();
/// let second = sem.acquire();
/// assert_eq!((sem.tokens(), sem.limit()), (0, 1));
/// assert!(first.is_called() && !second.is_called());
/// sem.release().unwrap(); // the token goes to `second`
/// assert!(second.is_called());
/// sem.release().unwrap();
/// assert!(sem.release().is_err()); // released too many times: a typed error
/// assert!(DeferredSemaphore::new(0).is_err());
/// ```
#[derive(Clone)]
pub struct DeferredSemaphore {
    pool: Arc<Pool<DeferredSemaphoreGuard>>,
}

impl DeferredSemaphore {
    /// A semaphore with `tokens` free tokens.
    ///
    /// # Errors
    ///
    /// [`InvalidTokensError`] if `tokens` is 0 (Twisted's `ValueError`).
    pub fn new(tokens: usize) -> Result<Self, InvalidTokensError> {
        if tokens == 0 {
            return Err(InvalidTokensError {});
        }
        Ok(DeferredSemaphore {
            pool: Pool::new(tokens),
        })
    }

    /// How many tokens are free now (Twisted's `tokens`).
    pub fn tokens(&self) -> usize {
        self.pool.available()
    }

    /// How many tokens there are in all (Twisted's `limit`).
    pub fn limit(&self) -> usize {
        self.pool.limit()
    }

    /// How many acquires are waiting.
    pub fn waiting(&self) -> usize {
        self.pool.waiting()
    }

    /// A Deferred that fires with (a handle on) this semaphore once it holds
    /// a token. The holder must call [`release`](Self::release) once. See
    /// [`DeferredLock::acquire`](crate::DeferredLock::acquire) about
    /// dropping it unfired; prefer [`acquire_guard`](Self::acquire_guard) or
    /// [`run`](Self::run).
    #[track_caller]
    pub fn acquire(&self) -> Deferred<DeferredSemaphore> {
        self.pool.acquire_handle()
    }

    /// A Deferred that fires with a [`DeferredSemaphoreGuard`], which gives
    /// the token back when dropped. See
    /// [`DeferredLock::acquire_guard`](crate::DeferredLock::acquire_guard)
    /// for cancel safety.
    #[track_caller]
    pub fn acquire_guard(&self) -> Deferred<DeferredSemaphoreGuard> {
        self.pool.acquire()
    }

    /// Gives a token back, to the oldest waiter if there is one (whose
    /// callbacks run before this returns).
    ///
    /// # Errors
    ///
    /// [`TooManyReleasesError`] if every token is already free.
    pub fn release(&self) -> Result<(), TooManyReleasesError> {
        if self.pool.release() {
            Ok(())
        } else {
            Err(TooManyReleasesError {
                limit: self.pool.limit(),
            })
        }
    }

    /// Acquires a token, runs `f`, and releases the token when `f`'s result
    /// is known: on success, failure, panic, or when a returned Deferred
    /// fires (Twisted's `DeferredSemaphore.run`). See
    /// [`DeferredLock::run`](crate::DeferredLock::run).
    ///
    /// ```
    /// use tokio_deferred::{DeferredSemaphore, Deferred};
    ///
    /// let sem = DeferredSemaphore::new(1).unwrap();
    /// let (work, done) = Deferred::<u8>::new();
    /// let first = sem.run(move || work);
    /// let second = sem.run(|| Ok::<u8, tokio_deferred::Failure>(2));
    /// assert!(!second.is_called()); // waits for the token
    /// done.callback(1).unwrap();
    /// assert_eq!(first.try_take().unwrap().unwrap(), 1);
    /// assert_eq!(second.try_take().unwrap().unwrap(), 2);
    /// ```
    #[track_caller]
    pub fn run<F, R>(&self, f: F) -> Deferred<R::Output>
    where
        F: FnOnce() -> R + Send + 'static,
        R: IntoOutcome,
    {
        crate::sync::permits::run(&self.pool, f)
    }
}

impl fmt::Debug for DeferredSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredSemaphore")
            .field("tokens", &self.tokens())
            .field("limit", &self.limit())
            .field("waiting", &self.waiting())
            .finish()
    }
}

/// Holds one token of a [`DeferredSemaphore`]; dropping it gives the token
/// back (to the oldest waiter). Made by
/// [`DeferredSemaphore::acquire_guard`].
#[must_use = "dropping the guard releases the token at once"]
pub struct DeferredSemaphoreGuard {
    pool: Option<Arc<Pool<DeferredSemaphoreGuard>>>,
}

impl DeferredSemaphoreGuard {
    /// The semaphore this guard holds a token of.
    pub fn semaphore(&self) -> Option<DeferredSemaphore> {
        self.pool.clone().map(|pool| DeferredSemaphore { pool })
    }
}

impl Permit for DeferredSemaphoreGuard {
    fn issue(pool: Arc<Pool<Self>>, _generation: u64) -> Self {
        DeferredSemaphoreGuard { pool: Some(pool) }
    }

    fn disarm(mut self) -> Option<Arc<Pool<Self>>> {
        self.pool.take()
    }

    type Handle = DeferredSemaphore;

    fn handle(pool: Arc<Pool<Self>>) -> DeferredSemaphore {
        DeferredSemaphore { pool }
    }

    const OWNER: &'static str = "tokio_deferred::DeferredSemaphore::acquire";
}

impl Drop for DeferredSemaphoreGuard {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            // Too many releases (someone also released by hand) is ignored.
            pool.release();
        }
    }
}

impl fmt::Debug for DeferredSemaphoreGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredSemaphoreGuard")
            .field("armed", &self.pool.is_some())
            .finish()
    }
}
