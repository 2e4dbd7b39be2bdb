//! `defer_later` on the Tokio clock: one timer driver per runtime (ordering,
//! cancellation, several runtimes, runtime shutdown, many pending calls).

use std::sync::Arc;
use std::time::Duration;

use tokio_deferred::{
    CancelledError, Deferred, Failure, ResolverDroppedError, defer_later, gather_results,
};

mod common;
use common::{Log, failure_result_of};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn logged(log: &Log<u32>, delay: Duration, tag: u32) -> Deferred<u32> {
    let log = log.clone();
    defer_later(delay, move || {
        log.push(tag);
        Ok::<_, Failure>(tag)
    })
}

async fn settle() {
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
}

// Twisted: test_base.py TimeTests (calls due at the same time run in the
// order they were scheduled) and test_task.py DeferLaterTests.test_callback.
#[tokio::test(start_paused = true)]
async fn calls_fire_by_deadline_and_in_scheduling_order_for_equal_deadlines() {
    let log = Log::new();
    let ds = vec![
        logged(&log, ms(3000), 1),
        logged(&log, ms(1000), 2),
        logged(&log, ms(2000), 3),
        logged(&log, ms(1000), 4),
        logged(&log, ms(3000), 5),
        logged(&log, ms(0), 6),
        logged(&log, ms(1000), 7),
    ];
    tokio::time::advance(ms(999)).await;
    settle().await;
    assert_eq!(log.get(), [6]);
    let values = gather_results(ds).await.unwrap();
    assert_eq!(values, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(log.get(), [6, 2, 4, 7, 3, 1, 5]);
}

#[tokio::test(start_paused = true)]
async fn a_call_is_not_run_before_its_deadline() {
    let log = Log::new();
    let d = logged(&log, ms(5000), 1);
    tokio::time::advance(ms(4999)).await;
    settle().await;
    assert!(log.get().is_empty());
    assert!(!d.is_called());
    tokio::time::advance(ms(1)).await;
    settle().await;
    assert_eq!(log.get(), [1]);
    assert_eq!(d.await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_call_scheduled_by_a_firing_call_runs_later() {
    let log = Log::new();
    let l = log.clone();
    let d = defer_later(ms(10), move || {
        l.push(1);
        logged(&l, Duration::ZERO, 2)
    });
    assert_eq!(d.await.unwrap(), 2);
    assert_eq!(log.get(), [1, 2]);
}

// Twisted: test_task.py DeferLaterTests.test_cancel
#[tokio::test(start_paused = true)]
async fn cancel_before_the_deadline_fails_with_cancelled_and_frees_the_function() {
    let held = Arc::new(());
    let inside = held.clone();
    let log = Log::new();
    let other = logged(&log, ms(2000), 2);
    let l = log.clone();
    let d = defer_later(ms(1000), move || {
        let _keep = &inside;
        l.push(1);
        Ok::<_, Failure>(1)
    });
    tokio::time::advance(ms(500)).await;
    d.cancel();
    assert_eq!(
        Arc::strong_count(&held),
        1,
        "the function outlived the cancel"
    );
    assert!(d.await.unwrap_err().is::<CancelledError>());
    assert_eq!(other.await.unwrap(), 2);
    assert_eq!(log.get(), [2]);
}

#[tokio::test(start_paused = true)]
async fn cancel_at_the_deadline_either_fires_or_cancels_never_both() {
    let log = Log::new();
    let d = logged(&log, ms(1000), 1);
    tokio::time::advance(ms(1000)).await;
    d.cancel();
    settle().await;
    match d.try_take().unwrap() {
        Ok(v) => assert_eq!((v, log.get()), (1, vec![1])),
        Err(f) => {
            assert!(f.is::<CancelledError>());
            assert!(log.get().is_empty());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_does_not_move_the_paused_clock() {
    let d = defer_later(Duration::from_secs(3600), || Ok::<_, Failure>(()));
    settle().await; // the driver sleeps until the call's deadline
    let start = tokio::time::Instant::now();
    d.cancel();
    // The runtime goes idle until the thread sends: a paused clock then
    // jumps to the next timer, which must not be the cancelled call's.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        std::thread::sleep(ms(2));
        let _ = tx.send(());
    });
    rx.await.unwrap();
    assert!(tokio::time::Instant::now() - start < Duration::from_secs(3600));
}

#[tokio::test(start_paused = true)]
async fn cancel_from_another_thread_fails_with_cancelled() {
    let log = Log::new();
    let d = logged(&log, ms(1000), 1);
    let handle = d.cancel_handle();
    std::thread::spawn(move || handle.cancel()).join().unwrap();
    assert!(d.await.unwrap_err().is::<CancelledError>());
    tokio::time::advance(ms(2000)).await;
    settle().await;
    assert!(log.get().is_empty());
}

#[tokio::test(start_paused = true)]
async fn many_cancelled_calls_leave_the_others_in_order() {
    let log = Log::new();
    let mut keep = Vec::new();
    for i in 0..1000u32 {
        let d = logged(&log, ms(u64::from(i % 10)), i);
        if i % 4 == 0 {
            keep.push((i, d));
        } else {
            d.cancel();
            assert!(d.try_take().unwrap().unwrap_err().is::<CancelledError>());
        }
    }
    for (i, d) in keep {
        assert_eq!(d.await.unwrap(), i);
    }
    let mut expected: Vec<u32> = (0..1000).filter(|i| i % 4 == 0).collect();
    expected.sort_by_key(|i| (i % 10, *i));
    assert_eq!(log.get(), expected);
}

#[tokio::test(start_paused = true)]
async fn one_hundred_thousand_pending_calls_fire_in_deadline_then_scheduling_order() {
    const N: u32 = 100_000;
    let log = Log::new();
    let ds: Vec<_> = (0..N)
        .map(|i| logged(&log, ms(u64::from((i * 7919) % 13)), i))
        .collect();
    let values = gather_results(ds).await.unwrap();
    assert_eq!(values.len(), N as usize);
    let mut expected: Vec<u32> = (0..N).collect();
    expected.sort_by_key(|i| ((i * 7919) % 13, *i));
    assert_eq!(log.get(), expected);
}

/// Calls due together whose Deferreds tasks await: the driver lets the
/// woken tasks run after a few calls, instead of firing every due call
/// before any of them (so a busy server answers the first requests while
/// later calls are still due).
#[tokio::test(start_paused = true)]
async fn tasks_woken_by_due_calls_run_before_every_due_call_has_fired() {
    use std::sync::atomic::{AtomicU32, Ordering};
    const N: u32 = 200;
    let fired = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let counted = fired.clone();
            let d = defer_later(ms(5), move || {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Failure>(())
            });
            let seen = fired.clone();
            tokio::spawn(async move {
                d.await.unwrap();
                seen.load(Ordering::SeqCst)
            })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap());
    }
    assert_eq!(fired.load(Ordering::SeqCst), N);
    // The first task to run saw only the first few calls fired.
    let first = *seen.iter().min().unwrap();
    assert!(
        first < N / 4,
        "the first woken task ran after {first} of {N} calls"
    );
    // Every task ran after its own call.
    assert!(seen.iter().all(|&n| n >= 1));
}

#[test]
fn calls_fire_on_a_multi_thread_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let total: u32 = rt.block_on(async {
        let tasks: Vec<_> = (0..8u32)
            .map(|t| {
                tokio::spawn(async move {
                    let log = Log::new();
                    let ds: Vec<_> = (0..100).map(|i| logged(&log, ms(1), t * 100 + i)).collect();
                    let n = gather_results(ds).await.unwrap().len();
                    // Equal deadlines from one task fire in its order.
                    assert_eq!(log.get(), (t * 100..t * 100 + 100).collect::<Vec<_>>());
                    n as u32
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    assert_eq!(total, 800);
}

#[test]
fn each_runtime_fires_its_own_calls() {
    let rts: Vec<_> = (0..3)
        .map(|_| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .unwrap()
        })
        .collect();
    // Interleaved on one thread: each call lands on the driver of the
    // runtime it was scheduled on, and fires there.
    let ds: Vec<_> = (0..30u64)
        .map(|i| {
            let rt = &rts[(i % 3) as usize];
            let _guard = rt.enter();
            let id = rt.handle().id();
            defer_later(ms(10 + i), move || {
                Ok::<_, Failure>(tokio::runtime::Handle::current().id() == id)
            })
        })
        .collect();
    for (i, d) in ds.into_iter().enumerate() {
        assert!(rts[i % 3].block_on(d).unwrap(), "call {i} fired elsewhere");
    }
    // Many runtimes, one after another and side by side on threads.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..10u64 {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .start_paused(true)
                        .build()
                        .unwrap();
                    let v = rt.block_on(async move {
                        defer_later(ms(i), move || Ok::<_, Failure>(t * 10 + i)).await
                    });
                    assert_eq!(v.unwrap(), t * 10 + i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn runtime_shutdown_fails_pending_calls_with_resolver_dropped() {
    let held = Arc::new(());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    let inside = held.clone();
    let (d, never_run) = rt.block_on(async move {
        let d = defer_later(Duration::from_secs(3600), move || {
            let _keep = &inside;
            Ok::<_, Failure>(1)
        });
        let l = Log::new();
        let never_run = logged(&l, Duration::from_secs(7200), 2);
        tokio::task::yield_now().await; // the driver runs and sleeps
        (d, never_run)
    });
    assert!(!d.is_called());
    drop(rt);
    assert!(failure_result_of(&d).is::<ResolverDroppedError>());
    assert!(failure_result_of(&never_run).is::<ResolverDroppedError>());
    assert_eq!(Arc::strong_count(&held), 1, "the function was leaked");
    // Scheduling on the runtime that is gone does not hang either.
    let _guard = handle.enter();
    let late = defer_later(ms(1), || Ok::<_, Failure>(3));
    assert!(failure_result_of(&late).is::<ResolverDroppedError>());
}

#[test]
fn runtime_shutdown_with_calls_never_driven_fails_them() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Scheduled from outside `block_on`: the driver task is spawned but
    // never polled before the runtime goes.
    let d = {
        let _guard = rt.enter();
        defer_later(ms(1), || Ok::<_, Failure>(1))
    };
    drop(rt);
    assert!(failure_result_of(&d).is::<ResolverDroppedError>());
}

#[test]
fn cancels_racing_deadlines_on_a_multi_thread_runtime_either_fire_or_cancel() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ran = Log::new();
        let ds: Vec<_> = (0..400u32)
            .map(|i| logged(&ran, ms(u64::from(i % 3)), i))
            .collect();
        let handles: Vec<_> = ds.iter().map(Deferred::cancel_handle).collect();
        // Cancel from another task (maybe another worker) while the driver fires.
        let canceller = tokio::spawn(async move {
            for (i, h) in handles.into_iter().enumerate() {
                if i % 2 == 0 {
                    h.cancel();
                }
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
        canceller.await.unwrap();
        let mut fired = Vec::new();
        for (i, d) in ds.into_iter().enumerate() {
            match d.await {
                Ok(v) => {
                    assert_eq!(v, i as u32);
                    fired.push(v);
                }
                Err(f) => {
                    assert!(f.is::<CancelledError>());
                    assert_eq!(i % 2, 0, "only cancelled calls fail");
                }
            }
        }
        let mut ran = ran.get();
        ran.sort_unstable();
        assert_eq!(ran, fired, "f ran exactly for the calls that fired");
    });
}
