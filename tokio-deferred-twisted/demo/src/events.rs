//! A `tracing` subscriber that counts error events by target, so that the
//! tests can check that the bridge reported no error (a Twisted Deferred
//! fired twice, a failed callback) and that an unhandled Rust failure was
//! reported exactly once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

static COUNTS: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();

fn counts() -> &'static Mutex<HashMap<String, u64>> {
    COUNTS.get_or_init(Default::default)
}

/// Counts `ERROR` events per target; ignores spans.
struct ErrorCounter {
    next_span: AtomicU64,
}

impl Subscriber for ErrorCounter {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() == Level::ERROR
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let target = event.metadata().target().to_owned();
        *counts()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(target)
            .or_default() += 1;
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// Installs the counter as the global default (once).
pub(crate) fn install() {
    let _ = tracing::subscriber::set_global_default(ErrorCounter {
        next_span: AtomicU64::new(0),
    });
}

/// The error events counted so far, by target.
pub(crate) fn snapshot() -> HashMap<String, u64> {
    counts().lock().unwrap_or_else(|e| e.into_inner()).clone()
}
