"""Interpreter of the conformance op language over Twisted's Deferred.

Reads scripts (CONTRIBUTING.md describes the language) from the file
named on the command line and prints one trace per script on stdout, in the
same text format as the Rust interpreter (tests/conformance/interp.rs).
"""

import gc
import sys

from twisted.internet import defer, task
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


class ResolverDroppedError(Exception):
    """N5: tokio-deferred fails a Deferred whose Resolvers are all dropped.
    At the end of a script the lock, semaphore and queue go, and with them
    the Resolvers of their waiters; Twisted's waiters would wait forever."""


class PanicError(Exception):
    """Stands for a Rust panic (`cbpanic`): Twisted catches every exception."""

    def __init__(self, k):
        super().__init__(k)
        self.k = k


CONSUMER_OPS = {"drop", "ebfail", "cb", "cbs", "cbfail", "cbpanic", "cbret", "ebret", "cbfire", "cbcancel", "cbdo",
                "ebrec", "eberr", "both", "pause", "unpause", "cancel", "chain"}


_TWISTED_LIST_CANCEL = defer.DeferredList.cancel


def _list_cancel(self):
    """DeferredList.cancel with tokio-deferred's rules (N6, DIFFERENCES.md),
    installed for every DeferredList (also those inside gatherResults and
    the inputs cancelled by race): Twisted's does nothing once the list has
    fired, even while it waits on a Deferred returned from a callback, and
    leaves the list unfired when cancelling the inputs did not fire it.
    tokio-deferred forwards the cancel as for any Deferred, and fails such a
    list with CancelledError."""
    if self.called:
        defer.Deferred.cancel(self)
    else:
        _TWISTED_LIST_CANCEL(self)
        if not self.called:
            self.errback(Failure(defer.CancelledError()))


defer.DeferredList.cancel = _list_cancel


def fmt_value(v):
    return "None" if v is None else str(v)


def fmt_failure(f):
    e = f.value
    if isinstance(e, defer.FirstError):
        return f"FirstError({e.index}, {fmt_failure(e.subFailure)})"
    if isinstance(e, defer.FailureGroup):
        return "FailureGroup[" + ", ".join(fmt_failure(x) for x in e.failures) + "]"
    return fmt_short(f)


def fmt_short(f):
    """A failure in an unhandled-error line: the error's name only (and k)."""
    e = f.value
    if isinstance(e, MyError):
        return f"MyError({e.k})"
    if isinstance(e, PanicError):
        return f"Panic({e.k})"
    return type(e).__name__


# Ops that make a Deferred from others or from a primitive: it has no
# Resolver in the script, so it is not failed with ScriptEnd (N1).
LIST_OPS = {"list", "gather", "race"}
DERIVED_OPS = LIST_OPS | {"acquire", "sacquire", "get", "later"}


def list_inputs(w):
    """The input indices of a list/gather/race op."""
    start = {"list": 4, "gather": 3, "race": 2}[w[0]]
    return [int(x) for x in w[start:]]


def fmt_list_result(w, r):
    """The result of a list/gather/race Deferred, as both interpreters print
    it: `[ok 1, err E]` (DeferredList), `(v, i)` (first success), `[1, 2]`
    (gather), `(i, v)` (race)."""
    if isinstance(r, Failure):
        return "err " + fmt_failure(r)
    if w[0] == "list" and w[2] == "all":
        return "ok [" + ", ".join(fmt_result(x) if not ok else "ok " + fmt_value(x) for ok, x in r) + "]"
    if w[0] == "gather":
        return "ok [" + ", ".join(fmt_value(x) for x in r) + "]"
    return f"ok ({fmt_value(r[0])}, {fmt_value(r[1])})"


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
        # Indices of Deferreds made by DERIVED_OPS, and the inputs of lists.
        self.derived = set()
        self.inputs = {}
        # The shared primitives, made on first use (or by `queue`/`sem`).
        self.lock = defer.DeferredLock()
        self.sem = None
        self.queue = None
        self.clock = task.Clock()

    def log(self, line):
        if not self.closed:
            self.out.append(line)

    def run(self, ops):
        for n, op in enumerate(ops):
            self.op(n, op.split())
            self.reap()
        self.final()

    def kept_by(self, waiters):
        """The ids of the Deferreds that the primitives' waiters keep alive
        in Rust: the waiters, unfired lists over one of them, and Deferreds
        waiting on one of them (a returned Deferred's chain holds the outer
        one)."""
        kept = {id(d) for d in waiters}
        grew = True
        while grew:
            grew = False
            for k, d in self.ds.items():
                if id(d) in kept:
                    continue
                via_list = not d.called and any(id(self.ds[j]) in kept for j in self.inputs.get(k, ()))
                via_wait = d.called and isinstance(d.result, defer.Deferred) and id(d.result) in kept
                if via_list or via_wait:
                    kept.add(id(d))
                    grew = True
        return kept

    def reap(self):
        """N2 again: a Deferred made by a list/primitive op has no Resolver
        left once it fired; if it is paused and its handle is gone, Rust
        drops its state, and with it the handles of Deferreds returned into
        its chain whose callback has not run."""
        for n, (outer, inner, i) in list(self.unreturned.items()):
            if (i in self.derived and i in self.consumed and outer.called and outer.paused > 0
                    and not isinstance(outer.result, defer.Deferred)):
                del self.unreturned[n]
                self.paused_failure(inner)

    def op(self, n, w):
        busy = set()
        if w[0] in CONSUMER_OPS:
            busy.add(int(w[1]))
        if w[0] in LIST_OPS:
            busy.update(list_inputs(w))
        self.busy |= busy
        try:
            if not self.op_extra(n, w):
                self.op1(n, w)
        finally:
            self.busy -= busy

    def op_extra(self, n, w):
        """DeferredList, gather, race, lock, semaphore, queue and clock ops."""
        name, tag = w[0], f"@{n}"
        if self.sem is None and name in ("sacquire", "srelease"):
            self.sem = defer.DeferredSemaphore(2)
        if self.queue is None and name in ("put", "get"):
            self.queue = defer.DeferredQueue()
        if name in DERIVED_OPS:
            k = int(w[1])
            self.derived.add(k)
        if name in LIST_OPS:
            ins = list_inputs(w)
            self.inputs[k] = ins
            inputs = [self.ds[j] for j in ins]
            self.consumed.update(ins)
            if name == "list":
                flags = w[3]
                d = defer.DeferredList(inputs, fireOnOneCallback=(w[2] == "first"),
                                       fireOnOneErrback="e" in flags, consumeErrors="c" in flags)
            elif name == "gather":
                d = defer.gatherResults(inputs, consumeErrors="c" in w[2])
            else:
                d = defer.race(inputs)

            def f(r, w=w):
                if w[0] == "list" and w[2] == "first" and isinstance(r, list):
                    # N4: every input failed. Twisted fires with the list of
                    # (False, failure); tokio-deferred fails with FailureGroup.
                    r = Failure(defer.FailureGroup([x for _, x in r]))
                self.log(f"{tag} {name} got {fmt_list_result(w, r)}")
                return r if isinstance(r, Failure) else None
            self.ds[k] = d.addBoth(f)
        elif name == "acquire":
            self.ds[k] = self.lock.acquire().addCallback(lambda _: None)
        elif name == "sacquire":
            self.ds[k] = self.sem.acquire().addCallback(lambda _: None)
        elif name in ("release", "srelease"):
            try:
                (self.lock if name == "release" else self.sem).release()
                self.log(f"{tag} {name}: ok")
            except AssertionError:
                self.log(f"{tag} {name}: error")
        elif name == "sem":
            self.sem = defer.DeferredSemaphore(int(w[1]))
        elif name == "queue":
            size, backlog = (None if x == "-" else int(x) for x in w[1:3])
            self.queue = defer.DeferredQueue(size, backlog)
        elif name == "put":
            try:
                self.queue.put(int(w[1]))
                self.log(f"{tag} put: ok")
            except defer.QueueOverflow:
                self.log(f"{tag} put: QueueOverflow")
        elif name == "get":
            try:
                self.ds[k] = self.queue.get()
            except defer.QueueUnderflow:
                self.log(f"{tag} get: QueueUnderflow")
                self.ds[k] = defer.fail(defer.QueueUnderflow())
        elif name == "later":
            v = int(w[3])
            self.ds[k] = task.deferLater(self.clock, int(w[2]), lambda: v)
        elif name == "advance":
            self.clock.advance(int(w[1]))
        else:
            return False
        return True

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
            self.unreturned[n] = (self.ds[i], inner, i)

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
                    elif sub == "cancel":
                        d.cancel()
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
        if (d.called and d.paused > 0 and isinstance(d.result, Failure) and not armed
                and not never_fired(d.result)):
            UNHANDLED.append("unhandled " + fmt_short(d.result))
        elif (d.called and d.paused > 0 and isinstance(d, defer.DeferredList)
              and d.fireOnOneCallback and isinstance(d.result, list)
              and not (d.result and all(never_fired(x) for _, x in d.result))):
            # N4 and N2: every input of a paused first-success list failed.
            UNHANDLED.append("unhandled FailureGroup")

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
            if not self.ds[i].called and i not in self.derived:
                self.ds[i].errback(Failure(ScriptEnd()))
                self.reap()
        # N1 too: every pending `later` call runs.
        self.clock.advance(10**6)
        # Rust drops the handles now (N2 applies).
        for i in sorted(self.ds):
            if i not in self.consumed:
                self.paused_failure(self.ds[i])
        # The waiters of the primitives (N5, below), FIFO, lock then
        # semaphore then queue.
        waiters = [d for p in (self.lock, self.sem, self.queue) if p is not None for d in p.waiting]
        # Returned Deferreds whose callback never ran, in the chain of a
        # Deferred that no waiter keeps alive: Rust drops their handle now,
        # with the chain that held it.
        waiting = self.kept_by(waiters)
        for n, (outer, inner, _) in list(self.unreturned.items()):
            if id(outer) not in waiting:
                del self.unreturned[n]
                self.paused_failure(inner)
        # N5: the primitives go after the handles (they are the last fields
        # of the Rust Script): their waiters fail with ResolverDroppedError.
        for d in waiters:
            if not d.called:
                d.errback(Failure(ResolverDroppedError()))
        # The rest, when the waiters' chains go.
        for _, d, _ in list(self.unreturned.values()):
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


def from_race(f):
    """Whether the failure was raised by the callbacks defer.race adds to
    its inputs."""
    return any(fr[0] in ("succeeded", "failed") and fr[1].endswith("defer.py") for fr in f.frames)


def never_fired(f):
    """tokio-deferred's rule: a failure that is, or was caused by, a
    ResolverDroppedError (the end of a Deferred that never fired) is never
    reported; a FailureGroup only if every failure in it is such (N5)."""
    if f.check(ResolverDroppedError):
        return True
    if isinstance(f.value, defer.FirstError):
        return never_fired(f.value.subFailure)
    if isinstance(f.value, defer.FailureGroup):
        return bool(f.value.failures) and all(never_fired(g) for g in f.value.failures)
    return False


def observe(event):
    """Collects Twisted's "Unhandled error in Deferred" reports (the event
    that carries the failure; the other one of the pair has none)."""
    if event.get("log_namespace") == "twisted.internet.defer" and "log_failure" in event:
        if never_fired(event["log_failure"]):
            return  # N5: a Deferred that never fired is not reported
        if event["log_failure"].check(defer.AlreadyCalledError) and from_race(event["log_failure"]):
            # N7: a race cancelled before an input fired raises this from
            # the input's chain when the input fires later; tokio-deferred
            # ignores late results.
            return
        line = "unhandled " + fmt_short(event["log_failure"])
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
