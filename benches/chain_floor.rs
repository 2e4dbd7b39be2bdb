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

fn chain_floor(c: &mut criterion::Criterion) {
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
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = chain_floor
}
criterion_main!(benches);
