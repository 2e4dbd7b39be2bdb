//! [`Failure`]: Twisted's `twisted.python.failure.Failure`, for any Rust error.
//!
//! ```
//! use tokio_deferred::{Failure, CancelledError};
//!
//! let failure = Failure::new(CancelledError::new());
//! assert!(failure.is::<CancelledError>());
//! // `trap` gives the error back when it is of the asked type...
//! let trapped = failure.clone().trap::<CancelledError>().unwrap();
//! assert_eq!(trapped.to_string(), "the Deferred was cancelled");
//! // ...and the failure itself otherwise, so `?` re-raises it like Twisted's `trap`.
//! let other = Failure::msg("boom");
//! assert!(other.trap::<CancelledError>().is_err());
//! ```

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// Object-safe view of an error that can also be downcast through an `Arc`.
trait AnyError: Error + Send + Sync + 'static {
    fn as_any(&self) -> &(dyn Any + Send + Sync);
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    fn as_error(&self) -> &(dyn Error + Send + Sync + 'static);
    fn type_name(&self) -> &'static str;
}

impl<E: Error + Send + Sync + 'static> AnyError for E {
    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
    fn as_error(&self) -> &(dyn Error + Send + Sync + 'static) {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<E>()
    }
}

/// An error travelling down a Deferred's errback chain: Twisted's `Failure`.
///
/// A `Failure` wraps any `std::error::Error + Send + Sync + 'static`. The `?`
/// operator converts such errors into a `Failure`, so a callback can write
/// `let n: u32 = s.parse()?;`. Cloning is cheap (the error is shared).
///
/// | Twisted | tokio-deferred |
/// |---|---|
/// | `Failure(exc)` | [`Failure::new`], `?`, `.into()` |
/// | `f.check(E)` | [`Failure::is`] |
/// | `f.value` | [`Failure::downcast_ref`], [`Failure::error`] |
/// | `f.trap(E)` | [`Failure::trap`] (re-raise with `?`) |
/// | `f.getErrorMessage()` | `f.to_string()` |
/// | `f.raiseException()` | `return Err(f)` or convert into `Box<dyn Error>` |
///
/// `Failure` does not implement `std::error::Error` itself (like
/// `anyhow::Error`), so that every error type converts into it; convert it
/// into `Box<dyn Error + Send + Sync>` with `.into()` where an `Error` is needed.
#[derive(Clone)]
pub struct Failure {
    error: Arc<dyn AnyError>,
}

/// A plain message error, made by [`Failure::msg`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MessageError(pub String);

/// A panic caught in user code (a callback, errback, canceller, thread
/// function, ...) and turned into a [`Failure`].
///
/// Twisted turns every `BaseException` raised in a callback into a `Failure`;
/// tokio-deferred does the same with panics, so a panicking callback never
/// unwinds out of `callback()` and never poisons a Deferred.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("panicked: {message}")]
#[non_exhaustive]
pub struct PanicError {
    message: String,
}

impl PanicError {
    /// The panic's message (its `&str` or `String` payload), or a placeholder
    /// when the payload was of another type.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// An error given to [`Failure::from_boxed`].
#[derive(Debug)]
struct BoxedError(Box<dyn Error + Send + Sync + 'static>);

impl fmt::Display for BoxedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Error for BoxedError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

/// A [`Failure`] seen as a `std::error::Error`, made by converting a
/// `Failure` into `Box<dyn Error + Send + Sync>`.
#[derive(Clone)]
pub struct FailureError(pub Failure);

impl fmt::Debug for FailureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for FailureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Error for FailureError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.error().source()
    }
}

impl Failure {
    /// The wrapped error object. Always go through this: `Arc<dyn AnyError>`
    /// is itself an `Error` and so would match the blanket `AnyError` impl.
    fn inner(&self) -> &dyn AnyError {
        &*self.error
    }

    /// Wraps an error.
    ///
    /// ```
    /// use tokio_deferred::Failure;
    /// let f = Failure::new(std::io::Error::other("disk on fire"));
    /// assert_eq!(f.to_string(), "disk on fire");
    /// ```
    pub fn new<E: Error + Send + Sync + 'static>(error: E) -> Self {
        // A FailureError is a Failure in disguise: unwrap it instead of nesting.
        let any: &dyn Any = &error;
        if let Some(inner) = any.downcast_ref::<FailureError>() {
            return inner.0.clone();
        }
        Failure {
            error: Arc::new(error),
        }
    }

    /// A failure carrying only a message (a [`MessageError`]).
    ///
    /// ```
    /// use tokio_deferred::{Failure, MessageError};
    /// let f = Failure::msg("no such user");
    /// assert!(f.is::<MessageError>());
    /// assert_eq!(f.to_string(), "no such user");
    /// ```
    pub fn msg(message: impl Into<String>) -> Self {
        Failure::new(MessageError(message.into()))
    }

    /// Wraps an already boxed error. [`is`](Self::is),
    /// [`downcast_ref`](Self::downcast_ref) and [`trap`](Self::trap) see
    /// through the box (except `trap`, which can only give back an error it
    /// owns alone; a boxed one is matched with `is`/`downcast_ref`).
    pub fn from_boxed(error: Box<dyn Error + Send + Sync + 'static>) -> Self {
        match error.downcast::<FailureError>() {
            Ok(f) => f.0,
            Err(error) => Failure::new(BoxedError(error)),
        }
    }

    /// Turns a caught panic payload into a failure wrapping a [`PanicError`].
    pub fn from_panic(payload: Box<dyn Any + Send>) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "Box<dyn Any> (a panic payload that is not a string)".to_owned()
        };
        Failure::new(PanicError { message })
    }

    /// Whether the wrapped error is an `E` (Twisted's `Failure.check`).
    pub fn is<E: Error + 'static>(&self) -> bool {
        self.downcast_ref::<E>().is_some()
    }

    /// The wrapped error as an `E`, if it is one (Twisted's `Failure.value`).
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        let any = self.inner().as_any();
        if let Some(e) = any.downcast_ref::<E>() {
            return Some(e);
        }
        any.downcast_ref::<BoxedError>()
            .and_then(|b| b.0.downcast_ref::<E>())
    }

    /// Twisted's `Failure.trap`: gives the error back when it is an `E`,
    /// otherwise returns `Err(self)` so that `?` re-raises the failure down
    /// the errback chain unchanged.
    ///
    /// ```
    /// use tokio_deferred::{Deferred, CancelledError, Failure};
    ///
    /// let (d, resolver) = Deferred::<u32>::new();
    /// let d = d.add_errback(|f: Failure| {
    ///     f.trap::<CancelledError>()?; // anything else goes on down the chain
    ///     Ok(0)
    /// });
    /// d.cancel();
    /// # drop(resolver);
    /// assert_eq!(d.try_take().unwrap().unwrap(), 0);
    /// ```
    pub fn trap<E: Error + Send + Sync + 'static>(self) -> Result<Arc<E>, Failure> {
        if !self.inner().as_any().is::<E>() {
            return Err(self);
        }
        match self.error.clone().into_any().downcast::<E>() {
            Ok(e) => Ok(e),
            Err(_) => Err(self),
        }
    }

    /// The wrapped error.
    pub fn error(&self) -> &(dyn Error + Send + Sync + 'static) {
        match self.inner().as_any().downcast_ref::<BoxedError>() {
            Some(b) => &*b.0,
            None => self.inner().as_error(),
        }
    }

    /// The Rust type name of the wrapped error (like Twisted's `Failure.type`).
    pub fn type_name(&self) -> &'static str {
        self.inner().type_name()
    }

    /// Whether this failure was made from a caught panic.
    pub fn is_panic(&self) -> bool {
        self.is::<PanicError>()
    }

    /// Whether two failures share the same error object (Twisted compares
    /// Failures by identity).
    pub fn ptr_eq(&self, other: &Failure) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.error), Arc::as_ptr(&other.error))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.error(), f)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Failure({}: {})", self.type_name(), self)
    }
}

impl<E: Error + Send + Sync + 'static> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure::new(error)
    }
}

impl From<Failure> for Box<dyn Error + Send + Sync + 'static> {
    fn from(failure: Failure) -> Self {
        Box::new(FailureError(failure))
    }
}

impl From<Failure> for Box<dyn Error + 'static> {
    fn from(failure: Failure) -> Self {
        Box::new(FailureError(failure))
    }
}
