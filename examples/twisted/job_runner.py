"""A DeferredQueue job runner with task.cooperate: the Twisted program that
examples/job_runner.rs ports. Its output is examples/twisted/job_runner.txt:

    target/conform-venv/bin/python examples/twisted/job_runner.py > examples/twisted/job_runner.txt

Two workers, each a generator run by the global Cooperator, take jobs from a
DeferredQueue; each step of a job waits on a deferLater (a stand-in for
I/O). Jobs arrive at start and later; two None sentinels end the workers.
"""

from twisted.internet import defer, task

# (arrival time in seconds, title, steps, seconds per step)
LATER_JOBS = [(0.05, "index documents", 2, 0.050), (0.5, "backup database", 3, 0.030),
              (0.65, "render report", 1, 0.120)]
FIRST_JOBS = [("resize photo.jpg", 3, 0.040), ("send newsletter", 2, 0.100)]


def worker(reactor, name, queue, finished):
    while True:
        box = []
        yield queue.get().addCallback(box.append)
        job = box[0]
        if job is None:
            print(f"{name}: no more jobs")
            return
        title, steps, seconds = job
        print(f"{name}: starts {title}")
        for step in range(1, steps + 1):
            yield task.deferLater(reactor, seconds, lambda: None)
            print(f"{name}: {title}, step {step} of {steps}")
        print(f"{name}: finished {title}")
        finished.append(title)


def main(reactor):
    queue = defer.DeferredQueue()
    for job in FIRST_JOBS:
        queue.put(job)
    for at, title, steps, seconds in LATER_JOBS:
        reactor.callLater(at, queue.put, (title, steps, seconds))
    reactor.callLater(1.0, queue.put, None)
    reactor.callLater(1.0, queue.put, None)
    finished = []
    workers = [task.cooperate(worker(reactor, name, queue, finished)) for name in ("worker A", "worker B")]
    done = defer.gatherResults([w.whenDone() for w in workers])
    done.addCallback(lambda _: print(f"all done, in this order: {', '.join(finished)}"))
    return done


if __name__ == "__main__":
    task.react(main)
