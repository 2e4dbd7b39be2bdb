"""Interpreter of the conformance op language over Twisted's Deferred.

Reads scripts (see DESIGN-conformance.md for the language) from the file
named on the command line and prints one trace per script on stdout, in the
same text format as the Rust interpreter (tests/conformance/interp.rs).
"""

import gc
import sys

from twisted.internet import defer
from twisted.logger import globalLogBeginner
from twisted.python.failure import Failure


class MyError(Exception):
    """The error raised by `cbfail` and `fail` ops."""

    def __init__(self, k):
        super().__init__(k)
        self.k = k


class ScriptEnd(Exception):
    """Normalization N1: at the end of a script both interpreters errback
    every unfired Deferred with this, in index order."""


class PanicError(Exception):
    """Stands for a Rust panic (`cbpanic`): Twisted catches every exception."""

    def __init__(self, k):
        super().__init__(k)
        self.k = k


CONSUMER_OPS = {"drop", "ebfail", "cb", "cbs", "cbfail", "cbpanic", "cbret", "ebret", "cbfire", "cbcancel", "cbdo",
                "ebrec", "eberr", "both", "pause", "unpause", "cancel", "chain"}


def fmt_value(v):
    return "None" if v is None else str(v)


def fmt_failure(f):
    e = f.value
    if isinstance(e, MyError):
        return f"MyError({e.k})"
    if isinstance(e, PanicError):
        return f"Panic({e.k})"
    return type(e).__name__


def fmt_result(r):
    if isinstance(r, Failure):
        return "err " + fmt_failure(r)
    return "ok " + fmt_value(r)


class Script:
    def __init__(self, out):
        self.out = out
        self.ds = {}  # index -> Deferred
        self.consumed = set()
        # Deferreds an op is using right now: a callback that runs during
        # that op and reaches for one (`cbdo`) finds it unavailable, as in
        # Rust, where the op holds the only handle.
        self.busy = set()
        # After the final states, events are no longer traced (as in Rust).
        self.closed = False
        # Deferreds given to cbret/ebret whose callback has not run (or been
        # skipped) yet: op index -> Deferred.
        self.unreturned = {}

    def log(self, line):
        if not self.closed:
            self.out.append(line)

    def run(self, ops):
        for n, op in enumerate(ops):
            self.op(n, op.split())
        self.final()

    def op(self, n, w):
        i = int(w[1])
        if w[0] in CONSUMER_OPS:
            self.busy.add(i)
        try:
            self.op1(n, w)
        finally:
            self.busy.discard(i)

    def op1(self, n, w):
        name, a = w[0], [int(x) for x in w[1:] if x.lstrip("-").isdigit()]
        tag = f"@{n}"
        if name == "new":
            self.ds[a[0]] = defer.Deferred()
        elif name == "newok":
            self.ds[a[0]] = defer.succeed(a[1])
        elif name == "newerr":
            self.ds[a[0]] = defer.fail(Failure(MyError(a[1])))
        elif name == "newc":
            i, mode = a[0], w[2]
            def canceller(d, i=i, mode=mode, arg=(int(w[3]) if len(w) > 3 else 0)):
                self.log(f"canceller d{i}")
                if mode == "cb":
                    d.callback(arg)
                elif mode == "eb":
                    d.errback(Failure(MyError(arg)))
            self.ds[i] = defer.Deferred(canceller)
        elif name == "cb":
            i, k = a
            def f(v, k=k):
                self.log(f"{tag} cb got ok {fmt_value(v)}")
                return (v or 0) + k
            self.ds[i].addCallback(f)
        elif name == "cbs":
            i, k, v = a
            def f(x, k=k):
                self.log(f"{tag} cbs got ok {fmt_value(x)}")
                return (x or 0) + k
            def g(fl, v=v):
                self.log(f"{tag} cbs got err {fmt_failure(fl)}")
                return v
            self.ds[i].addCallbacks(f, g)
        elif name == "cbfail":
            i, k = a
            def f(v, k=k):
                self.log(f"{tag} cbfail got ok {fmt_value(v)}")
                raise MyError(k)
            self.ds[i].addCallback(f)
        elif name == "cbpanic":
            i, k = a
            def f(v, k=k):
                self.log(f"{tag} cbpanic got ok {fmt_value(v)}")
                raise PanicError(k)
            self.ds[i].addCallback(f)
        elif name in ("cbret", "ebret"):
            i, j = a
            inner = self.ds[j]
            self.consumed.add(j)
            self.unreturned[n] = inner

            def skipped(r, inner=inner):
                # The chain passed this link by: Rust drops the closure, and
                # with it the returned Deferred's handle (N2 applies).
                if self.unreturned.pop(n, None) is not None:
                    self.paused_failure(inner)
                return r

            if name == "cbret":
                def f(v, inner=inner):
                    self.unreturned.pop(n, None)
                    self.log(f"{tag} cbret got ok {fmt_value(v)}")
                    return inner
                self.ds[i].addCallbacks(f, skipped)
            else:
                def f(fl, inner=inner):
                    self.unreturned.pop(n, None)
                    self.log(f"{tag} ebret got err {fmt_failure(fl)}")
                    return inner
                self.ds[i].addCallbacks(skipped, f)
        elif name == "cbfire":
            i, j, v = a
            target = self.ds[j]
            def f(x, target=target, j=j, v=v):
                self.log(f"{tag} cbfire got ok {fmt_value(x)}")
                try:
                    target.callback(v)
                    self.log(f"{tag} fire d{j}: ok")
                except defer.AlreadyCalledError:
                    self.log(f"{tag} fire d{j}: AlreadyCalledError")
                return x
            self.ds[i].addCallback(f)
        elif name == "cbcancel":
            i, j = a
            target = self.ds[j]
            def f(x, target=target, j=j):
                self.log(f"{tag} cbcancel got ok {fmt_value(x)}")
                target.cancel()
                return x
            self.ds[i].addCallback(f)
        elif name == "cbdo":
            i, sub, j = a[0], w[2], int(w[3])
            k = int(w[4]) if len(w) > 4 else 0
            def f(x, sub=sub, j=j, k=k):
                self.log(f"{tag} cbdo got ok {fmt_value(x)}")
                if j in self.busy or j in self.consumed:
                    self.log(f"{tag} d{j} unavailable")
                    return x
                d = self.ds[j]
                self.busy.add(j)
                try:
                    if sub == "cb":
                        def g(v, k=k):
                            self.log(f"{tag}+ cb got ok {fmt_value(v)}")
                            return (v or 0) + k
                        d.addCallback(g)
                    else:
                        getattr(d, sub)()
                finally:
                    self.busy.discard(j)
                return x
            self.ds[i].addCallback(f)
        elif name == "ebrec":
            i, v = a
            def f(fl, v=v):
                self.log(f"{tag} ebrec got err {fmt_failure(fl)}")
                return v
            self.ds[i].addErrback(f)
        elif name == "ebfail":
            i, k = a
            def f(fl, k=k):
                self.log(f"{tag} ebfail got err {fmt_failure(fl)}")
                raise MyError(k)
            self.ds[i].addErrback(f)
        elif name == "eberr":
            i = a[0]
            def f(fl):
                self.log(f"{tag} eberr got err {fmt_failure(fl)}")
                return fl
            self.ds[i].addErrback(f)
        elif name == "both":
            i = a[0]
            def f(r):
                self.log(f"{tag} both got {fmt_result(r)}")
                return r
            self.ds[i].addBoth(f)
        elif name in ("fire", "fail"):
            i, v = a
            try:
                if name == "fire":
                    self.ds[i].callback(v)
                else:
                    self.ds[i].errback(Failure(MyError(v)))
                self.log(f"{tag} {name} d{i}: ok")
            except defer.AlreadyCalledError:
                self.log(f"{tag} {name} d{i}: AlreadyCalledError")
        elif name == "drop":
            # The script lets go of its handle; the object lives on (it is
            # still the "resolver" of `fire i`) until the end of the script.
            self.consumed.add(a[0])
            self.paused_failure(self.ds[a[0]])
        elif name == "pause":
            self.ds[a[0]].pause()
        elif name == "unpause":
            self.ds[a[0]].unpause()
        elif name == "cancel":
            self.ds[a[0]].cancel()
        elif name == "chain":
            i, j = a
            self.ds[i].chainDeferred(self.ds[j])
        else:
            raise ValueError(f"unknown op {w!r}")

    def paused_failure(self, d):
        """Normalization N2 (DIFFERENCES.md): tokio-deferred reports a
        failure held by a paused Deferred when its last handle goes (nobody
        can unpause it any more); Twisted never arms such a failure."""
        armed = d._debugInfo is not None and d._debugInfo.failResult is not None
        if d.called and d.paused > 0 and isinstance(d.result, Failure) and not armed:
            UNHANDLED.append("unhandled " + fmt_failure(d.result))

    def final(self):
        for i in sorted(self.ds):
            if i in self.consumed:
                continue
            d = self.ds[i]
            if not d.called:
                self.log(f"final d{i} pending")
                continue
            waiting = isinstance(d.result, defer.Deferred)
            paused = d.paused - (1 if waiting else 0)
            if waiting or paused:
                self.log(
                    f"final d{i} blocked paused={'yes' if paused > 0 else 'no'} "
                    f"waiting={'yes' if waiting else 'no'}"
                )
            else:
                self.log(f"final d{i} {fmt_result(d.result)}")
                # Rust's try_take took the result: consume it here too, and
                # let go of the handle, as Rust does.
                d.addErrback(lambda f: None)
                self.consumed.add(i)
        self.closed = True
        for i in sorted(self.ds):
            if not self.ds[i].called:
                self.ds[i].errback(Failure(ScriptEnd()))
        # Rust drops the handles now (N2 applies).
        for i in sorted(self.ds):
            if i not in self.consumed:
                self.paused_failure(self.ds[i])
        # Returned Deferreds whose callback never ran: Rust drops their
        # handle now, with the chain that held it.
        for d in list(self.unreturned.values()):
            self.paused_failure(d)
        self.unreturned.clear()


def read_scripts(path):
    scripts, cur = [], None
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            if line.startswith("=="):
                cur = (line, [])
                scripts.append(cur)
            else:
                cur[1].append(line)
    return scripts


UNHANDLED = []


def observe(event):
    """Collects Twisted's "Unhandled error in Deferred" reports (the event
    that carries the failure; the other one of the pair has none)."""
    if event.get("log_namespace") == "twisted.internet.defer" and "log_failure" in event:
        line = "unhandled " + fmt_failure(event["log_failure"])
        UNHANDLED.append(line)


def main():
    # Start logging to our observer only: the default start-up buffer would
    # keep every logged failure (and, through its traceback, Deferreds of
    # earlier scripts) alive, and their reports would land in later scripts.
    globalLogBeginner.beginLoggingTo([observe], discardBuffer=True, redirectStandardIO=False)
    out = []
    for header, ops in read_scripts(sys.argv[1]):
        out.append(header)
        s = Script(out)
        try:
            s.run(ops)
        except Exception as e:  # an escaping exception is a trace event too
            out.append(f"escaped {type(e).__name__}")
        # Let go of everything: what is garbage-collected with an armed
        # failure is reported, as Rust reports when the last handle goes.
        s.ds.clear()
        del s
        while gc.collect():
            pass
        out.extend(sorted(UNHANDLED))
        UNHANDLED.clear()
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
