//! Support for `#[inline_callbacks]` (Twisted's `@inlineCallbacks`): the
//! [`return_value!`](crate::return_value) macro and the hidden helpers the
//! attribute expands to.

/// Returns `Ok(v)` from the enclosing `#[inline_callbacks]` function or
/// `async` block: Twisted's `returnValue(v)`, for code ported line by line.
///
/// `return_value!(v)` expands to `return Ok(v)`, and `return_value!()` to
/// `return Ok(())`. Plain `return Ok(v)` (or a final `Ok(v)`) is the
/// idiomatic form; Twisted itself deprecated `returnValue` in 24.7 in favour
/// of `return v`. Unlike Twisted's, it cannot exit the generator from a
/// function called by it: it returns from the nearest function, closure or
/// `async` block, as `return` does.
///
/// ```
/// use tokio_deferred::{ensure_deferred, return_value, succeed, Failure};
///
/// async fn thingummy() -> Result<&'static str, Failure> {
///     let thing = succeed("I love Twisted").await?;
///     if thing == "I love Twisted" {
///         return_value!("TWISTED IS GREAT!"); // Twisted: returnValue(...)
///     }
///     Err(Failure::msg("DESTROY ALL LIFE"))
/// }
///
/// let d = ensure_deferred(thingummy()); // or mark it #[inline_callbacks]
/// assert_eq!(d.try_take().unwrap().unwrap(), "TWISTED IS GREAT!");
/// ```
#[macro_export]
macro_rules! return_value {
    () => {
        return ::core::result::Result::Ok(())
    };
    ($value:expr $(,)?) => {
        return ::core::result::Result::Ok($value)
    };
}

/// Helpers for the code `#[inline_callbacks]` generates. Not public API.
#[doc(hidden)]
pub mod private {
    use std::future::Future;

    use crate::{Deferred, Failure, ensure_deferred};

    /// What an `#[inline_callbacks]` function may return: `Result<T, E>`
    /// with `E: Into<Failure>`.
    #[diagnostic::on_unimplemented(
        message = "#[inline_callbacks] functions must return `Result<T, E>` with `E: Into<Failure>`, not `{Self}`",
        label = "not a `Result<T, E>`",
        note = "the function becomes `fn(..) -> Deferred<T>`; return `Result<(), Failure>` for no value"
    )]
    pub trait InlineCallbacksReturn {
        /// The success type, `T`.
        type Ok: Send + 'static;
        /// The error type, `E`.
        type Err: Into<Failure> + 'static;
        /// Identity.
        fn into_result(self) -> Result<Self::Ok, Self::Err>;
    }

    impl<T: Send + 'static, E: Into<Failure> + 'static> InlineCallbacksReturn for Result<T, E> {
        type Ok = T;
        type Err = E;
        fn into_result(self) -> Result<T, E> {
            self
        }
    }

    /// Starts the body of an `#[inline_callbacks]` function; `R` is the
    /// declared return type, which also fixes the type of `?` and `return`
    /// inside the body.
    #[track_caller]
    pub fn inline_callbacks<R, F>(future: F) -> Deferred<R::Ok>
    where
        R: InlineCallbacksReturn,
        F: Future<Output = R> + Send + 'static,
    {
        ensure_deferred(async move { future.await.into_result() })
    }

    /// Clones the receiver of a `&self` method into the Deferred.
    #[diagnostic::on_unimplemented(
        message = "#[inline_callbacks] on a `&self` method clones `self` into the Deferred, so `{Self}` must implement `Clone`",
        label = "`{Self}` is not `Clone`",
        note = "make `{Self}` a cheap handle (`#[derive(Clone)]`, shared state behind `Arc`), or take `self: Arc<Self>` or `self`"
    )]
    pub trait CloneReceiver: Sized {
        /// `Clone::clone`.
        fn clone_receiver(&self) -> Self;
    }

    impl<S: Clone> CloneReceiver for S {
        fn clone_receiver(&self) -> S {
            self.clone()
        }
    }
}
