//! Threads: `defer_to_thread`, `defer_to_thread_pool` and
//! `blocking_call_from_thread` (Twisted's test_threads.py), and threads
//! racing each other on one Deferred.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::{self, ThreadId};
use std::time::Duration;

use tokio_deferred::*;

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
    let d = defer_to_thread(|| -> Result<(), _> { Err(NewError.into()) });
    assert!(d.await.unwrap_err().is::<NewError>());
}

// The closure returns `Result<T, Failure>`, as a callback does: `Ok(v)`
// needs no annotation, and `?` converts any error.
#[tokio::test]
async fn defer_to_thread_infers_ok_and_converts_errors_with_question_mark() {
    fn blocking_call() -> u32 {
        7
    }
    let d = defer_to_thread(|| Ok(blocking_call()));
    assert_eq!(d.await.unwrap(), 7);

    let d = defer_to_thread(|| Ok("12".parse::<u32>()? * 2));
    assert_eq!(d.await.unwrap(), 24);

    let d = defer_to_thread(|| Ok("twelve".parse::<u32>()?));
    assert!(d.await.unwrap_err().is::<std::num::ParseIntError>());

    let rt = tokio::runtime::Handle::current();
    let d = defer_to_thread_pool(&rt, || {
        let n: u8 = "300".parse()?;
        Ok(n)
    });
    assert!(d.await.unwrap_err().is::<std::num::ParseIntError>());
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
    let d = defer_to_thread_pool(rt.handle(), || -> Result<(), _> { Err(NewError.into()) });
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

// Threads racing `callback`, `cancel`, `add_callback` and `.await` on the
// same Deferred: every result is delivered exactly once, nothing is lost,
// nothing deadlocks.

const ROUNDS: usize = 2000;

#[test]
fn callback_races_add_callback() {
    for _ in 0..ROUNDS {
        let (d, r) = Deferred::<u32>::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(2));
        let (b, ran2) = (barrier.clone(), ran.clone());
        let adder = thread::spawn(move || {
            b.wait();
            let mut d = d;
            for i in 0..10 {
                let ran = ran2.clone();
                d = d.add_callback(move |v| {
                    assert_eq!(v, i, "callbacks run in FIFO order");
                    ran.fetch_add(1, Ordering::SeqCst);
                    Ok(v + 1)
                });
            }
            d
        });
        barrier.wait();
        r.callback(0).unwrap();
        let d = adder.join().unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 10);
        assert_eq!(d.try_take().unwrap().unwrap(), 10);
    }
}

#[test]
fn callback_races_cancel() {
    for _ in 0..ROUNDS {
        let cancels = Arc::new(AtomicUsize::new(0));
        let c = cancels.clone();
        let (d, r) = Deferred::<u32>::with_canceller(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        });
        let handle = d.cancel_handle();
        let barrier = Arc::new(Barrier::new(2));
        let b = barrier.clone();
        let canceller = thread::spawn(move || {
            b.wait();
            handle.cancel();
        });
        barrier.wait();
        let fired = r.callback(7).is_ok();
        canceller.join().unwrap();
        match d.try_take().unwrap() {
            Ok(v) => {
                assert!(fired);
                assert_eq!(v, 7);
            }
            Err(f) => {
                assert!(f.is::<CancelledError>());
                assert!(!fired, "a fire that lost must report AlreadyCalled");
                assert_eq!(cancels.load(Ordering::SeqCst), 1);
            }
        }
        assert!(cancels.load(Ordering::SeqCst) <= 1);
    }
}

#[test]
fn callback_races_await_and_drop_of_the_awaiting_future() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let delivered = Arc::new(AtomicUsize::new(0));
    for i in 0..ROUNDS {
        let (d, r) = Deferred::<usize>::new();
        let dd = delivered.clone();
        let waiter = rt.spawn(async move {
            let v = d.await.unwrap();
            dd.fetch_add(1, Ordering::SeqCst);
            v
        });
        let firer = thread::spawn(move || r.callback(i).unwrap());
        firer.join().unwrap();
        assert_eq!(rt.block_on(waiter).unwrap(), i);

        // The awaiting future dropped while the fire races: no panic, no leak
        // of the result into the void without a report.
        let (d, r) = Deferred::<usize>::new();
        let waiter = rt.spawn(d);
        let firer = thread::spawn(move || r.callback(i).unwrap());
        waiter.abort();
        firer.join().unwrap();
        let _ = rt.block_on(waiter);
    }
    assert_eq!(delivered.load(Ordering::SeqCst), ROUNDS);
}

#[test]
fn the_last_resolver_drop_races_callback() {
    for _ in 0..ROUNDS {
        let (d, r) = Deferred::<u8>::new();
        let r2 = r.clone();
        let barrier = Arc::new(Barrier::new(2));
        let b = barrier.clone();
        let t = thread::spawn(move || {
            b.wait();
            drop(r2);
        });
        barrier.wait();
        let fired = r.callback(1).is_ok();
        drop(r);
        t.join().unwrap();
        assert!(fired, "a live resolver always fires first");
        assert_eq!(d.try_take().unwrap().unwrap(), 1);
    }
}

#[test]
fn an_inner_deferred_fires_while_the_outer_is_cancelled() {
    for _ in 0..ROUNDS {
        let (inner, ir) = Deferred::<u8>::new();
        let d = succeed(()).add_callback(move |_| inner);
        let handle = d.cancel_handle();
        let barrier = Arc::new(Barrier::new(2));
        let b = barrier.clone();
        let t = thread::spawn(move || {
            b.wait();
            handle.cancel();
        });
        barrier.wait();
        let fired = ir.callback(5).is_ok();
        t.join().unwrap();
        match d.try_take().unwrap() {
            Ok(v) => {
                assert!(fired);
                assert_eq!(v, 5);
            }
            Err(f) => {
                assert!(f.is::<CancelledError>());
            }
        }
    }
}

#[test]
fn many_threads_add_callbacks_to_a_chain_while_it_is_fired() {
    // One chain handle moves between threads; callbacks added from each
    // thread in turn while another thread fires.
    for _ in 0..200 {
        let (d, r) = Deferred::<u64>::new();
        let total = Arc::new(AtomicUsize::new(0));
        let mut d = d;
        let mut handles = Vec::new();
        let firer = thread::spawn(move || r.callback(1).unwrap());
        for _ in 0..4 {
            let t = total.clone();
            let h = thread::spawn(move || {
                let mut d = d;
                for _ in 0..25 {
                    let t = t.clone();
                    d = d.add_callback(move |v| {
                        t.fetch_add(1, Ordering::SeqCst);
                        Ok(v + 1)
                    });
                }
                d
            });
            d = h.join().unwrap();
            handles.push(());
        }
        firer.join().unwrap();
        assert_eq!(d.try_take().unwrap().unwrap(), 101);
        assert_eq!(total.load(Ordering::SeqCst), 100);
    }
}

// Regression (stress test, race A): cancel() without a canceller racing
// callback() must not leave the late-fire swallow armed.
#[test]
fn a_canceller_less_cancel_racing_callback_swallows_at_most_the_loser() {
    for _ in 0..ROUNDS * 5 {
        let (d, r) = Deferred::<u32>::new();
        let h = d.cancel_handle();
        let barrier = Arc::new(Barrier::new(2));
        let b = barrier.clone();
        let t = thread::spawn(move || {
            b.wait();
            h.cancel();
        });
        barrier.wait();
        let _ = r.callback(1);
        t.join().unwrap();
        let cancelled = matches!(d.try_take(), Some(Err(f)) if f.is::<CancelledError>());
        assert!(cancelled || r.callback(2).is_err());
    }
}

// Regression (stress test, race B): concurrent cancel()s run the canceller
// once and do not behave as if there were no canceller.
#[test]
fn concurrent_cancels_with_a_canceller_swallow_nothing() {
    for _ in 0..ROUNDS {
        let runs = Arc::new(AtomicUsize::new(0));
        let c = runs.clone();
        let (d, r) = Deferred::<u32>::with_canceller(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
            thread::yield_now();
        });
        let h = d.cancel_handle();
        let barrier = Arc::new(Barrier::new(2));
        let b = barrier.clone();
        let t = thread::spawn(move || {
            b.wait();
            h.cancel();
        });
        barrier.wait();
        d.cancel();
        t.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(r.callback(2).is_err());
    }
}
