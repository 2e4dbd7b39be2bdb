//! Compile-time auto-trait checks (like tokio's tests/async_send_sync.rs).

use tokio_deferred::*;

fn is_send<T: Send>() {}
fn is_sync<T: Sync>() {}
fn is_unpin<T: Unpin>() {}
fn is_clone<T: Clone>() {}

#[test]
fn public_types_are_send_and_sync() {
    is_send::<Deferred<u8>>();
    is_sync::<Deferred<u8>>();
    is_unpin::<Deferred<u8>>();
    // Send even when T is Send but not Sync.
    is_send::<Deferred<std::cell::Cell<u8>>>();
    is_sync::<Deferred<std::cell::Cell<u8>>>();
    is_send::<Resolver<u8>>();
    is_sync::<Resolver<u8>>();
    is_clone::<Resolver<u8>>();
    is_send::<Failure>();
    is_sync::<Failure>();
    is_clone::<Failure>();
    is_send::<CancelHandle>();
    is_sync::<CancelHandle>();
    is_send::<CancelOnDrop<u8>>();
    is_send::<AlreadyCalledError<u8>>();
    is_sync::<AlreadyCalledError<u8>>();
    is_send::<Cooperator>();
    is_sync::<Cooperator>();
    is_clone::<Cooperator>();
    is_send::<CooperativeTask>();
    is_sync::<CooperativeTask>();
    is_clone::<CooperativeTask>();
    is_send::<CooperativeStep>();
    is_send::<QueueStream<u8>>();
    is_unpin::<QueueStream<u8>>();
    is_send::<TaskFinished>();
    is_sync::<TaskFinished>();
    is_send::<SystemExit>();
    is_sync::<SystemExit>();
}

#[test]
fn deferred_futures_are_send() {
    fn assert_send<F: std::future::Future + Send>(_: F) {}
    let (d, _r) = Deferred::<u8>::new();
    assert_send(d);
    assert_send(async {
        let (d, _r) = Deferred::<u8>::new();
        d.await
    });
}
