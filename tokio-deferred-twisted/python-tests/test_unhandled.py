"""A failure is reported once, by the side that drops it, and never when
the other side handles it."""

import gc

from twisted.internet import defer, reactor, task

import tokio_deferred_demo as demo
from support import BridgeTestCase, rust_unhandled


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


class HandledTests(BridgeTestCase):
    async def test_a_python_failure_handled_in_rust_is_reported_nowhere(self):
        info = await demo.error_info(defer.fail(ValueError("handled in Rust")))
        self.assertEqual(info["type_name"], "ValueError")

    async def test_a_rust_failure_handled_in_python_is_reported_nowhere(self):
        with self.assertRaises(demo.RustError):
            await demo.fail_later("handled in Python", 0.0)


class UnhandledInRustTests(BridgeTestCase):
    async def test_reported_once_by_the_rust_side_not_by_twisted(self):
        before = rust_unhandled()
        await demo.drop_unhandled(defer.fail(ValueError("dropped in Rust")))
        # The report is made where the last handle goes: give the worker a
        # moment, without assuming how long.
        for _ in range(200):
            if rust_unhandled() > before:
                break
            await sleep(0.005)
        self.assertEqual(rust_unhandled(), before + 1)
        self._rust_unhandled += 1  # expected by the base class check


class UnhandledInPythonTests(BridgeTestCase):
    expected_unhandled = 1

    async def test_a_rust_failure_is_reported_once_by_twisted(self):
        d = demo.fail_later("dropped in Python", 0.0)
        while not d.called:
            await sleep(0.005)
        del d
        gc.collect()
        self.assertEqual(len(self.flushLoggedErrors(demo.RustError)), 1)

    async def test_a_round_trip_failure_is_reported_once_by_twisted(self):
        d = demo.await_value(defer.fail(KeyError("round trip")))
        while not d.called:
            await sleep(0.005)
        del d
        gc.collect()
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)
