//! [`Deferred`]: the consumer side of Twisted's `Deferred`.
//!
//! ```
//! use tokio_deferred::{Deferred, Failure};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (d, resolver) = Deferred::<String>::new();
//! let d = d
//!     .add_callback(|s: String| {
//!         let n: u32 = s.parse()?; // a ParseIntError switches to the errback path
//!         Ok(n)
//!     })
//!     .add_errback(|f: Failure| {
//!         println!("could not parse: {f}");
//!         Ok(0)
//!     })
//!     .add_callback(|n| Ok(n + 1));
//! resolver.callback("41".to_owned()).unwrap();
//! assert_eq!(d.await.unwrap(), 42);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use crate::Failure;
use crate::resolver::Resolver;
use crate::state::{
    CallbackLink, Canceller, ChainLink, Core, Inner, Node, Outcome, Res, ResultState, cancel_core,
    run_chain, take_from,
};

mod private {
    pub trait Sealed {}
}

/// What a callback or errback may return: `Ok(value)` or `Err(failure)`
/// (a `Result<U, Failure>`, so `?` works on any error), or a
/// [`Deferred<U>`] whose result the chain then waits for (Twisted's implicit
/// chaining).
///
/// The error type is fixed to [`Failure`], which lets Rust infer closures
/// like `|x| Ok(x + 1)` with no annotation.
pub trait IntoOutcome: private::Sealed {
    /// The type of the next value in the chain.
    type Output: Send + 'static;
    /// Converts into the internal outcome.
    #[doc(hidden)]
    fn into_outcome(self) -> Outcome<Self::Output>;
}

impl<U: Send + 'static> private::Sealed for Result<U, Failure> {}
impl<U: Send + 'static> IntoOutcome for Result<U, Failure> {
    type Output = U;
    fn into_outcome(self) -> Outcome<U> {
        Outcome::Ready(self)
    }
}

impl<U: Send + 'static> private::Sealed for Deferred<U> {}
impl<U: Send + 'static> IntoOutcome for Deferred<U> {
    type Output = U;
    fn into_outcome(self) -> Outcome<U> {
        Outcome::Chain(self)
    }
}

/// A result that is not available yet, with a chain of callbacks and
/// errbacks to process it: Twisted's `twisted.internet.defer.Deferred`.
///
/// `Deferred<T>` is the consumer side. It is made together with a
/// [`Resolver<T>`] that fires it ([`Deferred::new`]), or already fired
/// ([`succeed`](crate::succeed), [`fail`](crate::fail)), or from a future
/// ([`ensure_deferred`](crate::ensure_deferred)).
///
/// * **Callbacks.** [`add_callback`](Self::add_callback),
///   [`add_errback`](Self::add_errback), [`add_both`](Self::add_both) and
///   [`add_callbacks`](Self::add_callbacks) consume the Deferred and return
///   the Deferred for the rest of the chain, retyped to what the callback
///   returns. Callbacks run in FIFO order, synchronously, in the thread that
///   fires the Deferred (or, if it already fired, in the thread that adds
///   them). A callback returns `Ok(next)`, `Err(failure)` (or uses `?`), or a
///   `Deferred<U>` to wait for.
/// * **Awaiting.** `Deferred<T>` is a `Future<Output = Result<T, Failure>>`:
///   `.await` waits until the chain has finished (not paused, not waiting on
///   another Deferred) and takes the result.
/// * **Cancelling.** [`cancel`](Self::cancel) follows Twisted exactly.
///   Dropping a Deferred does not cancel it (use
///   [`cancel_on_drop`](Self::cancel_on_drop) for that).
/// * **Failures.** A panic in a callback becomes a [`Failure`]. A failure
///   that nobody consumes is reported once, as a `tracing` error event with
///   target `tokio_deferred::unhandled`, when the last handle goes away.
///
/// # What Rust does better than Twisted here
///
/// * The type changes with the chain: `Deferred<String>` →
///   `add_callback(parse)` → `Deferred<u32>`, checked at compile time.
/// * Implicit chaining *and* [`chain_deferred`](Self::chain_deferred) run
///   iteratively: a million nested Deferreds need no more stack than one.
/// * A Deferred returned from a callback is moved into the chain, so
///   nobody can add callbacks to it afterwards (Twisted's #6171).
/// * An unbalanced [`unpause`](Self::unpause) is harmless (Twisted #12726).
/// * A canceller that panics still leaves the Deferred failed (#9534).
#[must_use = "a Deferred's result (and any failure in it) is lost if it is dropped; \
              await it, add callbacks, or keep it"]
pub struct Deferred<T> {
    core: Option<Arc<dyn Core>>,
    /// This handle took the final result: nothing is left to report on drop,
    /// so `Drop` skips the state's lock.
    taken: AtomicBool,
    _marker: PhantomData<fn() -> T>,
}

impl<T: Send + 'static> Deferred<T> {
    pub(crate) fn from_core(core: Arc<dyn Core>) -> Self {
        Deferred {
            core: Some(core),
            taken: AtomicBool::new(false),
            _marker: PhantomData,
        }
    }

    /// Takes the shared state out without running `Drop` (the chain that
    /// takes it over becomes the consumer of the result).
    pub(crate) fn into_core(mut self) -> Option<Arc<dyn Core>> {
        self.core.take()
    }

    /// A new unfired Deferred and the [`Resolver`] that fires it.
    ///
    /// ```
    /// use tokio_deferred::Deferred;
    ///
    /// let (d, resolver) = Deferred::<u8>::new();
    /// assert!(!d.is_called());
    /// resolver.callback(7).unwrap();
    /// assert!(d.is_called());
    /// ```
    #[track_caller]
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> (Deferred<T>, Resolver<T>) {
        let inner = Inner::new(Canceller::None, Location::caller());
        (Deferred::from_core(inner.clone()), Resolver { inner })
    }

    /// A new unfired Deferred whose [`cancel`](Self::cancel) calls
    /// `canceller` (Twisted's `Deferred(canceller)`).
    ///
    /// The canceller runs at most once. It may fire the Deferred through the
    /// resolver it is given (then that result stands); if it does not, the
    /// Deferred fails with [`CancelledError`](crate::CancelledError). If it
    /// panics, the Deferred fails with the panic.
    ///
    /// ```
    /// use tokio_deferred::Deferred;
    ///
    /// let (d, _resolver) = Deferred::<&str>::with_canceller(|r| {
    ///     r.callback("cancelled politely").unwrap();
    /// });
    /// d.cancel();
    /// assert_eq!(d.try_take().unwrap().unwrap(), "cancelled politely");
    /// ```
    #[track_caller]
    pub fn with_canceller<F>(canceller: F) -> (Deferred<T>, Resolver<T>)
    where
        F: FnOnce(&Resolver<T>) + Send + 'static,
    {
        let inner = Inner::new(Canceller::Once(Box::new(canceller)), Location::caller());
        (Deferred::from_core(inner.clone()), Resolver { inner })
    }

    pub(crate) fn with_raw_canceller(
        canceller: Canceller<T>,
        at: &'static Location<'static>,
    ) -> (Deferred<T>, Resolver<T>) {
        let inner = Inner::new(canceller, at);
        (Deferred::from_core(inner.clone()), Resolver { inner })
    }

    fn push<U, G>(mut self, g: G) -> Deferred<U>
    where
        U: Send + 'static,
        G: FnOnce(Res<T>) -> Outcome<U> + Send + 'static,
    {
        let Some(core) = self.core.take() else {
            return crate::fail(crate::error::ResultTakenError {});
        };
        if core.add_link(Node::boxed(CallbackLink::new(g))) {
            run_chain(core.clone());
        }
        Deferred::from_core(core)
    }

    /// Adds a callback: `f` gets the value when the chain succeeds; a
    /// failure skips it (Twisted's `addCallback`).
    ///
    /// `f` returns `Ok(next)`, `Err(failure)` (or fails with `?`), or a
    /// `Deferred` for the chain to wait on.
    ///
    /// ```
    /// use tokio_deferred::succeed;
    ///
    /// let d = succeed(2)
    ///     .add_callback(|x| Ok(x * 10))           // Deferred<i32>
    ///     .add_callback(|x| Ok(format!("#{x}")))  // Deferred<String>
    ///     .add_callback(|s| succeed(s.len()));    // waits on a Deferred<usize>
    /// assert_eq!(d.try_take().unwrap().unwrap(), 3);
    /// ```
    pub fn add_callback<F, R>(self, f: F) -> Deferred<R::Output>
    where
        F: FnOnce(T) -> R + Send + 'static,
        R: IntoOutcome,
    {
        self.push(move |r| match r {
            Ok(v) => f(v).into_outcome(),
            Err(e) => Outcome::Ready(Err(e)),
        })
    }

    /// Adds an errback: `f` gets the failure when the chain fails; a value
    /// skips it (Twisted's `addErrback`). Returning `Ok` recovers: the chain
    /// goes back to callbacks.
    ///
    /// ```
    /// use tokio_deferred::{fail, Failure};
    ///
    /// let d = fail::<u32>(Failure::msg("boom"))
    ///     .add_errback(|f: Failure| {
    ///         assert_eq!(f.to_string(), "boom");
    ///         Ok(0)
    ///     });
    /// assert_eq!(d.try_take().unwrap().unwrap(), 0);
    /// ```
    pub fn add_errback<F, R>(self, f: F) -> Deferred<T>
    where
        F: FnOnce(Failure) -> R + Send + 'static,
        R: IntoOutcome<Output = T>,
    {
        self.push(move |r| match r {
            Ok(v) => Outcome::Ready(Ok(v)),
            Err(e) => f(e).into_outcome(),
        })
    }

    /// Adds a function that gets the result either way (Twisted's `addBoth`).
    ///
    /// ```
    /// use tokio_deferred::succeed;
    ///
    /// let d = succeed(1).add_both(|r: Result<i32, _>| {
    ///     println!("finished: {r:?}"); // e.g. release a resource
    ///     r
    /// });
    /// assert_eq!(d.try_take().unwrap().unwrap(), 1);
    /// ```
    pub fn add_both<F, R>(self, f: F) -> Deferred<R::Output>
    where
        F: FnOnce(Result<T, Failure>) -> R + Send + 'static,
        R: IntoOutcome,
    {
        self.push(move |r| f(r).into_outcome())
    }

    /// Adds a callback and an errback as one pair (Twisted's
    /// `addCallbacks`): exactly one of them runs, and the errback does not see
    /// failures raised by the callback.
    ///
    /// ```
    /// use tokio_deferred::{succeed, Failure};
    ///
    /// let d = succeed(5).add_callbacks(
    ///     |n| Ok(n.to_string()),
    ///     |f: Failure| Ok(format!("error: {f}")),
    /// );
    /// assert_eq!(d.try_take().unwrap().unwrap(), "5");
    /// ```
    pub fn add_callbacks<F, G, R1, R2>(self, callback: F, errback: G) -> Deferred<R1::Output>
    where
        F: FnOnce(T) -> R1 + Send + 'static,
        G: FnOnce(Failure) -> R2 + Send + 'static,
        R1: IntoOutcome,
        R2: IntoOutcome<Output = R1::Output>,
    {
        self.push(move |r| match r {
            Ok(v) => callback(v).into_outcome(),
            Err(e) => errback(e).into_outcome(),
        })
    }

    /// Feeds this Deferred's result into another one, through its resolver
    /// (Twisted's `chainDeferred`). Returns the rest of this chain, which
    /// carries `Ok(())` once the result was handed over, or a failure if the
    /// target had already fired.
    ///
    /// Unlike Twisted's (which recurses and overflows near 330 links), a
    /// chain of any length runs in constant stack.
    ///
    /// ```
    /// use tokio_deferred::{Deferred, succeed};
    ///
    /// let (target, resolver) = Deferred::<u32>::new();
    /// let rest = succeed(9).chain_deferred(resolver);
    /// assert_eq!(target.try_take().unwrap().unwrap(), 9);
    /// assert!(rest.try_take().unwrap().is_ok());
    /// ```
    #[track_caller]
    pub fn chain_deferred(mut self, target: Resolver<T>) -> Deferred<()> {
        let at = Location::caller();
        let Some(core) = self.core.take() else {
            return crate::fail(crate::error::ResultTakenError {});
        };
        if core.add_link(Node::boxed(ChainLink::new(target, at))) {
            run_chain(core.clone());
        }
        Deferred::from_core(core)
    }

    /// Stops the callbacks from running until a matching
    /// [`unpause`](Self::unpause) (Twisted's `pause`). Pauses are counted.
    ///
    /// As in Twisted, pausing from inside one of this Deferred's own
    /// callbacks does not stop the callbacks already queued behind it in the
    /// current run; callbacks added afterwards wait.
    pub fn pause(&self) {
        if let Some(core) = &self.core {
            core.pause();
        }
    }

    /// Undoes one [`pause`](Self::pause); at zero, runs the callbacks that
    /// were held back. An unpause with no pause is ignored (the count never
    /// goes negative).
    ///
    /// ```
    /// use tokio_deferred::succeed;
    /// use std::sync::{Arc, Mutex};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let d = succeed(1);
    /// d.pause();
    /// let s = seen.clone();
    /// let d = d.add_callback(move |x| { s.lock().unwrap().push(x); Ok(x) });
    /// assert!(seen.lock().unwrap().is_empty());
    /// d.unpause();
    /// assert_eq!(*seen.lock().unwrap(), [1]);
    /// ```
    pub fn unpause(&self) {
        if let Some(core) = &self.core {
            if core.unpause() {
                run_chain(core.clone());
            }
        }
    }

    /// Cancels the Deferred, exactly as Twisted's `cancel()`:
    ///
    /// * not fired yet: the canceller runs (at most once); if it did not fire
    ///   the Deferred, it fails with [`CancelledError`](crate::CancelledError).
    ///   With no canceller, it fails with `CancelledError` and exactly one
    ///   later `callback`/`errback` is accepted and dropped;
    /// * fired but waiting on a Deferred returned by a callback: the
    ///   cancellation goes to that Deferred;
    /// * otherwise: nothing happens.
    ///
    /// Never panics, and may be called any number of times.
    pub fn cancel(&self) {
        if let Some(core) = &self.core {
            cancel_core(core.clone());
        }
    }

    /// A handle that can cancel this Deferred from elsewhere (another task,
    /// a timer) without owning it. It does not keep the Deferred alive.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle {
            core: self.core.as_ref().map(Arc::downgrade),
        }
    }

    /// Wraps the Deferred in a future that cancels it when dropped before
    /// completing: for `select!` and timeouts in async code.
    ///
    /// ```
    /// use tokio_deferred::{Deferred, CancelledError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (d, _resolver) = Deferred::<u8>::new();
    /// let watcher = d.cancel_handle();
    /// let d = d.add_errback(|f| { assert!(f.is::<CancelledError>()); Ok(0) });
    /// tokio::select! {
    ///     _ = d.cancel_on_drop() => unreachable!(),
    ///     _ = tokio::task::yield_now() => {} // the Deferred loses and is cancelled
    /// }
    /// # drop(watcher);
    /// # }
    /// ```
    pub fn cancel_on_drop(self) -> CancelOnDrop<T> {
        CancelOnDrop {
            deferred: Some(self),
        }
    }

    /// Whether the Deferred has been fired (Twisted's `d.called`).
    pub fn is_called(&self) -> bool {
        self.core.as_ref().is_some_and(|c| c.snapshot().called)
    }

    /// Whether the Deferred is paused by [`pause`](Self::pause).
    pub fn is_paused(&self) -> bool {
        self.core.as_ref().is_some_and(|c| c.snapshot().paused > 0)
    }

    /// Whether the chain is waiting on a Deferred returned by a callback.
    pub fn is_waiting(&self) -> bool {
        self.core.as_ref().is_some_and(|c| c.snapshot().waiting)
    }

    /// Takes the result if the chain has finished, without waiting (like
    /// oneshot's `try_recv`). `None` while it is unfired, paused, running or
    /// waiting on another Deferred.
    ///
    /// Taking the result consumes it: a second take, an `.await`, or a
    /// callback added afterwards gets a
    /// [`ResultTakenError`](crate::ResultTakenError) failure.
    ///
    /// ```
    /// use tokio_deferred::Deferred;
    ///
    /// let (d, r) = Deferred::<i32>::new();
    /// assert!(d.try_take().is_none());
    /// r.callback(3).unwrap();
    /// assert_eq!(d.try_take().unwrap().unwrap(), 3);
    /// ```
    pub fn try_take(&self) -> Option<Result<T, Failure>> {
        let core = self.core.as_ref()?;
        if let Some(inner) = core.as_any().downcast_ref::<Inner<T>>() {
            return match inner.poll_typed(None) {
                Poll::Ready(r) => {
                    self.taken.store(true, Ordering::Relaxed);
                    Some(r)
                }
                Poll::Pending => None,
            };
        }
        let mut slot = None;
        match core.poll_take(None, &mut |src| slot = Some(take_from::<T>(src))) {
            Poll::Ready(()) => {
                self.taken.store(true, Ordering::Relaxed);
                slot
            }
            Poll::Pending => None,
        }
    }
}

impl<T: Send + 'static> Future for Deferred<T> {
    type Output = Result<T, Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(core) = self.core.as_ref() else {
            return Poll::Ready(Err(Failure::new(crate::error::ResultTakenError {})));
        };
        if let Some(inner) = core.as_any().downcast_ref::<Inner<T>>() {
            return match inner.poll_typed(Some(cx.waker())) {
                Poll::Ready(r) => {
                    self.taken.store(true, Ordering::Relaxed);
                    Poll::Ready(r)
                }
                Poll::Pending => {
                    crate::future::note_awaiting(core);
                    Poll::Pending
                }
            };
        }
        let mut slot = None;
        match core.poll_take(Some(cx.waker()), &mut |src| {
            slot = Some(take_from::<T>(src))
        }) {
            Poll::Ready(()) => {
                self.taken.store(true, Ordering::Relaxed);
                Poll::Ready(
                    slot.unwrap_or_else(|| Err(Failure::new(crate::error::ResultTakenError {}))),
                )
            }
            Poll::Pending => {
                crate::future::note_awaiting(core);
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for Deferred<T> {
    fn drop(&mut self) {
        if let Some(core) = self.core.take() {
            if !*self.taken.get_mut() {
                core.release_consumer();
            }
        }
    }
}

impl<T> fmt::Debug for Deferred<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(core) = &self.core else {
            return f.write_str("Deferred { state: \"consumed\" }");
        };
        let s = core.snapshot();
        let mut d = f.debug_struct("Deferred");
        if !s.called {
            d.field("state", &"pending");
        } else if s.running {
            d.field("state", &"running callbacks");
        } else if s.waiting {
            d.field("state", &"waiting on another Deferred");
        } else {
            match &s.result {
                ResultState::Ok => d.field("state", &"fired"),
                ResultState::Err(e) => d.field("state", &"failed").field("failure", e),
                ResultState::Empty if s.taken => d.field("state", &"result taken"),
                ResultState::Empty => d.field("state", &"fired"),
            };
        }
        d.field("callbacks", &s.callbacks);
        if s.paused > 0 {
            d.field("paused", &s.paused);
        }
        d.finish()
    }
}

/// Cancels a [`Deferred`] from elsewhere; made by
/// [`Deferred::cancel_handle`]. It holds a weak reference: once the
/// Deferred's state is gone, [`cancel`](Self::cancel) does nothing.
#[derive(Clone)]
pub struct CancelHandle {
    core: Option<Weak<dyn Core>>,
}

impl CancelHandle {
    /// Cancels the Deferred, as [`Deferred::cancel`].
    pub fn cancel(&self) {
        if let Some(core) = self.core.as_ref().and_then(Weak::upgrade) {
            cancel_core(core);
        }
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alive = self.core.as_ref().is_some_and(|w| w.strong_count() > 0);
        f.debug_struct("CancelHandle")
            .field("alive", &alive)
            .finish()
    }
}

/// A [`Deferred`] that is cancelled if dropped before it completes; made by
/// [`Deferred::cancel_on_drop`].
#[must_use = "futures do nothing unless awaited"]
pub struct CancelOnDrop<T> {
    deferred: Option<Deferred<T>>,
}

impl<T: Send + 'static> CancelOnDrop<T> {
    /// Disarms the guard and gives the Deferred back.
    pub fn into_inner(mut self) -> Option<Deferred<T>> {
        self.deferred.take()
    }
}

impl<T: Send + 'static> Future for CancelOnDrop<T> {
    type Output = Result<T, Failure>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(d) = self.deferred.as_mut() else {
            return Poll::Ready(Err(Failure::new(crate::error::ResultTakenError {})));
        };
        match Pin::new(d).poll(cx) {
            Poll::Ready(r) => {
                self.deferred = None;
                Poll::Ready(r)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for CancelOnDrop<T> {
    fn drop(&mut self) {
        if let Some(core) = self.deferred.as_ref().and_then(|d| d.core.clone()) {
            cancel_core(core);
        }
    }
}

impl<T> fmt::Debug for CancelOnDrop<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelOnDrop")
            .field("deferred", &self.deferred)
            .finish()
    }
}
