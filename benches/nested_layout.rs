//! How the 1,000,000-deep nested chain's per-level cost depends on where the
//! allocator put its levels (information for BENCHMARKS.md, no target).
//!
//! `cargo bench --bench nested_layout` builds and fires the chain of
//! `benches/core.rs`'s `nested_chain_fire` row eight times in a fresh
//! process and prints the fire time per level of each round. The first
//! round's levels come from fresh heap, laid out in the order the fire
//! walks them. The fire frees each level as it passes it (innermost first),
//! and glibc hands freed blocks back last-in first-out, so the next build
//! (innermost first again) gets them in reverse: every other round walks
//! its levels backwards through memory, and the rounds alternate between a
//! cheap and a dear cost per level. The criterion row measures that steady
//! state; the first round shows the chain itself costs about the same per
//! level at 1,000,000 deep as at 1,000.
//!
//! The same eight rounds then run on two bare models of a level (no
//! Deferred, plain boxes walked and freed in the same order): two blocks
//! per level (a 96-byte state and a 56-byte link, as a Deferred level has)
//! and one block per level (the two in one, 152 bytes). The alternation follows the
//! two-block layout, not the Deferred code.

// A bench target's `main` and helpers need no docs.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

mod common;

/// Builds, fires (timed) and drops one chain; returns ns per level.
fn round(depth: u64) -> f64 {
    common::time_nested_fire(depth).as_nanos() as f64 / depth as f64
}

/// A level of the two-block model: a state (96 bytes) owning the link
/// (56 bytes) that leads to the next level's state, the sizes of a
/// Deferred level's two blocks (`cargo bench --bench alloc`: 152 B in two
/// allocations per level).
struct TwoState {
    link: Option<Box<TwoLink>>,
    data: [u64; 11],
}

struct TwoLink {
    target: Box<TwoState>,
    _data: [u64; 6],
}

/// A level of the one-block model: the state and its link in one block
/// (152 bytes).
struct OneState {
    next: Option<Box<OneState>>,
    data: [u64; 18],
}

/// Times `walk` (which returns a value kept from the optimizer); ns per
/// level of `depth`.
fn per_level(depth: u64, walk: impl FnOnce() -> u64) -> f64 {
    let start = Instant::now();
    black_box(walk());
    start.elapsed().as_nanos() as f64 / depth as f64
}

/// Builds `depth` levels innermost first (each level's state, then the
/// link to it), then walks them innermost to outermost, freeing each level
/// as it passes (timed), as the fire of a nested chain does.
fn two_blocks(depth: u64) -> f64 {
    let mut first = Box::new(TwoState {
        link: None,
        data: [0; 11],
    });
    let mut tail = &mut first;
    for i in 0..depth {
        let state = Box::new(TwoState {
            link: None,
            data: [i; 11],
        });
        let link = tail.link.insert(Box::new(TwoLink {
            target: state,
            _data: [i; 6],
        }));
        tail = &mut link.target;
    }
    per_level(depth, move || {
        let mut acc = 0u64;
        let mut current = first;
        while let Some(link) = current.link.take() {
            acc = acc.wrapping_add(current.data[3]);
            current = link.target;
            current.data[0] = acc;
        }
        acc
    })
}

/// `two_blocks` with one block per level.
fn one_block(depth: u64) -> f64 {
    let mut first = Box::new(OneState {
        next: None,
        data: [0; 18],
    });
    let mut tail = &mut first;
    for i in 0..depth {
        tail = tail.next.insert(Box::new(OneState {
            next: None,
            data: [i; 18],
        }));
    }
    per_level(depth, move || {
        let mut acc = 0u64;
        let mut current = first;
        while let Some(next) = current.next.take() {
            acc = acc.wrapping_add(current.data[3]);
            current = next;
            current.data[0] = acc;
        }
        acc
    })
}

/// Eight rounds of `f` at `depth`, formatted.
fn rounds(f: impl Fn(u64) -> f64, depth: u64) -> String {
    let ns: Vec<String> = (0..8).map(|_| format!("{:.0}", f(depth))).collect();
    ns.join(" ")
}

fn main() {
    if !common::selected("nested_layout") {
        return;
    }
    let big = rounds(round, 1_000_000);
    let best_of_50 = |depth| (0..50).map(|_| round(depth)).fold(f64::MAX, f64::min);
    let small = rounds(best_of_50, 1_000);
    println!("nested chain fire, ns per level, rounds in order (fresh heap first):");
    println!("  1,000,000 deep: {big}");
    println!("  1,000 deep (best of 50 per round): {small}");
    println!("bare models of a level, 1,000,000 deep, same rounds:");
    println!("  two blocks per level: {}", rounds(two_blocks, 1_000_000));
    println!("  one block per level:  {}", rounds(one_block, 1_000_000));
}
