//! Twisted's "Generating Deferreds", in Rust: a Deferred does not make code
//! non-blocking; `defer_to_thread` does; and synchronous results can still
//! be returned as Deferreds.
//!
//! ```text
//! cargo run --example fibonacci_thread
//! ```
//!
//! 1. "Deferreds do not make the code magically not block":
//!    [`large_fibonacci_number_deferred`] creates a Deferred, computes the
//!    10,000th Fibonacci number (2,090 digits, with `num-bigint`), fires the
//!    Deferred and returns it. The whole computation happens before it
//!    returns. A ticker task, due to tick every millisecond, does not tick
//!    once meanwhile: the runtime (a current-thread one, like Twisted's
//!    reactor) was blocked. The Deferred comes back already fired, and the
//!    callback added afterwards runs at once.
//! 2. `deferToThread`: the same computation as a blocking "third-party"
//!    function ([`large_fibonacci_number`]) run with
//!    [`defer_to_thread`]. The Deferred is returned at once; the two lines
//!    printed after adding the callback come first, the ticker goes on
//!    ticking, and the callback prints the result when the thread is done.
//!    With its callback queued, the Deferred fires on the runtime, not in
//!    the worker thread, so the callback runs where Twisted's would: in
//!    the event loop.
//! 3. Returning a Deferred from a synchronous function:
//!    `immediate_is_valid_user` with [`succeed`], its counterpart with
//!    [`fail`], the caller-side [`maybe_deferred`], and the document's rules:
//!    a Deferred fires once; `pause`/`unpause` hold back callbacks.
//!
//! Differences from the document: progress is printed every 1,000th step
//! instead of every 100th, and the 2,090-digit number is shortened to its
//! first and last digits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use num_bigint::BigUint;
use tokio_deferred::{Deferred, Failure, defer_to_thread, fail, maybe_deferred, succeed};

/// `TARGET`: which Fibonacci number to compute.
pub const TARGET: usize = 10_000;

/// Where the example prints: stdout, and a copy that the test reads.
#[derive(Clone, Debug, Default)]
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
}

/// A long number as its first and last digits and its length.
pub fn shorten(n: &BigUint) -> String {
    let digits = n.to_string();
    if digits.len() <= 40 {
        return digits;
    }
    let (head, tail) = (&digits[..20], &digits[digits.len() - 20..]);
    format!("{head}...{tail} ({} digits)", digits.len())
}

/// The first version of Twisted's `largeFibonnaciNumber`: returns a
/// Deferred, but computes the number before it returns, printing progress.
pub fn large_fibonacci_number_deferred(out: &Printer) -> Deferred<BigUint> {
    // create a Deferred object to return:
    let (d, resolver) = Deferred::new();
    // calculate the ten thousandth Fibonacci number
    let mut first = BigUint::from(0u32);
    let mut second = BigUint::from(1u32);
    for i in 0..TARGET - 1 {
        let new = &first + &second;
        first = std::mem::replace(&mut second, new);
        if i % 1000 == 0 {
            out.print(format!("Progress: calculating the {i}th Fibonacci number"));
        }
    }
    // give the Deferred the answer to pass to the callbacks (the first
    // call, so it cannot be refused):
    let _ = resolver.callback(second);
    // return the Deferred with the answer:
    d
}

/// The second version of `largeFibonnaciNumber`: a blocking function "in a
/// third-party library", returning the number, not a Deferred.
pub fn large_fibonacci_number() -> BigUint {
    let mut first = BigUint::from(0u32);
    let mut second = BigUint::from(1u32);
    for _ in 0..TARGET - 1 {
        let new = &first + &second;
        first = std::mem::replace(&mut second, new);
    }
    second
}

/// A task that ticks every millisecond, and counts its ticks. It can only
/// tick when the runtime's thread is free.
#[derive(Debug)]
pub struct Ticker {
    ticks: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Ticker {
    /// Spawns the ticking task on the current runtime.
    pub fn start() -> Ticker {
        let ticks = Arc::new(AtomicU64::new(0));
        let counter = ticks.clone();
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(1));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ticker { ticks, task }
    }

    /// How many times it has ticked.
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Twisted's `synchronousIsValidUser`.
pub fn synchronous_is_valid_user(user: &str) -> bool {
    ["Alice", "Angus", "Agnes"].contains(&user)
}

/// Twisted's `immediateIsValidUser`: the same answer, as a Deferred that has
/// already fired (`defer.succeed`), for API compatibility with an
/// asynchronous version.
pub fn immediate_is_valid_user(user: &str) -> Deferred<bool> {
    let result = synchronous_is_valid_user(user);
    // return a Deferred object already called back with the value of result
    succeed(result)
}

/// The user is not one of ours.
#[derive(Debug, thiserror::Error)]
#[error("unknown user {0:?}")]
pub struct UnknownUserError(pub String);

/// "There is an equivalent `defer.fail`": a Deferred whose errback chain has
/// already fired.
pub fn immediate_user_number(user: &str) -> Deferred<usize> {
    match ["Alice", "Angus", "Agnes"].iter().position(|u| *u == user) {
        Some(i) => succeed(i + 1),
        None => fail(UnknownUserError(user.to_owned())),
    }
}

/// Runs the three parts. Must run on a current-thread runtime (as `main`
/// and `#[tokio::test]` do): part 1 shows that the only thread is blocked.
pub async fn run(out: &Printer) -> Result<(), Failure> {
    out.print("1. Computing inside a Deferred-returning function blocks the loop.");
    let ticker = Ticker::start();
    while ticker.ticks() < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    out.print("The ticker is ticking.");
    let ticks_before = ticker.ticks();
    let time_before = Instant::now();
    // call the function and get our Deferred
    let d = large_fibonacci_number_deferred(out);
    let time_after = Instant::now();
    out.print(format!(
        "Total time taken for largeFibonacciNumber call: {:.3} seconds",
        (time_after - time_before).as_secs_f64()
    ));
    out.print(format!(
        "During the call the ticker (due every 1 ms) ticked {} times: the loop was blocked",
        ticker.ticks() - ticks_before,
    ));
    out.print(format!(
        "The Deferred came back already fired: {}",
        d.is_called()
    ));
    // add a callback to it to print the number
    out.print("Adding the callback now.");
    let printer = out.clone();
    let d = d.add_callback(move |number: BigUint| {
        printer.print(format!(
            "The {TARGET}th Fibonacci number is {}",
            shorten(&number)
        ));
        Ok(())
    });
    d.await?; // already done: the callback ran inside add_callback

    out.print("2. defer_to_thread runs the blocking function on a thread; the loop goes on.");
    let ticks_before = ticker.ticks();
    // get our Deferred which will be called with the largeFibonacciNumber result
    let d = defer_to_thread(|| Ok::<_, Failure>(large_fibonacci_number()));
    // add our callback to print it out
    let printer = out.clone();
    let d = d.add_callback(move |result: BigUint| {
        printer.print(format!(
            "largeFibonacciNumber result = {}",
            shorten(&result)
        ));
        Ok(())
    });
    out.print("1st line after the addition of the callback");
    out.print("2nd line after the addition of the callback");
    d.await?; // the runtime is free while the thread computes
    out.print(format!(
        "Meanwhile the ticker ticked {} times",
        ticker.ticks() - ticks_before
    ));
    drop(ticker);

    out.print("3. Synchronous results as Deferreds: succeed, fail, maybe_deferred.");
    for user in ["Alice", "Bob"] {
        // Already fired: the callback runs inside add_callback.
        let printer = out.clone();
        let d = immediate_is_valid_user(user).add_callback(move |valid| {
            printer.print(format!("immediate_is_valid_user({user:?}) -> {valid}"));
            Ok(())
        });
        d.await?;
    }
    // The caller's alternative: wrap the synchronous function itself.
    let d = maybe_deferred(|| Ok::<_, Failure>(synchronous_is_valid_user("Agnes")));
    if let Some(Ok(valid)) = d.try_take() {
        out.print(format!(
            "maybe_deferred(|| synchronous_is_valid_user(\"Agnes\")) fired at once: {valid}"
        ));
    }
    let printer = out.clone();
    let d = immediate_user_number("Bob")
        .add_callback(|n| Ok(Some(n)))
        .add_errback(move |f: Failure| {
            printer.print(format!("immediate_user_number errback: {f}"));
            Ok(None)
        });
    d.await?;

    // "Deferreds are one-shot": a second callback is refused, and here the
    // refused value is given back.
    let (d, resolver) = Deferred::new();
    let _ = resolver.callback("first");
    if let Err(refused) = resolver.callback("second") {
        out.print(format!(
            "A second callback is refused; {:?} is given back",
            refused.into_inner()
        ));
    }
    // pause/unpause: callbacks added to a paused Deferred wait for unpause,
    // even though its result is there; whoever paused it unpauses it.
    d.pause();
    let printer = out.clone();
    let d = d.add_callback(move |value| {
        printer.print(format!("after unpause, the callback got {value:?}"));
        Ok(())
    });
    out.print(format!(
        "paused: {}; the callback has not run yet",
        d.is_paused()
    ));
    d.unpause();
    d.await?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(failure) = run(&Printer::default()).await {
        eprintln!("the fibonacci_thread example failed: {failure}");
        std::process::exit(1);
    }
}
