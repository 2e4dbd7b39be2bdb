//! The shared state of a Deferred: its result, its queued links, its
//! canceller, its flags, and every transition between its states.
//!
//! See `DESIGN.md` for the model. In short:
//!
//! * A Deferred's state lives in one `Arc<Inner<T0>>`, where `T0` is the type
//!   it was created with. Handles of later types (`Deferred<U>` returned by
//!   `add_callback`) hold the same allocation as `Arc<dyn Core>`.
//! * One mutex per Deferred guards the state. It is never held while user
//!   code runs: the runner takes a link out, releases the lock, runs it, and
//!   re-takes the lock for the next one. A waker is woken, and a failure
//!   reported, after the lock is released.

use std::any::Any;
use std::cell::Cell;
use std::mem;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::{Poll, Waker};

use crate::deferred::debug::{self, report_unhandled};
use crate::deferred::link::{
    ContinueLink, ContinueSlot, LinkBox, Node, Res, ResultState, Step, count, reverse, take_from,
};
use crate::deferred::runner::{Core, Stop, drive};
use crate::error::{AlreadyCalledError, CancelledError, ResultTakenError};
use crate::loom::{AtomicBool, AtomicU32, Mutex, MutexGuard};
use crate::{Failure, Resolver};

/// A point-in-time view of a Deferred's state.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) called: bool,
    pub(crate) running: bool,
    pub(crate) paused: u32,
    pub(crate) waiting: bool,
    pub(crate) callbacks: usize,
    pub(crate) result: ResultState,
    pub(crate) taken: bool,
}

/// A canceller that is asked every time `cancel()` is called on an unfired
/// Deferred (the coroutine bridge: it forwards to the awaited Deferred).
pub(crate) trait CooperativeCancel: Send + Sync {
    /// Returns `true` when the cancellation was forwarded and the Deferred
    /// must not fail now, `false` to fail it with `CancelledError`.
    fn cancel(&self) -> bool;
}

/// How a canceller is handed to [`Inner::new`].
pub(crate) enum Canceller<T: Send + 'static> {
    None,
    /// Twisted's canceller: runs at most once, with a Resolver.
    Once(Box<dyn CancelFn<T>>),
    /// Asked on every `cancel()` until the Deferred fires.
    Cooperative(Arc<dyn CooperativeCancel>),
}

/// A canceller as stored in the state: one thin-enough box, whatever kind
/// it is (16 bytes in [`Rest::Unfired`]).
pub(crate) trait CancelFn<T: Send + 'static>: Send {
    /// Runs the canceller. `keep` receives a Resolver the caller keeps alive
    /// until the default `CancelledError` is applied. `Some(self)`: the
    /// cancellation was forwarded; ask again on the next `cancel()`.
    fn cancel(
        self: Box<Self>,
        inner: &Arc<Inner<T>>,
        keep: &mut Option<Resolver<T>>,
    ) -> Option<Box<dyn CancelFn<T>>>;
}

impl<T, F> CancelFn<T> for F
where
    T: Send + 'static,
    F: FnOnce(&Resolver<T>) + Send,
{
    fn cancel(
        self: Box<Self>,
        inner: &Arc<Inner<T>>,
        keep: &mut Option<Resolver<T>>,
    ) -> Option<Box<dyn CancelFn<T>>> {
        let resolver = keep.insert(Resolver::from_inner(inner.clone()));
        (*self)(resolver);
        None
    }
}

struct Cooperative(Arc<dyn CooperativeCancel>);

impl<T: Send + 'static> CancelFn<T> for Cooperative {
    fn cancel(
        self: Box<Self>,
        inner: &Arc<Inner<T>>,
        keep: &mut Option<Resolver<T>>,
    ) -> Option<Box<dyn CancelFn<T>>> {
        // As for a Twisted canceller: the abort may drop the task, and the
        // Resolver it holds, on a worker before the default CancelledError
        // is applied here.
        keep.get_or_insert_with(|| Resolver::from_inner(inner.clone()));
        if self.0.cancel() { Some(self) } else { None }
    }
}

/// Where a Deferred's result is.
enum Rest<T: Send + 'static> {
    /// Not fired yet; the canceller, if any.
    Unfired(Option<Box<dyn CancelFn<T>>>),
    /// The result the Deferred was fired with, before any link ran.
    Source(Res<T>),
    /// The result is in this link's output slot. The link's `next` holds the
    /// links still to run before those of the inbox (the *outbox*): the
    /// runner takes every queued link at once and puts back what it did not
    /// run here, so the state needs no second list head.
    Holder(LinkBox),
    /// A callback returned this Deferred and the chain waits on it; the
    /// result and the outbox travel with the continuation queued in it.
    Waiting(Weak<dyn Core>),
    /// The result was taken (awaited, handed over, or being run).
    Taken,
}

/// The part of a Deferred's state guarded by its mutex: everything but
/// the two fields read without it (see [`Inner`]).
struct State<T: Send + 'static> {
    /// Links added and not yet taken by a runner, newest first.
    inbox: Option<LinkBox>,
    rest: Rest<T>,
    /// The task awaiting the result; taken and woken after the lock is
    /// released.
    waker: Option<Waker>,
    created: &'static Location<'static>,
    /// The bits `RUNNING`, `SUPPRESS`, `NO_CONSUMER`, `ARMED`,
    /// `CANCELLING` and `TRACED` (below).
    flags: u8,
    /// Twisted's `paused`: pauses not yet matched by an unpause.
    paused: u32,
}

impl<T: Send + 'static> State<T> {
    #[inline]
    fn has(&self, bits: u8) -> bool {
        self.flags & bits != 0
    }

    #[inline]
    fn set(&mut self, bits: u8) {
        self.flags |= bits;
    }

    #[inline]
    fn clear(&mut self, bits: u8) {
        self.flags &= !bits;
    }

    /// Queues a link (the inbox is newest first).
    #[inline]
    fn push(&mut self, mut link: LinkBox) {
        link.next = self.inbox.take();
        self.inbox = Some(link);
    }

    #[inline]
    fn outbox_empty(&self) -> bool {
        match &self.rest {
            Rest::Holder(h) => h.next.is_none(),
            _ => true,
        }
    }

    #[inline]
    fn links_empty(&self) -> bool {
        self.inbox.is_none() && self.outbox_empty()
    }

    #[inline]
    fn waiting(&self) -> bool {
        matches!(self.rest, Rest::Waiting(_))
    }

    /// Stores the waker of a task waiting for the result.
    #[inline]
    fn register(&mut self, waker: Option<&Waker>) {
        if let Some(waker) = waker {
            match &self.waker {
                Some(old) if old.will_wake(waker) => {}
                _ => self.waker = Some(waker.clone()),
            }
        }
    }

    /// Feeds the current result to `sink`; returns the emptied holder so it
    /// can be dropped after the lock is released. The outbox must be empty.
    #[inline]
    fn take_rest_into(&mut self, sink: &mut dyn FnMut(&mut dyn Any)) -> Option<LinkBox> {
        match mem::replace(&mut self.rest, Rest::Taken) {
            Rest::Source(r) => {
                let mut slot = Some(r);
                sink(&mut slot);
                if let Some(r) = slot {
                    // Not taken (a slot of another type): left at rest.
                    self.rest = Rest::Source(r);
                }
                None
            }
            Rest::Holder(mut holder) => {
                sink(holder.output());
                Some(holder)
            }
            other => {
                self.rest = other;
                sink(&mut ());
                None
            }
        }
    }

    fn result_state(&self) -> ResultState {
        match &self.rest {
            Rest::Source(Ok(_)) => ResultState::Ok,
            Rest::Source(Err(f)) => ResultState::Err(f.clone()),
            Rest::Holder(h) => h.output_state(),
            _ => ResultState::Empty,
        }
    }

    fn result_is_err(&self) -> bool {
        match &self.rest {
            Rest::Source(r) => r.is_err(),
            Rest::Holder(h) => h.output_is_err(),
            _ => false,
        }
    }

    fn take_failure(&mut self) -> Option<Failure> {
        match &mut self.rest {
            Rest::Source(Err(_)) => match mem::replace(&mut self.rest, Rest::Taken) {
                Rest::Source(Err(f)) => Some(f),
                _ => None,
            },
            Rest::Holder(h) => h.take_failure(),
            _ => None,
        }
    }
}

/// What to do once the lock is released after finishing a run.
struct Finish {
    waker: Option<Waker>,
    unhandled: Option<Box<Unhandled>>,
}

impl Finish {
    #[inline]
    fn run(self) {
        if let Some(waker) = self.waker {
            wake(waker);
        }
        if let Some(unhandled) = self.unhandled {
            unhandled.report();
        }
    }
}

thread_local! {
    /// Tasks this thread has woken because a Deferred they awaited fired
    /// (wrapping). The timer driver reads it to let the tasks its calls
    /// woke run before it fires more.
    static WAKES: Cell<u32> = const { Cell::new(0) };
}

/// Wakes the task awaiting a Deferred, counting it in [`WAKES`].
#[inline]
fn wake(waker: Waker) {
    let _ = WAKES.try_with(|n| n.set(n.get().wrapping_add(1)));
    waker.wake();
}

/// How many tasks this thread has woken so far because a Deferred they
/// awaited fired (a wrapping count: compare two readings with
/// `wrapping_sub`).
#[inline]
pub(crate) fn wakes_on_this_thread() -> u32 {
    WAKES.try_with(Cell::get).unwrap_or(0)
}

/// A failure nobody will consume, with what its report says: collected
/// under the state's lock, reported after it is released.
struct Unhandled {
    failure: Failure,
    describe: Arc<str>,
    created: &'static Location<'static>,
    /// The debug side table's key, for the first-fire site.
    key: Option<usize>,
}

impl Unhandled {
    fn report(self) {
        let fired = debug::fired_site(self.key);
        report_unhandled(&self.failure, self.created, fired, &self.describe);
    }
}

// Bits of `State::flags`. Whether the Deferred has fired is not one of
// them: it is `Inner::called`, which is also read without the lock.
/// Someone holds the runner token.
const RUNNING: u8 = 1 << 0;
/// Swallow one late fire (after a canceller-less `cancel()`).
const SUPPRESS: u8 = 1 << 1;
/// The handle (the consumer of the result) went away.
const NO_CONSUMER: u8 = 1 << 2;
/// Twisted's armed `DebugInfo.failResult`: the result is a failure that was
/// at rest at the end of a completed (unpaused) run. When the state goes
/// away without its handle having reported (the handle moved into a
/// chain), only an armed failure is reported, as in Twisted.
const ARMED: u8 = 1 << 3;
/// A `cancel()` took the canceller and is running it.
const CANCELLING: u8 = 1 << 4;
/// Created with debugging on: has a record in the debug side table.
const TRACED: u8 = 1 << 5;

/// A Deferred's shared state, typed by the type it was created with: one
/// allocation (the `Arc`'s) holding the mutex with its [`State`], and the
/// two fields that are read without the lock.
pub(crate) struct Inner<T: Send + 'static> {
    state: Mutex<State<T>>,
    /// Live Resolvers while unfired. Changed without the lock (a clone or
    /// a drop of a Resolver); the drop that takes it to zero fails the
    /// Deferred with `ResolverDroppedError`, after checking `called` again
    /// under the lock. Once fired it no longer matters and is not kept.
    resolvers: AtomicU32,
    /// Twisted's `called`: set, under the lock, when the Deferred fires,
    /// and never cleared. Read without the lock by `is_called` and by a
    /// Resolver's drop.
    called: AtomicBool,
}

impl<T: Send + 'static> Inner<T> {
    #[inline]
    fn build(
        rest: Rest<T>,
        called: bool,
        flags: u8,
        resolvers: u32,
        created: &'static Location<'static>,
        traced: bool,
    ) -> Arc<Self> {
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                inbox: None,
                rest,
                waker: None,
                created,
                flags: if traced { flags | TRACED } else { flags },
                paused: 0,
            }),
            resolvers: AtomicU32::new(resolvers),
            called: AtomicBool::new(called),
        });
        if traced {
            let key = inner.key();
            debug::trace_created(key);
            if called {
                debug::trace_fired(key, created);
            }
        }
        inner
    }

    #[inline]
    pub(crate) fn new(canceller: Canceller<T>, created: &'static Location<'static>) -> Arc<Self> {
        let canceller: Option<Box<dyn CancelFn<T>>> = match canceller {
            Canceller::None => None,
            Canceller::Once(f) => Some(f),
            Canceller::Cooperative(c) => Some(Box::new(Cooperative(c))),
        };
        Self::build(
            Rest::Unfired(canceller),
            false,
            0,
            1,
            created,
            debug::is_debugging(),
        )
    }

    /// A Deferred that already has `result` (Twisted's `succeed`/`fail`).
    pub(crate) fn new_fired(result: Res<T>, created: &'static Location<'static>) -> Arc<Self> {
        let flags = if result.is_err() { ARMED } else { 0 };
        Self::build(
            Rest::Source(result),
            true,
            flags,
            0,
            created,
            debug::is_debugging(),
        )
    }

    /// `new_fired` for an inline ready Deferred created while debugging was
    /// off, moving to a shared state later: no debug record, whatever
    /// `is_debugging` says now (as the shared state would have been).
    pub(crate) fn new_fired_untraced(
        result: Res<T>,
        created: &'static Location<'static>,
    ) -> Arc<Self> {
        let flags = if result.is_err() { ARMED } else { 0 };
        Self::build(Rest::Source(result), true, flags, 0, created, false)
    }

    /// An already-fired Deferred waiting on `inner` (what a callback
    /// returning `inner` leaves behind), made directly in that state: used
    /// when the callback of an inline ready Deferred returns an unfinished
    /// Deferred. Two allocations (this state and one [`ContinueSlot`])
    /// where a fired state plus a stand-in callback link plus a
    /// `ContinueLink` took three. Untraced, as the inline Deferred was.
    pub(crate) fn waiting_on(
        inner: Arc<dyn Core>,
        created: &'static Location<'static>,
    ) -> Arc<dyn Core> {
        let outer = Self::build(
            Rest::Waiting(Arc::downgrade(&inner)),
            true,
            0,
            0,
            created,
            false,
        );
        // Two references to the outer state: the slot's and the returned
        // one (moved, not cloned: one atomic increment in all).
        let slot = Node::boxed(ContinueSlot::<T> {
            outer: Some(outer.clone()),
            output: None,
        });
        if let Some(mut slot) = inner.continue_with(slot) {
            // `inner` had its final result (it is in the slot now): no
            // waiting after all; drop the slot's reference to the outer
            // (it would be a cycle) and end as a finished run would.
            slot.unlink();
            let mut st = outer.lock();
            if slot.output_is_err() {
                st.set(ARMED);
            }
            st.rest = Rest::Holder(slot);
        }
        outer
    }

    /// The key of this state in the debug side table.
    fn key(&self) -> usize {
        std::ptr::from_ref(self).addr()
    }

    fn traced_key(&self, st: &State<T>) -> Option<usize> {
        st.has(TRACED).then(|| self.key())
    }

    #[inline]
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock()
    }

    /// Whether the Deferred has fired. Under the lock (where `called`
    /// cannot change behind the caller's back).
    #[inline]
    fn called(&self) -> bool {
        self.called.load(Ordering::Relaxed)
    }

    /// Marks the Deferred fired. Under the lock.
    #[inline]
    fn set_called(&self) {
        self.called.store(true, Ordering::Release);
    }

    /// Fired, not running, not paused, not waiting, nothing queued. Under the lock.
    #[inline]
    fn finished(&self, st: &State<T>) -> bool {
        self.can_run(st) && st.links_empty()
    }

    /// Fired, not running, not paused, not waiting. Under the lock.
    #[inline]
    fn can_run(&self, st: &State<T>) -> bool {
        self.called() && !st.has(RUNNING) && st.paused == 0 && !st.waiting()
    }

    /// Takes the runner token if the chain can run now. Under the lock.
    #[inline]
    fn claim(&self, st: &mut State<T>) -> bool {
        let run = self.can_run(st);
        if run {
            st.set(RUNNING);
        }
        run
    }

    /// If this Deferred has its final result, moves it into `link`'s output
    /// and gives the link back; otherwise queues `continuation(link)`.
    fn steal_or_queue(
        &self,
        mut link: LinkBox,
        continuation: impl FnOnce(LinkBox) -> LinkBox,
    ) -> Option<LinkBox> {
        let mut st = self.lock();
        if self.finished(&st) {
            st.clear(ARMED);
            let emptied = st.take_rest_into(&mut |src| link.refill(src));
            drop(st);
            drop(emptied);
            return Some(link);
        }
        st.push(continuation(link));
        None
    }

    pub(crate) fn created_at(&self) -> &'static Location<'static> {
        self.lock().created
    }

    #[inline]
    pub(crate) fn is_called(&self) -> bool {
        self.called.load(Ordering::Acquire)
    }

    fn describe(&self, st: &State<T>) -> Arc<str> {
        debug::describe(st.created, self.traced_key(st))
    }

    /// The report of `failure`, which nobody will consume. Under the lock.
    fn unhandled(&self, st: &State<T>, failure: Failure) -> Unhandled {
        Unhandled {
            failure,
            describe: self.describe(st),
            created: st.created,
            key: self.traced_key(st),
        }
    }

    /// Fires the Deferred. `Ok(true)`: the caller took the runner token and
    /// must call [`run_chain`](crate::deferred::runner::run_chain). With `honour_suppress`, a fire after a
    /// canceller-less `cancel()` is swallowed once, as in Twisted.
    pub(crate) fn try_fire<V>(
        &self,
        value: V,
        convert: impl FnOnce(V) -> Res<T>,
        at: &'static Location<'static>,
        honour_suppress: bool,
    ) -> Result<bool, AlreadyCalledError<V>> {
        self.try_fire_locked(self.lock(), value, convert, at, honour_suppress)
    }

    /// `try_fire` with the lock already held (released on return).
    fn try_fire_locked<V>(
        &self,
        mut st: MutexGuard<'_, State<T>>,
        value: V,
        convert: impl FnOnce(V) -> Res<T>,
        at: &'static Location<'static>,
        honour_suppress: bool,
    ) -> Result<bool, AlreadyCalledError<V>> {
        if self.called() {
            if honour_suppress && st.has(SUPPRESS) {
                st.clear(SUPPRESS);
                return Ok(false);
            }
            let info = self.describe(&st);
            return Err(AlreadyCalledError::new(value, info));
        }
        Ok(self.fire_locked(st, convert(value), at))
    }

    /// Fires an unfired Deferred whose lock the caller holds; releases it.
    /// `true`: the caller took the runner token and must call [`run_chain`](crate::deferred::runner::run_chain).
    fn fire_locked(
        &self,
        mut st: MutexGuard<'_, State<T>>,
        value: Res<T>,
        at: &'static Location<'static>,
    ) -> bool {
        if st.has(TRACED) {
            debug::trace_fired(self.key(), at);
        }
        // The old rest holds the canceller: dropped after the unlock.
        let old = mem::replace(&mut st.rest, Rest::Source(value));
        self.set_called();
        let run = if st.paused > 0 {
            false
        } else if st.links_empty() {
            let finish = self.finish(&mut st);
            drop(st);
            finish.run();
            drop(old);
            return false;
        } else {
            st.set(RUNNING);
            true
        };
        drop(st);
        drop(old);
        run
    }

    /// Fires and runs the chain.
    #[inline]
    pub(crate) fn fire<V>(
        self: &Arc<Self>,
        value: V,
        convert: impl FnOnce(V) -> Res<T>,
        at: &'static Location<'static>,
    ) -> Result<(), AlreadyCalledError<V>> {
        // Fast path: store the result, wake the awaiting task.
        let st = self.lock();
        if self.idle(&st) {
            self.fire_idle(st, convert(value));
            return Ok(());
        }
        self.fire_slow(st, value, convert, at)
    }

    /// Fires the Deferred only if that runs nothing but the wake of the
    /// awaiting task (see [`Inner::idle`]); gives the result back
    /// otherwise. `defer_to_thread`'s worker fires with it, so that
    /// callbacks never run on the blocking thread.
    pub(crate) fn fire_if_idle(&self, result: Res<T>) -> Result<(), Res<T>> {
        let st = self.lock();
        if self.idle(&st) {
            self.fire_idle(st, result);
            Ok(())
        } else {
            Err(result)
        }
    }

    /// Whether a fire now would only store the result and wake the awaiting
    /// task: unfired, no canceller, nothing queued, not paused, not traced,
    /// a consumer (so no unhandled-failure report either). Under the lock.
    #[inline]
    fn idle(&self, st: &State<T>) -> bool {
        !self.called()
            && !st.has(TRACED | NO_CONSUMER)
            && st.inbox.is_none()
            && st.paused == 0
            && matches!(st.rest, Rest::Unfired(None))
    }

    /// The fire of an [`idle`](Inner::idle) Deferred: stores the result,
    /// releases the lock, wakes the awaiting task.
    #[inline]
    fn fire_idle(&self, mut st: MutexGuard<'_, State<T>>, result: Res<T>) {
        if result.is_err() {
            st.set(ARMED);
        }
        // The old rest is `Unfired(None)`, which owns nothing: forgetting
        // it skips the enum's drop glue.
        mem::forget(mem::replace(&mut st.rest, Rest::Source(result)));
        self.set_called();
        let waker = st.waker.take();
        drop(st);
        if let Some(waker) = waker {
            wake(waker);
        }
    }

    /// The rest of `fire`, with the lock it took (not taken twice).
    #[inline(never)]
    fn fire_slow<V>(
        self: &Arc<Self>,
        st: MutexGuard<'_, State<T>>,
        value: V,
        convert: impl FnOnce(V) -> Res<T>,
        at: &'static Location<'static>,
    ) -> Result<(), AlreadyCalledError<V>> {
        if self.try_fire_locked(st, value, convert, at, true)? {
            self.run_chain_here();
        }
        Ok(())
    }

    /// Fails the Deferred if it has not fired, ignoring it otherwise.
    fn fail_if_unfired(self: &Arc<Self>, failure: Failure, at: &'static Location<'static>) {
        if let Ok(true) = self.try_fire(failure, Err, at, false) {
            self.run_chain_here();
        }
    }

    /// `Core::poll_take` for a handle of the state's own type `T` (the result
    /// at rest is then a `T`): no erased sink, no downcast of the source.
    #[inline]
    pub(crate) fn poll_typed(&self, waker: Option<&Waker>) -> Poll<Res<T>> {
        let mut st = self.lock();
        if self.finished(&st) {
            st.clear(ARMED);
            return match mem::replace(&mut st.rest, Rest::Taken) {
                Rest::Source(r) => Poll::Ready(r),
                Rest::Holder(mut holder) => {
                    drop(st);
                    Poll::Ready(take_from::<T>(holder.output()))
                }
                other => {
                    st.rest = other;
                    Poll::Ready(Err(Failure::new(ResultTakenError {})))
                }
            };
        }
        st.register(waker);
        Poll::Pending
    }

    /// Counts one more Resolver.
    pub(crate) fn add_resolver(&self) {
        self.resolvers.fetch_add(1, Ordering::Relaxed);
    }

    /// One Resolver went away. Once fired, the count no longer matters, so
    /// it is not even decremented.
    #[inline]
    pub(crate) fn drop_resolver(self: &Arc<Self>) {
        if !self.is_called() && self.resolvers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.resolvers_gone(None);
        }
    }

    /// A Resolver that the library function `owner` made and holds is about
    /// to be dropped: if it is the last one of an unfired Deferred, fails
    /// the Deferred now, naming `owner` (the drop that follows is then a
    /// no-op).
    pub(crate) fn drop_last_resolver_as(self: &Arc<Self>, owner: &'static str) {
        if !self.is_called() && self.resolvers.load(Ordering::Acquire) == 1 {
            self.resolvers_gone(Some(owner));
        }
    }

    /// Installs the canceller of a Deferred made without one, if it has
    /// not fired (`Deferred::with_canceller_from`); else drops it.
    pub(crate) fn set_canceller(&self, canceller: Box<dyn CancelFn<T>>) {
        let mut st = self.lock();
        if let Rest::Unfired(slot @ None) = &mut st.rest {
            *slot = Some(canceller);
            return;
        }
        drop(st);
        drop(canceller);
    }

    /// Every Resolver was dropped.
    #[cold]
    fn resolvers_gone(self: &Arc<Self>, owner: Option<&'static str>) {
        let created = {
            let st = self.lock();
            if self.called() {
                return;
            }
            st.created
        };
        let failure = Failure::new(crate::error::ResolverDroppedError::new(created, owner));
        self.fail_if_unfired(failure, created);
    }

    /// Ends a run: releases the token and collects what to do outside the lock.
    fn finish(&self, st: &mut State<T>) -> Finish {
        st.clear(RUNNING | ARMED);
        let waker = if st.links_empty() {
            st.waker.take()
        } else {
            None
        };
        let unhandled = if st.has(NO_CONSUMER) {
            st.take_failure().map(|f| Box::new(self.unhandled(st, f)))
        } else {
            None
        };
        // A failure still at rest (not reported just now) is armed.
        if st.result_is_err() {
            st.set(ARMED);
        }
        Finish { waker, unhandled }
    }

    /// `run_chain` from this state, whose runner token the caller took,
    /// borrowing the caller's `Arc`.
    pub(crate) fn run_chain_here(self: &Arc<Self>) {
        drive(self.run_links_from(true, None));
    }

    /// `Core::run_links` on a borrowed handle: a caller that holds the
    /// state typed (a fire, a cancel) runs it without an `Arc` clone of
    /// its own.
    fn run_links_from(
        self: &Arc<Self>,
        mut check_pause: bool,
        mut resumed: Option<LinkBox>,
    ) -> Stop {
        'state: loop {
            // Take the current result and every queued link in one lock
            // section; the links then run without the lock (Twisted checks
            // `paused` when it starts or switches to a Deferred, not between
            // its callbacks: a callback that pauses its own Deferred does
            // not stop the callbacks already queued behind it).
            let mut st = self.lock();
            // `held`: the link whose output slot holds the current result;
            // `source`: the fired value before any link ran.
            let mut held: Option<LinkBox> = None;
            let mut source: Option<Res<T>> = None;
            let mut outbox: Option<LinkBox> = None;
            if let Some(mut h) = resumed.take() {
                // `resume` and the start of a run in one lock section.
                if st.has(RUNNING) || (check_pause && st.paused > 0) {
                    st.rest = Rest::Holder(h);
                    return Stop::Released;
                }
                st.set(RUNNING);
                // What was at rest (the wait's `Waiting`) is replaced.
                st.rest = Rest::Taken;
                outbox = h.next.take();
                held = Some(h);
            } else {
                if check_pause && st.paused > 0 {
                    st.clear(RUNNING);
                    return Stop::Released;
                }
                match mem::replace(&mut st.rest, Rest::Taken) {
                    Rest::Holder(mut h) => {
                        outbox = h.next.take();
                        held = Some(h);
                    }
                    Rest::Source(r) => source = Some(r),
                    Rest::Taken => {}
                    other @ (Rest::Unfired(_) | Rest::Waiting(_)) => {
                        // Not runnable (cannot happen with the token's rules).
                        st.rest = other;
                        st.clear(RUNNING);
                        return Stop::Released;
                    }
                }
            }
            st.clear(ARMED);
            if outbox.is_none() {
                outbox = reverse(st.inbox.take());
            }
            // The only link is a continuation (a level of a nested chain):
            // run it and end this run in this lock section, then hand the
            // result to the outer Deferred (one lock section less than
            // running it as any link and handing over after).
            match outbox.take() {
                Some(mut link) if link.next.is_none() && link.continues() => {
                    let outer = match &mut held {
                        Some(h) => link.continue_outer(h.output()),
                        None => link.continue_outer(&mut source),
                    };
                    if let Some(outer) = outer {
                        // Nothing at rest (`Taken`), no links left; the
                        // outer Deferred resumes with the link as its
                        // result holder.
                        let finish = self.finish(&mut st);
                        drop(st);
                        drop(held);
                        finish.run();
                        return Stop::Switch(outer, Some(link));
                    }
                    // Not reachable (`continues` means it resumes its
                    // outer); go on as after any finished link.
                    held = Some(link);
                }
                other => outbox = other,
            }
            drop(st);

            loop {
                let mut link = match outbox.take() {
                    Some(mut link) => {
                        outbox = link.next.take();
                        link
                    }
                    None => {
                        let mut st = self.lock();
                        match st.inbox.take() {
                            Some(inbox) => {
                                drop(st);
                                outbox = reverse(Some(inbox));
                                continue;
                            }
                            None => {
                                self.release(st, held, source);
                                return Stop::Released;
                            }
                        }
                    }
                };
                // The link moves its input out of the previous link's slot
                // (or the fired value) and runs; the previous link, now
                // empty, is freed after.
                let step = match held.take() {
                    Some(mut h) => link.run(h.output()),
                    None => link.run(&mut source),
                };
                match step {
                    Step::Done => held = Some(link),
                    Step::Wait(inner) => {
                        if std::ptr::addr_eq(Arc::as_ptr(&inner), Arc::as_ptr(self)) {
                            link.fail_output(Failure::new(crate::error::ChainedToSelfError {}));
                            held = Some(link);
                            continue;
                        }
                        // The links not run yet travel with the result.
                        link.next = outbox.take();
                        self.lock().rest = Rest::Waiting(Arc::downgrade(&inner));
                        let me: Arc<dyn Core> = self.clone();
                        match inner.steal_or_chain(link, me) {
                            Some(mut link) => {
                                self.lock().rest = Rest::Taken;
                                outbox = link.next.take();
                                held = Some(link);
                            }
                            None => {
                                let mut st = self.lock();
                                if st.waiting() {
                                    st.clear(RUNNING);
                                    return Stop::Released;
                                }
                                // The inner Deferred delivered while we
                                // chained: go on from the state.
                                drop(st);
                                check_pause = true;
                                continue 'state;
                            }
                        }
                    }
                    Step::Resume { outer, holder } => {
                        drop(link);
                        // This Deferred's result now belongs to `outer`,
                        // which resumes next (or, if it cannot run now,
                        // keeps it at rest and this run goes on).
                        return self.hand_over(None, outbox, outer, Some(holder));
                    }
                    Step::Fed(target) => {
                        return self.hand_over(Some(link), outbox, target, None);
                    }
                    Step::ResumeSelf(outer) => {
                        // The link holds this Deferred's result: it becomes
                        // `outer`'s result holder.
                        return self.hand_over(None, outbox, outer, Some(link));
                    }
                }
            }
        }
    }

    /// Stores `held` (and the links not run yet) as the result and either
    /// hands over to `next` (if this Deferred has nothing left to run) or
    /// keeps the token and nests; `resumed` goes to `next` (see `Stop`).
    fn hand_over(
        self: &Arc<Self>,
        held: Option<LinkBox>,
        outbox: Option<LinkBox>,
        next: Arc<dyn Core>,
        resumed: Option<LinkBox>,
    ) -> Stop {
        let held = match (held, outbox) {
            (Some(mut h), outbox) => {
                h.next = outbox;
                Some(h)
            }
            // No result (it went to the Deferred that waited on this one)
            // but links left: an empty holder carries them; they will see
            // the result as taken, as they would have.
            (None, Some(outbox)) => {
                let mut h = Node::boxed(ContinueLink {
                    holder: None,
                    outer: None,
                });
                h.next = Some(outbox);
                Some(h)
            }
            (None, None) => None,
        };
        let mut st = self.lock();
        if let Some(h) = held {
            st.rest = Rest::Holder(h);
        }
        if st.links_empty() {
            let finish = self.finish(&mut st);
            drop(st);
            finish.run();
            Stop::Switch(next, resumed)
        } else {
            drop(st);
            Stop::Nested(self.clone(), next, resumed)
        }
    }

    /// Ends a run with `held` (or the untouched `source`) at rest.
    fn release(
        &self,
        mut st: MutexGuard<'_, State<T>>,
        held: Option<LinkBox>,
        source: Option<Res<T>>,
    ) {
        st.rest = match (held, source) {
            (Some(h), _) => Rest::Holder(h),
            (None, Some(r)) => Rest::Source(r),
            (None, None) => Rest::Taken,
        };
        let finish = self.finish(&mut st);
        drop(st);
        finish.run();
    }
}

impl<T: Send + 'static> Core for Inner<T> {
    fn add_link(&self, link: LinkBox) -> bool {
        let mut st = self.lock();
        st.push(link);
        self.claim(&mut st)
    }

    fn adopt_link(&self, link: LinkBox) -> bool {
        let mut st = self.lock();
        st.push(link);
        st.set(NO_CONSUMER);
        if self.claim(&mut st) {
            return true;
        }
        if self.called() && !st.has(RUNNING) && st.paused > 0 && !st.waiting() {
            if let Some(failure) = st.take_failure() {
                st.clear(ARMED);
                let unhandled = self.unhandled(&st, failure);
                drop(st);
                unhandled.report();
            }
        }
        false
    }

    fn run_links(self: Arc<Self>, check_pause: bool, resumed: Option<LinkBox>) -> Stop {
        self.run_links_from(check_pause, resumed)
    }

    fn steal_or_chain(&self, link: LinkBox, outer: Arc<dyn Core>) -> Option<LinkBox> {
        self.steal_or_queue(link, |link| {
            Node::boxed(ContinueLink {
                holder: Some(link),
                outer: Some(outer),
            })
        })
    }

    fn continue_with(&self, cont: LinkBox) -> Option<LinkBox> {
        self.steal_or_queue(cont, |cont| cont)
    }

    fn cancel_one(self: Arc<Self>) -> Option<Arc<dyn Core>> {
        let mut st = self.lock();
        if self.called() {
            // Fired but waiting on a chained Deferred: forward. Else a no-op.
            return match &st.rest {
                Rest::Waiting(w) => w.upgrade(),
                _ => None,
            };
        }
        let created = st.created;
        let canceller = match &mut st.rest {
            Rest::Unfired(c) => c.take(),
            _ => None,
        };
        let Some(canceller) = canceller else {
            if st.has(CANCELLING) {
                // Another cancel() is running the canceller and will apply
                // the outcome (Twisted: the canceller runs at most once).
                return None;
            }
            // Twisted: with no canceller, fail with CancelledError and
            // silently swallow one late callback/errback. Both happen under
            // the lock, so a racing fire either wins outright or is the one
            // swallowed.
            st.set(SUPPRESS);
            if self.fire_locked(st, Err(Failure::new(CancelledError::new())), created) {
                self.run_chain_here();
            }
            return None;
        };
        st.set(CANCELLING);
        drop(st);
        // Kept until the default CancelledError is applied: if the canceller
        // dropped every other Resolver (e.g. by cancelling the timer that
        // held one), dropping this one first would fail the Deferred with
        // ResolverDroppedError instead of CancelledError.
        let mut keep: Option<Resolver<T>> = None;
        match catch_unwind(AssertUnwindSafe(|| canceller.cancel(&self, &mut keep))) {
            Ok(Some(again)) => {
                // Forwarded: ask it again on the next cancel().
                let mut st = self.lock();
                st.clear(CANCELLING);
                if let Rest::Unfired(slot @ None) = &mut st.rest {
                    *slot = Some(again);
                }
                return None;
            }
            Ok(None) => {}
            Err(payload) => self.fail_if_unfired(Failure::from_panic(payload), created),
        }
        self.fail_if_unfired(Failure::new(CancelledError::new()), created);
        drop(keep);
        None
    }

    fn pause(&self) {
        let mut st = self.lock();
        st.paused = st.paused.saturating_add(1);
    }

    fn unpause(&self) -> bool {
        let mut st = self.lock();
        st.paused = st.paused.saturating_sub(1);
        if !self.can_run(&st) {
            return false;
        }
        if st.links_empty() {
            let finish = self.finish(&mut st);
            drop(st);
            finish.run();
            return false;
        }
        st.set(RUNNING);
        true
    }

    fn poll_take(&self, waker: Option<&Waker>, sink: &mut dyn FnMut(&mut dyn Any)) -> Poll<()> {
        let mut st = self.lock();
        if self.finished(&st) {
            st.clear(ARMED);
            let emptied = st.take_rest_into(sink);
            drop(st);
            drop(emptied);
            return Poll::Ready(());
        }
        st.register(waker);
        Poll::Pending
    }

    fn release_consumer(&self) {
        let mut st = self.lock();
        st.set(NO_CONSUMER);
        let waker = st.waker.take();
        // Any failure at rest is reported here, even a paused one: with the
        // handle gone nobody can unpause it any more (Rust does better than
        // Twisted, which reports only an armed failure).
        if self.called() && !st.has(RUNNING) && !st.waiting() {
            let unhandled = st.take_failure().map(|failure| {
                st.clear(ARMED);
                self.unhandled(&st, failure)
            });
            drop(st);
            drop(waker);
            if let Some(unhandled) = unhandled {
                unhandled.report();
            }
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn snapshot(&self) -> Snapshot {
        let st = self.lock();
        let outbox = match &st.rest {
            Rest::Holder(h) => count(h.next.as_ref()),
            _ => 0,
        };
        let running = st.has(RUNNING);
        let called = self.called();
        Snapshot {
            called,
            running,
            paused: st.paused,
            waiting: st.waiting(),
            callbacks: count(st.inbox.as_ref()) + outbox,
            result: st.result_state(),
            taken: matches!(st.rest, Rest::Taken) && called && !running,
        }
    }
}

impl<T: Send + 'static> Drop for Inner<T> {
    /// A failure still in the state when it goes away was never consumed:
    /// e.g. a paused Deferred returned from a callback, whose handle moved
    /// into the chain (Twisted reports it when the Deferred is collected).
    fn drop(&mut self) {
        let key = self.key();
        let st = self.state.get_mut();
        if st.has(ARMED | TRACED) {
            Self::report_and_forget(st, key);
        }
    }
}

impl<T: Send + 'static> Inner<T> {
    #[cold]
    fn report_and_forget(st: &mut State<T>, key: usize) {
        let key = st.has(TRACED).then_some(key);
        if st.has(ARMED) {
            if let Some(failure) = st.take_failure() {
                let describe = debug::describe(st.created, key);
                let created = st.created;
                Unhandled {
                    failure,
                    describe,
                    created,
                    key,
                }
                .report();
            }
        }
        if let Some(key) = key {
            debug::trace_forget(key);
        }
    }
}
