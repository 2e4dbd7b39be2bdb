//! defer_to_thread, defer_to_thread_pool, blocking_call_from_thread:
//! Twisted's test_threads.py.

use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use tokio_deferred::{
    CalledFromRuntimeError, CancelledError, Deferred, Failure, RuntimeRequiredError,
    blocking_await_from_thread, blocking_call_from_thread, defer_later, defer_to_thread,
    defer_to_thread_pool, fail, succeed,
};

#[derive(Debug, thiserror::Error)]
#[error("new error")]
struct NewError;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct RuntimeError(&'static str);

fn add(x: i32, y: i32) -> Result<i32, Failure> {
    Ok(x + y)
}

// Twisted: test_threads.py DeferredResultTests.test_deferredResult
#[tokio::test]
async fn defer_to_thread_returns_the_result() {
    let d = defer_to_thread(|| add(3, 4));
    assert_eq!(d.await.unwrap(), 7);
}

// Twisted: test_threads.py DeferredResultTests.test_deferredFailure
#[tokio::test]
async fn defer_to_thread_error_becomes_a_failure() {
    let d = defer_to_thread(|| -> Result<(), NewError> { Err(NewError) });
    assert!(d.await.unwrap_err().is::<NewError>());
}

// Twisted: test_threads.py DeferredResultTests.test_deferredFailureAfterSuccess
#[tokio::test]
async fn chained_defer_to_thread_failure_after_success() {
    let d = defer_to_thread(|| add(3, 4)).add_callback(|_| {
        defer_to_thread(|| -> Result<i32, Failure> {
            let zero = std::hint::black_box(0);
            1i32.checked_div(zero)
                .ok_or_else(|| Failure::msg("division by zero"))
        })
    });
    assert_eq!(d.await.unwrap_err().to_string(), "division by zero");
}

#[tokio::test]
async fn defer_to_thread_panic_becomes_a_failure() {
    let d = defer_to_thread(|| -> Result<(), Failure> { panic!("worker panicked") });
    let f = d.await.unwrap_err();
    assert!(f.is_panic());
    assert!(f.to_string().contains("worker panicked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_run_on_the_runtime_not_the_blocking_thread() {
    let worker: Arc<Mutex<Option<ThreadId>>> = Arc::new(Mutex::new(None));
    let w = worker.clone();
    let d = defer_to_thread(move || {
        *w.lock().unwrap() = Some(std::thread::current().id());
        Ok::<_, Failure>(())
    })
    .add_callback(|_| Ok(std::thread::current().id()));
    let callback_thread = d.await.unwrap();
    let worker_thread = worker.lock().unwrap().unwrap();
    assert_ne!(callback_thread, worker_thread);
}

// Callbacks added while the worker finishes (before or after its result
// came) never run on the worker: queued ones run in a task on the runtime,
// later ones where they are added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_racing_the_result_never_run_on_the_blocking_thread() {
    for _ in 0..200 {
        let worker: Arc<Mutex<Option<ThreadId>>> = Arc::new(Mutex::new(None));
        let w = worker.clone();
        let d = defer_to_thread(move || {
            *w.lock().unwrap() = Some(std::thread::current().id());
            Ok::<_, Failure>(())
        });
        tokio::task::yield_now().await;
        let callback_thread = d
            .add_callback(|_| Ok(std::thread::current().id()))
            .await
            .unwrap();
        assert_ne!(Some(callback_thread), *worker.lock().unwrap());
    }
}

// Awaited with no callbacks, the result comes straight from the worker
// (stored there, the awaiting task woken); failures and panics too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_awaited_calls_all_deliver() {
    for i in 0..500u32 {
        let d = defer_to_thread(move || {
            if i % 3 == 0 {
                Err(Failure::new(NewError))
            } else {
                Ok(i)
            }
        });
        match d.await {
            Ok(v) => assert_eq!(v, i),
            Err(f) => {
                assert_eq!(i % 3, 0);
                assert!(f.is::<NewError>());
            }
        }
    }
}

// A call whose function finishes while the runtime shuts down still gets
// its result (there is no runtime left to run its callbacks on: they run
// where the pending delivery is dropped), whether the delivery task was
// refused, dropped unrun, or ran.
#[test]
fn a_call_finishing_during_the_runtime_shutdown_still_gets_its_result() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let d = defer_to_thread_pool(rt.handle(), move || {
        started_tx.send(()).unwrap();
        gate_rx.recv().unwrap();
        Ok::<_, Failure>(7)
    });
    started_rx.recv().unwrap();
    // A queued callback: the result cannot be fired on the blocking
    // thread, it needs a task on the runtime, which is shutting down.
    let (tx, rx) = std::sync::mpsc::channel();
    let d = d.add_both(move |r| {
        tx.send(r.map_err(|f| f.to_string())).unwrap();
        Ok(())
    });
    rt.shutdown_background();
    gate_tx.send(()).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), Ok(7));
    drop(d);
}

// A call made after the runtime is gone fails at once, typed.
#[test]
fn a_call_on_a_shut_down_runtime_fails_with_runtime_shutdown() {
    let rt = private_pool();
    let handle = rt.handle().clone();
    drop(rt);
    let d = defer_to_thread_pool(&handle, || Ok::<_, Failure>(1));
    assert!(
        d.try_take()
            .unwrap()
            .unwrap_err()
            .is::<tokio_deferred::RuntimeShutdownError>()
    );
}

#[tokio::test]
async fn cancel_fails_at_once_and_the_late_result_is_dropped() {
    let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let d = defer_to_thread(move || {
        gate_rx.recv().unwrap();
        let _ = done_tx.send(());
        Ok::<_, Failure>(42)
    });
    d.cancel();
    assert!(d.try_take().unwrap().unwrap_err().is::<CancelledError>());
    gate_tx.send(()).unwrap(); // let the thread finish; its result is swallowed
    done_rx.await.unwrap();
    tokio::task::yield_now().await;
}

#[test]
fn defer_to_thread_without_a_runtime_fails_clearly() {
    let d = defer_to_thread(|| add(1, 1));
    assert!(
        d.try_take()
            .unwrap()
            .unwrap_err()
            .is::<RuntimeRequiredError>()
    );
}

fn private_pool() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(8)
        .build()
        .unwrap()
}

// Twisted: test_threads.py DeferToThreadPoolTests.test_deferredResult
#[test]
fn defer_to_thread_pool_returns_the_result() {
    let rt = private_pool();
    let d = defer_to_thread_pool(rt.handle(), || add(3, 4));
    assert_eq!(rt.block_on(d).unwrap(), 7);
}

// Twisted: test_threads.py DeferToThreadPoolTests.test_deferredFailure
#[test]
fn defer_to_thread_pool_error_becomes_a_failure() {
    let rt = private_pool();
    let d = defer_to_thread_pool(rt.handle(), || -> Result<(), NewError> { Err(NewError) });
    assert!(rt.block_on(d).unwrap_err().is::<NewError>());
}

// Twisted: test_threads.py test_callMultiple (order within one thread)
#[tokio::test]
async fn several_calls_in_one_thread_run_in_order() {
    let d = defer_to_thread(|| {
        let mut l = Vec::new();
        for i in 0..10 {
            l.push(i);
        }
        Ok::<_, Failure>(l)
    });
    assert_eq!(d.await.unwrap(), (0..10).collect::<Vec<_>>());
}

/// Runs `f` on a plain thread while the test's runtime keeps going.
async fn on_plain_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.unwrap()
}

// Twisted: test_threads.py test_blockingCallFromThread
#[tokio::test(start_paused = true)]
async fn blocking_call_from_a_plain_thread_gets_the_value() {
    let handle = tokio::runtime::Handle::current();
    let r = on_plain_thread(move || blocking_call_from_thread(&handle, || succeed("foo"))).await;
    assert_eq!(r.unwrap(), "foo");
}

// Twisted: test_threads.py test_asyncBlockingCallFromThread
#[tokio::test(start_paused = true)]
async fn blocking_call_waits_for_a_later_deferred() {
    let handle = tokio::runtime::Handle::current();
    let r = on_plain_thread(move || {
        blocking_call_from_thread(&handle, || {
            defer_later(Duration::from_millis(100), || Ok("egg"))
        })
    })
    .await;
    assert_eq!(r.unwrap(), "egg");
}

// Twisted: test_threads.py test_errorBlockingCallFromThread
#[tokio::test]
async fn blocking_call_returns_the_failure() {
    let handle = tokio::runtime::Handle::current();
    let r = on_plain_thread(move || {
        blocking_call_from_thread(&handle, || fail::<()>(RuntimeError("bar")))
    })
    .await;
    let f = r.unwrap_err();
    assert!(f.is::<RuntimeError>());
    assert_eq!(f.to_string(), "bar");
}

// Twisted: test_threads.py test_asyncErrorBlockingCallFromThread
#[tokio::test(start_paused = true)]
async fn blocking_call_returns_a_later_failure() {
    let handle = tokio::runtime::Handle::current();
    let r = on_plain_thread(move || {
        blocking_call_from_thread(&handle, || {
            defer_later(Duration::from_millis(100), || -> Result<(), Failure> {
                Err(RuntimeError("spam").into())
            })
        })
    })
    .await;
    assert_eq!(r.unwrap_err().to_string(), "spam");
}

#[tokio::test]
async fn blocking_call_from_a_defer_to_thread_worker() {
    let handle = tokio::runtime::Handle::current();
    let d =
        defer_to_thread(move || blocking_call_from_thread(&handle, || succeed(5)).map(|n| n * 2));
    assert_eq!(d.await.unwrap(), 10);
}

#[tokio::test]
async fn blocking_await_runs_a_future_on_the_runtime() {
    let handle = tokio::runtime::Handle::current();
    let r = on_plain_thread(move || {
        blocking_await_from_thread(&handle, async {
            let (d, r) = Deferred::<u8>::new();
            tokio::spawn(async move { r.callback(8).unwrap() });
            d.await
        })
    })
    .await;
    assert_eq!(r.unwrap(), 8);
}

#[tokio::test]
async fn blocking_call_from_a_runtime_thread_is_an_error_not_a_deadlock() {
    let handle = tokio::runtime::Handle::current();
    let r = blocking_call_from_thread(&handle, || succeed(1));
    assert!(r.unwrap_err().is::<CalledFromRuntimeError>());
}

#[test]
fn blocking_call_after_the_runtime_is_gone_fails_clearly() {
    let rt = private_pool();
    let handle = rt.handle().clone();
    drop(rt);
    let r = blocking_call_from_thread(&handle, || succeed(1));
    assert!(r.unwrap_err().is::<tokio_deferred::RuntimeShutdownError>());
}
