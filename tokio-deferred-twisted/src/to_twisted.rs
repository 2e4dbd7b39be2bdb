//! Rust to Twisted: a [`Deferred`] or a future as a Twisted `Deferred`.
//!
//! The Twisted Deferred is made with a canceller (a [`Link`]) and, as its
//! first callback, the link's `uncancel`; the Rust Deferred gets one
//! callback that delivers its result on the reactor thread (at once if it
//! fires there, else through the reactor's queue).
//!
//! Cancelling follows Twisted's own asyncio bridge (`Deferred.fromFuture`):
//! the Twisted Deferred ends with *whatever the Rust side ends with*.
//!
//! 1. Twisted's `cancel()` calls the link, which cancels the Rust Deferred
//!    as its own `cancel()` would (its canceller runs; an `ensure_deferred`
//!    future is cancelled cooperatively, else dropped).
//! 2. If that fired the Rust Deferred there and then, its callback has
//!    already fired the Twisted Deferred with the outcome: `cancel()` sees
//!    it fired and adds nothing.
//! 3. Otherwise the Rust side goes on (a future that catches the
//!    cancellation, a result already on its way to the reactor). So that
//!    Twisted does not fail the Deferred with its own `CancelledError`, the
//!    link fires it with itself as a marker, which `uncancel` replaces with
//!    a fresh Deferred (with the same canceller): the original now waits on
//!    the fresh one, which the delivery fires later. A second `cancel()`
//!    reaches the fresh one, and so the Rust side again.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::{IntoPyObjectExt, intern};
use tokio_deferred::{CancelHandle, Deferred, Failure, ResolverDroppedError, ensure_deferred};

use crate::convert::failure_to_exception;
use crate::reactor::Inner;
use crate::sync::lock;
use crate::{Reactor, ReactorShutdownError, context, python};

impl Reactor {
    /// Twisted's view of a Rust [`Deferred`]: a Twisted `Deferred` that
    /// fires with the Rust Deferred's result (converted with
    /// [`IntoPyObject`] on the reactor thread) or its failure (converted as
    /// [`crate::exceptions`] says), on the reactor thread, inside the
    /// `contextvars` context of this call. Twisted's `cancel()` cancels the
    /// Rust Deferred (see the [crate docs](crate#cancellation)).
    ///
    /// A Rust Deferred that has already fired gives an already-fired
    /// Twisted Deferred (no thread hop).
    ///
    /// # Errors
    ///
    /// [`ReactorShutdownError`] once the reactor has shut down; a Python
    /// error if Twisted cannot be imported.
    pub fn as_twisted<'py, T>(
        &self,
        py: Python<'py>,
        deferred: Deferred<T>,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        if self.inner.is_stopping() {
            return Err(ReactorShutdownError::new().into());
        }
        if let Some(result) = deferred.try_take() {
            return already_fired(py, result);
        }
        let context = Arc::new(python::copy_context(py)?.unbind());
        self.pending_as_twisted(py, deferred, context)
    }

    /// Runs a Rust future for Python (Twisted's `ensureDeferred`): a
    /// Twisted `Deferred` of its output, as [`as_twisted`](Self::as_twisted).
    ///
    /// The future is polled at once, on this thread (with the GIL held and
    /// the Tokio runtime entered), up to its first suspension, then runs on
    /// the bridge's runtime ([`ensure_deferred`]). A future that finishes in
    /// that first poll gives an already-fired Deferred. Twisted's `cancel()`
    /// cancels it cooperatively: the Deferred it awaits is cancelled (its
    /// `.await` returns the failure, which the future may catch); a future
    /// awaiting anything else is dropped and the Twisted Deferred fails with
    /// `CancelledError`. A panic becomes a `RustPanic` exception.
    ///
    /// The future keeps this call's `contextvars` context: Python code it
    /// runs through [`call`](Self::call) runs inside it.
    ///
    /// # Errors
    ///
    /// [`ReactorShutdownError`] once the reactor has shut down; a Python
    /// error if Twisted cannot be imported.
    #[track_caller]
    pub fn ensure_twisted<'py, F, T, E>(
        &self,
        py: Python<'py>,
        future: F,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
        E: Into<Failure> + 'static,
    {
        let handle = self.inner.runtime_handle()?;
        let context = Arc::new(python::copy_context(py)?.unbind());
        let future = context::scope(context.clone(), future);
        let deferred = {
            let _entered = handle.enter();
            ensure_deferred(future)
        };
        if let Some(result) = deferred.try_take() {
            return already_fired(py, result);
        }
        self.pending_as_twisted(py, deferred, context)
    }

    fn pending_as_twisted<'py, T>(
        &self,
        py: Python<'py>,
        deferred: Deferred<T>,
        context: Arc<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        let link = Bound::new(
            py,
            Link {
                cancel: deferred.cancel_handle(),
                context,
                target: Mutex::new(None),
            },
        )?;
        let twisted = Link::new_target(&link)?;
        let inner = self.inner.clone();
        inner.dispatcher.begin();
        let link = link.unbind();
        // `add_both` consumes the Rust result: nothing is left for the Rust
        // side to report as unhandled; Twisted reports it if nobody handles
        // it there.
        drop(deferred.add_both(move |result| {
            deliver_from_any_thread(inner, link, result);
            Ok(())
        }));
        Ok(twisted)
    }
}

/// `succeed(value)` or `fail(exception)`.
fn already_fired<'py, T>(py: Python<'py>, result: Result<T, Failure>) -> PyResult<Bound<'py, PyAny>>
where
    T: for<'a> IntoPyObject<'a>,
{
    match result.map(|v| v.into_bound_py_any(py)) {
        Ok(Ok(value)) => python::succeed(py)?.call1((value,)),
        Ok(Err(err)) => python::fail(py)?.call1((err.into_value(py),)),
        Err(failure) => python::fail(py)?.call1((failure_to_exception(py, &failure),)),
    }
}

/// The Rust result is here: fire the Twisted Deferred now if this is the
/// reactor thread, else queue it for the reactor.
fn deliver_from_any_thread<T>(inner: Arc<Inner>, link: Py<Link>, result: Result<T, Failure>)
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    if inner.is_reactor_thread() {
        Python::attach(|py| deliver(py, &inner, link.bind(py), result));
        inner.dispatcher.finish();
    } else {
        let dispatcher = inner.dispatcher.clone();
        // After the shutdown the job is refused and dropped here, without
        // the GIL (PyO3 defers the reference counting).
        let _ = dispatcher.push_finished(Box::new(move |py| {
            deliver(py, &inner, link.bind(py), result);
        }));
    }
}

/// Fires the link's current Twisted Deferred with `result`, inside the
/// link's context.
fn deliver<T>(py: Python<'_>, inner: &Inner, link: &Bound<'_, Link>, result: Result<T, Failure>)
where
    T: for<'a> IntoPyObject<'a>,
{
    let Some(target) = lock(&link.get().target).take() else {
        return;
    };
    let target = target.into_bound(py);
    let (method, argument) = match result.map(|v| v.into_bound_py_any(py)) {
        Ok(Ok(value)) => (intern!(py, "callback"), value),
        Ok(Err(err)) => (
            intern!(py, "errback"),
            err.into_value(py).into_bound(py).into_any(),
        ),
        Err(failure) => {
            // Work dropped by the runtime's shutdown.
            let failure = if inner.is_stopping() && failure.is::<ResolverDroppedError>() {
                Failure::new(ReactorShutdownError::new())
            } else {
                failure
            };
            (
                intern!(py, "errback"),
                failure_to_exception(py, &failure).into_any(),
            )
        }
    };
    let fired = target.getattr(method).and_then(|fire| {
        run_in_context(link.get().context.bind(py), &fire, &argument, || {
            target
                .getattr(intern!(py, "called"))
                .and_then(|c| c.is_truthy())
                .unwrap_or(true)
        })
    });
    if let Err(err) = fired {
        tracing::error!(
            target: "tokio_deferred_twisted",
            "could not fire a Twisted Deferred with a Rust result: {err}"
        );
    }
}

/// `context.run(f, argument)`; if the context could not be entered (it is
/// already entered on this thread: a re-entrant call) and `f` did not run
/// (`ran()` is false), calls `f(argument)` in the current context.
pub(crate) fn run_in_context<'py>(
    context: &Bound<'py, PyAny>,
    f: &Bound<'py, PyAny>,
    argument: &Bound<'py, PyAny>,
    ran: impl FnOnce() -> bool,
) -> PyResult<Bound<'py, PyAny>> {
    let py = context.py();
    match context.call_method1(intern!(py, "run"), (f, argument)) {
        Err(err) if err.is_instance_of::<PyRuntimeError>(py) && !ran() => f.call1((argument,)),
        other => other,
    }
}

/// The canceller of a Twisted Deferred made from a Rust one, and the link
/// from the Rust result to the Twisted Deferred that receives it.
#[pyclass(frozen, module = "tokio_deferred_twisted")]
pub(crate) struct Link {
    /// Cancels the Rust Deferred.
    cancel: CancelHandle,
    /// The `contextvars` context the Twisted Deferred fires in.
    context: Arc<Py<PyAny>>,
    /// The Twisted Deferred the Rust result goes to; `None` once delivered.
    target: Mutex<Option<Py<PyAny>>>,
}

impl Link {
    /// `Deferred(canceller=link)` with `link.uncancel` as its first
    /// callback, made the link's target.
    fn new_target<'py>(link: &Bound<'py, Link>) -> PyResult<Bound<'py, PyAny>> {
        let py = link.py();
        let deferred = python::deferred_type(py)?.call1((link,))?;
        deferred.call_method1(
            intern!(py, "addCallback"),
            (link.getattr(intern!(py, "uncancel"))?,),
        )?;
        *lock(&link.get().target) = Some(deferred.clone().unbind());
        Ok(deferred)
    }
}

#[pymethods]
impl Link {
    /// Twisted's canceller: cancels the Rust side (see the module docs).
    fn __call__(slf: &Bound<'_, Self>, deferred: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        slf.get().cancel.cancel();
        if deferred.getattr(intern!(py, "called"))?.is_truthy()? {
            return Ok(());
        }
        deferred.call_method1(intern!(py, "callback"), (slf,))?;
        Ok(())
    }

    /// The first callback: replaces the marker the canceller fired with by
    /// a fresh Deferred for the Rust result still to come.
    fn uncancel<'py>(
        slf: &Bound<'py, Self>,
        result: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if result.is(slf) {
            Link::new_target(slf)
        } else {
            Ok(result)
        }
    }
}
