//! How a [`LocalDeferred`](crate::LocalDeferred)'s chain runs: the run
//! loop over the arena's entries, firing, implicit chaining (a callback
//! returning a `LocalDeferred`) and cancellation.
//!
//! The run loop is iterative, like Twisted's `_runCallbacks`: a chain that
//! waits on another is resumed by a loop, not a recursive call, so nesting
//! of any depth runs in constant stack. User code runs only inside
//! `run_entry` (under `catch_unwind`) and in drops, never while a reference
//! into the arena is held.

// LocalDeferred's arena: the run loop walks raw pointers to entries, each
// use argued in a `SAFETY` comment.
#![allow(unsafe_code)]

use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::{Rc, Weak};

use super::arena::Chunk;
use super::header::{Header, Res, Step, Word, move_result, slot};
use super::state::{Inner, Typed};
use crate::Failure;
use crate::error::{CancelledError, ChainedToSelfError};

/// An inner chain's promise to hand its result to the chain waiting on it.
pub(super) struct Continuation {
    pub(super) outer: Rc<Inner>,
    /// The entry of `outer`'s arena whose output the result is.
    entry: *mut Word,
    /// `move_result::<U>` for the `U` both slots hold.
    mover: unsafe fn(*mut Word, *mut Word),
}

/// The canceller, erased: `new_inner::<T>` wraps the user's typed one.
pub(super) type Canceller = Box<dyn FnOnce(&Rc<Inner>)>;

/// Runs the chain from its cursor, then every chain that was waiting on it
/// (in a loop: nesting does not grow the stack).
pub(super) fn run(mut cur: Rc<Inner>) {
    loop {
        if !run_entries(&cur) {
            return;
        }
        match cur.continuation.take() {
            None => {
                cur.finish();
                return;
            }
            Some(Continuation {
                outer,
                entry,
                mover,
            }) => {
                // SAFETY: `mover` is `move_result::<U>` for the `U` both
                // slots hold (made in `chain_into`); `cur` has run to its
                // end, so its `prev` is its last entry; `entry` is the
                // entry of `outer`'s arena (alive: `outer` is held) that
                // returned this chain.
                unsafe { mover(cur.prev.get(), entry) };
                outer.waiting.set(false);
                drop(outer.waiting_on.take());
                // The finished inner state may be freed here, running user
                // `Drop` code: a panic there must not stop the outer chain.
                let done = mem::replace(&mut cur, outer);
                if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(done))) {
                    run(cur);
                    std::panic::resume_unwind(payload);
                }
                if cur.paused.get() > 0 {
                    return;
                }
            }
        }
    }
}

/// Runs the entries from the cursor to the end of the arena; `true` if it
/// got there (the chain is done), `false` if it stopped (already running
/// further up the stack, unfired, paused, or now waiting).
fn run_entries(inner: &Rc<Inner>) -> bool {
    if inner.running.get() || !inner.fired.get() || inner.paused.get() > 0 || inner.waiting.get() {
        return false;
    }
    inner.running.set(true);
    inner.armed.set(false);
    // Stores the cursor back and ends the run when dropped, also if a panic
    // unwinds out of the loop (none from user code should: `run_entry`
    // catches them), so the chain is never left "running" for good.
    let mut cur = RunCursor {
        inner,
        chunk: inner.chunk.get(),
        at: inner.at.get(),
        prev: inner.prev.get(),
    };
    // SAFETY: the cursor is an entry boundary in a chunk of this arena (or
    // its end), and `prev` the entry before it. Chunks never move; a link
    // that pushes to this arena appends behind the cursor, which re-reads
    // each chunk's `used` and `next`. The arena lives as long as `inner`,
    // which the caller holds. `prev` moves to the entry before it runs, so
    // if the run unwinds, the next one reads that entry's slot, of the
    // type it expects.
    unsafe {
        loop {
            let c = cur.chunk.cast::<Chunk>();
            if cur.at >= (*c).used {
                let next = (*c).next;
                if next.is_null() {
                    return true;
                }
                (cur.chunk, cur.at) = (next, 1);
                continue;
            }
            let e = cur.chunk.add(cur.at as usize);
            let h = &*e.cast::<Header>();
            let (run, words) = (h.run, h.words);
            let prev = cur.prev;
            let input = prev.cast::<u8>().add((*prev.cast::<Header>()).out as usize);
            cur.at += words;
            cur.prev = e;
            inner.pending.set(inner.pending.get() - 1);
            if let Step::Wait = run(e, input, inner) {
                return false;
            }
        }
    }
}

/// `run_entries`' cursor, stored back into the state when the run ends.
struct RunCursor<'a> {
    inner: &'a Inner,
    chunk: *mut Word,
    at: u32,
    prev: *mut Word,
}

impl Drop for RunCursor<'_> {
    #[inline]
    fn drop(&mut self) {
        self.inner.chunk.set(self.chunk);
        self.inner.at.set(self.at);
        self.inner.prev.set(self.prev);
        self.inner.running.set(false);
    }
}

impl<T: 'static> Typed<T> {
    /// Returned by `entry`, a link of `outer`'s chain: the result now if
    /// this chain is done, else `Err(())` after arranging for it to be
    /// moved into `entry`'s slot later. Runs no user code before the wait
    /// is linked up (a waker registered on this handle is left in place:
    /// dropping it could run code).
    pub(super) fn chain_into(self, outer: &Rc<Inner>, entry: *mut Word) -> Result<Res<T>, ()> {
        if Rc::ptr_eq(&self.inner, outer) {
            // `self` is the chain it was returned into: its consumer is the
            // running link's chain, so it is forgotten, not released.
            let inner = self.into_inner();
            // No handle is left: the failure is reported when the run ends.
            inner.consumer.set(false);
            return Ok(Err(Failure::new(ChainedToSelfError {})));
        }
        if let Some(r) = self.try_take() {
            return Ok(r);
        }
        let inner = self.into_inner();
        // The handle moves into the chain: no consumer to report to.
        inner.consumer.set(false);
        outer.waiting.set(true);
        outer.waiting_on.set(Some(Rc::downgrade(&inner)));
        // `entry`'s slot and this chain's last slot both hold
        // `Option<Res<T>>` (`entry` returned a `LocalDeferred<T>`).
        inner.continuation.set(Some(Continuation {
            outer: outer.clone(),
            entry,
            mover: move_result::<T>,
        }));
        Err(())
    }
}

/// Fires an unfired chain: stores `r` in the source's slot and runs.
///
/// # Safety
///
/// `inner`'s first entry is a `Source<T>`.
pub(super) unsafe fn fire<T>(inner: &Rc<Inner>, r: Res<T>) {
    // SAFETY: the first entry of the arena (word 1 of the first chunk) is
    // a `Source<T>`, as the caller promises.
    unsafe {
        let source = inner.head.get().add(1);
        *slot::<T>(source) = Some(r);
    }
    inner.fired.set(true);
    // The canceller can no longer run; dropped after the state is settled.
    let canceller = inner.canceller.take();
    run(inner.clone());
    drop(canceller);
}

/// Fires an unfired chain whose first entry is a `Source<T>` with a
/// failure (cancellation, every resolver dropped).
///
/// # Safety
///
/// `inner`'s first entry is a `Source<T>`.
pub(super) unsafe fn fire_failure_as<T>(inner: &Rc<Inner>, failure: Failure) {
    // SAFETY: as the caller promises.
    unsafe { fire::<T>(inner, Err(failure)) }
}

/// Cancels a chain, exactly as Twisted's `cancel()`: an unfired one runs
/// its canceller (then fails with `CancelledError` if still unfired); a
/// fired one waiting on another Deferred passes the cancellation on (in a
/// loop, however deep the nesting); anything else is left alone.
pub(crate) fn cancel(inner: &Rc<Inner>) {
    let mut cur = inner.clone();
    // Brent's cycle detection: chains waiting on each other (a callback
    // returned a chain that waits, in the end, on the first) would make
    // the walk endless; it stops instead, in time linear in the walk.
    let (mut mark, mut power, mut steps) = (Rc::as_ptr(&cur), 1usize, 0usize);
    loop {
        if !cur.fired.get() {
            cancel_unfired(&cur);
            return;
        }
        if !cur.waiting.get() {
            return;
        }
        let on = cur.waiting_on.take();
        let next = on.as_ref().and_then(Weak::upgrade);
        cur.waiting_on.set(on);
        match next {
            Some(next) => cur = next,
            None => return,
        }
        if Rc::as_ptr(&cur) == mark {
            return;
        }
        steps += 1;
        if steps == power {
            (mark, power, steps) = (Rc::as_ptr(&cur), power * 2, 0);
        }
    }
}

/// `cancel` of an unfired chain.
fn cancel_unfired(inner: &Rc<Inner>) {
    if inner.cancelling.get() {
        // `cancel()` from inside the canceller: the outer call decides.
        return;
    }
    match inner.canceller.take() {
        Some(canceller) => {
            inner.cancelling.set(true);
            // One more resolver while the canceller runs, so that one that
            // drops the others (a timer's, say) does not fail the chain
            // with `ResolverDroppedError` before `CancelledError` applies.
            inner.resolvers.set(inner.resolvers.get() + 1);
            let outcome = catch_unwind(AssertUnwindSafe(|| canceller(inner)));
            inner.cancelling.set(false);
            if let Err(payload) = outcome {
                if !inner.fired.get() {
                    fire_failure(inner, Failure::from_panic(payload));
                }
            }
            if !inner.fired.get() {
                fire_failure(inner, Failure::new(CancelledError::new()));
            }
            inner.resolvers.set(inner.resolvers.get() - 1);
        }
        None => {
            inner.suppress.set(true);
            fire_failure(inner, Failure::new(CancelledError::new()));
        }
    }
}

/// Fires an unfired chain with a failure, through its source's type.
pub(super) fn fire_failure(inner: &Rc<Inner>, failure: Failure) {
    // SAFETY: `fail_source` was instantiated by `new_inner` with the type
    // of this arena's `Source`.
    unsafe { (inner.fail_source)(inner, failure) }
}
