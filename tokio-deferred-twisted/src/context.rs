//! The Python `contextvars` context that Rust work started from Python runs
//! in.
//!
//! [`Reactor::ensure_twisted`](crate::Reactor::ensure_twisted) copies the
//! caller's context (`contextvars.copy_context()`), fires the Twisted
//! Deferred inside it, and keeps it in a Tokio task-local for the future:
//! Python code that the future calls back through
//! [`Reactor::call`](crate::Reactor::call) runs inside that context too, as
//! a nested `await` would in Python.

use std::sync::Arc;

use pyo3::prelude::*;

tokio::task_local! {
    static CONTEXT: Arc<Py<PyAny>>;
}

/// The context of the Rust future being polled, if it was started from
/// Python.
pub(crate) fn current() -> Option<Arc<Py<PyAny>>> {
    CONTEXT.try_with(Arc::clone).ok()
}

/// Runs `future` with `context` as its context.
pub(crate) fn scope<F: Future>(
    context: Arc<Py<PyAny>>,
    future: F,
) -> tokio::task::futures::TaskLocalFuture<Arc<Py<PyAny>>, F> {
    CONTEXT.scope(context, future)
}
