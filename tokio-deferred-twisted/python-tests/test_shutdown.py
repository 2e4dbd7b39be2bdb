"""Stopping the reactor with Rust work in flight (in a subprocess, with
the default reactor)."""

import json
import os
import subprocess
import sys
import time

from twisted.trial import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
GRACE = 2.0


class ShutdownTests(unittest.TestCase):
    def test_reactor_stopped_with_100_rust_futures_in_flight(self):
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, os.path.join(HERE, "shutdown_script.py"), str(GRACE)],
            capture_output=True,
            text=True,
            # A hang guard only: the process must exit by itself.
            timeout=GRACE + 30,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr)
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        self.assertEqual(report["in_flight_at_stop"], 101)
        # The 50 that finish within the grace period deliver their values;
        # the 50 that never finish, and the one waiting for Twisted, fail
        # with ReactorShutdownError.
        self.assertEqual(report["values"], 50)
        self.assertEqual(report["shutdown_errors"], 51)
        self.assertEqual(report["other"], [])
        self.assertEqual(report["unhandled"], 0)
        self.assertTrue(report["shut_down"])
        self.assertEqual(report["after"], "ReactorShutdownError")
        # Bounded by the grace period (plus the runtime's stop), not by the
        # work still running.
        self.assertLess(report["shutdown_seconds"], GRACE + 1.0)
        self.assertLess(time.monotonic() - started, GRACE + 20)
