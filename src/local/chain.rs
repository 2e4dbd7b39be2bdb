//! The state of a [`LocalDeferred`](super::LocalDeferred): its chain of
//! callbacks in one type-erased arena, the loop that runs it, chaining and
//! cancellation. Every `unsafe` block of the local flavour is here.
//!
//! # Layout
//!
//! A chain is a sequence of *entries* in an arena of 16-byte words. The
//! arena is a list of chunks: the first, of 12 words, inside the state's
//! own allocation, then heap chunks of 32 words, each next one twice the
//! last. A chunk never moves (the state is never moved out of its `Rc`),
//! so a callback may add to the chain while it runs. Each entry is a
//! `repr(C)` [`Header`] (its run and ops functions, its length in words,
//! where its output slot is) followed by the link (the user's closure) and
//! the output slot, an `Option<Result<U, Failure>>`.
//! The first entry is the [`Source`]: its slot receives the fired value.
//! Entry `k` takes its input from entry `k - 1`'s slot and leaves its
//! output in its own, so a value stays typed from slot to slot and no
//! callback needs a box (BENCHMARKS.md, round 13, measured the box at about
//! half the cost of a ten-callback chain).
//!
//! # Why it is sound
//!
//! The typed handles carry the invariant the erased arena relies on:
//!
//! * a [`Typed<T>`] exists only while the last entry's slot holds an
//!   `Option<Result<T, Failure>>`; pushing consumes it and returns the
//!   `Typed<U>` of the new entry, and it is not `Clone`;
//! * a [`SourceOf<T>`] exists only for an arena whose first entry is a
//!   `Source<T>`;
//! * a [`Continuation`]'s mover was instantiated with the type of both
//!   slots it moves between (checked where it is made);
//! * an entry's run function was instantiated with its own types, and its
//!   input slot is the previous entry's, whose type the `Typed` it was
//!   pushed with vouched for.
//!
//! No `RefCell` borrow or reference into the arena is held while user code
//! runs: the state is `Cell`s, the arena is reached through raw pointers,
//! and the run loop re-reads a chunk's length after every entry. The run
//! loop holds an `Rc` of the state it runs, so user code cannot free it.
//! `tests/local.rs` runs under Miri, with Stacked and Tree Borrows
//! (`scripts/miri.sh`).

#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::cell::{Cell, UnsafeCell};
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop, MaybeUninit, offset_of};
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::ptr;
use std::rc::{Rc, Weak};
use std::task::Waker;

use super::LocalOutcome;
use crate::Failure;
use crate::error::{CancelledError, ChainedToSelfError, ResolverDroppedError, ResultTakenError};

pub(crate) type Res<T> = Result<T, Failure>;

/// A step of a chain: runs on the previous result (Twisted's callback and
/// errback pair), called at most once.
pub(crate) trait Link<T, U>: 'static {
    fn call(self, input: Res<T>) -> LocalOutcome<U>;
}

/// The arena's unit: every entry starts on a 16-byte boundary.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Word([u8; 16]);

/// A chunk's first word: the next chunk, and how much of this one is in
/// use (the rest of the chunk holds entries).
#[repr(C)]
struct Chunk {
    next: *mut Word,
    /// Words in use, this one included.
    used: u32,
    /// Words in the chunk, this one included.
    cap: u32,
}

/// The first chunk's size in words (192 bytes), inside the state's own
/// allocation: room for the source and two or three small callbacks, so a
/// Deferred with a short chain (or none) is one allocation.
const INLINE_CHUNK: usize = 12;

/// The first chunk on the heap (512 bytes); each next one doubles.
const FIRST_HEAP_CHUNK: usize = 32;

/// The largest chunk, in words (4 GiB).
const MAX_CHUNK: usize = 1 << 28;

/// What [`Header::ops`] is asked to do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
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
struct Header {
    /// Runs the entry: takes the input from the slot given, leaves the
    /// output in the entry's own slot.
    run: unsafe fn(*mut Word, *mut u8, &Rc<Inner>) -> Step,
    /// Drops the entry, or looks into its output slot.
    ops: unsafe fn(*mut Word, Op) -> Probe,
    /// The entry's length in words.
    words: u32,
    /// The byte offset of the entry's output slot from its start.
    out: u32,
}

/// What running an entry left the chain doing.
enum Step {
    Next,
    /// The entry's output will come from another Deferred.
    Wait,
}

/// The fired value's slot: the arena's first entry.
#[repr(C)]
struct Source<T> {
    header: Header,
    out: Option<Res<T>>,
}

/// One link and its output slot.
#[repr(C)]
struct Entry<T, U, L> {
    header: Header,
    link: Option<L>,
    out: Option<Res<U>>,
    input: PhantomData<fn(T)>,
}

/// The largest entry, in bytes (1 GiB): sizes and offsets then fit the
/// arena's `u32` word counts with room to spare.
const MAX_ENTRY: usize = 1 << 30;

/// An entry's length in words. Entries must fit the arena's alignment and
/// size; every use is in a `const` block, so a type that does not is a
/// compile error (after monomorphization) with this message, not a panic.
const fn words_of<E>() -> u32 {
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
unsafe fn slot<'a, U>(e: *mut Word) -> &'a mut Option<Res<U>> {
    // SAFETY: as the caller promises; `out` is the slot's offset.
    unsafe {
        let out = (*e.cast::<Header>()).out as usize;
        &mut *e.cast::<u8>().add(out).cast::<Option<Res<U>>>()
    }
}

/// `Header::ops` of an entry of type `E` whose output is a `Res<U>`.
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
    fn of<E, U>(run: unsafe fn(*mut Word, *mut u8, &Rc<Inner>) -> Step, out: usize) -> Header {
        Header {
            run,
            ops: ops_of::<E, U>,
            words: const { words_of::<E>() },
            out: out as u32,
        }
    }
}

unsafe fn run_source(_: *mut Word, _: *mut u8, _: &Rc<Inner>) -> Step {
    Step::Next
}

unsafe fn run_entry<T: 'static, U: 'static, L: Link<T, U>>(
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
unsafe fn move_result<U>(from: *mut Word, to: *mut Word) {
    // SAFETY: as the caller promises; the entries are in different arenas.
    unsafe { *slot::<U>(to) = slot::<U>(from).take() };
}

/// An inner chain's promise to hand its result to the chain waiting on it.
struct Continuation {
    outer: Rc<Inner>,
    /// The entry of `outer`'s arena whose output the result is.
    entry: *mut Word,
    /// `move_result::<U>` for the `U` both slots hold.
    mover: unsafe fn(*mut Word, *mut Word),
}

/// The canceller, erased: `new_inner::<T>` wraps the user's typed one.
type Canceller = Box<dyn FnOnce(&Rc<Inner>)>;

/// The state a LocalDeferred's handles share: its fields, then the first
/// chunk of its arena.
pub(crate) struct Inner {
    state: State,
    /// The first chunk, written only through the pointers in `head` and
    /// `tail` (derived from the `Rc`'s own pointer). So a state must never
    /// be moved out of its `Rc` (no `Rc::try_unwrap`). Left uninitialised
    /// until used, and never copied: the state is built in its allocation.
    inline: UnsafeCell<MaybeUninit<[Word; INLINE_CHUNK]>>,
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
    head: Cell<*mut Word>,
    tail: Cell<*mut Word>,
    /// The last entry: its output is the chain's result.
    last: Cell<*mut Word>,
    /// Where the run stands: the chunk and word of the next entry to run,
    /// and the entry whose output is its input (the current result).
    chunk: Cell<*mut Word>,
    at: Cell<u32>,
    prev: Cell<*mut Word>,
    /// Entries not run yet.
    pending: Cell<usize>,
    fired: Cell<bool>,
    running: Cell<bool>,
    paused: Cell<u32>,
    /// Waiting on the Deferred a callback returned.
    waiting: Cell<bool>,
    /// Swallow one fire after a canceller-less `cancel` (Twisted's
    /// `_suppressAlreadyCalled`).
    suppress: Cell<bool>,
    /// A `LocalDeferred` handle still refers to this state.
    consumer: Cell<bool>,
    /// The result was taken by `try_take` or `.await`.
    taken: Cell<bool>,
    /// The canceller is running (a nested `cancel()` does nothing).
    cancelling: Cell<bool>,
    /// The last run ended on a failure (Twisted's `failResult`): only then
    /// is a failure still held when the state goes reported. A failure that
    /// reached a paused chain, or one moved on, is not.
    armed: Cell<bool>,
    resolvers: Cell<usize>,
    waiting_on: Cell<Option<Weak<Inner>>>,
    continuation: Cell<Option<Continuation>>,
    waker: Cell<Option<Waker>>,
    canceller: Cell<Option<Canceller>>,
    /// `fire_failure_as::<T>` for the `T` of the `Source<T>`.
    fail_source: unsafe fn(&Rc<Inner>, Failure),
    created: &'static Location<'static>,
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
    /// Makes room for an `E` at the end of the arena and has `fill` write
    /// it there field by field (an `E` built on the stack and copied in
    /// stalls on the copy).
    ///
    /// # Safety
    ///
    /// `fill` must initialise every field of the `E` it is given, starting
    /// with a `Header` made by `Header::of::<E, _>`.
    #[inline(always)]
    unsafe fn push_with<E>(&self, fill: impl FnOnce(*mut E)) -> *mut Word {
        let words = const { words_of::<E>() };
        let mut tail = self.tail.get();
        // SAFETY: `tail` is null or the last chunk, whose header says how
        // much of it is in use; a new chunk is linked before use.
        unsafe {
            if tail.is_null() || {
                let c = &*tail.cast::<Chunk>();
                c.used as usize + words as usize > c.cap as usize
            } {
                tail = self.grow(words);
            }
            let c = tail.cast::<Chunk>();
            let used = (*c).used;
            let e = tail.add(used as usize);
            fill(e.cast::<E>());
            // Counted in use only once written, so a walker never sees a
            // half-built entry (`fill` runs no user code, but stays safe).
            (*c).used = used + words;
            self.last.set(e);
            e
        }
    }

    /// Links a new chunk with room for `words` (twice the last one).
    #[cold]
    fn grow(&self, words: u32) -> *mut Word {
        let tail = self.tail.get();
        let cap = if tail.is_null() {
            FIRST_HEAP_CHUNK
        } else {
            // SAFETY: `tail` is a chunk.
            unsafe { ((*tail.cast::<Chunk>()).cap as usize * 2).max(FIRST_HEAP_CHUNK) }
        }
        // Chunks stop doubling at 4 GiB; an entry (at most 1 GiB) always
        // fits one, and every count fits a `u32`.
        .min(MAX_CHUNK)
        .max(words as usize + 1);
        let layout = chunk_layout(cap);
        // SAFETY: `layout` is not zero-sized.
        let chunk = unsafe { alloc::alloc(layout) }.cast::<Word>();
        if chunk.is_null() {
            alloc::handle_alloc_error(layout);
        }
        // SAFETY: `chunk` is a fresh block of `cap` words; `tail`, if any,
        // is the last chunk.
        unsafe {
            chunk.cast::<Chunk>().write(Chunk {
                next: ptr::null_mut(),
                used: 1,
                cap: cap as u32,
            });
            if tail.is_null() {
                self.head.set(chunk);
            } else {
                (*tail.cast::<Chunk>()).next = chunk;
            }
        }
        self.tail.set(chunk);
        chunk
    }

    /// Whether the chain has a result to take: fired, run to its end, and
    /// neither paused nor waiting.
    #[inline]
    fn done(&self) -> bool {
        self.fired.get() && !self.running.get() && !self.waiting.get() && self.paused.get() == 0
    }

    /// Asks the entry holding the current result.
    fn probe(&self, op: Op) -> Probe {
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
    fn release_consumer(&self) {
        self.consumer.set(false);
        drop(self.waker.take());
        if self.fired.get() && !self.running.get() && !self.waiting.get() {
            self.report_unhandled();
        }
    }

    fn report_unhandled(&self) {
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
    fn finish(&self) {
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

fn chunk_layout(cap: usize) -> Layout {
    // `cap` words of 16 bytes: at most `u32::MAX` words, well within
    // `isize::MAX` on 64-bit targets; `Layout` checks it on others.
    Layout::array::<Word>(cap).unwrap_or_else(|_| alloc::handle_alloc_error(Layout::new::<Word>()))
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Pointers into the inline chunk were derived from the `Rc`'s
        // pointer; here the state is reached through `&mut self`, so they
        // are re-derived from it (Stacked Borrows forbids using the old ones
        // while this unique borrow is protected).
        let old = self.head.get();
        let inline = self.inline.get_mut().as_mut_ptr().cast::<Word>();
        let rebase = |p: *mut Word| {
            let off = p.addr().wrapping_sub(old.addr());
            if off < INLINE_CHUNK * mem::size_of::<Word>() {
                inline.wrapping_byte_add(off)
            } else {
                p
            }
        };
        self.prev.set(rebase(self.prev.get()));
        if self.armed.get() {
            self.report_unhandled();
        }
        // The entries before `prev` have run: each gave up its link and
        // had its output taken by the next one, so only `prev` (the current
        // result) and the entries after it hold anything to drop.
        let prev = self.prev.get();
        let mut live = false;
        let mut chunk = inline;
        while !chunk.is_null() {
            // SAFETY: `chunk` is a chunk of this arena: its entries, each
            // starting with a `Header` and `words` long, fill it to `used`;
            // each is dropped once, then a heap chunk is freed with the
            // layout it was allocated with (the inline one goes with the
            // state). Nothing else refers to the arena.
            unsafe {
                let Chunk { next, used, cap } = chunk.cast::<Chunk>().read();
                let mut at = 1;
                while at < used as usize {
                    let e = chunk.add(at);
                    let h = &*e.cast::<Header>();
                    let (ops, words) = (h.ops, h.words);
                    at += words as usize;
                    live |= e == prev;
                    if live {
                        ops(e, Op::Drop);
                    }
                }
                if chunk != inline {
                    alloc::dealloc(chunk.cast(), chunk_layout(cap as usize));
                }
                chunk = next;
            }
        }
        // A chain of Deferreds each waiting on the next, dropped from the
        // innermost (every one paused for good): unlinked in a loop, not by
        // recursive drops.
        // (The state is never moved out of its `Rc`: the first chunk is
        // inside it.)
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

/// Runs the chain from its cursor, then every chain that was waiting on it
/// (in a loop: nesting does not grow the stack).
fn run(mut cur: Rc<Inner>) {
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
    let uninit: Rc<MaybeUninit<Inner>> = Rc::new_uninit();
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
    // SAFETY: `uninit` was just allocated and is the only handle on it, so
    // nothing else reads or writes it while its `state` is written through
    // this pointer (valid and aligned for an `Inner`). `inline` is a
    // `MaybeUninit`: left as it is, the `Inner` is initialised. (Building
    // the whole `Inner` and moving it in would copy its 192-byte chunk.)
    let inner = unsafe {
        let p = Rc::as_ptr(&uninit).cast_mut().cast::<Inner>();
        (&raw mut (*p).state).write(state);
        uninit.assume_init()
    };
    // SAFETY: `Rc::as_ptr` points to the live state; the field's address is
    // taken without making a reference. The chunk is written only through
    // pointers derived from this one (and `UnsafeCell` allows that while
    // shared references to the state exist).
    let first =
        unsafe { UnsafeCell::raw_get(&raw const (*Rc::as_ptr(&inner)).inline) }.cast::<Word>();
    // SAFETY: `first` is `INLINE_CHUNK` words, aligned, unused so far.
    unsafe {
        first.cast::<Chunk>().write(Chunk {
            next: ptr::null_mut(),
            used: 1,
            cap: INLINE_CHUNK as u32,
        })
    };
    inner.head.set(first);
    inner.tail.set(first);
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
    inner: Rc<Inner>,
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
    fn into_inner(self) -> Rc<Inner> {
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

    /// Returned by `entry`, a link of `outer`'s chain: the result now if
    /// this chain is done, else `Err(())` after arranging for it to be
    /// moved into `entry`'s slot later. Runs no user code before the wait
    /// is linked up (a waker registered on this handle is left in place:
    /// dropping it could run code).
    fn chain_into(self, outer: &Rc<Inner>, entry: *mut Word) -> Result<Res<T>, ()> {
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

/// Fires an unfired chain: stores `r` in the source's slot and runs.
///
/// # Safety
///
/// `inner`'s first entry is a `Source<T>`.
unsafe fn fire<T>(inner: &Rc<Inner>, r: Res<T>) {
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

/// Fires an unfired chain whose first entry is a `Source<T>` with a
/// failure (cancellation, every resolver dropped).
///
/// # Safety
///
/// `inner`'s first entry is a `Source<T>`.
unsafe fn fire_failure_as<T>(inner: &Rc<Inner>, failure: Failure) {
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
fn fire_failure(inner: &Rc<Inner>, failure: Failure) {
    // SAFETY: `fail_source` was instantiated by `new_inner` with the type
    // of this arena's `Source`.
    unsafe { (inner.fail_source)(inner, failure) }
}
