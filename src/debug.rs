//! Debugging support: Twisted's `setDebugging`, creation/fire sites, and the
//! report of unhandled errors.
//!
//! ```
//! use tokio_deferred::{set_debugging, is_debugging};
//!
//! set_debugging(true); // capture backtraces where Deferreds are created and fired
//! assert!(is_debugging());
//! set_debugging(false);
//! ```
//!
//! Every Deferred always records where it was created (`#[track_caller]`) and
//! where it was first fired; with debugging on it also records backtraces of
//! both. They appear in [`AlreadyCalledError`](crate::AlreadyCalledError)
//! messages and in the unhandled-error event.
//!
//! # Unhandled errors
//!
//! When a Deferred's final result is a failure that nobody consumed and the
//! last handle to it goes away, exactly one `tracing` event is emitted at
//! `ERROR` level with target `tokio_deferred::unhandled` (Twisted logs
//! "Unhandled error in Deferred" when the Deferred is garbage collected).

use std::backtrace::Backtrace;
use std::fmt::Write as _;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Failure;

static DEBUGGING: AtomicBool = AtomicBool::new(false);

/// Turns Deferred debugging on or off (Twisted's `setDebugging`).
///
/// When on, new Deferreds capture a backtrace where they are created and
/// where they are first fired; [`AlreadyCalledError`](crate::AlreadyCalledError)
/// and the unhandled-error event then show both. It is process-wide and may
/// be switched at any time (Deferreds created before keep what they had).
pub fn set_debugging(on: bool) {
    DEBUGGING.store(on, Ordering::Relaxed);
}

/// Whether Deferred debugging is on (Twisted's `getDebugging`).
pub fn is_debugging() -> bool {
    DEBUGGING.load(Ordering::Relaxed)
}

/// Where a Deferred came from and was first fired.
#[derive(Debug)]
pub(crate) struct DebugInfo {
    pub(crate) created: &'static Location<'static>,
    pub(crate) fired: Option<&'static Location<'static>>,
    traces: Option<Box<Traces>>,
}

#[derive(Debug, Default)]
struct Traces {
    created: Option<Backtrace>,
    fired: Option<Backtrace>,
}

impl DebugInfo {
    /// Without backtraces, whatever `is_debugging` says.
    pub(crate) fn light(created: &'static Location<'static>) -> Self {
        DebugInfo {
            created,
            fired: None,
            traces: None,
        }
    }

    pub(crate) fn new(created: &'static Location<'static>) -> Self {
        let traces = is_debugging().then(|| {
            Box::new(Traces {
                created: Some(Backtrace::force_capture()),
                fired: None,
            })
        });
        DebugInfo {
            created,
            fired: None,
            traces,
        }
    }

    pub(crate) fn record_fire(&mut self, at: &'static Location<'static>) {
        if self.fired.is_some() {
            return;
        }
        self.fired = Some(at);
        if is_debugging() {
            self.traces.get_or_insert_with(Default::default).fired =
                Some(Backtrace::force_capture());
        }
    }

    /// A one-paragraph description: creation and first-fire sites, plus the
    /// backtraces when they were captured (Twisted's " C:" / " I:" lines).
    pub(crate) fn describe(&self) -> Arc<str> {
        let mut s = format!("created at {}", self.created);
        match self.fired {
            Some(at) => {
                let _ = write!(s, ", first fired at {at}");
            }
            None => s.push_str(", not fired"),
        }
        if let Some(traces) = &self.traces {
            if let Some(bt) = &traces.created {
                s.push_str("\n C: Deferred was created:\n");
                for line in bt.to_string().lines() {
                    let _ = writeln!(s, " C:{line}");
                }
            }
            if let Some(bt) = &traces.fired {
                s.push_str("\n I: First Invoker was:\n");
                for line in bt.to_string().lines() {
                    let _ = writeln!(s, " I:{line}");
                }
            }
        }
        s.into()
    }
}

/// Emits the one event for an unhandled failure.
pub(crate) fn report_unhandled(
    failure: &Failure,
    created: &'static Location<'static>,
    fired: Option<&'static Location<'static>>,
    describe: &str,
) {
    let fired = fired
        .map(|l| l.to_string())
        .unwrap_or_else(|| "-".to_owned());
    tracing::error!(
        target: "tokio_deferred::unhandled",
        failure = %failure,
        error_type = failure.type_name(),
        created = %created,
        fired = %fired,
        debug = %describe,
        "Unhandled error in Deferred: {failure}"
    );
}
