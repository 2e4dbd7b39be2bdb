//! [`DeferredLock`]: a FIFO lock whose `acquire` returns a Deferred
//! (Twisted's `DeferredLock`).
//!
//! ```
//! use tokio_deferred::{DeferredLock, Failure};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Failure> {
//! let lock = DeferredLock::new();
//!
//! // Twisted style: run a function under the lock; released however it ends.
//! let d = lock.run(|| Ok::<_, Failure>("done under the lock"));
//! assert_eq!(d.await?, "done under the lock");
//!
//! // async style: a guard that releases the lock when dropped.
//! {
//!     let _guard = lock.acquire_guard().await?;
//!     assert!(lock.is_locked());
//! }
//! assert!(!lock.is_locked());
//! # Ok(())
//! # }
//! ```
//!
//! # Hand-over
//!
//! Waiters are served first come, first served. [`release`](DeferredLock::release)
//! hands the lock to the oldest waiter synchronously: the waiter's callbacks
//! run before `release` returns, in the releasing thread (as in Twisted).
//! No internal lock is held while they run, so they may acquire or release
//! again. A release made inside such a callback is served as soon as the
//! callback returns (still before the outer `release` returns), so a long
//! queue of waiters that each release at once runs in a loop, not a
//! recursion: 100 000 queued [`run`](DeferredLock::run)s need no deep stack.
//!
//! # Cancellation
//!
//! Cancelling a pending acquire removes it from the queue and fails it with
//! [`CancelledError`](crate::CancelledError); a later release goes to the
//! next live waiter. Cancelling an acquire that has already fired does
//! nothing: the lock stays held.

use std::fmt;
use std::sync::Arc;

use crate::Deferred;
use crate::deferred::IntoOutcome;
use crate::error::LockNotHeldError;
use crate::sync::permits::{Permit, Pool};

/// A FIFO lock for Deferred-based code: [`acquire`](Self::acquire) returns a
/// [`Deferred`] that fires when the lock is held (Twisted's `DeferredLock`).
///
/// Cloning gives another handle on the same lock. It is `Send + Sync`, and
/// may be used from many threads.
///
/// | Twisted | tokio-deferred |
/// |---|---|
/// | `lock.acquire()` | [`acquire`](Self::acquire) (then [`release`](Self::release)), or [`acquire_guard`](Self::acquire_guard) |
/// | `lock.release()` | [`release`](Self::release) (an error, not an assertion, if not locked) |
/// | `lock.run(f)` | [`run`](Self::run) |
/// | `lock.locked` | [`is_locked`](Self::is_locked) |
/// | `async with lock:` | `let _g = lock.acquire_guard().await?;` |
///
/// ```
/// use tokio_deferred::DeferredLock;
///
/// let lock = DeferredLock::new();
/// let first = lock.acquire();
/// assert!(first.is_called()); // the lock was free: fired at once
/// let second = lock.acquire();
/// assert!(!second.is_called()); // queued
/// lock.release().unwrap(); // hands the lock to `second` synchronously
/// assert!(second.is_called());
/// assert!(lock.is_locked());
/// lock.release().unwrap();
/// assert!(!lock.is_locked());
/// assert!(lock.release().is_err()); // not locked: a typed error
/// ```
#[derive(Clone)]
pub struct DeferredLock {
    pool: Arc<Pool<DeferredLockGuard>>,
}

impl DeferredLock {
    /// A new, unlocked lock.
    pub fn new() -> Self {
        DeferredLock { pool: Pool::new(1) }
    }

    /// Whether the lock is held (Twisted's `locked`).
    pub fn is_locked(&self) -> bool {
        self.pool.available() == 0
    }

    /// How many acquires are waiting.
    pub fn waiting(&self) -> usize {
        self.pool.waiting()
    }

    /// A Deferred that fires with (a handle on) this lock once it holds the
    /// lock: at once if it is free, else when every earlier waiter has had
    /// it. The holder must call [`release`](Self::release) exactly once.
    ///
    /// Dropping the Deferred does not leave the queue (cancel it for that);
    /// if it is dropped unfired, the lock is taken when its turn comes and
    /// never released. Prefer [`acquire_guard`](Self::acquire_guard) or
    /// [`run`](Self::run), which cannot leak the lock.
    #[track_caller]
    pub fn acquire(&self) -> Deferred<DeferredLock> {
        self.pool.acquire_handle()
    }

    /// A Deferred that fires with a [`DeferredLockGuard`], which releases
    /// the lock when dropped (the RAII form, for `async`/`.await` code).
    ///
    /// # Cancel safety
    ///
    /// If the Deferred is dropped before it fires, it keeps its place in the
    /// queue; when its turn comes the guard is created and dropped at once,
    /// so the lock moves on to the next waiter. To leave the queue at once
    /// (in `select!`, on timeouts), use
    /// [`cancel_on_drop`](Deferred::cancel_on_drop).
    ///
    /// ```
    /// use tokio_deferred::DeferredLock;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let lock = DeferredLock::new();
    /// let guard = lock.acquire_guard().await.unwrap();
    /// let waiter = lock.acquire_guard();
    /// assert!(!waiter.is_called());
    /// drop(guard); // releases: the waiter gets the lock
    /// assert!(waiter.is_called());
    /// # }
    /// ```
    #[track_caller]
    pub fn acquire_guard(&self) -> Deferred<DeferredLockGuard> {
        self.pool.acquire()
    }

    /// Releases the lock, handing it to the oldest waiter if there is one
    /// (whose callbacks run before this returns).
    ///
    /// # Errors
    ///
    /// [`LockNotHeldError`] if the lock is not locked.
    pub fn release(&self) -> Result<(), LockNotHeldError> {
        if self.pool.release() {
            Ok(())
        } else {
            Err(LockNotHeldError {})
        }
    }

    /// Acquires the lock, runs `f`, and releases the lock when `f`'s result
    /// is known (Twisted's `DeferredLock.run`).
    ///
    /// `f` may return a `Result` or a `Deferred`; the lock is released on
    /// success, on failure, on a panic in `f` (which becomes a failure), and
    /// after a returned Deferred fires. The returned Deferred has `f`'s
    /// result. Cancelling it while it waits for the lock leaves the queue and
    /// `f` never runs; cancelling it while `f`'s Deferred runs cancels that.
    ///
    /// ```
    /// use tokio_deferred::{DeferredLock, Failure};
    ///
    /// let lock = DeferredLock::new();
    /// let d = lock.run(|| -> Result<u8, Failure> { panic!("oops") });
    /// assert!(d.try_take().unwrap().unwrap_err().is_panic());
    /// assert!(!lock.is_locked()); // released anyway
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

impl Default for DeferredLock {
    fn default() -> Self {
        DeferredLock::new()
    }
}

impl fmt::Debug for DeferredLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredLock")
            .field("locked", &self.is_locked())
            .field("waiting", &self.waiting())
            .finish()
    }
}

/// Holds a [`DeferredLock`]; dropping it releases the lock (handing it to
/// the oldest waiter). Made by [`DeferredLock::acquire_guard`].
///
/// A guard releases only the hold it was given: if the lock was released
/// by hand ([`DeferredLock::release`]) in the meantime, dropping the guard
/// does nothing.
#[must_use = "dropping the guard releases the lock at once"]
pub struct DeferredLockGuard {
    pool: Option<Arc<Pool<DeferredLockGuard>>>,
    generation: u64,
}

impl DeferredLockGuard {
    /// The lock this guard holds.
    pub fn lock(&self) -> Option<DeferredLock> {
        self.pool.clone().map(|pool| DeferredLock { pool })
    }
}

impl Permit for DeferredLockGuard {
    fn issue(pool: Arc<Pool<Self>>, generation: u64) -> Self {
        DeferredLockGuard {
            pool: Some(pool),
            generation,
        }
    }

    fn disarm(mut self) -> Option<Arc<Pool<Self>>> {
        self.pool.take()
    }

    type Handle = DeferredLock;

    fn handle(pool: Arc<Pool<Self>>) -> DeferredLock {
        DeferredLock { pool }
    }

    const OWNER: &'static str = "tokio_deferred::DeferredLock::acquire";
}

impl Drop for DeferredLockGuard {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.release_grant(self.generation);
        }
    }
}

impl fmt::Debug for DeferredLockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredLockGuard")
            .field("armed", &self.pool.is_some())
            .finish()
    }
}
