//! A driver for `valgrind --tool=callgrind` instruction counts, which stay
//! put on a loaded machine where wall times do not. Not a criterion bench:
//! `instructions <workload> <n>` runs the workload `n` times; the count per
//! operation is `(I(n) - I(0)) / n` (`scripts/instructions.sh` does the
//! arithmetic for every workload).

use std::future::Future;
use std::hint::black_box;

mod common;

use tokio_deferred::{
    Deferred, DeferredLock, DeferredQueue, DeferredSemaphore, Failure, ensure_deferred,
    gather_results, succeed,
};

fn run(workload: &str, n: u64) {
    match workload {
        // new + callback + take (new_fire_await without the runtime).
        "new_fire_take" => {
            for _ in 0..n {
                let (d, r) = Deferred::<u64>::new();
                r.callback(black_box(1)).unwrap();
                black_box(d.try_take());
            }
        }
        // One chain of `n` callbacks: the marginal cost of a callback.
        "callback" => {
            let (d, r) = Deferred::<u64>::new();
            let mut d = d;
            for k in 0..n {
                d = d.add_callback(move |v: u64| Ok::<_, Failure>(v + k));
            }
            r.callback(0).unwrap();
            black_box(d.try_take());
        }
        // new + 100 add_callback + fire + take (criterion's chain_100).
        "chain_100" => {
            for _ in 0..n {
                black_box(common::callback_chain(100));
            }
        }
        // new + 10 callbacks + fire + take (criterion's chain_10) and its
        // anchor, a `Vec<Box<dyn FnOnce>>` of ten.
        "chain_10" => {
            for _ in 0..n {
                black_box(common::callback_chain(10));
            }
        }
        "boxed_fn_10" => {
            for _ in 0..n {
                black_box(common::boxed_closures(10));
            }
        }
        "ensure_ready" => {
            for _ in 0..n {
                black_box(ensure_deferred(async { Ok::<_, Failure>(1u64) }).try_take());
            }
        }
        // One nested chain of `n` levels, built, fired from the innermost.
        "nested_level" => {
            let (d, r) = common::nested(n);
            r.callback(1).unwrap();
            black_box(d.try_take());
        }
        // gather_results over `n` Deferreds fired after gathering.
        "gather_elem" => {
            let (ds, rs) = common::gather_inputs(n as usize);
            let all = gather_results(ds);
            common::fire_all(rs);
            black_box(all.try_take());
        }
        // The same Deferreds created, fired and taken without the gather:
        // `gather_elem - gather_base` is the gather machinery's own cost
        // (10,000 live Deferreds stress the allocator more than
        // `new_fire_take`, which reuses one allocation).
        "gather_base" => {
            let (ds, rs) = common::gather_inputs(n as usize);
            common::fire_all(rs);
            for d in &ds {
                black_box(d.try_take());
            }
        }
        "queue_put_get" => {
            let q = DeferredQueue::<u64>::new(None, None);
            for i in 0..n {
                q.put(i).unwrap();
                black_box(q.get().unwrap().try_take());
            }
        }
        "lock_acquire_release" => {
            let l = DeferredLock::new();
            for _ in 0..n {
                black_box(l.acquire().try_take());
                l.release().unwrap();
            }
        }
        "semaphore_acquire_release" => {
            let s = DeferredSemaphore::new(1).unwrap();
            for _ in 0..n {
                black_box(s.acquire().try_take());
                s.release().unwrap();
            }
        }
        // Polled while pending (waker stored), fired, polled again.
        "pending_fire_take" => {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            for _ in 0..n {
                let (mut d, r) = Deferred::<u64>::new();
                assert!(std::pin::Pin::new(&mut d).poll(&mut cx).is_pending());
                r.callback(black_box(1)).unwrap();
                let _ = black_box(std::pin::Pin::new(&mut d).poll(&mut cx));
            }
        }
        "oneshot_pending_send_recv" => {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            for _ in 0..n {
                let (tx, mut rx) = tokio::sync::oneshot::channel::<u64>();
                assert!(std::pin::Pin::new(&mut rx).poll(&mut cx).is_pending());
                tx.send(black_box(1)).unwrap();
                let _ = black_box(std::pin::Pin::new(&mut rx).poll(&mut cx));
            }
        }
        // run(f) with the lock free and a synchronous f.
        "lock_run" => {
            let l = DeferredLock::new();
            for _ in 0..n {
                black_box(l.run(|| Ok::<_, Failure>(black_box(1u64))).try_take());
            }
        }
        // Contended: an acquire queued behind the holder, then the release
        // that hands the lock over to it (the new holder).
        "lock_handover" => {
            let l = DeferredLock::new();
            black_box(l.acquire().try_take());
            for _ in 0..n {
                let waiter = l.acquire();
                l.release().unwrap();
                black_box(waiter.try_take());
            }
        }
        // Anchors, for instruction ratios.
        "mpsc_send_recv" => {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
            for _ in 0..n {
                tx.send(black_box(1)).unwrap();
                black_box(rx.try_recv().ok());
            }
        }
        "tokio_mutex" => {
            let m = tokio::sync::Mutex::new(0u64);
            for _ in 0..n {
                drop(black_box(m.try_lock().ok()));
            }
        }
        "tokio_semaphore" => {
            let s = tokio::sync::Semaphore::new(1);
            for _ in 0..n {
                drop(black_box(s.try_acquire().ok()));
            }
        }
        "oneshot_send_recv" => {
            for _ in 0..n {
                let (tx, mut rx) = tokio::sync::oneshot::channel::<u64>();
                tx.send(black_box(1)).unwrap();
                black_box(rx.try_recv().ok());
            }
        }
        "succeed_take" => {
            for _ in 0..n {
                black_box(succeed(black_box(1u64)).try_take());
            }
        }
        other => eprintln!("unknown workload {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list" || a == "--bench") {
        // Under `cargo bench`: nothing to measure here.
        return;
    }
    let workload = args.get(1).map(String::as_str).unwrap_or("new_fire_take");
    let n = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    run(workload, n);
}
