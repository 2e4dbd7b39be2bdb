//! A job runner: two workers take jobs from a `DeferredQueue`, each worker
//! a long-running iterator run by `cooperate`, each step of a job waiting
//! on a `defer_later` (a stand-in for I/O), all under `react`. The port of
//! `examples/twisted/job_runner.py`, whose output
//! (`examples/twisted/job_runner.txt`, recorded with Twisted 26.10) it
//! prints line for line.
//!
//! Run with `cargo run --example job_runner`.
//!
//! It runs on `react`'s current-thread runtime, the reactor's one thread:
//! callbacks fired by different timers and tasks run one at a time, in
//! time order, so the lines come out in Twisted's order. (On a multi-thread
//! runtime, callbacks fired from different tasks may run at the same time
//! and their lines may interleave differently.)

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_deferred::{
    CooperativeStep, DeferredQueue, Failure, TokioClock, cooperate, defer_later, gather_results,
    react,
};

/// A job: its title, its number of steps, and how long each step waits.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    /// What the job is called.
    pub title: &'static str,
    /// How many steps it takes.
    pub steps: u32,
    /// How long each step waits.
    pub step_time: Duration,
}

const fn job(title: &'static str, steps: u32, millis: u64) -> Job {
    Job {
        title,
        steps,
        step_time: Duration::from_millis(millis),
    }
}

/// In the queue before the workers start.
const FIRST_JOBS: [Job; 2] = [
    job("resize photo.jpg", 3, 40),
    job("send newsletter", 2, 100),
];

/// Put later (milliseconds from the start).
const LATER_JOBS: [(u64, Job); 3] = [
    (50, job("index documents", 2, 50)),
    (500, job("backup database", 3, 30)),
    (650, job("render report", 1, 120)),
];

/// Prints lines and keeps them (for tests/examples.rs).
#[derive(Clone, Default, Debug)]
pub struct Printer(Arc<Mutex<Vec<String>>>);

impl Printer {
    /// Prints `line` and keeps a copy.
    pub fn print(&self, line: impl Into<String>) {
        let line = line.into();
        println!("{line}");
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }

    /// The lines printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Where a worker is in its loop (the state of Twisted's generator, which
/// Rust writes down as an iterator).
enum State {
    /// Next: ask the queue for a job (`yield queue.get()`).
    Get,
    /// The get's Deferred fired into `got`: start the job, or stop.
    Start,
    /// Next: wait for step `n` of the job (`yield deferLater(..)`).
    Wait(Job, u32),
    /// Step `n` is done: say so.
    Stepped(Job, u32),
    Done,
}

/// One worker: Twisted's `worker` generator as an iterator of steps for
/// `cooperate`. Yielding a Deferred pauses the worker until it fires.
pub fn worker(
    name: &'static str,
    queue: DeferredQueue<Option<Job>>,
    finished: Arc<Mutex<Vec<&'static str>>>,
    out: Printer,
) -> impl Iterator<Item = CooperativeStep> + Send + 'static {
    let got: Arc<Mutex<Option<Option<Job>>>> = Arc::default();
    let mut state = State::Get;
    std::iter::from_fn(move || {
        loop {
            match std::mem::replace(&mut state, State::Done) {
                State::Get => {
                    let slot = got.clone();
                    let get = match queue.get() {
                        Ok(get) => get,
                        Err(underflow) => return Some(CooperativeStep::Fail(underflow.into())),
                    };
                    state = State::Start;
                    // box.append: keep the job for the next step.
                    return Some(CooperativeStep::Wait(get.add_callback(move |job| {
                        *slot.lock().unwrap() = Some(job);
                        Ok(())
                    })));
                }
                State::Start => {
                    let job = got.lock().unwrap().take().flatten();
                    let Some(job) = job else {
                        out.print(format!("{name}: no more jobs"));
                        return None;
                    };
                    out.print(format!("{name}: starts {}", job.title));
                    state = State::Wait(job, 1);
                }
                State::Wait(job, n) if n <= job.steps => {
                    state = State::Stepped(job, n);
                    return Some(CooperativeStep::Wait(defer_later(job.step_time, || Ok(()))));
                }
                State::Wait(job, _) => {
                    out.print(format!("{name}: finished {}", job.title));
                    finished.lock().unwrap().push(job.title);
                    state = State::Get;
                }
                State::Stepped(job, n) => {
                    out.print(format!("{name}: {}, step {n} of {}", job.title, job.steps));
                    state = State::Wait(job, n + 1);
                }
                State::Done => return None,
            }
        }
    })
}

/// Twisted's `main(reactor)`: fills the queue, schedules the later jobs and
/// the two sentinels, runs the workers, and waits for both.
pub async fn run(out: &Printer) -> Result<(), Failure> {
    let queue = DeferredQueue::new(None, None);
    for job in FIRST_JOBS {
        let _ = queue.put(Some(job));
    }
    let clock = TokioClock::new();
    for (at, job) in LATER_JOBS {
        let queue = queue.clone();
        clock.call_later(Duration::from_millis(at), move || {
            let _ = queue.put(Some(job));
        });
    }
    for _ in 0..2 {
        let queue = queue.clone();
        clock.call_later(Duration::from_secs(1), move || {
            let _ = queue.put(None);
        });
    }
    let finished = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = ["worker A", "worker B"]
        .into_iter()
        .map(|name| cooperate(worker(name, queue.clone(), finished.clone(), out.clone())))
        .collect();
    gather_results(workers.iter().map(|w| w.when_done())).await?;
    out.print(format!(
        "all done, in this order: {}",
        finished.lock().unwrap().join(", ")
    ));
    Ok(())
}

fn main() -> ExitCode {
    react(|| async { run(&Printer::default()).await })
}
