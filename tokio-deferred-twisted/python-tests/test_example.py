"""The twisted.web example (examples/delayed_web.py) over real HTTP on
127.0.0.1, including a client that hangs up early."""

import json
import os
import re
import signal
import subprocess
import sys

from twisted.internet import defer, endpoints, protocol, reactor, task
from twisted.trial import unittest
from twisted.web.client import Agent, readBody

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "examples", "delayed_web.py")


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


class HangUp(protocol.Protocol):
    """Sends a GET, then closes the connection before the answer."""

    def connectionMade(self):
        self.transport.write(b"GET /page HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        reactor.callLater(0.1, self.transport.loseConnection)


class ExampleTests(unittest.TestCase):
    timeout = 60

    def setUp(self):
        self.server = subprocess.Popen(
            [sys.executable, "-u", EXAMPLE, "--port", "0", "--delay", "0.5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(self.stop_server)
        line = self.server.stdout.readline()
        match = re.search(r"http://127.0.0.1:(\d+)/", line)
        if match is None:
            self.fail(f"the example did not start: {line}{self.server.stderr.read()}")
        self.base = f"http://127.0.0.1:{match.group(1)}"
        self.port = int(match.group(1))
        self.agent = Agent(reactor)

    def stop_server(self):
        if self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
        # The reactor's SIGTERM handler stops it; the bridge shuts down
        # with it and the process exits normally.
        self.assertEqual(self.server.wait(timeout=30), 0, self.server.stderr.read())
        self.server.stdout.close()
        self.server.stderr.close()

    async def get(self, path):
        response = await self.agent.request(b"GET", (self.base + path).encode())
        return response.code, await readBody(response)

    async def stats(self):
        return json.loads((await self.get("/stats"))[1])

    async def test_pages_come_from_rust_after_the_delay(self):
        paths = ["/", "/page", "/page"]
        results = await defer.gatherResults([defer.ensureDeferred(self.get(p)) for p in paths])
        for code, body in results:
            self.assertEqual(code, 200)
            self.assertRegex(body, rb"^<html><body>Sorry to keep you waiting\. \([0-9a-f]{16}\)</body></html>$")
        # The checksum depends on the path.
        self.assertEqual(results[1][1], results[2][1])
        self.assertNotEqual(results[0][1], results[1][1])
        self.assertEqual(await self.stats(), {"started": 3, "rendered": 3, "cancelled": 0})

    async def test_a_client_hanging_up_cancels_the_rust_side(self):
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        hung_up = await endpoints.connectProtocol(endpoint, HangUp())
        self.assertIsNotNone(hung_up)
        # A normal request alongside it still gets its page.
        code, _ = await self.get("/page")
        self.assertEqual(code, 200)
        for _ in range(100):
            stats = await self.stats()
            if stats["cancelled"]:
                break
            await sleep(0.05)
        self.assertEqual(stats, {"started": 2, "rendered": 1, "cancelled": 1})
