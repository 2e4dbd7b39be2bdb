//! Interpreter of the conformance op language over `LocalDeferred` (the
//! `!Send` flavour), for the ops it supports ([`LOCAL_OPS`]): the twin of
//! `interp.rs` for the core Deferred ops, with the same trace format, so the
//! same Twisted traces (`conformance/twisted_interp.py`, or the golden
//! files) are its oracle. The language and the trace format are described
//! in `DESIGN.md` ("The op language").
//!
//! Left out (`conformance/DIFFERENCES.md`, "LocalDeferred"): the
//! DeferredList, gather, race, lock, semaphore, queue and clock ops, which
//! are built on the thread-safe `Deferred` and have no `LocalDeferred`
//! counterpart. `chain i j` is Twisted's own definition of
//! `chainDeferred`, `addCallbacks(d.callback, d.errback)`: `LocalDeferred`
//! has no `chain_deferred`.
//!
//! Handles are shared with callbacks through `Rc<RefCell<..>>` slots; the
//! arms of the core ops (`core_ops!`), the formatting helpers, the trace
//! log and the runner frame come from `interp.rs`.

use std::cell::RefCell;
use std::rc::Rc;

use crate::interp::{
    Log, MyError, ScriptEnd, Val, core_ops, fmt_failure, fmt_result, fmt_value, num, run_all_with,
    trace_script,
};
use tokio_deferred::{Failure, LocalCancelHandle, LocalDeferred, LocalResolver};

/// The ops this interpreter runs (the first word of each line).
pub const LOCAL_OPS: &[&str] = &[
    "new", "newc", "newok", "newerr", "cb", "cbs", "cbfail", "cbpanic", "cbret", "ebret", "cbfire",
    "cbcancel", "cbdo", "ebrec", "ebfail", "eberr", "both", "fire", "fail", "drop", "pause",
    "unpause", "cancel", "chain",
];

/// Whether every op of a script is one this interpreter runs.
pub fn supports(ops: &[String]) -> bool {
    ops.iter().all(|op| {
        op.split_whitespace()
            .next()
            .is_some_and(|name| LOCAL_OPS.contains(&name))
    })
}

/// A Deferred's handle, shared with callbacks that act on it (`cbdo`). It
/// is taken out while an op uses it, so a callback that runs during that op
/// and reaches for it finds it unavailable (as in `interp.rs`).
type Slot = Rc<RefCell<Option<LocalDeferred<Val>>>>;

#[derive(Default)]
struct Script {
    log: Log,
    ds: Vec<Slot>,
    rs: Vec<Option<LocalResolver<Val>>>,
    consumed: Vec<bool>,
}

/// Takes a handle out of its slot, without keeping the slot borrowed.
fn take_slot(slot: &Slot) -> Option<LocalDeferred<Val>> {
    slot.borrow_mut().take()
}

/// Puts a handle back into its slot.
fn put_slot(slot: &Slot, d: LocalDeferred<Val>) {
    *slot.borrow_mut() = Some(d);
}

/// A cancel handle on the Deferred in a slot.
fn cancel_handle_of(slot: &Slot) -> LocalCancelHandle {
    slot.borrow()
        .as_ref()
        .expect("op on a consumed Deferred")
        .cancel_handle()
}

fn simple_op(op: &str, d: &LocalDeferred<Val>) {
    match op {
        "pause" => d.pause(),
        "unpause" => d.unpause(),
        "cancel" => d.cancel(),
        other => panic!("unknown sub-op {other:?}"),
    }
}

impl Script {
    fn slot(&mut self, i: usize) {
        while self.ds.len() <= i {
            self.ds.push(Slot::default());
            self.rs.push(None);
            self.consumed.push(false);
        }
    }

    fn take(&self, i: usize) -> LocalDeferred<Val> {
        take_slot(&self.ds[i]).expect("op on a consumed Deferred")
    }

    fn put(&self, i: usize, d: LocalDeferred<Val>) {
        *self.ds[i].borrow_mut() = Some(d);
    }

    fn r(&self, i: usize) -> &LocalResolver<Val> {
        self.rs[i].as_ref().expect("op on an uncreated Deferred")
    }

    fn op(&mut self, n: usize, w: &[&str]) {
        let tag = format!("@{n}");
        let log = self.log.clone();
        let i = num(w, 1) as usize;
        core_ops!(
            self, w, i, tag, log,
            LocalDeferred, LocalResolver, LocalDeferred::succeed, LocalDeferred::fail,
            {
                "chain" => {
                    // Twisted's chainDeferred: `addCallbacks(d.callback,
                    // d.errback)`, the chain then holding None (or the
                    // AlreadyCalledError raised by firing d_j again).
                    let j = num(w, 2) as usize;
                    let target = self.r(j).clone();
                    let d = self.take(i).add_both(move |r: Result<Val, Failure>| {
                        target
                            .resolve(r)
                            .map(|()| None)
                            .map_err(|e| Failure::new(e.without_value()))
                    });
                    self.put(i, d);
                }
                other => panic!("op {other:?} is not supported over LocalDeferred"),
            }
        )
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
        // Normalization N1 (DIFFERENCES.md), as in `interp.rs`: every
        // unfired Deferred fails with ScriptEnd, in index order, while the
        // handles are still in their slots.
        for r in self.rs.iter().flatten() {
            if !r.is_called() {
                drop(r.errback(ScriptEnd));
            }
        }
        // Then the handles go (emptying the slots breaks the cycles of
        // `cbdo` callbacks holding their own Deferred's slot), then the
        // Resolvers.
        for slot in &self.ds {
            drop(take_slot(slot));
        }
        for r in self.rs.iter_mut() {
            drop(r.take());
        }
    }
}

/// Runs one script (its ops, one per line, all in [`LOCAL_OPS`]) over
/// `LocalDeferred` and returns its trace lines.
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

/// Runs every script of a scripts file over `LocalDeferred` and returns
/// the whole trace text.
pub fn run_all(text: &str) -> String {
    run_all_with(text, run_script)
}
