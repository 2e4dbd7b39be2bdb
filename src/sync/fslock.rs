//! [`DeferredFilesystemLock`]: a lock on a path, shared between processes,
//! that can be waited for with a Deferred (Twisted's
//! `defer.DeferredFilesystemLock`).
//!
//! ```
//! use std::time::Duration;
//! use tokio_deferred::{DeferredFilesystemLock, ManualClock};
//!
//! let dir = std::env::temp_dir().join(format!("fslock-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("lock");
//! let clock = ManualClock::new();
//! let first = DeferredFilesystemLock::with_clock(&path, clock.clone());
//! let second = DeferredFilesystemLock::with_clock(&path, clock.clone());
//!
//! assert!(first.lock().unwrap());
//! let waiting = second.defer_until_locked(Some(Duration::from_secs(5)));
//! clock.advance(Duration::from_secs(1)); // still held: polls again later
//! first.unlock().unwrap();
//! clock.advance(Duration::from_secs(1)); // the next poll gets it
//! assert!(waiting.try_take().unwrap().is_ok());
//! assert!(second.is_locked());
//! # drop(second);
//! # std::fs::remove_dir_all(&dir).ok();
//! ```

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{AlreadyTryingToLockError, CancelledError, TimeoutError};
use crate::loom::Mutex;
use crate::time::clock::{Clock, DelayedCall, TokioClock};
use crate::{Deferred, Failure, Resolver, fail};

#[derive(Default)]
struct LockState {
    /// The open, locked file while the lock is held.
    file: Option<File>,
    /// Whether a `defer_until_locked` is in progress.
    trying: bool,
    /// The next poll.
    try_call: Option<DelayedCall>,
    /// The timeout of the attempt in progress.
    timeout_call: Option<DelayedCall>,
    /// Fires the Deferred of the attempt in progress.
    resolver: Option<Resolver<()>>,
}

struct FsInner {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    interval: Duration,
    state: Mutex<LockState>,
}

/// An exclusive lock on a file path, held against other processes (and
/// other handles in this process), with a Deferred to wait for it.
///
/// The lock is an OS advisory lock (`flock` on Unix, `LockFileEx` on
/// Windows, through the `fs4` crate) on the file at `path`, which is created
/// if missing and never deleted (deleting a lock file races with other
/// lockers). The OS releases it if the process dies, so there are no stale
/// locks to clean up (Twisted's symlink lock must detect them).
///
/// The lock is released by [`unlock`](Self::unlock) or when the
/// `DeferredFilesystemLock` is dropped.
///
/// Available with the crate's `fs` feature (on by default; it brings in
/// the `fs4` crate).
#[cfg_attr(docsrs, doc(cfg(feature = "fs")))]
pub struct DeferredFilesystemLock {
    inner: Arc<FsInner>,
}

impl DeferredFilesystemLock {
    /// A lock on `path`, polling on the default [`TokioClock`].
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self::with_clock(path, TokioClock::new())
    }

    /// A lock on `path`, polling on `clock` (Twisted's `scheduler`).
    pub fn with_clock(path: impl AsRef<Path>, clock: impl Clock) -> Self {
        DeferredFilesystemLock {
            inner: Arc::new(FsInner {
                path: path.as_ref().to_path_buf(),
                clock: Arc::new(clock),
                interval: Duration::from_secs(1),
                state: Mutex::new(LockState::default()),
            }),
        }
    }

    /// Sets how often [`defer_until_locked`](Self::defer_until_locked)
    /// tries again (default 1 s, Twisted's `_interval`).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.interval = interval;
        }
        self
    }

    /// The path of the lock.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Tries once to take the lock, without waiting. `Ok(true)` if this
    /// handle holds it now (also if it already did), `Ok(false)` if someone
    /// else holds it.
    ///
    /// # Errors
    ///
    /// An I/O error if the lock file cannot be opened or locked (for
    /// example, its directory does not exist).
    pub fn lock(&self) -> io::Result<bool> {
        self.inner.try_lock()
    }

    /// Releases the lock.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotConnected`] if this handle does not hold the
    /// lock, or the OS error from unlocking.
    pub fn unlock(&self) -> io::Result<()> {
        let file = self.inner.state.lock().file.take();
        match file {
            Some(file) => fs4::FileExt::unlock(&file),
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                format!(
                    "the filesystem lock {} is not held by this handle; lock it first",
                    self.inner.path.display()
                ),
            )),
        }
    }

    /// Whether this handle holds the lock.
    pub fn is_locked(&self) -> bool {
        self.inner.state.lock().file.is_some()
    }

    /// A Deferred that fires (with `()`) once this handle holds the lock,
    /// trying now and then every interval (Twisted's `deferUntilLocked`).
    ///
    /// * With `Some(timeout)`, it fails with [`TimeoutError`] if the lock is
    ///   not taken in time (one last try is made first).
    /// * Cancelling it stops the polling; it fails with
    ///   [`CancelledError`] (unless a last try gets the lock).
    /// * A second call while one is in progress fails at once with
    ///   [`AlreadyTryingToLockError`].
    /// * An I/O error while trying fails it with that error.
    pub fn defer_until_locked(&self, timeout: Option<Duration>) -> Deferred<()> {
        {
            let mut st = self.inner.state.lock();
            if st.trying {
                return fail(AlreadyTryingToLockError {
                    path: self.inner.path.clone(),
                });
            }
            st.trying = true;
        }
        let weak = Arc::downgrade(&self.inner);
        let (d, resolver) = Deferred::with_canceller(move |_| {
            if let Some(inner) = weak.upgrade() {
                FsInner::cancel_attempt(&inner, Failure::new(CancelledError::new()));
            }
        });
        self.inner.state.lock().resolver = Some(resolver);
        FsInner::try_once(&self.inner, timeout);
        d
    }
}

impl FsInner {
    fn try_lock(&self) -> io::Result<bool> {
        // Held across the open and the lock (system calls only, no user
        // code) so two threads using one handle cannot both open the file.
        let mut st = self.state.lock();
        if st.file.is_some() {
            return Ok(true);
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)?;
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {
                st.file = Some(file);
                Ok(true)
            }
            Err(fs4::TryLockError::WouldBlock) => Ok(false),
            Err(fs4::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Ends the attempt in progress, handing back its resolver and timers.
    fn end_attempt(
        &self,
    ) -> (
        Option<Resolver<()>>,
        Option<DelayedCall>,
        Option<DelayedCall>,
    ) {
        let mut st = self.state.lock();
        st.trying = false;
        (
            st.resolver.take(),
            st.try_call.take(),
            st.timeout_call.take(),
        )
    }

    /// Twisted's `_tryLock`.
    fn try_once(inner: &Arc<FsInner>, timeout: Option<Duration>) {
        match inner.try_lock() {
            Ok(false) => {
                let need_timeout = timeout.is_some() && inner.state.lock().timeout_call.is_none();
                if let (true, Some(timeout)) = (need_timeout, timeout) {
                    let weak = Arc::downgrade(inner);
                    let call = inner.clock.call_later(timeout, move || {
                        if let Some(inner) = weak.upgrade() {
                            Self::cancel_attempt(&inner, Failure::new(TimeoutError { timeout }));
                        }
                    });
                    Self::store_call(inner, call, true);
                }
                let weak = Arc::downgrade(inner);
                let call = inner.clock.call_later(inner.interval, move || {
                    if let Some(inner) = weak.upgrade() {
                        Self::try_once(&inner, timeout);
                    }
                });
                Self::store_call(inner, call, false);
            }
            outcome => {
                let (resolver, try_call, timeout_call) = inner.end_attempt();
                for call in [try_call, timeout_call].into_iter().flatten() {
                    let _ = call.cancel();
                }
                if let Some(resolver) = resolver {
                    let _ = resolver.resolve(outcome.map(|_| ()).map_err(Failure::new));
                }
            }
        }
    }

    /// Keeps a timer for the attempt in progress, or cancels it if the
    /// attempt ended meanwhile.
    fn store_call(inner: &Arc<FsInner>, call: DelayedCall, is_timeout: bool) {
        let mut st = inner.state.lock();
        if !st.trying {
            drop(st);
            let _ = call.cancel();
        } else if is_timeout {
            st.timeout_call = Some(call);
        } else {
            st.try_call = Some(call);
        }
    }

    /// Twisted's `_cancelLock`: stop polling, try once more, else fail with
    /// `reason`.
    fn cancel_attempt(inner: &Arc<FsInner>, reason: Failure) {
        let (resolver, try_call, timeout_call) = inner.end_attempt();
        for call in [try_call, timeout_call].into_iter().flatten() {
            let _ = call.cancel();
        }
        let Some(resolver) = resolver else { return };
        let result = match inner.try_lock() {
            Ok(true) => Ok(()),
            Ok(false) => Err(reason),
            Err(e) => Err(Failure::new(e)),
        };
        let _ = resolver.resolve(result);
    }
}

impl Drop for DeferredFilesystemLock {
    fn drop(&mut self) {
        let (file, resolver, try_call, timeout_call) = {
            let mut st = self.inner.state.lock();
            st.trying = false;
            (
                st.file.take(),
                st.resolver.take(),
                st.try_call.take(),
                st.timeout_call.take(),
            )
        };
        for call in [try_call, timeout_call].into_iter().flatten() {
            let _ = call.cancel();
        }
        if let Some(file) = file {
            let _ = fs4::FileExt::unlock(&file);
        }
        // An attempt in progress fails (ResolverDroppedError) rather than hang.
        drop(resolver);
    }
}

impl fmt::Debug for DeferredFilesystemLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.state.lock();
        f.debug_struct("DeferredFilesystemLock")
            .field("path", &self.inner.path)
            .field("locked", &st.file.is_some())
            .field("trying", &st.trying)
            .finish()
    }
}
