//! [`LocalDeferred::with_canceller_from`]: a LocalDeferred whose canceller
//! is built from its own Resolver.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use crate::{Failure, LocalDeferred, LocalResolver};

impl<T: 'static> LocalDeferred<T> {
    /// A new unfired LocalDeferred whose canceller is made from its own
    /// [`LocalResolver`]: `make` gets the Resolver, starts whatever will
    /// fire it, and returns the canceller that stops it (Twisted's
    /// `d = Deferred(lambda _: call.cancel()); call = reactor.callLater(5,
    /// d.callback, v)`). The rules are those of
    /// [`Deferred::with_canceller_from`](crate::Deferred::with_canceller_from).
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use tokio_deferred::{CancelledError, LocalDeferred, LocalResolver};
    ///
    /// // A one-thread "timer": a list of pending calls.
    /// let pending: Rc<RefCell<Vec<LocalResolver<u8>>>> = Rc::default();
    /// let timers = pending.clone();
    /// let d = LocalDeferred::with_canceller_from(move |resolver| {
    ///     timers.borrow_mut().push(resolver);
    ///     move |_: &LocalResolver<u8>| timers.borrow_mut().clear() // stop the timer
    /// });
    /// d.cancel();
    /// assert!(pending.borrow().is_empty());
    /// assert!(d.try_take().unwrap().unwrap_err().is::<CancelledError>());
    /// ```
    #[track_caller]
    pub fn with_canceller_from<M, C>(make: M) -> LocalDeferred<T>
    where
        M: FnOnce(LocalResolver<T>) -> C,
        C: FnOnce(&LocalResolver<T>) + 'static,
    {
        // The canceller is not known until `make` returns: the Deferred's
        // canceller runs whatever is in this slot by then.
        let slot: Rc<Cell<Option<C>>> = Rc::new(Cell::new(None));
        let from_slot = slot.clone();
        let (d, keep) = LocalDeferred::with_canceller(move |r: &LocalResolver<T>| {
            if let Some(canceller) = from_slot.take() {
                canceller(r);
            }
        });
        // `keep` stays while `make` runs, so that a panic (which drops the
        // Resolver given to `make`) fails the Deferred with the panic.
        let resolver = keep.clone();
        match catch_unwind(AssertUnwindSafe(move || make(resolver))) {
            Ok(canceller) => slot.set(Some(canceller)),
            Err(payload) => {
                let _ = keep.errback(Failure::from_panic(payload));
            }
        }
        d
    }
}
