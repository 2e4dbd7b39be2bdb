//! The inline form of a [`Deferred`](crate::Deferred): an already-fired
//! result held in the handle itself, with no shared state and no allocation.
//!
//! `succeed`, `fail`, `maybe_deferred`, `execute` and `ensure_deferred` of a
//! future that finishes on its first poll make one; callbacks added to it
//! (while it is not paused) run at once and give another one. It turns into
//! the shared state (`Inner::new_fired`, then exactly today's machinery)
//! whenever that state is needed to behave as Twisted does:
//!
//! * it is polled, or a callback is added, while paused (the waker and the
//!   queued links must live where `unpause` finds them);
//! * a callback returns a Deferred that has no final result yet (the chain
//!   must wait on it, and be cancellable while waiting);
//! * it is returned, paused, from a callback (the outer chain waits on it);
//! * a [`CancelHandle`](crate::CancelHandle) is made from it: the handle must
//!   reach whatever the chain turns into later, so the state is made then and
//!   kept in the slot (`Slot::Promoted`), and every later operation goes to it.
//!
//! The mapping is exact: a fired result at rest with `paused` pauses is the
//! state `Inner::new_fired(result)` followed by `paused` pauses (a failure is
//! "armed", as after a completed run), and a taken result is that state after
//! a take.

use std::panic::Location;
use std::sync::Arc;

use crate::Failure;
use crate::deferred::debug::{describe, report_unhandled};
use crate::deferred::link::{Res, take_from};
use crate::deferred::runner::Core;
use crate::deferred::state::Inner;
use crate::error::ResultTakenError;
use crate::loom::{Mutex, MutexGuard};

/// What an inline Deferred holds.
pub(crate) enum Slot<T> {
    /// The result at rest (`None` once taken) and the pause count.
    Fired { result: Option<Res<T>>, paused: u32 },
    /// A shared state was made for a [`CancelHandle`](crate::CancelHandle):
    /// everything now goes there.
    Promoted(Arc<dyn Core>),
}

/// An already-fired Deferred held in its handle.
pub(crate) struct Ready<T> {
    /// A mutex because `try_take`, `pause` and `unpause` take `&self` and the
    /// handle is `Sync`; paths with `&mut self` or `self` (`poll`, adding
    /// callbacks, drop) use `get_mut`/`into_inner`, which cost nothing.
    slot: Mutex<Slot<T>>,
    /// Where the Deferred was created (and fired), for the unhandled-error
    /// report and the shared state it may turn into.
    at: &'static Location<'static>,
}

/// A typed "result already taken" failure.
pub(crate) fn taken_err<T>() -> Res<T> {
    Err(Failure::new(ResultTakenError {}))
}

impl<T> Ready<T> {
    #[inline]
    pub(crate) fn new(result: Res<T>, at: &'static Location<'static>) -> Self {
        Ready {
            slot: Mutex::new(Slot::Fired {
                result: Some(result),
                paused: 0,
            }),
            at,
        }
    }

    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock()
    }

    #[inline]
    pub(crate) fn get_mut(&mut self) -> &mut Slot<T> {
        self.slot.get_mut()
    }

    #[inline]
    fn into_slot(self) -> Slot<T> {
        self.slot.into_inner()
    }

    /// Runs `fired` on the inline result and pause count, or `shared` on the
    /// promoted shared state (with the slot's lock released).
    #[inline]
    pub(crate) fn with<R>(
        &self,
        fired: impl FnOnce(&mut Option<Res<T>>, &mut u32) -> R,
        shared: impl FnOnce(&Arc<dyn Core>) -> R,
    ) -> R {
        let mut slot = self.lock();
        match &mut *slot {
            Slot::Fired { result, paused } => fired(result, paused),
            Slot::Promoted(core) => {
                let core = core.clone();
                drop(slot);
                shared(&core)
            }
        }
    }

    /// Reports a failure nobody consumed, as `release_consumer` does for the
    /// shared state (even a paused one: nobody can unpause it any more).
    /// Returns the promoted shared state, if any, for the caller to release.
    #[inline]
    pub(crate) fn release(&mut self) -> Option<Arc<dyn Core>> {
        let at = self.at;
        match self.get_mut() {
            Slot::Fired { result, .. } => {
                if let Some(Err(_)) = result {
                    if let Some(Err(failure)) = result.take() {
                        report(&failure, at);
                    }
                }
                None
            }
            Slot::Promoted(core) => Some(core.clone()),
        }
    }
}

impl<T: Send + 'static> Ready<T> {
    /// The result for a callback to run on now, or (paused, promoted) the
    /// shared state to go on with.
    #[inline]
    pub(crate) fn into_input(self) -> Result<(Res<T>, &'static Location<'static>), Arc<dyn Core>> {
        let at = self.at;
        match self.into_slot() {
            Slot::Fired { result, paused: 0 } => Ok((result.unwrap_or_else(taken_err), at)),
            slot => Err(materialize(slot, at)),
        }
    }

    /// The shared state this Deferred stands for.
    pub(crate) fn into_core(self) -> Arc<dyn Core> {
        let at = self.at;
        materialize(self.into_slot(), at)
    }

    /// Makes (once) and returns the shared state, keeping it in the slot.
    pub(crate) fn promote(&self) -> Arc<dyn Core> {
        let mut slot = self.lock();
        if let Slot::Promoted(core) = &*slot {
            return core.clone();
        }
        let fired = std::mem::replace(
            &mut *slot,
            Slot::Fired {
                result: None,
                paused: 0,
            },
        );
        let core = materialize(fired, self.at);
        *slot = Slot::Promoted(core.clone());
        core
    }
}

/// The shared state equivalent to `slot` (see the module docs).
fn materialize<T: Send + 'static>(slot: Slot<T>, at: &'static Location<'static>) -> Arc<dyn Core> {
    let (result, paused) = match slot {
        Slot::Promoted(core) => return core,
        Slot::Fired { result, paused } => (result, paused),
    };
    let core: Arc<dyn Core> = match result {
        Some(r) => Inner::<T>::new_fired_untraced(r, at),
        None => {
            // Fired, then taken: take it from the new state too, so it is at
            // rest as "taken" (not armed, nothing to report).
            let core: Arc<dyn Core> = Inner::<T>::new_fired_untraced(taken_err(), at);
            let _ = core.poll_take(None, &mut |src| drop(take_from::<T>(src)));
            debug_assert!(matches!(
                core.snapshot().result,
                crate::deferred::link::ResultState::Empty
            ));
            core
        }
    };
    for _ in 0..paused {
        core.pause();
    }
    core
}

/// Emits the unhandled-error event of a fired Deferred created at `at`, with
/// exactly what the shared state would say.
pub(crate) fn report(failure: &Failure, at: &'static Location<'static>) {
    // A Deferred created with debugging off records no fire site.
    report_unhandled(failure, at, None, &describe(at, None));
}
