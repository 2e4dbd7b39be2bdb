//! Shared configuration for the criterion benches.
//!
//! Every group measures one of our operations (`ours`) and its anchor
//! (`anchor`) in the same run, so the ratio holds on a noisy machine.
//! `benches/report.py` pairs `<group>/ours` with `<group>/anchor` from
//! `target/criterion` and prints the tables of `BENCHMARKS.md`.
//!
//! To add a row (gather, locks, queue, defer_later, defer_to_thread): add
//! `benches/<area>.rs` with `mod common;`, a `[[bench]]` entry with
//! `harness = false` in `Cargo.toml`, and groups named as below.

#![allow(dead_code)]

use std::time::Duration;

use criterion::Criterion;
use tokio_deferred::{Deferred, Resolver, succeed};

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
/// nested rows (`core`), the allocation table (`alloc`) and `nested_layout`.
pub fn nested(depth: u64) -> (Deferred<u64>, Resolver<u64>) {
    let (innermost, r) = Deferred::<u64>::new();
    let mut d = innermost;
    for _ in 0..depth {
        let prev = d;
        d = succeed(()).add_callback(move |_| prev);
    }
    (d, r)
}
