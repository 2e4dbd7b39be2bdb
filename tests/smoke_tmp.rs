use std::sync::{Arc, Mutex};
use tokio_deferred::*;

#[test]
fn inference() {
    let (d, r) = Deferred::<String>::new();
    let (other, r2) = Deferred::<u64>::new();
    let d = d
        .add_callback(|s: String| {
            let n: u32 = s.parse()?;
            Ok(n)
        })
        .add_callback(|x| Ok(x + 1))
        .add_callback(|_| other);
    r.callback("41".into()).unwrap();
    assert!(d.try_take().is_none());
    r2.callback(7).unwrap();
    assert_eq!(d.try_take().unwrap().unwrap(), 7);
}

#[test]
fn deep_chain() {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let n = 1_000_000;
            let (innermost, r) = Deferred::<u64>::new();
            let mut d = innermost;
            for _ in 0..n {
                let prev = d;
                d = succeed(()).add_callback(move |_| prev);
            }
            let d = d.add_callback(|v| Ok(v + 1));
            r.callback(41).unwrap();
            assert_eq!(d.try_take().unwrap().unwrap(), 42);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn deep_chain_deferred() {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let n = 1_000_000;
            let (first, r0) = Deferred::<u64>::new();
            let mut rests = Vec::new();
            let mut cur = first;
            for _ in 0..n {
                let (next, r) = Deferred::<u64>::new();
                rests.push(cur.chain_deferred(r));
                cur = next;
            }
            r0.callback(5).unwrap();
            assert_eq!(cur.try_take().unwrap().unwrap(), 5);
            drop(rests);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn reentrant_order() {
    let log = Arc::new(Mutex::new(vec![]));
    let (d, r) = Deferred::<()>::new();
    let l = log.clone();
    let d = d.add_callback(move |_| {
        l.lock().unwrap().push(1);
        Ok(())
    });
    let l = log.clone();
    let d = d.add_callback(move |_| {
        l.lock().unwrap().push(2);
        Ok(())
    });
    r.callback(()).unwrap();
    assert_eq!(*log.lock().unwrap(), [1, 2]);
    drop(d);
}

#[tokio::test]
async fn await_pending() {
    let (d, r) = Deferred::<u8>::new();
    let t = tokio::spawn(async move { d.await });
    tokio::task::yield_now().await;
    r.callback(3).unwrap();
    assert_eq!(t.await.unwrap().unwrap(), 3);
}

#[tokio::test]
async fn ensure_cancel_cooperative() {
    let (inner, _r) = Deferred::<u32>::new();
    let d = ensure_deferred(async move {
        match inner.await {
            Ok(v) => Ok(v),
            Err(f) if f.is::<CancelledError>() => Ok(4320),
            Err(f) => Err(f),
        }
    });
    d.cancel();
    assert_eq!(d.await.unwrap(), 4320);
}
