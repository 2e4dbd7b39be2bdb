//! Error types.
//!
//! Each error says what happened and, where it helps, what to do. Errors that
//! reject a value give it back (like tokio's `SendError<T>`). Every error
//! type here is `#[non_exhaustive]`: fields may be added, so match its
//! public fields with `..` and make the ones you need with their `new`
//! functions. ([`MessageError`](crate::MessageError) and
//! [`FailureError`](crate::FailureError), plain public wrappers of a
//! `String` and a [`Failure`](crate::Failure), are not.)
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
/// back. The message names where the Deferred was created; for a Deferred
/// created while debugging was on ([`set_debugging`](crate::set_debugging))
/// it also names where it was first fired, with the backtraces of both.
#[non_exhaustive]
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

    /// Where the Deferred was created (and, with debugging on, where it was
    /// first fired, with backtraces).
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
///
/// The message says where the Deferred (and its first Resolver) was made
/// and, when the Resolver belonged to this library (a [`defer_later`]
/// timer whose runtime shut down, a [`DeferredQueue`] dropped with a `get`
/// waiting, ...), which function made it: [`owner`](Self::owner).
///
/// This failure is never reported as an unhandled error: a Deferred that
/// never fired is collected silently, as in Twisted. Only a consumer that
/// awaits it (or an errback) sees it.
///
/// [`defer_later`]: crate::defer_later
/// [`DeferredQueue`]: crate::DeferredQueue
///
/// ```
/// use tokio_deferred::{Deferred, ResolverDroppedError};
///
/// let (d, resolver) = Deferred::<u8>::new();
/// drop(resolver);
/// let failure = d.try_take().unwrap().unwrap_err();
/// let e = failure.downcast_ref::<ResolverDroppedError>().unwrap();
/// assert!(e.created().contains(file!()));
/// assert_eq!(e.owner(), None); // a Resolver of the program's own
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", ResolverDroppedError::message(.created, *.owner))]
#[non_exhaustive]
pub struct ResolverDroppedError {
    created: String,
    owner: Option<&'static str>,
}

impl ResolverDroppedError {
    pub(crate) fn new(
        created: &'static std::panic::Location<'static>,
        owner: Option<&'static str>,
    ) -> Self {
        ResolverDroppedError {
            created: created.to_string(),
            owner,
        }
    }

    /// Where the Deferred and its first Resolver were made (`file:line:column`;
    /// for a library function, where the program called it).
    pub fn created(&self) -> &str {
        &self.created
    }

    /// The library function that made and held the Resolver (for example
    /// `"tokio_deferred::defer_later"`), or `None` for a Resolver the program
    /// made itself ([`Deferred::new`](crate::Deferred::new)).
    pub fn owner(&self) -> Option<&'static str> {
        self.owner
    }

    fn message(created: &str, owner: Option<&'static str>) -> String {
        match owner {
            None => format!(
                "the Deferred created at {created} never fired: every Resolver of it was \
                 dropped first; keep a Resolver until you call callback() or errback()"
            ),
            Some(owner) => format!(
                "the Deferred made by {owner} at {created} never fired: {owner} dropped its \
                 Resolver (its runtime shut down, or what was to fire it was dropped); keep \
                 the runtime and the object it came from alive until it fires, or cancel it"
            ),
        }
    }
}

/// A future given to [`ensure_deferred`](crate::ensure_deferred) or
/// [`Deferred::from_future`](crate::Deferred::from_future) suspended, but no
/// Tokio runtime was running to continue it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the future suspended and there is no Tokio runtime to drive it; \
     call ensure_deferred from within a runtime (e.g. #[tokio::main]) or enter one with Handle::enter"
)]
#[non_exhaustive]
pub struct NoRuntimeError {}

/// The result of a Deferred was already taken (by `.await`,
/// [`try_take`](crate::Deferred::try_take), or a chain that consumed it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Deferred's result was already taken; a result can be taken once")]
#[non_exhaustive]
pub struct ResultTakenError {}

/// A callback returned the Deferred it was attached to, which could never
/// fire. Twisted warns and hangs; tokio-deferred fails the chain with this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a callback returned the Deferred it was attached to; return a different Deferred")]
#[non_exhaustive]
pub struct ChainedToSelfError {}

/// A timeout expired (Twisted's `TimeoutError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {timeout:?}")]
#[non_exhaustive]
pub struct TimeoutError {
    /// How long was waited.
    pub timeout: std::time::Duration,
}

impl TimeoutError {
    /// A `TimeoutError` after waiting `timeout` (for a canceller or an
    /// errback that reports a timeout of its own).
    pub fn new(timeout: std::time::Duration) -> Self {
        TimeoutError { timeout }
    }
}

// ---------------------------------------------------------------------------
// Composition: DeferredList, gather_results, race, DeferredLock,
// DeferredSemaphore, DeferredQueue.
// ---------------------------------------------------------------------------

/// The first failure among the inputs of a
/// [`DeferredList`](crate::DeferredList) with
/// [`fire_on_one_errback`](crate::DeferredList::fire_on_one_errback), or of
/// [`gather_results`](crate::gather_results) (Twisted's `FirstError`).
///
/// `failure` is the input's own [`Failure`](crate::Failure) (Twisted's
/// `subFailure`). Two `FirstError`s are equal when they have the same index
/// and share the same failure object, as in Twisted.
///
/// ```
/// use tokio_deferred::{fail, gather_results, succeed, FirstError, Failure};
///
/// let d = gather_results([succeed(1), fail(Failure::msg("no disk"))]);
/// let failure = d.try_take().unwrap().unwrap_err();
/// let first = failure.downcast_ref::<FirstError>().unwrap();
/// assert_eq!(first.index, 1);
/// assert_eq!(first.failure.to_string(), "no disk");
/// // Or get the input's failure back directly (Twisted #4627):
/// assert_eq!(FirstError::unwrap_failure(failure).to_string(), "no disk");
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct FirstError {
    /// The position of the failed input.
    pub index: usize,
    /// The input's failure.
    pub failure: crate::Failure,
}

impl FirstError {
    /// A new `FirstError` for input `index`.
    pub fn new(index: usize, failure: crate::Failure) -> Self {
        FirstError { index, failure }
    }

    /// The input's own failure when `failure` wraps a `FirstError`, else
    /// `failure` unchanged. Use it in an errback to see the original error:
    /// `.add_errback(|f| Err(FirstError::unwrap_failure(f)))`.
    pub fn unwrap_failure(failure: crate::Failure) -> crate::Failure {
        match failure.downcast_ref::<FirstError>() {
            Some(first) => first.failure.clone(),
            None => failure,
        }
    }
}

impl fmt::Debug for FirstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FirstError[#{}, {:?}]", self.index, self.failure)
    }
}

impl fmt::Display for FirstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "input #{} failed first: {}", self.index, self.failure)
    }
}

impl PartialEq for FirstError {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index && self.failure.ptr_eq(&other.failure)
    }
}

impl std::error::Error for FirstError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.failure.error())
    }
}

/// Every input failed: the failure of a [`race`](crate::race) (and of
/// [`DeferredList::first_success`](crate::DeferredList::first_success)) in
/// which no input succeeded (Twisted's `FailureGroup`). The failures are in
/// input order. With no inputs at all it holds no failures.
///
/// ```
/// use tokio_deferred::{fail, race, Failure, FailureGroup};
///
/// let d = race([fail::<u8>(Failure::msg("a")), fail(Failure::msg("b"))]);
/// let failure = d.try_take().unwrap().unwrap_err();
/// let group = failure.downcast_ref::<FailureGroup>().unwrap();
/// let messages: Vec<String> = group.failures.iter().map(|f| f.to_string()).collect();
/// assert_eq!(messages, ["a", "b"]);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct FailureGroup {
    /// One failure per input, in input order.
    pub failures: Vec<crate::Failure>,
}

impl FailureGroup {
    /// A group of failures, in input order.
    pub fn new(failures: Vec<crate::Failure>) -> Self {
        FailureGroup { failures }
    }
}

impl fmt::Debug for FailureGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FailureGroup").field(&self.failures).finish()
    }
}

impl fmt::Display for FailureGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.failures.first() {
            None => {
                f.write_str("there were no inputs, so none succeeded; pass at least one Deferred")
            }
            Some(first) => write!(
                f,
                "all {} inputs failed (the first with: {first})",
                self.failures.len()
            ),
        }
    }
}

impl std::error::Error for FailureGroup {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.failures
            .first()
            .map(|f| f.error() as &(dyn std::error::Error + 'static))
    }
}

/// [`DeferredLock::release`](crate::DeferredLock::release) was called on a
/// lock that is not locked (Twisted asserts "Tried to release an unlocked
/// lock").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tried to release an unlocked DeferredLock; call release() once per acquire()")]
#[non_exhaustive]
pub struct LockNotHeldError {}

/// [`DeferredSemaphore::release`](crate::DeferredSemaphore::release) was
/// called more often than `acquire` (Twisted asserts "Someone released me
/// too many times: too many tokens!").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "released a DeferredSemaphore too many times (all {limit} tokens are already free); \
     call release() once per acquire()"
)]
#[non_exhaustive]
pub struct TooManyReleasesError {
    /// The semaphore's number of tokens.
    pub limit: usize,
}

/// [`DeferredSemaphore::new`](crate::DeferredSemaphore::new) was given no
/// tokens (Twisted raises `ValueError("DeferredSemaphore requires tokens >= 1")`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a DeferredSemaphore needs at least 1 token, got 0; use DeferredSemaphore::new(1) or more")]
#[non_exhaustive]
pub struct InvalidTokensError {}

/// [`DeferredQueue::put`](crate::DeferredQueue::put) found the queue full
/// and nobody waiting (Twisted's `QueueOverflow`). The value is given back.
#[non_exhaustive]
pub struct QueueOverflow<T> {
    value: T,
    size: usize,
}

impl<T> QueueOverflow<T> {
    pub(crate) fn new(value: T, size: usize) -> Self {
        QueueOverflow { value, size }
    }

    /// The value that was not queued.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// A reference to the value that was not queued.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The queue's size limit.
    pub fn size(&self) -> usize {
        self.size
    }
}

impl<T> fmt::Debug for QueueOverflow<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueOverflow")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for QueueOverflow<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the DeferredQueue is full ({} values pending) and nobody is waiting; \
             get() values first or make the queue larger",
            self.size
        )
    }
}

impl<T> std::error::Error for QueueOverflow<T> {}

/// [`DeferredQueue::get`](crate::DeferredQueue::get) found the queue empty
/// and the backlog of waiting `get`s full (Twisted's `QueueUnderflow`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the DeferredQueue is empty and {backlog} get() calls are already waiting; \
     put() values first or allow a larger backlog"
)]
#[non_exhaustive]
pub struct QueueUnderflow {
    /// The queue's backlog limit.
    pub backlog: usize,
}

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
#[cfg(feature = "fs")]
#[cfg_attr(docsrs, doc(cfg(feature = "fs")))]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "defer_until_locked is already trying to lock {path}; wait for (or cancel) the first attempt"
)]
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
pub struct CalledFromRuntimeError {}

/// The runtime shut down before a
/// [`blocking_call_from_thread`](crate::blocking_call_from_thread) produced
/// its result, or before a [`defer_to_thread`](crate::defer_to_thread)
/// call's function could run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the Tokio runtime shut down before the call finished; keep the runtime alive while calling into it"
)]
#[non_exhaustive]
pub struct RuntimeShutdownError {}

// ---------------------------------------------------------------------------
// Cooperator (Twisted's task.cooperate).
// ---------------------------------------------------------------------------

/// Why a [`CooperativeTask`](crate::CooperativeTask) no longer runs:
/// Twisted's `TaskFinished` (with its subclasses `TaskDone`, `TaskStopped`,
/// `TaskFailed`) and `SchedulerStopped`.
///
/// [`CooperativeTask::pause`](crate::CooperativeTask::pause) and
/// [`stop`](crate::CooperativeTask::stop) return it for a task that has
/// finished; [`when_done`](crate::CooperativeTask::when_done) fails with
/// `Stopped` after a `stop()`, and with `SchedulerStopped` when the
/// [`Cooperator`](crate::Cooperator) is stopped.
///
/// ```
/// use tokio_deferred::{Cooperator, ManualClock, TaskFinished};
///
/// let coop = Cooperator::builder().clock(ManualClock::new()).build();
/// let task = coop.cooperate(std::iter::repeat(()));
/// let done = task.when_done();
/// task.stop().unwrap();
/// assert_eq!(task.stop(), Err(TaskFinished::Stopped));
/// let failure = done.try_take().unwrap().unwrap_err();
/// assert_eq!(failure.downcast_ref(), Some(&TaskFinished::Stopped));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskFinished {
    /// The iterator is exhausted (Twisted's `TaskDone`).
    #[error("the cooperative task is done: its iterator is exhausted")]
    Done,
    /// [`stop`](crate::CooperativeTask::stop) was called (Twisted's `TaskStopped`).
    #[error("the cooperative task was stopped")]
    Stopped,
    /// The iterator failed (an `Err` item, a failed Deferred, a panic):
    /// Twisted's `TaskFailed`. `when_done` fails with that failure.
    #[error("the cooperative task failed; its when_done() Deferred has the failure")]
    Failed,
    /// Its [`Cooperator`](crate::Cooperator) was stopped (Twisted's
    /// `SchedulerStopped`).
    #[error("the cooperator was stopped; start() it again before adding tasks")]
    SchedulerStopped,
}

/// [`CooperativeTask::resume`](crate::CooperativeTask::resume) was called
/// on a task that is not paused (Twisted's `NotPaused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, thiserror::Error)]
#[error("the cooperative task is not paused; call resume() once per pause()")]
pub struct NotPaused {}

/// Ends a [`react`](crate::react) program quietly with an exit status
/// (Twisted's `SystemExit(code)` from `main`): when `main`'s Deferred fails
/// with it, `react` returns that status and reports nothing.
///
/// ```
/// use std::process::ExitCode;
/// use tokio_deferred::{fail, react, SystemExit};
///
/// let code = react(|| fail::<()>(SystemExit::new(23)));
/// assert_eq!(code, ExitCode::from(23));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the program asked to exit with status {code}")]
#[non_exhaustive]
pub struct SystemExit {
    /// The exit status.
    pub code: u8,
}

impl SystemExit {
    /// A request to exit with status `code`.
    pub fn new(code: u8) -> Self {
        SystemExit { code }
    }
}
