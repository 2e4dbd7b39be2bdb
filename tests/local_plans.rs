//! Randomized operation plans over `LocalDeferred`, checked step by step
//! against a small model of Twisted's Deferred, and the input of
//! `scripts/memcheck.sh` (valgrind's memcheck over the arena's `unsafe`
//! code).
//!
//! A plan is a random sequence of `add_callback` / `add_errback` /
//! `add_both` / `add_callbacks` (callbacks that return values, fail, panic,
//! or return an already-fired, a failed or a pending `LocalDeferred`),
//! `callback` / `errback` through any of several resolvers (cloned and
//! dropped at random), `pause` / `unpause`, `cancel`, `try_take`, the fire of
//! a returned Deferred, and dropping the handle. The model ([`Model`]) is
//! Twisted's `_runCallbacks` reduced to one chain and the Deferreds its
//! callbacks return. After every step the links that ran (in order) must be
//! the model's; at the end every pause is undone and everything fired, the
//! result must be the model's, and once everything is dropped no value,
//! closure or state may be left alive.
//!
//! Callbacks capture padding of 0 to 6,400 bytes (16-byte aligned), so
//! entries fill the inline chunk, spill to heap chunks and exceed a heap
//! chunk's default size. Values and captures own heap memory, so a leak or
//! a double drop shows as a count that does not return to zero here and as
//! an error under memcheck.
//!
//! Cases: `PROPTEST_CASES` (default 256).
// Twisted: test_defer.py DeferredTests (callback order, pause/unpause,
// chaining through returned Deferreds, cancel, AlreadyCalledError) as a
// property rather than by example.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use proptest::prelude::*;
use tokio_deferred::{
    CancelledError, Failure, LocalDeferred, LocalResolver, PanicError, ResolverDroppedError,
    ResultTakenError,
};

thread_local! {
    /// Live [`Tracked`] values (results and closure captures).
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

/// A value that owns heap memory and is counted while alive.
struct Tracked {
    v: i64,
    _heap: Box<i64>,
}

impl Tracked {
    fn new(v: i64) -> Self {
        LIVE.with(|l| l.set(l.get() + 1));
        Tracked {
            v,
            _heap: Box::new(v),
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        LIVE.with(|l| {
            assert!(l.get() > 0, "a Tracked value was dropped twice");
            l.set(l.get() - 1);
        });
    }
}

/// A callback's capture: `M` 16-byte words of padding and a [`Tracked`].
struct Pad<const M: usize>([u128; M], Tracked);

impl<const M: usize> Pad<M> {
    fn new() -> Self {
        Pad([0; M], Tracked::new(-7))
    }

    /// Reads the padding, so that it is really captured.
    fn check(&self) {
        assert!(self.0.iter().all(|&w| w == 0) && self.1.v == -7);
    }
}

/// The error of a failing callback or fire.
#[derive(Debug, thiserror::Error)]
#[error("boom {0}")]
struct Boom(i64);

/// The panic message of a panicking callback (kept out of the test output).
const PLAN_PANIC: &str = "a planned panic";

/// What a result is, for comparison with the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Boom(i64),
    Cancelled,
    ResolverDropped,
    Taken,
    Panic,
}

type Out = Result<i64, Kind>;

fn kind_of(f: &Failure) -> Kind {
    if let Some(b) = f.downcast_ref::<Boom>() {
        Kind::Boom(b.0)
    } else if f.is::<CancelledError>() {
        Kind::Cancelled
    } else if f.is::<ResolverDroppedError>() {
        Kind::ResolverDropped
    } else if f.is::<ResultTakenError>() {
        Kind::Taken
    } else if f.is::<PanicError>() {
        Kind::Panic
    } else {
        panic!("an unexpected failure: {f}")
    }
}

fn out_of(r: Result<Tracked, Failure>) -> Out {
    r.map(|t| t.v).map_err(|f| kind_of(&f))
}

/// Which side of a link a callback is on.
#[derive(Debug, Clone, Copy)]
enum Side {
    /// `add_callback`: runs on a value.
    Callback,
    /// `add_errback`: runs on a failure.
    Errback,
    /// `add_both`: runs on either.
    Both,
    /// `add_callbacks(v + k, failure -> k)`: one of the two runs.
    Pair,
}

/// What a callback gives back.
#[derive(Debug, Clone, Copy)]
enum Effect {
    /// The value plus `k` (a failure passes through `add_both`).
    Add(i64),
    /// Fails with `Boom(k)`.
    Fail(i64),
    /// Panics.
    Panic,
    /// `k`.
    Value(i64),
    /// `LocalDeferred::succeed(k)`.
    ReturnReady(i64),
    /// `LocalDeferred::fail(Boom(k))`.
    ReturnFailed(i64),
    /// Returned Deferred `j` (pending until fired); if it was already
    /// returned, `succeed(-1)`.
    ReturnInner(usize),
}

/// How many Deferreds a plan's callbacks may return.
const INNERS: usize = 3;

#[derive(Debug, Clone, Copy)]
struct LinkSpec {
    side: Side,
    effect: Effect,
    /// Index into [`PADS`].
    pad: usize,
}

/// The capture sizes, in 16-byte words (0 to 6,400 bytes).
const PADS: [usize; 5] = [0, 2, 16, 100, 400];

#[derive(Debug, Clone, Copy)]
enum Step {
    Link(LinkSpec),
    Pause,
    Unpause,
    Cancel,
    TryTake,
    /// Fire through resolver `i` (modulo how many were made).
    Fire(usize, Out),
    CloneResolver(usize),
    DropResolver(usize),
    /// Fire returned Deferred `j` with `k`.
    FireInner(usize, i64),
    DropHandle,
}

fn effect() -> impl Strategy<Value = Effect> {
    prop_oneof![
        4 => (0i64..100).prop_map(Effect::Add),
        1 => (0i64..100).prop_map(Effect::Fail),
        1 => Just(Effect::Panic),
        2 => (0i64..100).prop_map(Effect::Value),
        1 => (0i64..100).prop_map(Effect::ReturnReady),
        1 => (0i64..100).prop_map(Effect::ReturnFailed),
        3 => (0..INNERS).prop_map(Effect::ReturnInner),
    ]
}

fn link() -> impl Strategy<Value = LinkSpec> {
    let side = prop_oneof![
        3 => Just(Side::Callback),
        2 => Just(Side::Errback),
        1 => Just(Side::Both),
        1 => Just(Side::Pair),
    ];
    (side, effect(), 0..PADS.len()).prop_map(|(side, effect, pad)| LinkSpec { side, effect, pad })
}

fn out() -> impl Strategy<Value = Out> {
    prop_oneof![
        3 => (0i64..100).prop_map(Ok),
        1 => (0i64..100).prop_map(|k| Err(Kind::Boom(k))),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => link().prop_map(Step::Link),
        2 => Just(Step::Pause),
        2 => Just(Step::Unpause),
        1 => Just(Step::Cancel),
        1 => Just(Step::TryTake),
        2 => (0usize..4, out()).prop_map(|(i, o)| Step::Fire(i, o)),
        1 => (0usize..4).prop_map(Step::CloneResolver),
        1 => (0usize..4).prop_map(Step::DropResolver),
        2 => (0..INNERS, 0i64..100).prop_map(|(j, k)| Step::FireInner(j, k)),
        1 => Just(Step::DropHandle),
    ]
}

/// The canceller a plan's Deferred is made with: none, one that does not
/// fire it, or one that fires it with `k`.
fn canceller() -> impl Strategy<Value = Option<Option<i64>>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(None)),
        1 => (0i64..100).prop_map(|k| Some(Some(k))),
    ]
}

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

#[derive(Default)]
struct InnerModel {
    fired: bool,
    /// Swallow one late fire (it was cancelled with no canceller).
    suppress: bool,
    /// Its result, until a callback returns it.
    result: Option<Out>,
    returned: bool,
}

/// Twisted's Deferred, for one chain and the Deferreds its callbacks
/// return.
struct Model {
    fired: bool,
    suppress: bool,
    paused: u32,
    /// `Some(fires)` until the canceller runs.
    canceller: Option<Option<i64>>,
    links: Vec<LinkSpec>,
    /// The next link to run.
    cursor: usize,
    /// The current result (`None` once taken).
    result: Option<Out>,
    waiting: Option<usize>,
    inners: Vec<InnerModel>,
    resolvers: usize,
    /// The links whose callback ran, in order.
    runs: Vec<usize>,
}

/// What running a link left the chain with.
enum Next {
    Now(Out),
    Wait(usize),
}

impl Model {
    fn new(canceller: Option<Option<i64>>) -> Self {
        Model {
            fired: false,
            suppress: false,
            paused: 0,
            canceller,
            links: Vec::new(),
            cursor: 0,
            result: None,
            waiting: None,
            inners: (0..INNERS).map(|_| InnerModel::default()).collect(),
            resolvers: 1,
            runs: Vec::new(),
        }
    }

    /// `callback`/`errback`: whether the fire was accepted.
    fn fire(&mut self, out: Out) -> bool {
        if !self.fired {
            self.fired = true;
            self.result = Some(out);
            self.run();
            true
        } else if self.suppress {
            self.suppress = false;
            true
        } else {
            false
        }
    }

    fn drop_resolver(&mut self) {
        self.resolvers -= 1;
        if self.resolvers == 0 && !self.fired {
            self.fire(Err(Kind::ResolverDropped));
        }
    }

    fn cancel(&mut self) {
        if !self.fired {
            match self.canceller.take() {
                Some(fires) => {
                    if let Some(k) = fires {
                        self.fire(Ok(k));
                    }
                    if !self.fired {
                        self.fire(Err(Kind::Cancelled));
                    }
                }
                None => {
                    self.suppress = true;
                    self.fire(Err(Kind::Cancelled));
                }
            }
        } else if let Some(j) = self.waiting {
            // Cascades to the Deferred waited on (it has no canceller).
            if !self.inners[j].fired {
                self.inners[j].suppress = true;
                self.fire_inner(j, Err(Kind::Cancelled));
            }
        }
    }

    fn fire_inner(&mut self, j: usize, out: Out) -> bool {
        let inner = &mut self.inners[j];
        if inner.fired {
            return std::mem::take(&mut inner.suppress);
        }
        inner.fired = true;
        if self.waiting == Some(j) {
            self.waiting = None;
            self.result = Some(out);
            self.run();
        } else {
            inner.result = Some(out);
        }
        true
    }

    fn pause(&mut self) {
        self.paused += 1;
    }

    fn unpause(&mut self) {
        if self.paused > 0 {
            self.paused -= 1;
            if self.paused == 0 {
                self.run();
            }
        }
    }

    fn push(&mut self, l: LinkSpec) {
        self.links.push(l);
        self.run();
    }

    fn done(&self) -> bool {
        self.fired && self.paused == 0 && self.waiting.is_none()
    }

    fn try_take(&mut self) -> Option<Out> {
        self.done()
            .then(|| self.result.take().unwrap_or(Err(Kind::Taken)))
    }

    /// Twisted's `_runCallbacks` for this chain.
    fn run(&mut self) {
        while self.done() && self.cursor < self.links.len() {
            let id = self.cursor;
            self.cursor += 1;
            let input = self.result.take().unwrap_or(Err(Kind::Taken));
            match self.apply(id, input) {
                Next::Now(out) => self.result = Some(out),
                Next::Wait(j) => self.waiting = Some(j),
            }
        }
    }

    fn apply(&mut self, id: usize, input: Out) -> Next {
        let LinkSpec { side, effect, .. } = self.links[id];
        match (side, input) {
            // The other side's link: the result passes, nothing runs.
            (Side::Callback, Err(_)) | (Side::Errback, Ok(_)) => return Next::Now(input),
            (Side::Pair, Ok(v)) => {
                self.runs.push(id);
                return Next::Now(Ok(v + pair_k(effect)));
            }
            (Side::Pair, Err(_)) => {
                self.runs.push(id);
                return Next::Now(Ok(pair_k(effect)));
            }
            _ => self.runs.push(id),
        }
        match effect {
            Effect::Add(k) => Next::Now(input.map(|v| v + k)),
            Effect::Fail(k) | Effect::ReturnFailed(k) => Next::Now(Err(Kind::Boom(k))),
            Effect::Panic => Next::Now(Err(Kind::Panic)),
            Effect::Value(k) | Effect::ReturnReady(k) => Next::Now(Ok(k)),
            Effect::ReturnInner(j) => {
                let inner = &mut self.inners[j];
                if inner.returned {
                    Next::Now(Ok(-1))
                } else {
                    inner.returned = true;
                    if inner.fired {
                        Next::Now(inner.result.take().unwrap_or(Err(Kind::Taken)))
                    } else {
                        Next::Wait(j)
                    }
                }
            }
        }
    }
}

/// The `k` of an `add_callbacks` link: its effect's number.
fn pair_k(effect: Effect) -> i64 {
    match effect {
        Effect::Add(k)
        | Effect::Fail(k)
        | Effect::Value(k)
        | Effect::ReturnReady(k)
        | Effect::ReturnFailed(k) => k,
        Effect::Panic => 0,
        Effect::ReturnInner(j) => j as i64,
    }
}

// ---------------------------------------------------------------------------
// The real thing
// ---------------------------------------------------------------------------

type D = LocalDeferred<Tracked>;
type InnerSlot = Rc<RefCell<Option<D>>>;

struct Real {
    d: Option<D>,
    resolvers: Vec<Option<LocalResolver<Tracked>>>,
    inners: Vec<InnerSlot>,
    inner_resolvers: Vec<LocalResolver<Tracked>>,
    runs: Rc<RefCell<Vec<usize>>>,
}

/// What a callback returns: a value, a failure, or a Deferred.
fn give(effect: Effect, input: Result<i64, Failure>, inners: &[InnerSlot]) -> D {
    match effect {
        Effect::Add(k) => match input {
            Ok(v) => D::succeed(Tracked::new(v + k)),
            Err(f) => D::fail(f),
        },
        Effect::Fail(k) | Effect::ReturnFailed(k) => D::fail(Boom(k)),
        Effect::Panic => std::panic::panic_any(PLAN_PANIC),
        Effect::Value(k) | Effect::ReturnReady(k) => D::succeed(Tracked::new(k)),
        Effect::ReturnInner(j) => inners[j]
            .borrow_mut()
            .take()
            .unwrap_or_else(|| D::succeed(Tracked::new(-1))),
    }
}

/// Whether a callback returns its outcome as a `Result` (else as a
/// Deferred), so both forms are used.
fn as_result(effect: Effect) -> bool {
    matches!(effect, Effect::Add(_) | Effect::Fail(_) | Effect::Value(_))
}

/// The outcome of a callback that returns a `Result`: a Deferred built by
/// [`give`] for those effects is already fired, so its result is taken.
fn result_of(d: D) -> Result<Tracked, Failure> {
    d.try_take().expect("an already-fired Deferred")
}

fn push_link<const M: usize>(d: D, id: usize, spec: LinkSpec, real: &Real) -> D {
    let pad = Pad::<M>::new();
    let runs = real.runs.clone();
    let inners = real.inners.clone();
    let effect = spec.effect;
    let record = move |pad: &Pad<M>| {
        pad.check();
        runs.borrow_mut().push(id);
    };
    match spec.side {
        Side::Callback if as_result(effect) => d.add_callback(move |v: Tracked| {
            record(&pad);
            result_of(give(effect, Ok(v.v), &inners))
        }),
        Side::Callback => d.add_callback(move |v: Tracked| {
            record(&pad);
            give(effect, Ok(v.v), &inners)
        }),
        Side::Errback if as_result(effect) => d.add_errback(move |f: Failure| {
            record(&pad);
            result_of(give(effect, Err(f), &inners))
        }),
        Side::Errback => d.add_errback(move |f: Failure| {
            record(&pad);
            give(effect, Err(f), &inners)
        }),
        Side::Both => d.add_both(move |r: Result<Tracked, Failure>| {
            record(&pad);
            give(effect, r.map(|t| t.v), &inners)
        }),
        Side::Pair => {
            let k = pair_k(effect);
            let record2 = record.clone();
            let pad2 = Pad::<M>::new();
            d.add_callbacks(
                move |v: Tracked| {
                    record(&pad);
                    Ok(Tracked::new(v.v + k))
                },
                move |_: Failure| {
                    record2(&pad2);
                    Ok(Tracked::new(k))
                },
            )
        }
    }
}

fn push(d: D, id: usize, spec: LinkSpec, real: &Real) -> D {
    match PADS[spec.pad] {
        0 => push_link::<0>(d, id, spec, real),
        2 => push_link::<2>(d, id, spec, real),
        16 => push_link::<16>(d, id, spec, real),
        100 => push_link::<100>(d, id, spec, real),
        _ => push_link::<400>(d, id, spec, real),
    }
}

fn fire(r: &LocalResolver<Tracked>, out: Out) -> bool {
    match out {
        Ok(v) => r.callback(Tracked::new(v)).is_ok(),
        Err(Kind::Boom(k)) => r.errback(Boom(k)).is_ok(),
        Err(other) => unreachable!("plans fire values and Boom failures only, not {other:?}"),
    }
}

/// Keeps the planned panics out of the test output.
fn quiet_planned_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&PLAN_PANIC) {
                default(info);
            }
        }));
    });
}

/// Runs one plan; `Err` describes the first difference from the model.
fn run_plan(cancel_with: Option<Option<i64>>, steps: &[Step]) -> Result<(), TestCaseError> {
    let mut m = Model::new(cancel_with);
    let (d, r) = match cancel_with {
        None => D::new(),
        Some(fires) => {
            let guard = Tracked::new(-3);
            D::with_canceller(move |r: &LocalResolver<Tracked>| {
                assert_eq!(guard.v, -3);
                if let Some(k) = fires {
                    let _ = r.callback(Tracked::new(k));
                }
            })
        }
    };
    let mut inners = Vec::new();
    let mut inner_resolvers = Vec::new();
    for _ in 0..INNERS {
        let (d, r) = D::new();
        inners.push(Rc::new(RefCell::new(Some(d))));
        inner_resolvers.push(r);
    }
    let mut real = Real {
        d: Some(d),
        resolvers: vec![Some(r)],
        inners,
        inner_resolvers,
        runs: Rc::default(),
    };
    for (n, &s) in steps.iter().enumerate() {
        match s {
            Step::Link(spec) => {
                if let Some(d) = real.d.take() {
                    real.d = Some(push(d, m.links.len(), spec, &real));
                    m.push(spec);
                }
            }
            Step::Pause => {
                if let Some(d) = &real.d {
                    d.pause();
                    m.pause();
                }
            }
            Step::Unpause => {
                if let Some(d) = &real.d {
                    d.unpause();
                    m.unpause();
                }
            }
            Step::Cancel => {
                if let Some(d) = &real.d {
                    d.cancel();
                    m.cancel();
                }
            }
            Step::TryTake => {
                if let Some(d) = &real.d {
                    let got = d.try_take().map(out_of);
                    prop_assert_eq!(got, m.try_take(), "try_take at step {}", n);
                }
            }
            Step::Fire(i, out) => {
                let i = i % real.resolvers.len();
                if let Some(r) = &real.resolvers[i] {
                    let accepted = fire(r, out);
                    prop_assert_eq!(accepted, m.fire(out), "fire at step {}", n);
                }
            }
            Step::CloneResolver(i) => {
                let i = i % real.resolvers.len();
                if let Some(r) = &real.resolvers[i] {
                    real.resolvers.push(Some(r.clone()));
                    m.resolvers += 1;
                }
            }
            Step::DropResolver(i) => {
                let i = i % real.resolvers.len();
                if let Some(r) = real.resolvers[i].take() {
                    drop(r);
                    m.drop_resolver();
                }
            }
            Step::FireInner(j, k) => {
                let accepted = fire(&real.inner_resolvers[j], Ok(k));
                prop_assert_eq!(accepted, m.fire_inner(j, Ok(k)), "inner fire at step {}", n);
            }
            Step::DropHandle => drop(real.d.take()),
        }
        prop_assert_eq!(&*real.runs.borrow(), &m.runs, "links run after step {}", n);
    }
    // Undo every pause, fire everything, and compare the ends.
    if let Some(d) = &real.d {
        while m.paused > 0 {
            d.unpause();
            m.unpause();
        }
    }
    for j in 0..INNERS {
        let accepted = fire(&real.inner_resolvers[j], Ok(1000));
        prop_assert_eq!(accepted, m.fire_inner(j, Ok(1000)));
    }
    if let Some(r) = real.resolvers.iter().flatten().next() {
        let accepted = fire(r, Ok(0));
        prop_assert_eq!(accepted, m.fire(Ok(0)));
    }
    prop_assert_eq!(&*real.runs.borrow(), &m.runs, "links run at the end");
    if let Some(d) = &real.d {
        prop_assert!(m.fired && m.done());
        // Every link ran (or was skipped by the side it is on).
        prop_assert_eq!(m.cursor, m.links.len());
        let got = d.try_take().map(out_of);
        prop_assert_eq!(got, m.try_take(), "the result");
        prop_assert_eq!(d.try_take().map(out_of), Some(Err(Kind::Taken)));
    }
    drop(real);
    let live = LIVE.with(Cell::get);
    prop_assert_eq!(live, 0, "values or captures left alive");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    /// Whatever the plan, the links run in the model's order, each at most
    /// once, fires are accepted exactly when the model accepts them, the
    /// result is the model's, and nothing is left alive.
    #[test]
    fn random_plans_follow_the_model_and_free_everything(
        cancel_with in canceller(),
        steps in prop::collection::vec(step(), 0..40),
    ) {
        quiet_planned_panics();
        run_plan(cancel_with, &steps)?;
    }
}

/// A plan with every kind of step, so a model change that breaks a kind is
/// caught even with few random cases.
#[test]
fn a_fixed_plan_with_every_step_follows_the_model() {
    quiet_planned_panics();
    let l = |side, effect, pad| Step::Link(LinkSpec { side, effect, pad });
    let steps = [
        l(Side::Callback, Effect::Add(1), 0),
        l(Side::Callback, Effect::ReturnInner(0), 4),
        Step::Pause,
        Step::Fire(0, Ok(5)),
        l(Side::Errback, Effect::Value(9), 3),
        Step::CloneResolver(0),
        Step::Unpause,
        l(Side::Both, Effect::Add(2), 2),
        Step::TryTake,
        Step::Cancel,
        Step::FireInner(0, 7),
        l(Side::Pair, Effect::Add(3), 1),
        l(Side::Callback, Effect::Panic, 3),
        l(Side::Errback, Effect::ReturnFailed(4), 0),
        l(Side::Errback, Effect::ReturnReady(6), 4),
        l(Side::Callback, Effect::Fail(8), 2),
        Step::TryTake,
        Step::TryTake,
        Step::DropResolver(1),
        Step::Fire(0, Err(Kind::Boom(1))),
        Step::DropHandle,
    ];
    run_plan(None, &steps).unwrap();
    run_plan(Some(Some(3)), &[Step::Cancel, Step::Fire(0, Ok(1))]).unwrap();
    run_plan(Some(None), &[Step::Cancel, Step::Fire(0, Ok(1))]).unwrap();
    run_plan(
        None,
        &[Step::Cancel, Step::Fire(0, Ok(1)), Step::Fire(0, Ok(2))],
    )
    .unwrap();
    run_plan(None, &[Step::DropResolver(0), Step::TryTake]).unwrap();
}
