"""The Python half of benches/bridge.rs: runs under the default reactor and
returns the measurements (the Rust half defines `bridge_bench`)."""

import os
import queue
import statistics
import sys
import threading
import time

from twisted.internet import defer, reactor, task

import bridge_bench as bench

SEQUENTIAL = int(os.environ.get("BRIDGE_BENCH_SEQUENTIAL", "2000"))
BURST = int(os.environ.get("BRIDGE_BENCH_BURST", "5000"))
BUSY = int(os.environ.get("BRIDGE_BENCH_BUSY", "10000"))
REPEAT = int(os.environ.get("BRIDGE_BENCH_REPEAT", "5"))


class PythonThread:
    """The pure-Twisted baseline: a Python thread fires each Deferred with
    `reactor.callFromThread(d.callback, value)`."""

    def __init__(self):
        self.requests = queue.SimpleQueue()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            item = self.requests.get()
            if item is None:
                return
            d, value = item
            reactor.callFromThread(d.callback, value)

    def call(self, value):
        d = defer.Deferred()
        self.requests.put((d, value))
        return d

    def stop(self):
        self.requests.put(None)


async def sequential(call, n):
    start = time.perf_counter()
    for i in range(n):
        assert await call(i) == i
    return (time.perf_counter() - start) / n


async def burst(call, n):
    start = time.perf_counter()
    ds = [call(i) for i in range(n)]
    results = await defer.gatherResults(ds)
    assert results == list(range(n))
    return (time.perf_counter() - start) / n


async def round_trips():
    baseline = PythonThread()
    paths = {
        "twisted_thread": baseline.call,
        "bridge_ready": bench.ready,
        "bridge_worker": bench.hop,
        "gil_worker": bench.gil_hop,
    }
    rows = {}
    for mode, run, n in (("sequential", sequential, SEQUENTIAL), ("burst", burst, BURST)):
        samples = {name: [] for name in paths}
        for _ in range(REPEAT):
            # Interleaved, so that every path sees the same machine state.
            for name, call in paths.items():
                samples[name].append(await run(call, n))
        for name in paths:
            rows[(name, mode)] = statistics.median(samples[name])
    baseline.stop()
    return rows


async def busy_reactor(start, n):
    """Starts `n` Rust futures that complete on Tokio workers (`start(n)`)
    while the reactor thread runs Python code in 20 ms blocks; returns the
    seconds until every Twisted Deferred has fired."""
    done = [0]
    finished = defer.Deferred()

    def one(_):
        done[0] += 1
        if done[0] == n:
            finished.callback(time.perf_counter())

    def busy():
        end = time.perf_counter() + 0.020
        while time.perf_counter() < end:
            pass
        if done[0] < n:
            reactor.callLater(0, busy)

    ds, gate = start(n)
    for d in ds:
        d.addCallback(one)
    began = time.perf_counter()
    gate()  # the futures complete now
    reactor.callLater(0, busy)
    end = await finished
    return end - began


async def main():
    out = {"python": sys.version.split()[0], "switch_interval": sys.getswitchinterval()}
    out["round_trips"] = {f"{k[0]}/{k[1]}": v for k, v in (await round_trips()).items()}
    calls_before = bench.foreign_call_from_thread_calls()
    bench.reset_gil_wait()
    out["busy_bridge_s"] = await busy_reactor(bench.start_bridge, BUSY)
    out["busy_bridge_gil_wait_s"] = bench.gil_wait_seconds()
    out["busy_bridge_foreign_calls"] = bench.foreign_call_from_thread_calls() - calls_before
    bench.reset_gil_wait()
    calls_before = bench.foreign_call_from_thread_calls()
    out["busy_gil_s"] = await busy_reactor(bench.start_gil, BUSY)
    out["busy_gil_gil_wait_s"] = bench.gil_wait_seconds()
    out["busy_gil_foreign_calls"] = bench.foreign_call_from_thread_calls() - calls_before
    out["busy_n"] = BUSY
    return out


def run():
    result = {}

    def done(value):
        result["value"] = value
        reactor.stop()

    def failed(f):
        result["error"] = f.getTraceback()
        reactor.stop()

    reactor.callWhenRunning(lambda: defer.ensureDeferred(main()).addCallbacks(done, failed))
    reactor.run(installSignalHandlers=False)
    if "error" in result:
        raise RuntimeError(result["error"])
    return result["value"]
