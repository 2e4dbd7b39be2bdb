//! `#[inline_callbacks]` and `return_value!`: ports of Twisted's
//! `twisted/internet/test/test_inlinecb.py`, plus the Rust-specific rules
//! (receivers, borrowed parameters, generics) and the compile errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio_deferred::{
    CancelledError, Deferred, Failure, NoRuntimeError, Resolver, fail, inline_callbacks,
    return_value, succeed,
};

/// Lets the runtime resume the `#[inline_callbacks]` bodies that were woken
/// (they resume on the runtime, not inside `callback()`/`cancel()`).
async fn settle() {
    for _ in 0..32 {
        tokio::task::yield_now().await;
    }
}

/// Twisted's `getThing()`: a Deferred fired with "hi" by the event loop.
fn get_thing() -> Deferred<String> {
    let (d, r) = Deferred::new();
    tokio::spawn(async move {
        r.callback("hi".to_owned()).unwrap();
    });
    d
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ZeroDivisionError(String);

#[derive(Debug, thiserror::Error)]
#[error("terminal")]
struct TerminalError;

// Twisted: test_inlinecb.py BasicTests.testBasics
#[tokio::test]
async fn awaits_values_catches_failures_and_returns_value() {
    #[inline_callbacks]
    async fn gen_basics() -> Result<&'static str, Failure> {
        let x = get_thing().await?;
        assert_eq!(x, "hi");
        match fail::<()>(ZeroDivisionError("OMG".into())).await {
            Err(e) => assert_eq!(e.downcast_ref::<ZeroDivisionError>().unwrap().0, "OMG"),
            Ok(()) => panic!("the failed Deferred gave a value"),
        }
        return_value!("WOOSH");
    }
    assert_eq!(gen_basics().await.unwrap(), "WOOSH");
}

// Twisted: test_inlinecb.py BasicTests.testProducesException
#[tokio::test]
async fn error_after_await_fails_the_deferred() {
    #[inline_callbacks]
    async fn gen_produce_exception() -> Result<(), Failure> {
        get_thing().await?;
        Err(ZeroDivisionError("division by zero".into()))?
    }
    let f = gen_produce_exception().await.unwrap_err();
    assert!(f.is::<ZeroDivisionError>());
}

// Twisted: test_inlinecb.py BasicTests.testNothing
#[test]
fn body_that_never_waits_fires_at_once_without_a_runtime() {
    #[inline_callbacks]
    async fn gen_nothing() -> Result<(), Failure> {
        Ok(())
    }
    let d = gen_nothing();
    assert!(d.is_called());
    d.try_take().unwrap().unwrap();
}

// Twisted: test_inlinecb.py BasicTests.testYieldNonDeferred / testReturnNoValue / testReturnValue
#[test]
fn awaiting_a_ready_future_and_return_value_forms() {
    #[inline_callbacks]
    async fn yield_non_deferred() -> Result<u32, Failure> {
        let five = std::future::ready(5).await;
        Ok(five)
    }
    #[inline_callbacks]
    async fn no_return() -> Result<(), Failure> {
        std::future::ready(5).await;
        return_value!();
    }
    #[inline_callbacks]
    async fn returns() -> Result<u32, Failure> {
        std::future::ready(5).await;
        return_value!(6,);
    }
    assert_eq!(yield_non_deferred().try_take().unwrap().unwrap(), 5);
    no_return().try_take().unwrap().unwrap();
    assert_eq!(returns().try_take().unwrap().unwrap(), 6);
}

// Twisted: test_inlinecb.py BasicTests.testHandledTerminalFailure / testHandledTerminalAsyncFailure
#[tokio::test]
async fn handled_failure_does_not_fail_the_deferred() {
    #[inline_callbacks]
    async fn handled(d: Deferred<()>) -> Result<(), Failure> {
        if let Err(f) = d.await {
            assert!(f.is::<TerminalError>());
        }
        Ok(())
    }
    handled(fail(TerminalError)).try_take().unwrap().unwrap();

    let (d, r) = Deferred::new();
    let result = handled(d);
    assert!(!result.is_called());
    r.errback(TerminalError).unwrap();
    result.await.unwrap();
}

// Twisted: test_inlinecb.py BasicTests.testStackUsage
#[test]
fn five_thousand_awaits_of_fired_deferreds_use_no_stack() {
    #[inline_callbacks]
    async fn gen_stack_usage() -> Result<u32, Failure> {
        for _ in 0..5000 {
            succeed(1).await?;
        }
        return_value!(0);
    }
    assert_eq!(gen_stack_usage().try_take().unwrap().unwrap(), 0);
}

// Twisted: test_inlinecb.py BasicTests.testStackUsage2
#[test]
fn five_thousand_awaits_of_ready_values_use_no_stack() {
    #[inline_callbacks]
    async fn gen_stack_usage2() -> Result<u32, Failure> {
        for _ in 0..5000 {
            std::future::ready(1).await;
        }
        Ok(0)
    }
    assert_eq!(gen_stack_usage2().try_take().unwrap().unwrap(), 0);
}

// Twisted: test_inlinecb.py BasicTests.test_inlineCallbacksNoCircularReference
#[test]
fn machinery_keeps_neither_argument_nor_deferred_alive() {
    #[inline_callbacks]
    async fn func(a: Arc<Vec<u8>>) -> Result<Arc<Vec<u8>>, Failure> {
        let a = std::future::ready(a).await;
        Ok(a)
    }
    let obj = Arc::new(vec![1, 2, 3]);
    let weak: Weak<Vec<u8>> = Arc::downgrade(&obj);
    let d = func(obj);
    let back = d.try_take().unwrap().unwrap();
    assert_eq!(*back, vec![1, 2, 3]);
    drop(back);
    drop(d);
    assert!(weak.upgrade().is_none());
}

// Twisted: inlineCallbacks runs the generator synchronously to its first wait.
#[tokio::test]
async fn body_runs_inline_until_its_first_wait() {
    #[inline_callbacks]
    async fn steps(log: Arc<Mutex<Vec<&'static str>>>, d: Deferred<()>) -> Result<(), Failure> {
        log.lock().unwrap().push("enter");
        succeed(()).await?; // already fired: no suspension
        log.lock().unwrap().push("after fired");
        d.await?;
        log.lock().unwrap().push("after wait");
        Ok(())
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    let (d, r) = Deferred::new();
    let result = steps(log.clone(), d);
    assert_eq!(*log.lock().unwrap(), ["enter", "after fired"]);
    r.callback(()).unwrap();
    result.await.unwrap();
    assert_eq!(*log.lock().unwrap(), ["enter", "after fired", "after wait"]);
}

#[test]
fn suspending_without_a_runtime_fails_with_no_runtime_error() {
    #[inline_callbacks]
    async fn waits(d: Deferred<()>) -> Result<(), Failure> {
        d.await
    }
    let (d, _r) = Deferred::new();
    let f = waits(d).try_take().unwrap().unwrap_err();
    assert!(f.is::<NoRuntimeError>());
}

#[test]
fn panic_in_the_body_becomes_a_failure() {
    #[inline_callbacks]
    async fn panics() -> Result<(), Failure> {
        panic!("boom")
    }
    let f = panics().try_take().unwrap().unwrap_err();
    assert!(f.is_panic());
}

#[tokio::test]
async fn parameters_are_moved_in_and_dropped_when_the_body_ends() {
    #[inline_callbacks]
    async fn holds(
        _named: Arc<()>,
        _: Arc<()>,
        (a, mut b): (u32, u32),
        d: Deferred<()>,
    ) -> Result<u32, Failure> {
        d.await?;
        b += 1;
        Ok(a + b)
    }
    let named = Arc::new(());
    let wild = Arc::new(());
    let (d, r) = Deferred::new();
    let result = holds(named.clone(), wild.clone(), (1, 2), d);
    // Like an async fn, unused parameters live as long as the body.
    assert_eq!(Arc::strong_count(&named), 2);
    assert_eq!(Arc::strong_count(&wild), 2);
    r.callback(()).unwrap();
    assert_eq!(result.await.unwrap(), 4);
    assert_eq!(Arc::strong_count(&named), 1);
    assert_eq!(Arc::strong_count(&wild), 1);
}

/// A cheap handle, the usual shape of a type with `&self` inline_callbacks.
#[derive(Clone)]
struct Service {
    name: Arc<str>,
    calls: Arc<AtomicUsize>,
}

impl Service {
    /// Kept doc comment.
    #[inline_callbacks]
    async fn greet(&self, page: Deferred<String>) -> Result<String, Failure> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let body = page.await?;
        let me = self;
        Ok(format!(
            "{}: {body} ({})",
            me.name,
            self.calls.load(Ordering::SeqCst)
        ))
    }

    #[inline_callbacks]
    async fn shared(self: Arc<Self>) -> Result<usize, Failure> {
        get_thing().await?;
        Ok(Arc::strong_count(&self))
    }

    #[inline_callbacks]
    async fn by_value(mut self, suffix: String) -> Result<String, Failure> {
        self.name = format!("{}{suffix}", self.name).into();
        Ok(self.name.to_string())
    }

    #[inline_callbacks]
    async fn generic<T, U>(&self, value: T, extra: U) -> Result<(T, String), Failure>
    where
        T: Send + 'static,
        U: std::fmt::Display + Send + 'static,
    {
        let value = succeed(value).await?;
        Ok((value, format!("{}{extra}", self.name)))
    }
}

trait Fetcher {
    fn fetch(&self, n: u32) -> Deferred<u32>;
}

impl Fetcher for Service {
    #[inline_callbacks]
    async fn fetch(&self, n: u32) -> Result<u32, Failure> {
        let n = succeed(n).await?;
        Ok(n + self.name.len() as u32)
    }
}

#[tokio::test]
async fn works_on_ref_self_arc_self_self_generics_and_trait_impls() {
    let svc = Service {
        name: "svc".into(),
        calls: Arc::new(AtomicUsize::new(0)),
    };
    let (page, r) = Deferred::new();
    let d = svc.greet(page);
    assert_eq!(svc.calls.load(Ordering::SeqCst), 1); // shared through Arc
    r.callback("hello".to_owned()).unwrap();
    assert_eq!(d.await.unwrap(), "svc: hello (1)");

    let shared = Arc::new(svc.clone());
    let d = shared.clone().shared();
    assert_eq!(d.await.unwrap(), 2);

    assert_eq!(svc.clone().by_value("!".into()).await.unwrap(), "svc!");
    assert_eq!(&*svc.name, "svc");

    let (v, s) = svc.generic(vec![1u8], 7).await.unwrap();
    assert_eq!((v, s.as_str()), (vec![1u8], "svc7"));

    let fetcher: &dyn Fetcher = &svc;
    assert_eq!(fetcher.fetch(1).await.unwrap(), 4);
}

#[tokio::test]
async fn return_types_io_result_and_alias() {
    type Answer = Result<u32, Failure>;
    #[inline_callbacks]
    async fn alias() -> Answer {
        Ok(succeed(41).await? + 1)
    }
    #[inline_callbacks]
    async fn io() -> std::io::Result<u32> {
        Err(std::io::Error::other("disk on fire"))
    }
    assert_eq!(alias().await.unwrap(), 42);
    let f = io().await.unwrap_err();
    assert_eq!(
        f.downcast_ref::<std::io::Error>().unwrap().to_string(),
        "disk on fire"
    );
}

#[tokio::test]
async fn ensure_deferred_is_the_function_form_for_closures() {
    let d = succeed(20).add_callback(|n: u32| {
        tokio_deferred::ensure_deferred(async move {
            let m = get_thing().await?;
            Ok::<_, Failure>(n + m.len() as u32)
        })
    });
    assert_eq!(d.await.unwrap(), 22);
}

// Twisted: test_inlinecb.py StackedInlineCallbacksTests.test_nonCalledDeferredSingleYield
#[tokio::test]
async fn stacked_functions_resume_in_order() {
    type Log = Arc<Mutex<Vec<(&'static str, u32)>>>;
    type Pending = Arc<Mutex<Vec<(Resolver<u32>, u32)>>>;

    #[inline_callbacks]
    async fn f1(log: Log, pending: Pending, x: u32) -> Result<u32, Failure> {
        log.lock().unwrap().push(("f1 enter", x));
        let (d, r) = Deferred::new();
        pending.lock().unwrap().push((r, x));
        let x = d.await? + 1;
        log.lock().unwrap().push(("f1 exit", x));
        return_value!(x);
    }
    #[inline_callbacks]
    async fn f2(log: Log, pending: Pending, x: u32) -> Result<u32, Failure> {
        log.lock().unwrap().push(("f2 enter", x));
        let x = f1(log.clone(), pending, x).await? + 2;
        log.lock().unwrap().push(("f2 exit", x));
        return_value!(x);
    }
    #[inline_callbacks]
    async fn f3(log: Log, pending: Pending, x: u32) -> Result<u32, Failure> {
        log.lock().unwrap().push(("f3 enter", x));
        let x = f2(log.clone(), pending, x).await? + 4;
        log.lock().unwrap().push(("f3 exit", x));
        return_value!(x);
    }

    let log = Log::default();
    let pending = Pending::default();
    let res = f3(log.clone(), pending.clone(), 1);
    for (r, x) in pending.lock().unwrap().drain(..) {
        r.callback(x).unwrap();
    }
    settle().await;
    assert_eq!(res.try_take().unwrap().unwrap(), 8);
    assert_eq!(
        *log.lock().unwrap(),
        [
            ("f3 enter", 1),
            ("f2 enter", 1),
            ("f1 enter", 1),
            ("f1 exit", 2),
            ("f2 exit", 4),
            ("f3 exit", 8),
        ]
    );
}

// ---- Cancellation: test_inlinecb.py CancellationTests ----

#[derive(Debug, thiserror::Error)]
#[error("untranslated")]
struct UntranslatedError;

#[derive(Debug, thiserror::Error)]
#[error("translated")]
struct TranslatedError;

#[derive(Debug, thiserror::Error)]
#[error("don't fail: {0}")]
struct DontFail(i64);

type ChildFn = Box<dyn FnOnce() -> Deferred<i64> + Send>;

/// How `G` reaches the child Deferred `C` (Twisted's five variants).
#[derive(Debug, Clone, Copy)]
enum Stacking {
    /// `G` awaits `C` itself.
    NotStacked,
    /// `G` awaits an `#[inline_callbacks]` function that awaits `C`.
    InlineCb,
    /// Same, after `G` first awaited (and got) another Deferred.
    InlineCbOnSecondDeferred,
    /// `G` awaits a plain `async fn` that awaits `C` (Twisted: a coroutine).
    AsyncFn,
    /// Same, after `G` first awaited (and got) another Deferred.
    AsyncFnOnSecondDeferred,
}

const ALL: [Stacking; 5] = [
    Stacking::NotStacked,
    Stacking::InlineCb,
    Stacking::InlineCbOnSecondDeferred,
    Stacking::AsyncFn,
    Stacking::AsyncFnOnSecondDeferred,
];

#[inline_callbacks]
async fn stacked_inline_cb(get_child: ChildFn) -> Result<i64, Failure> {
    let x = get_child().await?;
    return_value!(x);
}

async fn stacked_async_fn(get_child: ChildFn) -> Result<i64, Failure> {
    get_child().await
}

/// Twisted's `sampleInlineCB`: `G`.
#[inline_callbacks]
async fn sample_inline_cb(
    get_child: ChildFn,
    stacking: Stacking,
    first: Option<Deferred<u32>>,
) -> Result<i64, Failure> {
    if let Some(first) = first {
        first.await?;
    }
    let result = match stacking {
        Stacking::NotStacked => get_child().await,
        Stacking::InlineCb | Stacking::InlineCbOnSecondDeferred => {
            stacked_inline_cb(get_child).await
        }
        Stacking::AsyncFn | Stacking::AsyncFnOnSecondDeferred => stacked_async_fn(get_child).await,
    };
    let x = match result {
        Ok(x) => x,
        Err(f) if f.is::<UntranslatedError>() => return Err(TranslatedError.into()),
        Err(f) => match f.downcast_ref::<DontFail>() {
            Some(DontFail(actual)) => actual - 2,
            None => return Err(f),
        },
    };
    return_value!(x + 1);
}

/// Calls `G` and, for the "on second Deferred" variants, fires its first
/// Deferred and lets it move on to await the child.
async fn start_g(get_child: ChildFn, stacking: Stacking) -> Deferred<i64> {
    let second = matches!(
        stacking,
        Stacking::InlineCbOnSecondDeferred | Stacking::AsyncFnOnSecondDeferred
    );
    if !second {
        return sample_inline_cb(get_child, stacking, None);
    }
    let (first, r) = Deferred::new();
    let d = sample_inline_cb(get_child, stacking, Some(first));
    r.callback(1).unwrap();
    settle().await;
    d
}

/// Twisted's `getDeferred`: an unfired child whose resolver is kept.
fn outstanding_child(keep: &Arc<Mutex<Vec<Resolver<i64>>>>) -> ChildFn {
    let keep = keep.clone();
    Box::new(move || {
        let (d, r) = Deferred::new();
        keep.lock().unwrap().push(r);
        d
    })
}

// Twisted: test_inlinecb.py CancellationTests.test_CascadeCancellingOnCancel (+Stacked, +StackedOnSecondDeferred)
#[tokio::test]
async fn cancel_cascades_to_the_awaited_child() {
    for stacking in ALL {
        let keep = Arc::new(Mutex::new(Vec::new()));
        let child_saw = Arc::new(Mutex::new(None));
        let saw = child_saw.clone();
        let inner = outstanding_child(&keep);
        let get_child: ChildFn = Box::new(move || {
            inner().add_errback(move |f: Failure| {
                *saw.lock().unwrap() = Some(f.is::<CancelledError>());
                Err(f)
            })
        });
        let d = start_g(get_child, stacking).await;
        assert!(!d.is_called(), "{stacking:?}");
        d.cancel();
        // The child is cancelled inside cancel(), through every layer.
        assert_eq!(*child_saw.lock().unwrap(), Some(true), "{stacking:?}");
        settle().await;
        assert!(d.try_take().unwrap().is_err(), "{stacking:?}");
    }
}

// Twisted: test_inlinecb.py CancellationTests.test_ErrbackCancelledErrorOnCancel (+Stacked, +StackedOnSecondDeferred)
#[tokio::test]
async fn cancel_fails_with_cancelled_error() {
    for stacking in ALL {
        let keep = Arc::new(Mutex::new(Vec::new()));
        let d = start_g(outstanding_child(&keep), stacking).await;
        d.cancel();
        settle().await;
        let f = d.try_take().unwrap().unwrap_err();
        assert!(f.is::<CancelledError>(), "{stacking:?}: {f}");
    }
}

// Twisted: test_inlinecb.py CancellationTests.test_ErrorToErrorTranslation (+Stacked, +StackedOnSecondDeferred)
#[tokio::test]
async fn body_translates_the_cancel_error_into_another_error() {
    for stacking in ALL {
        let keep = Arc::new(Mutex::new(Vec::new()));
        let keep2 = keep.clone();
        let get_child: ChildFn = Box::new(move || {
            let (d, r) = Deferred::with_canceller(|r: &Resolver<i64>| {
                r.errback(UntranslatedError).unwrap();
            });
            keep2.lock().unwrap().push(r);
            d
        });
        let d = start_g(get_child, stacking).await;
        d.cancel();
        settle().await;
        let f = d.try_take().unwrap().unwrap_err();
        assert!(f.is::<TranslatedError>(), "{stacking:?}: {f}");
    }
}

// Twisted: test_inlinecb.py CancellationTests.test_ErrorToSuccessTranslation (+Stacked, +StackedOnSecondDeferred)
#[tokio::test]
async fn body_catches_the_cancel_error_and_returns_a_value() {
    for stacking in ALL {
        let keep = Arc::new(Mutex::new(Vec::new()));
        let keep2 = keep.clone();
        let get_child: ChildFn = Box::new(move || {
            let (d, r) = Deferred::with_canceller(|r: &Resolver<i64>| {
                r.errback(DontFail(4321)).unwrap();
            });
            keep2.lock().unwrap().push(r);
            d
        });
        let d = start_g(get_child, stacking).await;
        d.cancel();
        settle().await;
        assert_eq!(d.try_take().unwrap().unwrap(), 4320, "{stacking:?}");
        drop(keep);
    }
}

// Twisted: test_inlinecb.py CancellationTests.test_AsynchronousCancellation (+Stacked, +StackedOnSecondDeferred)
#[tokio::test]
async fn child_errback_turns_the_cancel_into_another_wait() {
    for stacking in ALL {
        let keep = Arc::new(Mutex::new(Vec::new()));
        let (more, more_resolver) = Deferred::<i64>::new();
        let more = Arc::new(Mutex::new(Some(more)));
        let inner = outstanding_child(&keep);
        let get_child: ChildFn = Box::new(move || {
            inner().add_errback(move |f: Failure| match f.trap::<CancelledError>() {
                Ok(_) => more.lock().unwrap().take().unwrap(),
                Err(f) => fail(f),
            })
        });
        let d = start_g(get_child, stacking).await;
        d.cancel();
        settle().await;
        assert!(!d.is_called(), "{stacking:?}: no result until `more` fires");
        more_resolver.callback(6543).unwrap();
        settle().await;
        assert_eq!(d.try_take().unwrap().unwrap(), 6544, "{stacking:?}");
    }
}

// Twisted: test_inlinecb.py CancellationTests.test_inlineCallbacksCancelCaptured
#[tokio::test]
async fn body_that_catches_the_cancel_goes_on_and_a_second_cancel_reaches_the_next_wait() {
    let canceller1_calls = Arc::new(AtomicUsize::new(0));
    let canceller2_calls = Arc::new(AtomicUsize::new(0));
    let (c1, c2) = (canceller1_calls.clone(), canceller2_calls.clone());
    let (d1, _r1) = Deferred::<()>::with_canceller(move |_| {
        c1.fetch_add(1, Ordering::SeqCst);
    });
    let (d2, _r2) = Deferred::<()>::with_canceller(move |_| {
        c2.fetch_add(1, Ordering::SeqCst);
    });

    #[inline_callbacks]
    async fn test_func(d1: Deferred<()>, d2: Deferred<()>) -> Result<(), Failure> {
        let _ = d1.await; // catches the cancellation
        d2.await
    }

    let func_d = test_func(d1, d2);
    assert!(!func_d.is_called());
    assert_eq!(canceller1_calls.load(Ordering::SeqCst), 0);
    assert_eq!(canceller2_calls.load(Ordering::SeqCst), 0);

    func_d.cancel();
    assert_eq!(canceller1_calls.load(Ordering::SeqCst), 1);
    assert_eq!(canceller2_calls.load(Ordering::SeqCst), 0);
    settle().await; // the body resumes, catches, and awaits d2
    assert!(!func_d.is_called());

    func_d.cancel();
    settle().await;
    let f = func_d.try_take().unwrap().unwrap_err();
    assert!(f.is::<CancelledError>());
    assert_eq!(canceller1_calls.load(Ordering::SeqCst), 1);
    assert_eq!(canceller2_calls.load(Ordering::SeqCst), 1);
}

// Twisted: test_inlinecb.py CancellationTests (stacking: cancellation cascades to the leaf)
#[tokio::test]
async fn cancel_cascades_through_three_nested_functions() {
    #[inline_callbacks]
    async fn inner(
        leaf: Deferred<u32>,
        log: Arc<Mutex<Vec<&'static str>>>,
    ) -> Result<u32, Failure> {
        let r = leaf.await;
        log.lock().unwrap().push("inner resumed");
        r
    }
    #[inline_callbacks]
    async fn middle(
        leaf: Deferred<u32>,
        log: Arc<Mutex<Vec<&'static str>>>,
    ) -> Result<u32, Failure> {
        let r = inner(leaf, log.clone()).await;
        log.lock().unwrap().push("middle resumed");
        Ok(r? + 1)
    }
    #[inline_callbacks]
    async fn outer(
        leaf: Deferred<u32>,
        log: Arc<Mutex<Vec<&'static str>>>,
    ) -> Result<u32, Failure> {
        let r = middle(leaf, log.clone()).await;
        log.lock().unwrap().push("outer resumed");
        Ok(r? + 1)
    }

    let leaf_cancels = Arc::new(AtomicUsize::new(0));
    let counter = leaf_cancels.clone();
    let (leaf, _r) = Deferred::<u32>::with_canceller(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let log = Arc::new(Mutex::new(Vec::new()));
    let d = outer(leaf, log.clone());
    d.cancel();
    assert_eq!(leaf_cancels.load(Ordering::SeqCst), 1);
    settle().await;
    assert_eq!(
        *log.lock().unwrap(),
        ["inner resumed", "middle resumed", "outer resumed"]
    );
    assert!(d.try_take().unwrap().unwrap_err().is::<CancelledError>());
}

#[allow(dead_code)]
#[path = "../examples/inline_callbacks.rs"]
mod example;

// Runs examples/inline_callbacks.rs (Twisted's thingummy and crawl) so it cannot rot.
#[tokio::test]
async fn example_prints_thingummy_and_crawl_results() {
    assert_eq!(
        example::run().await,
        [
            "thingummy(http://localhost:8080/) -> TWISTED IS GREAT!",
            "thingummy: errback: DESTROY ALL LIFE",
            "thingummy: errback: 404 page not found: http://localhost:8080/missing",
            "crawl: http://localhost:8080/ -> I love Twisted",
            "crawl: http://localhost:8080/about -> <h1>About</h1>",
            "crawl: http://localhost:8080/news -> <h1>News</h1>",
            "crawl: errback: 404 page not found: http://localhost:8080/gone",
        ]
    );
}

#[test]
fn compile_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
