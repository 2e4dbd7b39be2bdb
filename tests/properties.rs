//! Property tests (`proptest`) of invariants that need no oracle:
//! exactly-once delivery, FIFO order of callbacks, pause/unpause balance,
//! every failure consumed or reported once as unhandled, and FIFO
//! exactly-once delivery through a `DeferredQueue`.
//!
//! Each property builds a random chain from a generated plan, runs it, and
//! compares with a small model of Twisted's `_runCallbacks` (a link is a
//! callback/errback pair; exactly one side runs per result). Cases are kept
//! small (at most 12 links) so the whole file stays quick in a debug build.

use std::sync::{Arc, Mutex};

mod common;

use common::capture_unhandled;
use proptest::prelude::*;
use tokio_deferred::{Deferred, DeferredQueue, Failure};

/// The error of a failing link or a failed fire, carrying its tag.
#[derive(Debug, thiserror::Error)]
#[error("boom {0}")]
struct Boom(i64);

/// What a link does with the result it gets.
#[derive(Debug, Clone, Copy)]
enum Link {
    /// Callback adds `k`; errback passes the failure on.
    Add(i64),
    /// Callback fails with `Boom(k)`; errback passes the failure on.
    Fail(i64),
    /// Callback passes the value on; errback recovers with `k`.
    Recover(i64),
    /// Callback fails with `Boom(k)`; errback recovers with `k`.
    Flip(i64),
}

fn link() -> impl Strategy<Value = Link> {
    prop_oneof![
        (0i64..100).prop_map(Link::Add),
        (0i64..100).prop_map(Link::Fail),
        (0i64..100).prop_map(Link::Recover),
        (0i64..100).prop_map(Link::Flip),
    ]
}

/// The model: the result after `links`, starting from `start`.
fn model(start: Result<i64, i64>, links: &[Link]) -> Result<i64, i64> {
    links.iter().fold(start, |r, l| match (r, *l) {
        (Ok(v), Link::Add(k)) => Ok(v + k),
        (Ok(_), Link::Fail(k) | Link::Flip(k)) => Err(k),
        (Ok(v), Link::Recover(_)) => Ok(v),
        (Err(e), Link::Add(_) | Link::Fail(_)) => Err(e),
        (Err(_), Link::Recover(k) | Link::Flip(k)) => Ok(k),
    })
}

type Seen = Arc<Mutex<Vec<usize>>>;

/// Adds `link` as link number `id`; each side records `id` when it runs.
fn add(d: Deferred<i64>, id: usize, link: Link, seen: &Seen) -> Deferred<i64> {
    let (s1, s2) = (seen.clone(), seen.clone());
    d.add_callbacks(
        move |v: i64| {
            s1.lock().unwrap().push(id);
            match link {
                Link::Add(k) => Ok(v + k),
                Link::Fail(k) | Link::Flip(k) => Err(Failure::new(Boom(k))),
                Link::Recover(_) => Ok(v),
            }
        },
        move |f: Failure| {
            s2.lock().unwrap().push(id);
            match link {
                Link::Add(_) | Link::Fail(_) => Err(f),
                Link::Recover(k) | Link::Flip(k) => Ok(k),
            }
        },
    )
}

fn boom_of(f: &Failure) -> i64 {
    f.downcast_ref::<Boom>().expect("a Boom failure").0
}

/// One step of a plan over a single Deferred.
#[derive(Debug, Clone, Copy)]
enum Step {
    Link(Link),
    Pause,
    Unpause,
    /// `callback(v)` (Ok) or `errback(Boom(k))` (Err).
    Fire(Result<i64, i64>),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => link().prop_map(Step::Link),
        1 => Just(Step::Pause),
        1 => Just(Step::Unpause),
        1 => (0i64..100).prop_map(|v| Step::Fire(Ok(v))),
        1 => (0i64..100).prop_map(|k| Step::Fire(Err(k))),
    ]
}

/// Runs `f` under a thread-local subscriber; returns the number of
/// `tokio_deferred::unhandled` events.
fn count_unhandled(f: impl FnOnce()) -> usize {
    capture_unhandled(f).1.len()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Exactly-once delivery and FIFO order: whatever the plan (links added
    /// before or after the fire, extra fires, pauses), every link runs at
    /// most once, links run in the order they were added, a second fire is
    /// refused, and once the pauses are balanced every link has run and the
    /// result is the model's.
    // Twisted: test_defer.py DeferredTests.test_callbackWithoutArgs,
    // test_pausedDeferredChained, test_alreadyCalled_CC (AlreadyCalledError).
    #[test]
    fn every_link_runs_once_in_order_and_the_result_is_delivered_once(
        steps in prop::collection::vec(step(), 0..16),
    ) {
        common::scoped_tracing();
        let seen = Seen::default();
        let (d, r) = Deferred::<i64>::new();
        let mut d = Some(d);
        let mut links = Vec::new();
        let mut fired: Option<Result<i64, i64>> = None;
        let mut pauses = 0usize;
        for s in steps {
            let cur = d.take().unwrap();
            d = Some(match s {
                Step::Link(l) => {
                    links.push(l);
                    add(cur, links.len() - 1, l, &seen)
                }
                Step::Pause => { cur.pause(); pauses += 1; cur }
                Step::Unpause => { cur.unpause(); pauses = pauses.saturating_sub(1); cur }
                Step::Fire(res) => {
                    let accepted = match res {
                        Ok(v) => r.callback(v).is_ok(),
                        Err(k) => r.errback(Boom(k)).is_ok(),
                    };
                    // Exactly one fire is accepted.
                    prop_assert_eq!(accepted, fired.is_none());
                    fired.get_or_insert(res);
                    cur
                }
            });
            let ran = seen.lock().unwrap().clone();
            // FIFO and at most once: the links that ran are 0, 1, 2, ...
            prop_assert!(ran.iter().copied().eq(0..ran.len()), "ran {:?}", ran);
            if fired.is_none() {
                prop_assert!(ran.is_empty());
            } else if pauses == 0 {
                prop_assert_eq!(ran.len(), links.len());
            }
        }
        let d = d.take().unwrap();
        while pauses > 0 {
            d.unpause();
            pauses -= 1;
        }
        let start = *fired.get_or_insert_with(|| {
            r.callback(0).unwrap();
            Ok(0)
        });
        let ran = seen.lock().unwrap().clone();
        prop_assert!(ran.iter().copied().eq(0..links.len()), "ran {:?}", ran);
        let got = d.try_take().expect("a result").map_err(|f| boom_of(&f));
        prop_assert_eq!(got, model(start, &links));
        // Delivered once: the result cannot be taken again.
        prop_assert!(d.try_take().is_none_or(|r| r.is_err()));
        prop_assert!(r.callback(1).is_err());
    }

    /// Pause/unpause balance: after the fire, callbacks run if and only if
    /// every pause has had its unpause (an extra unpause is ignored, unlike
    /// Twisted, DIFFERENCES.md D1); nothing runs while paused.
    // Twisted: test_defer.py DeferredTests.test_pausedDeferredChained,
    // test_pause/unpause in test_callbackOrder-style checks.
    #[test]
    fn callbacks_run_iff_pauses_are_balanced(
        ops in prop::collection::vec(any::<bool>(), 0..12),
        fire_at in 0usize..13,
        extra_unpauses in 0usize..3,
        n_links in 1usize..6,
    ) {
        common::scoped_tracing();
        let seen = Seen::default();
        let (d, r) = Deferred::<i64>::new();
        let mut d = d;
        for id in 0..n_links {
            d = add(d, id, Link::Add(1), &seen);
        }
        for _ in 0..extra_unpauses {
            d.unpause();
        }
        let fire_at = fire_at.min(ops.len());
        let mut pauses = 0usize;
        // Whether the chain had a moment, after the fire, with no pause.
        let mut free = false;
        for (n, pause) in ops.into_iter().map(Some).chain([None]).enumerate() {
            if n == fire_at {
                let before = seen.lock().unwrap().len();
                r.callback(0).unwrap();
                free |= pauses == 0;
                let after = seen.lock().unwrap().len();
                prop_assert_eq!(after, if pauses == 0 { n_links } else { before });
            }
            let Some(pause) = pause else { break };
            let before = seen.lock().unwrap().len();
            if pause {
                d.pause();
                pauses += 1;
            } else {
                d.unpause();
                pauses = pauses.saturating_sub(1);
            }
            let fired = n >= fire_at;
            let after = seen.lock().unwrap().len();
            // Callbacks run only at an unpause that balances the pauses
            // after the fire, and then all of them.
            if after != before {
                prop_assert!(!pause && pauses == 0 && fired && after == n_links);
            }
            free |= fired && pauses == 0;
            prop_assert_eq!(d.is_paused(), pauses > 0);
        }
        let ran = seen.lock().unwrap().len();
        prop_assert_eq!(ran == n_links, free);
        prop_assert_eq!(ran == 0, !free);
    }

    /// Every failure is either consumed (by an errback, or by taking the
    /// result) or reported exactly once as unhandled when the last handle
    /// goes; a success is never reported.
    // Twisted: test_defer.py LogTests.test_errorLog, test_errorLogNoRepr,
    // test_chainedErrorCleanup.
    #[test]
    fn every_failure_is_consumed_or_reported_once(
        start in prop_oneof![(0i64..100).prop_map(Ok), (0i64..100).prop_map(Err)],
        links in prop::collection::vec(link(), 0..8),
        take in any::<bool>(),
        fire_after in any::<bool>(),
    ) {
        common::scoped_tracing();
        let expected = model(start, &links);
        let seen = Seen::default();
        let events = count_unhandled(|| {
            let (d, r) = Deferred::<i64>::new();
            let fire = |r: &tokio_deferred::Resolver<i64>| match start {
                Ok(v) => r.callback(v).unwrap(),
                Err(k) => r.errback(Boom(k)).unwrap(),
            };
            if !fire_after {
                fire(&r);
            }
            let mut d = d;
            for (id, l) in links.iter().enumerate() {
                d = add(d, id, *l, &seen);
            }
            if fire_after {
                fire(&r);
            }
            if take {
                let got = d.try_take().expect("a result").map_err(|f| boom_of(&f));
                assert_eq!(got, expected);
            }
            drop(d);
            drop(r);
        });
        let reported = usize::from(expected.is_err() && !take);
        prop_assert_eq!(events, reported);
    }

    /// A DeferredQueue delivers every accepted item exactly once, in FIFO
    /// order, to the gets in the order they were made; cancelled gets take
    /// nothing; overflow and underflow refuse without losing anything.
    // Twisted: test_defer.py DeferredQueueTests.test_queue,
    // test_cancelQueueAfterSynchronousGet, test_cancelQueueAfterGet.
    #[test]
    fn a_queue_delivers_every_item_once_in_fifo_order(
        ops in prop::collection::vec(0u8..4, 0..40),
        size in prop::option::of(0usize..4),
        backlog in prop::option::of(0usize..4),
    ) {
        common::scoped_tracing();
        let q = DeferredQueue::<u32>::new(size, backlog);
        let got: Arc<Mutex<Vec<(usize, u32)>>> = Arc::default();
        let mut gets: Vec<Deferred<()>> = Vec::new();
        let mut accepted = Vec::new();
        let mut next = 0u32;
        for op in ops {
            match op {
                0 | 1 => {
                    next += 1;
                    match q.put(next) {
                        Ok(()) => accepted.push(next),
                        Err(_) => {
                            // Refused only when full and nobody waits.
                            prop_assert_eq!(q.waiting(), 0);
                            prop_assert_eq!(Some(q.pending()), size);
                        }
                    }
                }
                2 => match q.get() {
                    Ok(d) => {
                        let id = gets.len();
                        let got = got.clone();
                        gets.push(d.add_callback(move |v| {
                            got.lock().unwrap().push((id, v));
                            Ok(())
                        }));
                    }
                    Err(_) => {
                        prop_assert_eq!(q.pending(), 0);
                        prop_assert_eq!(Some(q.waiting()), backlog);
                    }
                },
                _ => {
                    // Cancel the oldest get that has not fired.
                    if let Some(d) = gets.iter().find(|d| !d.is_called()) {
                        d.cancel();
                    }
                }
            }
            let got = got.lock().unwrap();
            // FIFO, exactly once: the items got are the first accepted
            // ones, in order, and the rest are still buffered.
            let values: Vec<u32> = got.iter().map(|&(_, v)| v).collect();
            prop_assert_eq!(&values[..], &accepted[..values.len()]);
            prop_assert_eq!(values.len() + q.pending(), accepted.len());
            // Gets are served in the order they were made.
            prop_assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }
}
