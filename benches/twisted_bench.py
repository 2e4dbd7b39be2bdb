#!/usr/bin/env python3
"""Times the core chain workloads of benches/core.rs in Twisted on CPython.

Optional: run it to fill the Twisted column of BENCHMARKS.md. It uses the
conformance runner's venv, target/conform-venv (created if missing),
pip-installs twisted==26.10.0 into it if needed, re-runs itself there,
prints ns/op per workload and writes target/twisted.json, which
benches/report.py reads.

    python3 benches/twisted_bench.py
"""

import json
import os
import subprocess
import sys
import time

TWISTED = "26.10.0"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The conformance runner's venv (conformance/run.py), shared by every
# Twisted measurement.
VENV = os.path.join(ROOT, "target", "conform-venv")
OUT = os.path.join(ROOT, "target", "twisted.json")


def ensure_venv():
    """Re-executes this script inside a venv that has Twisted."""
    py = os.path.join(VENV, "bin", "python")
    if os.path.abspath(sys.prefix) == os.path.abspath(VENV):
        return
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    probe = subprocess.run(
        [py, "-c", "import twisted; print(twisted.__version__)"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0 or probe.stdout.strip() != TWISTED:
        subprocess.check_call(
            [py, "-m", "pip", "install", "--quiet", f"twisted=={TWISTED}"]
        )
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


def timeit(fn, min_time=1.0, repeats=5):
    """Median ns per call of fn() over `repeats` runs of about min_time/repeats s."""
    n = 1
    while True:
        t = time.perf_counter_ns()
        for _ in range(n):
            fn()
        dt = time.perf_counter_ns() - t
        if dt > 50_000_000 or n > 1 << 24:
            break
        n *= 2
    per_run = max(1, int(n * (min_time / repeats) / (dt / 1e9)))
    samples = []
    for _ in range(repeats):
        t = time.perf_counter_ns()
        for _ in range(per_run):
            fn()
        samples.append((time.perf_counter_ns() - t) / per_run)
    samples.sort()
    return samples[len(samples) // 2]


def main():
    ensure_venv()
    import twisted
    from twisted.internet.defer import Deferred, ensureDeferred, succeed

    def new_fire_take():
        d = Deferred()
        d.callback(1)
        return d.result

    def chain(n):
        def run():
            d = Deferred()
            for k in range(n):
                d.addCallback(lambda v, k=k: v + k)
            d.callback(0)
            return d.result

        return run

    def nested(depth):
        """Builds the chain of benches/core.rs `nested`: each level's callback
        returns the level below; returns (top, innermost)."""
        innermost = Deferred()
        d = innermost
        for _ in range(depth):
            d = succeed(None).addCallback(lambda _, prev=d: prev)
        return d, innermost

    def nested_fire(depth, reps=3):
        """Median ns per level to fire a nested chain (build not timed)."""
        samples = []
        for _ in range(reps):
            top, inner = nested(depth)
            t = time.perf_counter_ns()
            inner.callback(41)
            r = top.result
            samples.append((time.perf_counter_ns() - t) / depth)
            assert r == 41, r
            del top, inner
        samples.sort()
        return samples[len(samples) // 2]

    def nested_all(depth, reps=3):
        samples = []
        for _ in range(reps):
            t = time.perf_counter_ns()
            top, inner = nested(depth)
            inner.callback(41)
            r = top.result
            del top, inner
            samples.append((time.perf_counter_ns() - t) / depth)
            assert r == 41, r
        samples.sort()
        return samples[len(samples) // 2]

    async def ready():
        return 1

    def ensure_ready():
        return ensureDeferred(ready()).result

    def succeed_take():
        return succeed(1).result

    results = {
        "new_fire_take": timeit(new_fire_take),
        "chain_10": timeit(chain(10)),
        "chain_100": timeit(chain(100)),
        "nested_chain_fire/1000 (per level)": nested_fire(1_000, reps=21),
        "nested_chain_fire/100000 (per level)": nested_fire(100_000),
        "nested_chain_build_fire_drop/1000 (per level)": nested_all(1_000, reps=21),
        "nested_chain_build_fire_drop/100000 (per level)": nested_all(100_000),
        "ensure_deferred_ready": timeit(ensure_ready),
        "succeed": timeit(succeed_take),
    }
    print(f"Twisted {twisted.__version__} on CPython {sys.version.split()[0]}")
    for k, v in results.items():
        print(f"{k:50} {v:12.1f} ns/op")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(
            {"twisted": twisted.__version__, "python": sys.version.split()[0], "ns": results},
            f,
            indent=1,
        )


if __name__ == "__main__":
    main()
