//! Interpreter of the conformance op language over tokio-deferred's public
//! API. The twin of `conformance/twisted_interp.py`: both print the same
//! trace format, and `conformance/run.py` diffs them. The language and the
//! trace format are described in `DESIGN-conformance.md`.
//!
//! The formatting helpers, the trace log and the script runner frame
//! (`trace_script`, `run_all_with`) are shared with the interpreter over
//! `LocalDeferred` (`local_interp.rs`).

use std::cell::Cell;
use std::sync::{Arc, Mutex, Once};

use std::time::Duration;

use crate::common::capture_unhandled;
use tokio_deferred::{
    AlreadyCalledError, CancelHandle, CancelledError, Deferred, DeferredList, DeferredLock,
    DeferredQueue, DeferredSemaphore, Failure, FailureGroup, FirstError, Gather, ManualClock,
    PanicError, QueueUnderflow, Resolver, ResolverDroppedError, defer_later_with_clock, fail, race,
    succeed,
};

/// The value carried by every Deferred of a script: Python's `int | None`.
pub(crate) type Val = Option<i64>;

/// The error raised by the `cbfail` and `fail` ops (Python's `MyError(k)`).
#[derive(Debug, thiserror::Error)]
#[error("my error {0}")]
pub struct MyError(pub i64);

/// The failure of every Deferred still unfired at the end of a script
/// (normalization N1).
#[derive(Debug, thiserror::Error)]
#[error("the script ended")]
pub struct ScriptEnd;

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Silences the panic message of `cbpanic` ops (and only while a script
/// runs), keeping the default hook for everything else in the test binary.
fn install_quiet_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                default(info);
            }
        }));
    });
}

pub(crate) fn fmt_value(v: &Val) -> String {
    match v {
        Some(n) => n.to_string(),
        None => "None".to_owned(),
    }
}

pub(crate) fn fmt_failure(f: &Failure) -> String {
    if let Some(e) = f.downcast_ref::<FirstError>() {
        return format!("FirstError({}, {})", e.index, fmt_failure(&e.failure));
    }
    if let Some(g) = f.downcast_ref::<FailureGroup>() {
        let inner: Vec<String> = g.failures.iter().map(fmt_failure).collect();
        return format!("FailureGroup[{}]", inner.join(", "));
    }
    if f.is::<QueueUnderflow>() {
        return "QueueUnderflow".to_owned();
    }
    if f.is::<ResolverDroppedError>() {
        return "ResolverDroppedError".to_owned();
    }
    if let Some(e) = f.downcast_ref::<MyError>() {
        format!("MyError({})", e.0)
    } else if let Some(p) = f.downcast_ref::<PanicError>() {
        format!("Panic({})", p.message())
    } else if f.is::<CancelledError>() {
        "CancelledError".to_owned()
    } else if f.is::<AlreadyCalledError<()>>() {
        "AlreadyCalledError".to_owned()
    } else if f.is::<ScriptEnd>() {
        "ScriptEnd".to_owned()
    } else {
        format!("Other({})", f.type_name())
    }
}

pub(crate) fn fmt_result(r: &Result<Val, Failure>) -> String {
    match r {
        Ok(v) => format!("ok {}", fmt_value(v)),
        Err(f) => format!("err {}", fmt_failure(f)),
    }
}

/// A trace under construction, shared with the callbacks.
/// Once closed (after the final states), events are no longer recorded:
/// dropping the Resolvers then fails the unfired Deferreds with
/// `ResolverDroppedError`, which Twisted has no analogue of (DIFFERENCES.md).
#[derive(Clone, Default)]
pub(crate) struct Log(Arc<Mutex<(Vec<String>, bool)>>);

impl Log {
    pub(crate) fn push(&self, line: String) {
        let mut log = self.0.lock().unwrap();
        if !log.1 {
            log.0.push(line);
        }
    }

    pub(crate) fn close(&self) {
        self.0.lock().unwrap().1 = true;
    }
}

/// A Deferred's handle, shared with callbacks that act on it (`cbdo`). It
/// is taken out while an op uses it, so a callback that runs during that op
/// and reaches for it finds it unavailable (the Python side mirrors this).
type Slot = Arc<Mutex<Option<Deferred<Val>>>>;

#[derive(Default)]
struct Script {
    log: Log,
    ds: Vec<Slot>,
    rs: Vec<Option<Resolver<Val>>>,
    consumed: Vec<bool>,
    /// The shared primitives, made on first use (or by `queue`/`sem`).
    lock: DeferredLock,
    sem: Option<DeferredSemaphore>,
    queue: Option<DeferredQueue<Val>>,
    clock: ManualClock,
}

/// The input indices of a list/gather/race op.
fn list_inputs(w: &[&str]) -> Vec<usize> {
    let start = match w[0] {
        "list" => 4,
        "gather" => 3,
        _ => 2,
    };
    (start..w.len()).map(|k| num(w, k) as usize).collect()
}

/// Logs the result of a list/gather/race Deferred (`@n list got ...`) and
/// maps a value to `None`, passing a failure on.
fn traced<O: Send + 'static>(
    d: Deferred<O>,
    log: Log,
    tag: String,
    name: &'static str,
    fmt: fn(&O) -> String,
) -> Deferred<Val> {
    d.add_both(move |r: Result<O, Failure>| {
        let line = match &r {
            Ok(v) => format!("ok {}", fmt(v)),
            Err(f) => format!("err {}", fmt_failure(f)),
        };
        log.push(format!("{tag} {name} got {line}"));
        r.map(|_| None)
    })
}

pub(crate) fn num(w: &[&str], k: usize) -> i64 {
    w.get(k)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("op {w:?}: argument {k} is not a number"))
}

/// The arms of the core ops (`new` .. `cbdo`), written once for both
/// interpreters: this one over `Deferred`, `local_interp.rs` over
/// `LocalDeferred`. It expands to the `match` on the op's name in their
/// `op`, followed by the caller's own arms (`chain`, the fallback). `$D` and
/// `$R` name the Deferred and resolver types, `$succeed` and `$fail` make
/// fired ones; the caller's module provides `take_slot`, `put_slot`,
/// `cancel_handle_of` and `simple_op` for its slot type.
macro_rules! core_ops {
    (
        $s:ident, $w:ident, $i:ident, $tag:ident, $log:ident,
        $D:ident, $R:ident, $succeed:expr, $fail:expr,
        { $($more:tt)* }
    ) => {{
        let this = &mut *$s;
        let (w, i, tag, log) = ($w, $i, $tag, $log);
        match w[0] {
            "new" => {
                this.slot(i);
                let (d, r) = $D::<Val>::new();
                this.put(i, d);
                this.rs[i] = Some(r);
            }
            "newok" | "newerr" => {
                this.slot(i);
                let d = if w[0] == "newok" {
                    ($succeed)(Some(num(w, 2)))
                } else {
                    ($fail)(MyError(num(w, 2)))
                };
                this.put(i, d);
            }
            "newc" => {
                this.slot(i);
                let mode = w[2].to_owned();
                let arg = if w.len() > 3 { num(w, 3) } else { 0 };
                let (d, r) = $D::<Val>::with_canceller(move |r: &$R<Val>| {
                    log.push(format!("canceller d{i}"));
                    match mode.as_str() {
                        "cb" => drop(r.callback(Some(arg))),
                        "eb" => drop(r.errback(MyError(arg))),
                        _ => {}
                    }
                });
                this.put(i, d);
                this.rs[i] = Some(r);
            }
            "cb" => {
                let k = num(w, 2);
                let d = this.take(i).add_callback(move |v: Val| {
                    log.push(format!("{tag} cb got ok {}", fmt_value(&v)));
                    Ok(Some(v.unwrap_or(0) + k))
                });
                this.put(i, d);
            }
            "cbs" => {
                let k = num(w, 2);
                let v = num(w, 3);
                let log2 = log.clone();
                let tag2 = tag.clone();
                let d = this.take(i).add_callbacks(
                    move |x: Val| {
                        log.push(format!("{tag} cbs got ok {}", fmt_value(&x)));
                        Ok(Some(x.unwrap_or(0) + k))
                    },
                    move |f: Failure| {
                        log2.push(format!("{tag2} cbs got err {}", fmt_failure(&f)));
                        Ok(Some(v))
                    },
                );
                this.put(i, d);
            }
            "cbfail" => {
                let k = num(w, 2);
                let d = this
                    .take(i)
                    .add_callback(move |v: Val| -> Result<Val, Failure> {
                        log.push(format!("{tag} cbfail got ok {}", fmt_value(&v)));
                        Err(Failure::new(MyError(k)))
                    });
                this.put(i, d);
            }
            "cbpanic" => {
                let k = num(w, 2);
                let d = this
                    .take(i)
                    .add_callback(move |v: Val| -> Result<Val, Failure> {
                        log.push(format!("{tag} cbpanic got ok {}", fmt_value(&v)));
                        panic!("{k}")
                    });
                this.put(i, d);
            }
            "cbret" => {
                let j = num(w, 2) as usize;
                let inner = this.take(j);
                this.consumed[j] = true;
                let d = this.take(i).add_callback(move |v: Val| {
                    log.push(format!("{tag} cbret got ok {}", fmt_value(&v)));
                    inner
                });
                this.put(i, d);
            }
            "ebret" => {
                let j = num(w, 2) as usize;
                let inner = this.take(j);
                this.consumed[j] = true;
                let d = this.take(i).add_errback(move |f: Failure| {
                    log.push(format!("{tag} ebret got err {}", fmt_failure(&f)));
                    inner
                });
                this.put(i, d);
            }
            "cbfire" => {
                let j = num(w, 2) as usize;
                let v = num(w, 3);
                let target = this.r(j).clone();
                let d = this.take(i).add_callback(move |x: Val| {
                    log.push(format!("{tag} cbfire got ok {}", fmt_value(&x)));
                    let outcome = match target.callback(Some(v)) {
                        Ok(()) => "ok",
                        Err(_) => "AlreadyCalledError",
                    };
                    log.push(format!("{tag} fire d{j}: {outcome}"));
                    Ok(x)
                });
                this.put(i, d);
            }
            "cbcancel" => {
                let j = num(w, 2) as usize;
                let target = cancel_handle_of(&this.ds[j]);
                let d = this.take(i).add_callback(move |x: Val| {
                    log.push(format!("{tag} cbcancel got ok {}", fmt_value(&x)));
                    target.cancel();
                    Ok(x)
                });
                this.put(i, d);
            }
            "ebrec" => {
                let v = num(w, 2);
                let d = this.take(i).add_errback(move |f: Failure| {
                    log.push(format!("{tag} ebrec got err {}", fmt_failure(&f)));
                    Ok(Some(v))
                });
                this.put(i, d);
            }
            "ebfail" => {
                let k = num(w, 2);
                let d = this
                    .take(i)
                    .add_errback(move |f: Failure| -> Result<Val, Failure> {
                        log.push(format!("{tag} ebfail got err {}", fmt_failure(&f)));
                        Err(Failure::new(MyError(k)))
                    });
                this.put(i, d);
            }
            "eberr" => {
                let d = this
                    .take(i)
                    .add_errback(move |f: Failure| -> Result<Val, Failure> {
                        log.push(format!("{tag} eberr got err {}", fmt_failure(&f)));
                        Err(f)
                    });
                this.put(i, d);
            }
            "both" => {
                let d = this.take(i).add_both(move |r: Result<Val, Failure>| {
                    log.push(format!("{tag} both got {}", fmt_result(&r)));
                    r
                });
                this.put(i, d);
            }
            "fire" | "fail" => {
                let v = num(w, 2);
                let res = if w[0] == "fire" {
                    this.r(i).callback(Some(v)).map_err(|_| ())
                } else {
                    this.r(i).errback(MyError(v)).map_err(|_| ())
                };
                let outcome = if res.is_ok() {
                    "ok"
                } else {
                    "AlreadyCalledError"
                };
                this.log.push(format!("{tag} {} d{i}: {outcome}", w[0]));
            }
            "drop" => {
                drop(this.take(i));
                this.consumed[i] = true;
            }
            "pause" | "unpause" | "cancel" => {
                let d = this.take(i);
                simple_op(w[0], &d);
                this.put(i, d);
            }
            "cbdo" => {
                let sub = w[2].to_owned();
                let j = num(w, 3) as usize;
                let k = if w.len() > 4 { num(w, 4) } else { 0 };
                let slot = this.ds[j].clone();
                let d = this.take(i).add_callback(move |x: Val| {
                    log.push(format!("{tag} cbdo got ok {}", fmt_value(&x)));
                    let Some(d) = take_slot(&slot) else {
                        log.push(format!("{tag} d{j} unavailable"));
                        return Ok(x);
                    };
                    let d = if sub == "cb" {
                        let log = log.clone();
                        d.add_callback(move |v: Val| {
                            log.push(format!("{tag}+ cb got ok {}", fmt_value(&v)));
                            Ok(Some(v.unwrap_or(0) + k))
                        })
                    } else {
                        simple_op(&sub, &d);
                        d
                    };
                    put_slot(&slot, d);
                    Ok(x)
                });
                this.put(i, d);
            }
            $($more)*
        }
    }};
}
pub(crate) use core_ops;

impl Script {
    fn slot(&mut self, i: usize) {
        while self.ds.len() <= i {
            self.ds.push(Slot::default());
            self.rs.push(None);
            self.consumed.push(false);
        }
    }

    fn take(&self, i: usize) -> Deferred<Val> {
        take_slot(&self.ds[i]).expect("op on a consumed Deferred")
    }

    fn put(&self, i: usize, d: Deferred<Val>) {
        *self.ds[i].lock().unwrap() = Some(d);
    }

    fn r(&self, i: usize) -> &Resolver<Val> {
        self.rs[i].as_ref().expect("op on an uncreated Deferred")
    }

    /// DeferredList, gather, race, lock, semaphore, queue and clock ops;
    /// `false` for the others.
    fn op_extra(&mut self, n: usize, w: &[&str]) -> bool {
        let tag = format!("@{n}");
        let log = self.log.clone();
        if matches!(w[0], "sacquire" | "srelease") && self.sem.is_none() {
            self.sem = Some(DeferredSemaphore::new(2).expect("2 tokens"));
        }
        if matches!(w[0], "put" | "get") && self.queue.is_none() {
            self.queue = Some(DeferredQueue::new(None, None));
        }
        let d: Deferred<Val> = match w[0] {
            "list" | "gather" | "race" => {
                let inputs: Vec<Deferred<Val>> = list_inputs(w)
                    .into_iter()
                    .map(|j| {
                        self.consumed[j] = true;
                        self.take(j)
                    })
                    .collect();
                match w[0] {
                    "list" => {
                        let mut l = DeferredList::new(inputs);
                        if w[3].contains('e') {
                            l = l.fire_on_one_errback();
                        }
                        if w[3].contains('c') {
                            l = l.consume_errors();
                        }
                        if w[2] == "all" {
                            traced(l.all(), log, tag, "list", |v| {
                                let items: Vec<String> = v.iter().map(fmt_result).collect();
                                format!("[{}]", items.join(", "))
                            })
                        } else {
                            traced(l.first_success(), log, tag, "list", |(v, i)| {
                                format!("({}, {i})", fmt_value(v))
                            })
                        }
                    }
                    "gather" => {
                        let mut g = Gather::new(inputs);
                        if w[2].contains('c') {
                            g = g.consume_errors();
                        }
                        traced(g.into_deferred(), log, tag, "gather", |v| {
                            let items: Vec<String> = v.iter().map(fmt_value).collect();
                            format!("[{}]", items.join(", "))
                        })
                    }
                    _ => traced(race(inputs), log, tag, "race", |(i, v)| {
                        format!("({i}, {})", fmt_value(v))
                    }),
                }
            }
            "acquire" => self.lock.acquire().add_callback(|_| Ok(None)),
            "sacquire" => {
                let sem = self.sem.as_ref().expect("made above");
                sem.acquire().add_callback(|_| Ok(None))
            }
            "get" => match self.queue.as_ref().expect("made above").get() {
                Ok(d) => d,
                Err(e) => {
                    log.push(format!("{tag} get: QueueUnderflow"));
                    fail(e)
                }
            },
            "later" => {
                let v = num(w, 3);
                defer_later_with_clock(
                    &self.clock,
                    Duration::from_secs(num(w, 2) as u64),
                    move || Ok::<Val, Failure>(Some(v)),
                )
            }
            "release" | "srelease" => {
                let ok = if w[0] == "release" {
                    self.lock.release().is_ok()
                } else {
                    self.sem.as_ref().expect("made above").release().is_ok()
                };
                let outcome = if ok { "ok" } else { "error" };
                log.push(format!("{tag} {}: {outcome}", w[0]));
                return true;
            }
            "sem" => {
                let tokens = num(w, 1) as usize;
                self.sem = Some(DeferredSemaphore::new(tokens).expect("at least 1 token"));
                return true;
            }
            "queue" => {
                let limit = |s: &str| s.parse::<usize>().ok();
                self.queue = Some(DeferredQueue::new(limit(w[1]), limit(w[2])));
                return true;
            }
            "put" => {
                let q = self.queue.as_ref().expect("made above");
                let outcome = match q.put(Some(num(w, 1))) {
                    Ok(()) => "ok",
                    Err(_) => "QueueOverflow",
                };
                log.push(format!("{tag} put: {outcome}"));
                return true;
            }
            "advance" => {
                self.clock.advance(Duration::from_secs(num(w, 1) as u64));
                return true;
            }
            _ => return false,
        };
        let k = num(w, 1) as usize;
        self.slot(k);
        self.put(k, d);
        true
    }

    fn op(&mut self, n: usize, w: &[&str]) {
        if self.op_extra(n, w) {
            return;
        }
        let tag = format!("@{n}");
        let log = self.log.clone();
        let i = num(w, 1) as usize;
        core_ops!(self, w, i, tag, log, Deferred, Resolver, succeed, fail, {
            "chain" => {
                let j = num(w, 2) as usize;
                let target = self.r(j).clone();
                let d = self
                    .take(i)
                    .chain_deferred(target)
                    .add_callback(|()| Ok(None));
                self.put(i, d);
            }
            other => panic!("unknown op {other:?}"),
        })
    }

    fn finish(&mut self) {
        for i in 0..self.ds.len() {
            if self.consumed[i] {
                continue;
            }
            let Some(d) = take_slot(&self.ds[i]) else {
                continue;
            };
            let line = if !d.is_called() {
                format!("final d{i} pending")
            } else if let Some(r) = d.try_take() {
                // The result is gone: so is the handle (a `cbdo` callback
                // that runs later finds it unavailable).
                self.consumed[i] = true;
                self.log.push(format!("final d{i} {}", fmt_result(&r)));
                continue;
            } else {
                let yn = |b: bool| if b { "yes" } else { "no" };
                format!(
                    "final d{i} blocked paused={} waiting={}",
                    yn(d.is_paused()),
                    yn(d.is_waiting())
                )
            };
            self.log.push(line);
            self.put(i, d);
        }
        self.log.close();
        // Normalization N1 (DIFFERENCES.md): every unfired Deferred fails
        // with ScriptEnd, in index order, as on the Python side, instead of
        // failing with ResolverDroppedError whenever its last Resolver
        // happens to go (which Twisted has no analogue of). The handles are
        // still in their slots, for `cbdo` callbacks that run now.
        for r in self.rs.iter().flatten() {
            if !r.is_called() {
                drop(r.errback(ScriptEnd));
            }
        }
        // N1 too: every pending `later` call runs.
        self.clock.advance(Duration::from_secs(1_000_000));
        // Then the handles go (a `cbdo` callback may hold the slot of its
        // own Deferred: emptying the slots breaks such cycles, as Python's
        // gc would), then the Resolvers.
        for slot in &self.ds {
            drop(take_slot(slot));
        }
        for r in self.rs.iter_mut() {
            drop(r.take());
        }
    }
}

/// Takes a handle out of its slot, without holding the lock afterwards.
fn take_slot(slot: &Slot) -> Option<Deferred<Val>> {
    slot.lock().unwrap().take()
}

/// Puts a handle back into its slot.
fn put_slot(slot: &Slot, d: Deferred<Val>) {
    *slot.lock().unwrap() = Some(d);
}

/// A cancel handle on the Deferred in a slot.
fn cancel_handle_of(slot: &Slot) -> CancelHandle {
    slot.lock()
        .unwrap()
        .as_ref()
        .expect("op on a consumed Deferred")
        .cancel_handle()
}

fn simple_op(op: &str, d: &Deferred<Val>) {
    match op {
        "pause" => d.pause(),
        "unpause" => d.unpause(),
        "cancel" => d.cancel(),
        other => panic!("unknown sub-op {other:?}"),
    }
}

/// Turns the unhandled-error event lines into `unhandled <error>`
/// lines, sorted. `ResolverDroppedError` (dropping the Resolvers at the end
/// of a script) has no Twisted analogue and is left out (DIFFERENCES.md).
///
/// An event line reads `ERROR tokio_deferred::unhandled: Unhandled error in
/// Deferred: <failure> failure=<failure> error_type="<type>" ...`.
fn unhandled_lines(events: &[String]) -> Vec<String> {
    let mut out: Vec<String> = events
        .iter()
        .filter_map(|l| {
            let ty = l.split("error_type=\"").nth(1)?.split('"').next()?;
            let msg = l.split("in Deferred: ").nth(1)?.split(" failure=").next()?;
            let last = msg.rsplit(' ').next().unwrap_or("?");
            let short = ty.rsplit("::").next().unwrap_or(ty);
            let short = short.split('<').next().unwrap_or(short);
            match short {
                "ResolverDroppedError" => None,
                "MyError" => Some(format!("unhandled MyError({last})")),
                "PanicError" => Some(format!("unhandled Panic({last})")),
                other => Some(format!("unhandled {other}")),
            }
        })
        .collect();
    out.sort();
    out
}

/// Runs one script (its ops, one per line) and returns its trace lines.
pub fn run_script(ops: &[String]) -> Vec<String> {
    trace_script(|log| {
        let mut s = Script {
            log,
            ..Script::default()
        };
        for (n, op) in ops.iter().enumerate() {
            let w: Vec<&str> = op.split_whitespace().collect();
            s.op(n, &w);
        }
        s.finish();
        // Resolvers and Deferreds are dropped here, after the trace is done.
    })
}

/// Runs one script's body (`run` gets the trace's log) and returns its
/// trace lines: the events logged, `escaped panic` if a panic escaped the
/// body, then the sorted unhandled-error reports emitted while it ran
/// (panic messages of callbacks are silenced meanwhile).
pub(crate) fn trace_script(run: impl FnOnce(Log)) -> Vec<String> {
    install_quiet_hook();
    let log = Log::default();
    let (outcome, events) = capture_unhandled(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            QUIET.with(|q| q.set(true));
            run(log.clone());
        }))
    });
    QUIET.with(|q| q.set(false));
    let mut lines = std::mem::take(&mut log.0.lock().unwrap().0);
    if outcome.is_err() {
        lines.push("escaped panic".to_owned());
    }
    lines.extend(unhandled_lines(&events));
    lines
}

/// Parses a scripts file: each script starts with a `== name` header line,
/// followed by one op per line.
pub fn parse_scripts(text: &str) -> Vec<(String, Vec<String>)> {
    let mut scripts: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("==") {
            scripts.push((line.to_owned(), Vec::new()));
        } else if let Some(last) = scripts.last_mut() {
            last.1.push(line.to_owned());
        }
    }
    scripts
}

/// Runs every script of a scripts file and returns the whole trace text.
pub fn run_all(text: &str) -> String {
    run_all_with(text, run_script)
}

/// Runs every script of a scripts file through `run_script` and returns
/// the whole trace text (each trace under its script's header).
pub(crate) fn run_all_with(text: &str, run_script: fn(&[String]) -> Vec<String>) -> String {
    let mut out = String::new();
    for (header, ops) in parse_scripts(text) {
        out.push_str(&header);
        out.push('\n');
        for line in run_script(&ops) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}
