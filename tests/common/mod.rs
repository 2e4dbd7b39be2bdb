//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use tokio_deferred::{Deferred, Failure};

/// A shared, clonable log of events.
#[derive(Clone, Default, Debug)]
pub struct Log<T>(Arc<Mutex<Vec<T>>>);

impl<T: Clone> Log<T> {
    pub fn new() -> Self {
        Log(Arc::new(Mutex::new(Vec::new())))
    }
    pub fn push(&self, v: T) {
        self.0.lock().unwrap().push(v);
    }
    pub fn get(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Twisted's `successResultOf`: the Deferred must have finished with a value.
pub fn success_result_of<T: Send + 'static>(d: &Deferred<T>) -> T {
    match d.try_take() {
        Some(Ok(v)) => v,
        Some(Err(f)) => panic!("expected a success, got {f:?}"),
        None => panic!("expected a result, the Deferred has none: {d:?}"),
    }
}

/// Twisted's `failureResultOf`: the Deferred must have finished with a failure.
pub fn failure_result_of<T: Send + 'static>(d: &Deferred<T>) -> Failure {
    match d.try_take() {
        Some(Err(f)) => f,
        Some(Ok(_)) => panic!("expected a failure, got a value"),
        None => panic!("expected a result, the Deferred has none: {d:?}"),
    }
}

/// Twisted's `assertNoResult`.
pub fn assert_no_result<T: Send + 'static>(d: &Deferred<T>) {
    assert!(d.try_take().is_none(), "expected no result: {d:?}");
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("generic error: {0}")]
pub struct GenericError(pub String);

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("other error")]
pub struct OtherError;

/// Collects what the `tracing` formatter writes (a `MakeWriter` for
/// `tracing_subscriber::fmt().with_writer(capture.clone())`), to read the
/// unhandled-error events back.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Everything written so far.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Call first in every test of a binary where some tests capture events
/// with a scoped subscriber (`with_default`) while others emit unhandled
/// errors with none. Until the first scoped dispatcher is registered,
/// `tracing-core` caches a callsite's interest without taking its lock, so
/// the unhandled-error callsite first hit on another test's thread at that
/// moment can be cached as "never" just after a capturing test registered
/// its subscriber, and that test's event is lost (seen once in CI). This
/// registers a scoped dispatcher once, before any test emits.
pub fn scoped_tracing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {});
    });
}

/// Runs `f` with a `tracing` subscriber on this thread (all levels, no
/// colours) and returns `f`'s result and everything the subscriber wrote.
pub fn capture_tracing<R>(f: impl FnOnce() -> R) -> (R, String) {
    scoped_tracing();
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let r = tracing::subscriber::with_default(subscriber, f);
    (r, capture.text())
}

/// [`capture_tracing`], keeping only the unhandled-error events (target
/// `tokio_deferred::unhandled`), one line each.
pub fn capture_unhandled<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    let (r, text) = capture_tracing(f);
    let events = text
        .lines()
        .filter(|l| l.contains("tokio_deferred::unhandled"))
        .map(str::to_owned)
        .collect();
    (r, events)
}
