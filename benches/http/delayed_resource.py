"""The Twisted side of the HTTP benchmark: Twisted Web's "Asynchronous
Responses (via Deferred)" DelayedResource, served on 127.0.0.1 with the
delay given in milliseconds. The resource is the document's, word for
word, except for the delay; the access log is off (as on the Rust servers).

    python delayed_resource.py DELAY_MS    # prints "listening on http://127.0.0.1:PORT/"

Run by scripts/http_bench.sh with Twisted 26.10 from target/conform-venv.
"""

import sys

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

DELAY = int(sys.argv[1]) / 1000.0


class DelayedResource(Resource):
    isLeaf = True

    def _delayedRender(self, request):
        request.write(b"<html><body>Sorry to keep you waiting.</body></html>")
        request.finish()

    def render_GET(self, request):
        d = deferLater(reactor, DELAY, lambda: request)
        d.addCallback(self._delayedRender)
        return NOT_DONE_YET


class QuietSite(Site):
    def log(self, request):
        pass


port = reactor.listenTCP(0, QuietSite(DelayedResource()), backlog=1024, interface="127.0.0.1")
print(f"listening on http://127.0.0.1:{port.getHost().port}/", flush=True)
reactor.run()
