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

mod canceller_from;
pub(crate) mod debug;
pub(crate) mod functions;
mod fused;
pub(crate) mod inline;
pub(crate) mod link;
pub(crate) mod resolver;
pub(crate) mod runner;
pub(crate) mod state;

use std::fmt;
use std::future::Future;
use std::mem::{self, ManuallyDrop};
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use crate::Failure;
use inline::{Ready, Slot, taken_err};
use link::{CallbackLink, ChainLink, Node, Outcome, Res, ResultState, take_from};
use resolver::Resolver;
use runner::{Core, cancel_core, run_chain};
use state::{Canceller, Inner};

mod private {
    pub trait Sealed {}
}

/// What a callback or errback may return: `Ok(value)` or `Err(failure)`
/// (a `Result<U, Failure>`, so `?` works on any error), or a
/// [`Deferred<U>`] whose result the chain then waits for (Twisted's implicit
/// chaining).
///
/// The error type is fixed to [`Failure`], which lets Rust infer closures
/// like `|x| Ok(x + 1)` with no annotation. Name it in bounds of your own
/// helpers that take a callback (`R: IntoOutcome`); the trait is sealed.
/// [`LocalDeferred`](crate::LocalDeferred)'s callbacks return its twin,
/// [`IntoLocalOutcome`](crate::IntoLocalOutcome); both are at the crate
/// root.
///
/// ```
/// use tokio_deferred::{Deferred, IntoOutcome};
///
/// /// Adds `f` as a callback and logs each value on the way.
/// fn logged<T, R>(d: Deferred<T>, f: impl FnOnce(T) -> R + Send + 'static) -> Deferred<R::Output>
/// where
///     T: std::fmt::Debug + Send + 'static,
///     R: IntoOutcome,
/// {
///     d.add_callback(move |v| {
///         println!("got {v:?}");
///         f(v)
///     })
/// }
///
/// let d = logged(tokio_deferred::succeed(20), |v| Ok(v + 1));
/// assert_eq!(d.try_take().unwrap().unwrap(), 21);
/// ```
pub trait IntoOutcome: private::Sealed {
    /// The type of the next value in the chain.
    type Output: Send + 'static;
    /// Converts into the internal outcome.
    #[doc(hidden)]
    fn into_outcome(self) -> Outcome<Self::Output>;
    /// Converts into a Deferred: a result becomes an already-fired one
    /// created at `at`; a Deferred is returned as is.
    #[doc(hidden)]
    fn into_deferred(self, at: &'static Location<'static>) -> Deferred<Self::Output>;
}

impl<U: Send + 'static> private::Sealed for Result<U, Failure> {}
impl<U: Send + 'static> IntoOutcome for Result<U, Failure> {
    type Output = U;
    fn into_outcome(self) -> Outcome<U> {
        Outcome::Ready(self)
    }
    fn into_deferred(self, at: &'static Location<'static>) -> Deferred<U> {
        Deferred::ready(self, at)
    }
}

impl<U: Send + 'static> private::Sealed for Deferred<U> {}
impl<U: Send + 'static> IntoOutcome for Deferred<U> {
    type Output = U;
    /// An inline, unpaused Deferred has its final result: the chain takes it
    /// at once, exactly as it steals the result of a returned shared Deferred
    /// that has finished (Twisted takes an already-fired Deferred's result).
    /// Anything else is waited on.
    fn into_outcome(mut self) -> Outcome<U> {
        if let Repr::Ready(ready) = &mut self.repr {
            if let Slot::Fired { result, paused: 0 } = ready.get_mut() {
                return Outcome::Ready(result.take().unwrap_or_else(taken_err));
            }
        }
        Outcome::Chain(self)
    }
    fn into_deferred(self, _at: &'static Location<'static>) -> Deferred<U> {
        self
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
/// * An already-fired Deferred costs no allocation: [`succeed`](crate::succeed),
///   [`fail`](crate::fail), [`maybe_deferred`](crate::maybe_deferred),
///   [`execute`](crate::execute) and [`ensure_deferred`](crate::ensure_deferred)
///   of a future that never suspends hold the result in the handle itself,
///   and a callback added to such a Deferred runs at once and gives another
///   one (`succeed(1).add_callback(..).add_callback(..)` allocates nothing).
///   The shared state is made only when it is needed: when the Deferred is
///   paused and then awaited or given callbacks, when a callback returns a
///   Deferred that has not finished, or for a
///   [`cancel_handle`](Self::cancel_handle). Behaviour is the same either way.
///   The price is a larger handle, since it can hold the result: 56 bytes
///   for a `Deferred<u64>` (a pointer-sized `T`), about 32 bytes plus
///   `Result<T, Failure>` in general.
#[must_use = "a Deferred's result (and any failure in it) is lost if it is dropped; \
              await it, add callbacks, or keep it"]
pub struct Deferred<T> {
    repr: Repr<T>,
}

/// The two forms of a Deferred handle (see `src/deferred/inline.rs`).
enum Repr<T> {
    /// A handle on the shared state.
    Shared {
        /// `None` only inside [`Deferred::into_parts`], which has just taken
        /// it out (the emptied handle is never dropped or seen).
        core: Option<Arc<dyn Core>>,
        /// This handle took the final result: nothing is left to report on
        /// drop, so `Drop` skips the state's lock.
        taken: AtomicBool,
    },
    /// Already fired, the result held here: no allocation.
    Ready(Ready<T>),
    /// Moved out (only while a consuming method runs).
    Gone,
}

/// The value is never pinned: a `Deferred` only moves results in and out.
impl<T> Unpin for Deferred<T> {}

impl<T: Send + 'static> Deferred<T> {
    pub(crate) fn from_core(core: Arc<dyn Core>) -> Self {
        Deferred {
            repr: Repr::Shared {
                core: Some(core),
                taken: AtomicBool::new(false),
            },
        }
    }

    /// An already-fired Deferred created (and fired) at `at`: inline, or
    /// with debugging on (backtraces), the shared state as before.
    pub(crate) fn ready(result: Res<T>, at: &'static Location<'static>) -> Self {
        if crate::deferred::debug::is_debugging() {
            return Deferred::from_core(Inner::new_fired(result, at));
        }
        Deferred::inline(result, at)
    }

    /// An inline (already fired) Deferred, whatever the debugging setting.
    #[inline]
    pub(crate) fn inline(result: Res<T>, at: &'static Location<'static>) -> Self {
        Deferred {
            repr: Repr::Ready(Ready::new(result, at)),
        }
    }

    /// Takes the handle apart without running `Drop`: the shared state out
    /// of its field, or else the whole representation (what is left,
    /// `Gone`, owns nothing). The common case moves only the `Arc` out of
    /// its field, not the whole handle.
    #[inline]
    fn into_parts(self) -> Result<Arc<dyn Core>, Repr<T>> {
        let mut this = ManuallyDrop::new(self);
        if let Repr::Shared { core, .. } = &mut this.repr {
            if let Some(core) = core.take() {
                return Ok(core);
            }
        }
        Err(mem::replace(&mut this.repr, Repr::Gone))
    }

    /// Takes the shared state out without running `Drop` (the chain that
    /// takes it over becomes the consumer of the result); an inline
    /// Deferred makes it.
    pub(crate) fn into_core(self) -> Option<Arc<dyn Core>> {
        match self.into_parts() {
            Ok(core) => Some(core),
            Err(Repr::Ready(ready)) => Some(ready.into_core()),
            Err(Repr::Shared { .. } | Repr::Gone) => None,
        }
    }

    /// The shared state to go on with, or the input of a callback to run now
    /// (an inline, unpaused Deferred), or `None` if it is gone.
    #[inline]
    fn into_core_or_input(
        self,
    ) -> Option<Result<Arc<dyn Core>, (Res<T>, &'static Location<'static>)>> {
        match self.into_parts() {
            Ok(core) => Some(Ok(core)),
            Err(Repr::Ready(ready)) => Some(match ready.into_input() {
                Ok(input) => Err(input),
                Err(core) => Ok(core),
            }),
            Err(Repr::Shared { .. } | Repr::Gone) => None,
        }
    }

    /// What a callback run on an inline Deferred produced, as the next
    /// Deferred of the chain (created at `at`, like the shared state it
    /// stands for).
    #[inline]
    fn after_callback<U: Send + 'static>(
        outcome: std::thread::Result<Outcome<U>>,
        at: &'static Location<'static>,
    ) -> Deferred<U> {
        match outcome {
            Ok(Outcome::Ready(r)) => Deferred::inline(r, at),
            Ok(Outcome::Chain(d)) => {
                // Not finished (else `into_outcome` took its result): the
                // chain waits on it, so it needs the shared state, made
                // directly in the state the runner would leave (fired,
                // waiting on `d`, or holding its result if `d` is finished).
                match d.into_core() {
                    Some(inner) => Deferred::from_core(Inner::<U>::waiting_on(inner, at)),
                    None => {
                        Deferred::inline(Err(Failure::new(crate::error::ResultTakenError {})), at)
                    }
                }
            }
            Err(payload) => Deferred::inline(Err(Failure::from_panic(payload)), at),
        }
    }

    /// Runs `fired` on an inline Deferred's result and pause count, or
    /// `shared` on the shared state; `gone` when there is neither.
    fn with<R>(
        &self,
        fired: impl FnOnce(&mut Option<Res<T>>, &mut u32) -> R,
        shared: impl FnOnce(&Arc<dyn Core>) -> R,
        gone: R,
    ) -> R {
        match &self.repr {
            Repr::Shared {
                core: Some(core), ..
            } => shared(core),
            Repr::Ready(ready) => ready.with(fired, shared),
            Repr::Shared { core: None, .. } | Repr::Gone => gone,
        }
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

    /// Adds a link. The common case (a shared state) is inlined into the
    /// caller, so the handle it returns is built where the caller keeps it
    /// rather than built here and copied.
    #[inline]
    fn push<U, G>(self, g: G) -> Deferred<U>
    where
        U: Send + 'static,
        G: FnOnce(Res<T>) -> Outcome<U> + Send + 'static,
    {
        match self.into_parts() {
            Ok(core) => Self::push_link(core, g),
            Err(repr) => Self::push_other(repr, g),
        }
    }

    /// Queues `g` on the shared state and runs the chain if it can.
    #[inline]
    fn push_link<U, G>(core: Arc<dyn Core>, g: G) -> Deferred<U>
    where
        U: Send + 'static,
        G: FnOnce(Res<T>) -> Outcome<U> + Send + 'static,
    {
        if core.add_link(CallbackLink::<T, U, G>::boxed(g)) {
            run_chain(core.clone());
        }
        Deferred::from_core(core)
    }

    /// `push` on an inline Deferred (or one already consumed).
    fn push_other<U, G>(repr: Repr<T>, g: G) -> Deferred<U>
    where
        U: Send + 'static,
        G: FnOnce(Res<T>) -> Outcome<U> + Send + 'static,
    {
        let ready = match repr {
            Repr::Shared {
                core: Some(core), ..
            } => return Self::push_link(core, g),
            Repr::Shared { core: None, .. } => {
                return crate::fail(crate::error::ResultTakenError {});
            }
            Repr::Ready(ready) => ready,
            Repr::Gone => return crate::fail(crate::error::ResultTakenError {}),
        };
        match ready.into_input() {
            Ok((input, at)) => {
                // Already fired and not paused: run it now, as the runner
                // would (panics become failures), and stay inline.
                let outcome = catch_unwind(AssertUnwindSafe(move || g(input)));
                Self::after_callback(outcome, at)
            }
            Err(core) => Self::push_link(core, g),
        }
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
    pub fn chain_deferred(self, target: Resolver<T>) -> Deferred<()> {
        let at = Location::caller();
        let core = match self.into_core_or_input() {
            Some(Ok(core)) => core,
            Some(Err((input, created))) => {
                // What `ChainLink::run` does, then what the runner does with
                // `Step::Fed`: fire the target, drop the resolver, run the
                // target's chain.
                let output = match target.inner.try_fire(input, |r| r, at, true) {
                    Ok(run) => {
                        let inner = target.inner.clone();
                        drop(target);
                        if run {
                            run_chain(inner);
                        }
                        Ok(())
                    }
                    Err(e) => Err(Failure::new(e.without_value())),
                };
                return Deferred::inline(output, created);
            }
            None => return crate::fail(crate::error::ResultTakenError {}),
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
        self.with(
            |_, paused| *paused = paused.saturating_add(1),
            |core| core.pause(),
            (),
        );
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
        self.with(
            |_, paused| *paused = paused.saturating_sub(1),
            |core| {
                if core.unpause() {
                    run_chain(core.clone());
                }
            },
            (),
        );
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
        // Already fired and not waiting: a no-op when inline.
        self.with(|_, _| (), |core| cancel_core(core.clone()), ());
    }

    /// A handle that can cancel this Deferred from elsewhere (another task,
    /// a timer) without owning it. It does not keep the Deferred alive.
    ///
    /// The handle must reach whatever the chain becomes later (a callback
    /// may return a Deferred to wait on), so an already-fired Deferred that
    /// held its result inline makes its shared state here.
    pub fn cancel_handle(&self) -> CancelHandle {
        let core = match &self.repr {
            Repr::Shared { core, .. } => core.as_ref().map(Arc::downgrade),
            Repr::Ready(ready) => Some(Arc::downgrade(&ready.promote())),
            Repr::Gone => None,
        };
        CancelHandle { core }
    }

    /// Wraps the Deferred in a future that cancels it when dropped before
    /// completing: for `select!` and timeouts in async code.
    ///
    /// Dropping the future before it completed is how async code says it
    /// no longer wants the result: the Deferred is cancelled, and whatever
    /// it ends with (its [`CancelledError`](crate::CancelledError), what its
    /// canceller or errbacks made of it, or a result that was already
    /// there) is dropped, never reported as an unhandled error. Callbacks
    /// already on the chain still run.
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
        self.with(|_, _| true, |c| c.snapshot().called, false)
    }

    /// Whether the Deferred is paused by [`pause`](Self::pause).
    pub fn is_paused(&self) -> bool {
        self.with(|_, paused| *paused > 0, |c| c.snapshot().paused > 0, false)
    }

    /// Whether the chain is waiting on a Deferred returned by a callback.
    pub fn is_waiting(&self) -> bool {
        self.with(|_, _| false, |c| c.snapshot().waiting, false)
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
    #[inline]
    pub fn try_take(&self) -> Option<Result<T, Failure>> {
        match &self.repr {
            Repr::Shared {
                core: Some(core),
                taken,
            } => {
                let r = Self::take_shared(core);
                if r.is_some() {
                    taken.store(true, Ordering::Relaxed);
                }
                r
            }
            Repr::Ready(ready) => ready.with(
                |result, paused| (*paused == 0).then(|| result.take().unwrap_or_else(taken_err)),
                Self::take_shared,
            ),
            Repr::Shared { core: None, .. } | Repr::Gone => None,
        }
    }

    fn take_shared(core: &Arc<dyn Core>) -> Option<Result<T, Failure>> {
        // Typed fast path: a Deferred<T> over an Inner<T> (no erased sink).
        if let Some(inner) = core.as_any().downcast_ref::<Inner<T>>() {
            return match inner.poll_typed(None) {
                Poll::Ready(r) => Some(r),
                Poll::Pending => None,
            };
        }
        let mut slot = None;
        match core.poll_take(None, &mut |src| slot = Some(take_from::<T>(src))) {
            Poll::Ready(()) => slot,
            Poll::Pending => None,
        }
    }
}

impl<T: Send + 'static> Future for Deferred<T> {
    type Output = Result<T, Failure>;

    /// The two common cases inline (an inline result; a shared state of
    /// this type); everything else in `poll_slow`.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.repr {
            Repr::Ready(ready) => {
                if let Slot::Fired { result, paused: 0 } = ready.get_mut() {
                    return Poll::Ready(result.take().unwrap_or_else(taken_err));
                }
            }
            Repr::Shared {
                core: Some(core),
                taken,
            } => {
                if let Some(inner) = core.as_any().downcast_ref::<Inner<T>>() {
                    return Self::poll_own(inner, core, taken, cx);
                }
            }
            Repr::Shared { core: None, .. } | Repr::Gone => {}
        }
        this.poll_slow(cx)
    }
}

impl<T: Send + 'static> Deferred<T> {
    /// `poll` on a shared state of this handle's own type (`core` is
    /// `inner`): no erased sink.
    #[inline]
    fn poll_own(
        inner: &Inner<T>,
        core: &Arc<dyn Core>,
        taken: &AtomicBool,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, Failure>> {
        match inner.poll_typed(Some(cx.waker())) {
            Poll::Ready(r) => {
                taken.store(true, Ordering::Relaxed);
                Poll::Ready(r)
            }
            Poll::Pending => {
                crate::future::note_awaiting(core);
                Poll::Pending
            }
        }
    }

    /// `poll` for a paused or promoted inline Deferred, a chain whose state
    /// is of another type (the erased sink), or a consumed handle.
    #[inline(never)]
    fn poll_slow(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, Failure>> {
        if let Repr::Ready(_) = &self.repr {
            // Paused (the waker must be where `unpause` will find it) or
            // promoted: go on with the shared state from now on.
            if let Repr::Ready(ready) = mem::replace(&mut self.repr, Repr::Gone) {
                self.repr = Repr::Shared {
                    core: Some(ready.into_core()),
                    taken: AtomicBool::new(false),
                };
            }
        }
        let Repr::Shared {
            core: Some(core),
            taken,
        } = &self.repr
        else {
            return Poll::Ready(Err(Failure::new(crate::error::ResultTakenError {})));
        };
        if let Some(inner) = core.as_any().downcast_ref::<Inner<T>>() {
            return Self::poll_own(inner, core, taken, cx);
        }
        let mut slot = None;
        match core.poll_take(Some(cx.waker()), &mut |src| {
            slot = Some(take_from::<T>(src))
        }) {
            Poll::Ready(()) => {
                taken.store(true, Ordering::Relaxed);
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
    #[inline]
    fn drop(&mut self) {
        match &mut self.repr {
            Repr::Shared {
                core: Some(core),
                taken,
            } => {
                if !*taken.get_mut() {
                    core.release_consumer();
                }
            }
            Repr::Shared { core: None, .. } => {}
            Repr::Ready(ready) => {
                if let Some(core) = ready.release() {
                    core.release_consumer();
                }
            }
            Repr::Gone => {}
        }
    }
}

impl<T> fmt::Debug for Deferred<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let core = match &self.repr {
            Repr::Shared {
                core: Some(core), ..
            } => core.clone(),
            Repr::Ready(ready) => {
                let slot = ready.lock();
                let (result, paused) = match &*slot {
                    Slot::Promoted(core) => (Err(core.clone()), 0),
                    Slot::Fired { result, paused } => (
                        Ok(match result {
                            Some(Ok(_)) => ResultState::Ok,
                            Some(Err(e)) => ResultState::Err(e.clone()),
                            None => ResultState::Empty,
                        }),
                        *paused,
                    ),
                };
                drop(slot);
                match result {
                    Err(core) => core,
                    Ok(result) => {
                        let mut d = f.debug_struct("Deferred");
                        match &result {
                            ResultState::Ok => d.field("state", &"fired"),
                            ResultState::Err(e) => d.field("state", &"failed").field("failure", e),
                            ResultState::Empty => d.field("state", &"result taken"),
                        };
                        d.field("callbacks", &0usize);
                        if paused > 0 {
                            d.field("paused", &paused);
                        }
                        return d.finish();
                    }
                }
            }
            Repr::Shared { core: None, .. } | Repr::Gone => {
                return f.write_str("Deferred { state: \"consumed\" }");
            }
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
pub struct CancelOnDrop<T: Send + 'static> {
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

impl<T: Send + 'static> Drop for CancelOnDrop<T> {
    fn drop(&mut self) {
        let Some(d) = self.deferred.take() else {
            return; // completed, or disarmed
        };
        // The abandoned result, now or when the chain finishes, goes to a
        // callback that drops it (so it is not an unhandled error).
        let rest = d.add_both(|_| Ok(()));
        // An inline Deferred has fired: cancelling it is a no-op.
        let core = match &rest.repr {
            Repr::Shared { core, .. } => core.clone(),
            Repr::Ready(ready) => match &*ready.lock() {
                Slot::Promoted(core) => Some(core.clone()),
                Slot::Fired { .. } => None,
            },
            Repr::Gone => None,
        };
        if let Some(core) = core {
            cancel_core(core);
        }
    }
}

impl<T: Send + 'static> fmt::Debug for CancelOnDrop<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelOnDrop")
            .field("deferred", &self.deferred)
            .finish()
    }
}
