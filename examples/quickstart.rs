//! A short tour of tokio-deferred: run with `cargo run --example quickstart`.
//!
//! Producer/consumer with a Resolver, a retyping chain with an errback,
//! implicit chaining, awaiting, `ensure_deferred`, and cancellation.

use std::time::Duration;

use tokio_deferred::{CancelledError, Deferred, Failure, ensure_deferred, succeed};

/// Stands in for a network call: a Deferred fired later by a task, like
/// Twisted's `reactor.callLater(2, d.callback, ...)`.
fn get_page(url: &str) -> Deferred<String> {
    let (d, resolver) = Deferred::new();
    let body = format!("<HTML>Page at {url}</HTML>");
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = resolver.callback(body);
    });
    d
}

#[tokio::main]
async fn main() {
    run().await;
}

/// The tour (a function so that tests/examples.rs can run it).
pub async fn run() {
    println!("1. A Deferred is fired by its Resolver; callbacks run in the firing thread.");
    let (d, resolver) = Deferred::<String>::new();
    let d = d
        .add_callback(|s: String| {
            println!("   callback got {s:?}");
            let n: u32 = s.trim().parse()?; // a ParseIntError goes to the errback
            Ok(n)
        })
        .add_errback(|f: Failure| {
            println!("   errback got: {f}");
            Ok(0)
        })
        .add_callback(|n| Ok(n * 2)); // Deferred<String> became Deferred<u32>
    resolver.callback("not a number".to_owned()).unwrap();
    println!("   result: {:?}", d.await);

    println!("2. A callback may return another Deferred: the chain waits for it.");
    let d = succeed("example.org")
        .add_callback(|host| get_page(&format!("http://{host}/")))
        .add_callback(|page| Ok(page.to_lowercase()));
    println!("   page: {}", d.await.unwrap());

    println!("3. Any future becomes a Deferred with ensure_deferred.");
    let d = ensure_deferred(async {
        let a = get_page("/a").await?;
        let b = get_page("/b").await?;
        Ok::<_, Failure>(a.len() + b.len())
    });
    println!("   total length: {}", d.await.unwrap());

    println!("4. Cancelling runs the canceller, else fails with CancelledError.");
    let (d, _resolver) = Deferred::<u32>::with_canceller(|_r| println!("   canceller ran"));
    let d = d.add_errback(|f: Failure| {
        f.trap::<CancelledError>()?;
        println!("   errback saw CancelledError");
        Ok(0)
    });
    d.cancel();
    println!("   result: {:?}", d.await);

    println!("5. Cancelling an ensure_deferred goes to the Deferred it awaits.");
    let (slow, _r) = Deferred::<u32>::new();
    let d = ensure_deferred(async move {
        match slow.await {
            Err(f) if f.is::<CancelledError>() => Ok(4320), // the future decides
            other => other,
        }
    });
    d.cancel();
    println!("   result: {:?}", d.await);

    println!();
    println!("Next, one example per Twisted document:");
    for (name, what) in TOUR {
        println!("   cargo run --example {name:<17} # {what}");
    }
    println!("MIGRATING.md maps every Twisted name to its Rust form; the tests in");
    println!("tests/ port Twisted's own test suite.");
}

/// The other examples, in reading order: (name, what it shows). A test
/// checks that this lists exactly the files of examples/.
pub const TOUR: &[(&str, &str)] = &[
    ("get_page", "getPage over HTTP: two callbacks, an errback"),
    ("fibonacci_thread", "blocking code vs defer_to_thread"),
    ("delayed_resource", "HTTP response after defer_later"),
    ("timeout_recipe", "call_later timeouts, then add_timeout"),
    ("inline_callbacks", "@inlineCallbacks, ensureDeferred"),
    ("local_protocol", "LocalDeferred: one-thread client"),
    ("cancel_walkthrough", "twelve cancels, as Twisted runs them"),
    ("job_runner", "DeferredQueue + cooperate + react"),
];
