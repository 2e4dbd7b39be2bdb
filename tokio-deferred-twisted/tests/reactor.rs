//! The reactor handle, both conversions and the shutdown, with an embedded
//! interpreter and reactors that are not running (the test drives them).

mod common;

use std::time::{Duration, Instant};

use common::with_twisted;
use pyo3::prelude::*;
use tokio_deferred::{CancelledError, Deferred, Failure};
use tokio_deferred_twisted::{DispatchMode, PythonError, Reactor, ReactorShutdownError};

fn memory_reactor<'py>(helpers: &Bound<'py, PyModule>) -> Bound<'py, PyAny> {
    helpers
        .getattr("ThreadedMemoryReactorClock")
        .unwrap()
        .call0()
        .unwrap()
}

/// A real epoll reactor object, not installed and not running.
fn epoll_reactor(py: Python<'_>) -> Bound<'_, PyAny> {
    py.import("twisted.internet.epollreactor")
        .unwrap()
        .getattr("EPollReactor")
        .unwrap()
        .call0()
        .unwrap()
}

fn results<'py>(helpers: &Bound<'py, PyModule>, d: &Bound<'py, PyAny>) -> Bound<'py, PyAny> {
    helpers.getattr("results").unwrap().call1((d,)).unwrap()
}

#[test]
fn the_dispatch_mode_follows_the_reactor() {
    with_twisted(|py, helpers| {
        let memory = Reactor::builder().build(&memory_reactor(helpers)).unwrap();
        assert_eq!(memory.dispatch_mode(), DispatchMode::CallFromThread);
        let epoll = epoll_reactor(py);
        let real = Reactor::builder().build(&epoll).unwrap();
        assert_eq!(real.dispatch_mode(), DispatchMode::WakeUpSocket);
        // Registered as an internal reader: trial's janitor leaves it alone.
        let internal = epoll.getattr("_internalReaders").unwrap();
        assert_eq!(internal.len().unwrap(), 2, "Twisted's waker and ours");
        real.shutdown(py);
        assert_eq!(internal.len().unwrap(), 1, "removed at shutdown");
        memory.shutdown(py);
        // A MemoryReactorClock without callFromThread cannot be woken.
        let bare = py
            .import("twisted.internet.testing")
            .unwrap()
            .getattr("MemoryReactorClock")
            .unwrap()
            .call0()
            .unwrap();
        assert!(Reactor::builder().build(&bare).is_err());
    });
}

#[test]
fn a_fired_rust_deferred_gives_a_fired_twisted_deferred() {
    with_twisted(|py, helpers| {
        let reactor = Reactor::builder().build(&memory_reactor(helpers)).unwrap();
        let d = reactor
            .as_twisted(py, tokio_deferred::succeed(7u32))
            .unwrap();
        let out = results(helpers, &d);
        assert_eq!(out.extract::<Vec<u32>>().unwrap(), vec![7]);
        reactor.shutdown(py);
    });
}

#[test]
fn a_rust_deferred_fired_elsewhere_is_delivered_through_call_from_thread() {
    with_twisted(|py, helpers| {
        let memory = memory_reactor(helpers);
        let reactor = Reactor::builder().build(&memory).unwrap();
        let (d, resolver) = Deferred::<String>::new();
        let twisted = reactor.as_twisted(py, d).unwrap();
        let out = results(helpers, &twisted);
        py.detach(|| {
            std::thread::spawn(move || resolver.callback("from a thread".to_owned()).unwrap())
                .join()
                .unwrap()
        });
        assert_eq!(out.len().unwrap(), 0, "not before the reactor runs it");
        memory.call_method0("run_from_threads").unwrap();
        assert_eq!(out.extract::<Vec<String>>().unwrap(), vec!["from a thread"]);
        reactor.shutdown(py);
    });
}

#[test]
fn the_wake_up_socket_path_needs_no_gil_on_the_firing_thread() {
    with_twisted(|py, helpers| {
        let epoll = epoll_reactor(py);
        let reactor = Reactor::builder().build(&epoll).unwrap();
        let mut resolvers = Vec::new();
        let mut outs = Vec::new();
        for _ in 0..100 {
            let (d, resolver) = Deferred::<u64>::new();
            outs.push(results(helpers, &reactor.as_twisted(py, d).unwrap()).unbind());
            resolvers.push(resolver);
        }
        assert_eq!(reactor.in_flight(), 100);
        // Fire them on another thread while this one keeps the GIL (and
        // runs no Python code, so CPython never hands it over).
        let firing = std::thread::spawn(move || {
            for (i, r) in resolvers.into_iter().enumerate() {
                r.callback(i as u64).unwrap();
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while reactor.in_flight() > 0 {
            assert!(
                Instant::now() < deadline,
                "the firing thread waited for the GIL"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        firing.join().unwrap();
        // The reactor would now find our socket readable: do its part.
        let readers = epoll.call_method0("getReaders").unwrap();
        for reader in readers.try_iter().unwrap() {
            let reader = reader.unwrap();
            if reader.hasattr("logPrefix").unwrap()
                && reader
                    .call_method0("logPrefix")
                    .unwrap()
                    .extract::<String>()
                    .unwrap()
                    == "tokio-deferred-twisted"
            {
                reader.call_method0("doRead").unwrap();
            }
        }
        for (i, out) in outs.iter().enumerate() {
            assert_eq!(out.bind(py).extract::<Vec<u64>>().unwrap(), vec![i as u64]);
        }
        reactor.shutdown(py);
    });
}

#[test]
fn twisteds_cancel_runs_the_rust_canceller_and_takes_its_outcome() {
    with_twisted(|py, helpers| {
        let reactor = Reactor::builder().build(&memory_reactor(helpers)).unwrap();
        let (d, _resolver) = Deferred::<&'static str>::with_canceller(|r| {
            r.callback("the canceller's value").unwrap();
        });
        let twisted = reactor.as_twisted(py, d).unwrap();
        twisted.call_method0("cancel").unwrap();
        let out = results(helpers, &twisted);
        assert_eq!(
            out.extract::<Vec<String>>().unwrap(),
            vec!["the canceller's value"]
        );
        reactor.shutdown(py);
    });
}

#[test]
fn a_twisted_deferred_becomes_a_typed_rust_deferred() {
    with_twisted(|py, helpers| {
        let reactor = Reactor::builder().build(&memory_reactor(helpers)).unwrap();
        let defer = py.import("twisted.internet.defer").unwrap();
        let source = defer.getattr("Deferred").unwrap().call0().unwrap();
        let d: Deferred<Vec<i64>> = reactor.from_twisted(source.clone().unbind());
        assert!(d.try_take().is_none());
        source.call_method1("callback", (vec![1, 2, 3],)).unwrap();
        assert_eq!(d.try_take().unwrap().unwrap(), vec![1, 2, 3]);
        // The Twisted Deferred's result was consumed.
        assert!(source.getattr("result").unwrap().is_none());

        let source = defer.getattr("succeed").unwrap().call1(("text",)).unwrap();
        let d: Deferred<i64> = reactor.from_twisted(source.unbind());
        let failure = d.try_take().unwrap().unwrap_err();
        assert_eq!(
            failure.downcast_ref::<PythonError>().unwrap().type_name(),
            "TypeError"
        );
        reactor.shutdown(py);
    });
}

#[test]
fn a_failed_twisted_deferred_keeps_its_exception() {
    with_twisted(|py, helpers| {
        let reactor = Reactor::builder().build(&memory_reactor(helpers)).unwrap();
        let e = pyo3::exceptions::PyKeyError::new_err("k").into_value(py);
        let failed = helpers
            .getattr("failed_deferred")
            .unwrap()
            .call1((e.clone_ref(py),))
            .unwrap();
        let d: Deferred<Py<PyAny>> = reactor.from_twisted(failed.unbind());
        let failure = d.try_take().unwrap().unwrap_err();
        let error = failure.downcast_ref::<PythonError>().unwrap();
        assert!(error.value(py).is(e.bind(py)));
        assert!(error.traceback().contains("raise_in_here"));
        reactor.shutdown(py);
    });
}

#[test]
fn cancelling_on_the_reactor_thread_gets_twisteds_outcome_at_once() {
    with_twisted(|py, helpers| {
        let reactor = Reactor::builder().build(&memory_reactor(helpers)).unwrap();
        let defer = py.import("twisted.internet.defer").unwrap();
        let no_canceller = defer.getattr("Deferred").unwrap().call0().unwrap();
        let d: Deferred<Py<PyAny>> = reactor.from_twisted(no_canceller.clone().unbind());
        d.cancel();
        assert!(d.try_take().unwrap().unwrap_err().is::<CancelledError>());
        assert!(no_canceller.getattr("called").unwrap().is_truthy().unwrap());

        let canceller = py
            .eval(c"lambda d: d.callback('recovered')", None, None)
            .unwrap();
        let with = defer
            .getattr("Deferred")
            .unwrap()
            .call1((canceller,))
            .unwrap();
        let d: Deferred<String> = reactor.from_twisted(with.clone().unbind());
        d.cancel();
        assert_eq!(d.try_take().unwrap().unwrap(), "recovered");
        reactor.shutdown(py);
    });
}

#[test]
fn cancelling_from_another_thread_cancels_the_twisted_deferred_on_the_reactor() {
    with_twisted(|py, helpers| {
        let memory = memory_reactor(helpers);
        let reactor = Reactor::builder().build(&memory).unwrap();
        let defer = py.import("twisted.internet.defer").unwrap();
        let source = defer.getattr("Deferred").unwrap().call0().unwrap();
        let d: Deferred<Py<PyAny>> = reactor.from_twisted(source.clone().unbind());
        let handle = d.cancel_handle();
        py.detach(|| std::thread::spawn(move || handle.cancel()).join().unwrap());
        // The Rust Deferred failed at once; Twisted's waits for the reactor.
        assert!(d.try_take().unwrap().unwrap_err().is::<CancelledError>());
        assert!(!source.getattr("called").unwrap().is_truthy().unwrap());
        memory.call_method0("run_from_threads").unwrap();
        assert!(source.getattr("called").unwrap().is_truthy().unwrap());
        reactor.shutdown(py);
    });
}

#[test]
fn the_shutdown_fails_waiting_deferreds_and_refuses_new_work() {
    with_twisted(|py, helpers| {
        let reactor = Reactor::builder().build(&memory_reactor(helpers)).unwrap();
        let defer = py.import("twisted.internet.defer").unwrap();
        // Referenced here, as its producer would: it could still fire.
        let never = defer.getattr("Deferred").unwrap().call0().unwrap();
        let d: Deferred<Py<PyAny>> = reactor.from_twisted(never.clone().unbind());
        assert_eq!(reactor.waiting(), 1);
        reactor.shutdown(py);
        assert!(reactor.is_shut_down());
        assert!(
            d.try_take()
                .unwrap()
                .unwrap_err()
                .is::<ReactorShutdownError>()
        );
        let err = reactor
            .ensure_twisted(py, async { Ok::<_, Failure>(1) })
            .unwrap_err();
        assert!(err.is_instance_of::<tokio_deferred_twisted::exceptions::ReactorShutdownError>(py));
        assert!(reactor.runtime_handle().is_err());
        assert!(reactor.call_from_thread(|_| {}).is_err());
        let late: Deferred<Py<PyAny>> = reactor.from_twisted(py.None());
        assert!(
            late.try_take()
                .unwrap()
                .unwrap_err()
                .is::<ReactorShutdownError>()
        );
    });
}

#[test]
fn a_future_that_never_waits_gives_a_fired_deferred() {
    with_twisted(|py, helpers| {
        let reactor = Reactor::builder().build(&memory_reactor(helpers)).unwrap();
        let d = reactor
            .ensure_twisted(py, async { Ok::<_, Failure>("now") })
            .unwrap();
        let out = results(helpers, &d);
        assert_eq!(out.extract::<Vec<String>>().unwrap(), vec!["now"]);
        reactor.shutdown(py);
    });
}

#[test]
fn the_global_reactor_is_installed_and_captured_on_first_use() {
    with_twisted(|py, _| {
        let reactor = Reactor::get(py).unwrap();
        let installed = py
            .import("sys")
            .unwrap()
            .getattr("modules")
            .unwrap()
            .get_item("twisted.internet.reactor")
            .unwrap();
        assert!(reactor.object(py).is(&installed));
        assert!(reactor.is_reactor_thread());
        assert_eq!(reactor.dispatch_mode(), DispatchMode::WakeUpSocket);
        // The same handle afterwards; installing another is refused.
        assert!(Reactor::get(py).unwrap().object(py).is(&installed));
        assert!(
            tokio_deferred_twisted::ReactorBuilder::new()
                .install(py)
                .is_err()
        );
    });
}

#[test]
fn a_twisted_deferred_nobody_references_fails_the_rust_one_instead_of_hanging() {
    with_twisted(|py, helpers| {
        let reactor = Reactor::builder().build(&memory_reactor(helpers)).unwrap();
        let defer = py.import("twisted.internet.defer").unwrap();
        let orphan = defer.getattr("Deferred").unwrap().call0().unwrap().unbind();
        let d: Deferred<Py<PyAny>> = reactor.from_twisted(orphan);
        py.import("gc").unwrap().call_method0("collect").unwrap();
        let failure = d.try_take().unwrap().unwrap_err();
        assert!(
            failure.is::<tokio_deferred::ResolverDroppedError>(),
            "{failure:?}"
        );
        assert_eq!(reactor.waiting(), 0);
        reactor.shutdown(py);
    });
}
