"""Run by test_shutdown in a subprocess: stops the default reactor while
100 Rust futures are in flight (50 that finish within the grace period, 50
that never do) and a Rust future waits for a Twisted Deferred that never
fires; prints what every Deferred got, as JSON, and exits."""

import json
import sys
import time

from twisted.internet import defer, reactor
from twisted.logger import globalLogPublisher

import tokio_deferred_demo as demo

GRACE = float(sys.argv[1])

report = {"values": 0, "shutdown_errors": 0, "other": [], "unhandled": 0}
never = []


def observe(event):
    if event.get("log_format") == "Unhandled error in Deferred:":
        report["unhandled"] += 1


globalLogPublisher.addObserver(observe)
demo.install(workers=2, grace=GRACE)


def ok(_):
    report["values"] += 1


def err(failure):
    if failure.check(demo.ReactorShutdownError):
        report["shutdown_errors"] += 1
    else:
        report["other"].append(repr(failure.value))


def start():
    for i in range(50):
        demo.later(i, 0.2).addCallbacks(ok, err)
    for i in range(50):
        demo.later(i, 3600.0).addCallbacks(ok, err)
    # A Rust future waiting for a Twisted Deferred that never fires (kept,
    # as its producer would keep it).
    never.append(defer.Deferred())
    demo.await_value(never[0]).addCallbacks(ok, err)
    reactor.callLater(0.05, stop)


def stop():
    report["in_flight_at_stop"] = demo.bridge_load()[0]
    report["stopped_at"] = time.monotonic()
    reactor.stop()


reactor.callWhenRunning(start)
reactor.run()
report["shutdown_seconds"] = time.monotonic() - report.pop("stopped_at")
report["shut_down"] = demo.is_shut_down()
try:
    demo.later(1, 0.0)
    report["after"] = "accepted"
except demo.ReactorShutdownError:
    report["after"] = "ReactorShutdownError"
print(json.dumps(report))
