//! The timer driver behind [`defer_later`](crate::defer_later): one task per
//! Tokio runtime that owns every pending call of that runtime and fires
//! them, instead of one sleeping task per call.
//!
//! # State
//!
//! A runtime's [`Timers`] is an `Arc` shared by the driver task, a global
//! registry (a `PerRuntime`: runtime [`Id`] → `Timers`) and a one-entry
//! cache per thread.
//! Its [`Queue`] (one `std::sync::Mutex`) holds the pending calls as
//! [`Entry`]s `(deadline, seq, Resolver<()>)`, 24 bytes each, ordered by
//! `(deadline, seq)`: equal deadlines fire in scheduling order (Twisted's
//! `callLater` order). Deadlines are nanoseconds since the `Timers`' epoch,
//! read from `tokio::time::Instant`, so a paused clock drives them.
//!
//! Entries live in two places: `run`, a `VecDeque` in key order that takes
//! every entry not earlier than its last one (with one delay, every call: a
//! push and a pop are `O(1)`), and `heap`, a binary heap for the rest. The
//! earliest entry is the smaller of the two fronts.
//!
//! # Driver
//!
//! The driver pops the due entries (at most [`BATCH`] per lock) and fires
//! them with the lock released. Firing a call runs its callbacks and wakes
//! the task awaiting its Deferred, if any; once its calls have woken
//! [`YIELD_AFTER_WAKES`] tasks (or after [`YIELD_EVERY`] calls), the driver
//! yields to the runtime, so that those tasks run (answer their request,
//! free what they held) before more calls fire, as each of them would if it
//! slept on its own timer. After the yield it looks at the clock again, so
//! calls that came due meanwhile fire without waiting for the timer's next
//! tick. No popped entry is held across an `.await`.
//!
//! With nothing due it records when it sleeps until
//! (`sleeping_until`) and waits on a `tokio::time::Sleep` for the earliest
//! deadline or on a `Notify`; a push earlier than `sleeping_until` clears it
//! and notifies (once per wake-up, not once per push).
//!
//! # Cancellation
//!
//! Deletion is lazy. The Deferred's canceller fails it with
//! `CancelledError` (so `f` never runs), then tells the `Timers` of the
//! runtime current in the cancelling thread, if any: it pops cancelled
//! entries from the fronts (waking the driver so that it re-arms for the
//! next live deadline, and a paused clock does not jump to a cancelled
//! one), and compacts the queue once cancelled entries may outnumber live
//! ones (as `ManualClock` does). A cancelled entry left behind (cancelled
//! outside its runtime) is dropped when its deadline comes: firing it is
//! a no-op.
//!
//! # Shutdown
//!
//! When the runtime shuts down it drops the driver task; its [`Guard`]
//! takes the `Timers` out of the registry, marks it closed and drops every
//! pending entry, so each pending Deferred fails with
//! `ResolverDroppedError` (as when each call was a task). Later pushes to a
//! closed `Timers` are refused; the caller then looks up (or spawns) the
//! runtime's driver again, and if that one is closed too (the runtime is
//! gone), drops the Resolver.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::runtime::{Handle, Id};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::Resolver;
use crate::deferred::state::wakes_on_this_thread;
use crate::loom::std::Mutex;
use crate::time::per_runtime::PerRuntime;

/// Entries popped per lock of the queue, and fired between two looks at
/// how many tasks they woke.
const BATCH: usize = 8;
/// The driver yields to the runtime once the calls it fired have woken this
/// many tasks (those awaiting their Deferreds), so that they run before more
/// calls fire ...
const YIELD_AFTER_WAKES: u32 = 8;
/// ... and after at most this many calls in a row.
const YIELD_EVERY: usize = 1024;
/// Compaction needs at least this many cancelled entries.
const COMPACT_MIN: usize = 64;

/// One pending call.
struct Entry {
    /// Deadline, nanoseconds since [`Timers::epoch`].
    at: u64,
    /// Scheduling order within one `Timers`.
    seq: u64,
    resolver: Resolver<()>,
}

impl Entry {
    fn key(&self) -> (u64, u64) {
        (self.at, self.seq)
    }

    /// Cancelled: the Deferred fired without us.
    fn is_stale(&self) -> bool {
        self.resolver.is_called()
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

#[derive(Default)]
struct Queue {
    /// Entries in key order (each pushed one not earlier than the last).
    run: VecDeque<Entry>,
    /// The entries that came earlier than `run`'s last.
    heap: BinaryHeap<Reverse<Entry>>,
    next_seq: u64,
    /// `Some(t)`: the driver sleeps until `t` (`u64::MAX`: until notified);
    /// `None`: it is awake (or not yet started) and will look again.
    sleeping_until: Option<u64>,
    /// Upper bound on the cancelled entries still queued.
    stale: usize,
    /// The driver is gone (runtime shut down): pushes are refused.
    closed: bool,
}

impl Queue {
    fn len(&self) -> usize {
        self.run.len() + self.heap.len()
    }

    /// The earliest entry: its deadline and whether it is `run`'s front.
    fn earliest(&self) -> Option<(u64, bool)> {
        match (self.run.front(), self.heap.peek()) {
            (Some(a), Some(Reverse(b))) if b < a => Some((b.at, false)),
            (Some(a), _) => Some((a.at, true)),
            (None, Some(Reverse(b))) => Some((b.at, false)),
            (None, None) => None,
        }
    }

    fn pop(&mut self, from_run: bool) -> Option<Entry> {
        if from_run {
            self.run.pop_front()
        } else {
            self.heap.pop().map(|Reverse(e)| e)
        }
    }

    /// Moves up to `max` entries due at `now` into `out`, earliest first.
    fn pop_due(&mut self, now: u64, out: &mut Vec<Entry>, max: usize) {
        while out.len() < max {
            match self.earliest() {
                Some((at, from_run)) if at <= now => out.extend(self.pop(from_run)),
                _ => break,
            }
        }
    }

    /// Moves cancelled entries off the fronts into `out`; `true` if any.
    fn trim_stale(&mut self, out: &mut Vec<Entry>) -> bool {
        let before = out.len();
        while self.run.front().is_some_and(Entry::is_stale) {
            out.extend(self.run.pop_front());
        }
        while self.heap.peek().is_some_and(|Reverse(e)| e.is_stale()) {
            out.extend(self.heap.pop().map(|Reverse(e)| e));
        }
        let trimmed = out.len() - before;
        self.stale = self.stale.saturating_sub(trimmed);
        trimmed > 0
    }

    /// Drops cancelled entries (into `out`) once they may outnumber the
    /// live ones.
    fn maybe_compact(&mut self, out: &mut Vec<Entry>) {
        self.stale = self.stale.min(self.len());
        if self.stale < COMPACT_MIN || self.stale * 2 < self.len() {
            return;
        }
        let run = std::mem::take(&mut self.run);
        for e in run {
            if e.is_stale() {
                out.push(e);
            } else {
                self.run.push_back(e);
            }
        }
        let heap = std::mem::take(&mut self.heap).into_vec();
        let mut live = Vec::with_capacity(heap.len());
        for Reverse(e) in heap {
            if e.is_stale() {
                out.push(e);
            } else {
                live.push(Reverse(e));
            }
        }
        self.heap = BinaryHeap::from(live);
        self.stale = 0;
        self.shrink();
    }

    /// Gives memory back after a burst.
    fn shrink(&mut self) {
        if self.run.capacity() > 1024 && self.run.len() < self.run.capacity() / 4 {
            self.run.shrink_to(self.run.len() * 2);
        }
        if self.heap.capacity() > 1024 && self.heap.len() < self.heap.capacity() / 4 {
            self.heap.shrink_to(self.heap.len() * 2);
        }
    }
}

/// The pending calls of one runtime, shared by its driver task and the
/// threads that schedule and cancel calls.
pub(super) struct Timers {
    queue: Mutex<Queue>,
    notify: Notify,
    epoch: Instant,
}

impl Timers {
    fn new() -> Self {
        Timers {
            queue: Mutex::new(Queue::default()),
            notify: Notify::new(),
            epoch: Instant::now(),
        }
    }

    /// Nanoseconds from the epoch to `t` (saturating).
    fn ticks(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Queues a call due `delay` from now; gives the Resolver back if the
    /// driver is gone.
    fn push(&self, delay: Duration, resolver: Resolver<()>) -> Result<(), Resolver<()>> {
        let delay = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        let at = self.ticks(Instant::now()).saturating_add(delay);
        let wake = {
            let mut q = self.queue.lock();
            if q.closed {
                return Err(resolver);
            }
            let seq = q.next_seq;
            q.next_seq += 1;
            let entry = Entry { at, seq, resolver };
            if q.run.back().is_none_or(|last| last.at <= at) {
                q.run.push_back(entry);
            } else {
                q.heap.push(Reverse(entry));
            }
            match q.sleeping_until {
                Some(t) if at < t => {
                    q.sleeping_until = None;
                    true
                }
                _ => false,
            }
        };
        if wake {
            self.notify.notify_one();
        }
        Ok(())
    }

    /// A call was cancelled (its Deferred has fired): drop cancelled
    /// fronts, compact if worth it.
    fn note_cancel(&self) {
        let mut dropped = Vec::new();
        let wake = {
            let mut q = self.queue.lock();
            q.stale += 1;
            let trimmed = q.trim_stale(&mut dropped);
            q.maybe_compact(&mut dropped);
            if trimmed && q.sleeping_until.is_some() {
                q.sleeping_until = None;
                true
            } else {
                false
            }
        };
        if wake {
            self.notify.notify_one();
        }
        drop(dropped); // outside the lock
    }
}

/// Schedules `resolver` to be fired with `()` after `delay` on the
/// runtime behind `handle`. If that runtime is shutting down, the Resolver
/// is dropped (its Deferred fails with `ResolverDroppedError`).
pub(super) fn schedule(handle: &Handle, delay: Duration, resolver: Resolver<()>) {
    let id = handle.id();
    // Fast path: this thread's cached driver for this runtime.
    let mut resolver = Some(resolver);
    let _ = CACHED.try_with(|c| {
        if let Some((cached, timers)) = &*c.borrow() {
            if *cached == id {
                if let Some(r) = resolver.take() {
                    resolver = timers.push(delay, r).err();
                }
            }
        }
    });
    let Some(resolver) = resolver else { return };
    if let Err(resolver) = lookup(handle, id).push(delay, resolver) {
        resolver.release_as(OWNER); // the runtime is shutting down
    }
}

/// The function whose Resolvers the driver holds (named by the
/// `ResolverDroppedError` of a call its runtime's shutdown dropped).
const OWNER: &str = "tokio_deferred::defer_later";

thread_local! {
    /// The driver last used on this thread, with its runtime's id.
    static CACHED: RefCell<Option<(Id, Arc<Timers>)>> = const { RefCell::new(None) };
}

/// Every live driver, by runtime.
static REGISTRY: PerRuntime<Arc<Timers>> = PerRuntime::new();

/// The driver of the runtime behind `handle` (spawned if it has none), now
/// also cached for this thread.
fn lookup(handle: &Handle, id: Id) -> Arc<Timers> {
    let (timers, fresh) = REGISTRY.get_or_make(id, || Arc::new(Timers::new()));
    if fresh {
        let guard = Guard {
            id,
            timers: timers.clone(),
        };
        drop(handle.spawn(drive(guard)));
    }
    let old = CACHED.try_with(|c| c.borrow_mut().replace((id, timers.clone())));
    drop(old); // outside the borrow
    timers
}

/// Owned by the driver task; dropped with it when the runtime shuts down
/// (even if the task never ran).
struct Guard {
    id: Id,
    timers: Arc<Timers>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        REGISTRY.remove(self.id, |t| Arc::ptr_eq(t, &self.timers));
        let pending = {
            let mut q = self.timers.queue.lock();
            q.closed = true;
            q.sleeping_until = None;
            (std::mem::take(&mut q.run), std::mem::take(&mut q.heap))
        };
        // Outside the lock: each pending Deferred fails with
        // ResolverDroppedError and runs its callbacks here.
        let (run, heap) = pending;
        for entry in run.into_iter().chain(heap.into_iter().map(|Reverse(e)| e)) {
            entry.resolver.release_as(OWNER);
        }
    }
}

/// The driver task of one runtime.
async fn drive(guard: Guard) {
    let timers = &*guard.timers;
    // Dropped while there is no deadline: a registered sleep would let a
    // paused clock jump to a deadline that is gone.
    let mut sleep: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut batch: Vec<Entry> = Vec::with_capacity(BATCH);
    let mut fired = 0usize;
    let mut woken = 0u32;
    loop {
        let now = timers.ticks(Instant::now());
        let next = {
            let mut q = timers.queue.lock();
            q.pop_due(now, &mut batch, BATCH);
            if batch.is_empty() {
                // Nothing due: drop cancelled fronts, then sleep until the
                // earliest live deadline.
                q.trim_stale(&mut batch);
                let next = q.earliest().map(|(at, _)| at);
                q.sleeping_until = Some(next.unwrap_or(u64::MAX));
                q.shrink();
                Some(next)
            } else {
                q.sleeping_until = None;
                None
            }
        };
        let Some(next) = next else {
            fired += batch.len();
            let wakes = wakes_on_this_thread();
            for entry in batch.drain(..) {
                // A cancelled call's Deferred has fired: a no-op.
                let _ = entry.resolver.callback(());
            }
            woken = woken.saturating_add(wakes_on_this_thread().wrapping_sub(wakes));
            if fired >= YIELD_EVERY || woken >= YIELD_AFTER_WAKES {
                fired = 0;
                woken = 0;
                tokio::task::yield_now().await;
            }
            continue;
        };
        batch.clear(); // cancelled fronts, dropped outside the lock
        fired = 0;
        woken = 0;
        let notified = pin!(timers.notify.notified());
        let deadline = next.and_then(|t| timers.epoch.checked_add(Duration::from_nanos(t)));
        match deadline {
            Some(deadline) => {
                let sleep = match &mut sleep {
                    Some(sleep) => {
                        sleep.as_mut().reset(deadline);
                        sleep
                    }
                    None => sleep.insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                SleepOrNotified {
                    sleep: sleep.as_mut(),
                    notified,
                }
                .await;
            }
            None => {
                sleep = None;
                notified.await;
            }
        }
    }
}

/// Ready when either the sleep ends or the driver is notified.
struct SleepOrNotified<'a, N> {
    sleep: Pin<&'a mut tokio::time::Sleep>,
    notified: Pin<&'a mut N>,
}

impl<N: Future> Future for SleepOrNotified<'_, N> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notified.as_mut().poll(cx).is_ready() || self.sleep.as_mut().poll(cx).is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Called by a cancelled `defer_later`'s canceller: tells the driver of the
/// runtime current in this thread, if there is one.
pub(super) fn cancelled() {
    let Ok(handle) = Handle::try_current() else {
        return;
    };
    let id = handle.id();
    let cached = CACHED
        .try_with(|c| match &*c.borrow() {
            Some((cached, t)) if *cached == id => Some(t.clone()),
            _ => None,
        })
        .ok()
        .flatten();
    let timers = cached.or_else(|| REGISTRY.get(id));
    if let Some(timers) = timers {
        timers.note_cancel();
    }
}
