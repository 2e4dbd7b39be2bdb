//! The bridge from futures to Deferreds: [`ensure_deferred`] and
//! [`Deferred::from_future`] (Twisted's `ensureDeferred` /
//! `Deferred.fromCoroutine`).
//!
//! ```
//! use tokio_deferred::{ensure_deferred, succeed, Failure};
//!
//! async fn double(n: u32) -> Result<u32, Failure> {
//!     let x = succeed(n).await?; // a Deferred is a future
//!     Ok(x * 2)
//! }
//!
//! // A future that never suspends gives an already-fired Deferred, no runtime needed.
//! let d = ensure_deferred(double(21));
//! assert_eq!(d.try_take().unwrap().unwrap(), 42);
//! ```
//!
//! A future that waits goes on as a task of the runtime:
//!
//! ```
//! use std::time::Duration;
//! use tokio_deferred::{defer_later, ensure_deferred, Failure};
//!
//! #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let d = ensure_deferred(async {
//!         let page = defer_later(Duration::from_secs(1), || Ok("<html/>")).await?;
//!         Ok::<_, Failure>(page.len())
//!     });
//!     assert!(!d.is_called()); // suspended on the timer
//!     assert_eq!(d.await.unwrap(), 7);
//! }
//! ```
//!
//! The future is polled at once, inline, until it first suspends (as
//! Twisted runs a coroutine synchronously up to its first real wait); then it
//! goes on as a task on the current Tokio runtime.
//!
//! # Cancellation
//!
//! Cancelling the Deferred is cooperative, like cancelling a Twisted
//! coroutine: if the future is awaiting a Deferred, that Deferred is
//! cancelled, its `.await` returns the `CancelledError`, and the future
//! decides what happens (it may catch it and return a value). If the future
//! is awaiting something else, it is dropped and the Deferred fails with
//! [`CancelledError`](crate::CancelledError).
//!
//! "The Deferred it is awaiting" means the Deferreds that returned
//! `Poll::Pending` during the future's most recent poll; each later
//! `cancel()` goes to the ones awaited then (Twisted's
//! `test_inlineCallbacksCancelCaptured`). The future resumes on the
//! runtime, not inside `cancel()` as in Twisted, so a `cancel()` may come
//! when those Deferreds have all fired but the future has not run since
//! (their result, or an earlier cancel, is on its way to it). Such a cancel
//! is not lost: it goes to the Deferreds the future awaits when it next
//! suspends (as it would in Twisted, where the future would already be
//! waiting on them), or, if it then awaits no Deferred, the future is
//! dropped and the Deferred fails with `CancelledError`.

pub(crate) mod inline_callbacks;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};

use crate::deferred::resolver::OwnedResolver;
use crate::deferred::runner::{Core, cancel_core};
use crate::deferred::state::{Canceller, CooperativeCancel};
use crate::error::NoRuntimeError;
use crate::loom::Mutex;
use crate::{Deferred, Failure};

thread_local! {
    /// How many driven futures are being polled on this thread (nested).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Where the innermost driven future's entries start in `NOTED`.
    static MARK: Cell<usize> = const { Cell::new(0) };
    /// The length of `NOTED`, readable without touching it (these three
    /// cells have no destructor, so the poll of a future that awaits no
    /// Deferred costs a few plain loads and stores).
    static LEN: Cell<usize> = const { Cell::new(0) };
    /// The Deferreds awaited during the current polls, innermost last; each
    /// driven future moves its own into its driver when its poll returns.
    static NOTED: RefCell<Vec<Weak<dyn Core>>> = const { RefCell::new(Vec::new()) };
}

/// Shared between a future's task and its Deferred's canceller.
#[derive(Default)]
struct Driver {
    awaiting: Mutex<Awaiting>,
    abort: Mutex<Option<tokio::task::AbortHandle>>,
    cancelled: AtomicBool,
}

/// What the future awaited, as its task and a `cancel()` see it.
#[derive(Default)]
struct Awaiting {
    /// The Deferreds the future was awaiting at its last poll (kept while it
    /// is polled again, until that poll ends).
    targets: Vec<Weak<dyn Core>>,
    /// A `cancel()` found every target already fired: the future has been
    /// woken and not polled yet (or is being polled), so the cancel goes to
    /// what it awaits when that poll ends, or drops it if it awaits no
    /// Deferred (see [`Driver::end_poll`]).
    missed: bool,
}

impl CooperativeCancel for Driver {
    fn cancel(&self) -> bool {
        let targets: Vec<Arc<dyn Core>> = {
            let mut awaiting = self.awaiting.lock();
            let targets: Vec<Arc<dyn Core>> =
                awaiting.targets.iter().filter_map(Weak::upgrade).collect();
            if !targets.is_empty()
                && targets.iter().all(|t| {
                    let s = t.snapshot();
                    s.called && !s.waiting
                })
            {
                awaiting.missed = true;
                return true;
            }
            targets
        };
        if !targets.is_empty() {
            for target in targets {
                cancel_core(target);
            }
            return true;
        }
        self.abort_task();
        false
    }
}

impl Driver {
    /// Drops the future: its task is aborted.
    fn abort_task(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        if let Some(handle) = self.abort.lock().take() {
            handle.abort();
        }
    }
}

/// Called by `Deferred::poll` when it returns `Pending`: records the
/// Deferred as awaited by the future being driven on this thread, if any.
#[inline]
pub(crate) fn note_awaiting(core: &Arc<dyn Core>) {
    if DEPTH.get() != 0 {
        note_awaiting_driven(core);
    }
}

/// `note_awaiting` inside a driven future's poll.
#[inline(never)]
fn note_awaiting_driven(core: &Arc<dyn Core>) {
    let mark = MARK.get();
    let _ = NOTED.try_with(|noted| {
        let mut noted = noted.borrow_mut();
        let ptr = Arc::as_ptr(core);
        let mine = noted.get(mark..).unwrap_or_default();
        if !mine.iter().any(|w| std::ptr::addr_eq(w.as_ptr(), ptr)) {
            noted.push(Arc::downgrade(core));
            LEN.set(noted.len());
        }
    });
}

pin_project_lite::pin_project! {
    /// Polls the user's future with its driver installed, catching panics.
    struct Driven<F> {
        #[pin]
        fut: F,
        // `None` until the future first awaits a Deferred.
        driver: Option<Arc<Driver>>,
    }
}

impl<F: Future> Future for Driven<F> {
    type Output = Result<F::Output, Failure>;

    /// Inlined: the thread-local marks and the poll itself; what concerns
    /// the driver (a future that awaited Deferreds) is out of line.
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mark = LEN.get();
        let outer_mark = MARK.replace(mark);
        DEPTH.set(DEPTH.get() + 1);
        let polled = catch_unwind(AssertUnwindSafe(|| this.fut.poll(cx)));
        DEPTH.set(DEPTH.get() - 1);
        MARK.set(outer_mark);
        let noted = LEN.get() > mark;
        if (noted || this.driver.is_some()) && Driver::end_poll(this.driver, mark, noted) {
            if let Ok(Poll::Pending) = polled {
                return Poll::Ready(Err(Failure::new(crate::error::CancelledError::new())));
            }
        }
        match polled {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(Failure::from_panic(payload))),
        }
    }
}

impl Driver {
    /// A poll ended: the Deferreds it awaited (noted from `mark` on) are now
    /// what a `cancel()` goes to (the driver is made the first time the
    /// future awaits one). A cancel that missed (see [`Awaiting::missed`])
    /// goes to them now; `true` if there are none, when the future must be
    /// dropped and its Deferred fail with `CancelledError`.
    #[inline(never)]
    fn end_poll(driver: &mut Option<Arc<Driver>>, mark: usize, noted: bool) -> bool {
        let targets = if noted {
            let noted = NOTED.with(|n| n.borrow_mut().split_off(mark));
            LEN.set(mark);
            noted
        } else {
            Vec::new()
        };
        if noted && driver.is_none() {
            *driver = Some(Arc::default());
        }
        let Some(driver) = driver.as_ref() else {
            return false;
        };
        let missed: Vec<Arc<dyn Core>> = {
            let mut awaiting = driver.awaiting.lock();
            awaiting.targets = targets;
            if !std::mem::take(&mut awaiting.missed) {
                return false;
            }
            awaiting.targets.iter().filter_map(Weak::upgrade).collect()
        };
        if missed.is_empty() {
            return true;
        }
        for target in missed {
            cancel_core(target);
        }
        false
    }
}

fn flatten<T, E: Into<Failure>>(out: Result<Result<T, E>, Failure>) -> Result<T, Failure> {
    match out {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.into()),
        Err(f) => Err(f),
    }
}

/// Runs a future as a Deferred (Twisted's `ensureDeferred`).
///
/// The future is polled at once until its first suspension, so a future that
/// never suspends yields an already-fired Deferred and needs no runtime. If
/// it suspends, it goes on as a task on the current Tokio runtime; with no
/// runtime, the Deferred fails with [`NoRuntimeError`].
///
/// A panic in the future becomes a [`Failure`]. Cancelling the Deferred is
/// cooperative: see the [module docs](crate::future#cancellation).
///
/// ```
/// use tokio_deferred::{ensure_deferred, Deferred, Failure};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (page, resolver) = Deferred::<String>::new();
/// let d = ensure_deferred(async move {
///     let body = page.await?;
///     Ok::<_, Failure>(body.len())
/// });
/// assert!(!d.is_called()); // suspended on `page`
/// resolver.callback("<html/>".to_owned()).unwrap();
/// assert_eq!(d.await.unwrap(), 7);
/// # }
/// ```
#[track_caller]
pub fn ensure_deferred<F, T, E>(future: F) -> Deferred<T>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Into<Failure> + 'static,
{
    let at = Location::caller();
    let mut driven = Box::pin(Driven {
        fut: future,
        driver: None,
    });
    let mut cx = Context::from_waker(Waker::noop());
    if let Poll::Ready(out) = driven.as_mut().poll(&mut cx) {
        // Finished inline: an already-fired Deferred, like `succeed`/`fail`
        // (nobody can hold it yet, so it needs no canceller), held inline.
        // The debugging check first, so that the result is built where the
        // handle holds it, not on the stack and copied.
        if crate::deferred::debug::is_debugging() {
            return Deferred::ready(flatten(out), at);
        }
        return Deferred::inline(flatten(out), at);
    }
    let driver = driven
        .as_mut()
        .project()
        .driver
        .get_or_insert_with(Default::default)
        .clone();
    let (d, resolver) = Deferred::with_raw_canceller(Canceller::Cooperative(driver.clone()), at);
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            // Dropped unfired when the runtime shuts down under the task.
            let resolver = OwnedResolver::new(resolver, "tokio_deferred::ensure_deferred");
            let task = handle.spawn(async move {
                let out = driven.await;
                let _ = resolver.inner.fire(flatten(out), |r| r, at);
            });
            *driver.abort.lock() = Some(task.abort_handle());
            if driver.cancelled.load(Ordering::SeqCst) {
                task.abort();
            }
        }
        Err(_) => {
            drop(driven);
            let _ = resolver
                .inner
                .fire(Failure::new(NoRuntimeError {}), Err, at);
        }
    }
    d
}

impl<T: Send + 'static> Deferred<T> {
    /// Runs any future as a Deferred of its output (Twisted's
    /// `Deferred.fromFuture`/`fromCoroutine`); see [`ensure_deferred`] for
    /// how it is driven and cancelled.
    ///
    /// ```
    /// use tokio_deferred::Deferred;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let d = Deferred::from_future(async {
    ///     tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    ///     "done"
    /// });
    /// assert_eq!(d.await.unwrap(), "done");
    /// # }
    /// ```
    #[track_caller]
    pub fn from_future<F>(future: F) -> Deferred<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        ensure_deferred(async move { Ok::<T, Failure>(future.await) })
    }
}
