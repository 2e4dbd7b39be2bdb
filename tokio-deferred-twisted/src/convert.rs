//! Failures across the border: a Rust [`Failure`] as a Python exception and
//! back (the table is in [`crate::exceptions`]).

use std::fmt::Write as _;

use pyo3::exceptions::PyBaseException;
use pyo3::prelude::*;
use pyo3::{PyErr, intern};
use tokio_deferred::{CancelledError, Failure, PanicError, TimeoutError};

use crate::exceptions::{RustError, RustPanic};
use crate::{PythonError, ReactorShutdownError, python};

/// The Python exception that stands for `failure` (see
/// [`crate::exceptions`] for the mapping).
///
/// A failure that came from Python gives back the very exception object it
/// carries.
///
/// ```
/// use pyo3::prelude::*;
/// use tokio_deferred::Failure;
/// use tokio_deferred_twisted::exceptions::{RustError, RustPanic};
/// use tokio_deferred_twisted::failure_to_exception;
///
/// Python::initialize();
/// Python::attach(|py| {
///     let e = failure_to_exception(py, &Failure::msg("disk on fire"));
///     assert!(e.is_instance_of::<RustError>());
///     assert_eq!(e.to_string(), "disk on fire");
///
///     let panic = std::panic::catch_unwind(|| panic!("oops")).unwrap_err();
///     let e = failure_to_exception(py, &Failure::from_panic(panic));
///     assert!(e.is_instance_of::<RustPanic>());
///     assert_eq!(e.to_string(), "oops");
/// });
/// ```
pub fn failure_to_exception<'py>(
    py: Python<'py>,
    failure: &Failure,
) -> Bound<'py, PyBaseException> {
    match try_failure_to_exception(py, failure) {
        Ok(e) => e,
        // Building the exception failed (an import error, say): raise that.
        Err(err) => err.into_value(py).into_bound(py),
    }
}

fn try_failure_to_exception<'py>(
    py: Python<'py>,
    failure: &Failure,
) -> PyResult<Bound<'py, PyBaseException>> {
    if let Some(e) = failure.downcast_ref::<PythonError>() {
        return Ok(e.value(py));
    }
    if let Some(e) = failure.downcast_ref::<PyErr>() {
        return Ok(e.clone_ref(py).into_value(py).into_bound(py));
    }
    if let Some(p) = failure.downcast_ref::<PanicError>() {
        return Ok(RustPanic::new_err(p.message().to_owned())
            .into_value(py)
            .into_bound(py));
    }
    let value = if failure.is::<CancelledError>() {
        python::cancelled_error(py)?.call0()?
    } else if let Some(t) = failure.downcast_ref::<TimeoutError>() {
        python::timeout_error(py)?.call1((t.timeout.as_secs_f64(), "Deferred"))?
    } else if let Some(e) = failure.downcast_ref::<ReactorShutdownError>() {
        let err: PyErr = e.clone().into();
        err.into_value(py).into_bound(py).into_any()
    } else {
        let e = RustError::new_err(display_chain(failure))
            .into_value(py)
            .into_bound(py);
        e.setattr(intern!(py, "rust_type"), failure.type_name())?;
        e.into_any()
    };
    Ok(value.cast_into::<PyBaseException>()?)
}

/// The failure's `Display`, then each `source()`'s, joined by `": "`.
fn display_chain(failure: &Failure) -> String {
    let mut text = failure.to_string();
    let mut source = failure.error().source();
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

/// The Rust [`Failure`] for a Python exception: `CancelledError` for
/// Twisted's `CancelledError`, otherwise a [`PythonError`] holding the
/// exception.
///
/// ```
/// use pyo3::exceptions::PyKeyError;
/// use pyo3::prelude::*;
/// use tokio_deferred_twisted::{exception_to_failure, PythonError};
///
/// Python::initialize();
/// Python::attach(|py| {
///     let e = PyKeyError::new_err("alice").into_value(py).into_bound(py);
///     let failure = exception_to_failure(&e);
///     let error = failure.downcast_ref::<PythonError>().unwrap();
///     assert_eq!(error.type_name(), "KeyError");
///     assert!(error.value(py).is(&e)); // the same object
/// });
/// ```
pub fn exception_to_failure(value: &Bound<'_, PyBaseException>) -> Failure {
    let py = value.py();
    if let Ok(cancelled) = python::cancelled_error(py) {
        if value.is_instance(cancelled).unwrap_or(false) {
            return Failure::new(CancelledError::new());
        }
    }
    Failure::new(PythonError::from_value(value))
}

/// The Rust [`Failure`] for a raised Python error (see
/// [`exception_to_failure`]).
pub fn pyerr_to_failure(py: Python<'_>, err: PyErr) -> Failure {
    // `into_value` puts the traceback on the exception object.
    exception_to_failure(err.into_value(py).bind(py))
}

/// The Rust [`Failure`] for what a Twisted errback receives: a
/// `twisted.python.failure.Failure` (its `value` is taken) or an exception.
pub(crate) fn twisted_failure_to_failure(failure: &Bound<'_, PyAny>) -> Failure {
    let py = failure.py();
    // A Twisted Failure is itself a BaseException: check for it first.
    let is_failure = python::failure_type(py)
        .and_then(|t| failure.is_instance(t))
        .unwrap_or(false);
    let value = if is_failure {
        failure
            .getattr(intern!(py, "value"))
            .and_then(|v| Ok(v.cast_into::<PyBaseException>()?))
    } else {
        failure
            .cast::<PyBaseException>()
            .cloned()
            .map_err(PyErr::from)
    };
    match value {
        Ok(e) => exception_to_failure(&e),
        Err(err) => pyerr_to_failure(py, err),
    }
}
