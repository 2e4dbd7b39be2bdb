//! [`LocalDeferred`]: a `!Send` Deferred for one thread, with its callbacks
//! stored unboxed.
//!
//! ```
//! use tokio_deferred::{Failure, LocalDeferred};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() {
//!     let (d, resolver) = LocalDeferred::<u32>::new();
//!     let d = d
//!         .add_callback(|x| Ok(x * 2))
//!         .add_callback(|x| Ok(format!("#{x}")))
//!         .add_errback(|f: Failure| Ok(format!("failed: {f}")));
//!     resolver.callback(21).unwrap();
//!     assert_eq!(d.await.unwrap(), "#42");
//! }
//! ```
//!
//! # When to pick it
//!
//! Twisted's Deferred lives on one thread, the reactor's, and so does a
//! `LocalDeferred`: its handles are neither `Send` nor `Sync`, its
//! callbacks need not be `Send`, and its own bookkeeping uses no atomic
//! operation (a [`Failure`] is still an `Arc`, and wakers are the
//! runtime's). Its callbacks are kept in one arena per chain instead of a
//! box each; the thread-safe [`Deferred`](crate::Deferred) allocates a box
//! and takes a lock for every `add_callback`. `BENCHMARKS.md` compares the
//! two on chains of 10 and 100 callbacks.
//!
//! * Pick [`LocalDeferred`] for callback chains built and fired on one
//!   thread: a port of single-reactor Twisted code, a parser or protocol
//!   state machine, a `current_thread` runtime or a
//!   [`LocalSet`](tokio::task::LocalSet), callbacks holding `Rc` or
//!   `RefCell`.
//! * Pick [`Deferred`](crate::Deferred) when a Deferred or its resolver
//!   crosses threads (fired from a thread pool, awaited in a multi-thread
//!   task, `tokio::spawn`), for [`DeferredList`](crate::DeferredList),
//!   `gather_results`, the locks, queues, timeouts and `defer_*`
//!   functions (which are built on it), and for many Deferreds kept
//!   pending with no callbacks: a `Deferred` and its resolver are one
//!   small allocation, a `LocalDeferred` one several times larger (its
//!   state, with room for its first few callbacks; longer chains add heap
//!   blocks, each twice the size of the last). `BENCHMARKS.md` has the
//!   sizes.
//!
//! A `LocalDeferred` is a [`Future`]: `.await` it in any async code running
//! on its thread. Inside it, `.await` a [`Deferred`](crate::Deferred) or any
//! other future as usual.
//!
//! # Semantics
//!
//! The same as [`Deferred`](crate::Deferred)'s, which follow Twisted's:
//! callbacks run in the order added, a callback added after the fire runs
//! at once, pausing holds the rest of the chain, a callback may return a
//! `LocalDeferred` for the chain to wait on (with a constant stack however
//! deep the nesting), cancellation runs the canceller or cascades to the
//! Deferred waited on, a panic in a callback or canceller becomes a
//! [`Failure`] holding a [`PanicError`](crate::PanicError), dropping every
//! resolver fails the chain with
//! [`ResolverDroppedError`](crate::ResolverDroppedError), and a failure
//! nobody consumes is reported through `tracing` (target
//! `tokio_deferred::unhandled`) when its handle goes.
//!
//! Callbacks and values must be `'static`. A closure or value aligned to
//! more than 16 bytes, or larger than 1 GiB, is a compile error (the
//! arena's unit is 16 bytes): box it.
//!
//! ```compile_fail
//! use tokio_deferred::LocalDeferred;
//!
//! #[repr(align(64))]
//! struct CachePadded(u64);
//!
//! // error: LocalDeferred keeps callbacks and values aligned to at most 16
//! // bytes: box the over-aligned value (Box<T>) or use Deferred
//! let d = LocalDeferred::succeed(CachePadded(1));
//! ```
//!
//! Boxed, it works:
//!
//! ```
//! use tokio_deferred::LocalDeferred;
//!
//! #[repr(align(64))]
//! struct CachePadded(u64);
//!
//! let d = LocalDeferred::succeed(Box::new(CachePadded(1))).add_callback(|b| Ok(b.0));
//! assert_eq!(d.try_take().unwrap().unwrap(), 1);
//! ```

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::AlreadyCalledError;
use crate::failure::Failure;

mod arena;
mod canceller_from;
mod header;
mod runner;
mod state;

use header::{Link, Probe, Res};
use state::{Inner, SourceOf, Typed, new_inner};

mod private {
    pub trait Sealed {}
}

/// What a [`LocalDeferred`]'s callback or errback may return: `Ok(value)`
/// or `Err(failure)` (a `Result<U, Failure>`), or a [`LocalDeferred<U>`]
/// whose result the chain then waits for (Twisted's implicit chaining).
///
/// The twin of [`IntoOutcome`](crate::IntoOutcome), which the thread-safe
/// [`Deferred`](crate::Deferred)'s callbacks return; it is sealed, and
/// reachable both here and at the crate root
/// (`tokio_deferred::IntoLocalOutcome`). Name it in bounds of your own
/// helpers that take a callback.
///
/// ```
/// use tokio_deferred::{IntoLocalOutcome, LocalDeferred};
///
/// /// Adds `f` as a callback, counting the calls in `calls`.
/// fn counted<T: 'static, R: IntoLocalOutcome>(
///     d: LocalDeferred<T>,
///     calls: std::rc::Rc<std::cell::Cell<u32>>,
///     f: impl FnOnce(T) -> R + 'static,
/// ) -> LocalDeferred<R::Output> {
///     d.add_callback(move |v| {
///         calls.set(calls.get() + 1);
///         f(v)
///     })
/// }
///
/// let calls = std::rc::Rc::default();
/// let d = counted(LocalDeferred::succeed(20), std::rc::Rc::clone(&calls), |v| Ok(v + 1));
/// assert_eq!(d.try_take().unwrap().unwrap(), 21);
/// assert_eq!(calls.get(), 1);
/// ```
pub trait IntoLocalOutcome: private::Sealed + 'static {
    /// The type of the next value in the chain.
    type Output: 'static;
    /// Converts into the internal outcome.
    #[doc(hidden)]
    fn into_local_outcome(self) -> LocalOutcome<Self::Output>;
}

/// The internal outcome of a link (not part of the API).
#[doc(hidden)]
#[derive(Debug)]
pub enum LocalOutcome<U: 'static> {
    /// The result to pass on.
    Ready(Result<U, Failure>),
    /// A Deferred whose result is passed on once it has one.
    Chain(LocalDeferred<U>),
}

impl<U: 'static> private::Sealed for Result<U, Failure> {}
impl<U: 'static> IntoLocalOutcome for Result<U, Failure> {
    type Output = U;
    #[inline(always)]
    fn into_local_outcome(self) -> LocalOutcome<U> {
        LocalOutcome::Ready(self)
    }
}

impl<U: 'static> private::Sealed for LocalDeferred<U> {}
impl<U: 'static> IntoLocalOutcome for LocalDeferred<U> {
    type Output = U;
    #[inline(always)]
    fn into_local_outcome(self) -> LocalOutcome<U> {
        LocalOutcome::Chain(self)
    }
}

// The links below run user code (the closure called, and the drop of the
// closure not called) inside the `catch_unwind` of the run loop
// (`header::run_entry`), so a panic in either becomes the failure. The
// closure not called is dropped first, before the result is built: a panic
// in that drop then drops the result as it unwinds.

/// `add_callback`'s link.
struct OnOk<F, R>(F, PhantomData<fn() -> R>);

impl<T: 'static, F, R> Link<T, R::Output> for OnOk<F, R>
where
    F: FnOnce(T) -> R + 'static,
    R: IntoLocalOutcome,
{
    #[inline(always)]
    fn call(self, input: Res<T>) -> LocalOutcome<R::Output> {
        match input {
            Ok(v) => (self.0)(v).into_local_outcome(),
            Err(e) => {
                drop(self.0);
                LocalOutcome::Ready(Err(e))
            }
        }
    }
}

/// `add_errback`'s link.
struct OnErr<F, R>(F, PhantomData<fn() -> R>);

impl<T: 'static, F, R> Link<T, T> for OnErr<F, R>
where
    F: FnOnce(Failure) -> R + 'static,
    R: IntoLocalOutcome<Output = T>,
{
    #[inline(always)]
    fn call(self, input: Res<T>) -> LocalOutcome<T> {
        match input {
            Ok(v) => {
                drop(self.0);
                LocalOutcome::Ready(Ok(v))
            }
            Err(e) => (self.0)(e).into_local_outcome(),
        }
    }
}

/// `add_both`'s link.
struct OnBoth<F, R>(F, PhantomData<fn() -> R>);

impl<T: 'static, F, R> Link<T, R::Output> for OnBoth<F, R>
where
    F: FnOnce(Res<T>) -> R + 'static,
    R: IntoLocalOutcome,
{
    #[inline(always)]
    fn call(self, input: Res<T>) -> LocalOutcome<R::Output> {
        (self.0)(input).into_local_outcome()
    }
}

/// `add_callbacks`'s link.
struct OnEither<F, G, R>(F, G, PhantomData<fn() -> R>);

impl<T: 'static, F, G, R1, R2> Link<T, R1::Output> for OnEither<F, G, (R1, R2)>
where
    F: FnOnce(T) -> R1 + 'static,
    G: FnOnce(Failure) -> R2 + 'static,
    R1: IntoLocalOutcome,
    R2: IntoLocalOutcome<Output = R1::Output>,
{
    #[inline(always)]
    fn call(self, input: Res<T>) -> LocalOutcome<R1::Output> {
        let OnEither(callback, errback, _) = self;
        match input {
            Ok(v) => {
                drop(errback);
                callback(v).into_local_outcome()
            }
            Err(e) => {
                drop(callback);
                errback(e).into_local_outcome()
            }
        }
    }
}

/// A `!Send` Deferred: Twisted's `Deferred` for one thread, with its
/// callbacks stored unboxed in one arena per chain (see the
/// [module docs](crate::local) for when to pick it over
/// [`Deferred`](crate::Deferred)).
///
/// Made with its [`LocalResolver`] by [`new`](Self::new) or
/// [`with_canceller`](Self::with_canceller), or already fired by
/// [`succeed`](Self::succeed) and [`fail`](Self::fail). Each
/// `add_callback` consumes the handle and returns the retyped one, as for
/// `Deferred`; the last handle is a [`Future`] of the chain's result.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use tokio_deferred::LocalDeferred;
///
/// // Callbacks may hold `Rc`s: nothing here is `Send`.
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let (d, r) = LocalDeferred::new();
/// let l = log.clone();
/// let d = d.add_callback(move |x: u8| {
///     l.borrow_mut().push(x);
///     Ok(x + 1)
/// });
/// r.callback(1).unwrap();
/// assert_eq!(*log.borrow(), [1]);
/// assert_eq!(d.try_take().unwrap().unwrap(), 2);
/// ```
#[must_use = "a LocalDeferred's result is lost unless it is awaited, taken or chained"]
pub struct LocalDeferred<T: 'static> {
    typed: Typed<T>,
}

impl<T: 'static> LocalDeferred<T> {
    /// A new unfired LocalDeferred and the [`LocalResolver`] that fires it.
    ///
    /// ```
    /// use tokio_deferred::LocalDeferred;
    ///
    /// let (d, r) = LocalDeferred::<u8>::new();
    /// assert!(!d.is_called());
    /// r.callback(7).unwrap();
    /// assert!(d.is_called());
    /// ```
    #[track_caller]
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> (LocalDeferred<T>, LocalResolver<T>) {
        let (typed, source) = new_inner(None, Location::caller());
        (LocalDeferred { typed }, LocalResolver { source })
    }

    /// A new unfired LocalDeferred whose [`cancel`](Self::cancel) calls
    /// `canceller` (Twisted's `Deferred(canceller)`).
    ///
    /// The canceller runs at most once. It may fire the Deferred through the
    /// resolver it is given (then that result stands); if it does not, the
    /// Deferred fails with [`CancelledError`](crate::CancelledError). If it
    /// panics, the Deferred fails with the panic.
    ///
    /// ```
    /// use tokio_deferred::LocalDeferred;
    ///
    /// let (d, _r) = LocalDeferred::<&str>::with_canceller(|r| {
    ///     r.callback("cancelled politely").unwrap();
    /// });
    /// d.cancel();
    /// assert_eq!(d.try_take().unwrap().unwrap(), "cancelled politely");
    /// ```
    #[track_caller]
    pub fn with_canceller<F>(canceller: F) -> (LocalDeferred<T>, LocalResolver<T>)
    where
        F: FnOnce(&LocalResolver<T>) + 'static,
    {
        let canceller: Box<dyn FnOnce(SourceOf<T>)> =
            Box::new(move |source| canceller(&LocalResolver { source }));
        let (typed, source) = new_inner(Some(canceller), Location::caller());
        (LocalDeferred { typed }, LocalResolver { source })
    }

    /// An already-fired LocalDeferred (Twisted's `succeed`).
    ///
    /// ```
    /// use tokio_deferred::LocalDeferred;
    ///
    /// let d = LocalDeferred::succeed(3).add_callback(|x| Ok(x * 2));
    /// assert_eq!(d.try_take().unwrap().unwrap(), 6);
    /// ```
    #[track_caller]
    pub fn succeed(value: T) -> LocalDeferred<T> {
        let (d, r) = Self::new();
        // A new Deferred has not fired: this cannot be refused.
        let _ = r.source.fire(value, Ok);
        d
    }

    /// An already-failed LocalDeferred (Twisted's `fail`).
    ///
    /// ```
    /// use tokio_deferred::{Failure, LocalDeferred};
    ///
    /// let d = LocalDeferred::<u8>::fail(Failure::msg("no"))
    ///     .add_errback(|f: Failure| Ok(f.to_string().len() as u8));
    /// assert_eq!(d.try_take().unwrap().unwrap(), 2);
    /// ```
    #[track_caller]
    pub fn fail(failure: impl Into<Failure>) -> LocalDeferred<T> {
        let (d, r) = Self::new();
        let _ = r.source.fire(failure.into(), Err);
        d
    }

    /// Adds a callback: `f` gets the value when the chain succeeds; a
    /// failure skips it (Twisted's `addCallback`). `f` returns `Ok(next)`,
    /// `Err(failure)`, or a `LocalDeferred` for the chain to wait on.
    ///
    /// ```
    /// use tokio_deferred::LocalDeferred;
    ///
    /// let d = LocalDeferred::succeed(2)
    ///     .add_callback(|x| Ok(x * 10))
    ///     .add_callback(|x| Ok(format!("#{x}")))
    ///     .add_callback(|s| LocalDeferred::succeed(s.len()));
    /// assert_eq!(d.try_take().unwrap().unwrap(), 3);
    /// ```
    #[inline]
    pub fn add_callback<F, R>(self, f: F) -> LocalDeferred<R::Output>
    where
        F: FnOnce(T) -> R + 'static,
        R: IntoLocalOutcome,
    {
        LocalDeferred {
            typed: self.typed.push(OnOk(f, PhantomData)),
        }
    }

    /// Adds an errback: `f` gets the failure when the chain fails; a value
    /// skips it (Twisted's `addErrback`). Returning `Ok` recovers.
    ///
    /// ```
    /// use tokio_deferred::{Failure, LocalDeferred};
    ///
    /// let d = LocalDeferred::<u32>::fail(Failure::msg("boom"))
    ///     .add_errback(|f: Failure| {
    ///         assert_eq!(f.to_string(), "boom");
    ///         Ok(0)
    ///     });
    /// assert_eq!(d.try_take().unwrap().unwrap(), 0);
    /// ```
    #[inline]
    pub fn add_errback<F, R>(self, f: F) -> LocalDeferred<T>
    where
        F: FnOnce(Failure) -> R + 'static,
        R: IntoLocalOutcome<Output = T>,
    {
        LocalDeferred {
            typed: self.typed.push(OnErr(f, PhantomData)),
        }
    }

    /// Adds a function that gets the result either way (Twisted's
    /// `addBoth`).
    ///
    /// ```
    /// use tokio_deferred::LocalDeferred;
    ///
    /// let d = LocalDeferred::succeed(1).add_both(|r: Result<i32, _>| r.map(|x| x + 1));
    /// assert_eq!(d.try_take().unwrap().unwrap(), 2);
    /// ```
    #[inline]
    pub fn add_both<F, R>(self, f: F) -> LocalDeferred<R::Output>
    where
        F: FnOnce(Result<T, Failure>) -> R + 'static,
        R: IntoLocalOutcome,
    {
        LocalDeferred {
            typed: self.typed.push(OnBoth(f, PhantomData)),
        }
    }

    /// Adds a callback and an errback as one pair (Twisted's
    /// `addCallbacks`): exactly one of them runs, and the errback does not
    /// see failures raised by the callback.
    ///
    /// ```
    /// use tokio_deferred::{Failure, LocalDeferred};
    ///
    /// let d = LocalDeferred::succeed(5).add_callbacks(
    ///     |n| Ok(n.to_string()),
    ///     |f: Failure| Ok(format!("error: {f}")),
    /// );
    /// assert_eq!(d.try_take().unwrap().unwrap(), "5");
    /// ```
    #[inline]
    pub fn add_callbacks<F, G, R1, R2>(self, callback: F, errback: G) -> LocalDeferred<R1::Output>
    where
        F: FnOnce(T) -> R1 + 'static,
        G: FnOnce(Failure) -> R2 + 'static,
        R1: IntoLocalOutcome,
        R2: IntoLocalOutcome<Output = R1::Output>,
    {
        LocalDeferred {
            typed: self
                .typed
                .push(OnEither(callback, errback, PhantomData::<fn() -> (R1, R2)>)),
        }
    }

    /// Stops the callbacks from running until a matching
    /// [`unpause`](Self::unpause) (Twisted's `pause`). Pauses are counted.
    ///
    /// As in Twisted, pausing from inside one of this Deferred's own
    /// callbacks does not stop the current run: the callbacks queued behind
    /// it, and any added while it runs, still run; callbacks added after the
    /// run wait.
    pub fn pause(&self) {
        self.typed.inner().pause();
    }

    /// Undoes one [`pause`](Self::pause); at zero, runs the callbacks that
    /// were held back. An unpause with no pause is ignored.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use tokio_deferred::LocalDeferred;
    ///
    /// let seen = Rc::new(Cell::new(0));
    /// let d = LocalDeferred::succeed(1);
    /// d.pause();
    /// let s = seen.clone();
    /// let d = d.add_callback(move |x| { s.set(x); Ok(x) });
    /// assert_eq!(seen.get(), 0);
    /// d.unpause();
    /// assert_eq!(seen.get(), 1);
    /// ```
    pub fn unpause(&self) {
        self.typed.inner().unpause();
    }

    /// Cancels the Deferred, exactly as Twisted's `cancel()`:
    ///
    /// * not fired yet: the canceller runs (at most once); if it did not
    ///   fire the Deferred, it fails with
    ///   [`CancelledError`](crate::CancelledError). With no canceller, it
    ///   fails with `CancelledError` and exactly one later
    ///   `callback`/`errback` is accepted and dropped;
    /// * fired but waiting on a Deferred returned by a callback: the
    ///   cancellation goes to that Deferred;
    /// * otherwise: nothing happens.
    ///
    /// ```
    /// use tokio_deferred::{CancelledError, LocalDeferred};
    ///
    /// let (d, r) = LocalDeferred::<u8>::new();
    /// d.cancel();
    /// assert!(r.callback(1).is_ok()); // the one late fire, dropped
    /// assert!(d.try_take().unwrap().unwrap_err().is::<CancelledError>());
    /// ```
    pub fn cancel(&self) {
        runner::cancel(self.typed.inner());
    }

    /// A handle that can cancel this Deferred later (from a timer, another
    /// callback) without owning it. It does not keep the Deferred alive.
    pub fn cancel_handle(&self) -> LocalCancelHandle {
        LocalCancelHandle {
            inner: Rc::downgrade(self.typed.inner()),
        }
    }

    /// Whether the Deferred has been fired (Twisted's `d.called`).
    pub fn is_called(&self) -> bool {
        self.typed.inner().is_called()
    }

    /// Whether the Deferred is paused by [`pause`](Self::pause).
    pub fn is_paused(&self) -> bool {
        self.typed.inner().is_paused()
    }

    /// Whether the chain is waiting on a Deferred returned by a callback.
    pub fn is_waiting(&self) -> bool {
        self.typed.inner().is_waiting()
    }

    /// Takes the result if the chain has finished, without waiting. `None`
    /// while it is unfired, paused, running or waiting on another Deferred.
    ///
    /// Taking the result consumes it: a second take, an `.await`, or a
    /// callback added afterwards gets a
    /// [`ResultTakenError`](crate::ResultTakenError) failure.
    ///
    /// ```
    /// use tokio_deferred::LocalDeferred;
    ///
    /// let (d, r) = LocalDeferred::<i32>::new();
    /// assert!(d.try_take().is_none());
    /// r.callback(3).unwrap();
    /// assert_eq!(d.try_take().unwrap().unwrap(), 3);
    /// ```
    #[inline]
    pub fn try_take(&self) -> Option<Result<T, Failure>> {
        self.typed.try_take()
    }

    /// The typed end of the chain (for chaining into another chain).
    pub(crate) fn into_typed(self) -> Typed<T> {
        self.typed
    }
}

impl<T: 'static> Future for LocalDeferred<T> {
    type Output = Result<T, Failure>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.typed.try_take() {
            Some(r) => Poll::Ready(r),
            None => {
                self.typed.register(cx.waker());
                Poll::Pending
            }
        }
    }
}

impl<T: 'static> fmt::Debug for LocalDeferred<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.typed.inner().snapshot();
        let mut d = f.debug_struct("LocalDeferred");
        if !s.fired {
            d.field("state", &"pending");
        } else if s.running {
            d.field("state", &"running callbacks");
        } else if s.waiting {
            d.field("state", &"waiting on another Deferred");
        } else {
            match &s.result {
                Probe::Ok => d.field("state", &"fired"),
                Probe::Err(e) => d.field("state", &"failed").field("failure", e),
                Probe::Failed => d.field("state", &"failed"),
                Probe::Empty if s.taken => d.field("state", &"result taken"),
                Probe::Empty => d.field("state", &"fired"),
            };
        }
        d.field("callbacks", &s.pending);
        if s.paused > 0 {
            d.field("paused", &s.paused);
        }
        d.finish()
    }
}

/// Fires a [`LocalDeferred`]: Twisted's `d.callback(v)` / `d.errback(f)`
/// on a handle of its own, as [`Resolver`](crate::Resolver) is for
/// [`Deferred`](crate::Deferred). Clones fire the same Deferred; when every
/// one is dropped before it fired, it fails with
/// [`ResolverDroppedError`](crate::ResolverDroppedError).
pub struct LocalResolver<T: 'static> {
    source: SourceOf<T>,
}

impl<T: 'static> LocalResolver<T> {
    fn already(&self) -> Arc<str> {
        format!(
            "the LocalDeferred created at {}",
            self.source.inner().created()
        )
        .into()
    }

    /// Fires the Deferred with a value and runs its callbacks.
    ///
    /// # Errors
    ///
    /// [`AlreadyCalledError`] (holding `value`) if the Deferred already
    /// fired. As in Twisted, after a `cancel()` of a Deferred with no
    /// canceller, exactly one late `callback`/`errback` is accepted and
    /// dropped.
    ///
    /// ```
    /// use tokio_deferred::LocalDeferred;
    ///
    /// let (d, r) = LocalDeferred::new();
    /// r.callback("hello").unwrap();
    /// assert!(r.callback("again").is_err());
    /// assert_eq!(d.try_take().unwrap().unwrap(), "hello");
    /// ```
    pub fn callback(&self, value: T) -> Result<(), AlreadyCalledError<T>> {
        self.source
            .fire(value, Ok)
            .map_err(|value| AlreadyCalledError::new(value, self.already()))
    }

    /// Fires the Deferred with a failure and runs its errbacks.
    ///
    /// # Errors
    ///
    /// [`AlreadyCalledError`] (holding the failure) if it already fired;
    /// see [`callback`](Self::callback).
    ///
    /// ```
    /// use tokio_deferred::{Failure, LocalDeferred};
    ///
    /// let (d, r) = LocalDeferred::<u32>::new();
    /// r.errback(Failure::msg("no luck")).unwrap();
    /// assert_eq!(d.try_take().unwrap().unwrap_err().to_string(), "no luck");
    /// ```
    pub fn errback(&self, failure: impl Into<Failure>) -> Result<(), AlreadyCalledError<Failure>> {
        self.source
            .fire(failure.into(), Err)
            .map_err(|failure| AlreadyCalledError::new(failure, self.already()))
    }

    /// Fires the Deferred with `Ok` (callback) or `Err` (errback).
    ///
    /// # Errors
    ///
    /// [`AlreadyCalledError`] (holding the result) if it already fired.
    pub fn resolve(
        &self,
        result: Result<T, Failure>,
    ) -> Result<(), AlreadyCalledError<Result<T, Failure>>> {
        self.source
            .fire(result, |r| r)
            .map_err(|r| AlreadyCalledError::new(r, self.already()))
    }

    /// Whether the Deferred has been fired (Twisted's `d.called`).
    pub fn is_called(&self) -> bool {
        self.source.inner().is_called()
    }
}

impl<T: 'static> Clone for LocalResolver<T> {
    fn clone(&self) -> Self {
        LocalResolver {
            source: self.source.clone_source(),
        }
    }
}

impl<T: 'static> fmt::Debug for LocalResolver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalResolver")
            .field("called", &self.is_called())
            .field(
                "created",
                &format_args!("{}", self.source.inner().created()),
            )
            .finish()
    }
}

/// Cancels a [`LocalDeferred`] from elsewhere on its thread; made by
/// [`LocalDeferred::cancel_handle`]. It holds a weak reference: once the
/// Deferred's state is gone, [`cancel`](Self::cancel) does nothing.
#[derive(Clone)]
pub struct LocalCancelHandle {
    inner: Weak<Inner>,
}

impl LocalCancelHandle {
    /// Cancels the Deferred, as [`LocalDeferred::cancel`].
    ///
    /// ```
    /// use tokio_deferred::{CancelledError, LocalDeferred};
    ///
    /// let (d, _r) = LocalDeferred::<u8>::new();
    /// let handle = d.cancel_handle();
    /// handle.cancel();
    /// assert!(d.try_take().unwrap().unwrap_err().is::<CancelledError>());
    /// ```
    pub fn cancel(&self) {
        if let Some(inner) = self.inner.upgrade() {
            runner::cancel(&inner);
        }
    }
}

impl fmt::Debug for LocalCancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCancelHandle")
            .field("alive", &(self.inner.strong_count() > 0))
            .finish()
    }
}
