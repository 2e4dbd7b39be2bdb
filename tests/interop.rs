//! Interop with the `futures` ecosystem: a `Deferred` in `futures::select!`
//! without `.fuse()` (`FusedFuture`), and a `DeferredQueue` consumer as a
//! `Stream` (`DeferredQueue::stream`). No Twisted counterpart.

use futures::future::FusedFuture;
use futures::stream::FusedStream;
use futures::{StreamExt, TryStreamExt};
use tokio_deferred::*;

#[tokio::test]
async fn select_takes_deferreds_as_they_are_and_skips_a_finished_one() {
    let (mut a, ra) = Deferred::<&str>::new();
    let (mut b, rb) = Deferred::<&str>::new();
    ra.callback("a").unwrap();
    let mut seen = Vec::new();
    for round in 0..2 {
        if round == 1 {
            rb.callback("b").unwrap();
        }
        futures::select! {
            r = a => seen.push(r.unwrap()),
            r = b => seen.push(r.unwrap()),
        }
    }
    assert_eq!(seen, ["a", "b"]);
    assert!(a.is_terminated() && b.is_terminated());
}

#[test]
fn is_terminated_once_the_result_was_taken_whatever_the_form() {
    // Inline (already fired).
    let d = succeed(1);
    assert!(!d.is_terminated());
    assert_eq!(d.try_take().unwrap().unwrap(), 1);
    assert!(d.is_terminated());
    // Shared state.
    let (d, r) = Deferred::<u8>::new();
    assert!(!d.is_terminated());
    r.callback(2).unwrap();
    assert!(!d.is_terminated());
    assert_eq!(d.try_take().unwrap().unwrap(), 2);
    assert!(d.is_terminated());
    // Inline, promoted to a shared state by a cancel handle.
    let d = succeed(3);
    let _handle = d.cancel_handle();
    assert!(!d.is_terminated());
    assert_eq!(d.try_take().unwrap().unwrap(), 3);
    assert!(d.is_terminated());
    // A failure counts the same.
    let mut d = tokio_test::task::spawn(fail::<u8>(Failure::msg("no")));
    assert!(tokio_test::assert_ready!(d.poll()).is_err());
    assert!(d.is_terminated());
}

#[tokio::test]
async fn a_queue_stream_yields_the_values_in_order_and_waits_for_more() {
    let queue = DeferredQueue::new(None, None);
    let mut values = queue.stream();
    queue.put(1).unwrap();
    queue.put(2).unwrap();
    assert_eq!(values.next().await.unwrap().unwrap(), 1);
    assert_eq!(values.next().await.unwrap().unwrap(), 2);
    // Nothing buffered: the stream's get waits in the queue.
    let mut next = tokio_test::task::spawn(values.next());
    tokio_test::assert_pending!(next.poll());
    assert_eq!(queue.waiting(), 1);
    queue.put(3).unwrap();
    assert!(next.is_woken());
    assert_eq!(tokio_test::assert_ready!(next.poll()).unwrap().unwrap(), 3);
    drop(next);
    assert!(!values.is_terminated());
    // A TryStream too.
    queue.put(4).unwrap();
    assert_eq!(values.try_next().await.unwrap(), Some(4));
}

#[test]
fn dropping_a_queue_stream_cancels_its_get() {
    let queue = DeferredQueue::<u8>::new(None, None);
    let mut values = tokio_test::task::spawn(queue.stream());
    tokio_test::assert_pending!(values.poll_next());
    assert_eq!(queue.waiting(), 1);
    drop(values);
    assert_eq!(queue.waiting(), 0);
    queue.put(1).unwrap(); // buffered: nobody waits any more
    assert_eq!(queue.pending(), 1);
}

#[test]
fn a_value_handed_to_a_dropped_stream_goes_back_to_the_queue() {
    // To the front of the buffer, even past `size`.
    let queue = DeferredQueue::<u8>::new(Some(1), None);
    let mut values = tokio_test::task::spawn(queue.stream());
    tokio_test::assert_pending!(values.poll_next());
    queue.put(1).unwrap(); // handed to the stream's get, not yet returned
    queue.put(2).unwrap(); // buffered
    drop(values);
    assert_eq!(queue.pending(), 2);
    let got = queue.get().unwrap();
    assert_eq!(got.try_take().unwrap().unwrap(), 1);
    let got = queue.get().unwrap();
    assert_eq!(got.try_take().unwrap().unwrap(), 2);

    // To the oldest waiting get, if there is one.
    let mut values = tokio_test::task::spawn(queue.stream());
    tokio_test::assert_pending!(values.poll_next());
    let waiter = queue.get().unwrap();
    queue.put(3).unwrap(); // to the stream, the oldest get
    assert!(!waiter.is_called());
    drop(values);
    assert_eq!(waiter.try_take().unwrap().unwrap(), 3);
}

#[test]
fn a_dropped_next_future_keeps_the_get_for_the_next_poll() {
    let queue = DeferredQueue::<u8>::new(None, None);
    let mut values = queue.stream();
    {
        let mut next = tokio_test::task::spawn(values.next());
        tokio_test::assert_pending!(next.poll());
    }
    queue.put(5).unwrap();
    let mut next = tokio_test::task::spawn(values.next());
    assert_eq!(tokio_test::assert_ready!(next.poll()).unwrap().unwrap(), 5);
}

#[test]
fn a_full_backlog_is_an_underflow_item_not_a_hang() {
    let queue = DeferredQueue::<u8>::new(None, Some(1));
    let _other = queue.get().unwrap();
    let mut values = tokio_test::task::spawn(queue.stream());
    let item = tokio_test::assert_ready!(values.poll_next()).unwrap();
    assert!(item.unwrap_err().is::<QueueUnderflow>());
}

#[tokio::test]
async fn select_over_a_queue_stream_and_a_deferred() {
    let queue = DeferredQueue::<u8>::new(None, None);
    let mut values = queue.stream();
    let (mut stop, stopper) = Deferred::<()>::new();
    queue.put(1).unwrap();
    let mut got = Vec::new();
    loop {
        futures::select! {
            v = values.next() => {
                got.push(v.unwrap().unwrap());
                if got.len() == 1 {
                    stopper.callback(()).unwrap();
                }
            }
            _ = stop => break,
        }
    }
    assert_eq!(got, [1]);
}
