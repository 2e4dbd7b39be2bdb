//! DeferredLock, DeferredSemaphore, DeferredQueue.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_deferred::{
    CancelHandle, CancelledError, Deferred, DeferredLock, DeferredQueue, DeferredSemaphore,
    Failure, InvalidTokensError, LockNotHeldError, QueueOverflow, QueueUnderflow,
    TooManyReleasesError,
};

/// Appends what a Deferred fires with to a log (Twisted's `addBoth(l.append)`).
fn record<T: Send + 'static>(
    d: Deferred<T>,
    log: &Arc<Mutex<Vec<Result<T, Failure>>>>,
) -> Deferred<()> {
    let log = log.clone();
    d.add_both(move |r| {
        log.lock().unwrap().push(r);
        Ok(())
    })
}

fn counter(
    c: &Arc<AtomicUsize>,
) -> impl FnOnce(DeferredLock) -> Result<DeferredLock, Failure> + Send + 'static {
    let c = c.clone();
    move |l| {
        c.fetch_add(1, Ordering::SeqCst);
        Ok(l)
    }
}

// --- DeferredLock -----------------------------------------------------------

// Twisted: test_defer.py OtherPrimitivesTests.testLock
#[test]
fn lock_acquire_release_run_and_cancel() {
    let lock = DeferredLock::new();
    let count = Arc::new(AtomicUsize::new(0));
    let first = lock.acquire().add_callback(counter(&count));
    assert!(lock.is_locked());
    assert_eq!(count.load(Ordering::SeqCst), 1);

    let second = lock.acquire().add_callback(counter(&count));
    assert!(lock.is_locked());
    assert_eq!(count.load(Ordering::SeqCst), 1);

    lock.release().unwrap();
    assert!(lock.is_locked());
    assert_eq!(count.load(Ordering::SeqCst), 2);

    lock.release().unwrap();
    assert!(!lock.is_locked());
    drop((first, second));

    // run(): runs at once; the lock is held until the returned Deferred fires.
    let (control, fire_control) = Deferred::<&str>::new();
    let seen = Arc::new(Mutex::new(None));
    let (s, l) = (seen.clone(), lock.clone());
    let ran = lock.run(move || {
        *s.lock().unwrap() = Some(("u1", l.is_locked()));
        control
    });
    assert_eq!(*seen.lock().unwrap(), Some(("u1", true)));
    let results = Arc::new(Mutex::new(Vec::new()));
    let ran = record(ran, &results);

    let third = lock.acquire().add_callback(counter(&count));
    assert_eq!(count.load(Ordering::SeqCst), 2);
    fire_control.callback("u2").unwrap();
    assert_eq!(results.lock().unwrap().pop().unwrap().unwrap(), "u2");
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert!(lock.is_locked());

    // A queued acquire that is cancelled fails with CancelledError.
    let cancelled = Arc::new(Mutex::new(Vec::new()));
    let queued = record(lock.acquire(), &cancelled);
    queued.cancel();
    assert!(
        cancelled.lock().unwrap()[0]
            .as_ref()
            .unwrap_err()
            .is::<CancelledError>()
    );
    assert_eq!(lock.waiting(), 0);

    lock.release().unwrap();
    assert!(!lock.is_locked());
    drop((ran, third));
}

// Twisted: test_defer.py OtherPrimitivesTests.test_cancelLockAfterAcquired
#[test]
fn cancelling_an_acquired_lock_does_nothing() {
    let lock = DeferredLock::new();
    let d = lock.acquire();
    d.cancel();
    assert!(d.try_take().unwrap().is_ok());
    assert!(lock.is_locked());
}

// Twisted: test_defer.py OtherPrimitivesTests.test_cancelLockBeforeAcquired
#[test]
fn cancelling_a_queued_acquire_leaves_the_queue() {
    let lock = DeferredLock::new();
    let held = lock.acquire_guard();
    let d = lock.acquire();
    let after = lock.acquire_guard();
    d.cancel();
    assert!(d.try_take().unwrap().unwrap_err().is::<CancelledError>());
    assert_eq!(lock.waiting(), 1);
    drop(held); // dropping the fired, untaken guard releases the lock
    assert!(after.is_called()); // the release went to the next live waiter
    drop(after);
    assert!(!lock.is_locked());
}

#[test]
fn releasing_an_unlocked_lock_is_a_typed_error() {
    let lock = DeferredLock::new();
    assert!(matches!(lock.release(), Err(LockNotHeldError { .. })));
}

#[test]
fn lock_serves_waiters_in_fifo_order() {
    let lock = DeferredLock::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    let first = lock.acquire_guard();
    let waiters: Vec<_> = (0..5)
        .map(|i| {
            let order = order.clone();
            lock.acquire_guard().add_callback(move |g| {
                order.lock().unwrap().push(i);
                drop(g); // release at once: hands over to the next, re-entrantly
                Ok(())
            })
        })
        .collect();
    drop(first);
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
    assert!(!lock.is_locked());
    drop(waiters);
}

#[test]
fn hand_over_callbacks_may_use_the_lock_again() {
    let lock = DeferredLock::new();
    lock.acquire().try_take().unwrap().unwrap();
    let (l1, l2) = (lock.clone(), lock.clone());
    let later = Arc::new(Mutex::new(None));
    let later2 = later.clone();
    let d = lock.acquire().add_callback(move |_| {
        // Queue another acquire and release from inside the hand-over.
        *later2.lock().unwrap() = Some(l1.acquire());
        l1.release().unwrap();
        Ok(())
    });
    l2.release().unwrap();
    assert!(d.try_take().unwrap().is_ok());
    let later = later.lock().unwrap().take().unwrap();
    assert!(later.is_called());
    assert!(lock.is_locked());
}

#[test]
fn run_releases_on_failure_panic_and_returned_deferred() {
    let lock = DeferredLock::new();
    let d = lock.run(|| Err::<u8, _>(Failure::msg("failed")));
    assert_eq!(d.try_take().unwrap().unwrap_err().to_string(), "failed");
    assert!(!lock.is_locked());

    let d = lock.run(|| -> Result<u8, Failure> { panic!("boom") });
    assert!(d.try_take().unwrap().unwrap_err().is_panic());
    assert!(!lock.is_locked());

    let (inner, r) = Deferred::<u8>::new();
    let d = lock.run(move || inner);
    assert!(lock.is_locked());
    r.errback(Failure::msg("late failure")).unwrap();
    assert!(d.try_take().unwrap().is_err());
    assert!(!lock.is_locked());
}

#[test]
fn cancelling_run_while_it_waits_means_f_never_runs() {
    let lock = DeferredLock::new();
    let held = lock.acquire_guard();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let d = lock.run(move || {
        r.store(true, Ordering::SeqCst);
        Ok::<_, Failure>(())
    });
    d.cancel();
    assert!(d.try_take().unwrap().unwrap_err().is::<CancelledError>());
    drop(held);
    assert!(!ran.load(Ordering::SeqCst));
    assert!(!lock.is_locked());
}

#[test]
fn a_guard_releases_only_its_own_hold() {
    let lock = DeferredLock::new();
    let guard = lock.acquire_guard().try_take().unwrap().unwrap();
    lock.release().unwrap(); // released by hand
    let other = lock.acquire(); // somebody else holds it now
    assert!(other.is_called());
    drop(guard); // must not release the new holder's lock
    assert!(lock.is_locked());
}

#[test]
fn a_dropped_pending_guard_passes_the_lock_on_when_its_turn_comes() {
    let lock = DeferredLock::new();
    let held = lock.acquire_guard();
    drop(lock.acquire_guard()); // dropped, not cancelled: keeps its place
    let third = lock.acquire_guard();
    drop(held);
    assert!(third.is_called());
}

/// Runs `f` in a thread with a small stack: a recursion per waiter would
/// overflow it.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_long_queue_of_synchronous_runs_needs_no_deep_stack() {
    on_small_stack(|| {
        const N: usize = 20_000;
        let lock = DeferredLock::new();
        let held = lock.acquire_guard().try_take().unwrap().unwrap();
        let order = Arc::new(Mutex::new(Vec::with_capacity(N)));
        let runs: Vec<_> = (0..N)
            .map(|i| {
                let order = order.clone();
                lock.run(move || {
                    order.lock().unwrap().push(i);
                    Ok::<_, Failure>(i)
                })
            })
            .collect();
        drop(held); // each run releases inside the previous one's hand-over
        assert!(!lock.is_locked());
        assert_eq!(*order.lock().unwrap(), (0..N).collect::<Vec<_>>());
        for (i, d) in runs.into_iter().enumerate() {
            assert_eq!(d.try_take().unwrap().unwrap(), i);
        }

        let sem = DeferredSemaphore::new(2).unwrap();
        let held: Vec<_> = (0..2).map(|_| sem.acquire_guard()).collect();
        for _ in 0..N {
            drop(sem.acquire_guard()); // abandoned: released when its turn comes
        }
        drop(held);
        assert_eq!((sem.tokens(), sem.waiting()), (2, 0));
    });
}

#[test]
fn a_release_inside_a_hand_over_is_served_before_the_outer_release_returns() {
    let lock = DeferredLock::new();
    let first = lock.acquire().try_take().unwrap().unwrap();
    let l = lock.clone();
    let second = lock.acquire().add_callback(move |held: DeferredLock| {
        held.release().unwrap(); // nested: served right after this callback
        assert!(l.release().is_err()); // already released: not twice
        Ok(())
    });
    let third = lock.acquire();
    first.release().unwrap();
    assert!(second.try_take().unwrap().is_ok());
    assert!(third.is_called());
    assert!(lock.is_locked());
}

// Twisted: test_defer_await.py / CoroutineContextVarsTests.test_asyncWithLock
// and test_asyncWithLockException
#[tokio::test]
async fn async_guard_holds_the_lock_for_its_scope() {
    let lock = DeferredLock::new();
    let inner;
    {
        let _guard = lock.acquire_guard().await.unwrap();
        assert!(lock.is_locked());
        inner = lock.acquire_guard();
        assert!(!inner.is_called());
    }
    assert!(inner.is_called());
    drop(inner);
    assert!(!lock.is_locked());

    async fn fails_under_lock(lock: &DeferredLock) -> Result<(), Failure> {
        let _guard = lock.acquire_guard().await?;
        Err(Failure::msg("raised inside"))
    }
    assert!(fails_under_lock(&lock).await.is_err());
    assert!(!lock.is_locked());
}

#[tokio::test]
async fn cancel_on_drop_leaves_the_queue() {
    let lock = DeferredLock::new();
    let held = lock.acquire_guard().await.unwrap();
    tokio::select! {
        _ = lock.acquire_guard().cancel_on_drop() => unreachable!(),
        _ = tokio::task::yield_now() => {}
    }
    assert_eq!(lock.waiting(), 0);
    drop(held);
    assert!(!lock.is_locked());
}

// --- DeferredSemaphore --------------------------------------------------------

// Twisted: test_defer.py OtherPrimitivesTests.testSemaphore
#[test]
fn semaphore_acquire_release_run_and_cancel() {
    const N: usize = 13;
    let sem = DeferredSemaphore::new(N).unwrap();
    let (control, fire_control) = Deferred::<()>::new();
    let arg = Arc::new(Mutex::new(None));
    let a = arg.clone();
    let ran = sem.run(move || {
        *a.lock().unwrap() = Some("u");
        control
    });
    assert_eq!(*arg.lock().unwrap(), Some("u"));
    assert!(ran.try_take().is_none()); // waits on `control`
    fire_control.callback(()).unwrap();
    assert!(ran.try_take().unwrap().is_ok());
    assert_eq!(sem.tokens(), N);

    let count = Arc::new(AtomicUsize::new(0));
    let mut held = Vec::new();
    for i in 1..=N {
        let c = count.clone();
        held.push(sem.acquire().add_callback(move |s| {
            c.fetch_add(1, Ordering::SeqCst);
            Ok(s)
        }));
        assert_eq!(count.load(Ordering::SeqCst), i);
    }
    let success = Arc::new(Mutex::new(Vec::new()));
    let s = success.clone();
    let queued = sem.acquire().add_callbacks(
        move |_| {
            s.lock().unwrap().push(false);
            Ok(())
        },
        {
            let s = success.clone();
            move |f: Failure| {
                assert!(f.is::<CancelledError>());
                s.lock().unwrap().push(true);
                Ok(())
            }
        },
    );
    queued.cancel();
    assert_eq!(*success.lock().unwrap(), [true]);

    let c = count.clone();
    let next = sem.acquire().add_callback(move |s| {
        c.fetch_add(1, Ordering::SeqCst);
        Ok(s)
    });
    assert_eq!(count.load(Ordering::SeqCst), N);
    sem.release().unwrap();
    assert_eq!(count.load(Ordering::SeqCst), N + 1);
    for _ in 0..N {
        sem.release().unwrap();
        assert_eq!(count.load(Ordering::SeqCst), N + 1);
    }
    assert_eq!(sem.tokens(), N);
    drop((held, next));
}

// Twisted: test_defer.py OtherPrimitivesTests.test_semaphoreInvalidTokens
#[test]
fn semaphore_needs_at_least_one_token() {
    assert!(matches!(
        DeferredSemaphore::new(0),
        Err(InvalidTokensError { .. })
    ));
    assert_eq!(DeferredSemaphore::new(1).unwrap().limit(), 1);
}

#[test]
fn releasing_a_semaphore_too_often_is_a_typed_error() {
    let sem = DeferredSemaphore::new(2).unwrap();
    assert!(matches!(
        sem.release(),
        Err(TooManyReleasesError { limit: 2, .. })
    ));
}

// Twisted: test_defer.py OtherPrimitivesTests.test_cancelSemaphoreAfterAcquired
// and test_cancelSemaphoreBeforeAcquired
#[test]
fn cancelling_semaphore_acquires() {
    let sem = DeferredSemaphore::new(1).unwrap();
    let d = sem.acquire();
    d.cancel();
    assert!(d.try_take().unwrap().is_ok());
    assert_eq!(sem.tokens(), 0);

    let queued = sem.acquire();
    queued.cancel();
    assert!(
        queued
            .try_take()
            .unwrap()
            .unwrap_err()
            .is::<CancelledError>()
    );
    sem.release().unwrap();
    assert_eq!(sem.tokens(), 1);
}

// Twisted: CoroutineContextVarsTests.test_asyncWithSemaphore
#[tokio::test]
async fn async_semaphore_guards_nest() {
    let sem = DeferredSemaphore::new(3).unwrap();
    let _outer = sem.acquire_guard().await.unwrap();
    assert_eq!(sem.tokens(), 2);
    let d2;
    {
        let _inner = sem.acquire_guard().await.unwrap();
        assert_eq!(sem.tokens(), 1);
        let d1 = sem.acquire_guard();
        d2 = sem.acquire_guard();
        assert!(d1.is_called());
        assert_eq!(sem.tokens(), 0);
        assert!(!d2.is_called());
        drop(d1); // gives its token back: to d2
        assert!(d2.is_called());
    }
    drop(d2);
    assert_eq!(sem.tokens(), 2);
}

// --- DeferredQueue ----------------------------------------------------------

// Twisted: test_defer.py OtherPrimitivesTests.testQueue
#[test]
fn queue_put_get_overflow_underflow() {
    let queue = DeferredQueue::new(Some(2), Some(2));
    let got = Arc::new(Mutex::new(Vec::new()));
    let g1 = record(queue.get().unwrap(), &got);
    let g2 = record(queue.get().unwrap(), &got);
    assert!(matches!(
        queue.get(),
        Err(QueueUnderflow { backlog: 2, .. })
    ));
    queue.put(0).unwrap();
    queue.put(1).unwrap();
    let values: Vec<i32> = got.lock().unwrap().drain(..).map(Result::unwrap).collect();
    assert_eq!(values, [0, 1]);
    queue.put(2).unwrap();
    queue.put(3).unwrap();
    let overflow: QueueOverflow<i32> = queue.put(4).unwrap_err();
    assert_eq!(overflow.size(), 2);
    assert_eq!(overflow.into_inner(), 4);
    let g3 = record(queue.get().unwrap(), &got);
    let g4 = record(queue.get().unwrap(), &got);
    let values: Vec<i32> = got.lock().unwrap().drain(..).map(Result::unwrap).collect();
    assert_eq!(values, [2, 3]);
    drop((g1, g2, g3, g4));

    let unbounded = DeferredQueue::default();
    let a = unbounded.get().unwrap();
    let b = unbounded.get().unwrap();
    unbounded.put(0).unwrap();
    unbounded.put(1).unwrap();
    assert_eq!(
        (
            a.try_take().unwrap().unwrap(),
            b.try_take().unwrap().unwrap()
        ),
        (0, 1)
    );

    assert!(DeferredQueue::new(Some(0), None).put(()).is_err());
    assert!(DeferredQueue::<()>::new(None, Some(0)).get().is_err());
}

#[test]
fn put_hands_to_a_waiter_even_with_size_zero() {
    let queue = DeferredQueue::new(Some(0), None);
    let d = queue.get().unwrap();
    queue.put("x").unwrap();
    assert_eq!(d.try_take().unwrap().unwrap(), "x");
}

// Twisted: test_defer.py OtherPrimitivesTests.test_cancelQueueAfterSynchronousGet
#[test]
fn cancelling_a_get_that_has_its_value_does_nothing() {
    let queue = DeferredQueue::new(None, None);
    queue.put(1).unwrap();
    let d = queue.get().unwrap();
    d.cancel();
    assert_eq!(d.try_take().unwrap().unwrap(), 1);
}

// Twisted: test_defer.py OtherPrimitivesTests.test_cancelQueueAfterGet
#[test]
fn cancelling_a_pending_get_removes_it_from_the_waiters() {
    let queue = DeferredQueue::new(None, None);
    let d = queue.get().unwrap();
    d.cancel();
    assert!(d.try_take().unwrap().unwrap_err().is::<CancelledError>());
    assert_eq!(queue.waiting(), 0);
    queue.put(None::<u8>).unwrap();
    assert_eq!(queue.pending(), 1);
    assert_eq!(queue.get().unwrap().try_take().unwrap().unwrap(), None);
}

#[test]
fn queue_waiter_callbacks_may_put_and_get() {
    let queue = DeferredQueue::new(None, None);
    let q = queue.clone();
    let second = Arc::new(Mutex::new(None));
    let s = second.clone();
    let first = queue.get().unwrap().add_callback(move |v: u32| {
        q.put(v + 1).unwrap(); // re-entrant put from inside the hand-over
        *s.lock().unwrap() = Some(q.get().unwrap());
        Ok(v)
    });
    queue.put(1).unwrap();
    assert_eq!(first.try_take().unwrap().unwrap(), 1);
    let second = second.lock().unwrap().take().unwrap();
    assert_eq!(second.try_take().unwrap().unwrap(), 2);
}

// --- Many threads -------------------------------------------------------------

/// A tiny xorshift64 generator: reproducible, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Spins until `d` fires; cancels it after a random number of spins when
/// `cancel_after` is set. While it waits, `d` can also be cancelled from the
/// chaos thread through `slot`. Panics (instead of hanging) if it never
/// fires.
fn wait<T: Send + 'static>(
    d: Deferred<T>,
    cancel_after: Option<u64>,
    slot: &Slot,
) -> Result<T, Failure> {
    *slot.lock().unwrap() = Some(d.cancel_handle());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut spins = 0;
    let r = loop {
        if let Some(r) = d.try_take() {
            break r;
        }
        if cancel_after == Some(spins) {
            d.cancel();
        }
        spins += 1;
        assert!(Instant::now() < deadline, "a waiter was lost");
        std::thread::yield_now();
    };
    *slot.lock().unwrap() = None;
    r
}

type Slot = Mutex<Option<CancelHandle>>;

/// Cancels whatever the workers are waiting on, at random, until `done`.
fn chaos(slots: &[Slot], done: &AtomicBool, seed: u64) {
    let mut rng = Rng(seed);
    while !done.load(Ordering::SeqCst) {
        let i = rng.below(slots.len() as u64) as usize;
        let handle = slots[i].lock().unwrap().clone();
        if let Some(h) = handle {
            if rng.below(4) == 0 {
                h.cancel();
            }
        }
        std::thread::yield_now();
    }
}

/// Runs `work(t, slot)` in `workers` threads, plus one chaos thread that
/// cancels, at random, whatever the workers publish in their slots: 8
/// threads in all.
fn with_chaos(seed: u64, work: impl Fn(u64, &Slot) + Sync) {
    let slots: Vec<Slot> = (0..WORKERS).map(|_| Mutex::new(None)).collect();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let chaos_thread = s.spawn(|| chaos(&slots, &done, seed));
        let workers: Vec<_> = (0..WORKERS)
            .map(|t| {
                let (slots, work) = (&slots, &work);
                s.spawn(move || work(t, &slots[t as usize]))
            })
            .collect();
        for w in workers {
            if let Err(panic) = w.join() {
                done.store(true, Ordering::SeqCst);
                std::panic::resume_unwind(panic);
            }
        }
        done.store(true, Ordering::SeqCst);
        chaos_thread.join().unwrap();
    });
}

const WORKERS: u64 = 7;

/// `default`, or `big` with `TOKIO_DEFERRED_STRESS=1` (about 10^6 operations
/// per primitive, like `tests/stress.rs`).
fn scale(default: u64, big: u64) -> u64 {
    if std::env::var_os("TOKIO_DEFERRED_STRESS").is_some() {
        big
    } else {
        default
    }
}

/// Acquire/release rounds per worker.
fn rounds() -> u64 {
    scale(1000, 150_000)
}

#[test]
fn eight_threads_hammer_a_lock_with_random_cancels() {
    let lock = DeferredLock::new();
    let inside = Arc::new(AtomicUsize::new(0));
    let served = AtomicUsize::new(0);
    let cancelled = AtomicUsize::new(0);
    with_chaos(0x5851_F42D_4C95_7F2D, |t, slot| {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t + 1));
        for _ in 0..rounds() {
            let cancel = (rng.below(4) == 0).then(|| rng.below(3));
            let critical = |inside: &AtomicUsize| {
                assert_eq!(
                    inside.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two holders at once"
                );
                std::hint::spin_loop();
                inside.fetch_sub(1, Ordering::SeqCst);
            };
            let outcome = match rng.below(3) {
                0 => wait(lock.acquire_guard(), cancel, slot).map(|guard| {
                    critical(&inside);
                    drop(guard);
                }),
                1 => wait(lock.acquire(), cancel, slot).map(|l| {
                    critical(&inside);
                    l.release().unwrap();
                }),
                _ => {
                    let inside = inside.clone();
                    wait(
                        lock.run(move || {
                            critical(&inside);
                            Ok::<_, Failure>(())
                        }),
                        cancel,
                        slot,
                    )
                }
            };
            match outcome {
                Ok(()) => served.fetch_add(1, Ordering::SeqCst),
                Err(f) => {
                    assert!(f.is::<CancelledError>(), "{f}");
                    cancelled.fetch_add(1, Ordering::SeqCst)
                }
            };
        }
    });
    let total = served.load(Ordering::SeqCst) + cancelled.load(Ordering::SeqCst);
    assert_eq!(total as u64, WORKERS * rounds());
    assert!(served.load(Ordering::SeqCst) > 0);
    assert!(!lock.is_locked());
    assert_eq!(lock.waiting(), 0);
}

#[test]
fn eight_threads_hammer_a_semaphore_with_random_cancels() {
    const LIMIT: usize = 3;
    let sem = DeferredSemaphore::new(LIMIT).unwrap();
    let inside = AtomicUsize::new(0);
    let served = AtomicUsize::new(0);
    let cancelled = AtomicUsize::new(0);
    with_chaos(0x1405_7B7E_F767_814F, |t, slot| {
        let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (t + 1));
        for _ in 0..rounds() {
            let cancel = (rng.below(4) == 0).then(|| rng.below(3));
            let critical = || {
                assert!(
                    inside.fetch_add(1, Ordering::SeqCst) < LIMIT,
                    "too many holders"
                );
                std::hint::spin_loop();
                inside.fetch_sub(1, Ordering::SeqCst);
            };
            let outcome = if rng.below(2) == 0 {
                wait(sem.acquire_guard(), cancel, slot).map(|guard| {
                    critical();
                    drop(guard);
                })
            } else {
                wait(sem.acquire(), cancel, slot).map(|s| {
                    critical();
                    s.release().unwrap();
                })
            };
            match outcome {
                Ok(()) => served.fetch_add(1, Ordering::SeqCst),
                Err(f) => {
                    assert!(f.is::<CancelledError>(), "{f}");
                    cancelled.fetch_add(1, Ordering::SeqCst)
                }
            };
        }
    });
    let total = served.load(Ordering::SeqCst) + cancelled.load(Ordering::SeqCst);
    assert_eq!(total as u64, WORKERS * rounds());
    assert_eq!(sem.tokens(), LIMIT);
    assert_eq!(sem.waiting(), 0);
}

#[test]
fn eight_threads_hammer_a_queue_with_random_cancels() {
    const PRODUCERS: u64 = 3;
    let items: u64 = scale(1000, 350_000); // per producer
    let total: u64 = PRODUCERS * items;
    let queue = DeferredQueue::<u64>::new(Some(8), None);
    let seen: Vec<AtomicU8> = (0..total).map(|_| AtomicU8::new(0)).collect();
    let got = AtomicUsize::new(0);
    let cancels = AtomicUsize::new(0);
    with_chaos(0x2127_599B_F432_5C37, |t, slot| {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ (t + 1));
        let deadline = Instant::now() + Duration::from_secs(scale(60, 3600));
        if t < PRODUCERS {
            for i in 0..items {
                let mut item = t * items + i;
                while let Err(full) = queue.put(item) {
                    item = full.into_inner(); // the value comes back
                    assert!(Instant::now() < deadline, "producer stuck");
                    std::thread::yield_now();
                }
            }
            return;
        }
        while (got.load(Ordering::SeqCst) as u64) < total {
            let d = queue.get().unwrap();
            *slot.lock().unwrap() = Some(d.cancel_handle());
            let cancel_after = (rng.below(3) == 0).then(|| rng.below(4));
            let mut spins = 0;
            let r = loop {
                if let Some(r) = d.try_take() {
                    break r;
                }
                // Stop waiting once every item was got by someone.
                if cancel_after == Some(spins) || got.load(Ordering::SeqCst) as u64 >= total {
                    d.cancel();
                }
                spins += 1;
                assert!(Instant::now() < deadline, "consumer stuck");
                std::thread::yield_now();
            };
            *slot.lock().unwrap() = None;
            match r {
                Ok(item) => {
                    assert_eq!(
                        seen[item as usize].fetch_add(1, Ordering::SeqCst),
                        0,
                        "item {item} got twice"
                    );
                    got.fetch_add(1, Ordering::SeqCst);
                }
                Err(f) => {
                    assert!(f.is::<CancelledError>(), "{f}");
                    cancels.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    assert!(
        seen.iter().all(|n| n.load(Ordering::SeqCst) == 1),
        "an item was lost"
    );
    assert_eq!(queue.pending(), 0);
    assert_eq!(queue.waiting(), 0);
    assert!(cancels.load(Ordering::Relaxed) > 0);
}

#[test]
fn primitives_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<DeferredLock>();
    check::<tokio_deferred::DeferredLockGuard>();
    check::<DeferredSemaphore>();
    check::<tokio_deferred::DeferredSemaphoreGuard>();
    check::<DeferredQueue<String>>();
    check::<tokio_deferred::DeferredList<String>>();
    check::<tokio_deferred::Gather<String>>();
}
