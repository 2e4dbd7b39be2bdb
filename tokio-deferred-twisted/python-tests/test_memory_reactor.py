"""The callFromThread fallback, with a MemoryReactorClock (no descriptors)
given a thread-safe callFromThread, as test suites do (Synapse's
ThreadedMemoryReactorClock)."""

import collections
import time

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest

import tokio_deferred_demo as demo


class ThreadedMemoryReactorClock(MemoryReactorClock):
    def __init__(self):
        super().__init__()
        self.from_threads = collections.deque()

    def callFromThread(self, f, *args, **kwargs):
        self.from_threads.append((f, args, kwargs))

    def run_from_threads(self, until, timeout=10.0):
        """Runs what other threads queued until `until()` is true."""
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError("nothing came from the other threads")
            while self.from_threads:
                f, args, kwargs = self.from_threads.popleft()
                f(*args, **kwargs)
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
        self.reactor.run_from_threads(lambda: d.called)
        self.assertEqual(self.successResultOf(d), "value")

    def test_a_twisted_deferred_awaited_by_rust(self):
        source = defer.Deferred()
        d = self.bridge.await_value(source)
        self.reactor.run_from_threads(lambda: self.bridge.in_flight() == 1 and not self.reactor.from_threads)
        source.callback(["result"])
        self.reactor.run_from_threads(lambda: d.called)
        self.assertEqual(self.successResultOf(d), ["result"])

    def test_shutdown_fails_waiting_deferreds_and_refuses_new_work(self):
        never = defer.Deferred()
        waiting = self.bridge.await_value(never)
        self.reactor.run_from_threads(lambda: not self.reactor.from_threads)
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
