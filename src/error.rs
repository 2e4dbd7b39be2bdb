//! Error types.
//!
//! Each error says what happened and, where it helps, what to do. Errors that
//! reject a value give it back (like tokio's `SendError<T>`).
//!
//! ```
//! use tokio_deferred::{Deferred, AlreadyCalledError};
//!
//! let (_d, resolver) = Deferred::<&str>::new();
//! resolver.callback("first").unwrap();
//! let err: AlreadyCalledError<&str> = resolver.callback("second").unwrap_err();
//! assert_eq!(err.into_inner(), "second"); // the rejected value comes back
//! ```

use std::fmt;
use std::sync::Arc;

/// A Deferred was fired (`callback`/`errback`) a second time.
///
/// Twisted raises `AlreadyCalledError`; here the rejected value is given
/// back. When debugging is on ([`set_debugging`](crate::set_debugging)) the
/// message also carries the backtraces of where the Deferred was created and
/// first fired.
pub struct AlreadyCalledError<T> {
    value: T,
    info: Arc<str>,
}

impl<T> AlreadyCalledError<T> {
    pub(crate) fn new(value: T, info: Arc<str>) -> Self {
        AlreadyCalledError { value, info }
    }

    /// The value that was not delivered.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// A reference to the value that was not delivered.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// Where the Deferred was created and first fired (with backtraces when
    /// debugging is on).
    pub fn info(&self) -> &str {
        &self.info
    }

    /// Drops the rejected value, keeping the message (useful to turn the
    /// error into a [`Failure`](crate::Failure) when `T` is not `Sync`).
    pub fn without_value(self) -> AlreadyCalledError<()> {
        AlreadyCalledError {
            value: (),
            info: self.info,
        }
    }
}

impl<T> fmt::Debug for AlreadyCalledError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlreadyCalledError")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for AlreadyCalledError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the Deferred was already called: a Deferred fires at most once ({})",
            self.info
        )
    }
}

impl<T> std::error::Error for AlreadyCalledError<T> {}

/// The default failure of a cancelled Deferred (Twisted's `CancelledError`).
///
/// Produced by [`Deferred::cancel`](crate::Deferred::cancel) when the
/// Deferred has no canceller, or its canceller did not fire it.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("the Deferred was cancelled")]
#[non_exhaustive]
pub struct CancelledError {}

impl CancelledError {
    /// A new `CancelledError`.
    pub fn new() -> Self {
        CancelledError {}
    }
}

/// Every [`Resolver`](crate::Resolver) of a Deferred was dropped before it
/// fired, so it never can: the Deferred fails with this error instead of
/// leaving an `.await` hanging.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "every Resolver of the Deferred created at {created} was dropped before it fired; \
     keep a Resolver until you call callback() or errback()"
)]
pub struct ResolverDroppedError {
    pub(crate) created: String,
}

/// A future given to [`ensure_deferred`](crate::ensure_deferred) or
/// [`Deferred::from_future`](crate::Deferred::from_future) suspended, but no
/// Tokio runtime was running to continue it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the future suspended and there is no Tokio runtime to drive it; \
     call ensure_deferred from within a runtime (e.g. #[tokio::main]) or enter one with Handle::enter"
)]
pub struct NoRuntimeError {}

/// The result of a Deferred was already taken (by `.await`,
/// [`try_take`](crate::Deferred::try_take), or a chain that consumed it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Deferred's result was already taken; a result can be taken once")]
pub struct ResultTakenError {}

/// A callback returned the Deferred it was attached to, which could never
/// fire. Twisted warns and hangs; tokio-deferred fails the chain with this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a callback returned the Deferred it was attached to; return a different Deferred")]
pub struct ChainedToSelfError {}

/// A timeout expired (Twisted's `TimeoutError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {timeout:?}")]
pub struct TimeoutError {
    /// How long was waited.
    pub timeout: std::time::Duration,
}

// ---------------------------------------------------------------------------
// Time and threads (clock, timeouts, LoopingCall, threads, filesystem lock)
// ---------------------------------------------------------------------------

/// A [`DelayedCall`](crate::DelayedCall) could not be cancelled, reset or
/// delayed because it is no longer pending (Twisted's `AlreadyCalled` /
/// `AlreadyCancelled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DelayedCallError {
    /// The call already ran (or is running now).
    #[error("the delayed call already ran; check active() before cancelling or resetting it")]
    AlreadyCalled,
    /// The call was already cancelled.
    #[error(
        "the delayed call was already cancelled; check active() before cancelling or resetting it"
    )]
    AlreadyCancelled,
}

/// A [`LoopingCall`](crate::LoopingCall) was used in the wrong state (Twisted
/// asserts instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoopingCallError {
    /// `start()` was called on a loop that is already running.
    #[error("the LoopingCall is already running; stop() it before starting it again")]
    AlreadyRunning,
    /// `stop()` or `reset()` was called on a loop that is not running.
    #[error("the LoopingCall is not running; start() it first")]
    NotRunning,
}

/// A second [`DeferredFilesystemLock::defer_until_locked`](crate::DeferredFilesystemLock::defer_until_locked)
/// was made while one was still in progress (Twisted's
/// `AlreadyTryingToLockError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "defer_until_locked is already trying to lock {path}; wait for (or cancel) the first attempt"
)]
pub struct AlreadyTryingToLockError {
    /// The path of the lock.
    pub path: std::path::PathBuf,
}

/// A timer or thread helper needed a Tokio runtime and none was available.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} needs a Tokio runtime; call it from within a runtime (e.g. #[tokio::main]), \
     pass a runtime Handle, or use a ManualClock"
)]
pub struct RuntimeRequiredError {
    /// What needed the runtime.
    pub what: &'static str,
}

/// [`blocking_call_from_thread`](crate::blocking_call_from_thread) was called
/// from a thread that drives a Tokio runtime, where blocking would deadlock
/// (Twisted hangs in that case).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "blocking_call_from_thread was called from a runtime thread, where it would deadlock; \
     call it from a plain thread or a defer_to_thread worker, or just await the Deferred"
)]
pub struct CalledFromRuntimeError {}

/// The runtime shut down before a
/// [`blocking_call_from_thread`](crate::blocking_call_from_thread) produced
/// its result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the Tokio runtime shut down before the call finished; keep the runtime alive while calling into it"
)]
pub struct RuntimeShutdownError {}
