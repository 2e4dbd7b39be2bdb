//! The FIFO pool of tokens under [`DeferredLock`](crate::DeferredLock) (one
//! token) and [`DeferredSemaphore`](crate::DeferredSemaphore) (`limit`
//! tokens).
//!
//! State: `available` free tokens, and a FIFO of waiters (each the
//! [`Resolver`] of a pending `acquire_guard` (fired with a permit) or
//! `acquire` (fired with the plain handle), keyed by an increasing id so that
//! a cancelled waiter is removed in `O(log n)`). Invariant: waiters exist
//! only while `available == 0`.
//!
//! Fast path: while nobody waits and no hand-over runs, the free tokens
//! (for the one-token lock also the grant number) live in one atomic word,
//! and an uncontended acquire or release is a single compare-and-swap on it,
//! with no mutex. The first operation that needs the mutex (no token free,
//! or a waiter to serve) marks the word SLOW under the mutex and takes the
//! counts over; from then on every operation goes through the mutex, until
//! an unlock finds no waiter, no hand-over and no deferred release and
//! writes the counts back (clearing SLOW). Only a holder of the mutex
//! clears SLOW, so the two never disagree.
//!
//! Locking: one mutex, never held while user code runs. A release pops the
//! oldest waiter under the lock, releases the lock, then fires the waiter
//! (its callbacks run synchronously, as in Twisted, and may call back into
//! the pool). While the token is on its way to the waiter it is counted as
//! taken, so nobody else can grab it.
//!
//! Stack: a waiter's callback that releases again (typically `run(f)` with a
//! synchronous `f`, queued many times) would recurse once per waiter. A
//! release made *inside* a hand-over of the same pool on the same thread is
//! therefore recorded (`deferred`) and served by the outer hand-over loop as
//! soon as the current waiter's callbacks return: a queue of any length runs
//! in constant stack, still in FIFO order, still before the outermost
//! `release` returns. (Twisted recurses here.)
//!
//! Cancellation: a pending waiter's canceller removes it from the FIFO and
//! fails it with `CancelledError`. If a release popped the waiter just
//! before (another thread), the delivery finds the waiter already failed,
//! takes the token back (the permit is disarmed) and goes on with the next
//! waiter, so no token is ever lost.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
#[cfg(all(target_has_atomic = "64", not(tokio_deferred_no_atomic64)))]
use std::sync::atomic::AtomicU64 as FastWord;
use std::sync::atomic::Ordering;

use crate::deferred::IntoOutcome;
use crate::error::CancelledError;
use crate::loom::{Mutex, MutexGuard};
use crate::{Deferred, Resolver};

/// A token handed out by a [`Pool`]: the RAII guards implement it.
pub(crate) trait Permit: Send + Sized + 'static {
    /// A new armed permit for `pool`, granted as grant number `generation`.
    fn issue(pool: Arc<Pool<Self>>, generation: u64) -> Self;
    /// Disarms the permit: dropping it no longer releases. Gives the pool
    /// back.
    fn disarm(self) -> Option<Arc<Pool<Self>>>;
    /// What a plain `acquire()` fires with (the lock or semaphore itself):
    /// dropping it does not release.
    type Handle: Send + 'static;
    /// The handle on `pool`.
    fn handle(pool: Arc<Pool<Self>>) -> Self::Handle;
    /// What queues the waiters (named by the `ResolverDroppedError` of a
    /// waiter whose pool went away).
    const OWNER: &'static str;
}

/// A queued acquire: `acquire_guard()` waits for a permit, `acquire()` for
/// the plain handle (delivered directly, without a callback turning a
/// permit into a handle).
enum Waiter<P: Permit> {
    Guard(Resolver<P>),
    Handle(Resolver<P::Handle>),
}

struct PoolState<P: Permit> {
    available: usize,
    /// Releases made inside a hand-over on the delivering thread, waiting
    /// for its loop to serve them. Neither free nor held.
    deferred: usize,
    /// Counts grants; a lock guard releases only its own grant.
    generation: u64,
    /// Hand-over loops running now (any thread). While none runs and nobody
    /// waits, a release just frees the token, without the thread-local
    /// check for nested releases.
    handing_over: usize,
    next_id: u64,
    waiting: BTreeMap<u64, Waiter<P>>,
}

/// Set in [`Pool::fast`] while the mutex-guarded [`PoolState`] holds the
/// truth.
const SLOW: u64 = 1 << 63;
/// Grant numbers wrap at 2^62 (never reached in practice), so that a
/// one-token pool's word holds `generation << 1 | free` below [`SLOW`].
const GENERATION_MASK: u64 = (1 << 62) - 1;

fn next_generation(generation: u64) -> u64 {
    generation.wrapping_add(1) & GENERATION_MASK
}

pub(crate) struct Pool<P: Permit> {
    /// The uncontended state in one atomic word. With [`SLOW`] clear nobody
    /// waits, no hand-over runs and no release is deferred: the word holds
    /// the free tokens (for a one-token pool, `generation << 1 | free`) and
    /// an acquire or release is one compare-and-swap on it. With [`SLOW`]
    /// set, `state` holds the truth; whoever locks `state` sets [`SLOW`]
    /// (taking the counts over), and the last unlock that finds the pool
    /// quiet again clears it (see [`Locked`]).
    fast: FastWord,
    state: Mutex<PoolState<P>>,
    limit: usize,
}

/// The pool's state, locked: taken over from the fast word on lock, handed
/// back to it on unlock when nobody waits and no hand-over runs.
struct Locked<'a, P: Permit> {
    pool: &'a Pool<P>,
    st: MutexGuard<'a, PoolState<P>>,
}

impl<P: Permit> Deref for Locked<'_, P> {
    type Target = PoolState<P>;
    fn deref(&self) -> &PoolState<P> {
        &self.st
    }
}

impl<P: Permit> DerefMut for Locked<'_, P> {
    fn deref_mut(&mut self) -> &mut PoolState<P> {
        &mut self.st
    }
}

impl<P: Permit> Drop for Locked<'_, P> {
    fn drop(&mut self) {
        let st = &self.st;
        if st.waiting.is_empty() && st.deferred == 0 && st.handing_over == 0 {
            if let Some(word) = self.pool.encode(st.available, st.generation) {
                // Still under the mutex: nobody else writes the word while
                // SLOW is set.
                self.pool.fast.store(word, Ordering::Release);
            }
        }
    }
}

impl<P: Permit> Pool<P> {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Pool {
            fast: FastWord::new(Self::encode_for(limit, limit, 0).unwrap_or(SLOW)),
            state: Mutex::new(PoolState {
                available: limit,
                deferred: 0,
                generation: 0,
                handing_over: 0,
                next_id: 0,
                waiting: BTreeMap::new(),
            }),
            limit,
        })
    }

    /// The fast word for `available` free tokens and grant `generation`;
    /// `None` if the count does not fit (such a pool always stays SLOW).
    fn encode_for(limit: usize, available: usize, generation: u64) -> Option<u64> {
        if limit == 1 {
            Some((generation & GENERATION_MASK) << 1 | available as u64)
        } else {
            u64::try_from(limit)
                .ok()
                .filter(|&l| l <= GENERATION_MASK)
                .map(|_| available as u64)
        }
    }

    fn encode(&self, available: usize, generation: u64) -> Option<u64> {
        Self::encode_for(self.limit, available, generation)
    }

    /// Free tokens in a fast word (SLOW clear).
    fn free(&self, word: u64) -> usize {
        if self.limit == 1 {
            (word & 1) as usize
        } else {
            word as usize
        }
    }

    /// Takes a free token with one compare-and-swap: the grant number, or
    /// `None` when the pool is SLOW or has no free token.
    #[inline]
    fn try_fast_acquire(&self) -> Option<u64> {
        let mut word = self.fast.load(Ordering::Relaxed);
        loop {
            if word & SLOW != 0 || self.free(word) == 0 {
                return None;
            }
            let (new, generation) = if self.limit == 1 {
                let generation = next_generation(word >> 1);
                (generation << 1, generation)
            } else {
                (word - 1, 0)
            };
            match self
                .fast
                .compare_exchange_weak(word, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Some(generation),
                Err(current) => word = current,
            }
        }
    }

    /// Frees a token with one compare-and-swap: `Some(released)`, or `None`
    /// when the pool is SLOW. `grant`: release only that grant (the lock's
    /// guard).
    #[inline]
    fn try_fast_release(&self, grant: Option<u64>) -> Option<bool> {
        let mut word = self.fast.load(Ordering::Relaxed);
        loop {
            if word & SLOW != 0 {
                return None;
            }
            if self.free(word) >= self.limit {
                return Some(false);
            }
            if let Some(generation) = grant {
                if self.limit == 1 && word >> 1 != generation {
                    return Some(false);
                }
            }
            match self.fast.compare_exchange_weak(
                word,
                word + 1,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(true),
                Err(current) => word = current,
            }
        }
    }

    fn lock(&self) -> Locked<'_, P> {
        let mut st = self.state.lock();
        // Only a holder of the mutex clears SLOW: if it is set, it stays so.
        if self.fast.load(Ordering::Relaxed) & SLOW == 0 {
            let word = self.fast.fetch_or(SLOW, Ordering::AcqRel);
            if word & SLOW == 0 {
                st.available = self.free(word);
                if self.limit == 1 {
                    st.generation = word >> 1;
                }
            }
        }
        Locked { pool: self, st }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    pub(crate) fn available(&self) -> usize {
        let word = self.fast.load(Ordering::Acquire);
        if word & SLOW == 0 {
            return self.free(word);
        }
        self.lock().available
    }

    pub(crate) fn waiting(&self) -> usize {
        if self.fast.load(Ordering::Acquire) & SLOW == 0 {
            return 0;
        }
        self.lock().waiting.len()
    }

    /// A Deferred that fires with a permit: at once if a token is free,
    /// otherwise when it is this waiter's turn.
    #[track_caller]
    pub(crate) fn acquire(self: &Arc<Self>) -> Deferred<P> {
        match self.acquire_or_wait() {
            Acquired::Now(generation) => crate::succeed(P::issue(self.clone(), generation)),
            Acquired::Queued(d) => d,
        }
    }

    /// Takes a free token (one lock round trip, nothing allocated: the
    /// caller builds what it hands out), or queues a waiter for a permit.
    #[track_caller]
    #[inline]
    pub(crate) fn acquire_or_wait(self: &Arc<Self>) -> Acquired<P> {
        self.acquire_or_queue(Waiter::Guard)
    }

    /// Twisted's `acquire()`: a Deferred that fires with the plain handle
    /// (the lock or semaphore itself): already fired if a token is free (no
    /// guard, no callback), else fired with the handle by the hand-over.
    #[track_caller]
    #[inline]
    pub(crate) fn acquire_handle(self: &Arc<Self>) -> Deferred<P::Handle> {
        match self.acquire_or_queue(Waiter::Handle) {
            Acquired::Now(_) => crate::succeed(P::handle(self.clone())),
            Acquired::Queued(d) => d,
        }
    }

    /// Takes a free token, or queues `waiter` (a permit's or a plain
    /// handle's).
    #[track_caller]
    #[inline]
    fn acquire_or_queue<X: Send + 'static>(
        self: &Arc<Self>,
        waiter: fn(Resolver<X>) -> Waiter<P>,
    ) -> Acquired<X> {
        match self.try_fast_acquire() {
            Some(generation) => Acquired::Now(generation),
            None => self.acquire_slow(waiter),
        }
    }

    /// Acquire under the mutex: the pool is SLOW or has no free token.
    #[track_caller]
    #[inline(never)]
    fn acquire_slow<X: Send + 'static>(
        self: &Arc<Self>,
        waiter: fn(Resolver<X>) -> Waiter<P>,
    ) -> Acquired<X> {
        let mut st = self.lock();
        if st.available > 0 {
            st.available -= 1;
            st.generation = next_generation(st.generation);
            return Acquired::Now(st.generation);
        }
        Acquired::Queued(self.queue(st, waiter))
    }

    /// Appends a waiter (no token is free), cancellable.
    #[track_caller]
    fn queue<X: Send + 'static>(
        self: &Arc<Self>,
        mut st: Locked<'_, P>,
        waiter: fn(Resolver<X>) -> Waiter<P>,
    ) -> Deferred<X> {
        let id = st.next_id;
        st.next_id += 1;
        // Weak: a pool that nobody holds any more drops its waiters, which
        // then fail with ResolverDroppedError instead of leaking.
        let pool = Arc::downgrade(self);
        let (d, resolver) = Deferred::with_canceller(move |r: &Resolver<X>| {
            let Some(pool) = pool.upgrade() else { return };
            let removed = pool.lock().waiting.remove(&id);
            if let Some(removed) = removed {
                // Fail it before the removed resolver is dropped.
                let _ = r.errback(CancelledError::new());
                drop(removed);
            }
        });
        st.waiting.insert(id, waiter(resolver));
        d
    }

    /// Gives a token back: to the oldest waiter, or to the pool. `false` if
    /// every token is already free.
    #[inline]
    pub(crate) fn release(self: &Arc<Self>) -> bool {
        match self.try_fast_release(None) {
            Some(released) => released,
            None => self.release_slow(),
        }
    }

    #[inline(never)]
    fn release_slow(self: &Arc<Self>) -> bool {
        let st = self.lock();
        if st.available + st.deferred >= self.limit {
            return false;
        }
        self.give_back(st);
        true
    }

    /// Releases only if grant `generation` is the current holder (for the
    /// lock's guard, so that a guard never releases somebody else's hold).
    #[inline]
    pub(crate) fn release_grant(self: &Arc<Self>, generation: u64) {
        if self.try_fast_release(Some(generation)).is_none() {
            self.release_grant_slow(generation);
        }
    }

    #[inline(never)]
    fn release_grant_slow(self: &Arc<Self>, generation: u64) {
        let st = self.lock();
        if st.available + st.deferred >= self.limit || st.generation != generation {
            return;
        }
        self.give_back(st);
    }

    /// Frees the token at once when nobody waits and no hand-over runs
    /// (the uncontended case: no thread-local lookup); else hands it over.
    fn give_back<'a>(self: &'a Arc<Self>, mut st: Locked<'a, P>) {
        if st.handing_over == 0 && st.deferred == 0 && st.waiting.is_empty() {
            st.available += 1;
            return;
        }
        self.hand_over(st);
    }

    fn hand_over<'a>(self: &'a Arc<Self>, mut st: Locked<'a, P>) {
        let Some(_delivering) = Delivering::enter(Arc::as_ptr(self) as *const () as usize) else {
            // Inside a hand-over of this pool on this thread: the loop below,
            // further up the stack, serves it once the callbacks return.
            st.deferred += 1;
            return;
        };
        st.handing_over += 1;
        // Counts the loop out again if a callback unwinds through it.
        let mut running = HandingOver(Some(&**self));
        loop {
            let Some((_, waiter)) = st.waiting.pop_first() else {
                st.available += 1;
                if st.deferred == 0 {
                    st.handing_over -= 1;
                    running.0 = None;
                    return;
                }
                st.deferred -= 1;
                continue;
            };
            st.generation = next_generation(st.generation);
            let generation = st.generation;
            drop(st);
            // The waiter's callbacks run here, with no lock held.
            // Refused: cancelled in another thread after we popped it; take
            // the token back and try the next waiter.
            let delivered = match waiter {
                Waiter::Guard(resolver) => {
                    let delivered = match resolver.callback(P::issue(self.clone(), generation)) {
                        Ok(()) => true,
                        Err(refused) => {
                            drop(refused.into_inner().disarm());
                            false
                        }
                    };
                    // May drop an abandoned waiter's permit: a nested release.
                    drop(resolver);
                    delivered
                }
                Waiter::Handle(resolver) => resolver.callback(P::handle(self.clone())).is_ok(),
            };
            st = self.lock();
            if delivered {
                if st.deferred == 0 {
                    st.handing_over -= 1;
                    running.0 = None;
                    return;
                }
                st.deferred -= 1;
            }
        }
    }
}

/// `run(f)` of the lock and the semaphore: runs `f` holding a permit and
/// releases it once `f`'s result is known.
///
/// With a free token, `f` runs at once; if its result is already there (it
/// returned a `Result`, or a fired Deferred) the permit is released and the
/// result handed back directly, with no callback or chained Deferred.
/// Otherwise the permit is released by a callback when `f`'s Deferred
/// fires (or, queued, once this waiter's turn comes and `f` has run).
#[track_caller]
pub(crate) fn run<P, F, R>(pool: &Arc<Pool<P>>, f: F) -> Deferred<R::Output>
where
    P: Permit,
    F: FnOnce() -> R + Send + 'static,
    R: IntoOutcome,
{
    match pool.acquire_or_wait() {
        Acquired::Now(generation) => {
            let permit = P::issue(pool.clone(), generation);
            let d = crate::maybe_deferred(f);
            match d.try_take() {
                Some(r) => {
                    drop(permit);
                    match r {
                        Ok(v) => crate::succeed(v),
                        Err(failure) => crate::fail(failure),
                    }
                }
                None => d.add_both(move |r| {
                    drop(permit);
                    r
                }),
            }
        }
        Acquired::Queued(d) => d.add_callback(move |permit| {
            crate::maybe_deferred(f).add_both(move |r| {
                drop(permit);
                r
            })
        }),
    }
}

/// What [`Pool::acquire_or_wait`] / [`Pool::acquire_or_queue`] got.
pub(crate) enum Acquired<X: Send + 'static> {
    /// A free token, taken as grant number `.0`.
    Now(u64),
    /// No token free: a Deferred that fires with a permit (or handle) in
    /// turn.
    Queued(Deferred<X>),
}

/// Decrements `handing_over` when a hand-over loop unwinds (a normal exit
/// does it under the lock it already holds, and clears this).
struct HandingOver<'a, P: Permit>(Option<&'a Pool<P>>);

impl<P: Permit> Drop for HandingOver<'_, P> {
    fn drop(&mut self) {
        // Only reached while unwinding, from outside the pool's lock.
        if let Some(pool) = self.0 {
            pool.lock().handing_over -= 1;
        }
    }
}

thread_local! {
    /// The pools this thread is handing a token over for.
    static DELIVERING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks this thread as handing over for one pool, until dropped.
struct Delivering(Option<usize>);

impl Delivering {
    /// `None` when this thread is already handing over for `pool`.
    fn enter(pool: usize) -> Option<Delivering> {
        let entered = DELIVERING.try_with(|d| {
            let mut d = d.borrow_mut();
            if d.contains(&pool) {
                false
            } else {
                d.push(pool);
                true
            }
        });
        match entered {
            Ok(true) => Some(Delivering(Some(pool))),
            Ok(false) => None,
            // Thread-local storage is being torn down: no trampoline.
            Err(_) => Some(Delivering(None)),
        }
    }
}

impl Drop for Delivering {
    fn drop(&mut self) {
        if let Some(pool) = self.0 {
            let _ = DELIVERING.try_with(|d| {
                let mut d = d.borrow_mut();
                if let Some(i) = d.iter().rposition(|&p| p == pool) {
                    d.remove(i);
                }
            });
        }
    }
}

impl<P: Permit> Drop for Pool<P> {
    /// Nobody holds the pool any more: its waiters never fire.
    fn drop(&mut self) {
        let st = self.state.get_mut();
        for (_, waiter) in std::mem::take(&mut st.waiting) {
            match waiter {
                Waiter::Guard(resolver) => resolver.release_as(P::OWNER),
                Waiter::Handle(resolver) => resolver.release_as(P::OWNER),
            }
        }
    }
}

impl<P: Permit> fmt::Debug for Pool<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("Pool")
            .field("available", &st.available)
            .field("limit", &self.limit)
            .field("waiting", &st.waiting.len())
            .finish()
    }
}

/// The fast word on targets without 64-bit atomics (and under
/// `--cfg tokio_deferred_no_atomic64`, which tests this path on any
/// target): the same operations behind a mutex. Correct (a mutex is
/// linearizable), just not lock-free there.
#[cfg(any(not(target_has_atomic = "64"), tokio_deferred_no_atomic64))]
struct FastWord(Mutex<u64>);

#[cfg(any(not(target_has_atomic = "64"), tokio_deferred_no_atomic64))]
impl FastWord {
    fn new(v: u64) -> Self {
        FastWord(Mutex::new(v))
    }

    fn word(&self) -> MutexGuard<'_, u64> {
        self.0.lock()
    }

    fn load(&self, _: Ordering) -> u64 {
        *self.word()
    }

    fn store(&self, v: u64, _: Ordering) {
        *self.word() = v;
    }

    fn fetch_or(&self, bits: u64, _: Ordering) -> u64 {
        let mut w = self.word();
        let old = *w;
        *w |= bits;
        old
    }

    fn compare_exchange_weak(
        &self,
        current: u64,
        new: u64,
        _: Ordering,
        _: Ordering,
    ) -> Result<u64, u64> {
        let mut w = self.word();
        if *w == current {
            *w = new;
            Ok(current)
        } else {
            Err(*w)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeferredLockGuard;

    /// The cross-thread race "a release pops a waiter, then the waiter is
    /// cancelled before the delivery" is too narrow to hit reliably from
    /// threads; stage it by hand: a waiter that has already failed is still
    /// in the FIFO when the release reaches it.
    #[test]
    fn refused_delivery_goes_to_the_next_waiter() {
        let pool = Pool::<DeferredLockGuard>::new(1);
        let held = pool.acquire().try_take().unwrap().unwrap();
        let cancelled = pool.acquire();
        let next = pool.acquire();
        let (id, resolver) = pool.lock().waiting.pop_first().unwrap();
        cancelled.cancel(); // not in the FIFO: the default CancelledError
        assert!(
            cancelled
                .try_take()
                .unwrap()
                .unwrap_err()
                .is::<CancelledError>()
        );
        pool.lock().waiting.insert(id, resolver);
        drop(held);
        assert!(next.is_called());
        assert_eq!(pool.available(), 0);
        drop(next);
        assert_eq!(pool.available(), 1);
    }

    /// The same for a waiter of the plain handle (`DeferredLock::acquire`),
    /// then a waiting guard: the token skips the refused handle waiter.
    #[test]
    fn refused_handle_delivery_goes_to_the_next_waiter() {
        let pool = Pool::<DeferredLockGuard>::new(1);
        let held = pool.acquire().try_take().unwrap().unwrap();
        let Acquired::Queued(cancelled) = pool.acquire_or_queue(Waiter::Handle) else {
            panic!("the token is held: the acquire must queue");
        };
        let next = pool.acquire();
        let (id, waiter) = pool.lock().waiting.pop_first().unwrap();
        cancelled.cancel();
        assert!(
            cancelled
                .try_take()
                .unwrap()
                .unwrap_err()
                .is::<CancelledError>()
        );
        pool.lock().waiting.insert(id, waiter);
        drop(held);
        assert!(next.is_called());
        assert_eq!(pool.available(), 0);
        drop(next);
        assert_eq!(pool.available(), 1);
    }

    /// A pool too large for the fast word stays on the mutex path and
    /// still counts right.
    #[test]
    fn a_huge_pool_works_through_the_mutex() {
        use crate::DeferredSemaphoreGuard;
        let pool = Pool::<DeferredSemaphoreGuard>::new(usize::MAX);
        assert_ne!(pool.fast.load(Ordering::Relaxed) & SLOW, 0);
        let a = pool.acquire().try_take().unwrap().unwrap();
        assert_eq!(pool.available(), usize::MAX - 1);
        drop(a);
        assert_eq!(pool.available(), usize::MAX);
        assert!(!pool.release());
        assert_ne!(pool.fast.load(Ordering::Relaxed) & SLOW, 0);
    }

    /// The lock's word carries the grant number: a guard whose hold was
    /// released by hand does not release the next holder, on the fast path
    /// as on the slow one.
    #[test]
    fn a_stale_guard_does_not_release_the_next_holder() {
        let pool = Pool::<DeferredLockGuard>::new(1);
        let stale = pool.acquire().try_take().unwrap().unwrap();
        assert!(pool.release()); // by hand
        let current = pool.acquire().try_take().unwrap().unwrap();
        drop(stale);
        assert_eq!(pool.available(), 0);
        let waiter = pool.acquire(); // SLOW now
        drop(current);
        let next = waiter.try_take().unwrap().unwrap();
        assert!(pool.release()); // by hand again
        drop(next); // stale too
        assert_eq!(pool.available(), 1);
        assert_eq!(pool.fast.load(Ordering::Relaxed) & SLOW, 0);
    }
}
