//! [`defer_later`]: a Deferred that fires with a function's result after a
//! delay (Twisted's `task.deferLater`).
//!
//! ```
//! use std::time::Duration;
//! use tokio_deferred::defer_later;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let d = defer_later(Duration::from_secs(3), || Ok("later"));
//! assert_eq!(d.await.unwrap(), "later");
//! # }
//! ```

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::clock::{Clock, DelayedCall};
use crate::deferred::IntoOutcome;
use crate::error::RuntimeRequiredError;
use crate::{Deferred, fail};

/// A Deferred that fires with `f()` after `delay`, on the default
/// [`TokioClock`](crate::TokioClock) (Twisted's `deferLater(reactor, delay, f)`).
///
/// `f` returns `Ok(value)`, `Err(failure)` or a `Deferred` to wait for; a
/// panic in `f` becomes a failure. Cancelling the Deferred before the delay
/// cancels the timer (so `f` never runs) and fails it with
/// [`CancelledError`](crate::CancelledError).
///
/// With no Tokio runtime, the Deferred fails at once with
/// [`RuntimeRequiredError`]; use [`defer_later_with_clock`] and a
/// [`ManualClock`](crate::ManualClock) to run without one.
///
/// ```
/// use std::time::Duration;
/// use tokio_deferred::{defer_later, CancelledError};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let d = defer_later(Duration::from_secs(10), || -> Result<(), _> { unreachable!() });
/// d.cancel();
/// assert!(d.await.unwrap_err().is::<CancelledError>());
/// # }
/// ```
#[track_caller]
pub fn defer_later<F, R>(delay: Duration, f: F) -> Deferred<R::Output>
where
    F: FnOnce() -> R + Send + 'static,
    R: IntoOutcome,
{
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return fail(RuntimeRequiredError {
            what: "defer_later",
        });
    };
    // A lighter path than `defer_later_with_clock(&TokioClock::new(), ..)`:
    // one task that sleeps and fires, no `DelayedCall` (which supports
    // reset and delay, unused here). Cancelling aborts the task, so the
    // timer goes away at once. Measured in BENCHMARKS.md (timers rows).
    let abort: Arc<OnceLock<tokio::task::AbortHandle>> = Arc::new(OnceLock::new());
    let for_cancel = abort.clone();
    let (d, resolver) = Deferred::<()>::with_canceller(move |_| {
        if let Some(task) = for_cancel.get() {
            task.abort();
        }
    });
    let d = d.add_callback(move |()| f());
    // A delay too large for an Instant sleeps "forever" (as tokio's `sleep`).
    let deadline = tokio::time::Instant::now().checked_add(delay);
    let task = handle.spawn(async move {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => tokio::time::sleep(delay).await,
        }
        let _ = resolver.callback(());
    });
    let _ = abort.set(task.abort_handle());
    d
}

/// [`defer_later`] on a given clock (Twisted's `deferLater(clock, delay,
/// f)`).
///
/// ```
/// use std::time::Duration;
/// use tokio_deferred::{defer_later_with_clock, CancelledError, ManualClock};
///
/// let clock = ManualClock::new();
/// let d = defer_later_with_clock(&clock, Duration::from_secs(1), || Ok(1));
/// d.cancel();
/// assert!(clock.pending_calls().is_empty()); // the timer is gone
/// assert!(d.try_take().unwrap().unwrap_err().is::<CancelledError>());
/// ```
#[track_caller]
pub fn defer_later_with_clock<F, R>(clock: &dyn Clock, delay: Duration, f: F) -> Deferred<R::Output>
where
    F: FnOnce() -> R + Send + 'static,
    R: IntoOutcome,
{
    let slot: Arc<Mutex<Option<DelayedCall>>> = Arc::new(Mutex::new(None));
    let for_cancel = slot.clone();
    let (d, resolver) = Deferred::<()>::with_canceller(move |_| {
        let call = for_cancel.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(call) = call {
            let _ = call.cancel();
        }
    });
    let d = d.add_callback(move |()| f());
    let call = clock.call_later(delay, move || {
        let _ = resolver.callback(());
    });
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(call);
    d
}
