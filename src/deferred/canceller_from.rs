//! [`Deferred::with_canceller_from`]: a Deferred whose canceller is built
//! from its own Resolver (Twisted's `d = Deferred(lambda _: call.cancel());
//! call = reactor.callLater(5, d.callback, v)`).
//!
//! ```
//! use std::time::Duration;
//! use tokio_deferred::{CancelledError, Deferred, Resolver, TokioClock};
//!
//! #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let clock = TokioClock::new();
//!     let d = Deferred::with_canceller_from(|resolver: Resolver<&str>| {
//!         let call = clock.call_later(Duration::from_secs(5), move || {
//!             let _ = resolver.callback("too late");
//!         });
//!         move |_: &Resolver<&str>| {
//!             let _ = call.cancel();
//!         }
//!     });
//!     d.cancel(); // stops the timer; the Deferred fails with CancelledError
//!     assert!(d.await.unwrap_err().is::<CancelledError>());
//! }
//! ```

use std::panic::{AssertUnwindSafe, Location, catch_unwind};

use crate::deferred::state::{Canceller, Inner};
use crate::{Deferred, Failure, Resolver};

impl<T: Send + 'static> Deferred<T> {
    /// A new unfired Deferred whose canceller is made from its own
    /// [`Resolver`]: `make` gets the Resolver, starts whatever will fire it
    /// (a timer, a request, a task) and returns the canceller that stops
    /// that thing. It is Twisted's
    ///
    /// ```python
    /// d = Deferred(lambda _: call.cancel())
    /// call = reactor.callLater(5, d.callback, v)
    /// ```
    ///
    /// where the canceller must reach something made *from* the Deferred,
    /// which [`with_canceller`](Self::with_canceller) cannot express without
    /// a shared slot (it wants the canceller before the Resolver exists).
    ///
    /// `make` runs at once, in this call. The canceller follows
    /// [`with_canceller`](Self::with_canceller)'s rules: it runs at most
    /// once, on the first [`cancel`](Self::cancel) before the Deferred
    /// fires, and gets a Resolver of its own; if it does not fire the
    /// Deferred, the Deferred fails with
    /// [`CancelledError`](crate::CancelledError). If `make` already fired
    /// the Deferred, the canceller is dropped unused. A panic in `make`
    /// fails the Deferred with the panic.
    ///
    /// # Examples
    ///
    /// Twisted's `callLater` canceller, on a [`ManualClock`](crate::ManualClock):
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio_deferred::{CancelledError, Deferred, ManualClock, Resolver};
    ///
    /// let clock = ManualClock::new();
    /// let d = Deferred::with_canceller_from(|resolver: Resolver<u32>| {
    ///     let call = clock.call_later(Duration::from_secs(5), move || {
    ///         let _ = resolver.callback(42);
    ///     });
    ///     move |_: &Resolver<u32>| {
    ///         let _ = call.cancel();
    ///     }
    /// });
    /// assert_eq!(clock.pending_calls().len(), 1);
    /// d.cancel();
    /// assert!(clock.pending_calls().is_empty()); // the timer is gone
    /// assert!(d.try_take().unwrap().unwrap_err().is::<CancelledError>());
    /// ```
    #[track_caller]
    pub fn with_canceller_from<M, C>(make: M) -> Deferred<T>
    where
        M: FnOnce(Resolver<T>) -> C,
        C: FnOnce(&Resolver<T>) + Send + 'static,
    {
        let at = Location::caller();
        let inner = Inner::new(Canceller::None, at);
        let d = Deferred::from_core(inner.clone());
        // Kept while `make` runs: if it panics, its Resolver is dropped by
        // the unwind, and the Deferred must fail with the panic, not with
        // ResolverDroppedError.
        let keep = Resolver { inner };
        let resolver = Resolver::from_inner(keep.inner.clone());
        match catch_unwind(AssertUnwindSafe(move || make(resolver))) {
            Ok(canceller) => keep.inner.set_canceller(Box::new(canceller)),
            Err(payload) => {
                let _ = keep.errback(Failure::from_panic(payload));
            }
        }
        d
    }
}
