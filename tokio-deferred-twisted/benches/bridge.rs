//! Benchmarks of the Twisted bridge, against real Twisted on the default
//! (epoll) reactor, in an embedded interpreter; `BENCHMARKS.md` has the
//! tables and how to read them.
//!
//! ```text
//! scripts/test-twisted.sh            # makes target/twisted-venv once
//! PYTHONPATH=$(target/twisted-venv/bin/python -c \
//!   "import sysconfig; print(sysconfig.get_path('purelib'))") \
//!   cargo bench -p tokio-deferred-twisted --bench bridge
//! ```
//!
//! 1. **Round trips**, per call, sequential and in bursts: Python calls a
//!    Rust function whose future is already ready (`bridge_ready`), or
//!    completes on a Tokio worker (`bridge_worker`), and awaits the Twisted
//!    Deferred; against a pure-Twisted Deferred fired from a Python thread
//!    through `reactor.callFromThread` (`twisted_thread`), and against a
//!    Tokio task that takes the GIL and calls `callFromThread` itself
//!    (`gil_worker`, the experimental bridge's way). Medians of interleaved
//!    repetitions, so each ratio comes from one run.
//! 2. **A busy reactor**: 10,000 Rust futures complete on Tokio workers
//!    while the reactor thread runs Python code in 20 ms blocks; the
//!    bridge's path (no GIL on the workers) against the GIL-taking one, in
//!    the same run: seconds until every Deferred fired, seconds workers
//!    spent waiting for the GIL, and `callFromThread` calls made from
//!    threads Python did not start (each one took the GIL).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyList};
use tokio_deferred::Failure;
use tokio_deferred_twisted::{Reactor, ReactorBuilder};

/// Nanoseconds Tokio workers spent waiting to take the GIL.
static GIL_WAIT_NS: AtomicU64 = AtomicU64::new(0);
/// `reactor.callFromThread` calls from threads Python did not start.
static FOREIGN_CALLS: AtomicU64 = AtomicU64::new(0);

const DRIVER: &str = include_str!("bridge_driver.py");

/// The global reactor (captured on the reactor thread at module setup).
fn reactor(py: Python<'_>) -> PyResult<Reactor> {
    Reactor::get(py)
}

/// A future already ready: the Deferred is fired before the call returns.
#[pyfunction]
fn ready(py: Python<'_>, value: i64) -> PyResult<Bound<'_, PyAny>> {
    tokio_deferred_twisted::ensure_twisted(py, async move { Ok::<_, Failure>(value) })
}

/// A future that completes on a Tokio worker (one hop), delivered through
/// the bridge's wake-up socket.
#[pyfunction]
fn hop(py: Python<'_>, value: i64) -> PyResult<Bound<'_, PyAny>> {
    tokio_deferred_twisted::ensure_twisted(py, async move {
        tokio::task::yield_now().await;
        Ok::<_, Failure>(value)
    })
}

/// The experimental bridge's way: a task on a worker takes the GIL and
/// calls `reactor.callFromThread(d.callback, value)`.
#[pyfunction]
fn gil_hop(py: Python<'_>, value: i64) -> PyResult<Bound<'_, PyAny>> {
    let reactor = reactor(py)?;
    let d = py
        .import("twisted.internet.defer")?
        .getattr("Deferred")?
        .call0()?;
    let callback = d.getattr("callback")?.unbind();
    let call_from_thread = reactor.object(py).getattr("callFromThread")?.unbind();
    reactor.runtime_handle()?.spawn(async move {
        tokio::task::yield_now().await;
        take_gil_and_call(&call_from_thread, callback, value);
    });
    Ok(d)
}

fn take_gil_and_call(call_from_thread: &Py<PyAny>, callback: Py<PyAny>, value: i64) {
    let asked = Instant::now();
    Python::attach(|py| {
        GIL_WAIT_NS.fetch_add(asked.elapsed().as_nanos() as u64, Ordering::Relaxed);
        if let Err(err) = call_from_thread.call1(py, (callback, value)) {
            err.print(py);
        }
    });
}

/// `n` bridge conversions of futures that wait for a gate, and the gate.
#[pyfunction]
fn start_bridge(py: Python<'_>, n: usize) -> PyResult<(Bound<'_, PyList>, Bound<'_, PyCFunction>)> {
    let reactor = reactor(py)?;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let list = PyList::empty(py);
    for i in 0..n {
        let gate = gate.clone();
        list.append(reactor.ensure_twisted(py, async move {
            let _permit = gate.acquire().await;
            Ok::<_, Failure>(i)
        })?)?;
    }
    Ok((list, opener(py, gate)?))
}

/// `n` GIL-taking deliveries of futures that wait for a gate, and the gate.
#[pyfunction]
fn start_gil(py: Python<'_>, n: usize) -> PyResult<(Bound<'_, PyList>, Bound<'_, PyCFunction>)> {
    let reactor = reactor(py)?;
    let handle = reactor.runtime_handle()?;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let list = PyList::empty(py);
    let deferred = py.import("twisted.internet.defer")?.getattr("Deferred")?;
    let call_from_thread = Arc::new(reactor.object(py).getattr("callFromThread")?.unbind());
    for i in 0..n {
        let d = deferred.call0()?;
        let callback = d.getattr("callback")?.unbind();
        let gate = gate.clone();
        let call_from_thread = call_from_thread.clone();
        handle.spawn(async move {
            let _permit = gate.acquire().await;
            take_gil_and_call(&call_from_thread, callback, i as i64);
        });
        list.append(d)?;
    }
    Ok((list, opener(py, gate)?))
}

/// A Python callable that lets every future through the gate.
fn opener(py: Python<'_>, gate: Arc<tokio::sync::Semaphore>) -> PyResult<Bound<'_, PyCFunction>> {
    PyCFunction::new_closure(py, None, None, move |_args, _kwargs| {
        gate.add_permits(tokio::sync::Semaphore::MAX_PERMITS >> 4);
    })
}

#[pyfunction]
fn reset_gil_wait() {
    GIL_WAIT_NS.store(0, Ordering::Relaxed);
}

#[pyfunction]
fn gil_wait_seconds() -> f64 {
    Duration::from_nanos(GIL_WAIT_NS.load(Ordering::Relaxed)).as_secs_f64()
}

#[pyfunction]
fn foreign_call_from_thread_calls() -> u64 {
    FOREIGN_CALLS.load(Ordering::Relaxed)
}

/// Wraps `reactor.callFromThread` to count calls from threads Python did
/// not start (a `_DummyThread`: CPython made a thread state for a thread
/// that took the GIL).
fn count_foreign_calls(py: Python<'_>, reactor: &Bound<'_, PyAny>) -> PyResult<()> {
    let original = reactor.getattr("callFromThread")?.unbind();
    let threading = py.import("threading")?.unbind();
    let wrapper =
        PyCFunction::new_closure(py, None, None, move |args, kwargs| -> PyResult<Py<PyAny>> {
            let py = args.py();
            let current = threading.bind(py).call_method0("current_thread")?;
            if current.get_type().name()? == "_DummyThread" {
                FOREIGN_CALLS.fetch_add(1, Ordering::Relaxed);
            }
            Ok(original.bind(py).call(args, kwargs)?.unbind())
        })?;
    reactor.setattr("callFromThread", wrapper)
}

fn site_packages() -> Vec<std::path::PathBuf> {
    let lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/twisted-venv/lib");
    std::fs::read_dir(lib)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path().join("site-packages"))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

fn run(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    if py.import("twisted").is_err() {
        let sys_path = py.import("sys")?.getattr("path")?;
        for dir in site_packages() {
            sys_path.call_method1("insert", (0, dir.to_string_lossy()))?;
        }
    }
    let twisted_reactor = py
        .import("importlib")?
        .call_method1("import_module", ("twisted.internet.reactor",))?;
    count_foreign_calls(py, &twisted_reactor)?;
    ReactorBuilder::new().worker_threads(2).install(py)?;
    let module = PyModule::new(py, "bridge_bench")?;
    module.add_function(wrap_pyfunction!(ready, &module)?)?;
    module.add_function(wrap_pyfunction!(hop, &module)?)?;
    module.add_function(wrap_pyfunction!(gil_hop, &module)?)?;
    module.add_function(wrap_pyfunction!(start_bridge, &module)?)?;
    module.add_function(wrap_pyfunction!(start_gil, &module)?)?;
    module.add_function(wrap_pyfunction!(reset_gil_wait, &module)?)?;
    module.add_function(wrap_pyfunction!(gil_wait_seconds, &module)?)?;
    module.add_function(wrap_pyfunction!(foreign_call_from_thread_calls, &module)?)?;
    py.import("sys")?
        .getattr("modules")?
        .set_item("bridge_bench", &module)?;
    let code = std::ffi::CString::new(DRIVER).expect("no NUL in the driver");
    let driver = PyModule::from_code(py, &code, c"bridge_driver.py", c"bridge_driver")?;
    Ok(driver.call_method0("run")?.cast_into::<PyDict>()?)
}

fn micros(x: f64) -> String {
    format!("{:.1} µs", x * 1e6)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too:
    // only measure when asked to.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    Python::initialize();
    Python::attach(|py| {
        let out = match run(py) {
            Ok(out) => out,
            Err(err) => {
                eprintln!("the bridge benchmark could not run: {err}");
                eprintln!("(run scripts/test-twisted.sh once: it makes target/twisted-venv)");
                std::process::exit(1);
            }
        };
        let get = |k: &str| -> f64 {
            out.get_item(k)
                .ok()
                .flatten()
                .and_then(|v| v.extract().ok())
                .unwrap_or(f64::NAN)
        };
        let trips = out
            .get_item("round_trips")
            .ok()
            .flatten()
            .expect("round trips");
        let trip = |k: &str| -> f64 {
            trips
                .get_item(k)
                .and_then(|v| v.extract())
                .unwrap_or(f64::NAN)
        };
        let python: String = out
            .get_item("python")
            .ok()
            .flatten()
            .and_then(|v| v.extract().ok())
            .unwrap_or_default();
        println!(
            "Python {python}, switch interval {} s",
            get("switch_interval")
        );
        println!();
        println!(
            "| path | sequential, per call | vs twisted_thread | burst, per call | vs twisted_thread |"
        );
        println!("|---|---|---|---|---|");
        for name in [
            "twisted_thread",
            "bridge_ready",
            "bridge_worker",
            "gil_worker",
        ] {
            let s = trip(&format!("{name}/sequential"));
            let b = trip(&format!("{name}/burst"));
            println!(
                "| {name} | {} | {:.2}x | {} | {:.2}x |",
                micros(s),
                s / trip("twisted_thread/sequential"),
                micros(b),
                b / trip("twisted_thread/burst"),
            );
        }
        println!();
        let n = get("busy_n");
        println!("{n} futures completing while the reactor thread runs Python in 20 ms blocks:");
        println!();
        println!(
            "| path | all fired after | throughput | workers waiting for the GIL | callFromThread from non-Python threads |"
        );
        println!("|---|---|---|---|---|");
        for (name, key) in [
            ("bridge (wake-up socket)", "busy_bridge"),
            ("GIL + callFromThread", "busy_gil"),
        ] {
            let secs = get(&format!("{key}_s"));
            println!(
                "| {name} | {secs:.3} s | {:.0} /s | {:.3} s | {} |",
                n / secs,
                get(&format!("{key}_gil_wait_s")),
                get(&format!("{key}_foreign_calls")),
            );
        }
    });
}
