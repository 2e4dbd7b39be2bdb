//! The state of a [`LocalDeferred`](crate::LocalDeferred): its fields (all
//! `Cell`s), the typed handles that carry the invariants the erased arena
//! relies on, and how a state is made.
//!
//! # Why the erased arena is sound
//!
//! * a [`Typed<T>`] exists only while the last entry's slot holds an
//!   `Option<Result<T, Failure>>`; pushing consumes it and returns the
//!   `Typed<U>` of the new entry, and it is not `Clone`;
//! * a [`SourceOf<T>`] exists only for an arena whose first entry is a
//!   `Source<T>`;
//! * a `Continuation`'s mover was instantiated with the type of both
//!   slots it moves between (checked where it is made, in `runner.rs`);
//! * an entry's run function was instantiated with its own types, and its
//!   input slot is the previous entry's, whose type the `Typed` it was
//!   pushed with vouched for.
//!
//! No `RefCell` borrow or reference into the arena is held while user code
//! runs: the state is `Cell`s, the arena is reached through raw pointers,
//! and the run loop holds an `Rc` of the state it runs, so user code cannot
//! free it. `scripts/memcheck.sh` runs `tests/local.rs` and randomized
//! operation plans (`tests/local_plans.rs`) under valgrind's memcheck;
//! `scripts/miri.sh` runs `tests/local.rs` under Miri.

// LocalDeferred's arena: the state's construction and the typed handles'
// access to their slots, each use argued in a `SAFETY` comment.
#![allow(unsafe_code)]

use std::cell::{Cell, UnsafeCell};
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, MaybeUninit, offset_of};
use std::panic::Location;
use std::ptr;
use std::rc::{Rc, Weak};
use std::task::Waker;

use super::arena::INLINE_CHUNK;
use super::header::{
    Entry, Header, Link, Op, Probe, Res, Source, Word, run_entry, run_source, slot,
};
use super::runner::{Canceller, Continuation, fire, fire_failure, fire_failure_as, run};
use crate::Failure;
use crate::error::{ResolverDroppedError, ResultTakenError};

/// The state a LocalDeferred's handles share: its fields, then the first
/// chunk of its arena.
pub(crate) struct Inner {
    state: State,
    /// The first chunk, written only through the pointers in `head` and
    /// `tail` (derived from the `Rc`'s own pointer). So a state must never
    /// be moved out of its `Rc` (no `Rc::try_unwrap`). Left uninitialised
    /// until used, and never copied: the state is built in its allocation.
    pub(super) inline: UnsafeCell<MaybeUninit<[Word; INLINE_CHUNK]>>,
}

impl std::ops::Deref for Inner {
    type Target = State;

    #[inline(always)]
    fn deref(&self) -> &State {
        &self.state
    }
}

/// The fields of an [`Inner`], all `Cell`s.
pub(crate) struct State {
    /// The first and the last chunk.
    pub(super) head: Cell<*mut Word>,
    pub(super) tail: Cell<*mut Word>,
    /// The last entry: its output is the chain's result.
    pub(super) last: Cell<*mut Word>,
    /// Where the run stands: the chunk and word of the next entry to run,
    /// and the entry whose output is its input (the current result).
    pub(super) chunk: Cell<*mut Word>,
    pub(super) at: Cell<u32>,
    pub(super) prev: Cell<*mut Word>,
    /// Entries not run yet.
    pub(super) pending: Cell<usize>,
    pub(super) fired: Cell<bool>,
    pub(super) running: Cell<bool>,
    pub(super) paused: Cell<u32>,
    /// Waiting on the Deferred a callback returned.
    pub(super) waiting: Cell<bool>,
    /// Swallow one fire after a canceller-less `cancel` (Twisted's
    /// `_suppressAlreadyCalled`).
    pub(super) suppress: Cell<bool>,
    /// A `LocalDeferred` handle still refers to this state.
    pub(super) consumer: Cell<bool>,
    /// The result was taken by `try_take` or `.await`.
    pub(super) taken: Cell<bool>,
    /// The canceller is running (a nested `cancel()` does nothing).
    pub(super) cancelling: Cell<bool>,
    /// The last run ended on a failure (Twisted's `failResult`): only then
    /// is a failure still held when the state goes reported. A failure that
    /// reached a paused chain, or one moved on, is not.
    pub(super) armed: Cell<bool>,
    pub(super) resolvers: Cell<usize>,
    pub(super) waiting_on: Cell<Option<Weak<Inner>>>,
    pub(super) continuation: Cell<Option<Continuation>>,
    pub(super) waker: Cell<Option<Waker>>,
    pub(super) canceller: Cell<Option<Canceller>>,
    /// `fire_failure_as::<T>` for the `T` of the `Source<T>`.
    pub(super) fail_source: unsafe fn(&Rc<Inner>, Failure),
    pub(super) created: &'static Location<'static>,
}

/// A snapshot for `Debug`.
pub(crate) struct Snapshot {
    pub(crate) fired: bool,
    pub(crate) running: bool,
    pub(crate) waiting: bool,
    pub(crate) paused: u32,
    pub(crate) pending: usize,
    pub(crate) taken: bool,
    pub(crate) result: Probe,
}

impl Inner {
    /// Whether the chain has a result to take: fired, run to its end, and
    /// neither paused nor waiting.
    #[inline]
    pub(super) fn done(&self) -> bool {
        self.fired.get() && !self.running.get() && !self.waiting.get() && self.paused.get() == 0
    }

    /// Asks the entry holding the current result.
    pub(super) fn probe(&self, op: Op) -> Probe {
        let prev = self.prev.get();
        // SAFETY: `prev` is a live entry of this arena; its header's `ops`
        // was instantiated with its own types.
        unsafe { ((*prev.cast::<Header>()).ops)(prev, op) }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let running = self.running.get();
        Snapshot {
            fired: self.fired.get(),
            running,
            waiting: self.waiting.get(),
            paused: self.paused.get(),
            pending: self.pending.get(),
            taken: self.taken.get(),
            result: if running || !self.fired.get() {
                Probe::Empty
            } else {
                self.probe(Op::Peek)
            },
        }
    }

    pub(crate) fn is_called(&self) -> bool {
        self.fired.get()
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.get() > 0
    }

    pub(crate) fn is_waiting(&self) -> bool {
        self.waiting.get()
    }

    pub(crate) fn created(&self) -> &'static Location<'static> {
        self.created
    }

    pub(crate) fn pause(&self) {
        self.paused.set(self.paused.get().saturating_add(1));
    }

    pub(crate) fn unpause(self: &Rc<Self>) {
        let p = self.paused.get();
        if p == 0 {
            return;
        }
        self.paused.set(p - 1);
        if p == 1 && self.fired.get() {
            run(self.clone());
        }
    }

    /// The handle is gone: a failure at rest can no longer be consumed.
    pub(super) fn release_consumer(&self) {
        self.consumer.set(false);
        drop(self.waker.take());
        if self.fired.get() && !self.running.get() && !self.waiting.get() {
            self.report_unhandled();
        }
    }

    pub(super) fn report_unhandled(&self) {
        if let Probe::Err(failure) = self.probe(Op::TakeFailure) {
            let describe = format!(
                "LocalDeferred created at {} (its handle was dropped, or it was never consumed)",
                self.created
            );
            crate::deferred::debug::report_unhandled(&failure, self.created, None, &describe);
        }
    }

    /// The chain has run to its end with no one waiting on it: wakes the
    /// task awaiting the handle, or reports a failure nobody will see.
    pub(super) fn finish(&self) {
        if !self.consumer.get() {
            self.report_unhandled();
            return;
        }
        self.armed
            .set(matches!(self.probe(Op::IsErr), Probe::Failed));
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// A new state whose arena holds the `Source<T>`, with the first resolver
/// counted.
pub(crate) fn new_inner<T: 'static>(
    canceller: Option<Box<dyn FnOnce(SourceOf<T>)>>,
    created: &'static Location<'static>,
) -> (Typed<T>, SourceOf<T>) {
    let canceller = canceller.map(|f| -> Canceller {
        Box::new(move |inner: &Rc<Inner>| {
            inner.resolvers.set(inner.resolvers.get() + 1);
            f(SourceOf {
                inner: inner.clone(),
                ty: PhantomData,
            })
        })
    });
    let state = State {
        head: Cell::new(ptr::null_mut()),
        tail: Cell::new(ptr::null_mut()),
        last: Cell::new(ptr::null_mut()),
        chunk: Cell::new(ptr::null_mut()),
        at: Cell::new(1),
        prev: Cell::new(ptr::null_mut()),
        pending: Cell::new(0),
        fired: Cell::new(false),
        running: Cell::new(false),
        paused: Cell::new(0),
        waiting: Cell::new(false),
        suppress: Cell::new(false),
        consumer: Cell::new(true),
        taken: Cell::new(false),
        armed: Cell::new(false),
        cancelling: Cell::new(false),
        resolvers: Cell::new(1),
        waiting_on: Cell::new(None),
        continuation: Cell::new(None),
        waker: Cell::new(None),
        canceller: Cell::new(canceller),
        fail_source: fire_failure_as::<T>,
        created,
    };
    // The state is written into its allocation and the inline chunk left
    // uninitialised (building the whole `Inner` and moving it in would
    // copy the chunk).
    let mut uninit: Rc<MaybeUninit<Inner>> = Rc::new_uninit();
    let Some(slot) = Rc::get_mut(&mut uninit) else {
        unreachable!("a new Rc has no other handle");
    };
    let p = slot.as_mut_ptr();
    // SAFETY: `p` comes from the unique borrow of the new allocation,
    // valid and aligned for an `Inner`; `state` is written without reading
    // or dropping what was there.
    unsafe { (&raw mut (*p).state).write(state) };
    // SAFETY: `state` is initialised and `inline` is a `MaybeUninit`, valid
    // uninitialised: the `Inner` is initialised.
    let inner = unsafe { uninit.assume_init() };
    Inner::init_arena(&inner);
    // SAFETY: both fields are written, the header by `Header::of`.
    let e = unsafe {
        inner.push_with(|e: *mut Source<T>| {
            (&raw mut (*e).header).write(Header::of::<Source<T>, T>(
                run_source,
                offset_of!(Source<T>, out),
            ));
            (&raw mut (*e).out).write(None);
        })
    };
    inner.chunk.set(inner.head.get());
    // SAFETY: `e` is the entry just written; its length is in its header.
    inner.at.set(1 + unsafe { (*e.cast::<Header>()).words });
    inner.prev.set(e);
    (
        Typed {
            inner: inner.clone(),
            ty: PhantomData,
        },
        SourceOf {
            inner,
            ty: PhantomData,
        },
    )
}

/// The consuming end of a chain whose last slot holds a `Res<T>`.
pub(crate) struct Typed<T> {
    pub(super) inner: Rc<Inner>,
    ty: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Typed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Typed")
    }
}

impl<T: 'static> Typed<T> {
    pub(crate) fn inner(&self) -> &Rc<Inner> {
        &self.inner
    }

    /// The state, without running `Drop` (which would release the
    /// consumer): for a handle that lives on retyped or inside a chain.
    #[inline(always)]
    pub(super) fn into_inner(self) -> Rc<Inner> {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again.
        unsafe { ptr::read(&this.inner) }
    }

    /// Appends a link; runs it at once if the chain has fired and is not
    /// running, paused or waiting (Twisted's order).
    #[inline]
    pub(crate) fn push<U: 'static, L: Link<T, U>>(self, link: L) -> Typed<U> {
        // Moved out without running `Drop` (the handle lives on, retyped).
        let inner = self.into_inner();
        // SAFETY: the three fields are written (`input` is zero-sized), the
        // header by `Header::of`; the last slot holds a `Res<T>` (this
        // `Typed<T>` vouches for it), which is the new entry's input.
        unsafe {
            inner.push_with(|e: *mut Entry<T, U, L>| {
                (&raw mut (*e).header).write(Header::of::<Entry<T, U, L>, U>(
                    run_entry::<T, U, L>,
                    offset_of!(Entry<T, U, L>, out),
                ));
                (&raw mut (*e).link).write(Some(link));
                (&raw mut (*e).out).write(None);
            })
        };
        inner.pending.set(inner.pending.get() + 1);
        if inner.fired.get() && !inner.running.get() {
            run(inner.clone());
        }
        Typed {
            inner,
            ty: PhantomData,
        }
    }

    /// Takes the result if the chain is done.
    #[inline]
    pub(crate) fn try_take(&self) -> Option<Res<T>> {
        let inner = &*self.inner;
        if !inner.done() {
            return None;
        }
        inner.taken.set(true);
        // SAFETY: done, so the cursor is past the last entry and `last`'s
        // slot holds a `Res<T>` (this `Typed<T>` vouches for it).
        let r = unsafe { slot::<T>(inner.last.get()).take() };
        Some(r.unwrap_or_else(|| Err(Failure::new(ResultTakenError {}))))
    }

    /// Registers the waker to wake when the chain is done.
    pub(crate) fn register(&self, waker: &Waker) {
        let old = self.inner.waker.take();
        match old {
            Some(w) if w.will_wake(waker) => self.inner.waker.set(Some(w)),
            _ => self.inner.waker.set(Some(waker.clone())),
        }
    }
}

impl<T> Drop for Typed<T> {
    fn drop(&mut self) {
        self.inner.release_consumer();
    }
}

/// The firing end of a chain whose first entry is a `Source<T>`.
pub(crate) struct SourceOf<T> {
    inner: Rc<Inner>,
    ty: PhantomData<fn(T)>,
}

impl<T: 'static> SourceOf<T> {
    pub(crate) fn inner(&self) -> &Rc<Inner> {
        &self.inner
    }

    /// Another firing end (one more resolver counted).
    pub(crate) fn clone_source(&self) -> SourceOf<T> {
        self.inner.resolvers.set(self.inner.resolvers.get() + 1);
        SourceOf {
            inner: self.inner.clone(),
            ty: PhantomData,
        }
    }

    /// Fires with `convert(value)`; gives `value` back if the chain had
    /// already fired (one fire after a canceller-less `cancel` is
    /// swallowed).
    #[inline]
    pub(crate) fn fire<V>(&self, value: V, convert: impl FnOnce(V) -> Res<T>) -> Result<(), V> {
        let inner = &self.inner;
        if inner.fired.get() {
            if inner.suppress.get() {
                inner.suppress.set(false);
                return Ok(());
            }
            return Err(value);
        }
        // SAFETY: a `SourceOf<T>` exists only for an arena whose first
        // entry is a `Source<T>`.
        unsafe { fire::<T>(inner, convert(value)) };
        Ok(())
    }
}

impl<T> Drop for SourceOf<T> {
    fn drop(&mut self) {
        let inner = &self.inner;
        let n = inner.resolvers.get() - 1;
        inner.resolvers.set(n);
        if n == 0 && !inner.fired.get() {
            fire_failure(
                inner,
                Failure::new(ResolverDroppedError::new(inner.created, None)),
            );
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.rebase_for_drop();
        if self.armed.get() {
            self.report_unhandled();
        }
        self.drop_arena();
        // A chain of Deferreds each waiting on the next, dropped from the
        // innermost (every one paused for good): unlinked in a loop, not by
        // recursive drops.
        let mut next = self.continuation.take();
        while let Some(c) = next {
            next = if Rc::strong_count(&c.outer) == 1 {
                c.outer.continuation.take()
            } else {
                None
            };
            drop(c);
        }
    }
}
