"""10,000 concurrent round trips leave no Python objects and no Rust
allocations behind."""

import gc
import sys

from twisted.internet import defer, reactor, task

import tokio_deferred_demo as demo
from support import BridgeTestCase

COUNT = 10_000


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


async def round_trips(count):
    """`count` Python -> Rust -> Python -> Rust -> Python round trips at
    once (values, failures and cancellations), awaited together."""
    sources = [defer.Deferred() for _ in range(count)]
    results = []
    for i, source in enumerate(sources):
        d = demo.await_value(source)
        if i % 10 == 9:
            d.cancel()
        results.append(d)
    await sleep(0)
    for i, source in enumerate(sources):
        if i % 10 == 8:
            source.errback(KeyError(i))
        elif not source.called:
            source.callback(i)
    outcomes = await defer.DeferredList(results, consumeErrors=True)
    ok = sum(1 for success, _ in outcomes if success)
    failed = [f.type for success, f in outcomes if not success]
    return ok, failed


async def settle():
    """Lets the workers drop what they hold, then collects: PyO3 applies the
    reference counts of objects dropped without the GIL at the next call
    into the module."""
    for _ in range(3):
        await sleep(0.02)
        demo.bridge_load()
        gc.collect()


class LeakTests(BridgeTestCase):
    timeout = 120

    async def measure(self):
        await settle()
        self.assertEqual(demo.bridge_load(), (0, 0))
        return len(gc.get_objects()), sys.getallocatedblocks(), demo.rust_heap()

    async def test_ten_thousand_concurrent_round_trips_leak_nothing(self):
        # The first batch grows the caches (Tokio's queues, free lists).
        await round_trips(COUNT)
        objects, blocks, (rust_bytes, rust_blocks) = await self.measure()
        ok, failed = await round_trips(COUNT)
        self.assertEqual(ok, COUNT - 2 * COUNT // 10)
        self.assertEqual(failed.count(KeyError), COUNT // 10)
        self.assertEqual(failed.count(defer.CancelledError), COUNT // 10)
        objects2, blocks2, (rust_bytes2, rust_blocks2) = await self.measure()
        # A leak of one object per round trip would be 10,000.
        self.assertLess(objects2 - objects, 200, "Python objects")
        self.assertLess(blocks2 - blocks, 2000, "Python memory blocks")
        self.assertLess(rust_blocks2 - rust_blocks, 200, "Rust allocations")
        self.assertLess(rust_bytes2 - rust_bytes, 256 * 1024, "Rust heap bytes")
