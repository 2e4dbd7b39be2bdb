//! Threads: run blocking code off the runtime ([`defer_to_thread`]), and
//! call into the runtime from a plain thread
//! ([`blocking_call_from_thread`]). Twisted's `twisted.internet.threads`.
//!
//! ```
//! use tokio_deferred::defer_to_thread;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let d = defer_to_thread(|| Ok("12".parse::<u32>()?)) // runs on a blocking thread
//!     .add_callback(|n| Ok(n * 2));                    // runs on the runtime
//! assert_eq!(d.await.unwrap(), 24);
//! # }
//! ```

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use tokio::runtime::Handle;

use crate::deferred::IntoOutcome;
use crate::error::{CalledFromRuntimeError, RuntimeRequiredError, RuntimeShutdownError};
use crate::{Deferred, Failure, Resolver, ensure_deferred, fail, maybe_deferred};

/// Runs `f` on Tokio's blocking thread pool (`spawn_blocking`) and returns
/// a Deferred of its result, on the current runtime (Twisted's
/// `deferToThread`).
///
/// * Its callbacks run **on the runtime**, never on the blocking thread:
///   where Twisted's would run, in the event loop, not in the worker. If
///   callbacks are queued when `f` returns, the Deferred fires in a task on
///   the runtime. If none are (the common `defer_to_thread(f).await`), the
///   worker only stores the result and wakes the awaiting task, one wake
///   as with `spawn_blocking`'s join handle, and a callback added later
///   runs where it is added, as on any fired Deferred.
/// * If the runtime shuts down first: a call whose `f` never ran fails with
///   [`RuntimeShutdownError`]; a call whose `f` finished still gets its
///   result, fired on whichever thread drops the pending work (there is no
///   runtime left to run callbacks on; Twisted would never fire it).
/// * `f` returns `Result<T, Failure>`, as a callback does: `Ok(v)` needs no
///   type annotation, and `?` converts any error (`Ok(std::fs::read(p)?)`).
///   A panic in `f` becomes a [`Failure`] too.
/// * Cancelling the Deferred fails it with
///   [`CancelledError`](crate::CancelledError) at once. The thread cannot be
///   stopped: it runs on, and its result is dropped quietly when it comes
///   (Twisted's semantics).
/// * With no runtime, the Deferred fails at once with
///   [`RuntimeRequiredError`]; see [`defer_to_thread_pool`] to pass one.
///
/// ```
/// use tokio_deferred::{defer_to_thread, Failure};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let d = defer_to_thread(|| -> Result<u8, Failure> { panic!("worker died") });
/// assert!(d.await.unwrap_err().is_panic());
/// # }
/// ```
pub fn defer_to_thread<F, T>(f: F) -> Deferred<T>
where
    F: FnOnce() -> Result<T, Failure> + Send + 'static,
    T: Send + 'static,
{
    match Handle::try_current() {
        Ok(handle) => defer_to_thread_pool(&handle, f),
        Err(_) => fail(RuntimeRequiredError {
            what: "defer_to_thread",
        }),
    }
}

/// [`defer_to_thread`] on the blocking pool of the runtime behind `handle`
/// (Twisted's `deferToThreadPool`); callable from any thread. Its callbacks
/// run on that runtime.
///
/// ```
/// use tokio_deferred::defer_to_thread_pool;
///
/// let rt = tokio::runtime::Builder::new_multi_thread()
///     .worker_threads(1)
///     .max_blocking_threads(2)
///     .build()
///     .unwrap();
/// let d = defer_to_thread_pool(rt.handle(), || Ok(3 + 4));
/// assert_eq!(rt.block_on(d).unwrap(), 7);
/// ```
pub fn defer_to_thread_pool<F, T>(handle: &Handle, f: F) -> Deferred<T>
where
    F: FnOnce() -> Result<T, Failure> + Send + 'static,
    T: Send + 'static,
{
    let (d, resolver) = Deferred::<T>::new();
    // Fails the Deferred if Tokio panics in `spawn_blocking` (it does when
    // the OS refuses a new thread), so that the panic reaches the caller as
    // a failure, not as an unwind out of this function.
    let on_spawn_panic = resolver.clone();
    let delivery = Delivery {
        resolver: Some(resolver),
        runtime: handle.clone(),
        result: None,
    };
    // The result travels through the Resolver; the join handle is not
    // needed (dropping it detaches the blocking task).
    let spawned = catch_unwind(AssertUnwindSafe(|| {
        handle.spawn_blocking(move || {
            let result = match catch_unwind(AssertUnwindSafe(f)) {
                Ok(r) => r,
                Err(payload) => Err(Failure::from_panic(payload)),
            };
            delivery.deliver(result);
        })
    }));
    match spawned {
        Ok(join) => drop(join),
        Err(payload) => {
            let _ = on_spawn_panic.errback(Failure::from_panic(payload));
        }
    }
    d
}

/// Carries a [`defer_to_thread`] result from the blocking thread to the
/// Deferred.
///
/// Dropped before `f` ran (the runtime shut down, and the blocking task
/// was dropped unrun), it fails the Deferred with [`RuntimeShutdownError`].
/// Dropped with `f`'s result (a shutdown dropped, or refused, the task
/// that was to fire the Deferred on the runtime), it fires the Deferred
/// with that result where it is dropped: there is no runtime left to run
/// the callbacks on.
struct Delivery<T: Send + 'static> {
    resolver: Option<Resolver<T>>,
    runtime: Handle,
    /// `f`'s result, while a task on the runtime is to deliver it.
    result: Option<Result<T, Failure>>,
}

impl<T: Send + 'static> Delivery<T> {
    /// On the blocking thread. If the Deferred is idle (nothing queued, not
    /// cancelled or paused, debugging off, its handle alive), the fire only
    /// stores the result and wakes the awaiting task, so it happens here
    /// (one wake, as `spawn_blocking`'s own join handle does). Otherwise it
    /// happens in a task on the runtime, so that the callbacks run there, as
    /// Twisted's run in the reactor.
    fn deliver(mut self, result: Result<T, Failure>) {
        let Some(resolver) = self.resolver.as_ref() else {
            return;
        };
        match resolver.resolve_if_idle(result) {
            Ok(()) => self.resolver = None,
            Err(result) => {
                self.result = Some(result);
                let runtime = self.runtime.clone();
                runtime.spawn(async move { self.finish() });
            }
        }
    }

    /// Fires the Deferred with the result held, or with
    /// [`RuntimeShutdownError`] if `f` never ran. After a cancel, exactly
    /// this one late result is accepted and dropped.
    fn finish(&mut self) {
        if let Some(resolver) = self.resolver.take() {
            let result = self
                .result
                .take()
                .unwrap_or_else(|| Err(Failure::new(RuntimeShutdownError {})));
            let _ = resolver.resolve(result);
        }
    }
}

impl<T: Send + 'static> Drop for Delivery<T> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Whether blocking the current thread is allowed: not a thread that
/// drives a Tokio runtime. Tokio only tells by panicking, so the probe is a
/// `blocking_recv` on a closed channel, which returns at once where blocking
/// is allowed.
fn blocking_allowed() -> bool {
    if Handle::try_current().is_err() {
        return true;
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    drop(tx);
    catch_unwind(AssertUnwindSafe(move || {
        let _ = rx.blocking_recv();
    }))
    .is_ok()
}

/// Runs `f` on the runtime behind `handle` and blocks the calling thread
/// until the Deferred (or result) it returns has fired (Twisted's
/// `blockingCallFromThread`). For plain threads and
/// [`defer_to_thread`] workers that need to reach into the runtime.
///
/// `f` runs in a task on the runtime, so it may create timers, spawn, and
/// return a Deferred that fires later.
///
/// # Errors
///
/// The failure of `f`'s Deferred, or:
/// * [`CalledFromRuntimeError`] if called from a thread that drives a
///   runtime (a worker, or inside `block_on`), where waiting would deadlock
///   (Twisted hangs). The check relies on Tokio's own panic for blocking in
///   a runtime, caught here, so the panic message is still printed by the
///   panic hook, and under `panic = "abort"` it aborts.
/// * [`RuntimeShutdownError`] if the runtime shut down first.
///
/// ```
/// use std::time::Duration;
/// use tokio_deferred::{blocking_call_from_thread, defer_later};
///
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let handle = rt.handle().clone();
/// let worker = std::thread::spawn(move || {
///     blocking_call_from_thread(&handle, || defer_later(Duration::from_millis(1), || Ok("egg")))
/// });
/// assert_eq!(worker.join().unwrap().unwrap(), "egg");
/// ```
pub fn blocking_call_from_thread<F, R>(handle: &Handle, f: F) -> Result<R::Output, Failure>
where
    F: FnOnce() -> R + Send + 'static,
    R: IntoOutcome,
{
    if !blocking_allowed() {
        return Err(Failure::new(CalledFromRuntimeError {}));
    }
    let (tx, rx) = mpsc::sync_channel(1);
    handle.spawn(async move {
        let d = maybe_deferred(f);
        let _ = tx.send(d.await);
    });
    rx.recv()
        .unwrap_or_else(|_| Err(Failure::new(RuntimeShutdownError {})))
}

/// Runs a future on the runtime behind `handle` (as a Deferred, with
/// [`ensure_deferred`]) and blocks the calling thread for its result: the
/// `async` form of [`blocking_call_from_thread`], with the same errors.
///
/// ```
/// use tokio_deferred::{blocking_await_from_thread, Failure};
///
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let handle = rt.handle().clone();
/// let worker = std::thread::spawn(move || {
///     blocking_await_from_thread(&handle, async {
///         tokio::task::yield_now().await;
///         Ok::<_, Failure>(5)
///     })
/// });
/// assert_eq!(worker.join().unwrap().unwrap(), 5);
/// ```
pub fn blocking_await_from_thread<Fut, T, E>(handle: &Handle, future: Fut) -> Result<T, Failure>
where
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Into<Failure> + 'static,
{
    blocking_call_from_thread(handle, move || ensure_deferred(future))
}
