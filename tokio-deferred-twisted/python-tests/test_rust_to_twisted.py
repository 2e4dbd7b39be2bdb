"""Rust futures and Deferreds as Twisted Deferreds (against the default
reactor, through the maturin-built demo module)."""

import contextvars

from twisted.internet import defer, reactor, task

import tokio_deferred_demo as demo
from support import BridgeTestCase

request_id = contextvars.ContextVar("request_id", default=None)


class SuccessTests(BridgeTestCase):
    def test_already_ready_future_gives_a_fired_deferred(self):
        d = demo.ready(41)
        self.assertEqual(self.successResultOf(d), 42)

    async def test_future_completing_on_a_worker(self):
        self.assertEqual(await demo.later("value", 0.01), "value")

    async def test_result_is_converted_on_the_reactor_thread(self):
        value = {"a": [1, 2, (3, b"x")]}
        self.assertIs(await demo.hop(value), value)

    async def test_fires_on_the_reactor_thread(self):
        import threading

        main = threading.get_ident()
        seen = []
        d = demo.later(1, 0.01)
        d.addCallback(lambda v: seen.append(threading.get_ident()) or v)
        self.assertEqual(await d, 1)
        self.assertEqual(seen, [main])

    def test_the_global_reactor_uses_the_wake_up_socket(self):
        self.assertEqual(demo.dispatch_mode(), "socket")


class FailureTests(BridgeTestCase):
    async def test_rust_error_is_a_rust_error_with_the_display_chain(self):
        with self.assertRaises(demo.RustError) as caught:
            await demo.fail_later("disk on fire", 0.01)
        self.assertEqual(str(caught.exception), "request failed: disk on fire")
        self.assertTrue(caught.exception.rust_type.endswith("Outer"))
        self.assertNotIsInstance(caught.exception, demo.RustPanic)

    async def test_panic_on_a_worker_is_rust_panic(self):
        with self.assertRaises(demo.RustPanic) as caught:
            await demo.panic_later("worker died", 0.01)
        self.assertEqual(str(caught.exception), "worker died")
        self.assertIsInstance(caught.exception, Exception)

    def test_panic_in_the_first_poll_gives_a_failed_deferred(self):
        d = demo.panic_later("at once", -1.0)
        failure = self.failureResultOf(d, demo.RustPanic)
        self.assertEqual(str(failure.value), "at once")


class ContextTests(BridgeTestCase):
    async def test_callbacks_see_the_context_of_the_call(self):
        seen = []
        token = request_id.set("first")
        try:
            d = demo.later("v", 0.02)
        finally:
            request_id.reset(token)
        request_id.set("changed afterwards")
        d.addCallback(lambda v: seen.append(request_id.get()) or v)
        await d
        self.assertEqual(seen, ["first"])

    async def test_python_called_back_from_rust_runs_in_the_callers_context(self):
        request_id.set("outer")

        def inner():
            return request_id.get()

        self.assertEqual(await demo.call_python(inner), "outer")

    async def test_a_coroutine_started_from_rust_sees_the_callers_context(self):
        request_id.set("outer-coro")

        async def inner():
            await task.deferLater(reactor, 0, lambda: None)
            return request_id.get()

        self.assertEqual(await demo.call_python(inner), "outer-coro")


class GilFreeTests(BridgeTestCase):
    async def test_workers_deliver_while_the_reactor_thread_holds_the_gil(self):
        # The reactor thread holds the GIL (running no Python code, so
        # CPython never hands it over) while 500 futures complete on Tokio
        # workers: each worker must queue its result without the GIL.
        deferreds, all_queued = demo.deliver_holding_gil(500, 10.0)
        self.assertTrue(all_queued, "a Tokio worker waited for the GIL")
        results = await defer.gatherResults(deferreds)
        self.assertEqual(results, list(range(500)))

    async def test_from_twisted_on_workers_needs_no_gil(self):
        def make():
            return task.deferLater(reactor, 0.01, lambda: "made")

        all_through, results = demo.from_twisted_holding_gil(make, 200, 10.0)
        self.assertTrue(all_through, "a Tokio worker waited for the GIL")
        self.assertEqual(await results, ["made"] * 200)
