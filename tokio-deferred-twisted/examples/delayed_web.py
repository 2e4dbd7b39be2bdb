"""Twisted Web's "Asynchronous Responses (via Deferred)", with the work in
Rust: `render_GET` calls a Rust async function (a delay with `defer_later`,
then CPU work with `defer_to_thread`) that returns a Twisted Deferred, and
returns NOT_DONE_YET. A client that hangs up cancels the Rust side.

    scripts/test-twisted.sh             # builds tokio_deferred_demo into target/twisted-venv
    target/twisted-venv/bin/python tokio-deferred-twisted/examples/delayed_web.py --delay 5
    curl http://127.0.0.1:8080/         # five seconds later: the page
    curl http://127.0.0.1:8080/stats    # what the Rust side did

The document's version, for comparison:

    class DelayedResource(Resource):
        def _delayedRender(self, request):
            request.write(b"<html><body>Sorry to keep you waiting.</body></html>")
            request.finish()

        def render_GET(self, request):
            d = deferLater(reactor, 5, lambda: request)
            d.addCallback(self._delayedRender)
            return NOT_DONE_YET
"""

import argparse
import json

from twisted.internet import defer, endpoints, reactor
from twisted.python import log
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

import tokio_deferred_demo as rust


class DelayedResource(Resource):
    isLeaf = True

    def __init__(self, delay):
        super().__init__()
        self.delay = delay

    def _delayedRender(self, page, request):
        request.write(page.encode())
        request.finish()

    def _failed(self, failure, request):
        if failure.check(defer.CancelledError):
            return None  # the client hung up: nobody to answer
        log.err(failure, "rendering failed")
        request.setResponseCode(500)
        request.finish()

    def render_GET(self, request):
        d = rust.render_page(self.delay, request.path.decode())
        d.addCallback(self._delayedRender, request)
        d.addErrback(self._failed, request)
        # The client hung up: cancel the Rust side (its defer_later timer,
        # or its wait for the thread).
        request.notifyFinish().addErrback(lambda _: d.cancel())
        return NOT_DONE_YET


class Stats(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(rust.render_stats()).encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--delay", type=float, default=5.0)
    args = parser.parse_args()
    root = Resource()
    root.putChild(b"", DelayedResource(args.delay))
    root.putChild(b"page", DelayedResource(args.delay))
    root.putChild(b"stats", Stats())
    endpoint = endpoints.TCP4ServerEndpoint(reactor, args.port, interface="127.0.0.1")

    def listening(port):
        print(f"listening on http://127.0.0.1:{port.getHost().port}/", flush=True)

    endpoint.listen(Site(root)).addCallbacks(listening, lambda f: (f.printTraceback(), reactor.stop()))
    reactor.run()


if __name__ == "__main__":
    main()
