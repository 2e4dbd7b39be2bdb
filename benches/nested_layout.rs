//! How the 1,000,000-deep nested chain's per-level cost depends on where the
//! allocator put its levels (information for BENCHMARKS.md, no target).
//!
//! `cargo bench --bench nested_layout` builds and fires the chain of
//! `benches/core.rs`'s `nested_chain_fire` row eight times in a fresh
//! process and prints the fire time per level of each round. The first
//! round's levels come from fresh heap, laid out in the order the fire
//! walks them; later rounds reuse the blocks the previous fire freed, which
//! glibc hands back last-in first-out, so the walk's order through memory
//! gets scrambled. The criterion row measures that steady state; the first
//! round shows the chain itself costs the same per level at 1,000,000 deep
//! as at 1,000.

// A bench target's `main` and helpers need no docs.
#![allow(missing_docs)]

mod common;

/// Builds, fires (timed) and drops one chain; returns ns per level.
fn round(depth: u64) -> f64 {
    common::time_nested_fire(depth).as_nanos() as f64 / depth as f64
}

fn main() {
    if !common::selected("nested_layout") {
        return;
    }
    let big: Vec<String> = (0..8).map(|_| format!("{:.0}", round(1_000_000))).collect();
    let small: Vec<String> = (0..8)
        .map(|_| {
            let best = (0..50).map(|_| round(1_000)).fold(f64::MAX, f64::min);
            format!("{best:.0}")
        })
        .collect();
    println!("nested chain fire, ns per level, rounds in order (fresh heap first):");
    println!("  1,000,000 deep: {}", big.join(" "));
    println!("  1,000 deep (best of 50 per round): {}", small.join(" "));
}
