//! Rows of issue 6 for `gather_results`, `DeferredQueue`, `DeferredLock` and
//! `DeferredSemaphore`, each against its Tokio anchor in the same run.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio_deferred::{Deferred, DeferredLock, DeferredQueue, DeferredSemaphore, gather_results};

mod common;
use common::{ANCHOR, OURS};

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("expected a ready future"),
    }
}

/// `gather_results` over 10,000 Deferreds fired after gathering, against
/// `join_all` over 10,000 tokio oneshot receivers polled pending, then sent.
fn gather(c: &mut Criterion) {
    const N: usize = 10_000;
    let mut g = c.benchmark_group("gather_results_10000");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    g.bench_function(OURS, |b| {
        b.iter(|| {
            let (ds, rs): (Vec<_>, Vec<_>) = (0..N).map(|_| Deferred::<u64>::new()).unzip();
            let all = gather_results(ds);
            for (i, r) in rs.into_iter().enumerate() {
                r.callback(i as u64).unwrap();
            }
            black_box(all.try_take().unwrap().unwrap().len())
        })
    });
    g.bench_function(ANCHOR, |b| {
        b.iter(|| {
            let (txs, rxs): (Vec<_>, Vec<_>) = (0..N)
                .map(|_| tokio::sync::oneshot::channel::<u64>())
                .unzip();
            let mut all = futures::future::join_all(rxs);
            let mut cx = Context::from_waker(Waker::noop());
            assert!(Pin::new(&mut all).poll(&mut cx).is_pending());
            for (i, tx) in txs.into_iter().enumerate() {
                tx.send(i as u64).unwrap();
            }
            match Pin::new(&mut all).poll(&mut cx) {
                Poll::Ready(v) => black_box(v.len()),
                Poll::Pending => panic!("join_all still pending"),
            }
        })
    });
    g.finish();
}

/// `DeferredQueue` put + get (the value is there) vs tokio's unbounded mpsc
/// send + recv. Both sides consume the result by polling it once, as
/// `.await` does (`try_take(&self)` of an already-fired Deferred costs one
/// uncontended mutex round trip more: it takes through a shared reference).
fn queue(c: &mut Criterion) {
    let mut g = c.benchmark_group("deferred_queue_put_get");
    let q = DeferredQueue::<u64>::new(None, None);
    g.bench_function(OURS, |b| {
        b.iter(|| {
            q.put(black_box(1)).unwrap();
            black_box(ready(q.get().unwrap()).unwrap())
        })
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    g.bench_function(ANCHOR, |b| {
        b.iter(|| {
            tx.send(black_box(1)).unwrap();
            black_box(ready(rx.recv()).unwrap())
        })
    });
    g.finish();
}

/// Uncontended acquire + release of `DeferredLock` / `DeferredSemaphore`
/// vs tokio's `Mutex` / `Semaphore`, both polled once as `.await` does.
fn locks(c: &mut Criterion) {
    let mut g = c.benchmark_group("deferred_lock_acquire_release");
    let lock = DeferredLock::new();
    g.bench_function(OURS, |b| {
        b.iter(|| {
            let l = ready(lock.acquire()).unwrap();
            l.release().unwrap();
        })
    });
    let m = tokio::sync::Mutex::new(0u64);
    g.bench_function(ANCHOR, |b| b.iter(|| drop(black_box(ready(m.lock())))));
    g.finish();

    let mut g = c.benchmark_group("deferred_semaphore_acquire_release");
    let sem = DeferredSemaphore::new(1).unwrap();
    g.bench_function(OURS, |b| {
        b.iter(|| {
            let s = ready(sem.acquire()).unwrap();
            s.release().unwrap();
        })
    });
    let ts = tokio::sync::Semaphore::new(1);
    g.bench_function(ANCHOR, |b| {
        b.iter(|| drop(black_box(ready(ts.acquire()).unwrap())))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = gather, queue, locks
}
criterion_main!(benches);
