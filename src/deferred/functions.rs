//! Deferreds from plain values and functions: [`succeed`], [`fail`],
//! [`maybe_deferred`], [`execute`], and the chain helpers [`pass_through`]
//! and [`log_error`].
//!
//! ```
//! use tokio_deferred::{maybe_deferred, succeed, Failure};
//!
//! fn is_valid_user(name: &str) -> Result<bool, Failure> {
//!     Ok(name == "alice")
//! }
//! // A synchronous result wrapped as a Deferred, like Twisted's succeed().
//! let d = maybe_deferred(|| is_valid_user("alice"));
//! assert!(d.try_take().unwrap().unwrap());
//! let d = succeed(1).add_callback(|x| Ok(x + 1));
//! assert_eq!(d.try_take().unwrap().unwrap(), 2);
//! ```

use std::panic::{AssertUnwindSafe, Location, catch_unwind};

use crate::deferred::IntoOutcome;
use crate::{Deferred, Failure};

/// A Deferred that has already succeeded with `value` (Twisted's `succeed`).
///
/// It holds `value` in the handle: no allocation (see
/// [`Deferred`](crate::Deferred#what-rust-does-better-than-twisted-here)).
///
/// ```
/// let d = tokio_deferred::succeed("ok");
/// assert!(d.is_called());
/// assert_eq!(d.try_take().unwrap().unwrap(), "ok");
/// ```
#[track_caller]
pub fn succeed<T: Send + 'static>(value: T) -> Deferred<T> {
    Deferred::ready(Ok(value), Location::caller())
}

/// A Deferred that has already failed (Twisted's `fail`).
///
/// ```
/// use tokio_deferred::{fail, Failure};
/// let d = fail::<u8>(Failure::msg("nope"));
/// assert_eq!(d.try_take().unwrap().unwrap_err().to_string(), "nope");
/// ```
#[track_caller]
pub fn fail<T: Send + 'static>(failure: impl Into<Failure>) -> Deferred<T> {
    Deferred::ready(Err(failure.into()), Location::caller())
}

/// Calls `f` and wraps what it returns in a Deferred (Twisted's
/// `maybeDeferred`): `Ok`/`Err` become a fired Deferred, a returned
/// `Deferred` is returned as is, and a panic becomes a failed Deferred.
///
/// ```
/// use tokio_deferred::{maybe_deferred, Deferred, Failure};
///
/// let d = maybe_deferred(|| -> Result<u8, Failure> { panic!("oops") });
/// assert!(d.try_take().unwrap().unwrap_err().is_panic());
///
/// let (inner, r) = Deferred::<u8>::new();
/// let d = maybe_deferred(move || inner);
/// r.callback(1).unwrap();
/// assert_eq!(d.try_take().unwrap().unwrap(), 1);
/// ```
#[track_caller]
pub fn maybe_deferred<F, R>(f: F) -> Deferred<R::Output>
where
    F: FnOnce() -> R,
    R: IntoOutcome,
{
    let at = Location::caller();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.into_deferred(at),
        Err(payload) => Deferred::ready(Err(Failure::from_panic(payload)), at),
    }
}

/// Calls `f` now and returns its result as a fired Deferred (Twisted's
/// `execute`); a panic becomes a failure.
///
/// ```
/// let d = tokio_deferred::execute(|| "42".parse::<u32>());
/// assert_eq!(d.try_take().unwrap().unwrap(), 42);
/// ```
#[track_caller]
pub fn execute<F, T, E>(f: F) -> Deferred<T>
where
    F: FnOnce() -> Result<T, E>,
    T: Send + 'static,
    E: Into<Failure>,
{
    let at = Location::caller();
    let r = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(Into::into),
        Err(payload) => Err(Failure::from_panic(payload)),
    };
    Deferred::ready(r, at)
}

/// A callback that passes its value on unchanged (Twisted's `passthru`).
///
/// ```
/// use tokio_deferred::{pass_through, succeed};
/// let d = succeed(3).add_callbacks(pass_through, |f| Err(f));
/// assert_eq!(d.try_take().unwrap().unwrap(), 3);
/// ```
pub fn pass_through<T>(value: T) -> Result<T, Failure> {
    Ok(value)
}

/// An errback that logs the failure (a `tracing` error event with target
/// `tokio_deferred::log_error`) and passes it on (Twisted's `logError`).
///
/// ```
/// use tokio_deferred::{fail, log_error, Failure};
/// let d = fail::<u8>(Failure::msg("disk full")).add_errback(log_error);
/// assert!(d.try_take().unwrap().is_err()); // still failed
/// ```
pub fn log_error<T>(failure: Failure) -> Result<T, Failure> {
    tracing::error!(
        target: "tokio_deferred::log_error",
        failure = %failure,
        error_type = failure.type_name(),
        "Unhandled Error: {failure}"
    );
    Err(failure)
}
