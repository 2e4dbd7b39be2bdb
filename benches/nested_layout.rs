//! How the 1,000,000-deep nested chain's per-level cost depends on where the
//! allocator put its levels (information for BENCHMARKS.md, no target).
//!
//! `cargo bench --bench nested_layout` builds and fires the chain of
//! `benches/core.rs`'s nested rows eight times in a fresh process and
//! prints the fire time per level of each round, twice: building each
//! chain from the heap as the previous round left it, and building it after
//! `common::settle_heap`.
//!
//! The fire frees each level as it passes it, innermost first. glibc keeps
//! freed blocks of up to 128 bytes (a level's two blocks are 96 and 56) in
//! last-in first-out lists, its *fast bins*, so the next build (innermost
//! first again) gets them in reverse and its fire walks memory backwards;
//! the round after that reverses it again, and the rounds alternate between
//! a cheap and a dear cost per level, more irregularly as the lists mix.
//! A request of a large-bin size (`settle_heap` asks for 4 KiB) makes
//! glibc merge its fast bins into free runs first, which the next build
//! splits in address order: every settled round is laid out as a fresh
//! heap's first round is, and costs what the first round costs.
//!
//! The same rounds then run on bare models of a level (no Deferred, plain
//! boxes walked and freed in the same order): two blocks per level (a
//! 96-byte state and a 56-byte link, as a Deferred level has), reused and
//! settled, and one block per level (the two in one, 152 bytes: above the
//! fast-bin limit, so glibc merges its freed blocks at once and it does not
//! alternate either). The alternation follows the allocator's reuse order,
//! not the Deferred code.

// A bench target's `main` and helpers need no docs.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

mod common;

use common::Heap;

/// Builds, fires (timed) and drops one chain; returns ns per level.
fn round(depth: u64, heap: Heap) -> f64 {
    common::time_nested_fire(depth, heap).as_nanos() as f64 / depth as f64
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
/// as it passes (timed), as the fire of a nested chain does; after
/// `common::settle_heap` if `heap` says so.
fn two_blocks(depth: u64, heap: Heap) -> f64 {
    if heap == Heap::Settled {
        common::settle_heap();
    }
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
    let big = rounds(|d| round(d, Heap::Reused), 1_000_000);
    let settled = rounds(|d| round(d, Heap::Settled), 1_000_000);
    let best_of_50 = |depth| {
        (0..50)
            .map(|_| round(depth, Heap::Reused))
            .fold(f64::MAX, f64::min)
    };
    let small = rounds(best_of_50, 1_000);
    println!("nested chain fire, ns per level, rounds in order (fresh heap first):");
    println!("  1,000,000 deep, heap reused:  {big}");
    println!("  1,000,000 deep, heap settled: {settled}");
    println!("  1,000 deep (best of 50 per round): {small}");
    println!("bare models of a level, 1,000,000 deep, same rounds:");
    println!(
        "  two blocks per level, heap reused:  {}",
        rounds(|d| two_blocks(d, Heap::Reused), 1_000_000)
    );
    println!(
        "  two blocks per level, heap settled: {}",
        rounds(|d| two_blocks(d, Heap::Settled), 1_000_000)
    );
    println!(
        "  one block per level (152 B):        {}",
        rounds(one_block, 1_000_000)
    );
}
