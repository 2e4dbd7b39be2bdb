"""A MemoryReactorClock with a thread-safe callFromThread, as test suites
give it (Synapse's ThreadedMemoryReactorClock): the bridge needs one to
reach a reactor without descriptors. Used by test_memory_reactor and by the
crate's Rust tests (tests/common/mod.rs)."""

import collections

from twisted.internet.testing import MemoryReactorClock


class ThreadedMemoryReactorClock(MemoryReactorClock):
    def __init__(self):
        super().__init__()
        self.from_threads = collections.deque()

    def callFromThread(self, f, *args, **kwargs):
        """Any thread: queue `f` for `run_from_threads`."""
        self.from_threads.append((f, args, kwargs))

    def run_from_threads(self):
        """The test's thread: runs what was queued; returns how many."""
        ran = 0
        while self.from_threads:
            f, args, kwargs = self.from_threads.popleft()
            f(*args, **kwargs)
            ran += 1
        return ran
