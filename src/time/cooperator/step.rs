//! What a cooperative task's iterator yields: [`CooperativeStep`] and the
//! items that convert into one ([`IntoCooperativeStep`]).

use std::fmt;

use crate::{Deferred, Failure};

/// One step of a cooperative task (what Twisted's iterator yields).
///
/// Iterators rarely yield it directly: any item implementing
/// [`IntoCooperativeStep`] converts into one.
#[non_exhaustive]
pub enum CooperativeStep {
    /// The step is done; the task gets another one in its turn (Twisted: a
    /// yielded value that is not a Deferred).
    Continue,
    /// The task pauses until this Deferred fires: it resumes on success,
    /// and fails with the failure otherwise (Twisted: a yielded Deferred).
    Wait(Deferred<()>),
    /// The task fails with this failure (Twisted: the iterator raised).
    Fail(Failure),
}

impl fmt::Debug for CooperativeStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CooperativeStep::Continue => f.write_str("Continue"),
            CooperativeStep::Wait(d) => f.debug_tuple("Wait").field(d).finish(),
            CooperativeStep::Fail(failure) => f.debug_tuple("Fail").field(failure).finish(),
        }
    }
}

/// What a cooperative task's iterator may yield.
///
/// * `()`: a unit of work was done (`(0..n).map(|i| work(i))`).
/// * [`Deferred<T>`]: pause the task until it fires (its value is dropped);
///   if it fails, the task fails with its failure.
/// * `Result<S, E>` of any of these, with `E: Into<Failure>`: `Err` fails
///   the task, so `?`-style iterators work.
/// * [`CooperativeStep`] itself.
///
/// ```
/// use tokio_deferred::{CooperativeStep, IntoCooperativeStep, succeed, Failure};
///
/// assert!(matches!(().into_step(), CooperativeStep::Continue));
/// assert!(matches!(succeed(1).into_step(), CooperativeStep::Wait(_)));
/// let err: Result<(), Failure> = Err(Failure::msg("no"));
/// assert!(matches!(err.into_step(), CooperativeStep::Fail(_)));
/// ```
pub trait IntoCooperativeStep {
    /// Converts the item into the step it stands for.
    fn into_step(self) -> CooperativeStep;
}

impl IntoCooperativeStep for CooperativeStep {
    fn into_step(self) -> CooperativeStep {
        self
    }
}

impl IntoCooperativeStep for () {
    fn into_step(self) -> CooperativeStep {
        CooperativeStep::Continue
    }
}

impl<T: Send + 'static> IntoCooperativeStep for Deferred<T> {
    fn into_step(self) -> CooperativeStep {
        CooperativeStep::Wait(self.add_callback(|_| Ok(())))
    }
}

impl<S: IntoCooperativeStep, E: Into<Failure>> IntoCooperativeStep for Result<S, E> {
    fn into_step(self) -> CooperativeStep {
        match self {
            Ok(step) => step.into_step(),
            Err(e) => CooperativeStep::Fail(e.into()),
        }
    }
}
