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
//! Every Deferred records where it was created (`#[track_caller]`); with
//! debugging on it also records where it was first fired and backtraces of
//! both (as Twisted records its " C:" / " I:" stacks only in debug mode).
//! The debug records live in a side table, so a Deferred created with
//! debugging off carries no debugging state at all (8 bytes: the site). They appear in [`AlreadyCalledError`](crate::AlreadyCalledError)
//! messages and in the unhandled-error event.
//!
//! # Unhandled errors
//!
//! When a Deferred's final result is a failure that nobody consumed and the
//! last handle to it goes away, exactly one `tracing` event is emitted at
//! `ERROR` level with target `tokio_deferred::unhandled` (Twisted logs
//! "Unhandled error in Deferred" when the Deferred is garbage collected).
//! With no `tracing` subscriber installed, the report is one plain line on
//! stderr instead (Twisted prints it even when logging was never started).
//!
//! A Deferred that never fired is not an error: when its last Resolver goes
//! away it fails with [`ResolverDroppedError`] for whoever awaits it (or,
//! for a `defer_to_thread` whose runtime shut down before the function ran,
//! with [`RuntimeShutdownError`]), but that failure (alone or as the cause
//! of another, such as a [`FirstError`](crate::FirstError)) is never
//! reported (Twisted collects an unfired Deferred silently).

use std::backtrace::Backtrace;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{FailureGroup, ResolverDroppedError, RuntimeShutdownError};
use crate::loom::std::{Mutex, MutexGuard};
use crate::{Failure, FailureError};

static DEBUGGING: AtomicBool = AtomicBool::new(false);

/// Turns Deferred debugging on or off (Twisted's `setDebugging`).
///
/// When on, new Deferreds capture a backtrace where they are created, and
/// record where they are first fired (with a backtrace if debugging is still
/// on then); [`AlreadyCalledError`](crate::AlreadyCalledError) and the
/// unhandled-error event then show both. Off (the default), a Deferred keeps
/// only its creation site, at no cost beyond 8 bytes. It is process-wide and
/// may be switched at any time (Deferreds created before keep what they had).
pub fn set_debugging(on: bool) {
    DEBUGGING.store(on, Ordering::Relaxed);
}

/// Whether Deferred debugging is on (Twisted's `getDebugging`).
#[inline]
pub fn is_debugging() -> bool {
    DEBUGGING.load(Ordering::Relaxed)
}

/// What debugging mode records about one Deferred, kept in a side table
/// keyed by the address of its shared state (so that a Deferred created
/// with debugging off pays nothing for it: not a byte of its state).
struct Record {
    fired: Option<&'static Location<'static>>,
    created_trace: Backtrace,
    fired_trace: Option<Backtrace>,
}

/// The side table. Only Deferreds created while debugging is on have an
/// entry; it goes when their shared state is dropped.
static RECORDS: Mutex<Option<HashMap<usize, Record>>> = Mutex::new(None);

fn records() -> MutexGuard<'static, Option<HashMap<usize, Record>>> {
    RECORDS.lock()
}

/// Starts the record of a Deferred created while debugging is on.
pub(crate) fn trace_created(key: usize) {
    let record = Record {
        fired: None,
        created_trace: Backtrace::force_capture(),
        fired_trace: None,
    };
    records()
        .get_or_insert_with(HashMap::new)
        .insert(key, record);
}

/// Records the first fire of a traced Deferred: its site, and a backtrace
/// if debugging is (still) on.
pub(crate) fn trace_fired(key: usize, at: &'static Location<'static>) {
    let trace = is_debugging().then(Backtrace::force_capture);
    if let Some(record) = records().as_mut().and_then(|m| m.get_mut(&key)) {
        if record.fired.is_none() {
            record.fired = Some(at);
            record.fired_trace = trace;
        }
    }
}

/// Drops the record of a traced Deferred whose state goes away.
pub(crate) fn trace_forget(key: usize) {
    if let Some(m) = records().as_mut() {
        m.remove(&key);
    }
}

/// Where a traced Deferred was first fired.
pub(crate) fn fired_site(key: Option<usize>) -> Option<&'static Location<'static>> {
    let key = key?;
    records().as_ref()?.get(&key)?.fired
}

/// A one-paragraph description of a Deferred: its creation site, and for
/// one created while debugging was on (`key`) its first-fire site and the
/// backtraces of both (Twisted's " C:" / " I:" lines).
pub(crate) fn describe(created: &'static Location<'static>, key: Option<usize>) -> Arc<str> {
    let mut s = format!("created at {created}");
    let guard = key.map(|_| records());
    let record = key
        .zip(guard.as_ref())
        .and_then(|(k, g)| g.as_ref()?.get(&k));
    match record {
        Some(r) => {
            match r.fired {
                Some(at) => {
                    let _ = write!(s, ", first fired at {at}");
                }
                None => s.push_str(", not fired"),
            }
            s.push_str("\n C: Deferred was created:\n");
            for line in r.created_trace.to_string().lines() {
                let _ = writeln!(s, " C:{line}");
            }
            if let Some(bt) = &r.fired_trace {
                s.push_str("\n I: First Invoker was:\n");
                for line in bt.to_string().lines() {
                    let _ = writeln!(s, " I:{line}");
                }
            }
        }
        None => s.push_str(
            " (turn on set_debugging(true) to record where it was fired, with backtraces)",
        ),
    }
    s.into()
}

/// Emits the one report of an unhandled failure: a `tracing` event, or
/// with no subscriber a line on stderr. A failure caused by a Deferred that
/// never fired is not reported.
pub(crate) fn report_unhandled(
    failure: &Failure,
    created: &'static Location<'static>,
    fired: Option<&'static Location<'static>>,
    describe: &str,
) {
    if never_fired(failure) {
        return;
    }
    if tracing_is_off() {
        let mut line = format!("Unhandled error in Deferred: {failure} (created at {created}");
        if let Some(at) = fired {
            let _ = write!(line, ", first fired at {at}");
        }
        line.push(')');
        // With debugging on, the backtraces follow (Twisted's " C:"/" I:").
        if let Some((_, traces)) = describe.split_once('\n') {
            line.push('\n');
            line.push_str(traces.trim_end());
        }
        write_stderr(&line);
        return;
    }
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

/// Whether `failure` is, or was caused by, a [`ResolverDroppedError`] or a
/// [`RuntimeShutdownError`]: the end of a Deferred that never fired. A
/// [`FailureGroup`] counts as such only if every failure in it does.
fn never_fired(failure: &Failure) -> bool {
    let mut error: Option<&(dyn std::error::Error + 'static)> = Some(failure.error());
    while let Some(e) = error {
        if e.is::<ResolverDroppedError>() || e.is::<RuntimeShutdownError>() {
            return true;
        }
        if let Some(group) = e.downcast_ref::<FailureGroup>() {
            return !group.failures.is_empty() && group.failures.iter().all(never_fired);
        }
        if let Some(inner) = e.downcast_ref::<FailureError>() {
            return never_fired(&inner.0);
        }
        error = e.source();
    }
    false
}

/// Whether no `tracing` subscriber would see an event from this thread:
/// neither a global default nor a scoped one is set.
pub(crate) fn tracing_is_off() -> bool {
    tracing::dispatcher::get_default(|d| d.is::<tracing::subscriber::NoSubscriber>())
}

/// Writes one report to stderr, with no colour codes. Through `eprintln!`
/// (so a test harness captures it with the test's output), except during a
/// panic, where a failed write must not panic again: then, and if
/// `eprintln!` itself fails, the write error is ignored (there is nowhere
/// left to report it).
pub(crate) fn write_stderr(text: &str) {
    if !std::thread::panicking() {
        let _ = std::panic::catch_unwind(|| eprintln!("{text}"));
        return;
    }
    use std::io::Write as _;
    let mut buf = String::with_capacity(text.len() + 1);
    buf.push_str(text);
    buf.push('\n');
    let _ = std::io::stderr().lock().write_all(buf.as_bytes());
}
