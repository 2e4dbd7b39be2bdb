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
    println!("More: the tests in tests/ port Twisted's own test suite; see README.md");
    println!("for the Twisted -> Rust table and DESIGN.md for how the chain runs.");
}
