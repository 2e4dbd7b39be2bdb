//! 100,000 concurrent `defer_later(1 ms)` against 100,000 spawned
//! `tokio::time::sleep(1 ms)` tasks (wall time and peak RSS), on a
//! current-thread runtime.
//!
//! Wall time: criterion group `defer_later_100000`, flat sampling, 10
//! samples. Peak RSS cannot come from criterion (one process runs both
//! sides): before the criterion run this bench re-executes itself once per
//! side (`--rss ours` / `--rss anchor`), each child runs its workload once
//! and reports `VmHWM` from `/proc/self/status`, and the parent prints both
//! and their ratio. A third child (`--rss idle`) gives the baseline of the
//! process with the runtime built and nothing scheduled.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group};
use tokio_deferred::{Failure, defer_later, gather_results};

mod common;
use common::{ANCHOR, OURS};

const N: usize = 100_000;
const DELAY: Duration = Duration::from_millis(1);

/// 100,000 `defer_later` Deferreds gathered and awaited together.
async fn ours() -> usize {
    let ds: Vec<_> = (0..N)
        .map(|i| defer_later(DELAY, move || Ok::<_, Failure>(i)))
        .collect();
    gather_results(ds).await.unwrap().len()
}

/// 100,000 spawned sleeping tasks, joined.
async fn anchor() -> usize {
    let hs: Vec<_> = (0..N)
        .map(|i| {
            tokio::spawn(async move {
                tokio::time::sleep(DELAY).await;
                i
            })
        })
        .collect();
    let mut n = 0;
    for h in hs {
        black_box(h.await.unwrap());
        n += 1;
    }
    n
}

fn defer_later_100000(c: &mut Criterion) {
    let rt = common::current_thread();
    let mut g = c.benchmark_group("defer_later_100000");
    g.sampling_mode(SamplingMode::Flat).sample_size(10);
    g.bench_function(OURS, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                assert_eq!(rt.block_on(ours()), N);
            }
            start.elapsed()
        })
    });
    g.bench_function(ANCHOR, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                assert_eq!(rt.block_on(anchor()), N);
            }
            start.elapsed()
        })
    });
    g.finish();
}

/// `VmHWM` (peak resident set) of this process, in KiB.
fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Child side: run one workload once, print `VmHWM`.
fn rss_child(side: &str) {
    let rt = common::current_thread();
    let n = match side {
        "ours" => rt.block_on(ours()),
        "anchor" => rt.block_on(anchor()),
        _ => 0,
    };
    black_box(n);
    match vm_hwm_kib() {
        Some(kib) => println!("{kib}"),
        None => println!("unavailable"),
    }
}

/// Parent side: one child process per workload.
fn rss_report() {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let run = |side: &str| -> Option<u64> {
        let out = std::process::Command::new(&exe)
            .args(["--rss", side])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    let (idle, o, a) = (run("idle"), run("ours"), run("anchor"));
    match (idle, o, a) {
        (Some(idle), Some(o), Some(a)) => {
            println!(
                "defer_later_100000 peak RSS (VmHWM): ours {o} KiB, anchor {a} KiB, ratio {:.2}x; \
                 above the idle process ({idle} KiB): ours {} KiB, anchor {} KiB, ratio {:.2}x",
                o as f64 / a as f64,
                o - idle.min(o),
                a - idle.min(a),
                (o - idle.min(o)) as f64 / (a - idle.min(a)).max(1) as f64
            );
        }
        _ => println!("defer_later_100000 peak RSS: /proc/self/status not readable"),
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = defer_later_100000
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--rss") {
        rss_child(args.get(i + 1).map(String::as_str).unwrap_or("idle"));
        return;
    }
    if !args.iter().any(|a| a == "--list") {
        rss_report();
    }
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
