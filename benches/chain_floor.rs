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
//!   type live without a box each in one growing arena, type-erased
//!   (`unsafe`), doing a callback's core work (a typed `Result<T, Failure>`
//!   handed from slot to slot, failures passed by, panics caught, a
//!   retyped handle returned). Checked by `local_checks` before it is timed.
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
/// library type: it runs the chain rows' workload only (callbacks added
/// before the fire, none added during the run, the result taken once).
///
/// It does what a Deferred does for each `add_callback` and for each callback it runs, and
/// only that: `Rc<RefCell<_>>` state with no lock; each callback written
/// into one growing arena with a type-erased header (run and drop
/// functions), beside its own output slot; the run hands a
/// `Result<T, Failure>` from one slot to the next through the erased
/// pointers, passes a failure by without calling the callback, and turns a
/// panic into a failure; the returned handle is retyped (`Local<U>`).
#[allow(unsafe_code)]
mod local {
    use std::cell::RefCell;
    use std::marker::PhantomData;
    use std::mem::{self, offset_of};
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::rc::Rc;

    use tokio_deferred::Failure;

    type Res<T> = Result<T, Failure>;

    /// The arena's unit: every entry starts on a 16-byte boundary.
    #[derive(Clone, Copy)]
    #[repr(C, align(16))]
    struct Word([u8; 16]);

    /// The erased start of every entry.
    #[repr(C)]
    struct Header {
        /// Runs the entry: takes the input from the slot given, stores the
        /// output in the entry's own slot.
        run: unsafe fn(*mut Word, *mut u8),
        /// Drops the entry in place.
        drop: unsafe fn(*mut Word),
        /// The entry's length in words.
        words: usize,
        /// The byte offset of the entry's output slot from its start.
        out: usize,
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

    unsafe fn drop_as<E>(e: *mut Word) {
        // SAFETY: the caller passes an entry written as an `E` and not
        // dropped yet.
        unsafe { e.cast::<E>().drop_in_place() }
    }

    unsafe fn run_source(_: *mut Word, _: *mut u8) {}

    unsafe fn run_entry<T, U, F>(e: *mut Word, input: *mut u8)
    where
        F: FnOnce(T) -> Res<U>,
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
        entry.out = Some(match (input.take(), f) {
            (Some(Ok(v)), Some(f)) => match catch_unwind(AssertUnwindSafe(move || f(v))) {
                Ok(r) => r,
                Err(payload) => Err(Failure::from_panic(payload)),
            },
            (Some(Err(e)), _) => Err(e),
            _ => Err(Failure::msg("result already taken")),
        });
    }

    /// The state the handles share.
    struct State {
        arena: Vec<Word>,
        /// Word offset of the last entry (its output is the result).
        last: usize,
        fired: bool,
    }

    impl State {
        /// Makes room for an `E` at the end of the arena and has `fill`
        /// write it there field by field (an `E` built on the stack and
        /// copied in stalls on the copy: a wide load over narrower stores).
        ///
        /// # Safety
        ///
        /// `fill` must initialise every field of the `E` it is given.
        unsafe fn push_with<E>(&mut self, fill: impl FnOnce(*mut E)) {
            const { assert!(mem::align_of::<E>() <= mem::align_of::<Word>()) };
            let words = mem::size_of::<E>().div_ceil(mem::size_of::<Word>());
            let at = self.arena.len();
            // The first block holds 512 bytes: a few callbacks before the
            // first regrowth, then doubling.
            self.arena.reserve(words.max(at).max(32));
            // SAFETY: `reserve` made room for `words` words after `len`,
            // aligned for `E` (asserted above); `fill` writes the whole entry
            // (the caller's promise) before `len` covers it, and `Word` is
            // plain bytes.
            unsafe {
                fill(self.arena.as_mut_ptr().add(at).cast::<E>());
                self.arena.set_len(at + words);
            }
            self.last = at;
        }

        fn header(&mut self, at: usize) -> (*mut Word, &Header) {
            let e = self.arena[at..].as_mut_ptr();
            // SAFETY: every entry starts with a `Header` (`repr(C)`).
            (e, unsafe { &*e.cast::<Header>() })
        }
    }

    impl Drop for State {
        fn drop(&mut self) {
            let (base, len) = (self.arena.as_mut_ptr(), self.arena.len());
            let mut at = 0;
            while at < len {
                // SAFETY: `at` starts an entry (each `words` long), which
                // starts with a `Header`; each entry is dropped once, here.
                unsafe {
                    let e = base.add(at);
                    let h = &*e.cast::<Header>();
                    let (drop, words) = (h.drop, h.words);
                    at += words;
                    drop(e);
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
            arena: Vec::new(),
            last: 0,
            fired: false,
        };
        // SAFETY: both fields are written.
        unsafe {
            st.push_with(|e: *mut Source<T>| {
                (&raw mut (*e).header).write(Header {
                    run: run_source,
                    drop: drop_as::<Source<T>>,
                    words: mem::size_of::<Source<T>>().div_ceil(mem::size_of::<Word>()),
                    out: offset_of!(Source<T>, out),
                });
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
        pub fn add_callback<U, F>(self, f: F) -> Local<U>
        where
            F: FnOnce(T) -> Res<U>,
        {
            // SAFETY: the three fields are written (`input` is zero-sized).
            unsafe {
                self.state.borrow_mut().push_with(|e: *mut Entry<T, U, F>| {
                    (&raw mut (*e).header).write(Header {
                        run: run_entry::<T, U, F>,
                        drop: drop_as::<Entry<T, U, F>>,
                        words: mem::size_of::<Entry<T, U, F>>().div_ceil(mem::size_of::<Word>()),
                        out: offset_of!(Entry<T, U, F>, out),
                    });
                    (&raw mut (*e).f).write(Some(f));
                    (&raw mut (*e).out).write(None);
                })
            };
            Local {
                state: self.state,
                ty: PhantomData,
            }
        }

        /// The result, if the chain has run.
        pub fn try_take(&self) -> Option<Res<T>> {
            let mut st = self.state.borrow_mut();
            if !st.fired {
                return None;
            }
            let last = st.last;
            let (e, h) = st.header(last);
            let out = h.out;
            // SAFETY: the last entry's output slot holds an
            // `Option<Res<T>>`: this handle was returned by the `add_callback`
            // (or `new`) that pushed it.
            unsafe { (*e.cast::<u8>().add(out).cast::<Option<Res<T>>>()).take() }
        }
    }

    impl<T> Fire<T> {
        /// Fires: stores the value and runs every callback in order.
        pub fn callback(self, v: T) {
            // The arena leaves the state while it runs (a callback may reach
            // the state again); every pointer below comes from `base`, taken
            // once.
            let mut arena = mem::take(&mut self.state.borrow_mut().arena);
            let (base, len) = (arena.as_mut_ptr(), arena.len());
            // SAFETY: the first entry is this `Source<T>`, and every entry
            // starts with a `Header`; its fields are copied out before the
            // entry is run (which reborrows it whole).
            let (mut words, mut out) = unsafe {
                (*base.cast::<Source<T>>()).out = Some(Ok(v));
                let h = &*base.cast::<Header>();
                (h.words, h.out)
            };
            let (mut at, mut prev) = (0, base);
            while at + words < len {
                at += words;
                // SAFETY: `at` is the start of the next entry (the previous
                // one's length in words); `prev` plus `out` is the previous
                // entry's output slot, of the type this entry takes. The
                // arena does not move or change length meanwhile.
                unsafe {
                    let e = base.add(at);
                    let input = prev.cast::<u8>().add(out);
                    let h = &*e.cast::<Header>();
                    let run = h.run;
                    (words, out) = (h.words, h.out);
                    run(e, input);
                    prev = e;
                }
            }
            let mut st = self.state.borrow_mut();
            st.arena = arena;
            st.last = at;
            st.fired = true;
        }
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
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = chain_floor
}
criterion_main!(benches);
