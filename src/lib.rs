//! Twisted's `Deferred` for Rust, bridged to Tokio futures.
//!
//! ```
//! use tokio_deferred::{Deferred, Failure, ensure_deferred};
//!
//! // One thread, as Twisted's reactor (see MIGRATING.md for the multi-thread
//! // trade-off).
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() {
//!     // The producer fires the Deferred through its Resolver...
//!     let (d, resolver) = Deferred::<String>::new();
//!     // ...the consumer chains callbacks (each retypes the chain)...
//!     let d = d
//!         .add_callback(|page: String| Ok(page.to_lowercase()))
//!         .add_callback(|page| Ok(page.len()))
//!         .add_errback(|f: Failure| {
//!             eprintln!("fetch failed: {f}");
//!             Ok(0)
//!         });
//!     resolver.callback("<HTML>hello</HTML>".to_owned()).unwrap();
//!     // ...and a Deferred is a future: await it anywhere.
//!     assert_eq!(d.await.unwrap(), 18);
//!
//!     // Any future becomes a Deferred.
//!     let d = ensure_deferred(async { Ok::<_, Failure>(6 * 7) });
//!     assert_eq!(d.await.unwrap(), 42);
//! }
//! ```
//!
//! # Twisted → tokio-deferred
//!
//! | Twisted | tokio-deferred |
//! |---|---|
//! | `d = Deferred()` | `let (d, resolver) = Deferred::new();` |
//! | `Deferred(canceller)` | [`Deferred::with_canceller`], [`Deferred::with_canceller_from`] (a canceller made from the Resolver: `callLater`'s) |
//! | `d.callback(v)` / `d.errback(f)` | [`Resolver::callback`] / [`Resolver::errback`] |
//! | `d.addCallback(f)` | [`Deferred::add_callback`] (returns the retyped Deferred) |
//! | `d.addErrback(f)` | [`Deferred::add_errback`] |
//! | `d.addBoth(f)` | [`Deferred::add_both`] |
//! | `d.addCallbacks(f, g)` | [`Deferred::add_callbacks`] |
//! | `d.chainDeferred(d2)` | [`Deferred::chain_deferred`] (takes `d2`'s [`Resolver`]) |
//! | `d.pause()` / `d.unpause()` | [`Deferred::pause`] / [`Deferred::unpause`] |
//! | `d.cancel()` | [`Deferred::cancel`], [`CancelHandle`], [`Deferred::cancel_on_drop`] |
//! | `d.called` | [`Deferred::is_called`] |
//! | `await d`, `yield d` | `d.await` (also in `futures::select!`: a Deferred is a `FusedFuture`) |
//! | `succeed(v)` / `fail(f)` | [`succeed`] / [`fail`] |
//! | `maybeDeferred(f)` / `execute(f)` | [`maybe_deferred`] / [`execute`] |
//! | `ensureDeferred(coro)` | [`ensure_deferred`], [`Deferred::from_future`] |
//! | `@inlineCallbacks`, `returnValue(v)` | `#[inline_callbacks]` on an `async fn`, [`return_value!`] (or `return Ok(v)`) |
//! | `passthru` / `logError` | [`pass_through`] / [`log_error`] |
//! | `setDebugging` / `getDebugging` | [`set_debugging`] / [`is_debugging`] |
//! | `Failure`, `f.trap(E)`, `f.check(E)` | [`Failure`], [`Failure::trap`], [`Failure::is`] |
//! | `AlreadyCalledError`, `CancelledError` | [`AlreadyCalledError`], [`CancelledError`] |
//! | `DeferredList(ds)` | [`DeferredList::new`]`(ds).all()` (options: [`DeferredList::fire_on_one_errback`], [`DeferredList::consume_errors`], [`DeferredList::first_success`]) |
//! | `gatherResults(ds)` / `FirstError` | [`gather_results`], [`Gather`], [`gather2`], [`gather3`] / [`FirstError`] |
//! | `race(ds)` / `FailureGroup` | [`race`] / [`FailureGroup`] |
//! | `DeferredLock`, `DeferredSemaphore` | [`DeferredLock`], [`DeferredSemaphore`] (plus RAII guards) |
//! | `DeferredQueue`, `QueueOverflow`, `QueueUnderflow` | [`DeferredQueue`] (and [`DeferredQueue::stream`], a `Stream`), [`QueueOverflow`], [`QueueUnderflow`] |
//! | `reactor.seconds()` / `reactor.callLater(d, f)` | [`Clock::now`], `clock.call_later(d, f)` on [`TokioClock`] (default) |
//! | `task.Clock()`, `advance`, `pump`, `getDelayedCalls` | [`ManualClock`] |
//! | `DelayedCall.active/cancel/reset/delay/getTime` | [`DelayedCall`] |
//! | `task.deferLater(clock, d, f)` | [`defer_later`], [`defer_later_with_clock`] |
//! | `d.addTimeout(t, clock, onTimeoutCancel)` | [`Deferred::add_timeout`], [`Deferred::add_timeout_with`] |
//! | `task.LoopingCall(f)`, `.withCount(f)` | [`LoopingCall::new`], [`LoopingCall::with_count`] |
//! | `threads.deferToThread(f)` / `deferToThreadPool` | [`defer_to_thread`] / [`defer_to_thread_pool`] |
//! | `threads.blockingCallFromThread(reactor, f)` | [`blocking_call_from_thread`], [`blocking_await_from_thread`] |
//! | `task.cooperate(it)` / `task.coiterate(it)` | [`cooperate`] ([`CooperativeTask`]) / [`coiterate`] |
//! | `task.Cooperator`, `TaskDone`/`TaskStopped`/`TaskFailed`, `SchedulerStopped`, `NotPaused` | [`Cooperator`], [`TaskFinished`], [`NotPaused`] |
//! | `reactor.run()` | `#[tokio::main(flavor = "current_thread")]` |
//! | `task.react(main)`, `SystemExit(n)` | [`react`], [`SystemExit`] |
// The table's last row links the item only when the `fs` feature is on.
#![cfg_attr(
    feature = "fs",
    doc = "| `DeferredFilesystemLock(path).deferUntilLocked(t)` | \
           [`DeferredFilesystemLock::defer_until_locked`] (feature `fs`, on by default) |"
)]
#![cfg_attr(
    not(feature = "fs"),
    doc = "| `DeferredFilesystemLock(path).deferUntilLocked(t)` | \
           `DeferredFilesystemLock::defer_until_locked` (feature `fs`, on by default) |"
)]
//!
//! # Where Rust does better
//!
//! * **Types.** Each callback retypes the chain, so a `Deferred<u32>`
//!   really holds a `u32`; user code never downcasts.
//! * **No stack overflow.** Implicit chaining and `chain_deferred` both run
//!   in a loop: a million nested Deferreds use the stack of one.
//! * **Panics are failures.** A panic in a callback, errback, canceller or
//!   driven future becomes a [`Failure`] (a [`PanicError`]) down the chain.
//! * **Drop-safety.** If every [`Resolver`] is dropped before firing, the
//!   Deferred fails with [`ResolverDroppedError`] instead of hanging. Like
//!   an unfired Deferred in Twisted, it is not reported as an unhandled
//!   error; a real unhandled failure is, once (a `tracing` event, or a
//!   line on stderr when no subscriber is installed).
//! * **Threads.** `Deferred<T>` and `Resolver<T>` are `Send + Sync`; a
//!   Deferred may be fired in one thread while callbacks are added in another.
//!   No lock is held while user code runs.
//! * **Cost.** An unfired Deferred and its Resolver are one allocation and
//!   a callback one more; an already-fired Deferred ([`succeed`], a free
//!   [`DeferredLock`], a future that never suspends) is held in the handle
//!   and allocates nothing (`BENCHMARKS.md` has the sizes and timings).
//!
//! See `MIGRATING.md` for every Twisted name and a step-by-step path from
//! callback chains to `async`/`await`, and `DESIGN.md` for how the state
//! machine works.

// `unsafe` is denied everywhere (also in Cargo.toml's lint table) but in
// `LocalDeferred`'s type-erased arena (`local/header.rs`, `local/arena.rs`,
// `local/state.rs`, `local/runner.rs`), which allows it explicitly; each
// block there has a `SAFETY` comment.
#![deny(unsafe_code)]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod deferred;
mod error;
mod failure;
pub mod future;
pub mod list;
pub mod local;
mod loom;
mod react;
mod sync;
mod thread;
mod time;

pub use deferred::debug::{is_debugging, set_debugging};
pub use deferred::functions::{execute, fail, log_error, maybe_deferred, pass_through, succeed};
#[doc(hidden)]
pub use deferred::link::Outcome;
pub use deferred::resolver::Resolver;
pub use deferred::{CancelHandle, CancelOnDrop, Deferred, IntoOutcome};
#[cfg(feature = "fs")]
pub use error::AlreadyTryingToLockError;
pub use error::{
    AlreadyCalledError, CancelledError, ChainedToSelfError, NoRuntimeError, ResolverDroppedError,
    ResultTakenError, TimeoutError,
};
pub use error::{
    CalledFromRuntimeError, DelayedCallError, FailureGroup, FirstError, InvalidTokensError,
    LockNotHeldError, LoopingCallError, NotPaused, QueueOverflow, QueueUnderflow,
    RuntimeRequiredError, RuntimeShutdownError, SystemExit, TaskFinished, TooManyReleasesError,
};
pub use failure::{Failure, FailureError, MessageError, PanicError};
pub use future::ensure_deferred;
pub use list::{DeferredList, Gather, gather_results, gather2, gather3, race};
#[doc(hidden)]
pub use local::LocalOutcome;
pub use local::{IntoLocalOutcome, LocalCancelHandle, LocalDeferred, LocalResolver};
pub use react::react;
#[cfg(feature = "fs")]
pub use sync::fslock::DeferredFilesystemLock;
pub use sync::lock::{DeferredLock, DeferredLockGuard};
pub use sync::queue::DeferredQueue;
pub use sync::queue::stream::QueueStream;
pub use sync::semaphore::{DeferredSemaphore, DeferredSemaphoreGuard};
pub use time::clock::{Clock, DelayedCall, ManualClock, TokioClock};
pub use time::cooperator;
pub use time::cooperator::{
    CooperativeStep, CooperativeTask, Cooperator, CooperatorBuilder, IntoCooperativeStep,
    coiterate, cooperate,
};
pub use time::later::{defer_later, defer_later_with_clock};
pub use time::looping::LoopingCall;
pub use time::timeout;

#[doc(hidden)]
pub use future::inline_callbacks::private as __private;

pub use thread::{
    blocking_await_from_thread, blocking_call_from_thread, defer_to_thread, defer_to_thread_pool,
};
/// Twisted's `@inlineCallbacks`: turns an `async fn` returning
/// `Result<T, E>` (with `E: Into<Failure>`) into a plain `fn` with the same
/// parameters that returns a [`Deferred<T>`](Deferred), already started.
///
/// ```
/// use tokio_deferred::{inline_callbacks, return_value, Deferred, Failure};
///
/// #[inline_callbacks]
/// async fn thingummy(request: Deferred<String>) -> Result<String, Failure> {
///     let thing = request.await?; // Twisted: thing = yield request
///     if thing == "I love Twisted" {
///         return_value!("TWISTED IS GREAT!".to_owned()); // or: return Ok(..)
///     }
///     Err(Failure::msg("DESTROY ALL LIFE"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (request, resolver) = Deferred::new();
/// let d: Deferred<String> = thingummy(request); // a plain fn call
/// assert!(!d.is_called()); // suspended at `request.await`
/// resolver.callback("I love Twisted".to_owned()).unwrap();
/// assert_eq!(d.await.unwrap(), "TWISTED IS GREAT!");
/// # }
/// ```
///
/// # How it runs
///
/// Exactly like [`ensure_deferred`] of the body: the body runs at once,
/// inline, up to its first `.await` that has to wait (as Twisted runs the
/// generator up to its first `yield` of an unfired Deferred), so a body that
/// never waits returns an already-fired Deferred and needs no runtime.
/// After that it goes on as a task on the current Tokio runtime; with no
/// runtime the Deferred fails with [`NoRuntimeError`]. `return Ok(v)` (or
/// [`return_value!(v)`](return_value)) fires it with `v`; an error (`Err`,
/// `?`) or a panic fails it.
///
/// # Parameters and lifetimes
///
/// The Deferred lives on after the call returns, so the body is a
/// `Send + 'static` future, like a spawned task, and must own what it uses:
///
/// * **Owned parameters** (`String`, `Vec<u8>`, `Deferred<T>`, patterns such
///   as `(a, b): (u32, u32)`) are moved into the body and dropped when it
///   ends, as in an `async fn`.
/// * **`&self`** (or `self: &Self`): `self` is **cloned** into the body, so
///   `Self` must be `Clone + Send + Sync + 'static`. Write such methods on a
///   cheap handle (`#[derive(Clone)]` with the shared state behind `Arc`),
///   the Rust counterpart of Python's shared `self`. State kept in plain
///   fields of the clone (a `Cell`, a counter) is not shared with the
///   original: keep it behind `Arc`.
/// * **`self`, `mut self`, `self: Arc<Self>`** are moved in, with no clone.
/// * **Borrowed parameters** (`&str`, `&[T]`, `&T`, `&mut self`, types with a
///   lifetime other than `'static`) are a compile error that says which
///   owned type to take instead.
/// * Generic parameters must be `Send + 'static` (the compiler says which
///   bound to add).
///
/// Doc comments and other attributes stay on the function; it works on free
/// functions, inherent and trait-impl methods, generics and `where` clauses.
/// The attribute takes no arguments. The return type may be `Result<T, E>`,
/// any path ending in `Result<T, ..>` (`io::Result<T>`), or an alias of a
/// `Result`.
///
/// # Cancellation
///
/// Cancelling the Deferred is cooperative, as for [`ensure_deferred`] and in
/// Twisted: the Deferred the body is awaiting is cancelled, its `.await`
/// returns the failure (a [`CancelledError`] unless its canceller chose
/// another), and the body decides: let it propagate with `?` (the Deferred
/// fails with it), translate it, or catch it and return a value or go on.
/// Cancellation cascades through nested `#[inline_callbacks]` calls, since
/// each awaits the next one's Deferred. One difference: the body resumes on
/// the runtime, not inside `cancel()`, so the Deferred fires a little later.
///
/// ```
/// use tokio_deferred::{inline_callbacks, CancelledError, Deferred, Failure};
///
/// #[inline_callbacks]
/// async fn patient(child: Deferred<u32>) -> Result<u32, Failure> {
///     match child.await {
///         Err(f) if f.is::<CancelledError>() => Ok(0), // cancelled: give 0
///         other => other,
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (child, _resolver) = Deferred::new();
/// let d = patient(child);
/// d.cancel();
/// assert_eq!(d.await.unwrap(), 0);
/// # }
/// ```
///
/// # The function form
///
/// For a closure or a block, call [`ensure_deferred`] on an `async` block,
/// which is what the attribute expands to:
///
/// ```
/// use tokio_deferred::{ensure_deferred, succeed, Failure};
///
/// let d = succeed(20).add_callback(|n| {
///     ensure_deferred(async move {
///         let m = succeed(1).await?;
///         Ok::<_, Failure>(n + m + 21)
///     })
/// });
/// assert_eq!(d.try_take().unwrap().unwrap(), 42);
/// ```
///
/// # Compile errors
///
/// The attribute rejects, with an error at the offending token: a function
/// that is not `async`, one with no return type or a return type that is not
/// a `Result`, and borrowed parameters (see above).
///
/// ```compile_fail
/// #[tokio_deferred::inline_callbacks]
/// fn not_async() -> Result<u32, tokio_deferred::Failure> { Ok(1) }
/// ```
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use tokio_deferred_macros::inline_callbacks;
