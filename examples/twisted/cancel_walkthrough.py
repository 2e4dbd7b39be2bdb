"""Twelve ways a cancel can go: before and after the fire, with and without
a canceller. The Twisted program that examples/cancel_walkthrough.rs ports;
its output is examples/twisted/cancel_walkthrough.txt:

    target/conform-venv/bin/python examples/twisted/cancel_walkthrough.py > examples/twisted/cancel_walkthrough.txt
"""

from twisted.internet import defer, task
from twisted.internet.defer import AlreadyCalledError, CancelledError, Deferred


class PoliteRefusal(Exception):
    pass


def title(n, text):
    print(f"{n}. {text}")


def say(text):
    print(f"   {text}")


def callback(result):
    say(f"callback got {result}")


def errback(failure):
    say(f"errback got {failure.type.__name__}")


def canceller_that(does):
    def canceller(d):
        say("canceller called")
        does(d)
    return canceller


def main():
    title(1, "No canceller, cancel before the fire")
    d = Deferred()
    d.addCallbacks(callback, errback)
    d.cancel()

    title(2, "No canceller, the producer fires after the cancel")
    d = Deferred()
    d.addCallbacks(callback, errback)
    d.cancel()
    d.callback("late")
    say("the late callback was swallowed")

    title(3, "No canceller, cancel after the fire")
    d = Deferred()
    d.addCallbacks(callback, errback)
    d.callback("on time")
    d.cancel()
    say("cancel did nothing")

    title(4, "No canceller, only one late fire is swallowed")
    d = Deferred()
    d.addCallbacks(callback, errback)
    d.cancel()
    d.callback("late")
    try:
        d.callback("later")
    except AlreadyCalledError:
        say("the second late callback: AlreadyCalledError")

    title(5, "A canceller that does nothing")
    d = Deferred(canceller_that(lambda d: None))
    d.addCallbacks(callback, errback)
    d.cancel()

    title(6, "A canceller that fires a value")
    d = Deferred(canceller_that(lambda d: d.callback("cancelled politely")))
    d.addCallbacks(callback, errback)
    d.cancel()

    title(7, "A canceller that fails with its own error")
    d = Deferred(canceller_that(lambda d: d.errback(PoliteRefusal())))
    d.addCallbacks(callback, errback)
    d.cancel()

    title(8, "A canceller, cancel after the fire")
    d = Deferred(canceller_that(lambda d: None))
    d.addCallbacks(callback, errback)
    d.callback("on time")
    d.cancel()
    say("the canceller was not called")

    title(9, "A canceller, the producer fires after the cancel")
    d = Deferred(canceller_that(lambda d: None))
    d.addCallbacks(callback, errback)
    d.cancel()
    try:
        d.callback("late")
    except AlreadyCalledError:
        say("the late callback: AlreadyCalledError")

    title(10, "A callLater canceller stops its timer")
    clock = task.Clock()
    d = Deferred(lambda _: call.cancel())
    call = clock.callLater(5, d.callback, "on time")
    d.addCallbacks(callback, errback)
    clock.advance(2)
    d.cancel()
    say(f"timer active: {'yes' if call.active() else 'no'}")
    clock.advance(10)
    say(f"pending calls: {len(clock.getDelayedCalls())}")

    title(11, "Cancel a chain waiting on a Deferred a callback returned")
    inner = Deferred(lambda _: say("inner canceller called"))
    outer = Deferred()
    outer.addCallback(lambda _: inner)
    outer.addCallbacks(callback, errback)
    outer.callback(None)
    outer.cancel()

    title(12, "Cancel a coroutine waiting on a Deferred")

    @defer.inlineCallbacks
    def job(waiting):
        try:
            yield waiting
        except CancelledError:
            say("the coroutine caught CancelledError")
            return "gave up cleanly"

    d = job(Deferred())
    d.addCallbacks(callback, errback)
    d.cancel()


if __name__ == "__main__":
    main()
