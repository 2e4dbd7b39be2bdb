//! `Deferred` as a `Future`: awaiting on every runtime flavour, wake-ups,
//! and the Resolver-dropped guarantee.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use common::*;
use tokio_deferred::*;

struct CountingWaker(AtomicUsize);
impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn poll_once<T: Send + 'static>(d: &mut Deferred<T>, waker: &Waker) -> Poll<Result<T, Failure>> {
    Pin::new(d).poll(&mut Context::from_waker(waker))
}

#[test]
fn the_awaiting_task_is_woken_once_when_the_result_is_ready() {
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let (d, r) = Deferred::<u8>::new();
    let (inner, ir) = Deferred::<u8>::new();
    let mut d = d.add_callback(move |_| inner);
    assert!(poll_once(&mut d, &waker).is_pending());
    d.pause();
    r.callback(1).unwrap(); // paused: nothing to wake for
    assert!(poll_once(&mut d, &waker).is_pending());
    d.unpause(); // now waiting on `inner`
    assert!(poll_once(&mut d, &waker).is_pending());
    assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    ir.callback(5).unwrap();
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    match poll_once(&mut d, &waker) {
        Poll::Ready(Ok(5)) => {}
        other => panic!("{other:?}"),
    }
    // Polling after completion gives ResultTakenError, not a panic.
    match poll_once(&mut d, &waker) {
        Poll::Ready(Err(f)) => assert!(f.is::<ResultTakenError>()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn await_with_tokio_test_mock_task() {
    let (d, r) = Deferred::<&str>::new();
    let mut task = tokio_test::task::spawn(d);
    tokio_test::assert_pending!(task.poll());
    r.callback("hi").unwrap();
    assert!(task.is_woken());
    assert_eq!(tokio_test::assert_ready!(task.poll()).unwrap(), "hi");
}

#[test]
fn an_already_fired_deferred_is_ready_at_first_poll() {
    let mut task = tokio_test::task::spawn(succeed(3));
    assert_eq!(tokio_test::assert_ready!(task.poll()).unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn await_on_the_multi_thread_runtime_fired_from_another_task() {
    let (d, r) = Deferred::<u32>::new();
    let waiter = tokio::spawn(async move { d.add_callback(|v| Ok(v + 1)).await });
    tokio::spawn(async move { r.callback(41).unwrap() })
        .await
        .unwrap();
    assert_eq!(waiter.await.unwrap().unwrap(), 42);
}

#[tokio::test(flavor = "current_thread")]
async fn await_on_the_current_thread_runtime() {
    let (d, r) = Deferred::<u32>::new();
    let waiter = tokio::spawn(d);
    tokio::task::yield_now().await;
    r.callback(7).unwrap();
    assert_eq!(waiter.await.unwrap().unwrap(), 7);
}

#[tokio::test(flavor = "current_thread")]
async fn await_in_a_local_set() {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let (d, r) = Deferred::<String>::new();
            let rc = std::rc::Rc::new(5); // !Send state in the awaiting task
            let waiter = tokio::task::spawn_local(async move { (d.await, *rc) });
            tokio::task::yield_now().await;
            r.callback("local".into()).unwrap();
            let (res, n) = waiter.await.unwrap();
            assert_eq!((res.unwrap(), n), ("local".to_owned(), 5));
        })
        .await;
}

#[tokio::test]
async fn into_future_works_for_awaiting_failures() {
    let d = fail::<u8>(GenericError("x".into()));
    let f = d.await.unwrap_err();
    assert!(f.is::<GenericError>());
}

#[tokio::test]
async fn awaiting_a_deferred_fired_from_a_plain_thread() {
    let (d, r) = Deferred::<u64>::new();
    let t = std::thread::spawn(move || r.callback(99).unwrap());
    assert_eq!(d.await.unwrap(), 99);
    t.join().unwrap();
}

// Rust does better than Twisted: every Resolver dropped before firing
// fails the Deferred (Twisted's would wait forever).
#[tokio::test]
async fn dropping_every_resolver_fails_the_deferred_instead_of_hanging() {
    let (d, r) = Deferred::<u8>::new();
    let r2 = r.clone();
    let waiter = tokio::spawn(d);
    tokio::task::yield_now().await;
    drop(r);
    tokio::task::yield_now().await;
    drop(r2);
    let f = waiter.await.unwrap().unwrap_err();
    assert!(f.is::<ResolverDroppedError>());
    assert!(f.to_string().contains("tests/future_bridge.rs"), "{f}");
}

#[test]
fn dropping_resolvers_after_firing_changes_nothing() {
    let (d, r) = Deferred::<u8>::new();
    r.callback(1).unwrap();
    drop(r);
    assert_eq!(success_result_of(&d), 1);
}

#[test]
fn awaiting_paused_and_waiting_deferreds_returns_their_eventual_result() {
    // Twisted: #8890 (awaiting a paused or chained Deferred).
    let (inner, ir) = Deferred::<u8>::new();
    let d = succeed(()).add_callback(move |_| inner);
    d.pause();
    let mut task = tokio_test::task::spawn(d);
    tokio_test::assert_pending!(task.poll());
    ir.callback(3).unwrap();
    tokio_test::assert_pending!(task.poll());
    task.unpause();
    assert!(task.is_woken());
    assert_eq!(tokio_test::assert_ready!(task.poll()).unwrap(), 3);
}
