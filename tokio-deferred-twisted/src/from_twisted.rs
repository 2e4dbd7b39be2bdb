//! Twisted to Rust: a Twisted `Deferred` (or a coroutine) as a Rust
//! [`Deferred`].
//!
//! A [`Waiter`] owns the Rust Deferred's resolver. On the reactor thread it
//! runs `ensureDeferred` on the awaitable and adds a [`Receiver`] with
//! `addBoth`, which converts the result there (the GIL is held) and fires
//! the resolver; it returns `None`, so Twisted's Deferred is consumed and
//! never logs its failure as unhandled (the Rust side reports it if nobody
//! handles it there). The Rust Deferred's canceller cancels the Twisted one
//! on the reactor thread.

use std::sync::{Arc, Mutex, Weak};

use pyo3::conversion::FromPyObjectOwned;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyWeakrefReference};
use tokio_deferred::{Deferred, Failure, Resolver, fail};

use crate::convert::{pyerr_to_failure, twisted_failure_to_failure};
use crate::reactor::{FailOnShutdown, Inner};
use crate::sync::lock;
use crate::to_twisted::run_in_context;
use crate::{Reactor, ReactorShutdownError, context, python};

impl Reactor {
    /// Rust's view of a Twisted `Deferred`, a coroutine, or anything else
    /// `ensureDeferred` accepts: a [`Deferred<T>`] that fires with its result
    /// extracted as `T` (`Py<PyAny>` to keep the object), or with its
    /// failure as a [`PythonError`](crate::PythonError) (Twisted's
    /// `CancelledError` as [`CancelledError`](tokio_deferred::CancelledError)).
    ///
    /// May be called from any thread, with or without the GIL: the
    /// callbacks are attached on the reactor thread (at once if this is the
    /// reactor thread, else through the reactor's queue), and the result is
    /// extracted there, so awaiting the Rust Deferred from a Tokio worker
    /// never needs the GIL. An object `ensureDeferred` refuses, or a
    /// failed extraction, fails the Rust Deferred with the Python error.
    ///
    /// Cancelling the Rust Deferred ([`Deferred::cancel`], a
    /// [`CancelHandle`](tokio_deferred::CancelHandle),
    /// [`Deferred::cancel_on_drop`], [`Deferred::add_timeout`]) cancels the
    /// Twisted one on the reactor thread; see the
    /// [crate docs](crate#cancellation).
    ///
    /// Once the reactor has shut down, the Deferred fails with
    /// [`ReactorShutdownError`]; one still waiting when it shuts down fails
    /// with it then. The bridge holds the Twisted Deferred weakly: if
    /// nothing else references it, it can never fire, and when Python
    /// collects it the Rust Deferred fails with
    /// [`ResolverDroppedError`](tokio_deferred::ResolverDroppedError).
    pub fn from_twisted<T>(&self, awaitable: Py<PyAny>) -> Deferred<T>
    where
        T: for<'py> FromPyObjectOwned<'py> + Send + 'static,
    {
        self.start(move |py| Ok(awaitable.into_bound(py)), Start::Awaitable)
    }

    /// Runs `f` on the reactor thread and gives its result as a Rust
    /// Deferred (Twisted's `maybeDeferred`): how a Tokio task calls Python
    /// code. What `f` returns is awaited as by
    /// [`from_twisted`](Self::from_twisted) if it is a Deferred, a coroutine
    /// or a generator, and is the result itself otherwise. An error `f`
    /// returns fails the Deferred.
    ///
    /// From a future started by [`ensure_twisted`](Self::ensure_twisted),
    /// `f` runs inside the `contextvars` context of the Python call that
    /// started it. If the Rust Deferred is cancelled before the reactor got
    /// to `f`, `f` does not run.
    pub fn call<T, F>(&self, f: F) -> Deferred<T>
    where
        T: for<'py> FromPyObjectOwned<'py> + Send + 'static,
        F: for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>> + Send + 'static,
    {
        self.start(f, Start::Value)
    }

    fn start<T, F>(&self, f: F, start: Start) -> Deferred<T>
    where
        T: for<'py> FromPyObjectOwned<'py> + Send + 'static,
        F: for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>> + Send + 'static,
    {
        let inner = &self.inner;
        if inner.is_stopping() {
            return fail(ReactorShutdownError::new());
        }
        let id = inner.new_pending_id();
        let side = Arc::new(Mutex::new(Side::NotAttached { cancelled: false }));
        let (cancel_side, cancel_inner) = (Arc::downgrade(&side), Arc::downgrade(inner));
        let (deferred, resolver) =
            Deferred::with_canceller(move |_| cancel_twisted(&cancel_side, &cancel_inner));
        let waiter = Arc::new(Waiter {
            resolver,
            side,
            inner: Arc::downgrade(inner),
            id,
        });
        let as_dyn: Arc<dyn FailOnShutdown> = waiter.clone();
        if !inner.add_pending(id, Arc::downgrade(&as_dyn)) {
            waiter.fail_on_shutdown();
            return deferred;
        }
        let context = context::current();
        let attaching = waiter.clone();
        let job = Box::new(move |py: Python<'_>| attach(py, attaching, f, start, context));
        if inner.run_on_reactor(job).is_err() {
            waiter.fail_on_shutdown();
        }
        deferred
    }
}

/// What the object `f` returns may be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Anything `ensureDeferred` accepts (else its error fails the Rust
    /// Deferred).
    Awaitable,
    /// That, or a plain value, which is the result.
    Value,
}

/// Where the Twisted side of a [`Waiter`] is.
enum Side {
    /// The reactor has not run `f` yet; `cancelled` if the Rust Deferred was
    /// cancelled meanwhile (then `f` never runs).
    NotAttached { cancelled: bool },
    /// Waiting for the Twisted Deferred: a weak reference to it, so that
    /// no cycle through Rust (invisible to Python's garbage collector)
    /// keeps it alive. The Deferred's producer keeps it alive; if nothing
    /// does, it can never fire, and when it goes the Rust Deferred fails
    /// with `ResolverDroppedError` instead of waiting forever.
    Attached(Py<PyAny>),
    /// The Twisted Deferred was cancelled (or never made), or its result
    /// came.
    Done,
}

/// A Rust Deferred waiting for a Twisted one.
struct Waiter<T: Send + 'static> {
    resolver: Resolver<T>,
    /// Shared with the Rust Deferred's canceller.
    side: Arc<Mutex<Side>>,
    inner: Weak<Inner>,
    id: u64,
}

/// The part of a [`Waiter`] a [`Receiver`] (not generic) calls.
trait Receive: Send + Sync {
    fn receive(&self, result: &Bound<'_, PyAny>);
}

/// The Rust Deferred's canceller: cancels the Twisted Deferred on the
/// reactor thread (now, if this is it), or keeps it from starting.
fn cancel_twisted(side: &Weak<Mutex<Side>>, inner: &Weak<Inner>) {
    let Some(side) = side.upgrade() else {
        return;
    };
    let weak_twisted = {
        let mut side = lock(&side);
        match std::mem::replace(&mut *side, Side::Done) {
            Side::NotAttached { .. } => {
                *side = Side::NotAttached { cancelled: true };
                return;
            }
            Side::Attached(weak_twisted) => weak_twisted,
            Side::Done => return,
        }
    };
    let Some(inner) = inner.upgrade() else {
        return;
    };
    let job = Box::new(move |py: Python<'_>| {
        let weak_twisted = weak_twisted.bind(py);
        let Ok(weak_twisted) = weak_twisted.cast::<PyWeakrefReference>() else {
            return;
        };
        let Some(twisted) = weak_twisted.upgrade() else {
            return;
        };
        // A canceller that raises: Twisted lets it out of cancel().
        if let Err(err) = twisted.call_method0(intern!(py, "cancel")) {
            tracing::error!(
                target: "tokio_deferred_twisted",
                "cancelling a Twisted Deferred raised: {err}"
            );
        }
    });
    // Refused after the shutdown: the Twisted Deferred is left alone.
    let _ = inner.run_on_reactor(job);
}

impl<T> Receive for Waiter<T>
where
    T: for<'py> FromPyObjectOwned<'py> + Send + 'static,
{
    fn receive(&self, result: &Bound<'_, PyAny>) {
        let py = result.py();
        *lock(&self.side) = Side::Done;
        let is_failure = python::failure_type(py)
            .and_then(|t| result.is_instance(t))
            .unwrap_or(false);
        let result: Result<T, Failure> = if is_failure {
            Err(twisted_failure_to_failure(result))
        } else {
            result
                .extract::<T>()
                .map_err(|e| pyerr_to_failure(py, e.into()))
        };
        // Already fired: it was cancelled from another thread, or failed by
        // the shutdown. The Twisted result is consumed all the same.
        let _ = self.resolver.resolve(result);
    }
}

impl<T: Send + 'static> FailOnShutdown for Waiter<T> {
    fn fail_on_shutdown(&self) {
        *lock(&self.side) = Side::Done;
        let _ = self.resolver.errback(ReactorShutdownError::new());
    }
}

impl<T: Send + 'static> Drop for Waiter<T> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.remove_pending(self.id);
        }
    }
}

/// On the reactor thread: runs `f` (in `context`), `ensureDeferred` on what
/// it returns, and `addBoth(receiver)`.
fn attach<T, F>(
    py: Python<'_>,
    waiter: Arc<Waiter<T>>,
    f: F,
    start: Start,
    context: Option<Arc<Py<PyAny>>>,
) where
    T: for<'py> FromPyObjectOwned<'py> + Send + 'static,
    F: for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>> + Send + 'static,
{
    let cancelled_early = {
        let mut side = lock(&waiter.side);
        match &*side {
            Side::NotAttached { cancelled } => *cancelled,
            Side::Done | Side::Attached(_) => {
                *side = Side::Done;
                return;
            }
        }
    };
    if cancelled_early {
        *lock(&waiter.side) = Side::Done;
        // Python code `call` was to run never starts; an object given to
        // `from_twisted` exists already, so the cancel reaches it.
        if start == Start::Awaitable {
            if let Ok(obj) = f(py) {
                cancel_unstarted(&obj, waiter);
            }
        }
        return;
    }
    let twisted = match context {
        Some(context) => start_in_context(py, context.bind(py), f, start),
        None => f(py).and_then(|obj| ensure_deferred(obj, start)),
    };
    let twisted = match twisted {
        Ok(twisted) => twisted,
        Err(err) => {
            *lock(&waiter.side) = Side::Done;
            let _ = waiter.resolver.errback(pyerr_to_failure(py, err));
            return;
        }
    };
    // Cancelled while `f` ran (from another thread): cancel right after
    // attaching.
    let cancel = {
        let mut side = lock(&waiter.side);
        match &*side {
            Side::NotAttached { cancelled } => {
                let cancelled = *cancelled;
                *side = match (cancelled, PyWeakrefReference::new(&twisted)) {
                    (false, Ok(weak)) => Side::Attached(weak.into_any().unbind()),
                    // Cancelled already, or (not for a Deferred) no weak
                    // reference possible: nothing left to cancel.
                    _ => Side::Done,
                };
                cancelled
            }
            Side::Attached(_) | Side::Done => false,
        }
    };
    let receiver = Receiver {
        waiter: waiter as Arc<dyn Receive>,
    };
    let added =
        Py::new(py, receiver).and_then(|r| twisted.call_method1(intern!(py, "addBoth"), (r,)));
    if let Err(err) = added {
        tracing::error!(target: "tokio_deferred_twisted", "addBoth failed: {err}");
    }
    if cancel {
        let _ = twisted.call_method0(intern!(py, "cancel"));
    }
}

/// Cancels what `from_twisted` was given, before the bridge attached to it:
/// a Deferred is cancelled (its outcome consumed by a receiver), a
/// coroutine or generator, never started, is closed.
fn cancel_unstarted<T>(obj: &Bound<'_, PyAny>, waiter: Arc<Waiter<T>>)
where
    T: for<'py> FromPyObjectOwned<'py> + Send + 'static,
{
    let py = obj.py();
    let cancelled = match python::deferred_type(py).and_then(|t| obj.is_instance(t)) {
        Ok(true) => Py::new(
            py,
            Receiver {
                waiter: waiter as Arc<dyn Receive>,
            },
        )
        .and_then(|r| obj.call_method1(intern!(py, "addBoth"), (r,)))
        .and_then(|_| obj.call_method0(intern!(py, "cancel"))),
        _ if obj.hasattr(intern!(py, "close")).unwrap_or(false) => {
            obj.call_method0(intern!(py, "close"))
        }
        _ => return,
    };
    if let Err(err) = cancelled {
        tracing::error!(
            target: "tokio_deferred_twisted",
            "cancelling a Twisted Deferred raised: {err}"
        );
    }
}

/// `ensureDeferred(obj)`; with [`Start::Value`], `succeed(obj)` for an
/// object that is not awaitable.
fn ensure_deferred<'py>(obj: Bound<'py, PyAny>, start: Start) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    if start == Start::Value && !python::is_awaitable(&obj)? {
        return python::succeed(py)?.call1((obj,));
    }
    python::ensure_deferred(py)?.call1((obj,))
}

/// `context.run(start)` where `start` calls `f` and `ensureDeferred`, so
/// that a coroutine starts (and captures) that context.
fn start_in_context<'py, F>(
    py: Python<'py>,
    context: &Bound<'py, PyAny>,
    f: F,
    start: Start,
) -> PyResult<Bound<'py, PyAny>>
where
    F: for<'a> FnOnce(Python<'a>) -> PyResult<Bound<'a, PyAny>> + Send + 'static,
{
    let cell = Arc::new(Mutex::new(Some(f)));
    let taken = cell.clone();
    let start = PyCFunction::new_closure(py, None, None, move |args, _kwargs| {
        let py = args.py();
        let f = lock(&taken).take();
        match f {
            Some(f) => f(py)
                .and_then(|obj| ensure_deferred(obj, start))
                .map(Bound::unbind),
            None => Ok(py.None()),
        }
    })?;
    let none = py.None().into_bound(py);
    run_in_context(context, start.as_any(), &none, || lock(&cell).is_none())
}

/// The callback added with `addBoth`: hands the result to the Rust side
/// and returns `None` (the Twisted result is consumed).
#[pyclass(frozen, module = "tokio_deferred_twisted")]
struct Receiver {
    waiter: Arc<dyn Receive>,
}

#[pymethods]
impl Receiver {
    fn __call__(&self, result: &Bound<'_, PyAny>) {
        self.waiter.receive(result);
    }
}
