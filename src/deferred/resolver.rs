//! [`Resolver`]: the producer side of a Deferred (Twisted's `d.callback` /
//! `d.errback`).
//!
//! ```
//! use tokio_deferred::Deferred;
//!
//! let (d, resolver) = Deferred::<u32>::new();
//! let d = d.add_callback(|n| Ok(n * 2));
//! // The chain runs in the firing thread, before `callback` returns.
//! resolver.callback(21).unwrap();
//! assert_eq!(d.try_take().unwrap().unwrap(), 42);
//! ```

use std::fmt;
use std::panic::Location;
use std::sync::Arc;

use crate::Failure;
use crate::deferred::state::Inner;
use crate::error::AlreadyCalledError;

/// Fires a [`Deferred`](crate::Deferred): Twisted's `d.callback(v)` / `d.errback(f)`.
///
/// Made by [`Deferred::new`](crate::Deferred::new) or [`Deferred::with_canceller`](crate::Deferred::with_canceller). It is
/// `Clone + Send + Sync`: any clone may fire the Deferred, once. The callback
/// chain runs synchronously in the firing thread before `callback()`
/// returns (unless the Deferred is paused or waiting on another Deferred).
///
/// If every `Resolver` is dropped before the Deferred fires, the Deferred
/// fails with [`ResolverDroppedError`](crate::ResolverDroppedError), so an
/// `.await` never hangs on a producer that is gone.
pub struct Resolver<T: Send + 'static> {
    pub(crate) inner: Arc<Inner<T>>,
}

impl<T: Send + 'static> Resolver<T> {
    /// A new handle on `inner`, counted like a clone.
    pub(crate) fn from_inner(inner: Arc<Inner<T>>) -> Self {
        inner.add_resolver();
        Resolver { inner }
    }

    /// Fires the Deferred with a value and runs its callbacks.
    ///
    /// # Errors
    ///
    /// [`AlreadyCalledError`] (holding `value`) if the Deferred already
    /// fired. As in Twisted, after a `cancel()` of a Deferred with no
    /// canceller, exactly one late `callback`/`errback` is accepted and
    /// silently dropped.
    ///
    /// ```
    /// use tokio_deferred::Deferred;
    ///
    /// let (d, r) = Deferred::new();
    /// r.callback("hello").unwrap();
    /// assert!(r.callback("again").is_err());
    /// assert_eq!(d.try_take().unwrap().unwrap(), "hello");
    /// ```
    #[track_caller]
    pub fn callback(&self, value: T) -> Result<(), AlreadyCalledError<T>> {
        self.inner.fire(value, Ok, Location::caller())
    }

    /// Fires the Deferred with a failure and runs its errbacks.
    ///
    /// Anything that converts into a [`Failure`] is accepted: a `Failure`,
    /// or any `std::error::Error + Send + Sync + 'static`.
    ///
    /// # Errors
    ///
    /// [`AlreadyCalledError`] (holding the failure) if the Deferred already
    /// fired; see [`callback`](Self::callback).
    ///
    /// ```
    /// use tokio_deferred::{Deferred, Failure};
    ///
    /// let (d, r) = Deferred::<u32>::new();
    /// r.errback(Failure::msg("no luck")).unwrap();
    /// assert_eq!(d.try_take().unwrap().unwrap_err().to_string(), "no luck");
    /// ```
    #[track_caller]
    pub fn errback(&self, failure: impl Into<Failure>) -> Result<(), AlreadyCalledError<Failure>> {
        self.inner.fire(failure.into(), Err, Location::caller())
    }

    /// Fires the Deferred with `Ok` (callback) or `Err` (errback).
    ///
    /// # Errors
    ///
    /// [`AlreadyCalledError`] (holding the result) if it already fired.
    #[track_caller]
    pub fn resolve(
        &self,
        result: Result<T, Failure>,
    ) -> Result<(), AlreadyCalledError<Result<T, Failure>>> {
        self.inner.fire(result, |r| r, Location::caller())
    }

    /// Fires with `result` only if that runs nothing here but the wake of
    /// the awaiting task (nothing queued, no canceller, not paused, not
    /// fired, not traced, its Deferred handle alive); gives `result` back
    /// otherwise.
    pub(crate) fn resolve_if_idle(
        &self,
        result: Result<T, Failure>,
    ) -> Result<(), Result<T, Failure>> {
        self.inner.fire_if_idle(result)
    }

    /// Whether the Deferred has been fired (Twisted's `d.called`).
    pub fn is_called(&self) -> bool {
        self.inner.is_called()
    }

    /// Drops this Resolver, which the library function `owner` made and
    /// held: if it was the last one of an unfired Deferred, the
    /// [`ResolverDroppedError`](crate::ResolverDroppedError) names `owner`.
    pub(crate) fn release_as(self, owner: &'static str) {
        self.inner.drop_last_resolver_as(owner);
    }
}

impl<T: Send + 'static> Clone for Resolver<T> {
    fn clone(&self) -> Self {
        Resolver::from_inner(self.inner.clone())
    }
}

impl<T: Send + 'static> Drop for Resolver<T> {
    fn drop(&mut self) {
        self.inner.drop_resolver();
    }
}

impl<T: Send + 'static> fmt::Debug for Resolver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("called", &self.inner.is_called())
            .field("created", &format_args!("{}", self.inner.created_at()))
            .finish()
    }
}

/// A [`Resolver`] held by the library function `owner` (a timer, a task, a
/// queue): dropped unfired, it fails its Deferred with a
/// [`ResolverDroppedError`](crate::ResolverDroppedError) that names `owner`.
pub(crate) struct OwnedResolver<T: Send + 'static> {
    resolver: Resolver<T>,
    owner: &'static str,
}

impl<T: Send + 'static> OwnedResolver<T> {
    pub(crate) fn new(resolver: Resolver<T>, owner: &'static str) -> Self {
        OwnedResolver { resolver, owner }
    }
}

impl<T: Send + 'static> std::ops::Deref for OwnedResolver<T> {
    type Target = Resolver<T>;
    fn deref(&self) -> &Resolver<T> {
        &self.resolver
    }
}

impl<T: Send + 'static> Drop for OwnedResolver<T> {
    /// Fails the Deferred naming the owner if this is its last Resolver;
    /// the Resolver's own drop that follows is then a no-op.
    fn drop(&mut self) {
        self.resolver.inner.drop_last_resolver_as(self.owner);
    }
}

impl<T: Send + 'static> fmt::Debug for OwnedResolver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedResolver")
            .field("resolver", &self.resolver)
            .field("owner", &self.owner)
            .finish()
    }
}
