//! The bridge's own errors (Rust side); each converts into a Python
//! exception with [`From`] so that `?` works in `#[pyfunction]`s.

use pyo3::PyErr;
use pyo3::exceptions::PyRuntimeError;

use crate::exceptions;

/// The reactor has shut down (or is shutting down), and the bridge's Tokio
/// runtime with it: no more work can be started, and Deferreds that were
/// still waiting failed with this error.
///
/// In Python it is [`exceptions::ReactorShutdownError`] (a subclass of
/// [`exceptions::RustError`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error(
    "the Twisted reactor has shut down, and the Tokio runtime of its bridge with it; \
     start Rust work only while the reactor runs"
)]
#[non_exhaustive]
pub struct ReactorShutdownError {}

impl ReactorShutdownError {
    /// A new `ReactorShutdownError`.
    pub fn new() -> Self {
        ReactorShutdownError {}
    }
}

impl From<ReactorShutdownError> for PyErr {
    fn from(err: ReactorShutdownError) -> PyErr {
        exceptions::ReactorShutdownError::new_err(err.to_string())
    }
}

/// [`Reactor::call_from_thread`](crate::Reactor::call_from_thread) after
/// the reactor shut down: the closure was not queued, and is given back.
#[derive(thiserror::Error)]
#[error(
    "the Twisted reactor has shut down, so the closure cannot run on it; \
     call into the reactor only while it runs"
)]
pub struct CallFromThreadError {
    closure: Box<dyn FnOnce(pyo3::Python<'_>) + Send + 'static>,
}

impl CallFromThreadError {
    pub(crate) fn new(closure: Box<dyn FnOnce(pyo3::Python<'_>) + Send + 'static>) -> Self {
        CallFromThreadError { closure }
    }

    /// The closure that was not queued.
    pub fn into_inner(self) -> Box<dyn FnOnce(pyo3::Python<'_>) + Send + 'static> {
        self.closure
    }
}

impl std::fmt::Debug for CallFromThreadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallFromThreadError")
            .finish_non_exhaustive()
    }
}

impl From<CallFromThreadError> for PyErr {
    fn from(err: CallFromThreadError) -> PyErr {
        exceptions::ReactorShutdownError::new_err(err.to_string())
    }
}

/// A [`Reactor`](crate::Reactor) was captured on a thread that is not the
/// reactor's: the bridge needs to know which thread runs the reactor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the reactor runs on thread {reactor_thread}, not on this thread ({this_thread}); \
     capture the reactor on its own thread (at import time or from reactor code)"
)]
pub struct NotReactorThreadError {
    /// `threading.get_ident()` of the reactor's thread.
    pub reactor_thread: u64,
    /// `threading.get_ident()` of the calling thread.
    pub this_thread: u64,
}

impl From<NotReactorThreadError> for PyErr {
    fn from(err: NotReactorThreadError) -> PyErr {
        PyRuntimeError::new_err(err.to_string())
    }
}

/// The reactor offers no way in from other threads: neither an
/// internal-reader registration (`_addInternalReader`, for the wake-up
/// socket) nor `callFromThread`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the reactor {reactor} has neither _addInternalReader nor callFromThread; \
     use a real reactor, or give a test reactor a callFromThread (see MemoryReactorClock in the docs)"
)]
pub struct UnsupportedReactorError {
    /// The reactor's `repr()`.
    pub reactor: String,
}

impl From<UnsupportedReactorError> for PyErr {
    fn from(err: UnsupportedReactorError) -> PyErr {
        PyRuntimeError::new_err(err.to_string())
    }
}

/// [`ReactorBuilder::install`](crate::ReactorBuilder::install) was called
/// after the global reactor handle had already been made (by an earlier
/// `install` or by [`Reactor::get`](crate::Reactor::get)).
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error(
    "the global reactor handle already exists; call ReactorBuilder::install once, \
     before the first Reactor::get (e.g. in the module's init function)"
)]
#[non_exhaustive]
pub struct AlreadyInstalledError {}

impl From<AlreadyInstalledError> for PyErr {
    fn from(err: AlreadyInstalledError) -> PyErr {
        PyRuntimeError::new_err(err.to_string())
    }
}
