//! Stress test: 8 threads run random operations over shared Deferreds and
//! the invariants are checked at the end: every Deferred fired exactly once
//! or was cancelled, every callback ran exactly once, no result was lost.
//!
//! About 20,000 operations by default; `TOKIO_DEFERRED_STRESS=1` runs
//! 1,000,000 (`TOKIO_DEFERRED_STRESS=<n>` runs `n`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_deferred::{CancelHandle, CancelledError, Deferred, Failure, Resolver};

const THREADS: u64 = 8;
const SLOTS: usize = 16;

/// A hand-written xorshift64* generator: deterministic per thread, no deps.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What happened to one Deferred, for the final check.
struct Record {
    resolver: Resolver<u64>,
    cancel: CancelHandle,
    has_canceller: bool,
    /// Values of the `callback()` calls that returned `Ok`.
    ok_fires: Mutex<Vec<u64>>,
    /// Callbacks added (each gets the next id).
    added: AtomicU64,
    /// Ids of the callbacks that ran.
    ran: Mutex<Vec<u64>>,
    cancels: AtomicU64,
    /// Outstanding pauses; changed only by the holder of the handle.
    pauses: AtomicU64,
    /// The result once taken (by `try_take`, `.await`, or the final sweep).
    result: Mutex<Option<Result<u64, Failure>>>,
}

fn new_record(rng: &mut Rng) -> (Arc<Record>, Deferred<u64>) {
    let has_canceller = rng.below(2) == 0;
    let (d, resolver) = if has_canceller {
        Deferred::with_canceller(|_r: &Resolver<u64>| {})
    } else {
        Deferred::new()
    };
    let rec = Arc::new(Record {
        resolver,
        cancel: d.cancel_handle(),
        has_canceller,
        ok_fires: Mutex::new(Vec::new()),
        added: AtomicU64::new(0),
        ran: Mutex::new(Vec::new()),
        cancels: AtomicU64::new(0),
        pauses: AtomicU64::new(0),
        result: Mutex::new(None),
    });
    (rec, d)
}

/// A shared Deferred: its record and its handle (out while a thread uses it).
type Slot = Mutex<(Arc<Record>, Option<Deferred<u64>>)>;

struct World {
    slots: Vec<Slot>,
    /// Deferreds replaced in their slot, with their handle if still unread.
    retired: Mutex<Vec<(Arc<Record>, Option<Deferred<u64>>)>>,
}

impl World {
    fn record(&self, s: usize) -> Arc<Record> {
        self.slots[s].lock().unwrap().0.clone()
    }

    fn take(&self, s: usize) -> Option<(Arc<Record>, Deferred<u64>)> {
        let mut slot = self.slots[s].lock().unwrap();
        let d = slot.1.take()?;
        Some((slot.0.clone(), d))
    }

    fn put(&self, s: usize, d: Deferred<u64>) {
        self.slots[s].lock().unwrap().1 = Some(d);
    }

    /// Retires the slot's Deferred (whose handle the caller holds, or took)
    /// and puts a fresh one in its place.
    fn renew(&self, s: usize, rng: &mut Rng, old: Option<Deferred<u64>>) {
        let (rec, d) = new_record(rng);
        let mut slot = self.slots[s].lock().unwrap();
        let old_rec = std::mem::replace(&mut slot.0, rec);
        slot.1 = Some(d);
        drop(slot);
        self.retired.lock().unwrap().push((old_rec, old));
    }
}

fn unpause_all(rec: &Record, d: &Deferred<u64>) {
    while rec.pauses.load(Ordering::Relaxed) > 0 {
        rec.pauses.fetch_sub(1, Ordering::Relaxed);
        d.unpause();
    }
}

fn fire(rec: &Record, value: u64) {
    if rec.resolver.callback(value).is_ok() {
        rec.ok_fires.lock().unwrap().push(value);
    }
}

fn worker(world: &World, thread: u64, ops: u64) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (thread + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    for n in 0..ops {
        let s = rng.below(SLOTS as u64) as usize;
        let value = (thread << 40) | (n << 8);
        match rng.below(100) {
            0..30 => fire(&world.record(s), value),
            30..60 => {
                let Some((rec, d)) = world.take(s) else {
                    continue;
                };
                let id = rec.added.fetch_add(1, Ordering::Relaxed);
                let r2 = rec.clone();
                let d = d.add_both(move |r: Result<u64, Failure>| {
                    r2.ran.lock().unwrap().push(id);
                    r.map(|v| v + 1)
                });
                world.put(s, d);
            }
            60..70 => {
                let rec = world.record(s);
                rec.cancels.fetch_add(1, Ordering::Relaxed);
                rec.cancel.cancel();
            }
            70..80 => {
                let Some((rec, d)) = world.take(s) else {
                    continue;
                };
                if rng.below(2) == 0 {
                    rec.pauses.fetch_add(1, Ordering::Relaxed);
                    d.pause();
                } else if rec.pauses.load(Ordering::Relaxed) > 0 {
                    rec.pauses.fetch_sub(1, Ordering::Relaxed);
                    d.unpause();
                }
                world.put(s, d);
            }
            80..85 => {
                let Some((rec, d)) = world.take(s) else {
                    continue;
                };
                match d.try_take() {
                    Some(r) => {
                        *rec.result.lock().unwrap() = Some(r);
                        world.renew(s, &mut rng, None);
                    }
                    None => world.put(s, d),
                }
            }
            85..90 => {
                let Some((rec, d)) = world.take(s) else {
                    continue;
                };
                unpause_all(&rec, &d);
                world.renew(s, &mut rng, None);
                // Another thread may win this fire, or be running the chain.
                fire(&rec, value);
                let r = rt.block_on(d);
                *rec.result.lock().unwrap() = Some(r);
            }
            _ => {
                let Some((_, d)) = world.take(s) else {
                    continue;
                };
                world.renew(s, &mut rng, Some(d));
            }
        }
    }
}

/// A broken invariant, or one of the two known core races (see
/// `race_a_*`, `race_b_*` below) that the default run tolerates and counts.
enum Broken {
    Invariant(String),
    KnownRace(String),
}

fn check(rec: &Record) -> Result<(), Broken> {
    let added = rec.added.load(Ordering::Relaxed);
    let mut ran = rec.ran.lock().unwrap().clone();
    ran.sort_unstable();
    if ran != (0..added).collect::<Vec<_>>() {
        return Err(Broken::Invariant(format!(
            "{added} callbacks added, these ran: {ran:?}"
        )));
    }
    let fires = rec.ok_fires.lock().unwrap().clone();
    let cancels = rec.cancels.load(Ordering::Relaxed);
    let canceller = rec.has_canceller;
    match rec.result.lock().unwrap().take() {
        None => Err(Broken::Invariant("no result was taken".to_owned())),
        Some(Ok(v)) => match fires.as_slice() {
            [v0] if v == v0 + added => Ok(()),
            // Known race A: a canceller-less cancel() lost to a callback(),
            // yet armed the "swallow one late fire" flag.
            [a, b] if !canceller && cancels > 0 && (v == a + added || v == b + added) => {
                Err(Broken::KnownRace(format!(
                    "A: result {v}, a late fire was swallowed: {fires:?}"
                )))
            }
            _ => Err(Broken::Invariant(format!(
                "result {v} with {added} callbacks, accepted fires {fires:?}, \
                 {cancels} cancels, canceller {canceller}"
            ))),
        },
        Some(Err(f)) if f.is::<CancelledError>() => {
            // A canceller-less cancel accepts (and drops) one late fire.
            let allowed = if canceller { 0 } else { 1 };
            if cancels > 0 && fires.len() <= allowed {
                Ok(())
            } else if canceller && cancels > 1 && fires.len() == 1 {
                // Known race B: two cancel()s raced; the second saw the
                // canceller already taken and acted as if there was none.
                Err(Broken::KnownRace(format!(
                    "B: cancelled, a late fire was swallowed: {fires:?}"
                )))
            } else {
                Err(Broken::Invariant(format!(
                    "cancelled with {cancels} cancels, accepted fires {fires:?}, \
                     canceller {canceller}"
                )))
            }
        }
        Some(Err(f)) => Err(Broken::Invariant(format!("unexpected failure {f}"))),
    }
}

#[test]
fn threads_never_lose_or_duplicate_results_or_callbacks() {
    let total: u64 = match std::env::var("TOKIO_DEFERRED_STRESS").as_deref() {
        Ok("1") => 1_000_000,
        Ok(n) => n.parse().unwrap_or(1_000_000),
        Err(_) => 20_000,
    };
    let mut rng = Rng(42);
    let world = World {
        slots: (0..SLOTS)
            .map(|_| {
                let (rec, d) = new_record(&mut rng);
                Mutex::new((rec, Some(d)))
            })
            .collect(),
        retired: Mutex::new(Vec::new()),
    };
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let world = &world;
            scope.spawn(move || worker(world, t, total / THREADS));
        }
    });
    // Final sweep: unpause, fire what never fired, and take every result.
    let mut all = std::mem::take(&mut *world.retired.lock().unwrap());
    for slot in &world.slots {
        let mut slot = slot.lock().unwrap();
        all.push((slot.0.clone(), slot.1.take()));
    }
    let mut failures = Vec::new();
    let mut known = Vec::new();
    let (mut fired, mut cancelled) = (0, 0);
    for (n, (rec, d)) in all.iter().enumerate() {
        if let Some(d) = d {
            unpause_all(rec, d);
            fire(rec, u64::MAX / 2);
            match d.try_take() {
                Some(r) => *rec.result.lock().unwrap() = Some(r),
                None => failures.push(format!("#{n}: finished Deferred has no result: {d:?}")),
            }
        }
        match rec.result.lock().unwrap().as_ref() {
            Some(Ok(_)) => fired += 1,
            Some(Err(_)) => cancelled += 1,
            None => {}
        }
        match check(rec) {
            Ok(()) => {}
            Err(Broken::Invariant(e)) => failures.push(format!("#{n}: {e}")),
            Err(Broken::KnownRace(e)) => known.push(format!("#{n}: {e}")),
        }
    }
    // Races A and B (see `race_a_*`, `race_b_*`) were core bugs, fixed in
    // `cancel_one`; their checks now count as broken invariants.
    failures.extend(known.iter().cloned());
    assert!(
        failures.is_empty(),
        "{} of {} Deferreds broke an invariant:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    assert_eq!(
        fired + cancelled,
        all.len(),
        "every Deferred fired or was cancelled"
    );
    println!(
        "{total} ops over {} Deferreds: {fired} fired, {cancelled} cancelled, \
         {} cancel races (must be 0)",
        all.len(),
        known.len()
    );
}

/// Runs `a` and `b` on two threads at once, on each of `rounds` fresh
/// states (two long-lived threads meeting at a barrier every round), then
/// counts the states for which `check` fails.
fn race<S: Sync>(
    rounds: usize,
    make: impl Fn() -> S,
    a: impl Fn(&S) + Sync,
    b: impl Fn(&S) + Sync,
    check: impl Fn(S) -> bool,
) -> usize {
    let states: Vec<S> = (0..rounds).map(|_| make()).collect();
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for s in &states {
                barrier.wait();
                a(s);
            }
        });
        for s in &states {
            barrier.wait();
            b(s);
        }
    });
    states.into_iter().map(check).filter(|ok| !ok).count()
}

// Race A (a core bug found by this test, fixed in `cancel_one`): `cancel()` on a
// Deferred with no canceller sets the "swallow one late fire" flag, releases
// the lock, then fails the Deferred. If a `callback()` fires it in between,
// the cancel is a no-op in effect, but the flag stays armed: a later,
// genuinely duplicate `callback()` is silently accepted instead of
// returning `AlreadyCalledError`. Twisted (single-threaded) never arms the
// flag on a Deferred that ends up fired by someone else.
#[test]

fn race_a_cancel_losing_to_callback_must_not_swallow_a_later_fire() {
    let hits = race(
        200_000,
        Deferred::<u32>::new,
        |(d, _)| d.cancel(),
        |(_, r)| drop(r.callback(1)),
        |(d, r)| {
            let cancelled = matches!(d.try_take(), Some(Err(f)) if f.is::<CancelledError>());
            // Either the cancel won (one late fire is swallowed, as in
            // Twisted) or the fire won (a second fire must be refused).
            cancelled || r.callback(2).is_err()
        },
    );
    assert_eq!(
        hits, 0,
        "{hits} of 200000 rounds swallowed a duplicate fire"
    );
}

// Race B (a core bug found by this test, fixed in `cancel_one`): two concurrent
// `cancel()`s of a Deferred *with* a canceller. The first takes the
// canceller out and releases the lock to run it; the second then sees no
// canceller, behaves as for a canceller-less Deferred (arms the late-fire
// swallow) and fails it with `CancelledError`, possibly while the canceller
// is still running. A later `callback()` is then silently accepted instead
// of returning `AlreadyCalledError` (Twisted: a Deferred with a canceller
// never swallows a late fire).
#[test]

fn race_b_concurrent_cancels_must_not_swallow_a_later_fire() {
    let hits = race(
        20_000,
        || Deferred::<u32>::with_canceller(|_r: &Resolver<u32>| std::thread::yield_now()),
        |(d, _)| d.cancel(),
        |(d, _)| d.cancel(),
        |(_, r)| r.callback(2).is_err(),
    );
    assert_eq!(
        hits, 0,
        "{hits} of 20000 rounds swallowed a fire after cancel"
    );
}
