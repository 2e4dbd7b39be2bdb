//! `ensure_deferred` / `Deferred::from_future` (Twisted's ensureDeferred,
//! fromCoroutine and the coroutine cancellation tests).

// The async blocks wrapping a single `.await` are the point of these tests:
// they are the futures being driven.
#![allow(clippy::redundant_async_block)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use tokio_deferred::*;

// Twisted: test_defer_await.py test_basic
#[test]
fn a_future_that_never_suspends_needs_no_runtime() {
    let d = ensure_deferred(async { succeed("foo").await });
    assert_eq!(success_result_of(&d), "foo");
    let d = Deferred::from_future(async { 5 });
    assert_eq!(success_result_of(&d), 5);
}

// Twisted: test_defer_await.py test_exception / test_reraise
#[test]
fn errors_and_caught_failures() {
    let d = ensure_deferred(async {
        succeed(1).await?;
        Err::<u8, Failure>(GenericError("Oh no!".into()).into())
    });
    assert!(failure_result_of(&d).is::<GenericError>());
    let d = ensure_deferred(async {
        match fail::<u8>(Failure::msg("Boom")).await {
            Ok(_) => Ok::<_, Failure>(0),
            Err(_) => Ok(1),
        }
    });
    assert_eq!(success_result_of(&d), 1);
}

#[test]
fn a_suspending_future_without_a_runtime_fails_clearly() {
    let (never, _r) = Deferred::<u8>::new();
    let d = ensure_deferred(async move { never.await });
    let f = failure_result_of(&d);
    assert!(f.is::<NoRuntimeError>(), "{f:?}");
    assert!(f.to_string().contains("runtime"));
}

// Twisted: test_defer_await.py test_twoDeep (with the paused Tokio clock).
#[tokio::test(start_paused = true)]
async fn two_deep_with_timers() {
    let log = Log::new();
    let l = log.clone();
    async fn runone(l: Log<u8>) -> Result<&'static str, Failure> {
        l.push(2);
        tokio::time::sleep(Duration::from_secs(1)).await;
        l.push(3);
        Ok("Yay!")
    }
    let d = ensure_deferred(async move {
        l.push(1);
        let result = ensure_deferred(runone(l.clone())).await?;
        l.push(4);
        tokio::time::sleep(Duration::from_secs(1)).await;
        l.push(5);
        Ok::<_, Failure>(result)
    });
    assert_eq!(log.get(), [1, 2], "runs inline to its first suspension");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(log.get(), [1, 2]);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(log.get(), [1, 2, 3, 4]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(log.get(), [1, 2, 3, 4, 5]);
    assert_eq!(d.await.unwrap(), "Yay!");
}

// Twisted: test_defer_await.py test_chained
#[tokio::test]
async fn awaiting_a_chained_deferred() {
    let (d2, r2) = Deferred::<&str>::new();
    let d = succeed(()).add_callback(move |_| d2);
    let result = ensure_deferred(async move { d.await });
    tokio::spawn(async move { r2.callback("bye").unwrap() });
    assert_eq!(result.await.unwrap(), "bye");
}

// Twisted: inlinecb CancellationTests.ErrorToSuccessTranslation (4320).
#[tokio::test]
async fn cancel_goes_to_the_awaited_deferred_which_the_future_may_handle() {
    let (child, _r) = Deferred::<u32>::with_canceller(|r| {
        r.errback(GenericError("4321".into())).unwrap();
    });
    let d = ensure_deferred(async move {
        match child.await {
            Ok(v) => Ok(v),
            Err(f) => match f.downcast_ref::<GenericError>() {
                Some(e) => Ok(e.0.parse::<u32>()? - 1),
                None => Err(f),
            },
        }
    });
    assert!(!d.is_called());
    d.cancel();
    assert_eq!(d.await.unwrap(), 4320);
}

// Twisted: inlinecb CancellationTests.ErrbackCancelledErrorOnCancel
#[tokio::test]
async fn an_uncaught_cancel_fails_with_cancelled_error() {
    let (child, _r) = Deferred::<u32>::new();
    let d = ensure_deferred(async move { child.await });
    d.cancel();
    assert!(d.await.unwrap_err().is::<CancelledError>());
}

// Twisted: inlinecb CancellationTests.AsynchronousCancellation (6544)
#[tokio::test]
async fn the_awaited_deferred_may_turn_the_cancel_into_another_wait() {
    let (more, more_r) = Deferred::<u32>::new();
    let (child, _r) = Deferred::<u32>::new();
    // Trap the cancel and wait on `more` instead; anything else re-raised.
    let child = child.add_errback(move |f| match f.trap::<CancelledError>() {
        Ok(_) => more,
        Err(f) => fail(f),
    });
    let d = ensure_deferred(async move { Ok::<_, Failure>(child.await? + 1) });
    d.cancel();
    tokio::task::yield_now().await;
    assert!(!d.is_called());
    more_r.callback(6543).unwrap();
    assert_eq!(d.await.unwrap(), 6544);
}

// Twisted: inlinecb test_inlineCallbacksCancelCaptured
#[tokio::test]
async fn each_cancel_goes_to_the_deferred_awaited_at_that_time() {
    let c1 = Arc::new(AtomicUsize::new(0));
    let c2 = Arc::new(AtomicUsize::new(0));
    let (k1, k2) = (c1.clone(), c2.clone());
    let (d1, _r1) = Deferred::<()>::with_canceller(move |_| {
        k1.fetch_add(1, Ordering::SeqCst);
    });
    let (d2, _r2) = Deferred::<()>::with_canceller(move |_| {
        k2.fetch_add(1, Ordering::SeqCst);
    });
    let d = ensure_deferred(async move {
        let _ = d1.await; // swallow the first cancel
        d2.await
    });
    d.cancel();
    assert_eq!(
        (c1.load(Ordering::SeqCst), c2.load(Ordering::SeqCst)),
        (1, 0)
    );
    tokio::task::yield_now().await; // the future resumes and awaits d2
    assert!(!d.is_called());
    d.cancel();
    assert_eq!(
        (c1.load(Ordering::SeqCst), c2.load(Ordering::SeqCst)),
        (1, 1)
    );
    assert!(d.await.unwrap_err().is::<CancelledError>());
}

// Cascading through nested ensure_deferred (Twisted's stacked variants).
#[tokio::test]
async fn cancellation_cascades_through_nested_futures() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let (leaf, _r) = Deferred::<u8>::with_canceller(move |_| {
        h.fetch_add(1, Ordering::SeqCst);
    });
    let middle = ensure_deferred(async move { Ok::<_, Failure>(leaf.await? + 1) });
    let top = ensure_deferred(async move { Ok::<_, Failure>(middle.await? + 1) });
    top.cancel();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(top.await.unwrap_err().is::<CancelledError>());
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_future_awaiting_something_else_drops_it() {
    struct DropFlag(Arc<AtomicUsize>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let flag = DropFlag(dropped.clone());
    let d = ensure_deferred(async move {
        let _flag = flag;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok::<_, Failure>(1)
    });
    d.cancel();
    assert!(failure_result_of(&d).is::<CancelledError>());
    tokio::task::yield_now().await;
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the future was dropped");
}

#[tokio::test]
async fn ensure_deferred_result_chains_like_any_deferred() {
    let (page, r) = Deferred::<String>::new();
    let d = ensure_deferred(async move { page.await }).add_callback(|s| Ok(s.to_uppercase()));
    r.callback("body".into()).unwrap();
    assert_eq!(d.await.unwrap(), "BODY");
}

// Twisted: inlinecb testStackUsage (5000 awaits of already-fired Deferreds).
#[test]
fn many_awaits_of_fired_deferreds_use_no_stack() {
    let d = ensure_deferred(async {
        let mut total = 0u64;
        for i in 0..5000 {
            total += succeed(i).await?;
        }
        Ok::<_, Failure>(total)
    });
    assert_eq!(success_result_of(&d), (0..5000).sum::<u64>());
}

// The abort that drops the future may run on a worker before `cancel()`
// applies the default CancelledError: the task's Resolver is then gone
// first, which must not turn the outcome into a ResolverDroppedError.
#[test]
fn cancel_racing_the_abort_on_a_worker_still_fails_with_cancelled_error() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for _ in 0..2000 {
        let d = {
            let _entered = rt.enter();
            ensure_deferred(async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<_, Failure>(1)
            })
        };
        d.cancel();
        let failure = d.try_take().unwrap().unwrap_err();
        assert!(failure.is::<CancelledError>(), "{failure:?}");
    }
}

// The Deferred the future awaited has fired but the future has not run
// since (its wake-up is queued): a cancel then must not be lost on that
// fired Deferred; it reaches what the future awaits next, or fails it.
#[tokio::test(start_paused = true)]
async fn a_cancel_between_the_wake_up_and_the_poll_is_not_lost() {
    let (first, resolver) = Deferred::<u32>::new();
    let d = ensure_deferred(async move {
        let n = first.await?;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok::<_, Failure>(n)
    });
    resolver.callback(1).unwrap(); // wakes the task; it has not run yet
    d.cancel();
    assert!(d.await.unwrap_err().is::<CancelledError>());

    let (first, resolver) = Deferred::<u32>::new();
    let (second, _second_resolver) = Deferred::<u32>::new();
    let d = ensure_deferred(async move {
        let n = first.await?;
        match second.await {
            Err(f) if f.is::<CancelledError>() => Ok::<_, Failure>(n + 100),
            other => other,
        }
    });
    resolver.callback(1).unwrap();
    d.cancel(); // reaches `second` once the future awaits it
    assert_eq!(d.await.unwrap(), 101);
}
