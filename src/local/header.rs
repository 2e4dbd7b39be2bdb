//! What an entry of a [`LocalDeferred`](crate::LocalDeferred)'s arena is:
//! the erased [`Header`] every entry starts with, the typed entries behind
//! it ([`Source`], [`Entry`]), and the functions the header points to,
//! which run an entry and look into its output slot.
//!
//! An entry is a `repr(C)` [`Header`] (its run and ops functions, its
//! length in arena words, where its output slot is) followed by the link
//! (the user's closure) and the output slot, an `Option<Result<U,
//! Failure>>`. The first entry of a chain is the [`Source`], whose slot
//! receives the fired value. Entry `k` takes its input from entry `k - 1`'s
//! slot and leaves its output in its own, so a value stays typed from slot
//! to slot and no callback needs a box of its own.
//!
//! An entry's run and ops functions are instantiated with the entry's own
//! types when it is pushed (`Header::of`), so calling them through the
//! erased header is sound as long as the input slot handed to `run` is the
//! previous entry's, which the typed handles of `state.rs` guarantee.

// LocalDeferred's arena: raw pointers into erased entries, each use argued
// in a `SAFETY` comment from the invariants above and in `state.rs`.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use super::LocalOutcome;
use super::state::Inner;
use crate::Failure;
use crate::error::ResultTakenError;

pub(crate) type Res<T> = Result<T, Failure>;

/// A step of a chain: runs on the previous result (Twisted's callback and
/// errback pair), called at most once.
pub(crate) trait Link<T, U>: 'static {
    fn call(self, input: Res<T>) -> LocalOutcome<U>;
}

/// The arena's unit: every entry starts on a 16-byte boundary.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
pub(super) struct Word([u8; 16]);

/// What [`Header::ops`] is asked to do.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// Drop the entry in place (answers `Probe::Empty`).
    Drop,
    /// Take the failure out of the output slot, if it holds one.
    TakeFailure,
    /// Say what the output slot holds.
    Peek,
    /// Say whether the output slot holds a failure (`Probe::Failed`), with
    /// no clone of it.
    IsErr,
}

/// What an output slot holds.
pub(crate) enum Probe {
    Empty,
    Ok,
    Err(Failure),
    /// A failure, not cloned (`Op::IsErr`).
    Failed,
}

/// The erased start of every entry.
#[repr(C)]
pub(super) struct Header {
    /// Runs the entry: takes the input from the slot given, leaves the
    /// output in the entry's own slot.
    pub(super) run: unsafe fn(*mut Word, *mut u8, &Rc<Inner>) -> Step,
    /// Drops the entry, or looks into its output slot.
    pub(super) ops: unsafe fn(*mut Word, Op) -> Probe,
    /// The entry's length in words.
    pub(super) words: u32,
    /// The byte offset of the entry's output slot from its start.
    pub(super) out: u32,
}

/// What running an entry left the chain doing.
pub(super) enum Step {
    Next,
    /// The entry's output will come from another Deferred.
    Wait,
}

/// The fired value's slot: the arena's first entry.
#[repr(C)]
pub(super) struct Source<T> {
    pub(super) header: Header,
    pub(super) out: Option<Res<T>>,
}

/// One link and its output slot.
#[repr(C)]
pub(super) struct Entry<T, U, L> {
    pub(super) header: Header,
    pub(super) link: Option<L>,
    pub(super) out: Option<Res<U>>,
    pub(super) input: PhantomData<fn(T)>,
}

/// The largest entry, in bytes (1 GiB): sizes and offsets then fit the
/// arena's `u32` word counts with room to spare.
const MAX_ENTRY: usize = 1 << 30;

/// An entry's length in words. Entries must fit the arena's alignment and
/// size; every use is in a `const` block, so a type that does not is a
/// compile error (after monomorphization) with this message, not a panic.
pub(super) const fn words_of<E>() -> u32 {
    assert!(
        mem::align_of::<E>() <= mem::align_of::<Word>(),
        "LocalDeferred keeps callbacks and values aligned to at most 16 bytes: \
         box the over-aligned value (Box<T>) or use Deferred"
    );
    assert!(
        mem::size_of::<E>() <= MAX_ENTRY,
        "LocalDeferred keeps callbacks and values of at most 1 GiB: box the value (Box<T>)"
    );
    mem::size_of::<E>().div_ceil(mem::size_of::<Word>()) as u32
}

/// The slot of an entry whose output is a `Res<U>`.
///
/// # Safety
///
/// `e` is a live entry whose output slot holds an `Option<Res<U>>`.
pub(super) unsafe fn slot<'a, U>(e: *mut Word) -> &'a mut Option<Res<U>> {
    // SAFETY: as the caller promises; `out` is the slot's offset.
    unsafe {
        let out = (*e.cast::<Header>()).out as usize;
        &mut *e.cast::<u8>().add(out).cast::<Option<Res<U>>>()
    }
}

/// `Header::ops` of an entry of type `E` whose output is a `Res<U>`.
///
/// # Safety
///
/// `e` is a live entry written as an `E`; after `Op::Drop` it is dead.
unsafe fn ops_of<E, U>(e: *mut Word, op: Op) -> Probe {
    if op == Op::Drop {
        // SAFETY: `e` was written as an `E` and is dropped once (the
        // arena's walkers visit each entry once).
        unsafe { e.cast::<E>().drop_in_place() };
        return Probe::Empty;
    }
    // SAFETY: the entry's slot holds an `Option<Res<U>>` (its `E` says so).
    let slot = unsafe { slot::<U>(e) };
    match slot {
        None => Probe::Empty,
        Some(Ok(_)) => Probe::Ok,
        Some(Err(_)) if op == Op::IsErr => Probe::Failed,
        Some(Err(f)) if op == Op::Peek => Probe::Err(f.clone()),
        Some(Err(_)) => match slot.take() {
            Some(Err(f)) => Probe::Err(f),
            _ => Probe::Empty,
        },
    }
}

impl Header {
    /// The header of an entry of type `E` whose output is a `Res<U>`,
    /// run by `run`, with its slot at byte offset `out`.
    pub(super) fn of<E, U>(
        run: unsafe fn(*mut Word, *mut u8, &Rc<Inner>) -> Step,
        out: usize,
    ) -> Header {
        Header {
            run,
            ops: ops_of::<E, U>,
            words: const { words_of::<E>() },
            out: out as u32,
        }
    }
}

/// `Header::run` of the [`Source`]: its slot already holds the fired
/// value.
pub(super) unsafe fn run_source(_: *mut Word, _: *mut u8, _: &Rc<Inner>) -> Step {
    Step::Next
}

/// `Header::run` of an [`Entry<T, U, L>`]: moves the input out of the
/// previous entry's slot, runs the link on it (a panic becomes a failure),
/// and leaves the output in the entry's own slot, or links the chain up to
/// wait on the `LocalDeferred` the link returned.
///
/// # Safety
///
/// `e` is a live `Entry<T, U, L>` of `inner`'s arena and `input` the
/// output slot of the entry before it, an `Option<Res<T>>`.
pub(super) unsafe fn run_entry<T: 'static, U: 'static, L: Link<T, U>>(
    e: *mut Word,
    input: *mut u8,
    inner: &Rc<Inner>,
) -> Step {
    // SAFETY: `e` was written as this `Entry<T, U, L>` by `Typed<T>::push`,
    // so its input slot (the previous entry's output) holds an
    // `Option<Res<T>>`; the two do not overlap. The references end before
    // the link runs (which may push to this arena, behind this entry).
    let (link, input) = unsafe {
        let entry = &mut *e.cast::<Entry<T, U, L>>();
        (entry.link.take(), (*input.cast::<Option<Res<T>>>()).take())
    };
    let input = input.unwrap_or_else(|| Err(Failure::new(ResultTakenError {})));
    let outcome = match link {
        // All of the link's user code (its closure, and dropping the one it
        // does not call) runs here: a panic becomes a failure.
        Some(link) => catch_unwind(AssertUnwindSafe(move || link.call(input)))
            .unwrap_or_else(|payload| LocalOutcome::Ready(Err(Failure::from_panic(payload)))),
        // The run loop visits each entry once.
        None => LocalOutcome::Ready(input.and_then(|_| Err(Failure::new(ResultTakenError {})))),
    };
    // SAFETY: the entry is live (the arena outlives this call: the run loop
    // holds `inner`) and its slot is an `Option<Res<U>>`.
    let out: *mut Option<Res<U>> = unsafe { slot::<U>(e) };
    match outcome {
        LocalOutcome::Ready(r) => {
            // SAFETY: as above; nothing else refers to the slot now.
            unsafe { *out = Some(r) };
            Step::Next
        }
        LocalOutcome::Chain(d) => match d.into_typed().chain_into(inner, e) {
            Ok(r) => {
                // SAFETY: as above.
                unsafe { *out = Some(r) };
                Step::Next
            }
            Err(()) => Step::Wait,
        },
    }
}

/// Moves the result of an inner chain's last slot into the slot its outer
/// chain waits on.
///
/// # Safety
///
/// Both entries are live and their slots hold `Option<Res<U>>`.
pub(super) unsafe fn move_result<U>(from: *mut Word, to: *mut Word) {
    // SAFETY: as the caller promises; the entries are in different arenas.
    unsafe { *slot::<U>(to) = slot::<U>(from).take() };
}
