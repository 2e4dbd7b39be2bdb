//! Twisted's `Deferred` for Rust, bridged to Tokio futures.
//!
//! ```
//! use tokio_deferred::{Deferred, Failure, ensure_deferred};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // The producer fires the Deferred through its Resolver...
//! let (d, resolver) = Deferred::<String>::new();
//! // ...the consumer chains callbacks (each retypes the chain)...
//! let d = d
//!     .add_callback(|page: String| Ok(page.to_lowercase()))
//!     .add_callback(|page| Ok(page.len()))
//!     .add_errback(|f: Failure| {
//!         eprintln!("fetch failed: {f}");
//!         Ok(0)
//!     });
//! resolver.callback("<HTML>hello</HTML>".to_owned()).unwrap();
//! // ...and a Deferred is a future: await it anywhere.
//! assert_eq!(d.await.unwrap(), 18);
//!
//! // Any future becomes a Deferred.
//! let d = ensure_deferred(async { Ok::<_, Failure>(6 * 7) });
//! assert_eq!(d.await.unwrap(), 42);
//! # }
//! ```
//!
//! # Twisted → tokio-deferred
//!
//! | Twisted | tokio-deferred |
//! |---|---|
//! | `d = Deferred()` | `let (d, resolver) = Deferred::new();` |
//! | `Deferred(canceller)` | [`Deferred::with_canceller`] |
//! | `d.callback(v)` / `d.errback(f)` | [`Resolver::callback`] / [`Resolver::errback`] |
//! | `d.addCallback(f)` | [`Deferred::add_callback`] (returns the retyped Deferred) |
//! | `d.addErrback(f)` | [`Deferred::add_errback`] |
//! | `d.addBoth(f)` | [`Deferred::add_both`] |
//! | `d.addCallbacks(f, g)` | [`Deferred::add_callbacks`] |
//! | `d.chainDeferred(d2)` | [`Deferred::chain_deferred`] (takes `d2`'s [`Resolver`]) |
//! | `d.pause()` / `d.unpause()` | [`Deferred::pause`] / [`Deferred::unpause`] |
//! | `d.cancel()` | [`Deferred::cancel`], [`CancelHandle`], [`Deferred::cancel_on_drop`] |
//! | `d.called` | [`Deferred::is_called`] |
//! | `await d`, `yield d` | `d.await` |
//! | `succeed(v)` / `fail(f)` | [`succeed`] / [`fail`] |
//! | `maybeDeferred(f)` / `execute(f)` | [`maybe_deferred`] / [`execute`] |
//! | `ensureDeferred(coro)` | [`ensure_deferred`], [`Deferred::from_future`] |
//! | `passthru` / `logError` | [`pass_through`] / [`log_error`] |
//! | `setDebugging` / `getDebugging` | [`set_debugging`] / [`is_debugging`] |
//! | `Failure`, `f.trap(E)`, `f.check(E)` | [`Failure`], [`Failure::trap`], [`Failure::is`] |
//! | `AlreadyCalledError`, `CancelledError` | [`AlreadyCalledError`], [`CancelledError`] |
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
//!   Deferred fails with [`ResolverDroppedError`] instead of hanging.
//! * **Threads.** `Deferred<T>` and `Resolver<T>` are `Send + Sync`; a
//!   Deferred may be fired in one thread while callbacks are added in another.
//!   No lock is held while user code runs.
//!
//! See `DESIGN.md` for how the state machine works.

#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod debug;
mod deferred;
mod error;
mod failure;
mod functions;
pub mod future;
mod loom;
mod resolver;
mod state;

pub use debug::{is_debugging, set_debugging};
pub use deferred::{CancelHandle, CancelOnDrop, Deferred, IntoOutcome};
pub use error::{
    AlreadyCalledError, CancelledError, ChainedToSelfError, NoRuntimeError, ResolverDroppedError,
    ResultTakenError, TimeoutError,
};
pub use failure::{Failure, FailureError, MessageError, PanicError};
pub use functions::{execute, fail, log_error, maybe_deferred, pass_through, succeed};
pub use future::ensure_deferred;
pub use resolver::Resolver;
#[doc(hidden)]
pub use state::Outcome;
