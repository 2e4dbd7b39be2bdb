//! [`Reactor`]: a handle on a Twisted reactor and on the Tokio runtime that
//! lives as long as it.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tokio::runtime::Handle;

use crate::dispatch::{DispatchMode, Dispatcher, Job, WakeReader};
use crate::error::{
    AlreadyInstalledError, CallFromThreadError, NotReactorThreadError, ReactorShutdownError,
    UnsupportedReactorError,
};
use crate::sync::lock;

/// How long a shutdown waits for Rust work in flight, by default.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The global handle on `twisted.internet.reactor`.
static GLOBAL: PyOnceLock<Reactor> = PyOnceLock::new();

/// A handle on a Twisted reactor: runs Rust closures on the reactor thread
/// from any thread, and owns the Tokio runtime that Rust work runs on.
///
/// * **The reactor thread.** [`call_from_thread`](Self::call_from_thread)
///   queues a closure to run there, holding the GIL. On a real reactor the
///   calling thread never takes the GIL: the closure goes into a Rust queue
///   and one byte into a socket the reactor polls
///   ([`DispatchMode::WakeUpSocket`]). A reactor without file descriptors
///   (a `MemoryReactorClock` with a `callFromThread`, in tests) is woken by
///   `reactor.callFromThread` under the GIL
///   ([`DispatchMode::CallFromThread`]).
/// * **The runtime.** A multi-threaded Tokio runtime, started on first use
///   ([`ReactorBuilder::worker_threads`] sets its size), shut down when the
///   reactor fires its `"shutdown"` event (an `"after"` trigger), or at
///   process exit if the reactor never fires it (trial does not). The
///   shutdown fails every Rust Deferred still waiting for a Twisted one with
///   [`ReactorShutdownError`], gives Rust work in flight
///   [`ReactorBuilder::shutdown_grace`] to finish (running the completions
///   on the reactor thread as they come, with the GIL released in between),
///   then stops the runtime; the Twisted Deferreds of work that did not
///   finish fail with `ReactorShutdownError`. Afterwards every bridge call
///   answers `ReactorShutdownError`.
/// * **Conversions.** [`as_twisted`](Self::as_twisted),
///   [`ensure_twisted`](Self::ensure_twisted) (Rust to Twisted),
///   [`from_twisted`](Self::from_twisted) and [`call`](Self::call) (Twisted
///   to Rust) are described in the [crate docs](crate).
///
/// Cloning is cheap (an `Arc`); `Reactor` is `Send + Sync`.
///
/// # Which thread is the reactor's
///
/// The thread that makes the handle ([`Reactor::get`],
/// [`ReactorBuilder::build`]) is taken as the reactor's: make it at import
/// time or from reactor code. If the reactor already runs on another thread,
/// making the handle fails with [`NotReactorThreadError`].
#[derive(Clone)]
pub struct Reactor {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    object: Py<PyAny>,
    thread: ThreadId,
    mode: DispatchMode,
    pub(crate) dispatcher: Arc<Dispatcher>,
    reader: Option<Py<WakeReader>>,
    runtime: Mutex<Runtime>,
    worker_threads: Option<usize>,
    grace: Duration,
    /// Set when the shutdown starts: new work is refused from then on.
    stopping: AtomicBool,
    /// Rust Deferreds waiting for a Twisted Deferred, failed at shutdown.
    pending: Mutex<HashMap<u64, Weak<dyn FailOnShutdown>>>,
    next_pending: AtomicU64,
    /// The `atexit` hook, unregistered by the shutdown.
    at_exit: Mutex<Option<Py<ShutdownHook>>>,
}

enum Runtime {
    NotStarted,
    Running(tokio::runtime::Runtime),
    ShutDown,
}

/// A Rust Deferred waiting for a Twisted Deferred.
pub(crate) trait FailOnShutdown: Send + Sync {
    /// Fails it with [`ReactorShutdownError`].
    fn fail_on_shutdown(&self);
}

/// Makes a [`Reactor`] with settings other than the defaults.
///
/// ```no_run
/// use std::time::Duration;
/// use pyo3::prelude::*;
/// use tokio_deferred_twisted::ReactorBuilder;
///
/// #[pymodule]
/// fn my_extension(m: &Bound<'_, PyModule>) -> PyResult<()> {
///     // The global reactor, with a two-thread runtime.
///     ReactorBuilder::new()
///         .worker_threads(2)
///         .shutdown_grace(Duration::from_secs(2))
///         .install(m.py())?;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct ReactorBuilder {
    worker_threads: Option<usize>,
    grace: Duration,
    mode: Option<DispatchMode>,
}

impl Default for ReactorBuilder {
    fn default() -> Self {
        ReactorBuilder::new()
    }
}

impl ReactorBuilder {
    /// The defaults: Tokio's worker count (one per CPU), a grace period of
    /// [`DEFAULT_SHUTDOWN_GRACE`], the dispatch mode chosen from the reactor.
    pub fn new() -> ReactorBuilder {
        ReactorBuilder {
            worker_threads: None,
            grace: DEFAULT_SHUTDOWN_GRACE,
            mode: None,
        }
    }

    /// The number of Tokio worker threads (at least one).
    pub fn worker_threads(mut self, count: usize) -> ReactorBuilder {
        self.worker_threads = Some(count.max(1));
        self
    }

    /// How long the shutdown waits for Rust work in flight.
    pub fn shutdown_grace(mut self, grace: Duration) -> ReactorBuilder {
        self.grace = grace;
        self
    }

    /// Forces a dispatch mode instead of choosing it from the reactor's
    /// abilities. [`DispatchMode::WakeUpSocket`] still needs a reactor with
    /// `_addInternalReader`, on Unix.
    pub fn dispatch_mode(mut self, mode: DispatchMode) -> ReactorBuilder {
        self.mode = Some(mode);
        self
    }

    /// A handle on `reactor`, any reactor object (the global one, a test
    /// reactor). Registers the wake-up reader (if any), an `"after"
    /// "shutdown"` trigger and an `atexit` hook. Call it on the reactor
    /// thread.
    ///
    /// # Errors
    ///
    /// [`NotReactorThreadError`] (as a `RuntimeError`) if the reactor runs
    /// on another thread; [`UnsupportedReactorError`] if it has neither
    /// `_addInternalReader` nor `callFromThread`; a Python error from the
    /// reactor's registration methods.
    pub fn build(self, reactor: &Bound<'_, PyAny>) -> PyResult<Reactor> {
        let py = reactor.py();
        check_reactor_thread(py)?;
        let can_read = cfg!(unix) && reactor.hasattr(intern!(py, "_addInternalReader"))?;
        let can_call = reactor.hasattr(intern!(py, "callFromThread"))?;
        let mode = match self.mode {
            Some(DispatchMode::WakeUpSocket) if can_read => DispatchMode::WakeUpSocket,
            Some(DispatchMode::CallFromThread) if can_call => DispatchMode::CallFromThread,
            None if can_read => DispatchMode::WakeUpSocket,
            None if can_call => DispatchMode::CallFromThread,
            _ => {
                return Err(UnsupportedReactorError {
                    reactor: reactor.repr()?.to_string_lossy().into_owned(),
                }
                .into());
            }
        };
        let (dispatcher, reader) = match mode {
            #[cfg(unix)]
            DispatchMode::WakeUpSocket => {
                let (dispatcher, reader) = Dispatcher::socket_pair(py)?;
                reactor.call_method1(intern!(py, "_addInternalReader"), (reader.bind(py),))?;
                (dispatcher, Some(reader))
            }
            _ => (
                Dispatcher::call_from_thread(
                    reactor.getattr(intern!(py, "callFromThread"))?.unbind(),
                ),
                None,
            ),
        };
        let inner = Arc::new(Inner {
            object: reactor.clone().unbind(),
            thread: std::thread::current().id(),
            mode,
            dispatcher,
            reader,
            runtime: Mutex::new(Runtime::NotStarted),
            worker_threads: self.worker_threads,
            grace: self.grace,
            stopping: AtomicBool::new(false),
            pending: Mutex::new(HashMap::new()),
            next_pending: AtomicU64::new(0),
            at_exit: Mutex::new(None),
        });
        // The hooks hold the bridge weakly: the reactor keeping them must
        // not keep the runtime alive (a cycle through Rust that Python's
        // garbage collector cannot see).
        if reactor.hasattr(intern!(py, "addSystemEventTrigger"))? {
            reactor.call_method1(
                intern!(py, "addSystemEventTrigger"),
                ("after", "shutdown", ShutdownHook::new(py, &inner, false)?),
            )?;
        }
        let at_exit = ShutdownHook::new(py, &inner, true)?;
        py.import("atexit")?
            .call_method1(intern!(py, "register"), (at_exit.bind(py),))?;
        *lock(&inner.at_exit) = Some(at_exit);
        Ok(Reactor { inner })
    }

    /// Makes the global handle on `twisted.internet.reactor` (the one
    /// [`Reactor::get`] returns) with these settings. Call it once, on the
    /// reactor thread, before anything calls [`Reactor::get`] (in the
    /// extension module's init function, say).
    ///
    /// # Errors
    ///
    /// [`AlreadyInstalledError`] if the global handle exists already; the
    /// errors of [`build`](Self::build).
    pub fn install(self, py: Python<'_>) -> PyResult<Reactor> {
        if GLOBAL.get(py).is_some() {
            return Err(AlreadyInstalledError {}.into());
        }
        let reactor = crate::python::global_reactor(py)?;
        let handle = self.build(&reactor)?;
        GLOBAL
            .set(py, handle.clone())
            .map_err(|_| AlreadyInstalledError {})?;
        Ok(handle)
    }
}

/// Fails if the reactor already runs on another thread.
fn check_reactor_thread(py: Python<'_>) -> PyResult<()> {
    let io_thread = py
        .import("twisted.python.threadable")?
        .getattr(intern!(py, "ioThread"))?;
    if io_thread.is_none() {
        return Ok(());
    }
    let reactor_thread: u64 = io_thread.extract()?;
    let this_thread: u64 = py
        .import("threading")?
        .call_method0(intern!(py, "get_ident"))?
        .extract()?;
    if reactor_thread != this_thread {
        return Err(NotReactorThreadError {
            reactor_thread,
            this_thread,
        }
        .into());
    }
    Ok(())
}

impl Reactor {
    /// The global handle on `twisted.internet.reactor` (importing it
    /// installs Twisted's default reactor if none is installed), made on
    /// first use with [`ReactorBuilder`]'s defaults unless
    /// [`ReactorBuilder::install`] made it. Make it first on the reactor
    /// thread (see [`Reactor`]).
    ///
    /// # Errors
    ///
    /// The errors of [`ReactorBuilder::build`], the first time.
    pub fn get(py: Python<'_>) -> PyResult<Reactor> {
        GLOBAL
            .get_or_try_init(py, || {
                let reactor = crate::python::global_reactor(py)?;
                ReactorBuilder::new().build(&reactor)
            })
            .cloned()
    }

    /// A [`ReactorBuilder`] with the defaults.
    pub fn builder() -> ReactorBuilder {
        ReactorBuilder::new()
    }

    /// The reactor object.
    pub fn object<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.inner.object.bind(py).clone()
    }

    /// How closures reach the reactor thread.
    pub fn dispatch_mode(&self) -> DispatchMode {
        self.inner.mode
    }

    /// Whether the calling thread is the reactor's.
    pub fn is_reactor_thread(&self) -> bool {
        self.inner.is_reactor_thread()
    }

    /// Whether the reactor has shut down (or is shutting down): bridge
    /// calls answer [`ReactorShutdownError`].
    pub fn is_shut_down(&self) -> bool {
        self.inner.is_stopping()
    }

    /// Runs `f` on the reactor thread, holding the GIL, as soon as the
    /// reactor gets to it (Twisted's `reactor.callFromThread`; from the
    /// reactor thread too, `f` runs later, not now). Closures run in the
    /// order they were queued. A panic in `f` is caught and logged (a
    /// `tracing` error).
    ///
    /// In [`DispatchMode::WakeUpSocket`] the calling thread never takes the
    /// GIL, which is what a Tokio worker wants.
    ///
    /// # Errors
    ///
    /// [`CallFromThreadError`], which gives `f` back, if the reactor has
    /// shut down.
    pub fn call_from_thread<F>(&self, f: F) -> Result<(), CallFromThreadError>
    where
        F: FnOnce(Python<'_>) + Send + 'static,
    {
        self.inner
            .dispatcher
            .push(Box::new(f))
            .map_err(CallFromThreadError::new)
    }

    /// The Tokio runtime's handle, starting the runtime on first use.
    ///
    /// # Errors
    ///
    /// [`ReactorShutdownError`] once the reactor has shut down.
    pub fn runtime_handle(&self) -> Result<Handle, ReactorShutdownError> {
        self.inner.runtime_handle()
    }

    /// Shuts the bridge down now, as the reactor's `"shutdown"` event does:
    /// fails the Rust Deferreds waiting for Twisted ones, waits up to the
    /// grace period for Rust work in flight (running its completions, with
    /// the GIL released in between), stops the Tokio runtime, runs the last
    /// completions and refuses any more. For reactors that never fire
    /// `"shutdown"` (test reactors). Call it on the reactor thread. Does
    /// nothing the second time.
    pub fn shutdown(&self, py: Python<'_>) {
        self.inner.shutdown(py, self.inner.grace);
    }

    /// How many Rust futures or Deferreds converted to Twisted Deferreds
    /// have not delivered their result to the reactor thread yet.
    pub fn in_flight(&self) -> usize {
        self.inner.dispatcher.in_flight()
    }

    /// How many Rust Deferreds made from Twisted ones are still waiting.
    pub fn waiting(&self) -> usize {
        lock(&self.inner.pending).len()
    }
}

impl Inner {
    pub(crate) fn is_reactor_thread(&self) -> bool {
        std::thread::current().id() == self.thread
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub(crate) fn runtime_handle(&self) -> Result<Handle, ReactorShutdownError> {
        if self.is_stopping() {
            return Err(ReactorShutdownError::new());
        }
        let mut runtime = lock(&self.runtime);
        match &*runtime {
            Runtime::Running(rt) => Ok(rt.handle().clone()),
            Runtime::ShutDown => Err(ReactorShutdownError::new()),
            Runtime::NotStarted => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.enable_all().thread_name("tokio-deferred-twisted");
                if let Some(n) = self.worker_threads {
                    builder.worker_threads(n);
                }
                match builder.build() {
                    Ok(rt) => {
                        let handle = rt.handle().clone();
                        *runtime = Runtime::Running(rt);
                        Ok(handle)
                    }
                    Err(err) => {
                        tracing::error!(
                            target: "tokio_deferred_twisted",
                            "could not start the Tokio runtime: {err}"
                        );
                        Err(ReactorShutdownError::new())
                    }
                }
            }
        }
    }

    /// Queues `job` for the reactor thread, or runs it now if this is the
    /// reactor thread.
    pub(crate) fn run_on_reactor(&self, job: Job) -> Result<(), Job> {
        if self.is_reactor_thread() {
            Python::attach(job);
            Ok(())
        } else {
            self.dispatcher.push(job)
        }
    }

    /// A new key for [`add_pending`](Self::add_pending).
    pub(crate) fn new_pending_id(&self) -> u64 {
        self.next_pending.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a Rust Deferred waiting for a Twisted one; `false` once the
    /// shutdown has started.
    pub(crate) fn add_pending(&self, id: u64, waiter: Weak<dyn FailOnShutdown>) -> bool {
        let mut pending = lock(&self.pending);
        // Checked under the lock the shutdown takes, so that no waiter is
        // added after the shutdown emptied the table.
        if self.is_stopping() {
            return false;
        }
        pending.insert(id, waiter);
        true
    }

    pub(crate) fn remove_pending(&self, id: u64) {
        lock(&self.pending).remove(&id);
    }

    fn shutdown(&self, py: Python<'_>, grace: Duration) {
        let waiters = {
            let mut pending = lock(&self.pending);
            if self.stopping.swap(true, Ordering::AcqRel) {
                return;
            }
            std::mem::take(&mut *pending)
        };
        let deadline = Instant::now() + grace;
        for waiter in waiters.into_values().filter_map(|w| w.upgrade()) {
            waiter.fail_on_shutdown();
        }
        self.dispatcher.wait_idle(py, deadline);
        let runtime = std::mem::replace(&mut *lock(&self.runtime), Runtime::ShutDown);
        if let Runtime::Running(rt) = runtime {
            // Tasks still running are dropped; their Twisted Deferreds get
            // their completions (ReactorShutdownError) queued meanwhile.
            let left = deadline.saturating_duration_since(Instant::now());
            py.detach(move || rt.shutdown_timeout(left.max(Duration::from_millis(100))));
        }
        self.dispatcher.close(py);
        if let Some(reader) = &self.reader {
            let _ = self
                .object
                .bind(py)
                .call_method1(intern!(py, "_removeInternalReader"), (reader.bind(py),));
        }
        if let Some(hook) = lock(&self.at_exit).take() {
            if let Ok(atexit) = py.import("atexit") {
                let _ = atexit.call_method1(intern!(py, "unregister"), (hook,));
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Never blocks: the last handle may go on a thread of this very
        // runtime.
        let runtime = self.runtime.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Runtime::Running(rt) = std::mem::replace(runtime, Runtime::ShutDown) {
            rt.shutdown_background();
        }
    }
}

/// The callable registered with `reactor.addSystemEventTrigger("after",
/// "shutdown", ...)` and with `atexit`.
#[pyclass(frozen, module = "tokio_deferred_twisted")]
pub(crate) struct ShutdownHook {
    inner: Weak<Inner>,
    at_exit: bool,
}

impl ShutdownHook {
    fn new(py: Python<'_>, inner: &Arc<Inner>, at_exit: bool) -> PyResult<Py<ShutdownHook>> {
        Py::new(
            py,
            ShutdownHook {
                inner: Arc::downgrade(inner),
                at_exit,
            },
        )
    }
}

#[pymethods]
impl ShutdownHook {
    fn __call__(&self, py: Python<'_>) {
        if let Some(inner) = self.inner.upgrade() {
            // At exit the reactor no longer runs: waiting for work in flight
            // would only delay the exit.
            let grace = if self.at_exit {
                Duration::ZERO
            } else {
                inner.grace
            };
            inner.shutdown(py, grace);
        }
    }
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("dispatch_mode", &self.inner.mode)
            .field("shut_down", &self.inner.is_stopping())
            .field("in_flight", &self.inner.dispatcher.in_flight())
            .finish_non_exhaustive()
    }
}
