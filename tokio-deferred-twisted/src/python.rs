//! The Python objects the bridge uses, imported once per interpreter.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

static DEFERRED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static FAILURE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CANCELLED_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TIMEOUT_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static SUCCEED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static FAIL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static ENSURE_DEFERRED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static COPY_CONTEXT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static FORMAT_EXCEPTION: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static IS_AWAITABLE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static IS_GENERATOR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

const DEFER: &str = "twisted.internet.defer";

/// `twisted.internet.defer.Deferred`.
pub(crate) fn deferred_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    DEFERRED.import(py, DEFER, "Deferred")
}

/// `twisted.python.failure.Failure`.
pub(crate) fn failure_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    FAILURE.import(py, "twisted.python.failure", "Failure")
}

/// `twisted.internet.defer.CancelledError`.
pub(crate) fn cancelled_error(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    CANCELLED_ERROR.import(py, DEFER, "CancelledError")
}

/// `twisted.internet.defer.TimeoutError`.
pub(crate) fn timeout_error(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    TIMEOUT_ERROR.import(py, DEFER, "TimeoutError")
}

/// `twisted.internet.defer.succeed`.
pub(crate) fn succeed(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    SUCCEED.import(py, DEFER, "succeed")
}

/// `twisted.internet.defer.fail`.
pub(crate) fn fail(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    FAIL.import(py, DEFER, "fail")
}

/// `twisted.internet.defer.ensureDeferred`.
pub(crate) fn ensure_deferred(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    ENSURE_DEFERRED.import(py, DEFER, "ensureDeferred")
}

/// `contextvars.copy_context`.
pub(crate) fn copy_context(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    COPY_CONTEXT
        .import(py, "contextvars", "copy_context")?
        .call0()
}

/// `traceback.format_exception`.
pub(crate) fn format_exception(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    FORMAT_EXCEPTION.import(py, "traceback", "format_exception")
}

/// Whether `ensureDeferred` could take `obj` (`inspect.isawaitable` or
/// `inspect.isgenerator`): a Deferred, a coroutine, a generator.
pub(crate) fn is_awaitable(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = obj.py();
    Ok(IS_AWAITABLE
        .import(py, "inspect", "isawaitable")?
        .call1((obj,))?
        .is_truthy()?
        || IS_GENERATOR
            .import(py, "inspect", "isgenerator")?
            .call1((obj,))?
            .is_truthy()?)
}

/// `twisted.internet.reactor`, installing Twisted's default reactor if none
/// is installed yet (importing the module is what installs it; the module
/// in `sys.modules` is the reactor itself, hence `import_module`).
pub(crate) fn global_reactor(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    py.import("importlib")?
        .call_method1("import_module", ("twisted.internet.reactor",))
}
