//! The Rust side of the twisted.web example (`examples/delayed_web.py`):
//! Twisted Web's delayed resource, with the delay and the page's CPU work
//! done in Rust.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pyo3::prelude::*;
use tokio_deferred::{CancelledError, Failure, defer_later, defer_to_thread};
use tokio_deferred_twisted::ensure_twisted;

static STARTED: AtomicUsize = AtomicUsize::new(0);
static RENDERED: AtomicUsize = AtomicUsize::new(0);
static CANCELLED: AtomicUsize = AtomicUsize::new(0);

/// Some CPU work for the page: a checksum of `text` repeated `rounds`
/// times (FNV-1a).
fn checksum(text: &str, rounds: usize) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for _ in 0..rounds {
        for b in text.bytes() {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// The page for `path`, after `delay` seconds (`defer_later`, like the
/// document's `deferLater(reactor, 5, ...)`), then the CPU work on Tokio's
/// blocking pool (`defer_to_thread`). Cancelling the Twisted Deferred (the
/// client hung up) cancels whichever of the two it is waiting for.
#[pyfunction]
fn render_page(py: Python<'_>, delay: f64, path: String) -> PyResult<Bound<'_, PyAny>> {
    ensure_twisted(py, async move {
        STARTED.fetch_add(1, Ordering::SeqCst);
        let page = async {
            let delay = Duration::try_from_secs_f64(delay).unwrap_or_default();
            defer_later(delay, || Ok(())).await?;
            let sum = defer_to_thread(move || Ok::<_, Failure>(checksum(&path, 20_000))).await?;
            Ok::<_, Failure>(format!(
                "<html><body>Sorry to keep you waiting. ({sum:016x})</body></html>"
            ))
        }
        .await;
        match &page {
            Ok(_) => RENDERED.fetch_add(1, Ordering::SeqCst),
            Err(f) if f.is::<CancelledError>() => CANCELLED.fetch_add(1, Ordering::SeqCst),
            Err(_) => 0,
        };
        page
    })
}

/// `{"started": .., "rendered": .., "cancelled": ..}` of `render_page`.
#[pyfunction]
fn render_stats() -> std::collections::HashMap<&'static str, usize> {
    [
        ("started", STARTED.load(Ordering::SeqCst)),
        ("rendered", RENDERED.load(Ordering::SeqCst)),
        ("cancelled", CANCELLED.load(Ordering::SeqCst)),
    ]
    .into_iter()
    .collect()
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(render_page, m)?)?;
    m.add_function(wrap_pyfunction!(render_stats, m)?)?;
    Ok(())
}
