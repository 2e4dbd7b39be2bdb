"""Cancellation both ways: before the fire, after it, and racing it."""

import random

from twisted.internet import defer, reactor, task

import tokio_deferred_demo as demo
from support import BridgeTestCase


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


class TwistedCancelsRustTests(BridgeTestCase):
    """Twisted's d.cancel() on a Deferred made from Rust work."""

    async def test_cancel_before_the_fire_runs_the_rust_canceller_once(self):
        probe = demo.Probe()
        d = demo.with_canceller(probe, "value", 0.05)
        d.cancel()
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(probe.canceller_runs, 1)
        await sleep(0.1)  # the Rust resolver fires now: swallowed
        self.assertEqual(probe.canceller_runs, 1)

    def test_a_rust_canceller_that_fires_gives_its_value(self):
        probe = demo.Probe()
        d = demo.with_canceller(probe, "value", 10.0, on_cancel="from the canceller")
        d.cancel()
        self.assertEqual(self.successResultOf(d), "from the canceller")
        self.assertEqual(probe.canceller_runs, 1)

    async def test_cancel_after_the_fire_does_nothing(self):
        probe = demo.Probe()
        d = demo.with_canceller(probe, "value", 0.0)
        self.assertEqual(await d, "value")
        d.cancel()
        self.assertEqual(probe.canceller_runs, 0)

    async def test_cancel_goes_through_callbacks_added_before_it(self):
        probe = demo.Probe()
        d = demo.with_canceller(probe, "value", 10.0, on_cancel="v")
        d.addCallback(lambda v: v + "!")
        d.cancel()
        self.assertEqual(await d, "v!")

    async def test_cancel_racing_the_fire(self):
        # Each Deferred ends exactly once, with the value (already on its
        # way to the reactor when the cancel came) or CancelledError; each
        # Rust canceller runs at most once.
        probes, deferreds = [], []
        for i in range(300):
            probe = demo.Probe()
            d = demo.with_canceller(probe, i, random.choice([0.0, 0.0005, 0.002]))
            probes.append(probe)
            deferreds.append(d)
            when = random.choice([None, 0.0, 0.0005, 0.001, 0.003])
            if when is None:
                d.cancel()
            else:
                reactor.callLater(when, d.cancel)
        outcomes = []
        for d in deferreds:
            d.addCallbacks(lambda v: outcomes.append(("ok", v)), lambda f: outcomes.append(("cancelled", f.trap(defer.CancelledError))))
        await sleep(0.05)
        self.assertEqual(len(outcomes), len(deferreds))
        for i, (kind, value) in enumerate(o for o in outcomes if o[0] == "ok"):
            self.assertIsInstance(value, int)
        for probe in probes:
            self.assertLessEqual(probe.canceller_runs, 1)
        kinds = {k for k, _ in outcomes}
        self.assertIn("cancelled", kinds)

    async def test_a_cooperative_future_may_catch_the_cancel(self):
        probe = demo.Probe()
        d = demo.cooperative(probe, "value", 10.0, on_cancel="recovered")
        d.cancel()
        # The Rust future resumes on a worker: the result comes later.
        self.assertNoResult(d)
        self.assertEqual(await d, "recovered")
        self.assertEqual(probe.saw_cancel, 1)
        self.assertEqual(probe.finished, 1)

    async def test_a_cooperative_future_may_let_the_cancel_through(self):
        probe = demo.Probe()
        d = demo.cooperative(probe, "value", 10.0)
        d.cancel()
        with self.assertRaises(defer.CancelledError):
            await d
        self.assertEqual(probe.saw_cancel, 1)

    async def test_a_second_cancel_reaches_the_rust_side_again(self):
        probe = demo.Probe()
        d = demo.cooperative(probe, "value", 10.0, on_cancel="recovered", patience=1)
        d.cancel()  # caught: the future awaits a new Deferred
        for _ in range(200):
            if probe.saw_cancel:
                break
            await sleep(0.005)
        await sleep(0.02)
        self.assertNoResult(d)
        d.cancel()  # forwarded to the fresh Deferred, and to the Rust side
        self.assertEqual(await d, "recovered")
        self.assertEqual(probe.saw_cancel, 2)

    async def test_a_future_awaiting_no_deferred_is_dropped(self):
        probe = demo.Probe()
        d = demo.sleeper(probe, 10.0)
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        for _ in range(100):
            if probe.dropped:
                break
            await sleep(0.01)
        self.assertEqual((probe.dropped, probe.finished), (1, 0))

    async def test_cancel_after_a_cooperative_future_finished(self):
        probe = demo.Probe()
        d = demo.cooperative(probe, "value", 0.0)
        self.assertEqual(await d, "value")
        d.cancel()
        self.assertEqual(probe.saw_cancel, 0)


class RustCancelsTwistedTests(BridgeTestCase):
    """Cancelling the Rust Deferred made from a Twisted one."""

    def counted(self, on_cancel=None):
        calls = []

        def canceller(d):
            calls.append(d)
            if on_cancel is not None:
                d.callback(on_cancel)

        return defer.Deferred(canceller), calls

    async def check_way(self, how, expected):
        d, calls = self.counted()
        result = await demo.await_cancelled(d, how, 0.01)
        self.assertEqual(result, ("failed", None, expected))
        self.assertEqual(len(calls), 1)
        self.assertTrue(d.called)
        self.assertIsNone(d.result)  # consumed by the Rust side

    async def test_cancel(self):
        await self.check_way("cancel", "CancelledError")

    async def test_cancel_handle(self):
        await self.check_way("handle", "CancelledError")

    async def test_cancel_on_drop(self):
        await self.check_way("drop", "CancelledError")

    async def test_add_timeout(self):
        await self.check_way("timeout", "TimeoutError")

    async def test_cancel_after_the_fire_does_nothing(self):
        d, calls = self.counted()
        reactor.callLater(0, d.callback, "done")
        result = await demo.await_cancelled(d, "handle", 0.05)
        self.assertEqual(result, ("ok", "done", None))
        self.assertEqual(calls, [])

    async def test_cancel_racing_the_fire(self):
        runs = []
        for _ in range(100):
            d, calls = self.counted()
            fire = lambda d=d: d.called or d.callback("fired")  # noqa: E731
            reactor.callLater(random.choice([0.0, 0.001, 0.002]), fire)
            runs.append((demo.await_cancelled(d, "handle", random.choice([0.0, 0.001, 0.002])), calls))
        for result_d, calls in runs:
            kind, value, error = await result_d
            self.assertLessEqual(len(calls), 1)
            if kind == "ok":
                # The Twisted result came first: the cancel found the Rust
                # Deferred fired and did nothing.
                self.assertEqual((value, calls), ("fired", []))
            else:
                # Cancelled from a worker: the Rust Deferred failed at once;
                # the Twisted one was cancelled on the reactor thread, unless
                # it fired first.
                self.assertEqual(error, "CancelledError")

    def test_cancel_on_the_reactor_thread_gets_twisteds_outcome_at_once(self):
        d, calls = self.counted(on_cancel="the canceller's value")
        self.assertEqual(demo.cancel_now(d), ("ok", "the canceller's value", None))
        self.assertEqual(len(calls), 1)

    def test_cancel_on_the_reactor_thread_without_a_canceller(self):
        d = defer.Deferred()
        self.assertEqual(demo.cancel_now(d), ("failed", None, "CancelledError"))
        self.assertTrue(d.called)

    async def test_cancelled_before_the_reactor_ran_it_never_starts(self):
        started = []

        def start():
            started.append(1)
            return defer.Deferred()

        result = await demo.cancelled_before_start(start)
        self.assertEqual(result, ("failed", None, "CancelledError"))
        self.assertEqual(started, [])

    async def test_a_deferred_cancelled_before_the_reactor_attached_is_cancelled(self):
        d, calls = self.counted()
        result = await demo.cancelled_before_start(d, call=False)
        self.assertEqual(result, ("failed", None, "CancelledError"))
        for _ in range(200):  # the reactor gets to the queued attach
            if calls:
                break
            await sleep(0.005)
        self.assertEqual(len(calls), 1)
        self.assertIsNone(d.result)  # consumed

    async def test_a_coroutine_cancelled_before_the_reactor_attached_is_closed(self):
        started = []

        async def coro():
            started.append(1)

        c = coro()
        result = await demo.cancelled_before_start(c, call=False)
        self.assertEqual(result, ("failed", None, "CancelledError"))
        for _ in range(200):
            if c.cr_frame is None:
                break
            await sleep(0.005)
        self.assertIsNone(c.cr_frame)  # closed, never run
        self.assertEqual(started, [])
