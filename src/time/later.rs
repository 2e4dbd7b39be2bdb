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

use std::sync::Arc;
use std::time::Duration;

use crate::deferred::IntoOutcome;
use crate::deferred::resolver::OwnedResolver;
use crate::error::{CancelledError, RuntimeRequiredError};
use crate::loom::Mutex;
use crate::time::clock::{Clock, DelayedCall};
use crate::{Deferred, Resolver, fail};

mod driver;

/// A Deferred that fires with `f()` after `delay`, on the Tokio clock of
/// the current runtime (Twisted's `deferLater(reactor, delay, f)`).
///
/// `f` returns `Ok(value)`, `Err(failure)` or a `Deferred` to wait for; a
/// panic in `f` becomes a failure. Cancelling the Deferred before the delay
/// cancels the timer (so `f` never runs) and fails it with
/// [`CancelledError`].
///
/// Calls due at the same time fire in the order they were made. All the
/// pending calls of a runtime are fired by one timer task of that runtime
/// (not one task per call), on the runtime's threads; a paused clock
/// (`start_paused`, `tokio::time::advance`) drives them. If the runtime
/// shuts down first, the Deferred fails with
/// [`ResolverDroppedError`](crate::ResolverDroppedError) and `f` is dropped
/// without running.
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
    // No task per call: the call is queued on the runtime's timer driver
    // (see `driver`). The canceller fails the Deferred itself, so `f` never
    // runs, and lets the driver drop the entry early. It captures nothing,
    // so it is not allocated.
    let (d, resolver) = Deferred::<()>::with_canceller(|r: &Resolver<()>| {
        let _ = r.errback(CancelledError::new());
        driver::cancelled();
    });
    let d = d.add_callback(move |()| f());
    driver::schedule(&handle, delay, resolver);
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
        let call = for_cancel.lock().take();
        if let Some(call) = call {
            let _ = call.cancel();
        }
    });
    let d = d.add_callback(move |()| f());
    let resolver = OwnedResolver::new(resolver, "tokio_deferred::defer_later_with_clock");
    let call = clock.call_later(delay, move || {
        let _ = resolver.callback(());
    });
    *slot.lock() = Some(call);
    d
}
