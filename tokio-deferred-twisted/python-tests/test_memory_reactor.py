"""The callFromThread fallback, with a MemoryReactorClock (no descriptors)
given a thread-safe callFromThread, as test suites do (Synapse's
ThreadedMemoryReactorClock)."""

import time

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest

from memory_reactor import ThreadedMemoryReactorClock

import tokio_deferred_demo as demo


def run_until(reactor, until, timeout=10.0):
    """Runs what other threads queued on `reactor` until `until()` is true."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError("nothing came from the other threads")
        reactor.run_from_threads()
        time.sleep(0.001)


class FallbackTests(unittest.TestCase):
    def setUp(self):
        self.reactor = ThreadedMemoryReactorClock()
        self.bridge = demo.Bridge(self.reactor, workers=1, grace=1.0)
        self.addCleanup(self.bridge.shutdown)

    def test_mode_is_call_from_thread(self):
        self.assertEqual(self.bridge.mode(), "callFromThread")

    def test_a_rust_future_fires_through_call_from_thread(self):
        d = self.bridge.later("value", 0.01)
        self.assertNoResult(d)
        run_until(self.reactor, lambda: d.called)
        self.assertEqual(self.successResultOf(d), "value")

    def test_a_twisted_deferred_awaited_by_rust(self):
        source = defer.Deferred()
        d = self.bridge.await_value(source)
        run_until(self.reactor, lambda: self.bridge.in_flight() == 1 and not self.reactor.from_threads)
        source.callback(["result"])
        run_until(self.reactor, lambda: d.called)
        self.assertEqual(self.successResultOf(d), ["result"])

    def test_shutdown_fails_waiting_deferreds_and_refuses_new_work(self):
        never = defer.Deferred()
        waiting = self.bridge.await_value(never)
        run_until(self.reactor, lambda: not self.reactor.from_threads)
        self.bridge.shutdown()
        self.failureResultOf(waiting, demo.ReactorShutdownError)
        self.assertRaises(demo.ReactorShutdownError, self.bridge.later, 1, 0.0)


class UnsupportedReactorTests(unittest.TestCase):
    def test_a_reactor_without_call_from_thread_is_refused(self):
        with self.assertRaises(RuntimeError) as caught:
            demo.Bridge(MemoryReactorClock())
        self.assertIn("callFromThread", str(caught.exception))

    def test_the_socket_needs_an_internal_reader_registration(self):
        with self.assertRaises(RuntimeError):
            demo.Bridge(ThreadedMemoryReactorClock(), mode="socket")
