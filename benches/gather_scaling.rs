//! Per-element cost of gathering n results in a Tokio task, n from 1,000
//! to 40,000 (information for BENCHMARKS.md, no target).
//!
//! `cargo bench --bench gather_scaling` prints, per n, the best of five
//! rounds of `join_all` over n tokio oneshot receivers (polled pending, then
//! sent, then awaited) and of `gather_results` over n Deferreds (gathered,
//! then fired, then awaited), both in a task of a current-thread runtime.
//! Tokio's coop budget lets a task make 128 resource polls per turn; past
//! it every oneshot returns `Pending`, so `join_all` takes many turns, each
//! walking its inputs again: its per-element cost grows with n (quadratic
//! in all). `gather_results` is push-based (each input's last callback
//! stores its result and counts it) and stays flat.

// A bench target's `main` and helpers need no docs.
#![allow(missing_docs)]

use std::time::Instant;

mod common;
use common::{gather_in_task, join_all_in_task};

/// One workload timed, in ns per element.
fn round(work: impl FnOnce() -> usize, n: usize) -> f64 {
    let start = Instant::now();
    assert_eq!(work(), n);
    start.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    if !common::selected("gather_scaling") {
        return;
    }
    let rt = common::current_thread();
    println!("| n | join_all in a task (ns/element) | gather_results (ns/element) |");
    println!("|---|---|---|");
    for n in [1_000, 5_000, 10_000, 20_000, 40_000] {
        let mut join_all = f64::MAX;
        let mut gather = f64::MAX;
        for _ in 0..5 {
            join_all = join_all.min(round(|| join_all_in_task(&rt, n), n));
            gather = gather.min(round(|| gather_in_task(&rt, n), n));
        }
        println!("| {n} | {join_all:.0} | {gather:.0} |");
    }
}
