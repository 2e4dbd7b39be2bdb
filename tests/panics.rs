//! Panics in user code are contained and become failures.

mod common;

use common::*;
use tokio_deferred::*;

#[test]
fn a_panicking_callback_fails_the_chain_and_the_chain_goes_on() {
    let (d, r) = Deferred::<u8>::new();
    let d = d
        .add_callback(|_| -> Result<u8, Failure> { panic!("in callback") })
        .add_errback(|f| {
            assert!(f.is_panic());
            Ok(9)
        })
        .add_callback(|v| Ok(v + 1));
    r.callback(1).unwrap(); // does not unwind
    assert_eq!(success_result_of(&d), 10);
}

#[test]
fn a_panicking_errback_becomes_the_next_failure() {
    let d = fail::<u8>(Failure::msg("first"))
        .add_errback(|_| -> Result<u8, Failure> { panic!("in errback") });
    let f = failure_result_of(&d);
    assert_eq!(f.to_string(), "panicked: in errback");
}

#[test]
fn a_panic_does_not_poison_the_deferred() {
    let (d, r) = Deferred::<u8>::new();
    let d = d.add_callback(|_| -> Result<u8, Failure> { panic!("once") });
    r.callback(1).unwrap();
    // Still usable: add more callbacks, inspect, cancel.
    let d = d.add_errback(|_| Ok(2));
    d.cancel();
    assert_eq!(success_result_of(&d), 2);
    assert!(r.callback(3).is_err());
}

#[test]
fn maybe_deferred_and_execute_catch_panics() {
    let d = maybe_deferred(|| -> Result<u8, Failure> { panic!("maybe") });
    assert!(failure_result_of(&d).is_panic());
    let d = execute(|| -> Result<u8, Failure> { panic!("exec") });
    assert!(failure_result_of(&d).is_panic());
}

#[tokio::test]
async fn a_panicking_future_fails_its_deferred() {
    let d = ensure_deferred(async {
        tokio::task::yield_now().await;
        if true {
            panic!("in future");
        }
        Ok::<u8, Failure>(1)
    });
    let f = d.await.unwrap_err();
    assert!(f.is_panic());
    assert!(f.to_string().contains("in future"));

    let d = ensure_deferred(async {
        if true {
            panic!("before suspending");
        }
        Ok::<u8, Failure>(1)
    });
    assert!(failure_result_of(&d).is_panic());
}

#[test]
fn a_panicking_canceller_still_fails_the_deferred() {
    let (d, _r) = Deferred::<u8>::with_canceller(|_| panic!("bad canceller"));
    d.cancel();
    assert!(failure_result_of(&d).is_panic());
}
