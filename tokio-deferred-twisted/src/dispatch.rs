//! The reactor's in-box: closures queued from any thread, run on the
//! reactor thread.
//!
//! ```text
//! any thread (a Tokio worker)               reactor thread (holds the GIL)
//!   push(job): lock, append, unlock
//!   queue was empty? write one byte  ──────►  the socket is readable:
//!   (no GIL)                                  WakeReader.doRead()
//!                                               drain the socket
//!                                               take every queued job
//!                                               run them, in order
//! ```
//!
//! This is how Twisted's own `callFromThread` wakes the reactor (a waker
//! socket registered as an *internal* reader), except that the queue is
//! Rust's and the thread that queues never takes the GIL. Writing only when
//! the queue goes from empty to non-empty is enough: the reader drains the
//! socket *before* it takes the queue, so a job queued after the take finds
//! the queue empty and writes again.
//!
//! Reactors with no file descriptors (Twisted's `MemoryReactorClock` in
//! tests, given a `callFromThread`) are woken by `reactor.callFromThread`
//! instead, which needs the GIL, once per batch of jobs.
//!
//! The queue also counts the work in flight (Rust work whose completion will
//! be queued here), so that a shutdown can wait for it with the GIL
//! released.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Instant;

use pyo3::prelude::*;

use crate::sync::lock;

/// A closure to run on the reactor thread.
pub(crate) type Job = Box<dyn FnOnce(Python<'_>) + Send + 'static>;

/// How closures reach the reactor thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DispatchMode {
    /// A socket pair: the writing thread appends to a Rust queue and writes
    /// a byte, with no GIL; the read end is registered with the reactor as
    /// an internal reader (like Twisted's own waker, so trial's janitor
    /// leaves it alone). Chosen for reactors that have
    /// `_addInternalReader` (every real POSIX reactor), on Unix.
    WakeUpSocket,
    /// `reactor.callFromThread`, called under the GIL, once per batch of
    /// queued closures. For reactors with no file descriptors to poll,
    /// such as a `MemoryReactorClock` given a `callFromThread` in tests.
    CallFromThread,
}

struct Queue {
    jobs: Vec<Job>,
    /// No more jobs: the reactor has shut down.
    closed: bool,
    /// Work that will queue a completion (or report one with `finish`).
    in_flight: usize,
    /// A shutdown waits on `idle`: notify it.
    watched: bool,
}

/// Where `push` sends its wake-up.
enum Wake {
    #[cfg(unix)]
    Socket(std::os::unix::net::UnixStream),
    CallFromThread(Py<PyAny>),
}

/// The queue and its wake-up.
pub(crate) struct Dispatcher {
    queue: Mutex<Queue>,
    idle: Condvar,
    wake: Wake,
}

/// What [`Dispatcher::wait_idle`] saw last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idle {
    /// Nothing in flight, nothing queued.
    Idle,
    /// The deadline passed first.
    TimedOut,
}

impl Dispatcher {
    fn with_wake(wake: Wake) -> Arc<Dispatcher> {
        Arc::new(Dispatcher {
            queue: Mutex::new(Queue {
                jobs: Vec::new(),
                closed: false,
                in_flight: 0,
                watched: false,
            }),
            idle: Condvar::new(),
            wake,
        })
    }

    /// A dispatcher woken through a socket pair, and the reader to register
    /// with the reactor.
    #[cfg(unix)]
    pub(crate) fn socket_pair(py: Python<'_>) -> PyResult<(Arc<Dispatcher>, Py<WakeReader>)> {
        use std::os::unix::net::UnixStream;
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let dispatcher = Dispatcher::with_wake(Wake::Socket(write));
        let reader = Py::new(
            py,
            WakeReader {
                dispatcher: dispatcher.clone(),
                read,
            },
        )?;
        Ok((dispatcher, reader))
    }

    /// A dispatcher woken by `call_from_thread(drain)`.
    pub(crate) fn call_from_thread(call_from_thread: Py<PyAny>) -> Arc<Dispatcher> {
        Dispatcher::with_wake(Wake::CallFromThread(call_from_thread))
    }

    /// Queues `job` for the reactor thread. Gives it back if the reactor
    /// has shut down. Takes the GIL only in [`DispatchMode::CallFromThread`].
    pub(crate) fn push(self: &Arc<Self>, job: Job) -> Result<(), Job> {
        self.push_counted(job, false)
    }

    /// [`push`](Self::push) for the completion of work counted by
    /// [`begin`](Self::begin): one less in flight.
    pub(crate) fn push_finished(self: &Arc<Self>, job: Job) -> Result<(), Job> {
        self.push_counted(job, true)
    }

    fn push_counted(self: &Arc<Self>, job: Job, finished: bool) -> Result<(), Job> {
        let (wake, watched) = {
            let mut queue = lock(&self.queue);
            if finished {
                queue.in_flight = queue.in_flight.saturating_sub(1);
            }
            if queue.closed {
                return Err(job);
            }
            let was_empty = queue.jobs.is_empty();
            queue.jobs.push(job);
            (was_empty, queue.watched)
        };
        if watched {
            self.idle.notify_all();
        }
        if wake {
            self.wake();
        }
        Ok(())
    }

    /// One more piece of work in flight.
    pub(crate) fn begin(&self) {
        lock(&self.queue).in_flight += 1;
    }

    /// Work counted by [`begin`](Self::begin) completed without queueing.
    pub(crate) fn finish(&self) {
        let watched = {
            let mut queue = lock(&self.queue);
            queue.in_flight = queue.in_flight.saturating_sub(1);
            queue.watched
        };
        if watched {
            self.idle.notify_all();
        }
    }

    /// How much work is in flight.
    pub(crate) fn in_flight(&self) -> usize {
        lock(&self.queue).in_flight
    }

    fn wake(self: &Arc<Self>) {
        match &self.wake {
            #[cfg(unix)]
            Wake::Socket(write) => {
                use std::io::Write;
                // `WouldBlock`: the socket is full, so a wake-up is pending
                // anyway. Nothing else can fail while the reader lives.
                let _ = (&*write).write(&[1]);
            }
            Wake::CallFromThread(call_from_thread) => {
                let drain = Arc::downgrade(self);
                Python::attach(|py| {
                    let called = Py::new(py, Drain { dispatcher: drain })
                        .and_then(|drain| call_from_thread.call1(py, (drain,)));
                    if let Err(err) = called {
                        tracing::error!(
                            target: "tokio_deferred_twisted",
                            "reactor.callFromThread failed, queued completions may not run: {err}"
                        );
                    }
                });
            }
        }
    }

    /// Runs the queued jobs (on the reactor thread).
    pub(crate) fn run_queued(&self, py: Python<'_>) {
        let jobs = std::mem::take(&mut lock(&self.queue).jobs);
        run_jobs(py, jobs);
    }

    /// Runs queued jobs until nothing is in flight or queued, or until
    /// `deadline`, waiting with the GIL released.
    pub(crate) fn wait_idle(&self, py: Python<'_>, deadline: Instant) -> Idle {
        loop {
            self.run_queued(py);
            let seen = py.detach(|| {
                let mut queue = lock(&self.queue);
                loop {
                    if !queue.jobs.is_empty() {
                        return None;
                    }
                    if queue.in_flight == 0 {
                        return Some(Idle::Idle);
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        return Some(Idle::TimedOut);
                    }
                    queue.watched = true;
                    queue = self
                        .idle
                        .wait_timeout(queue, deadline - now)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                    queue.watched = false;
                }
            });
            if let Some(seen) = seen {
                return seen;
            }
        }
    }

    /// Refuses further jobs and runs those already queued.
    pub(crate) fn close(&self, py: Python<'_>) {
        let jobs = {
            let mut queue = lock(&self.queue);
            queue.closed = true;
            std::mem::take(&mut queue.jobs)
        };
        run_jobs(py, jobs);
    }
}

fn run_jobs(py: Python<'_>, jobs: Vec<Job>) {
    for job in jobs {
        // A panic must not escape into the reactor, which would drop the
        // reader and with it every later completion.
        if catch_unwind(AssertUnwindSafe(|| job(py))).is_err() {
            tracing::error!(
                target: "tokio_deferred_twisted",
                "a closure queued for the reactor thread panicked"
            );
        }
    }
}

/// The read end of the wake-up socket, registered with the reactor as an
/// internal reader (Twisted's `IReadDescriptor`).
#[pyclass(frozen, module = "tokio_deferred_twisted")]
pub(crate) struct WakeReader {
    dispatcher: Arc<Dispatcher>,
    #[cfg(unix)]
    read: std::os::unix::net::UnixStream,
}

#[pymethods]
impl WakeReader {
    /// The descriptor the reactor polls.
    fn fileno(&self) -> i64 {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            i64::from(self.read.as_raw_fd())
        }
        #[cfg(not(unix))]
        {
            -1
        }
    }

    /// The socket is readable: drain it, then run what is queued.
    #[pyo3(name = "doRead")]
    fn do_read(&self, py: Python<'_>) {
        #[cfg(unix)]
        {
            use std::io::{ErrorKind, Read};
            let mut buf = [0u8; 256];
            loop {
                match (&self.read).read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        }
        self.dispatcher.run_queued(py);
    }

    /// Called by the reactor when it removes the reader.
    #[pyo3(name = "connectionLost")]
    fn connection_lost(&self, _reason: &Bound<'_, PyAny>) {}

    /// For the reactor's log messages.
    #[pyo3(name = "logPrefix")]
    fn log_prefix(&self) -> &'static str {
        "tokio-deferred-twisted"
    }
}

/// Runs the queued jobs when the reactor calls it (in
/// [`DispatchMode::CallFromThread`]).
#[pyclass(frozen, module = "tokio_deferred_twisted")]
struct Drain {
    dispatcher: Weak<Dispatcher>,
}

#[pymethods]
impl Drain {
    fn __call__(&self, py: Python<'_>) {
        if let Some(dispatcher) = self.dispatcher.upgrade() {
            dispatcher.run_queued(py);
        }
    }
}
