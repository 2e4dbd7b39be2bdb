//! The Python exceptions the bridge raises for Rust failures.
//!
//! | Rust failure | Python exception |
//! |---|---|
//! | [`PythonError`](crate::PythonError) (a Python exception that came from Python) | the same exception object |
//! | [`pyo3::PyErr`] | its exception object |
//! | [`PanicError`](tokio_deferred::PanicError) (a panic) | [`RustPanic`], the panic message as its argument |
//! | [`CancelledError`](tokio_deferred::CancelledError) | `twisted.internet.defer.CancelledError` |
//! | [`TimeoutError`](tokio_deferred::TimeoutError) | `twisted.internet.defer.TimeoutError(seconds, "Deferred")` |
//! | [`ReactorShutdownError`](crate::ReactorShutdownError) | [`ReactorShutdownError`] |
//! | any other error | [`RustError`], whose message is the error's `Display` followed by each `source()`'s, joined by `": "`; its `rust_type` attribute is the Rust type name |
//!
//! Add them to your extension module with [`add_to_module`] so that Python
//! code can catch them by name.

use pyo3::exceptions::PyException;
use pyo3::prelude::*;

pyo3::create_exception!(
    tokio_deferred_twisted,
    RustPanic,
    PyException,
    "A panic in Rust code called through the bridge; the argument is the panic message."
);

pyo3::create_exception!(
    tokio_deferred_twisted,
    RustError,
    PyException,
    "A Rust error with no Python counterpart; the message is the error's Display chain and \
     `rust_type` the Rust type name."
);

pyo3::create_exception!(
    tokio_deferred_twisted,
    ReactorShutdownError,
    RustError,
    "The reactor (and the bridge's Tokio runtime) has shut down: no more Rust work can run."
);

/// Adds [`RustPanic`], [`RustError`] and [`ReactorShutdownError`] to `module`.
///
/// ```
/// use pyo3::prelude::*;
///
/// #[pymodule]
/// fn my_extension(m: &Bound<'_, PyModule>) -> PyResult<()> {
///     tokio_deferred_twisted::exceptions::add_to_module(m)?;
///     Ok(())
/// }
/// # fn main() {}
/// ```
pub fn add_to_module(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add("RustPanic", py.get_type::<RustPanic>())?;
    module.add("RustError", py.get_type::<RustError>())?;
    module.add(
        "ReactorShutdownError",
        py.get_type::<ReactorShutdownError>(),
    )?;
    Ok(())
}
