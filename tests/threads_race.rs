//! Threads racing `callback`, `cancel`, `add_callback` and `.await` on the
//! same Deferred: every result is delivered exactly once, nothing is lost,
//! nothing deadlocks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use tokio_deferred::*;

const ROUNDS: usize = 2000;

#[test]
fn callback_races_add_callback() {
    for _ in 0..ROUNDS {
        let (d, r) = Deferred::<u32>::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(2));
        let (b, ran2) = (barrier.clone(), ran.clone());
        let adder = thread::spawn(move || {
            b.wait();
            let mut d = d;
            for i in 0..10 {
                let ran = ran2.clone();
                d = d.add_callback(move |v| {
                    assert_eq!(v, i, "callbacks run in FIFO order");
                    ran.fetch_add(1, Ordering::SeqCst);
                    Ok(v + 1)
                });
            }
            d
        });
        barrier.wait();
        r.callback(0).unwrap();
        let d = adder.join().unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 10);
        assert_eq!(d.try_take().unwrap().unwrap(), 10);
    }
}

#[test]
fn callback_races_cancel() {
    for _ in 0..ROUNDS {
        let cancels = Arc::new(AtomicUsize::new(0));
        let c = cancels.clone();
        let (d, r) = Deferred::<u32>::with_canceller(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        });
        let handle = d.cancel_handle();
        let barrier = Arc::new(Barrier::new(2));
        let b = barrier.clone();
        let canceller = thread::spawn(move || {
            b.wait();
            handle.cancel();
        });
        barrier.wait();
        let fired = r.callback(7).is_ok();
        canceller.join().unwrap();
        match d.try_take().unwrap() {
            Ok(v) => {
                assert!(fired);
                assert_eq!(v, 7);
            }
            Err(f) => {
                assert!(f.is::<CancelledError>());
                assert!(!fired, "a fire that lost must report AlreadyCalled");
                assert_eq!(cancels.load(Ordering::SeqCst), 1);
            }
        }
        assert!(cancels.load(Ordering::SeqCst) <= 1);
    }
}

#[test]
fn callback_races_await_and_drop_of_the_awaiting_future() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let delivered = Arc::new(AtomicUsize::new(0));
    for i in 0..ROUNDS {
        let (d, r) = Deferred::<usize>::new();
        let dd = delivered.clone();
        let waiter = rt.spawn(async move {
            let v = d.await.unwrap();
            dd.fetch_add(1, Ordering::SeqCst);
            v
        });
        let firer = thread::spawn(move || r.callback(i).unwrap());
        firer.join().unwrap();
        assert_eq!(rt.block_on(waiter).unwrap(), i);

        // The awaiting future dropped while the fire races: no panic, no leak
        // of the result into the void without a report.
        let (d, r) = Deferred::<usize>::new();
        let waiter = rt.spawn(d);
        let firer = thread::spawn(move || r.callback(i).unwrap());
        waiter.abort();
        firer.join().unwrap();
        let _ = rt.block_on(waiter);
    }
    assert_eq!(delivered.load(Ordering::SeqCst), ROUNDS);
}

#[test]
fn the_last_resolver_drop_races_callback() {
    for _ in 0..ROUNDS {
        let (d, r) = Deferred::<u8>::new();
        let r2 = r.clone();
        let barrier = Arc::new(Barrier::new(2));
        let b = barrier.clone();
        let t = thread::spawn(move || {
            b.wait();
            drop(r2);
        });
        barrier.wait();
        let fired = r.callback(1).is_ok();
        drop(r);
        t.join().unwrap();
        assert!(fired, "a live resolver always fires first");
        assert_eq!(d.try_take().unwrap().unwrap(), 1);
    }
}

#[test]
fn an_inner_deferred_fires_while_the_outer_is_cancelled() {
    for _ in 0..ROUNDS {
        let (inner, ir) = Deferred::<u8>::new();
        let d = succeed(()).add_callback(move |_| inner);
        let handle = d.cancel_handle();
        let barrier = Arc::new(Barrier::new(2));
        let b = barrier.clone();
        let t = thread::spawn(move || {
            b.wait();
            handle.cancel();
        });
        barrier.wait();
        let fired = ir.callback(5).is_ok();
        t.join().unwrap();
        match d.try_take().unwrap() {
            Ok(v) => {
                assert!(fired);
                assert_eq!(v, 5);
            }
            Err(f) => {
                assert!(f.is::<CancelledError>());
            }
        }
    }
}

#[test]
fn many_threads_add_callbacks_to_a_chain_while_it_is_fired() {
    // One chain handle moves between threads; callbacks added from each
    // thread in turn while another thread fires.
    for _ in 0..200 {
        let (d, r) = Deferred::<u64>::new();
        let total = Arc::new(AtomicUsize::new(0));
        let mut d = d;
        let mut handles = Vec::new();
        let firer = thread::spawn(move || r.callback(1).unwrap());
        for _ in 0..4 {
            let t = total.clone();
            let h = thread::spawn(move || {
                let mut d = d;
                for _ in 0..25 {
                    let t = t.clone();
                    d = d.add_callback(move |v| {
                        t.fetch_add(1, Ordering::SeqCst);
                        Ok(v + 1)
                    });
                }
                d
            });
            d = h.join().unwrap();
            handles.push(());
        }
        firer.join().unwrap();
        assert_eq!(d.try_take().unwrap().unwrap(), 101);
        assert_eq!(total.load(Ordering::SeqCst), 100);
    }
}

// Regression (stress test, race A): cancel() without a canceller racing
// callback() must not leave the late-fire swallow armed.
#[test]
fn a_canceller_less_cancel_racing_callback_swallows_at_most_the_loser() {
    for _ in 0..ROUNDS * 5 {
        let (d, r) = Deferred::<u32>::new();
        let h = d.cancel_handle();
        let barrier = Arc::new(Barrier::new(2));
        let b = barrier.clone();
        let t = thread::spawn(move || {
            b.wait();
            h.cancel();
        });
        barrier.wait();
        let _ = r.callback(1);
        t.join().unwrap();
        let cancelled = matches!(d.try_take(), Some(Err(f)) if f.is::<CancelledError>());
        assert!(cancelled || r.callback(2).is_err());
    }
}

// Regression (stress test, race B): concurrent cancel()s run the canceller
// once and do not behave as if there were no canceller.
#[test]
fn concurrent_cancels_with_a_canceller_swallow_nothing() {
    for _ in 0..ROUNDS {
        let runs = Arc::new(AtomicUsize::new(0));
        let c = runs.clone();
        let (d, r) = Deferred::<u32>::with_canceller(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
            thread::yield_now();
        });
        let h = d.cancel_handle();
        let barrier = Arc::new(Barrier::new(2));
        let b = barrier.clone();
        let t = thread::spawn(move || {
            b.wait();
            h.cancel();
        });
        barrier.wait();
        d.cancel();
        t.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(r.callback(2).is_err());
    }
}
