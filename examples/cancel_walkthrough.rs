//! Twelve ways a cancel can go: before and after the fire, with and without
//! a canceller, a `callLater` canceller, a chained Deferred, a coroutine.
//! The port of `examples/twisted/cancel_walkthrough.py`; it prints the same
//! lines as the Twisted program (`examples/twisted/cancel_walkthrough.txt`,
//! recorded with Twisted 26.10).
//!
//! Run with `cargo run --example cancel_walkthrough`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_deferred::{CancelledError, Deferred, Failure, ManualClock, Resolver, ensure_deferred};

/// Prints lines and keeps them (for tests/examples.rs).
#[derive(Clone, Default, Debug)]
pub struct Printer(Arc<Mutex<Vec<String>>>);

impl Printer {
    /// Prints `line` and keeps a copy.
    pub fn print(&self, line: impl Into<String>) {
        let line = line.into();
        println!("{line}");
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }

    /// The lines printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn title(&self, n: u32, text: &str) {
        self.print(format!("{n}. {text}"));
    }

    fn say(&self, text: impl std::fmt::Display) {
        self.print(format!("   {text}"));
    }
}

/// The canceller's own error (case 7).
#[derive(Debug, thiserror::Error)]
#[error("polite refusal")]
pub struct PoliteRefusal;

/// The name of a failure's error, as Twisted's `failure.type.__name__`.
fn name(failure: &Failure) -> &'static str {
    if failure.is::<CancelledError>() {
        "CancelledError"
    } else if failure.is::<PoliteRefusal>() {
        "PoliteRefusal"
    } else {
        failure.type_name()
    }
}

/// Twisted's `d.addCallbacks(callback, errback)` of the walkthrough.
fn report(d: Deferred<&'static str>, out: &Printer) -> Deferred<()> {
    let (on_ok, on_err) = (out.clone(), out.clone());
    d.add_callbacks(
        move |result| {
            on_ok.say(format!("callback got {result}"));
            Ok(())
        },
        move |failure: Failure| {
            on_err.say(format!("errback got {}", name(&failure)));
            Ok(())
        },
    )
}

/// A canceller that says it was called, then does `does`.
fn canceller_that(
    out: &Printer,
    does: impl FnOnce(&Resolver<&'static str>) + Send + 'static,
) -> impl FnOnce(&Resolver<&'static str>) + Send + 'static {
    let out = out.clone();
    move |resolver| {
        out.say("canceller called");
        does(resolver);
    }
}

/// The twelve cases (a function so that tests/examples.rs can run it).
pub async fn run(out: &Printer) {
    out.title(1, "No canceller, cancel before the fire");
    let (d, _resolver) = Deferred::new();
    let d = report(d, out);
    d.cancel();

    out.title(2, "No canceller, the producer fires after the cancel");
    let (d, resolver) = Deferred::new();
    let d = report(d, out);
    d.cancel();
    resolver.callback("late").unwrap(); // accepted and dropped
    out.say("the late callback was swallowed");

    out.title(3, "No canceller, cancel after the fire");
    let (d, resolver) = Deferred::new();
    let d = report(d, out);
    resolver.callback("on time").unwrap();
    d.cancel();
    out.say("cancel did nothing");

    out.title(4, "No canceller, only one late fire is swallowed");
    let (d, resolver) = Deferred::new();
    let d = report(d, out);
    d.cancel();
    resolver.callback("late").unwrap();
    if resolver.callback("later").is_err() {
        out.say("the second late callback: AlreadyCalledError");
    }

    out.title(5, "A canceller that does nothing");
    let (d, _resolver) = Deferred::with_canceller(canceller_that(out, |_| {}));
    let d = report(d, out);
    d.cancel();

    out.title(6, "A canceller that fires a value");
    let (d, _resolver) = Deferred::with_canceller(canceller_that(out, |r| {
        r.callback("cancelled politely").unwrap();
    }));
    let d = report(d, out);
    d.cancel();

    out.title(7, "A canceller that fails with its own error");
    let (d, _resolver) = Deferred::with_canceller(canceller_that(out, |r| {
        r.errback(PoliteRefusal).unwrap();
    }));
    let d = report(d, out);
    d.cancel();

    out.title(8, "A canceller, cancel after the fire");
    let (d, resolver) = Deferred::with_canceller(canceller_that(out, |_| {}));
    let d = report(d, out);
    resolver.callback("on time").unwrap();
    d.cancel();
    out.say("the canceller was not called");

    out.title(9, "A canceller, the producer fires after the cancel");
    let (d, resolver) = Deferred::with_canceller(canceller_that(out, |_| {}));
    let d = report(d, out);
    d.cancel();
    if resolver.callback("late").is_err() {
        out.say("the late callback: AlreadyCalledError");
    }

    out.title(10, "A callLater canceller stops its timer");
    // Twisted: d = Deferred(lambda _: call.cancel())
    //          call = clock.callLater(5, d.callback, "on time")
    let clock = ManualClock::new();
    let mut timer = None;
    let d = Deferred::with_canceller_from(|resolver: Resolver<&'static str>| {
        let call = clock.call_later(Duration::from_secs(5), move || {
            let _ = resolver.callback("on time");
        });
        timer = Some(call.clone());
        move |_: &Resolver<&'static str>| {
            let _ = call.cancel();
        }
    });
    let d = report(d, out);
    clock.advance(Duration::from_secs(2));
    d.cancel();
    let active = timer.is_some_and(|call| call.active());
    out.say(format!(
        "timer active: {}",
        if active { "yes" } else { "no" }
    ));
    clock.advance(Duration::from_secs(10));
    out.say(format!("pending calls: {}", clock.pending_calls().len()));

    out.title(
        11,
        "Cancel a chain waiting on a Deferred a callback returned",
    );
    let say = out.clone();
    let (inner, _inner_resolver) = Deferred::<&'static str>::with_canceller(move |_| {
        say.say("inner canceller called");
    });
    let (outer, outer_resolver) = Deferred::<()>::new();
    let outer = report(outer.add_callback(move |()| inner), out);
    outer_resolver.callback(()).unwrap();
    outer.cancel();

    out.title(12, "Cancel a coroutine waiting on a Deferred");
    let (waiting, _waiting_resolver) = Deferred::<&'static str>::new();
    let said = out.clone();
    let job = ensure_deferred(async move {
        match waiting.await {
            Err(f) if f.is::<CancelledError>() => {
                said.say("the coroutine caught CancelledError");
                Ok("gave up cleanly")
            }
            other => other,
        }
    });
    let d = report(job, out);
    d.cancel();
    // The coroutine resumes on the runtime (in Twisted, inside cancel()).
    let _ = d.await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    run(&Printer::default()).await;
}
