//! [`PythonError`]: a Python exception travelling through Rust.

use std::fmt;

use pyo3::exceptions::PyBaseException;
use pyo3::prelude::*;
use pyo3::types::PyType;
use pyo3::{PyTypeCheck, intern};

use crate::python;

/// A Python exception, as a Rust error: what a [`Failure`](tokio_deferred::Failure)
/// holds when a Twisted Deferred failed (or a Python call raised).
///
/// It keeps the exception object itself, so that sending the failure back
/// to Python raises *the same object* (`except E as e: e is original`), and
/// what Rust code needs without the GIL: the exception's qualified type
/// name, its message and its formatted traceback, all read once, when the
/// exception crossed into Rust. Dropping it needs no GIL either (PyO3 defers
/// the reference count update to the next time a thread holds the GIL).
///
/// ```
/// use pyo3::exceptions::PyValueError;
/// use pyo3::prelude::*;
/// use tokio_deferred::Failure;
/// use tokio_deferred_twisted::PythonError;
///
/// Python::initialize();
/// let failure: Failure = Python::attach(|py| {
///     let err = PyValueError::new_err("no such user");
///     PythonError::new(py, err).into()
/// });
/// // Without the GIL: the type name, message and traceback.
/// let error = failure.downcast_ref::<PythonError>().unwrap();
/// assert_eq!(error.type_name(), "ValueError");
/// assert_eq!(error.message(), "no such user");
/// assert_eq!(failure.to_string(), "ValueError: no such user");
/// // With it: the exception object and its type.
/// Python::attach(|py| assert!(error.is_instance_of::<PyValueError>(py)));
/// ```
pub struct PythonError {
    value: Py<PyBaseException>,
    type_name: String,
    message: String,
    traceback: String,
}

impl PythonError {
    /// Takes a raised Python error (for example the `Err` of a PyO3 call),
    /// with its traceback.
    pub fn new(py: Python<'_>, err: PyErr) -> PythonError {
        // `into_value` puts the traceback on the exception object.
        PythonError::from_value(err.into_value(py).bind(py))
    }

    /// Takes an exception object.
    pub fn from_value(value: &Bound<'_, PyBaseException>) -> PythonError {
        let py = value.py();
        let ty = value.get_type();
        let type_name = qualified_name(&ty);
        let message = value
            .str()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|_| String::from("<exception str() failed>"));
        let traceback = format_traceback(py, value).unwrap_or_else(|_| {
            if message.is_empty() {
                format!("{type_name}\n")
            } else {
                format!("{type_name}: {message}\n")
            }
        });
        PythonError {
            value: value.clone().unbind(),
            type_name,
            message,
            traceback,
        }
    }

    /// The exception object.
    pub fn value<'py>(&self, py: Python<'py>) -> Bound<'py, PyBaseException> {
        self.value.bind(py).clone()
    }

    /// The exception as a [`PyErr`] to raise (the same object).
    pub fn to_pyerr(&self, py: Python<'_>) -> PyErr {
        PyErr::from_value(self.value(py).into_any())
    }

    /// The exception type's fully qualified name, as Python 3.13's
    /// `type.__fully_qualified_name__`: `"ValueError"` for a built-in
    /// exception, `"twisted.internet.error.ConnectionRefusedError"` for
    /// others.
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// `str()` of the exception.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The formatted traceback (`traceback.format_exception`), ending with
    /// the `Type: message` line; just that line when the exception was never
    /// raised.
    pub fn traceback(&self) -> &str {
        &self.traceback
    }

    /// Whether the exception is an instance of the Python type `T` (a
    /// subclass counts), as `isinstance(e, T)`.
    pub fn is_instance_of<T: PyTypeCheck>(&self, py: Python<'_>) -> bool {
        self.value.bind(py).is_instance_of::<T>()
    }

    /// `isinstance(e, ty)` for a type object, e.g. an exception class
    /// imported from a Python module.
    pub fn is_instance(&self, ty: &Bound<'_, PyType>) -> bool {
        self.value.bind(ty.py()).is_instance(ty).unwrap_or(false)
    }
}

/// `type.__fully_qualified_name__` (PEP 737): the module is left out for
/// built-in types.
fn qualified_name(ty: &Bound<'_, PyType>) -> String {
    ty.fully_qualified_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from("<unknown exception type>"))
}

fn format_traceback(py: Python<'_>, value: &Bound<'_, PyBaseException>) -> PyResult<String> {
    let lines = python::format_exception(py)?.call1((value,))?;
    let text = intern!(py, "").call_method1(intern!(py, "join"), (lines,))?;
    text.extract::<String>()
}

impl fmt::Display for PythonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(&self.type_name)
        } else {
            write!(f, "{}: {}", self.type_name, self.message)
        }
    }
}

impl fmt::Debug for PythonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PythonError")
            .field("type_name", &self.type_name)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl std::error::Error for PythonError {}
