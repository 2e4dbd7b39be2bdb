//! [`LoopingCall`]: call a function repeatedly, every `interval` (Twisted's
//! `task.LoopingCall`).
//!
//! ```
//! use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
//! use std::time::Duration;
//! use tokio_deferred::{LoopingCall, ManualClock};
//!
//! let clock = ManualClock::new();
//! let runs = Arc::new(AtomicU32::new(0));
//! let r = runs.clone();
//! let lc = LoopingCall::new(move || {
//!     r.fetch_add(1, Ordering::SeqCst);
//!     Ok(())
//! })
//! .with_clock(clock.clone());
//! let done = lc.start(Duration::from_secs(1), true).unwrap(); // runs once now
//! clock.pump(&[Duration::from_secs(1); 3]);
//! assert_eq!(runs.load(Ordering::SeqCst), 4);
//! lc.stop().unwrap();
//! assert!(done.try_take().unwrap().is_ok()); // fires with the LoopingCall
//! ```
//!
//! # Schedule
//!
//! Runs sit on a fixed grid measured from the start time: after a run
//! finishes at time `t`, the next is due at the next grid point after `t`.
//! Slots missed because a run took long (or the clock jumped) are
//! **skipped**, not replayed; [`LoopingCall::with_count`] tells the function
//! how many intervals went by. If the function returns a Deferred, nothing
//! is scheduled until it fires, so runs never overlap.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::deferred::IntoOutcome;
use crate::deferred::resolver::OwnedResolver;
use crate::error::LoopingCallError;
use crate::loom::Mutex;
use crate::time::clock::{Clock, DelayedCall, TokioClock};
use crate::{Deferred, Failure, maybe_deferred};

type LoopFn = Box<dyn FnMut(u64) -> Deferred<()> + Send + 'static>;

struct LoopState {
    clock: Arc<dyn Clock>,
    running: bool,
    interval: Duration,
    start_time: Duration,
    run_at_start: bool,
    /// The pending timer for the next run, if any.
    call: Option<DelayedCall>,
    /// Fires the Deferred returned by `start`.
    resolver: Option<OwnedResolver<LoopingCall>>,
    /// For `with_count`: when the function last ran.
    last_time: Option<Duration>,
    with_count: bool,
}

struct LoopInner {
    state: Mutex<LoopState>,
    /// The function; taken out while it runs so no lock is held.
    func: Mutex<Option<LoopFn>>,
}

/// Calls a function repeatedly on a fixed schedule: Twisted's
/// `task.LoopingCall`.
///
/// The function returns `Ok(_)`, `Err(failure)` or a `Deferred` (its value
/// is ignored). A failure (or panic) stops the loop and fails the Deferred
/// returned by [`start`](Self::start); [`stop`](Self::stop) fires that
/// Deferred with the `LoopingCall`. `LoopingCall` is a cheap handle: clones
/// control the same loop.
///
/// The clock is the default [`TokioClock`] unless
/// [`with_clock`](Self::with_clock) sets another one.
#[derive(Clone)]
pub struct LoopingCall {
    inner: Arc<LoopInner>,
}

impl LoopingCall {
    fn from_fn(f: LoopFn, with_count: bool) -> Self {
        LoopingCall {
            inner: Arc::new(LoopInner {
                state: Mutex::new(LoopState {
                    clock: Arc::new(TokioClock::new()),
                    running: false,
                    interval: Duration::ZERO,
                    start_time: Duration::ZERO,
                    run_at_start: false,
                    call: None,
                    resolver: None,
                    last_time: None,
                    with_count,
                }),
                func: Mutex::new(Some(f)),
            }),
        }
    }

    /// A loop calling `f` (Twisted's `LoopingCall(f)`).
    pub fn new<F, R>(mut f: F) -> Self
    where
        F: FnMut() -> R + Send + 'static,
        R: IntoOutcome,
    {
        Self::from_fn(
            Box::new(move |_| maybe_deferred(&mut f).add_callback(|_| Ok(()))),
            false,
        )
    }

    /// A loop calling `f` with the number of intervals that went by since
    /// its last call (Twisted's `LoopingCall.withCount`). The count is at
    /// least 1, counts skipped slots, and is always 1 when the interval is
    /// zero.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use tokio_deferred::{LoopingCall, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let counts = Arc::new(Mutex::new(Vec::new()));
    /// let c = counts.clone();
    /// let lc = LoopingCall::with_count(move |n| { c.lock().unwrap().push(n); Ok(()) })
    ///     .with_clock(clock.clone());
    /// let _done = lc.start(Duration::from_secs(1), true).unwrap();
    /// clock.advance(Duration::from_millis(3500)); // three slots pass before it runs
    /// assert_eq!(*counts.lock().unwrap(), [1, 3]);
    /// ```
    pub fn with_count<F, R>(mut f: F) -> Self
    where
        F: FnMut(u64) -> R + Send + 'static,
        R: IntoOutcome,
    {
        Self::from_fn(
            Box::new(move |n| maybe_deferred(|| f(n)).add_callback(|_| Ok(()))),
            true,
        )
    }

    /// Sets the clock the loop runs on (Twisted's `lc.clock = clock`). Call
    /// it before [`start`](Self::start).
    pub fn with_clock(self, clock: impl Clock) -> Self {
        self.inner.state.lock().clock = Arc::new(clock);
        self
    }

    /// Starts the loop: runs the function every `interval`, first right
    /// away (inside this call) if `now` is true, else after one interval
    /// (Twisted's `start(interval, now)`).
    ///
    /// Returns a Deferred that fires with this `LoopingCall` when the loop
    /// is [stopped](Self::stop), or fails with the function's failure.
    ///
    /// # Errors
    ///
    /// [`LoopingCallError::AlreadyRunning`] if the loop is running. (A
    /// negative interval, Twisted's `ValueError`, cannot be expressed.)
    pub fn start(
        &self,
        interval: Duration,
        now: bool,
    ) -> Result<Deferred<LoopingCall>, LoopingCallError> {
        let (d, resolver) = Deferred::new();
        let start_time = {
            let mut st = self.inner.state.lock();
            if st.running {
                return Err(LoopingCallError::AlreadyRunning);
            }
            st.running = true;
            st.resolver = Some(OwnedResolver::new(
                resolver,
                "tokio_deferred::LoopingCall::start",
            ));
            st.start_time = st.clock.now();
            st.interval = interval;
            st.run_at_start = now;
            st.last_time = None;
            st.start_time
        };
        if now {
            self.run_once();
        } else {
            self.schedule_from(start_time);
        }
        Ok(d)
    }

    /// Stops the loop (Twisted's `stop()`): the pending run is cancelled and
    /// the Deferred from [`start`](Self::start) fires with this
    /// `LoopingCall`. If the function's Deferred is still outstanding, the
    /// start Deferred fires when it completes.
    ///
    /// # Errors
    ///
    /// [`LoopingCallError::NotRunning`] if the loop is not running.
    pub fn stop(&self) -> Result<(), LoopingCallError> {
        let call = {
            let mut st = self.inner.state.lock();
            if !st.running {
                return Err(LoopingCallError::NotRunning);
            }
            st.running = false;
            st.call.take()
        };
        // If the timer already fired (a run is starting on another thread),
        // that run fires the start Deferred when it finishes.
        if call.is_some_and(|call| call.cancel().is_ok()) {
            let resolver = self.inner.state.lock().resolver.take();
            if let Some(resolver) = resolver {
                let _ = resolver.callback(self.clone());
            }
        }
        Ok(())
    }

    /// Restarts the schedule from now: the pending run is cancelled and the
    /// next one is due one interval from now (Twisted's `reset()`). Does
    /// nothing while the function's Deferred is outstanding.
    ///
    /// # Errors
    ///
    /// [`LoopingCallError::NotRunning`] if the loop is not running.
    pub fn reset(&self) -> Result<(), LoopingCallError> {
        let call = {
            let mut st = self.inner.state.lock();
            if !st.running {
                return Err(LoopingCallError::NotRunning);
            }
            st.call.take()
        };
        // A timer that already fired means a run is under way: it
        // reschedules itself, so there is nothing to restart.
        if call.is_some_and(|call| call.cancel().is_ok()) {
            let now = {
                let mut st = self.inner.state.lock();
                st.start_time = st.clock.now();
                st.start_time
            };
            self.schedule_from(now);
        }
        Ok(())
    }

    /// Whether the loop is running (Twisted's `running`).
    pub fn is_running(&self) -> bool {
        self.inner.state.lock().running
    }

    /// The interval given to [`start`](Self::start).
    pub fn interval(&self) -> Duration {
        self.inner.state.lock().interval
    }

    /// When the current schedule started, on the loop's clock (Twisted's
    /// `starttime`).
    pub fn start_time(&self) -> Duration {
        self.inner.state.lock().start_time
    }

    /// Schedules the next run on the grid, as seen from `when` (Twisted's
    /// `_scheduleFrom`).
    fn schedule_from(&self, when: Duration) {
        let (clock, delay) = {
            let st = self.inner.state.lock();
            let delay = if st.interval.is_zero() {
                Duration::ZERO
            } else {
                let running_for = when.saturating_sub(st.start_time).as_nanos();
                let interval = st.interval.as_nanos();
                let rem = running_for % interval;
                // On a grid point: wait a whole interval.
                nanos(interval - rem)
            };
            (st.clock.clone(), delay)
        };
        let me = self.clone();
        let call = clock.call_later(delay, move || me.run_once());
        let mut st = self.inner.state.lock();
        if st.running {
            st.call = Some(call);
        } else {
            // Stopped while we scheduled: do not run again.
            drop(st);
            let _ = call.cancel();
        }
    }

    /// Which interval `t` falls in (Twisted's `_intervalOf`), in nanoseconds
    /// arithmetic so boundaries are exact. Like Twisted's `int(elapsed /
    /// interval)`, it truncates toward zero: a time less than one interval
    /// before the start is in interval 0, not -1.
    fn interval_of(t: i128, start: i128, interval: i128) -> i128 {
        (t - start) / interval
    }

    /// One run (Twisted's `__call__`).
    fn run_once(&self) {
        // What to call the function with; `None`: skip this run.
        let count = {
            let mut st = self.inner.state.lock();
            st.call = None;
            if st.with_count {
                let now = st.clock.now();
                if st.interval.is_zero() {
                    st.last_time = Some(now);
                    Some(1)
                } else {
                    let interval = st.interval.as_nanos() as i128;
                    let start = st.start_time.as_nanos() as i128;
                    let last = match st.last_time {
                        Some(t) => t.as_nanos() as i128,
                        None if st.run_at_start => start - interval,
                        None => start,
                    };
                    let count = Self::interval_of(now.as_nanos() as i128, start, interval)
                        - Self::interval_of(last, start, interval);
                    if count > 0 {
                        st.last_time = Some(now);
                        Some(count as u64)
                    } else {
                        // No whole interval went by: as in Twisted, the
                        // function is not called this time.
                        None
                    }
                }
            } else {
                // A plain loop's function ignores the count.
                Some(1)
            }
        };
        let func = count.and_then(|_| self.inner.func.lock().take());
        let d = match (func, count) {
            (Some(mut func), Some(count)) => {
                let d = maybe_deferred(|| func(count));
                *self.inner.func.lock() = Some(func);
                d
            }
            // Skipped, or the function restarts its own loop from inside
            // itself (that nested run is skipped).
            _ => crate::succeed(()),
        };
        let on_ok = self.clone();
        let on_err = self.clone();
        // The chain ends here: its result (always Ok) is not needed.
        drop(d.add_callbacks(
            move |()| {
                on_ok.finished(Ok(()));
                Ok(())
            },
            move |f: Failure| {
                on_err.finished(Err(f));
                Ok(())
            },
        ));
    }

    /// The function's Deferred fired.
    fn finished(&self, result: Result<(), Failure>) {
        match result {
            Ok(()) => {
                let (running, now, resolver) = {
                    let mut st = self.inner.state.lock();
                    if st.running {
                        (true, st.clock.now(), None)
                    } else {
                        (false, Duration::ZERO, st.resolver.take())
                    }
                };
                if running {
                    self.schedule_from(now);
                } else if let Some(resolver) = resolver {
                    let _ = resolver.callback(self.clone());
                }
            }
            Err(failure) => {
                let resolver = {
                    let mut st = self.inner.state.lock();
                    st.running = false;
                    st.resolver.take()
                };
                if let Some(resolver) = resolver {
                    let _ = resolver.errback(failure);
                }
            }
        }
    }
}

fn nanos(n: u128) -> Duration {
    let secs = (n / 1_000_000_000) as u64;
    Duration::new(secs, (n % 1_000_000_000) as u32)
}

impl fmt::Debug for LoopingCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.state.lock();
        f.debug_struct("LoopingCall")
            .field("running", &st.running)
            .field("interval", &st.interval)
            .field("start_time", &st.start_time)
            .field("with_count", &st.with_count)
            .finish()
    }
}
