//! `tokio_deferred_demo`: the extension module that the Twisted bridge's
//! Python tests, its twisted.web example and its benchmarks import.
//!
//! Every function that returns a Twisted Deferred is one line of glue over
//! an `async` Rust body: [`tokio_deferred_twisted::ensure_twisted`].

#![deny(unsafe_code)]

mod alloc;
mod events;
mod web;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use tokio_deferred::{CancelledError, Deferred, Failure, defer_later, ensure_deferred};
use tokio_deferred_twisted::{DispatchMode, PythonError, Reactor, ensure_twisted};

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

fn secs(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds).unwrap_or_default()
}

/// A handle on a reactor other than the global one (a test reactor).
#[pyclass(frozen)]
struct Bridge {
    reactor: Reactor,
}

#[pymethods]
impl Bridge {
    #[new]
    #[pyo3(signature = (reactor, workers = 2, grace = 5.0, mode = None))]
    fn new(
        reactor: &Bound<'_, PyAny>,
        workers: usize,
        grace: f64,
        mode: Option<&str>,
    ) -> PyResult<Bridge> {
        let mut builder = Reactor::builder()
            .worker_threads(workers)
            .shutdown_grace(secs(grace));
        match mode {
            Some("socket") => builder = builder.dispatch_mode(DispatchMode::WakeUpSocket),
            Some("callFromThread") => builder = builder.dispatch_mode(DispatchMode::CallFromThread),
            _ => {}
        }
        Ok(Bridge {
            reactor: builder.build(reactor)?,
        })
    }

    /// `"socket"` or `"callFromThread"`.
    fn mode(&self) -> &'static str {
        mode_name(self.reactor.dispatch_mode())
    }

    fn shutdown(&self, py: Python<'_>) {
        self.reactor.shutdown(py);
    }

    fn in_flight(&self) -> usize {
        self.reactor.in_flight()
    }

    /// `value` after `delay` seconds, on a Tokio worker.
    fn later<'py>(
        &self,
        py: Python<'py>,
        value: Py<PyAny>,
        delay: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.reactor.ensure_twisted(py, later_body(value, delay))
    }

    /// Awaits `awaitable` on a Tokio worker and returns its result.
    fn await_value<'py>(
        &self,
        py: Python<'py>,
        awaitable: Py<PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let reactor = self.reactor.clone();
        self.reactor.ensure_twisted(py, async move {
            tokio::task::yield_now().await;
            reactor.from_twisted::<Py<PyAny>>(awaitable).await
        })
    }
}

fn mode_name(mode: DispatchMode) -> &'static str {
    match mode {
        DispatchMode::WakeUpSocket => "socket",
        DispatchMode::CallFromThread => "callFromThread",
        _ => "other",
    }
}

async fn later_body(value: Py<PyAny>, delay: f64) -> Result<Py<PyAny>, Failure> {
    tokio::time::sleep(secs(delay)).await;
    Ok(value)
}

/// Counters a test reads to see what the Rust side did.
#[pyclass(frozen)]
#[derive(Default)]
struct Probe {
    canceller_runs: AtomicUsize,
    saw_cancel: AtomicUsize,
    dropped: AtomicUsize,
    finished: AtomicUsize,
}

#[pymethods]
impl Probe {
    #[new]
    fn new() -> Probe {
        Probe::default()
    }
    /// How many times a Rust canceller ran.
    #[getter]
    fn canceller_runs(&self) -> usize {
        self.canceller_runs.load(Ordering::SeqCst)
    }
    /// How many times a Rust future saw a `CancelledError` at an `.await`.
    #[getter]
    fn saw_cancel(&self) -> usize {
        self.saw_cancel.load(Ordering::SeqCst)
    }
    /// How many Rust futures were dropped before they finished.
    #[getter]
    fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
    /// How many Rust futures finished.
    #[getter]
    fn finished(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }
}

/// Counts a drop before `finish()`.
struct DropGuard {
    probe: Py<Probe>,
    done: bool,
}

impl DropGuard {
    fn finish(mut self) {
        self.done = true;
        self.probe.get().finished.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.done {
            self.probe.get().dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn reactor(py: Python<'_>) -> PyResult<Reactor> {
    Reactor::get(py)
}

// ---- Rust to Twisted -------------------------------------------------------

/// `value + 1`, computed at once: an already-fired Deferred.
#[pyfunction]
fn ready(py: Python<'_>, value: i64) -> PyResult<Bound<'_, PyAny>> {
    ensure_twisted(py, async move { Ok::<_, Failure>(value + 1) })
}

/// `value` after `delay` seconds (a Tokio timer, on a worker).
#[pyfunction]
#[pyo3(signature = (value, delay = 0.0))]
fn later(py: Python<'_>, value: Py<PyAny>, delay: f64) -> PyResult<Bound<'_, PyAny>> {
    ensure_twisted(py, later_body(value, delay))
}

/// `value`, from a Tokio worker after one yield (no timer).
#[pyfunction]
fn hop(py: Python<'_>, value: Py<PyAny>) -> PyResult<Bound<'_, PyAny>> {
    ensure_twisted(py, async move {
        tokio::task::yield_now().await;
        Ok::<_, Failure>(value)
    })
}

/// An error with a source, after `delay` seconds: a `RustError` whose
/// message is the chain.
#[pyfunction]
#[pyo3(signature = (message, delay = 0.0))]
fn fail_later(py: Python<'_>, message: String, delay: f64) -> PyResult<Bound<'_, PyAny>> {
    #[derive(Debug, thiserror::Error)]
    #[error("request failed")]
    struct Outer(#[source] std::io::Error);
    ensure_twisted(py, async move {
        tokio::time::sleep(secs(delay)).await;
        Err::<(), _>(Outer(std::io::Error::other(message)))
    })
}

/// Panics with `message`, at once (`delay` < 0) or after `delay` seconds.
#[pyfunction]
#[pyo3(signature = (message, delay = 0.0))]
fn panic_later(py: Python<'_>, message: String, delay: f64) -> PyResult<Bound<'_, PyAny>> {
    ensure_twisted(py, async move {
        if delay >= 0.0 {
            tokio::time::sleep(secs(delay)).await;
        }
        if !message.is_empty() {
            panic!("{message}");
        }
        Ok::<(), Failure>(())
    })
}

/// A Rust Deferred with a canceller, fired with `value` after `delay`
/// seconds by a Tokio task. Its canceller counts its runs on `probe` and
/// fires it with `on_cancel` if given (else it fails with CancelledError).
#[pyfunction]
#[pyo3(signature = (probe, value, delay, on_cancel = None))]
fn with_canceller<'py>(
    py: Python<'py>,
    probe: Py<Probe>,
    value: Py<PyAny>,
    delay: f64,
    on_cancel: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let reactor = reactor(py)?;
    let handle = reactor.runtime_handle()?;
    let counter = probe.clone_ref(py);
    let (d, resolver) = Deferred::<Py<PyAny>>::with_canceller(move |r| {
        counter.get().canceller_runs.fetch_add(1, Ordering::SeqCst);
        if let Some(v) = on_cancel {
            let _ = r.callback(v);
        }
    });
    handle.spawn(async move {
        tokio::time::sleep(secs(delay)).await;
        let _ = resolver.callback(value);
    });
    reactor.as_twisted(py, d)
}

/// A future awaiting a `defer_later` Deferred of `delay` seconds. Each
/// cancel it sees is counted on `probe`; it absorbs `patience` of them
/// (awaiting a new `defer_later` each time), then, after one more hop to a
/// worker, returns `on_cancel` if given, else fails with the
/// CancelledError.
#[pyfunction]
#[pyo3(signature = (probe, value, delay, on_cancel = None, patience = 0))]
fn cooperative<'py>(
    py: Python<'py>,
    probe: Py<Probe>,
    value: Py<PyAny>,
    delay: f64,
    on_cancel: Option<Py<PyAny>>,
    patience: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let guard = DropGuard {
        probe: probe.clone_ref(py),
        done: false,
    };
    ensure_twisted(py, async move {
        let mut seen = 0;
        let out = loop {
            match defer_later(secs(delay), || Ok(())).await {
                Ok(()) => break Ok(value),
                Err(f) if f.is::<CancelledError>() => {
                    seen += 1;
                    probe.get().saw_cancel.fetch_add(1, Ordering::SeqCst);
                    if seen > patience {
                        tokio::task::yield_now().await;
                        break on_cancel.ok_or(f);
                    }
                }
                Err(f) => break Err(f),
            }
        };
        guard.finish();
        out
    })
}

/// A future awaiting a plain Tokio sleep (no Deferred): cancelling drops it.
#[pyfunction]
fn sleeper(py: Python<'_>, probe: Py<Probe>, delay: f64) -> PyResult<Bound<'_, PyAny>> {
    let guard = DropGuard { probe, done: false };
    ensure_twisted(py, async move {
        tokio::time::sleep(secs(delay)).await;
        guard.finish();
        Ok::<_, Failure>("slept")
    })
}

// ---- Twisted to Rust -------------------------------------------------------

/// Awaits `awaitable` (a Deferred, a coroutine) on a Tokio worker and
/// returns its result, or re-raises its failure (the same exception).
#[pyfunction]
fn await_value(py: Python<'_>, awaitable: Py<PyAny>) -> PyResult<Bound<'_, PyAny>> {
    let reactor = reactor(py)?;
    ensure_twisted(py, async move {
        tokio::task::yield_now().await; // on a worker from here on
        reactor.from_twisted::<Py<PyAny>>(awaitable).await
    })
}

/// Awaits `awaitable` on a worker, then panics with its result in the
/// message.
#[pyfunction]
fn await_then_panic(py: Python<'_>, awaitable: Py<PyAny>) -> PyResult<Bound<'_, PyAny>> {
    let reactor = reactor(py)?;
    ensure_twisted(py, async move {
        tokio::task::yield_now().await;
        let n: i64 = reactor.from_twisted(awaitable).await?;
        if n >= 0 {
            panic!("got {n}");
        }
        Ok::<_, Failure>(n)
    })
}

/// Awaits `awaitable` as an `i64` on a worker (extracted on the reactor
/// thread) and returns twice it.
#[pyfunction]
fn await_int(py: Python<'_>, awaitable: Py<PyAny>) -> PyResult<Bound<'_, PyAny>> {
    let reactor = reactor(py)?;
    ensure_twisted(py, async move {
        tokio::task::yield_now().await;
        let n: i64 = reactor.from_twisted(awaitable).await?;
        Ok::<_, Failure>(n * 2)
    })
}

/// Calls `f(*args)` on the reactor from a Tokio worker and returns what
/// its Deferred (or coroutine) gives.
#[pyfunction]
#[pyo3(signature = (f, *args))]
fn call_python<'py>(
    py: Python<'py>,
    f: Py<PyAny>,
    args: Py<PyTuple>,
) -> PyResult<Bound<'py, PyAny>> {
    let reactor = reactor(py)?;
    ensure_twisted(py, async move {
        tokio::task::yield_now().await;
        reactor
            .call::<Py<PyAny>, _>(move |py| f.bind(py).call1(args.bind(py)))
            .await
    })
}

/// Python -> Rust -> Python -> Rust ...: calls `f(depth - 1)` from a worker
/// and adds 1 to what it gives; `depth` 0 gives 0.
#[pyfunction]
fn nest(py: Python<'_>, f: Py<PyAny>, depth: u32) -> PyResult<Bound<'_, PyAny>> {
    let reactor = reactor(py)?;
    ensure_twisted(py, async move {
        if depth == 0 {
            return Ok(0);
        }
        tokio::task::yield_now().await;
        let inner: u32 = reactor
            .call(move |py| f.bind(py).call1((depth - 1,)))
            .await?;
        Ok::<_, Failure>(inner + 1)
    })
}

/// What the Rust side sees of the failure of `awaitable`: a dict of the
/// `PythonError`'s parts (or of the `Failure` when it holds none).
#[pyfunction]
fn error_info(py: Python<'_>, awaitable: Py<PyAny>) -> PyResult<Bound<'_, PyAny>> {
    let reactor = reactor(py)?;
    ensure_twisted(py, async move {
        tokio::task::yield_now().await;
        let failure = match reactor.from_twisted::<Py<PyAny>>(awaitable).await {
            Ok(_) => return Err(Failure::msg("expected a failure")),
            Err(f) => f,
        };
        // Without the GIL, on the worker:
        let fields = match failure.downcast_ref::<PythonError>() {
            Some(e) => (
                e.type_name().to_owned(),
                e.message().to_owned(),
                e.traceback().to_owned(),
                failure.to_string(),
                false,
            ),
            None => (
                failure.type_name().to_owned(),
                failure.to_string(),
                String::new(),
                failure.to_string(),
                failure.is::<CancelledError>(),
            ),
        };
        // With it, on the reactor thread: is it a KeyError?
        let is_key_error = reactor
            .call::<bool, _>(move |py| {
                let is = failure
                    .downcast_ref::<PythonError>()
                    .is_some_and(|e| e.is_instance_of::<pyo3::exceptions::PyKeyError>(py));
                pyo3::IntoPyObjectExt::into_bound_py_any(is, py)
            })
            .await?;
        Python::attach(|py| -> PyResult<Py<PyAny>> {
            let d = PyDict::new(py);
            d.set_item("type_name", fields.0)?;
            d.set_item("message", fields.1)?;
            d.set_item("traceback", fields.2)?;
            d.set_item("display", fields.3)?;
            d.set_item("is_cancelled", fields.4)?;
            d.set_item("is_key_error", is_key_error)?;
            Ok(d.into_any().unbind())
        })
        .map_err(|e| Python::attach(|py| tokio_deferred_twisted::pyerr_to_failure(py, e)))
    })
}

/// Awaits `awaitable` on a worker, cancelling the Rust Deferred after
/// `after` seconds `how`: `"cancel"`, `"handle"` (a CancelHandle), `"drop"`
/// (`cancel_on_drop` losing a select), `"timeout"` (`add_timeout`).
/// Returns `("ok", value)` or `("failed", type name)`.
#[pyfunction]
fn await_cancelled<'py>(
    py: Python<'py>,
    awaitable: Py<PyAny>,
    how: String,
    after: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let reactor = reactor(py)?;
    ensure_twisted(py, async move {
        tokio::task::yield_now().await;
        let d = reactor.from_twisted::<Py<PyAny>>(awaitable);
        let result = match how.as_str() {
            "cancel" => {
                let handle = d.cancel_handle();
                let d = d.add_both(Ok); // keep the chain; cancel through the handle owner
                tokio::time::sleep(secs(after)).await;
                handle.cancel();
                d.await.and_then(|r| r)
            }
            "handle" => {
                let handle = d.cancel_handle();
                tokio::spawn(async move {
                    tokio::time::sleep(secs(after)).await;
                    handle.cancel();
                });
                d.await
            }
            "drop" => {
                // The chain takes the result (so the CancelledError that
                // dropping the loser causes is handled) and sends it here.
                let (tx, rx) = tokio::sync::oneshot::channel();
                let d = d.add_both(move |r| {
                    let _ = tx.send(r);
                    Ok(())
                });
                tokio::select! {
                    _ = d.cancel_on_drop() => {}
                    () = tokio::time::sleep(secs(after)) => {}
                }
                rx.await
                    .unwrap_or_else(|_| Err(Failure::msg("the chain dropped its result")))
            }
            "timeout" => d.add_timeout(secs(after)).await,
            _ => Err(Failure::msg(format!("unknown way to cancel: {how}"))),
        };
        Ok::<_, Failure>(outcome(result))
    })
}

/// The Rust type's last path segment, or the Python type name.
fn short_type(failure: &Failure) -> String {
    if let Some(e) = failure.downcast_ref::<PythonError>() {
        return e.type_name().to_owned();
    }
    failure
        .type_name()
        .rsplit("::")
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// On the reactor thread: makes the Rust Deferred of `awaitable`, cancels
/// it at once (the Twisted Deferred is cancelled synchronously, so the Rust
/// one gets Twisted's outcome) and returns `("ok", value)` or `("failed",
/// type name)`.
#[pyfunction]
fn cancel_now<'py>(py: Python<'py>, awaitable: Py<PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let d = reactor(py)?.from_twisted::<Py<PyAny>>(awaitable);
    d.cancel();
    let out = match d.try_take() {
        Some(result) => outcome(result),
        None => ("pending".to_owned(), None, None),
    };
    out.into_pyobject(py).map(|t| t.into_any())
}

/// From a Tokio worker, asks the reactor to run `start` (`Reactor::call`)
/// and cancels the Rust Deferred at once, while this (the reactor) thread
/// is still busy here, so the reactor gets to it only after the cancel.
/// Returns a Deferred of `("ok", value, None)` or `("failed", None, type)`.
/// With `call=False`, `start` is itself the object, given to
/// `Reactor::from_twisted`.
#[pyfunction]
#[pyo3(signature = (start, call = true))]
fn cancelled_before_start(
    py: Python<'_>,
    start: Py<PyAny>,
    call: bool,
) -> PyResult<Bound<'_, PyAny>> {
    let reactor = reactor(py)?;
    let handle = reactor.runtime_handle()?;
    let worker_reactor = reactor.clone();
    let task = handle.spawn(async move {
        let d = if call {
            worker_reactor.call::<Py<PyAny>, _>(move |py| start.bind(py).call0())
        } else {
            worker_reactor.from_twisted::<Py<PyAny>>(start)
        };
        d.cancel();
        d.await
    });
    // Wait for the worker with the GIL held: the reactor cannot run the
    // queued call meanwhile.
    while !task.is_finished() {
        std::thread::yield_now();
    }
    reactor.ensure_twisted(py, async move {
        let result = task.await.map_err(|e| Failure::msg(e.to_string()))?;
        Ok::<_, Failure>(outcome(result))
    })
}

/// `("ok", value, None)` or `("failed", None, type name)`.
fn outcome(result: Result<Py<PyAny>, Failure>) -> (String, Option<Py<PyAny>>, Option<String>) {
    match result {
        Ok(v) => ("ok".to_owned(), Some(v), None),
        Err(f) => ("failed".to_owned(), None, Some(short_type(&f))),
    }
}

/// Starts `count` Rust->Twisted conversions whose futures complete on Tokio
/// workers, then holds the GIL (never running Python code) until all of
/// them have queued their results for the reactor, or `timeout` passes.
/// Returns the Twisted Deferreds and whether the workers got through with
/// the GIL held elsewhere. In `CallFromThread` mode they cannot.
#[pyfunction]
#[pyo3(signature = (count, timeout, bridge = None))]
fn deliver_holding_gil<'py>(
    py: Python<'py>,
    count: usize,
    timeout: f64,
    bridge: Option<&Bound<'py, Bridge>>,
) -> PyResult<(Vec<Bound<'py, PyAny>>, bool)> {
    let reactor = match bridge {
        Some(b) => b.get().reactor.clone(),
        None => reactor(py)?,
    };
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut deferreds = Vec::with_capacity(count);
    for i in 0..count {
        let gate = gate.clone();
        deferreds.push(reactor.ensure_twisted(py, async move {
            gate.notified().await;
            Ok::<_, Failure>(i)
        })?);
    }
    let before = reactor.in_flight();
    gate.notify_waiters();
    let deadline = std::time::Instant::now() + secs(timeout);
    // The GIL stays held: no Python code runs here, so CPython never
    // switches threads.
    let all_queued = loop {
        if reactor.in_flight() + count <= before {
            break true;
        }
        if std::time::Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    Ok((deferreds, all_queued))
}

/// From `count` Tokio tasks, asks for the Rust Deferred of `make()`
/// (`Reactor::call`) while this thread holds the GIL; returns whether all
/// the tasks got through (they need no GIL) before `timeout`, and a
/// Deferred of the list of their results.
#[pyfunction]
fn from_twisted_holding_gil<'py>(
    py: Python<'py>,
    make: Py<PyAny>,
    count: usize,
    timeout: f64,
) -> PyResult<(bool, Bound<'py, PyAny>)> {
    let reactor = reactor(py)?;
    let handle = reactor.runtime_handle()?;
    let started = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let shared = Arc::new(make);
    for _ in 0..count {
        let reactor = reactor.clone();
        let started = started.clone();
        let shared = shared.clone();
        tasks.push(handle.spawn(async move {
            let d = reactor.call::<Py<PyAny>, _>(move |py| shared.bind(py).call0());
            started.fetch_add(1, Ordering::SeqCst);
            d.await
        }));
    }
    let deadline = std::time::Instant::now() + secs(timeout);
    let all = loop {
        if started.load(Ordering::SeqCst) == count {
            break true;
        }
        if std::time::Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let results = reactor.ensure_twisted(py, async move {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.map_err(|e| Failure::msg(e.to_string()))??);
        }
        Ok::<_, Failure>(out)
    })?;
    Ok((all, results))
}

// ---- Housekeeping for the tests --------------------------------------------

/// Makes the global reactor handle with `workers` Tokio threads and a
/// shutdown grace period of `grace` seconds (before any other call).
#[pyfunction]
#[pyo3(signature = (workers = 2, grace = 5.0))]
fn install(py: Python<'_>, workers: usize, grace: f64) -> PyResult<()> {
    tokio_deferred_twisted::ReactorBuilder::new()
        .worker_threads(workers)
        .shutdown_grace(secs(grace))
        .install(py)
        .map(drop)
}

/// `(bytes, blocks)` of Rust heap allocated by this module and not freed.
#[pyfunction]
fn rust_heap() -> (isize, isize) {
    alloc::live()
}

/// Error events logged through `tracing`, by target.
#[pyfunction]
fn error_events() -> std::collections::HashMap<String, u64> {
    events::snapshot()
}

/// Work converted to Twisted Deferreds that has not delivered yet, and Rust
/// Deferreds still waiting for Twisted ones (global reactor).
#[pyfunction]
fn bridge_load(py: Python<'_>) -> PyResult<(usize, usize)> {
    let r = reactor(py)?;
    Ok((r.in_flight(), r.waiting()))
}

/// The global reactor's dispatch mode.
#[pyfunction]
fn dispatch_mode(py: Python<'_>) -> PyResult<&'static str> {
    Ok(mode_name(reactor(py)?.dispatch_mode()))
}

/// Whether the global bridge has shut down.
#[pyfunction]
fn is_shut_down(py: Python<'_>) -> PyResult<bool> {
    Ok(reactor(py)?.is_shut_down())
}

/// A Rust Deferred waiting for `awaitable`, dropped with its failure
/// unhandled (the Rust side reports it once through `tracing`). Returns a
/// Deferred that fires when the failure has been reported.
#[pyfunction]
fn drop_unhandled(py: Python<'_>, awaitable: Py<PyAny>) -> PyResult<Bound<'_, PyAny>> {
    let reactor = reactor(py)?;
    ensure_twisted(py, async move {
        let d = reactor.from_twisted::<Py<PyAny>>(awaitable);
        // Wait for the result without taking it, then drop the Deferred.
        let d = ensure_deferred(async move {
            let _ = &d;
            while !d.is_called() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok::<_, Failure>(d)
        })
        .await?;
        drop(d);
        Ok::<_, Failure>(())
    })
}

#[pymodule]
fn tokio_deferred_demo(m: &Bound<'_, PyModule>) -> PyResult<()> {
    events::install();
    tokio_deferred_twisted::exceptions::add_to_module(m)?;
    m.add_class::<Bridge>()?;
    m.add_class::<Probe>()?;
    m.add_function(wrap_pyfunction!(ready, m)?)?;
    m.add_function(wrap_pyfunction!(later, m)?)?;
    m.add_function(wrap_pyfunction!(hop, m)?)?;
    m.add_function(wrap_pyfunction!(fail_later, m)?)?;
    m.add_function(wrap_pyfunction!(panic_later, m)?)?;
    m.add_function(wrap_pyfunction!(with_canceller, m)?)?;
    m.add_function(wrap_pyfunction!(cooperative, m)?)?;
    m.add_function(wrap_pyfunction!(sleeper, m)?)?;
    m.add_function(wrap_pyfunction!(await_value, m)?)?;
    m.add_function(wrap_pyfunction!(await_int, m)?)?;
    m.add_function(wrap_pyfunction!(await_then_panic, m)?)?;
    m.add_function(wrap_pyfunction!(call_python, m)?)?;
    m.add_function(wrap_pyfunction!(nest, m)?)?;
    m.add_function(wrap_pyfunction!(error_info, m)?)?;
    m.add_function(wrap_pyfunction!(await_cancelled, m)?)?;
    m.add_function(wrap_pyfunction!(cancel_now, m)?)?;
    m.add_function(wrap_pyfunction!(cancelled_before_start, m)?)?;
    m.add_function(wrap_pyfunction!(deliver_holding_gil, m)?)?;
    m.add_function(wrap_pyfunction!(from_twisted_holding_gil, m)?)?;
    m.add_function(wrap_pyfunction!(install, m)?)?;
    m.add_function(wrap_pyfunction!(rust_heap, m)?)?;
    m.add_function(wrap_pyfunction!(error_events, m)?)?;
    m.add_function(wrap_pyfunction!(bridge_load, m)?)?;
    m.add_function(wrap_pyfunction!(dispatch_mode, m)?)?;
    m.add_function(wrap_pyfunction!(is_shut_down, m)?)?;
    m.add_function(wrap_pyfunction!(drop_unhandled, m)?)?;
    web::register(m)?;
    Ok(())
}
