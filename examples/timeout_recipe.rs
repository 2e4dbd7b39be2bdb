//! Twisted's "Asynchronous Recipes: Setting timeouts", as written there
//! (`callLater` a timeout handler, and cancel the `DelayedCall` when the
//! Deferred fires), then the same with `add_timeout`.
//!
//! Run with `cargo run --example timeout_recipe`. It uses the recipe's own
//! delays (3 s result, 10 s timeout) on a paused Tokio clock, so it finishes
//! at once.

use std::time::Duration;

use tokio_deferred::{Clock, Deferred, DelayedCall, Failure, TimeoutError, TokioClock};

/// `DUMMYTIME`: when the dummy result arrives.
pub const DUMMY_TIME: Duration = Duration::from_secs(3);
/// `TIMEOUT`: how long `timeout_setter` waits.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// `getDummyDeferred`: a stand-in for whatever function makes your Deferred;
/// it fires with "RESULT" after `delay`.
pub fn get_dummy_deferred(clock: &dyn Clock, delay: Duration) -> Deferred<&'static str> {
    let (d, resolver) = Deferred::new();
    clock.call_later(delay, move || {
        let _ = resolver.callback("RESULT");
    });
    d
}

/// `getTimeoutCancelFunction`: returns a function that cancels
/// `delayed_call` and passes the result on, for further callbacks/errbacks.
pub fn get_timeout_cancel_function<T>(
    delayed_call: DelayedCall,
) -> impl FnOnce(Result<T, Failure>) -> Result<T, Failure> + Send + 'static {
    move |deferred_result| {
        if delayed_call.active() {
            let _ = delayed_call.cancel();
        }
        // return the deferred result for processing by further callbacks/errbacks
        deferred_result
    }
}

/// `timeoutSetter`: gets the Deferred, sets up the timeout (running
/// `timeout_handler`, the recipe's `timeoutHandler`, after [`TIMEOUT`]) and
/// makes sure it is cancelled as soon as the Deferred fires, either way.
pub fn timeout_setter(
    clock: &dyn Clock,
    dummy_time: Duration,
    timeout_handler: impl FnOnce() + Send + 'static,
) -> Deferred<&'static str> {
    // get our deferred
    let d = get_dummy_deferred(clock, dummy_time);
    // tell the clock to call our timeout function after TIMEOUT has passed
    let delayed_call = clock.call_later(TIMEOUT, timeout_handler);
    // make sure the timeout gets cancelled as soon as the deferred fires
    d.add_both(get_timeout_cancel_function(delayed_call))
    // add further callbacks and errbacks to d here
}

/// The same today: `add_timeout` cancels the Deferred at the deadline and
/// turns the cancellation into a [`TimeoutError`].
pub fn with_add_timeout(clock: &dyn Clock, dummy_time: Duration) -> Deferred<&'static str> {
    get_dummy_deferred(clock, dummy_time).add_timeout_with_clock(TIMEOUT, clock)
}

fn main() {
    main_for_tests();
}

/// The example's body; `tests/timeout.rs` runs it too.
pub fn main_for_tests() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a Tokio runtime");
    rt.block_on(async {
        let clock = TokioClock::new();

        let d = timeout_setter(&clock, DUMMY_TIME, || println!("Timeout occurred"));
        println!("recipe, result in time: {:?}", d.await);

        let d = timeout_setter(&clock, TIMEOUT * 2, || println!("Timeout occurred"));
        println!("recipe, slow result (the handler ran first): {:?}", d.await);

        let d = with_add_timeout(&clock, DUMMY_TIME);
        println!("add_timeout, result in time: {:?}", d.await);

        match with_add_timeout(&clock, TIMEOUT * 2).await {
            Err(f) if f.is::<TimeoutError>() => println!("add_timeout, slow result: {f}"),
            other => println!("add_timeout, unexpected: {other:?}"),
        }
    });
}
