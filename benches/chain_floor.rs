//! What a chain of callbacks costs in simpler designs than a Deferred's:
//! the floors under the `chain_10` / `chain_100` rows (information for
//! BENCHMARKS.md, no target).
//!
//! `cargo bench --bench chain_floor` times, in one criterion group per
//! length, the chain rows' workload (`new` + n x `add_callback` + fire +
//! take the result) against models that keep only the data structure:
//!
//! * `anchor`: the chain rows' anchor, a `Vec<Box<dyn FnOnce>>` built with
//!   its exact capacity and run in order.
//! * `intrusive_locked`: the Deferred's own layout with none of its
//!   semantics. A shared state (`Arc<Mutex<_>>`), each callback in one box
//!   with the list's `next` pointer, a lock per callback added, the run
//!   reversing the queue and calling each callback without the lock. No
//!   type change between callbacks, no failures, no panic catching, no
//!   pausing, no runner token, no returned handle.
//! * `intrusive_unlocked`: `intrusive_locked` with `Rc<RefCell<_>>` in
//!   place of `Arc<Mutex<_>>`: the bound of a `!Send` flavour.
//! * `vec_locked`: `intrusive_locked` with the boxes in a `Vec` inside the
//!   state (it grows: the state cannot know how many callbacks will come).
//! * `vec_unlocked`: `vec_locked` with `Rc<RefCell<_>>` in place of the
//!   lock.
//! * `intrusive_spin`: `intrusive_locked` with a lock that costs one
//!   locked instruction per section (a compare-and-swap to lock, a plain
//!   release store to unlock), as the Deferred's own `spin` lock. One
//!   atomic read-modify-write per callback added is the least any `Send`
//!   design can pay, since the fire may race the add from another thread:
//!   this is the floor of a thread-safe Deferred with a box per callback.
//! * `inline_locked`: callbacks stored in the state without a box each
//!   (a `Vec` of one concrete closure type). The best case of inline
//!   callback storage; with callbacks of any type it needs type erasure
//!   (`unsafe`) and one virtual call per callback on top of this.
//! * `inline_spin`: `inline_locked` under the one-instruction lock: the
//!   floor of a thread-safe Deferred with inline callback storage.
//! * `inline_unlocked`: `inline_locked` with `Rc<RefCell<_>>`: no lock and
//!   no box per callback, the floor of a `!Send` flavour with inline
//!   storage, the cheapest design of all.
//! * `local_erased`: a sketch of the design the models above leave open
//!   (BENCHMARKS.md, round 13): a `!Send` Deferred whose callbacks of any
//!   type live without a box each in one chunked arena, type-erased
//!   (`unsafe`), doing a callback's core work (a typed `Result<T, Failure>`
//!   handed from slot to slot, failures passed by, panics caught, a fired
//!   Deferred returned by a callback continued with, a callback added
//!   after the fire run at once, a retyped handle returned). Checked by
//!   `local_checks` before it is timed.
//! * `local_deferred`: the library's form of that sketch, `LocalDeferred`
//!   (the chain rows' workload on it, as `core`'s `chain_*_local`).
//! * `ours`: the chain rows' workload itself, so every ratio is same-run.

// A bench target's helpers need no docs.
#![allow(missing_docs)]

use std::cell::{RefCell, UnsafeCell};
use std::hint::black_box;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use criterion::{Throughput, criterion_group, criterion_main};

mod common;
use common::{ANCHOR, OURS};

/// A callback of the models: `FnOnce(u64) -> u64` behind `&mut`, so the
/// intrusive node can hold it unsized.
trait Call: Send {
    fn call(&mut self, v: u64) -> u64;
}

impl<F: FnOnce(u64) -> u64 + Send> Call for Option<F> {
    fn call(&mut self, v: u64) -> u64 {
        match self.take() {
            Some(f) => f(v),
            None => v,
        }
    }
}

/// A node of the intrusive model: the callback and the list's `next`
/// pointer in one allocation, as a Deferred's callback link.
struct Node<C: ?Sized> {
    next: Option<Box<Node<dyn Call>>>,
    call: C,
}

/// The intrusive model's shared state: the result and the queued
/// callbacks, newest first.
struct Intrusive {
    result: Option<u64>,
    inbox: Option<Box<Node<dyn Call>>>,
}

/// The `Vec` models' shared state.
struct Listed<F> {
    result: Option<u64>,
    callbacks: Vec<F>,
}

/// One callback of the workload (what `common::callback_chain` adds).
#[inline(always)]
fn callback(k: u64) -> impl FnOnce(u64) -> u64 + Send + 'static {
    move |v: u64| v.wrapping_add(k)
}

/// The models' shared state: `Arc<Mutex<_>>` (what a `Send` Deferred
/// needs) or `Rc<RefCell<_>>` (a `!Send` one).
trait Shared<S>: Clone {
    fn new(state: S) -> Self;
    fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R;
}

impl<S> Shared<S> for Arc<Mutex<S>> {
    #[inline(always)]
    fn new(state: S) -> Self {
        Arc::new(Mutex::new(state))
    }

    #[inline(always)]
    fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut self.lock().unwrap())
    }
}

impl<S> Shared<S> for Rc<RefCell<S>> {
    #[inline(always)]
    fn new(state: S) -> Self {
        Rc::new(RefCell::new(state))
    }

    #[inline(always)]
    fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut self.borrow_mut())
    }
}

/// A lock with one locked instruction per section: a compare-and-swap to
/// take it, a release store to give it back (the Deferred's `spin` lock,
/// without its yield after 64 tries: the models never contend).
struct Spin<S> {
    locked: AtomicBool,
    state: UnsafeCell<S>,
}

// The model's lock is the bench's one `unsafe`, as the Deferred's is
// `src/spin.rs`'s.
#[allow(unsafe_code)]
// SAFETY: `state` is only reached through `Shared::with`, which holds
// `locked` for the whole access, so one thread at a time has it: `S: Send`
// is all that sharing the cell needs, as for `std::sync::Mutex`.
unsafe impl<S: Send> Sync for Spin<S> {}

/// Gives the lock back when dropped, also if the closure panics.
struct Unlock<'a>(&'a AtomicBool);

impl Drop for Unlock<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[allow(unsafe_code)]
impl<S> Shared<S> for Arc<Spin<S>> {
    #[inline(always)]
    fn new(state: S) -> Self {
        Arc::new(Spin {
            locked: AtomicBool::new(false),
            state: UnsafeCell::new(state),
        })
    }

    #[inline(always)]
    fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        let _unlock = Unlock(&self.locked);
        // SAFETY: `locked` is held until `_unlock` drops, after `f` returns,
        // so no other `with` reaches the state meanwhile, and the `&mut`
        // does not outlive the call.
        f(unsafe { &mut *self.state.get() })
    }
}

/// The intrusive models: a node per callback queued newest first under the
/// state's lock; at fire the queue is taken, reversed (oldest first) and run
/// without the lock; the result is stored, then taken through the other
/// handle.
#[inline(always)]
fn intrusive<H: Shared<Intrusive>>(n: u64) -> u64 {
    let state = H::new(Intrusive {
        result: None,
        inbox: None,
    });
    let firer = state.clone();
    for k in 0..n {
        let mut node: Box<Node<dyn Call>> = Box::new(Node {
            next: None,
            call: Some(callback(black_box(k))),
        });
        state.with(|st| {
            node.next = st.inbox.take();
            st.inbox = Some(node);
        });
    }
    let mut queued = firer.with(|st| st.inbox.take());
    let mut run = None;
    while let Some(mut node) = queued {
        queued = node.next.take();
        node.next = run;
        run = Some(node);
    }
    let mut v = black_box(0u64);
    while let Some(mut node) = run {
        run = node.next.take();
        v = node.call.call(v);
    }
    firer.with(|st| st.result = Some(v));
    drop(firer);
    state.with(|st| st.result.take()).unwrap_or(0)
}

/// The `Vec` models: each callback made by `make` and pushed under the
/// state's lock; at fire the `Vec` is taken and run without the lock.
#[inline(always)]
fn listed<H, F>(n: u64, make: impl Fn(u64) -> F) -> u64
where
    H: Shared<Listed<F>>,
    F: FnOnce(u64) -> u64,
{
    let state = H::new(Listed {
        result: None,
        callbacks: Vec::new(),
    });
    let firer = state.clone();
    for k in 0..n {
        let f = make(black_box(k));
        state.with(|st| st.callbacks.push(f));
    }
    let callbacks = firer.with(|st| std::mem::take(&mut st.callbacks));
    let mut v = black_box(0u64);
    for f in callbacks {
        v = f(v);
    }
    firer.with(|st| st.result = Some(v));
    drop(firer);
    state.with(|st| st.result.take()).unwrap_or(0)
}

/// A boxed callback of the `Vec` models.
type Boxed = Box<dyn FnOnce(u64) -> u64 + Send>;

#[inline(always)]
fn boxed(k: u64) -> Boxed {
    Box::new(callback(k))
}

#[inline(always)]
fn intrusive_locked(n: u64) -> u64 {
    intrusive::<Arc<Mutex<_>>>(n)
}

#[inline(always)]
fn intrusive_unlocked(n: u64) -> u64 {
    intrusive::<Rc<RefCell<_>>>(n)
}

#[inline(always)]
fn vec_locked(n: u64) -> u64 {
    listed::<Arc<Mutex<_>>, _>(n, boxed)
}

#[inline(always)]
fn vec_unlocked(n: u64) -> u64 {
    listed::<Rc<RefCell<_>>, _>(n, boxed)
}

#[inline(always)]
fn intrusive_spin(n: u64) -> u64 {
    intrusive::<Arc<Spin<_>>>(n)
}

#[inline(always)]
fn inline_locked(n: u64) -> u64 {
    listed::<Arc<Mutex<_>>, _>(n, callback)
}

#[inline(always)]
fn inline_spin(n: u64) -> u64 {
    listed::<Arc<Spin<_>>, _>(n, callback)
}

#[inline(always)]
fn inline_unlocked(n: u64) -> u64 {
    listed::<Rc<RefCell<_>>, _>(n, callback)
}

/// `local_erased`: a sketch of the one design round 13 left open, a `!Send`
/// Deferred that stores its callbacks without a box each. Measured, not a
/// library type: it leaves out errbacks, pausing, cancellation, waiting on
/// an unfired Deferred, `.await` and the unhandled-failure report.
///
/// What it does per `add_callback` and per callback run is what a Deferred
/// does there: `Rc<RefCell<_>>` state with no lock; each callback written
/// in place into a chunked arena (chunks never move, so callbacks added
/// while the chain runs are safe) behind a type-erased header (run and
/// drop functions); the run hands a `Result<T, Failure>` from one slot to
/// the next through the erased pointers, passes a failure by without
/// calling the callback, catches a panic as a failure, takes the result of
/// a returned Deferred that has already fired, and checks after each
/// callback whether the chain must stop; the returned handle is retyped
/// (`Local<U>`).
#[allow(unsafe_code)]
mod local {
    use std::alloc::{self, Layout};
    use std::cell::RefCell;
    use std::marker::PhantomData;
    use std::mem::{self, offset_of};
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::ptr;
    use std::rc::Rc;

    use tokio_deferred::Failure;

    type Res<T> = Result<T, Failure>;

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

    /// The first chunk's size in words (512 bytes); each next one doubles.
    const FIRST_CHUNK: usize = 32;

    /// The erased start of every entry.
    #[repr(C)]
    struct Header {
        /// Runs the entry: takes the input from the slot given, stores the
        /// output in the entry's own slot; `false` stops the chain.
        run: unsafe fn(*mut Word, *mut u8) -> bool,
        /// Drops the entry in place.
        drop: unsafe fn(*mut Word),
        /// The entry's length in words.
        words: u32,
        /// The byte offset of the entry's output slot from its start.
        out: u32,
    }

    impl Header {
        /// The header of an entry of type `E` whose output slot is `out`
        /// bytes from its start.
        fn of<E>(run: unsafe fn(*mut Word, *mut u8) -> bool, out: usize) -> Header {
            Header {
                run,
                drop: drop_as::<E>,
                words: words_of::<E>(),
                out: out as u32,
            }
        }
    }

    /// The fired value's slot: the arena's first entry.
    #[repr(C)]
    struct Source<T> {
        header: Header,
        out: Option<Res<T>>,
    }

    /// One callback and its output slot.
    #[repr(C)]
    struct Entry<T, U, F> {
        header: Header,
        f: Option<F>,
        out: Option<Res<U>>,
        input: PhantomData<fn(T)>,
    }

    /// What a callback returns: a result, or a Deferred to wait on.
    pub enum Outcome<U> {
        Ready(Res<U>),
        Chain(Local<U>),
    }

    impl<U> From<Res<U>> for Outcome<U> {
        #[inline(always)]
        fn from(r: Res<U>) -> Self {
            Outcome::Ready(r)
        }
    }

    fn words_of<E>() -> u32 {
        const { assert!(mem::align_of::<E>() <= mem::align_of::<Word>()) };
        mem::size_of::<E>().div_ceil(mem::size_of::<Word>()) as u32
    }

    unsafe fn drop_as<E>(e: *mut Word) {
        // SAFETY: the caller passes an entry written as an `E` and not
        // dropped yet.
        unsafe { e.cast::<E>().drop_in_place() }
    }

    unsafe fn run_source(_: *mut Word, _: *mut u8) -> bool {
        true
    }

    unsafe fn run_entry<T, U, F, R>(e: *mut Word, input: *mut u8) -> bool
    where
        F: FnOnce(T) -> R,
        R: Into<Outcome<U>>,
    {
        // SAFETY: `e` was written as this `Entry<T, U, F>` by `add_callback`
        // on a `Local<T>`, so its input slot (the previous entry's output)
        // holds an `Option<Res<T>>`; the two do not overlap.
        let (entry, input) = unsafe {
            (
                &mut *e.cast::<Entry<T, U, F>>(),
                &mut *input.cast::<Option<Res<T>>>(),
            )
        };
        let f = entry.f.take();
        let out = match (input.take(), f) {
            (Some(Ok(v)), Some(f)) => match catch_unwind(AssertUnwindSafe(move || f(v).into())) {
                Ok(Outcome::Ready(r)) => r,
                // A Deferred that has fired gives its result at once (as
                // Twisted takes `result.result`); waiting on an unfired one
                // is what the sketch leaves out.
                Ok(Outcome::Chain(d)) => d.try_take().unwrap_or_else(|| {
                    Err(Failure::msg(
                        "the sketch does not wait on an unfired Deferred",
                    ))
                }),
                Err(payload) => Err(Failure::from_panic(payload)),
            },
            (Some(Err(e)), _) => Err(e),
            _ => Err(Failure::msg("result already taken")),
        };
        entry.out = Some(out);
        true
    }

    /// The state the handles share.
    struct State {
        /// The first and the last chunk (null before the first entry).
        head: *mut Word,
        tail: *mut Word,
        /// The last entry (its output is the result).
        last: *mut Word,
        fired: bool,
        running: bool,
        /// Where the run stands: the chunk and word of the next entry, and
        /// the output slot that entry takes its input from.
        chunk: *mut Word,
        at: usize,
        input: *mut u8,
    }

    impl State {
        /// Makes room for an `E` at the end of the arena and has `fill`
        /// write it there field by field (an `E` built on the stack and
        /// copied in stalls on the copy: a wide load over narrower stores).
        ///
        /// # Safety
        ///
        /// `fill` must initialise every field of the `E` it is given.
        #[inline(always)]
        unsafe fn push_with<E>(&mut self, fill: impl FnOnce(*mut E)) {
            let words = words_of::<E>();
            // SAFETY: `tail` is null or the last chunk, whose header says how
            // much of it is in use; a new chunk is linked before use.
            unsafe {
                if self.tail.is_null() || {
                    let c = &*self.tail.cast::<Chunk>();
                    c.used + words > c.cap
                } {
                    self.grow(words);
                }
                let c = &mut *self.tail.cast::<Chunk>();
                let e = self.tail.add(c.used as usize);
                c.used += words;
                fill(e.cast::<E>());
                self.last = e;
            }
        }

        /// Links a new chunk with room for `words` (twice the last one).
        #[cold]
        fn grow(&mut self, words: u32) {
            let cap = if self.tail.is_null() {
                FIRST_CHUNK
            } else {
                // SAFETY: `tail` is a chunk.
                unsafe { (*self.tail.cast::<Chunk>()).cap as usize * 2 }
            }
            .max(words as usize + 1);
            let layout = Layout::array::<Word>(cap).expect("chunk size");
            // SAFETY: `layout` is not zero-sized.
            let chunk = unsafe { alloc::alloc(layout) }.cast::<Word>();
            if chunk.is_null() {
                alloc::handle_alloc_error(layout);
            }
            // SAFETY: `chunk` is a fresh block of `cap` words; `tail`, if
            // any, is the last chunk.
            unsafe {
                chunk.cast::<Chunk>().write(Chunk {
                    next: ptr::null_mut(),
                    used: 1,
                    cap: cap as u32,
                });
                if self.tail.is_null() {
                    self.head = chunk;
                } else {
                    (*self.tail.cast::<Chunk>()).next = chunk;
                }
            }
            self.tail = chunk;
        }
    }

    impl Drop for State {
        fn drop(&mut self) {
            let mut chunk = self.head;
            while !chunk.is_null() {
                // SAFETY: `chunk` is a chunk of this arena: its entries,
                // each starting with a `Header` and `words` long, fill it to
                // `used`; each is dropped once, then the chunk is freed with
                // the layout it was allocated with.
                unsafe {
                    let Chunk { next, used, cap } = chunk.cast::<Chunk>().read();
                    let mut at = 1;
                    while at < used as usize {
                        let e = chunk.add(at);
                        let h = &*e.cast::<Header>();
                        let (drop, words) = (h.drop, h.words);
                        at += words as usize;
                        drop(e);
                    }
                    alloc::dealloc(
                        chunk.cast(),
                        Layout::array::<Word>(cap as usize).expect("chunk size"),
                    );
                    chunk = next;
                }
            }
        }
    }

    /// The handle: typed by the result its chain ends with.
    pub struct Local<T> {
        state: Rc<RefCell<State>>,
        ty: PhantomData<fn() -> T>,
    }

    /// The firing end, typed by the first value.
    pub struct Fire<T> {
        state: Rc<RefCell<State>>,
        ty: PhantomData<fn(T)>,
    }

    pub fn new<T>() -> (Local<T>, Fire<T>) {
        let mut st = State {
            head: ptr::null_mut(),
            tail: ptr::null_mut(),
            last: ptr::null_mut(),
            fired: false,
            running: false,
            chunk: ptr::null_mut(),
            at: 0,
            input: ptr::null_mut(),
        };
        // SAFETY: both fields are written.
        unsafe {
            st.push_with(|e: *mut Source<T>| {
                (&raw mut (*e).header).write(Header::of::<Source<T>>(
                    run_source,
                    offset_of!(Source<T>, out),
                ));
                (&raw mut (*e).out).write(None);
            })
        };
        let state = Rc::new(RefCell::new(st));
        (
            Local {
                state: state.clone(),
                ty: PhantomData,
            },
            Fire {
                state,
                ty: PhantomData,
            },
        )
    }

    impl<T> Local<T> {
        #[inline]
        pub fn add_callback<U, F, R>(self, f: F) -> Local<U>
        where
            F: FnOnce(T) -> R,
            R: Into<Outcome<U>>,
        {
            // SAFETY: the three fields are written (`input` is zero-sized).
            unsafe {
                self.state.borrow_mut().push_with(|e: *mut Entry<T, U, F>| {
                    (&raw mut (*e).header).write(Header::of::<Entry<T, U, F>>(
                        run_entry::<T, U, F, R>,
                        offset_of!(Entry<T, U, F>, out),
                    ));
                    (&raw mut (*e).f).write(Some(f));
                    (&raw mut (*e).out).write(None);
                })
            };
            // Added after the fire: it runs now (Twisted's order).
            let run_now = {
                let st = self.state.borrow();
                st.fired && !st.running
            };
            if run_now {
                run(&self.state);
            }
            Local {
                state: self.state,
                ty: PhantomData,
            }
        }

        /// The result, if the chain has run.
        pub fn try_take(&self) -> Option<Res<T>> {
            let st = self.state.borrow();
            if !st.fired || st.running {
                return None;
            }
            // SAFETY: `last` is the last entry; its output slot holds an
            // `Option<Res<T>>`: this handle was returned by the
            // `add_callback` (or `new`) that pushed it.
            unsafe {
                let h = &*st.last.cast::<Header>();
                let out = st.last.cast::<u8>().add(h.out as usize);
                (*out.cast::<Option<Res<T>>>()).take()
            }
        }
    }

    impl<T> Fire<T> {
        /// Fires: stores the value and runs every callback in order.
        pub fn callback(self, v: T) {
            {
                let mut st = self.state.borrow_mut();
                st.fired = true;
                // SAFETY: the arena's first entry is this `Source<T>`.
                unsafe {
                    let source = st.head.add(1);
                    (*source.cast::<Source<T>>()).out = Some(Ok(v));
                    let h = &*source.cast::<Header>();
                    st.input = source.cast::<u8>().add(h.out as usize);
                    (st.chunk, st.at) = (st.head, 1 + h.words as usize);
                }
            }
            run(&self.state);
        }
    }

    /// Runs the entries from the cursor to the end of the arena.
    fn run(state: &RefCell<State>) {
        let (mut chunk, mut at, mut input) = {
            let mut st = state.borrow_mut();
            st.running = true;
            (st.chunk, st.at, st.input)
        };
        // SAFETY: the cursor is an entry boundary in a chunk of this arena
        // (or its end), and `input` the output slot of the entry before it.
        // Chunks never move; a callback that adds to this Deferred appends
        // behind the cursor, which reads each chunk's `used` and `next`
        // afresh. Each entry's input slot is of the type it takes (the
        // handles' types guarantee it).
        unsafe {
            loop {
                let c = &*chunk.cast::<Chunk>();
                if at >= c.used as usize {
                    if c.next.is_null() {
                        break;
                    }
                    (chunk, at) = (c.next, 1);
                    continue;
                }
                let e = chunk.add(at);
                let h = &*e.cast::<Header>();
                let (f, words, out) = (h.run, h.words, h.out);
                at += words as usize;
                let go_on = f(e, input);
                input = e.cast::<u8>().add(out as usize);
                if !go_on {
                    break;
                }
            }
        }
        let mut st = state.borrow_mut();
        (st.chunk, st.at, st.input) = (chunk, at, input);
        st.running = false;
    }
}

/// The `local_erased` model: the chain rows' workload on `local`.
#[inline(always)]
fn local_erased(n: u64) -> u64 {
    let (d, r) = local::new::<u64>();
    let mut d = d;
    for k in 0..n {
        let k = black_box(k);
        d = d.add_callback(move |v: u64| Ok::<_, tokio_deferred::Failure>(v.wrapping_add(k)));
    }
    r.callback(black_box(0));
    d.try_take().unwrap().unwrap()
}

/// What `local_erased` keeps of a Deferred, checked before it is timed:
/// the type changes along the chain, a failure passes the callbacks by, a
/// panic becomes a failure, and a chain that is never fired drops cleanly.
fn local_checks() {
    use tokio_deferred::Failure;
    let (d, r) = local::new::<u64>();
    let d = d
        .add_callback(|v: u64| Ok::<_, Failure>(format!("{v}!")))
        .add_callback(|s: String| Ok::<_, Failure>(s.len()));
    r.callback(41);
    assert_eq!(d.try_take().unwrap().unwrap(), 3);

    let (d, r) = local::new::<u64>();
    let d = d
        .add_callback(|_: u64| Err::<u64, _>(Failure::msg("first")))
        .add_callback(|_: u64| -> Result<u64, Failure> { unreachable!("skipped on failure") });
    r.callback(1);
    assert_eq!(d.try_take().unwrap().unwrap_err().to_string(), "first");

    let (d, r) = local::new::<u64>();
    let d = d.add_callback(|_: u64| -> Result<u64, Failure> { panic!("boom") });
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    r.callback(1);
    std::panic::set_hook(hook);
    assert!(d.try_take().unwrap().unwrap_err().is_panic());

    // Added after the fire: runs at once. A callback returning a fired
    // Deferred continues with its result.
    let (inner, fire_inner) = local::new::<u64>();
    fire_inner.callback(5);
    let (d, r) = local::new::<u64>();
    r.callback(1);
    let d = d
        .add_callback(move |v: u64| {
            local::Outcome::Chain(inner.add_callback(move |w: u64| Ok::<_, Failure>(v * 10 + w)))
        })
        .add_callback(|v: u64| Ok::<_, Failure>(v + 1));
    assert_eq!(d.try_take().unwrap().unwrap(), 16);

    let (d, _r) = local::new::<String>();
    let owned = String::from("dropped, not run");
    drop(d.add_callback(move |s: String| Ok::<_, Failure>(s + &owned)));
}

fn chain_floor(c: &mut criterion::Criterion) {
    local_checks();
    for n in [10u64, 100] {
        // Every model computes what the workload computes.
        let expected = common::boxed_closures(n);
        for model in [
            intrusive_locked,
            intrusive_unlocked,
            vec_locked,
            vec_unlocked,
            intrusive_spin,
            inline_locked,
            inline_spin,
            inline_unlocked,
            local_erased,
        ] {
            assert_eq!(model(n), expected);
        }
        assert_eq!(common::callback_chain(n), expected);

        let mut g = c.benchmark_group(format!("chain_floor_{n}"));
        g.throughput(Throughput::Elements(n));
        g.bench_function(ANCHOR, |b| b.iter(|| black_box(common::boxed_closures(n))));
        g.bench_function(OURS, |b| b.iter(|| black_box(common::callback_chain(n))));
        g.bench_function("intrusive_locked", |b| {
            b.iter(|| black_box(intrusive_locked(n)))
        });
        g.bench_function("intrusive_unlocked", |b| {
            b.iter(|| black_box(intrusive_unlocked(n)))
        });
        g.bench_function("vec_locked", |b| b.iter(|| black_box(vec_locked(n))));
        g.bench_function("vec_unlocked", |b| b.iter(|| black_box(vec_unlocked(n))));
        g.bench_function("inline_locked", |b| b.iter(|| black_box(inline_locked(n))));
        g.bench_function("intrusive_spin", |b| {
            b.iter(|| black_box(intrusive_spin(n)))
        });
        g.bench_function("inline_spin", |b| b.iter(|| black_box(inline_spin(n))));
        g.bench_function("inline_unlocked", |b| {
            b.iter(|| black_box(inline_unlocked(n)))
        });
        g.bench_function("local_erased", |b| b.iter(|| black_box(local_erased(n))));
        g.bench_function("local_deferred", |b| {
            b.iter(|| black_box(common::local_callback_chain(n)))
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = chain_floor
}
criterion_main!(benches);
