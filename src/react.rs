//! [`react`]: run a Deferred-returning `main` on a one-thread runtime and
//! turn its outcome into the process's exit status (Twisted's `task.react`).
//!
//! ```no_run
//! use std::process::ExitCode;
//! use std::time::Duration;
//! use tokio_deferred::{defer_later, react};
//!
//! fn main() -> ExitCode {
//!     react(|| async {
//!         let greeting = defer_later(Duration::from_millis(10), || Ok("hello")).await?;
//!         println!("{greeting}");
//!         Ok(())
//!     })
//! }
//! ```

use std::future::IntoFuture;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;

use futures::FutureExt;

use crate::Failure;
use crate::deferred::debug::{tracing_is_off, write_stderr};
use crate::error::SystemExit;

/// Runs `main` until the Deferred (or future) it returns completes, then
/// returns the process's exit status (Twisted's `task.react(main)`, which
/// calls `sys.exit`): success is 0; a failure is reported ("main function
/// encountered error", as Twisted logs it) and is 1, except a
/// [`SystemExit`], whose status is returned and which is not reported.
///
/// `react` builds a current-thread Tokio runtime with all its drivers (the
/// reactor's one thread: callbacks fired by different tasks never run at
/// the same time) and a [`LocalSet`](tokio::task::LocalSet), so `main` and
/// its future need not be `Send`: `LocalDeferred`s, `Rc`s and
/// `tokio::task::spawn_local` work. `main` is called inside the runtime.
/// When its result is in, the runtime shuts down, as Twisted's reactor
/// stops: timers still pending and tasks still running are dropped (their
/// Deferreds never fire, and that is not reported).
///
/// Return the status from your own `fn main() -> ExitCode`.
///
/// # Errors
///
/// None: every outcome is a status. A panic in `main` or in its future is a
/// failure (status 1), and so is a runtime that cannot be built.
///
/// # Examples
///
/// ```
/// use std::process::ExitCode;
/// use tokio_deferred::{react, Deferred, Failure};
///
/// // main returns a Deferred...
/// let code = react(|| {
///     let (d, resolver) = Deferred::<u32>::new();
///     tokio::spawn(async move { resolver.callback(42).unwrap() });
///     d.add_callback(|answer| {
///         println!("the answer is {answer}");
///         Ok(())
///     })
/// });
/// assert_eq!(code, ExitCode::SUCCESS);
///
/// // ...or is async; a failure is reported and is status 1.
/// let code = react(|| async { Err::<(), _>(Failure::msg("no luck")) });
/// assert_eq!(code, ExitCode::FAILURE);
/// ```
pub fn react<F, Fut, T>(main: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: IntoFuture<Output = Result<T, Failure>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return exit_status(Err(Failure::new(e))),
    };
    let local = tokio::task::LocalSet::new();
    let outcome = local.block_on(&runtime, async move {
        match catch_unwind(AssertUnwindSafe(|| main().into_future())) {
            Ok(future) => match AssertUnwindSafe(future).catch_unwind().await {
                Ok(outcome) => outcome.map(drop),
                Err(payload) => Err(Failure::from_panic(payload)),
            },
            Err(payload) => Err(Failure::from_panic(payload)),
        }
    });
    // The reactor stops: what is still pending goes without running.
    drop(local);
    drop(runtime);
    exit_status(outcome)
}

/// The status for `main`'s outcome, reporting a failure.
fn exit_status(outcome: Result<(), Failure>) -> ExitCode {
    let Err(failure) = outcome else {
        return ExitCode::SUCCESS;
    };
    if let Some(exit) = failure.downcast_ref::<SystemExit>() {
        return ExitCode::from(exit.code);
    }
    if tracing_is_off() {
        write_stderr(&format!("main function encountered error: {failure}"));
    } else {
        tracing::error!(
            target: "tokio_deferred::react",
            failure = %failure,
            error_type = failure.type_name(),
            "main function encountered error: {failure}"
        );
    }
    ExitCode::FAILURE
}
