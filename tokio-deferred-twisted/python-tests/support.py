"""Shared by the bridge's Python tests: a TestCase that fails on any
"Unhandled error in Deferred" Twisted logs and on any error the bridge logs
through `tracing`."""

import gc

from twisted.logger import globalLogPublisher
from twisted.trial import unittest

import tokio_deferred_demo as demo


def bridge_errors():
    """Error events the bridge itself logged (a Deferred fired twice, ...)."""
    return demo.error_events().get("tokio_deferred_twisted", 0)


def rust_unhandled():
    """Failures the Rust side reported as unhandled."""
    return demo.error_events().get("tokio_deferred::unhandled", 0)


class UnhandledErrors:
    """Records Twisted's "Unhandled error in Deferred" events."""

    def __init__(self):
        self.events = []

    def __call__(self, event):
        if event.get("log_format") == "Unhandled error in Deferred:":
            self.events.append(event)

    def __enter__(self):
        globalLogPublisher.addObserver(self)
        return self

    def __exit__(self, *exc):
        gc.collect()
        globalLogPublisher.removeObserver(self)


class BridgeTestCase(unittest.TestCase):
    """Fails a test that left an unhandled Twisted failure behind, or made
    the bridge log an error."""

    #: Unhandled Twisted failures the test expects.
    expected_unhandled = 0

    def setUp(self):
        self._unhandled = UnhandledErrors().__enter__()
        self._bridge_errors = bridge_errors()
        self._rust_unhandled = rust_unhandled()
        self.addCleanup(self._check)

    def _check(self):
        self._unhandled.__exit__(None, None, None)
        self.assertEqual(
            len(self._unhandled.events),
            self.expected_unhandled,
            "Unhandled error in Deferred",
        )
        self.assertEqual(bridge_errors(), self._bridge_errors, "the bridge logged errors")
        self.assertEqual(rust_unhandled(), self._rust_unhandled, "unhandled Rust failures")
