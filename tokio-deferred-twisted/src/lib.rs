//! Real Twisted Deferreds and tokio-deferred Deferreds, both ways.
#![doc(test(attr(deny(warnings))))]

mod context;
mod convert;
mod dispatch;
mod error;
pub mod exceptions;
mod from_twisted;
mod python;
mod python_error;
mod reactor;
mod sync;
mod to_twisted;

pub use convert::{exception_to_failure, failure_to_exception, pyerr_to_failure};
pub use dispatch::DispatchMode;
pub use error::{
    AlreadyInstalledError, NotReactorThreadError, ReactorShutdownError, UnsupportedReactorError,
};
pub use python_error::PythonError;
pub use reactor::{DEFAULT_SHUTDOWN_GRACE, Reactor, ReactorBuilder};

use pyo3::prelude::*;
use tokio_deferred::Failure;

/// [`Reactor::ensure_twisted`] on the global reactor ([`Reactor::get`]).
#[track_caller]
pub fn ensure_twisted<'py, F, T, E>(py: Python<'py>, future: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
    E: Into<Failure> + 'static,
{
    Reactor::get(py)?.ensure_twisted(py, future)
}
