"""Twisted Deferreds and coroutines as Rust Deferreds."""

import traceback

from twisted.internet import defer, reactor, task

import tokio_deferred_demo as demo
from support import BridgeTestCase


def raise_in_here(exc):
    raise exc


class SuccessTests(BridgeTestCase):
    async def test_a_deferred_fired_later(self):
        d = defer.Deferred()
        reactor.callLater(0.01, d.callback, ["value"])
        self.assertEqual(await demo.await_value(d), ["value"])

    async def test_an_already_fired_deferred(self):
        self.assertEqual(await demo.await_value(defer.succeed(3)), 3)

    async def test_a_coroutine(self):
        async def coro():
            await task.deferLater(reactor, 0.01, lambda: None)
            return "coro"

        self.assertEqual(await demo.await_value(coro()), "coro")

    async def test_typed_result_is_extracted_on_the_reactor_thread(self):
        self.assertEqual(await demo.await_int(defer.succeed(21)), 42)

    async def test_a_failed_extraction_fails_with_the_python_error(self):
        with self.assertRaises(TypeError):
            await demo.await_int(defer.succeed("not a number"))

    async def test_a_rust_panic_after_awaiting_a_twisted_deferred(self):
        d = defer.Deferred()
        reactor.callLater(0.01, d.callback, 7)
        with self.assertRaises(demo.RustPanic) as caught:
            await demo.await_then_panic(d)
        self.assertEqual(str(caught.exception), "got 7")

    async def test_not_awaitable_fails_with_twisteds_error(self):
        with self.assertRaises(defer.NotACoroutineError):
            await demo.await_value(42)

    async def test_call_from_a_worker_accepts_plain_values(self):
        self.assertEqual(await demo.call_python(lambda a, b: a + b, 2, 3), 5)

    async def test_call_from_a_worker_awaits_deferreds(self):
        self.assertEqual(
            await demo.call_python(task.deferLater, reactor, 0.01, lambda: "later"),
            "later",
        )


class NestingTests(BridgeTestCase):
    async def test_python_rust_python_rust(self):
        async def level(n):
            await task.deferLater(reactor, 0, lambda: None)
            return await demo.nest(level, n)

        self.assertEqual(await demo.nest(level, 6), 6)

    def test_nesting_that_never_waits_finishes_synchronously(self):
        d = demo.nest(lambda n: defer.succeed(0), 0)
        self.assertEqual(self.successResultOf(d), 0)


class ErrorIdentityTests(BridgeTestCase):
    async def test_round_trip_reraises_the_same_exception(self):
        original = KeyError("alice")
        try:
            raise_in_here(original)
        except KeyError:
            d = defer.fail()
        with self.assertRaises(KeyError) as caught:
            await demo.await_value(d)
        self.assertIs(caught.exception, original)
        frames = [f.name for f in traceback.extract_tb(caught.exception.__traceback__)]
        self.assertIn("raise_in_here", frames)

    async def test_round_trip_of_a_coroutine_exception(self):
        original = ValueError("bad")

        async def coro():
            await task.deferLater(reactor, 0, lambda: None)
            raise original

        with self.assertRaises(ValueError) as caught:
            await demo.await_value(coro())
        self.assertIs(caught.exception, original)

    async def test_rust_sees_type_message_and_traceback(self):
        try:
            raise_in_here(KeyError("bob"))
        except KeyError:
            d = defer.fail()
        info = await demo.error_info(d)
        self.assertEqual(info["type_name"], "KeyError")
        self.assertEqual(info["message"], "'bob'")
        self.assertEqual(info["display"], "KeyError: 'bob'")
        self.assertTrue(info["is_key_error"])
        self.assertIn("raise_in_here", info["traceback"])
        self.assertTrue(info["traceback"].rstrip().endswith("KeyError: 'bob'"))

    async def test_qualified_names_for_non_builtin_exceptions(self):
        info = await demo.error_info(defer.fail(defer.AlreadyCalledError("x")))
        self.assertEqual(info["type_name"], "twisted.internet.defer.AlreadyCalledError")
        self.assertFalse(info["is_key_error"])

    async def test_twisted_cancelled_error_is_rusts_cancelled_error(self):
        info = await demo.error_info(defer.fail(defer.CancelledError()))
        self.assertTrue(info["is_cancelled"])

    async def test_rusts_cancelled_error_is_twisteds(self):
        with self.assertRaises(defer.CancelledError):
            await demo.await_value(defer.fail(defer.CancelledError()))

    async def test_a_rust_panic_round_trip_stays_the_same_object(self):
        try:
            await demo.panic_later("first", 0.0)
        except demo.RustPanic as e:
            first = e
        with self.assertRaises(demo.RustPanic) as caught:
            await demo.await_value(defer.fail(first))
        self.assertIs(caught.exception, first)
