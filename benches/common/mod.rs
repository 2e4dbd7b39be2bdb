//! Shared configuration for the criterion benches.
//!
//! Every group measures one of our operations (`ours`) and its anchor
//! (`anchor`) in the same run, so the ratio holds on a noisy machine.
//! `benches/report.py` pairs `<group>/ours` with `<group>/anchor` from
//! `target/criterion` and prints the tables of `BENCHMARKS.md`.
//!
//! To add a row: add `benches/<area>.rs` with `mod common;`, a `[[bench]]`
//! entry with `harness = false` in `Cargo.toml`, groups named as below, and
//! the group's target in `TARGETS` of `benches/report.py`.

#![allow(dead_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

use futures::future::JoinAll;
use tokio::sync::oneshot;
use tokio_deferred::{Deferred, Failure, Resolver, gather_results, succeed};

/// The id of our side of a group.
pub const OURS: &str = "ours";
/// The id of the anchor side of a group.
pub const ANCHOR: &str = "anchor";

/// Short measurements so the whole `cargo bench` stays well under 10 minutes
/// on 2 cores. `configure_from_args` lets the command line override them.
pub fn criterion() -> Criterion {
    Criterion::default()
        .without_plots()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
        .configure_from_args()
}

/// A current-thread runtime with everything enabled.
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a current-thread runtime")
}

/// A multi-thread runtime with two workers (the machine has 2 cores).
pub fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a multi-thread runtime")
}

/// A chain of `depth` nested Deferreds (each level's callback returns the
/// level below), unfired; the innermost Resolver fires it. The chain of the
/// nested rows (`core`) and of the allocation table (`alloc`).
pub fn nested(depth: u64) -> (Deferred<u64>, Resolver<u64>) {
    let (innermost, r) = Deferred::<u64>::new();
    let mut d = innermost;
    for _ in 0..depth {
        let prev = d;
        d = succeed(()).add_callback(move |_| prev);
    }
    (d, r)
}

/// The chain rows' workload: `new` + `n` x `add_callback` + fire + take
/// the result (`core`'s chain groups).
/// Inlined into the measured loop, as the code it replaced was.
#[inline(always)]
pub fn callback_chain(n: u64) -> u64 {
    let (d, r) = Deferred::<u64>::new();
    let mut d = d;
    for k in 0..n {
        let k = black_box(k);
        d = d.add_callback(move |v: u64| Ok::<_, Failure>(v.wrapping_add(k)));
    }
    r.callback(black_box(0)).unwrap();
    d.try_take().unwrap().unwrap()
}

/// `callback_chain` on the `!Send` flavour, [`LocalDeferred`]
/// (`core`'s `chain_*_local` groups).
#[inline(always)]
#[allow(dead_code)]
pub fn local_callback_chain(n: u64) -> u64 {
    let (d, r) = tokio_deferred::LocalDeferred::<u64>::new();
    let mut d = d;
    for k in 0..n {
        let k = black_box(k);
        d = d.add_callback(move |v: u64| Ok::<_, Failure>(v.wrapping_add(k)));
    }
    r.callback(black_box(0)).unwrap();
    d.try_take().unwrap().unwrap()
}

/// The chain rows' anchor: a `Vec<Box<dyn FnOnce(u64) -> u64>>` of `n`
/// closures, built and run in order (each closure captures a `u64`, so each
/// box is one allocation, as each callback is).
#[inline(always)]
pub fn boxed_closures(n: u64) -> u64 {
    let mut fs: Vec<Box<dyn FnOnce(u64) -> u64>> = Vec::with_capacity(n as usize);
    for k in 0..n {
        let k = black_box(k);
        fs.push(Box::new(move |v: u64| v.wrapping_add(k)));
    }
    let mut v = black_box(0u64);
    for f in fs {
        v = f(v);
    }
    v
}

/// The nested rows' workload: builds a chain of `depth` levels (not
/// timed), fires it from the innermost and takes the result at the top
/// (timed), then drops it (not timed). `core`'s `nested_chain_fire`.
pub fn time_nested_fire(depth: u64) -> Duration {
    let (d, r) = nested(depth);
    let start = Instant::now();
    r.callback(black_box(41)).unwrap();
    black_box(d.try_take().unwrap().unwrap());
    let elapsed = start.elapsed();
    drop(d);
    elapsed
}

/// For a bench target with its own `main` (no criterion): whether
/// `cargo bench` selected it. `cargo bench` passes `--bench`; a filter
/// argument that names another bench deselects this one.
pub fn selected(name: &str) -> bool {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    filter.is_none_or(|f| name.contains(f.as_str()))
}

/// `n` unfired Deferreds and their Resolvers (the gather rows' inputs).
pub fn gather_inputs(n: usize) -> (Vec<Deferred<u64>>, Vec<Resolver<u64>>) {
    (0..n).map(|_| Deferred::<u64>::new()).unzip()
}

/// Fires every Resolver, in order, with its index.
pub fn fire_all(rs: Vec<Resolver<u64>>) {
    for (i, r) in rs.into_iter().enumerate() {
        r.callback(i as u64).unwrap();
    }
}

/// `join_all` over `n` tokio oneshot receivers, and their senders.
pub type JoinAllInputs = (
    Vec<oneshot::Sender<u64>>,
    Pin<Box<JoinAll<oneshot::Receiver<u64>>>>,
);

/// The anchor's inputs: `n` oneshot channels, the receivers in `join_all`.
pub fn join_all_inputs(n: usize) -> JoinAllInputs {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| oneshot::channel::<u64>()).unzip();
    (txs, Box::pin(futures::future::join_all(rxs)))
}

/// Sends every sender, in order, its index.
pub fn send_all(txs: Vec<oneshot::Sender<u64>>) {
    for (i, tx) in txs.into_iter().enumerate() {
        tx.send(i as u64).unwrap();
    }
}

/// In a task of `rt`: `gather_results` over `n` Deferreds fired after
/// gathering, awaited. Returns how many results came back.
pub fn gather_in_task(rt: &tokio::runtime::Runtime, n: usize) -> usize {
    rt.block_on(async {
        let (ds, rs) = gather_inputs(n);
        let all = gather_results(ds);
        fire_all(rs);
        all.await.unwrap().len()
    })
}

/// In a task of `rt`: `join_all` over `n` oneshot receivers polled pending,
/// then sent, then awaited (Tokio's coop budget applies). Returns how many
/// results came back.
pub fn join_all_in_task(rt: &tokio::runtime::Runtime, n: usize) -> usize {
    rt.block_on(async {
        let (txs, mut all) = join_all_inputs(n);
        poll_fn(|cx| {
            assert!(all.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        send_all(txs);
        all.await.len()
    })
}
