//! [`Deferred::add_timeout`]: cancel a Deferred that takes too long
//! (Twisted's `Deferred.addTimeout`).
//!
//! The semantics are Twisted's, exactly:
//!
//! * the timer starts when `add_timeout` is called, and covers only the
//!   callbacks added **before** it: it is disarmed when the chain reaches the
//!   point where `add_timeout` was called, so later callbacks (and the
//!   Deferreds they return) are never cancelled by it;
//! * on timeout the Deferred is cancelled (its canceller runs first, or the
//!   cancel goes to the Deferred it is waiting on); a resulting
//!   [`CancelledError`] becomes [`TimeoutError`]. A value or another failure
//!   produced by the canceller passes through unchanged;
//! * a manual cancel before the deadline stays a `CancelledError`;
//! * several timeouts on one chain are independent, each covering its own
//!   prefix (e.g. a connect timeout, then a query timeout).
//!
//! ```
//! use std::time::Duration;
//! use tokio_deferred::{Deferred, ManualClock, TimeoutError};
//!
//! let clock = ManualClock::new();
//! let (d, _resolver) = Deferred::<u32>::new();
//! let d = d.add_timeout_with_clock(Duration::from_secs(10), &clock);
//! clock.advance(Duration::from_secs(15));
//! assert!(d.try_take().unwrap().unwrap_err().is::<TimeoutError>());
//! ```
//!
//! On the runtime's clock (Tokio's paused clock in tests):
//!
//! ```
//! use std::time::Duration;
//! use tokio_deferred::{defer_later, TimeoutError};
//!
//! #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let slow = defer_later(Duration::from_secs(60), || Ok("too late"));
//!     let d = slow.add_timeout(Duration::from_secs(5));
//!     assert!(d.await.unwrap_err().is::<TimeoutError>());
//! }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::deferred::IntoOutcome;
use crate::error::{CancelledError, TimeoutError};
use crate::time::clock::{Clock, TokioClock};
use crate::{Deferred, Failure};

/// Twisted's `_cancelledToTimedOutError`.
fn cancelled_to_timed_out<T>(r: Result<T, Failure>, timeout: Duration) -> Result<T, Failure> {
    match r {
        Err(f) if f.is::<CancelledError>() => Err(Failure::new(TimeoutError { timeout })),
        other => other,
    }
}

impl<T: Send + 'static> Deferred<T> {
    /// Cancels this Deferred if it has not fired `timeout` from now, on the
    /// default [`TokioClock`]; a resulting [`CancelledError`] becomes a
    /// [`TimeoutError`]. See the [module docs](crate::timeout) for the exact
    /// rules.
    ///
    /// Outside a Tokio runtime the timer cannot be scheduled and never fires
    /// (a `tracing` error says so); use
    /// [`add_timeout_with_clock`](Self::add_timeout_with_clock) there.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio_deferred::{Deferred, TimeoutError};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (d, _resolver) = Deferred::<String>::new();
    /// let err = d.add_timeout(Duration::from_secs(5)).await.unwrap_err();
    /// assert_eq!(err.downcast_ref::<TimeoutError>().unwrap().timeout, Duration::from_secs(5));
    /// # }
    /// ```
    pub fn add_timeout(self, timeout: Duration) -> Deferred<T> {
        self.add_timeout_with_clock(timeout, &TokioClock::new())
    }

    /// [`add_timeout`](Self::add_timeout) on a given clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio_deferred::{Deferred, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let (d, resolver) = Deferred::<u8>::new();
    /// let d = d.add_timeout_with_clock(Duration::from_secs(5), &clock)
    ///     .add_callback(|n| Ok(n + 1));
    /// resolver.callback(1).unwrap(); // fires first: the timer is disarmed
    /// assert!(clock.pending_calls().is_empty());
    /// assert_eq!(d.try_take().unwrap().unwrap(), 2);
    /// ```
    pub fn add_timeout_with_clock(self, timeout: Duration, clock: &dyn Clock) -> Deferred<T> {
        self.add_timeout_with(timeout, clock, cancelled_to_timed_out)
    }

    /// [`add_timeout`](Self::add_timeout) with Twisted's `onTimeoutCancel`:
    /// when (and only when) the timer fired, `on_timeout_cancel` gets the
    /// result the cancellation produced and the timeout, and its return
    /// value (`Ok`, `Err` or a `Deferred`) replaces the result. It is called
    /// even if the canceller turned the cancellation into a success.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio_deferred::{Deferred, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let (d, _resolver) = Deferred::<&str>::new();
    /// let d = d.add_timeout_with(Duration::from_secs(1), &clock, |_r, _timeout| Ok("fallback"));
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(d.try_take().unwrap().unwrap(), "fallback");
    /// ```
    pub fn add_timeout_with<F, R>(
        self,
        timeout: Duration,
        clock: &dyn Clock,
        on_timeout_cancel: F,
    ) -> Deferred<T>
    where
        F: FnOnce(Result<T, Failure>, Duration) -> R + Send + 'static,
        R: IntoOutcome<Output = T>,
    {
        let timed_out = Arc::new(AtomicBool::new(false));
        let flag = timed_out.clone();
        let target = self.cancel_handle();
        let call = clock.call_later(timeout, move || {
            flag.store(true, Ordering::SeqCst);
            target.cancel();
        });
        self.add_both(move |r: Result<T, Failure>| -> Deferred<T> {
            if timed_out.load(Ordering::SeqCst) {
                crate::maybe_deferred(move || on_timeout_cancel(r, timeout))
            } else {
                match r {
                    Ok(v) => crate::succeed(v),
                    Err(f) => crate::fail(f),
                }
            }
        })
        .add_both(move |r: Result<T, Failure>| {
            if call.active() {
                let _ = call.cancel();
            }
            r
        })
    }
}
