//! Clocks and delayed calls: Twisted's `IReactorTime`, `task.Clock` and
//! `DelayedCall`.
//!
//! [`Clock`] is what every timer in this crate schedules on. Two are
//! provided:
//!
//! * [`TokioClock`], the default everywhere: each call is a task sleeping on
//!   Tokio's timer, so `#[tokio::test(start_paused = true)]` and
//!   `tokio::time::advance` drive it.
//! * [`ManualClock`] (Twisted's `task.Clock`): time moves only when you call
//!   [`advance`](ManualClock::advance), and calls run inside that call, in
//!   the calling thread. It needs no runtime at all, which makes tests exact.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use tokio_deferred::ManualClock;
//!
//! let clock = ManualClock::new();
//! let log = Arc::new(Mutex::new(Vec::new()));
//! let l = log.clone();
//! let call = clock.call_later(Duration::from_secs(2), move || l.lock().unwrap().push("ran"));
//! assert!(call.active());
//! clock.advance(Duration::from_secs(1));
//! assert!(log.lock().unwrap().is_empty());
//! clock.advance(Duration::from_secs(1));
//! assert_eq!(*log.lock().unwrap(), ["ran"]);
//! assert!(!call.active());
//! ```
//!
//! # Panics in calls
//!
//! A call that panics is contained: the panic is caught and reported as a
//! `tracing` error event with target `tokio_deferred::clock`, and the clock
//! goes on working.

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::Failure;
use crate::error::DelayedCallError;
use crate::loom::Mutex;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Runs a call, containing a panic.
fn run_guarded(f: Job) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        let failure = Failure::from_panic(payload);
        tracing::error!(
            target: "tokio_deferred::clock",
            failure = %failure,
            "a delayed call panicked; the clock goes on"
        );
    }
}

/// Something that tells the time and runs functions later: Twisted's
/// `IReactorTime` (`seconds()` and `callLater()`).
///
/// Times are [`Duration`]s since the clock's own origin (its creation), so
/// they can never be negative. Implementations must run each call at most
/// once, never before its time, and must not hold a lock while running it.
///
/// [`DelayedCall`] has no public constructor, so a custom clock schedules
/// through one of the provided ones (for example, a wrapper that logs and
/// delegates to a [`TokioClock`]).
///
/// ```
/// use std::time::Duration;
/// use tokio_deferred::{Clock, ManualClock};
///
/// fn schedule_ping(clock: &dyn Clock) {
///     clock.call_later(Duration::from_secs(30), || println!("ping"));
/// }
/// let clock = ManualClock::new();
/// schedule_ping(&clock);
/// assert_eq!(clock.pending_calls().len(), 1);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current time, measured from the clock's origin (Twisted's
    /// `seconds()`).
    fn now(&self) -> Duration;

    /// Schedules `f` to run `delay` from now (Twisted's `callLater`).
    /// Calls due at the same time run in the order they were scheduled.
    ///
    /// This is the object-safe form; `call_later(delay, closure)` is
    /// provided on `dyn Clock`, [`ManualClock`] and [`TokioClock`].
    fn call_later_boxed(
        &self,
        delay: Duration,
        f: Box<dyn FnOnce() + Send + 'static>,
    ) -> DelayedCall;
}

impl dyn Clock {
    /// Schedules `f` to run `delay` from now (Twisted's `callLater`), on a
    /// `dyn Clock`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio_deferred::{Clock, ManualClock};
    ///
    /// let manual = ManualClock::new();
    /// let clock: &dyn Clock = &manual;
    /// let call = clock.call_later(Duration::from_secs(1), || {});
    /// assert_eq!(call.time(), Duration::from_secs(1));
    /// ```
    pub fn call_later<F>(&self, delay: Duration, f: F) -> DelayedCall
    where
        F: FnOnce() + Send + 'static,
    {
        self.call_later_boxed(delay, Box::new(f))
    }
}

// ---------------------------------------------------------------------------
// DelayedCall
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Called,
    Cancelled,
}

struct CallState {
    /// When the call is due, from the clock's origin.
    time: Duration,
    status: Status,
    func: Option<Job>,
    /// Bumped on every reschedule; heap entries with an older generation
    /// are stale (lazy deletion).
    generation: u64,
}

enum Backend {
    Manual(Weak<ManualInner>),
    Tokio {
        epoch: tokio::time::Instant,
        notify: Notify,
    },
}

struct CallShared {
    state: Mutex<CallState>,
    backend: Backend,
    /// FIFO order among calls due at the same time (manual clock).
    seq: u64,
}

impl CallShared {
    fn now(&self) -> Option<Duration> {
        match &self.backend {
            Backend::Manual(w) => w.upgrade().map(|m| m.state.lock().now),
            Backend::Tokio { epoch, .. } => {
                Some(tokio::time::Instant::now().saturating_duration_since(*epoch))
            }
        }
    }

    /// Tells the backend that the call's time changed.
    fn rescheduled(self: &Arc<Self>, time: Duration, generation: u64) {
        match &self.backend {
            Backend::Manual(w) => {
                if let Some(m) = w.upgrade() {
                    m.push(self.clone(), time, generation, true);
                }
            }
            Backend::Tokio { notify, .. } => notify.notify_one(),
        }
    }

    fn cancelled(&self) {
        match &self.backend {
            Backend::Manual(w) => {
                if let Some(m) = w.upgrade() {
                    m.note_stale();
                }
            }
            Backend::Tokio { notify, .. } => notify.notify_one(),
        }
    }
}

/// A call scheduled by [`Clock::call_later_boxed`] (or `call_later`): Twisted's `DelayedCall`.
///
/// It is a cheap handle (clones refer to the same call). Dropping it does
/// not cancel the call.
///
/// ```
/// use std::time::Duration;
/// use tokio_deferred::{DelayedCallError, ManualClock};
///
/// let clock = ManualClock::new();
/// let call = clock.call_later(Duration::from_secs(5), || {});
/// call.delay(Duration::from_secs(1)).unwrap();
/// assert_eq!(call.time(), Duration::from_secs(6));
/// call.cancel().unwrap();
/// assert!(!call.active());
/// assert_eq!(call.cancel(), Err(DelayedCallError::AlreadyCancelled));
/// ```
#[derive(Clone)]
pub struct DelayedCall {
    shared: Arc<CallShared>,
}

impl DelayedCall {
    fn new(time: Duration, f: Job, backend: Backend, seq: u64) -> Self {
        DelayedCall {
            shared: Arc::new(CallShared {
                state: Mutex::new(CallState {
                    time,
                    status: Status::Pending,
                    func: Some(f),
                    generation: 0,
                }),
                backend,
                seq,
            }),
        }
    }

    fn not_pending(status: Status) -> DelayedCallError {
        match status {
            Status::Called => DelayedCallError::AlreadyCalled,
            _ => DelayedCallError::AlreadyCancelled,
        }
    }

    /// Whether the call is still pending: neither run (or running) nor
    /// cancelled (Twisted's `active()`).
    pub fn active(&self) -> bool {
        self.shared.state.lock().status == Status::Pending
    }

    /// Whether the call has run (it counts as called from the moment it
    /// starts running).
    pub fn is_called(&self) -> bool {
        self.shared.state.lock().status == Status::Called
    }

    /// Whether the call was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.shared.state.lock().status == Status::Cancelled
    }

    /// Cancels the call; its function is dropped without running.
    ///
    /// # Errors
    ///
    /// [`DelayedCallError::AlreadyCalled`] if it ran or is running (also
    /// from inside its own function), [`DelayedCallError::AlreadyCancelled`]
    /// if it was cancelled.
    pub fn cancel(&self) -> Result<(), DelayedCallError> {
        let func = {
            let mut st = self.shared.state.lock();
            if st.status != Status::Pending {
                return Err(Self::not_pending(st.status));
            }
            st.status = Status::Cancelled;
            st.func.take()
        };
        // The function (and whatever it owns) is dropped outside the lock.
        drop(func);
        self.shared.cancelled();
        Ok(())
    }

    /// Reschedules the call to run `delay` from now (Twisted's `reset`).
    ///
    /// # Errors
    ///
    /// As [`cancel`](Self::cancel), if the call is no longer pending.
    pub fn reset(&self, delay: Duration) -> Result<(), DelayedCallError> {
        let now = self.shared.now().unwrap_or_default();
        self.set_time(|_| now + delay)
    }

    /// Postpones the call by `by` (Twisted's `delay`).
    ///
    /// # Errors
    ///
    /// As [`cancel`](Self::cancel), if the call is no longer pending.
    pub fn delay(&self, by: Duration) -> Result<(), DelayedCallError> {
        self.set_time(|t| t + by)
    }

    fn set_time(&self, f: impl FnOnce(Duration) -> Duration) -> Result<(), DelayedCallError> {
        let (time, generation) = {
            let mut st = self.shared.state.lock();
            if st.status != Status::Pending {
                return Err(Self::not_pending(st.status));
            }
            st.time = f(st.time);
            st.generation += 1;
            (st.time, st.generation)
        };
        self.shared.rescheduled(time, generation);
        Ok(())
    }

    /// When the call is (or was) due, from the clock's origin (Twisted's
    /// `getTime()`).
    pub fn time(&self) -> Duration {
        self.shared.state.lock().time
    }

    /// Whether two handles refer to the same call.
    pub fn ptr_eq(&self, other: &DelayedCall) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl fmt::Debug for DelayedCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.state.lock();
        let status = match st.status {
            Status::Pending => "pending",
            Status::Called => "called",
            Status::Cancelled => "cancelled",
        };
        f.debug_struct("DelayedCall")
            .field("time", &st.time)
            .field("status", &status)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// ManualClock
// ---------------------------------------------------------------------------

struct Entry {
    time: Duration,
    seq: u64,
    generation: u64,
    call: Arc<CallShared>,
}

impl Entry {
    fn key(&self) -> (Duration, u64, u64) {
        (self.time, self.seq, self.generation)
    }

    /// Whether this entry still stands for a pending call.
    fn is_live(&self) -> bool {
        let st = self.call.state.lock();
        st.status == Status::Pending && st.generation == self.generation
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.key().cmp(&other.key())
    }
}

#[derive(Default)]
struct ManualState {
    now: Duration,
    heap: BinaryHeap<Reverse<Entry>>,
    next_seq: u64,
    /// Upper bound on the number of stale heap entries.
    stale: usize,
}

#[derive(Default)]
struct ManualInner {
    state: Mutex<ManualState>,
}

impl Drop for ManualInner {
    /// Drops the pending calls' functions when the clock goes: a call's
    /// function may hold the Resolver of a Deferred whose canceller holds the
    /// call's `DelayedCall` (e.g. `defer_later_with_clock`), a cycle that
    /// would otherwise keep both alive forever. Dropping the function drops
    /// that Resolver, so the Deferred fails with `ResolverDroppedError`.
    fn drop(&mut self) {
        let heap = std::mem::take(&mut self.state.get_mut().heap);
        for Reverse(entry) in heap {
            let func = entry.call.state.lock().func.take();
            drop(func); // outside the call's lock: it may run user code
        }
    }
}

impl ManualInner {
    fn push(&self, call: Arc<CallShared>, time: Duration, generation: u64, makes_stale: bool) {
        let mut st = self.state.lock();
        let seq = call.seq;
        st.heap.push(Reverse(Entry {
            time,
            seq,
            generation,
            call,
        }));
        if makes_stale {
            st.stale += 1;
            Self::maybe_compact(&mut st);
        }
    }

    fn note_stale(&self) {
        let mut st = self.state.lock();
        st.stale += 1;
        Self::maybe_compact(&mut st);
    }

    /// Drops stale entries once they outnumber the live ones, so a clock
    /// with many cancelled or reset calls keeps a small heap.
    fn maybe_compact(st: &mut ManualState) {
        if st.stale > 64 && st.stale * 2 > st.heap.len() {
            st.heap.retain(|Reverse(e)| e.is_live());
            st.stale = 0;
        }
    }
}

/// A clock whose time moves only when told to: Twisted's `task.Clock`.
///
/// Made for tests. It needs no runtime: calls run synchronously inside
/// [`advance`](Self::advance), in the calling thread. Pending calls sit in a
/// binary heap keyed by (time, scheduling order); cancelled and reset calls
/// are removed lazily, so scheduling, cancelling and running are all
/// `O(log n)` even with 100,000 pending calls (Twisted re-sorts a list on
/// every call).
///
/// `ManualClock` is a cheap handle: clones share the same time and calls.
///
/// ```
/// use std::time::Duration;
/// use tokio_deferred::{defer_later_with_clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let d = defer_later_with_clock(&clock, Duration::from_secs(3), || Ok("done"));
/// clock.advance(Duration::from_secs(2));
/// assert!(!d.is_called());
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(d.try_take().unwrap().unwrap(), "done");
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

impl ManualClock {
    /// A new clock at time zero with no calls.
    pub fn new() -> Self {
        ManualClock::default()
    }

    /// Moves time forward by `amount`, then runs every call due at or before
    /// the new time, earliest first, FIFO among equal times (Twisted's
    /// `advance`).
    ///
    /// The time is moved *first*, so a call made by a running call that is
    /// due at or before the new time also runs during this `advance`, and
    /// `now()` inside any call is the new time. No lock is held while a call
    /// runs: calls may schedule, cancel and reset other calls, or even
    /// advance the clock again.
    pub fn advance(&self, amount: Duration) {
        let now = {
            let mut st = self.inner.state.lock();
            st.now += amount;
            st.now
        };
        loop {
            let entry = {
                let mut st = self.inner.state.lock();
                // A nested advance() from inside a call may have moved time on.
                let now = now.max(st.now);
                match st.heap.peek() {
                    Some(Reverse(e)) if e.time <= now => st.heap.pop().map(|Reverse(e)| e),
                    _ => None,
                }
            };
            let Some(entry) = entry else { break };
            let func = {
                let mut st = entry.call.state.lock();
                if st.status == Status::Pending && st.generation == entry.generation {
                    st.status = Status::Called;
                    st.func.take()
                } else {
                    None
                }
            };
            if let Some(func) = func {
                run_guarded(func);
            }
        }
    }

    /// Schedules `f` to run `delay` from now (Twisted's `callLater`); see
    /// [`Clock::call_later_boxed`].
    pub fn call_later<F>(&self, delay: Duration, f: F) -> DelayedCall
    where
        F: FnOnce() + Send + 'static,
    {
        self.call_later_boxed(delay, Box::new(f))
    }

    /// Calls [`advance`](Self::advance) for each amount in turn (Twisted's
    /// `pump`).
    pub fn pump(&self, amounts: &[Duration]) {
        for &amount in amounts {
            self.advance(amount);
        }
    }

    /// The calls still pending, earliest first (Twisted's
    /// `getDelayedCalls`).
    pub fn pending_calls(&self) -> Vec<DelayedCall> {
        let st = self.inner.state.lock();
        let mut live: Vec<&Entry> = st
            .heap
            .iter()
            .map(|Reverse(e)| e)
            .filter(|e| e.is_live())
            .collect();
        live.sort();
        live.into_iter()
            .map(|e| DelayedCall {
                shared: e.call.clone(),
            })
            .collect()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        self.inner.state.lock().now
    }

    fn call_later_boxed(&self, delay: Duration, f: Job) -> DelayedCall {
        let (time, seq) = {
            let mut st = self.inner.state.lock();
            let seq = st.next_seq;
            st.next_seq += 1;
            (st.now + delay, seq)
        };
        let call = DelayedCall::new(time, f, Backend::Manual(Arc::downgrade(&self.inner)), seq);
        self.inner.push(call.shared.clone(), time, 0, false);
        call
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.state.lock();
        f.debug_struct("ManualClock")
            .field("now", &st.now)
            .field("heap_entries", &st.heap.len())
            .finish()
    }
}

// ---------------------------------------------------------------------------
// TokioClock
// ---------------------------------------------------------------------------

/// The default clock: calls run on Tokio's timer.
///
/// Each call is a small task that sleeps until the call is due, so a paused
/// runtime (`#[tokio::test(start_paused = true)]`, `tokio::time::advance`)
/// drives it like real time. Calls run on the runtime's threads.
///
/// The runtime is the one current when the clock is made
/// ([`TokioClock::new`]), or the one given to
/// [`with_handle`](Self::with_handle), or else the one current when
/// `call_later` is called. If there is none, the call cannot be scheduled:
/// it is returned already cancelled, and a `tracing` error event (target
/// `tokio_deferred::clock`) says so.
///
/// ```
/// use std::time::Duration;
/// use tokio_deferred::{Clock, TokioClock};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let clock = TokioClock::new();
/// let (tx, rx) = tokio::sync::oneshot::channel();
/// clock.call_later(Duration::from_secs(60), move || tx.send("tick").unwrap());
/// assert_eq!(rx.await.unwrap(), "tick"); // the paused clock jumps ahead
/// assert!(clock.now() >= Duration::from_secs(60));
/// # }
/// ```
#[derive(Clone)]
pub struct TokioClock {
    epoch: tokio::time::Instant,
    handle: Option<Handle>,
}

impl TokioClock {
    /// A clock on the current runtime (if any), with its origin now.
    pub fn new() -> Self {
        TokioClock {
            epoch: tokio::time::Instant::now(),
            handle: Handle::try_current().ok(),
        }
    }

    /// A clock that schedules on the runtime behind `handle`, usable from
    /// any thread.
    pub fn with_handle(handle: Handle) -> Self {
        let _guard = handle.enter();
        TokioClock {
            epoch: tokio::time::Instant::now(),
            handle: Some(handle.clone()),
        }
    }

    /// Schedules `f` to run `delay` from now (Twisted's `callLater`); see
    /// [`Clock::call_later_boxed`].
    pub fn call_later<F>(&self, delay: Duration, f: F) -> DelayedCall
    where
        F: FnOnce() + Send + 'static,
    {
        self.call_later_boxed(delay, Box::new(f))
    }

    fn handle(&self) -> Option<Handle> {
        self.handle.clone().or_else(|| Handle::try_current().ok())
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Duration {
        tokio::time::Instant::now().saturating_duration_since(self.epoch)
    }

    fn call_later_boxed(&self, delay: Duration, f: Job) -> DelayedCall {
        let time = self.now() + delay;
        let call = DelayedCall::new(
            time,
            f,
            Backend::Tokio {
                epoch: self.epoch,
                notify: Notify::new(),
            },
            0,
        );
        match self.handle() {
            Some(handle) => {
                handle.spawn(run_tokio_call(call.shared.clone()));
            }
            None => {
                tracing::error!(
                    target: "tokio_deferred::clock",
                    "TokioClock::call_later needs a Tokio runtime; the call was cancelled \
                     (use a runtime, TokioClock::with_handle, or a ManualClock)"
                );
                let _ = call.cancel();
            }
        }
        call
    }
}

impl fmt::Debug for TokioClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioClock")
            .field("now", &self.now())
            .field("has_handle", &self.handle.is_some())
            .finish()
    }
}

/// The task behind one TokioClock call: sleeps until due, waking early when
/// the call is reset or cancelled.
fn run_tokio_call(call: Arc<CallShared>) -> impl Future<Output = ()> + Send + 'static {
    // Made here, not in the body: the task may be dropped before its first
    // poll.
    let unrun = Unrun(call.clone());
    async move {
        let _unrun = unrun;
        sleep_and_run(&call).await;
    }
}

/// Goes with a TokioClock call's task. If the task is dropped before the
/// call ran (its runtime shut down), the call is cancelled: it can never
/// run, and its function, with whatever it holds (a Resolver, often), is
/// dropped now instead of living on in the `DelayedCall` handles.
struct Unrun(Arc<CallShared>);

impl Drop for Unrun {
    fn drop(&mut self) {
        let func = {
            let mut st = self.0.state.lock();
            if st.status == Status::Pending {
                st.status = Status::Cancelled;
                st.func.take()
            } else {
                None
            }
        };
        drop(func); // outside the call's lock: it may run user code
    }
}

async fn sleep_and_run(call: &CallShared) {
    let Backend::Tokio { epoch, notify } = &call.backend else {
        return;
    };
    loop {
        let deadline = {
            let st = call.state.lock();
            if st.status != Status::Pending {
                return;
            }
            *epoch + st.time
        };
        let sleep = pin!(tokio::time::sleep_until(deadline));
        let woken = pin!(notify.notified());
        if let futures::future::Either::Right(_) = futures::future::select(sleep, woken).await {
            continue; // reset or cancelled: look again
        }
        let func = {
            let mut st = call.state.lock();
            if st.status == Status::Pending && *epoch + st.time <= tokio::time::Instant::now() {
                st.status = Status::Called;
                st.func.take()
            } else {
                None
            }
        };
        if let Some(func) = func {
            run_guarded(func);
            return;
        }
    }
}
