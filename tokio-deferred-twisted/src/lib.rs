//! Real Python Twisted `Deferred`s and tokio-deferred [`Deferred`]s, both
//! ways: for PyO3 extension modules that do their work in Rust (on Tokio)
//! for a Twisted program.
//!
//! Exporting an async Rust function to Python takes one line of glue,
//! [`ensure_twisted`]: Python callers get a Twisted `Deferred`.
//!
//! ```no_run
//! use pyo3::prelude::*;
//! use tokio_deferred::{Failure, defer_later};
//!
//! /// Python: `d = fetch_user(42)`, a Twisted Deferred of a dict.
//! #[pyfunction]
//! fn fetch_user(py: Python<'_>, id: u64) -> PyResult<Bound<'_, PyAny>> {
//!     tokio_deferred_twisted::ensure_twisted(py, async move {
//!         // Any Rust async code, on the bridge's Tokio runtime.
//!         let name = defer_later(std::time::Duration::from_millis(10), move || {
//!             Ok(format!("user {id}"))
//!         })
//!         .await?;
//!         Ok::<_, Failure>(std::collections::HashMap::from([("id", id.to_string()), ("name", name)]))
//!     })
//! }
//!
//! #[pymodule]
//! fn users(m: &Bound<'_, PyModule>) -> PyResult<()> {
//!     tokio_deferred_twisted::exceptions::add_to_module(m)?;
//!     m.add_function(wrap_pyfunction!(fetch_user, m)?)
//! }
//! # fn main() {}
//! ```
//!
//! And Rust code awaits Python's Deferreds (and coroutines) from any thread,
//! with [`Reactor::from_twisted`] and [`Reactor::call`]:
//!
//! ```no_run
//! use pyo3::prelude::*;
//! use tokio_deferred::Failure;
//! use tokio_deferred_twisted::Reactor;
//!
//! /// Python: `d = double_of(some_deferred_of_an_int)`.
//! #[pyfunction]
//! fn double_of(py: Python<'_>, d: Py<PyAny>) -> PyResult<Bound<'_, PyAny>> {
//!     let reactor = Reactor::get(py)?;
//!     tokio_deferred_twisted::ensure_twisted(py, async move {
//!         // Extracted as an i64 on the reactor thread; no GIL needed here.
//!         let n: i64 = reactor.from_twisted(d).await?;
//!         Ok::<_, Failure>(n * 2)
//!     })
//! }
//! # #[pymodule]
//! # fn doubles(m: &Bound<'_, PyModule>) -> PyResult<()> {
//! #     m.add_function(wrap_pyfunction!(double_of, m)?)
//! # }
//! # fn main() {}
//! ```
//!
//! # Twisted → tokio-deferred-twisted
//!
//! | Twisted | here |
//! |---|---|
//! | `reactor` | [`Reactor::get`] (the global one), [`ReactorBuilder::build`] (any other) |
//! | `reactor.callFromThread(f)` | [`Reactor::call_from_thread`] (no GIL on the calling thread) |
//! | `ensureDeferred(coro)` of Rust work | [`ensure_twisted`], [`Reactor::ensure_twisted`] |
//! | a Deferred made from another one | [`Reactor::as_twisted`] (a Rust [`Deferred`]) |
//! | `Deferred.asFuture` | [`Reactor::from_twisted`] (a Rust [`Deferred`] of a Twisted one) |
//! | `blockingCallFromThread(reactor, f)` | `reactor.call(f).await` ([`Reactor::call`]) |
//! | `d.cancel()` | either side's `cancel()` reaches the other |
//! | `Failure` | [`Failure`] holding a [`PythonError`] |
//! | `addSystemEventTrigger("after", "shutdown", ...)` | done for you: the runtime stops with the reactor |
//!
//! # The reactor thread and the GIL
//!
//! Twisted's Deferreds are not thread-safe: everything the bridge does to
//! one (`callback`, `addBoth`, `cancel`) happens on the reactor thread. A
//! Tokio worker never takes the GIL to get there: it appends a closure to a
//! Rust queue and writes a byte to a socket pair whose read end is
//! registered with the reactor as an *internal* reader, exactly how
//! Twisted's own `callFromThread` wakes the reactor (and so trial's janitor
//! leaves it alone); the reactor thread, which holds the GIL anyway, runs
//! the queued closures ([`DispatchMode::WakeUpSocket`]). Results are
//! converted to and from Python objects there, so Rust code on workers only
//! ever handles Rust values (a `Py<PyAny>` may be carried and dropped
//! without the GIL). A reactor without descriptors to poll (a test
//! reactor) is woken by `reactor.callFromThread`, which takes the GIL
//! ([`DispatchMode::CallFromThread`]).
//!
//! The first poll of a future given to [`ensure_twisted`] runs on the
//! calling thread, holding the GIL, as Twisted runs a coroutine up to its
//! first wait: keep blocking work out of it (in `defer_to_thread`, say).
//!
//! # The runtime
//!
//! Each [`Reactor`] owns a multi-threaded Tokio runtime, started on first
//! use ([`ReactorBuilder::worker_threads`]) and shut down by the reactor's
//! `"shutdown"` event, or at process exit for reactors that never fire it
//! (trial). The shutdown fails the Rust Deferreds still waiting for Twisted
//! ones with [`ReactorShutdownError`], waits up to
//! [`ReactorBuilder::shutdown_grace`] for Rust work in flight (delivering
//! what finishes, with the GIL released while it waits), stops the runtime,
//! and fails the Twisted Deferreds of work that did not finish with
//! `ReactorShutdownError`. From then on every bridge call answers
//! `ReactorShutdownError`; nothing hangs, and the process exits.
//!
//! # Cancellation
//!
//! Cancelling works both ways, as Twisted's own asyncio bridge does it
//! (`Deferred.fromFuture` / `asFuture`):
//!
//! * **Twisted cancels Rust work.** `d.cancel()` on a Twisted Deferred from
//!   [`Reactor::as_twisted`] cancels the Rust Deferred exactly as its own
//!   [`Deferred::cancel`] would: its canceller runs (at most once), a
//!   future from [`ensure_twisted`] is cancelled cooperatively (the
//!   Deferred it awaits is cancelled and its `.await` returns the failure,
//!   which the future may catch) or else dropped. The Twisted Deferred then
//!   gets *the Rust side's outcome*: at once if the Rust Deferred fired
//!   inside `cancel()` (a canceller's value, the default `CancelledError`),
//!   later if the Rust side goes on (a future that caught the cancel, a
//!   result already on its way to the reactor). It never fires twice.
//! * **Rust cancels Twisted work.** Cancelling a Rust Deferred from
//!   [`Reactor::from_twisted`] ([`Deferred::cancel`], a
//!   [`CancelHandle`](tokio_deferred::CancelHandle),
//!   [`Deferred::cancel_on_drop`], [`Deferred::add_timeout`]) cancels the
//!   Twisted Deferred on the reactor thread. On the reactor thread that is
//!   immediate and the Rust Deferred gets Twisted's outcome (a canceller
//!   that calls back gives its value). From another thread the Rust
//!   Deferred fails with `CancelledError` at once, and Twisted's `cancel()`
//!   runs on the reactor shortly after (its outcome is consumed, as
//!   `asFuture` does); the Twisted side is not touched if it fired first.
//!   A Rust Deferred from [`Reactor::call`] cancelled before the reactor
//!   got to it never runs the Python code (one from
//!   [`Reactor::from_twisted`] still cancels the Twisted Deferred, or closes
//!   the coroutine it was given).
//!
//! # Errors
//!
//! A Python exception arriving in Rust becomes a [`Failure`] holding a
//! [`PythonError`]: the exception object, its qualified type name, message
//! and formatted traceback, readable without the GIL. Sent back to Python
//! it raises *the same object*. Twisted's `CancelledError` becomes
//! [`CancelledError`](tokio_deferred::CancelledError) and back (a new
//! object each way). Rust failures become the exceptions of
//! [`exceptions`]: a panic is a [`RustPanic`](exceptions::RustPanic) with
//! the panic message, any other error a
//! [`RustError`](exceptions::RustError) whose message is the error's
//! `Display` chain. [`failure_to_exception`] and [`exception_to_failure`]
//! are the conversions.
//!
//! A failure is reported once, by the side that drops it: the bridge
//! consumes the Twisted Deferred it reads (so Twisted never logs
//! "Unhandled error in Deferred" for a failure handed to Rust), and a Rust
//! failure handed to Twisted is consumed on the Rust side; if nobody
//! handles it there, Twisted logs it, and a Python failure dropped
//! unhandled in Rust is reported by tokio-deferred (a `tracing` event with
//! target `tokio_deferred::unhandled`).
//!
//! # contextvars
//!
//! A Twisted Deferred made by the bridge fires inside the `contextvars`
//! context of the call that made it (a copy taken then), as Twisted's
//! `ensureDeferred` runs a coroutine. Python code that a Rust future
//! started from Python calls back through [`Reactor::call`] runs inside
//! that context too.
//!
//! # Tests with a MemoryReactorClock
//!
//! Twisted's `MemoryReactorClock` has no descriptors and no
//! `callFromThread`; give it one, as Synapse's `ThreadedMemoryReactorClock`
//! does, and build a [`Reactor`] on it. Call [`Reactor::shutdown`] at the
//! end of the test.
//!
//! ```python
//! class ThreadedMemoryReactorClock(MemoryReactorClock):
//!     def __init__(self):
//!         super().__init__()
//!         self.from_threads = collections.deque()
//!
//!     def callFromThread(self, f, *args, **kwargs):  # any thread
//!         self.from_threads.append((f, args, kwargs))
//!
//!     def run_from_threads(self):  # the test's thread
//!         while self.from_threads:
//!             f, args, kwargs = self.from_threads.popleft()
//!             f(*args, **kwargs)
//! ```
//!
//! # Building
//!
//! Build the extension module with maturin (1.16 sets up the linking
//! itself: no `extension-module` feature is needed, and `cargo test` links
//! libpython). Tests with an embedded interpreter import Twisted from the
//! interpreter PyO3 links, not from a venv: set `PYTHONPATH` to the venv's
//! `site-packages`. `scripts/test-twisted.sh` in the repository does all
//! of this.
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
    AlreadyInstalledError, CallFromThreadError, NotReactorThreadError, ReactorShutdownError,
    UnsupportedReactorError,
};
pub use python_error::PythonError;
pub use reactor::{DEFAULT_SHUTDOWN_GRACE, Reactor, ReactorBuilder};

use pyo3::prelude::*;
#[cfg(doc)]
use tokio_deferred::Deferred;
use tokio_deferred::Failure;

/// [`Reactor::ensure_twisted`] on the global reactor ([`Reactor::get`]):
/// the one line of glue that exports an async Rust function to Python as a
/// function returning a Twisted `Deferred` (see the [crate docs](crate)).
///
/// # Errors
///
/// The errors of [`Reactor::get`] and [`Reactor::ensure_twisted`].
#[track_caller]
pub fn ensure_twisted<'py, F, T, E>(py: Python<'py>, future: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
    E: Into<Failure> + 'static,
{
    Reactor::get(py)?.ensure_twisted(py, future)
}
