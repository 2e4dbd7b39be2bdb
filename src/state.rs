//! The shared state of a Deferred and the iterative chain runner.
//!
//! See `DESIGN.md` for the model. In short:
//!
//! * A Deferred's state lives in one `Arc<Inner<T0>>`, where `T0` is the type
//!   it was created with. Handles of later types (`Deferred<U>` returned by
//!   `add_callback`) hold the same allocation as `Arc<dyn Core>`.
//! * The chain is a FIFO of boxed [`Link`]s. Each link is typed: it owns its
//!   callback, its input slot and its output slot. Values move from one link's
//!   output slot into the next link's input slot through `&mut dyn Any`
//!   downcasts, so no value is boxed on its way down the chain.
//! * One mutex per Deferred guards the state. It is never held while user
//!   code runs: the runner takes a link out, releases the lock, runs it, and
//!   re-takes the lock for the next one.
//! * Only one thread runs a Deferred's chain at a time: the holder of the
//!   *runner token* (`State::running`). Whoever changes the state so that the
//!   chain can go on (fire, add a callback, unpause, deliver a chained result)
//!   takes the token if it is free and runs the chain; if it is taken, the
//!   holder will see the change.
//! * [`run_chain`] moves between Deferreds with an explicit loop and stack,
//!   never by recursion, so chains of any depth run in constant stack.

use std::any::Any;
use std::marker::PhantomData;
use std::mem;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::{Poll, Waker};

use crate::arc_init::arc_in_place;
use crate::debug::{self, report_unhandled};
use crate::error::{AlreadyCalledError, CancelledError, ResultTakenError};
use crate::loom::{AtomicU8, AtomicU16, AtomicU32, Mutex, MutexGuard};
use crate::{Failure, Resolver};

/// A result travelling down a chain.
pub(crate) type Res<T> = Result<T, Failure>;

/// What a link asks the runner to do after it ran.
pub(crate) enum Step {
    /// The link's output slot holds the next result.
    Done,
    /// The callback returned a Deferred: wait for it (implicit chaining).
    Wait(Arc<dyn Core>),
    /// A continuation marker: hand `holder` (now filled with this Deferred's
    /// result) back to the `outer` Deferred that was waiting on this one.
    Resume {
        outer: Arc<dyn Core>,
        holder: LinkBox,
    },
    /// `chain_deferred` fired the target and took its runner token: run it.
    Fed(Arc<dyn Core>),
    /// A [`ContinueSlot`] received this Deferred's result: the link itself
    /// goes back to `outer` as its result.
    ResumeSelf(Arc<dyn Core>),
}

/// A boxed link with the `next` pointer of the list it sits in (a state's
/// inbox, or the links a run has not reached yet), so queueing a callback
/// allocates nothing beyond the link's own box.
pub(crate) struct Node<L: ?Sized> {
    next: Option<LinkBox>,
    link: L,
}

/// How links are held: one allocation per link.
pub(crate) type LinkBox = Box<Node<dyn Link>>;

impl<L: Link + 'static> Node<L> {
    pub(crate) fn boxed(link: L) -> LinkBox {
        Box::new(Node { next: None, link })
    }
}

impl std::ops::Deref for Node<dyn Link> {
    type Target = dyn Link;
    fn deref(&self) -> &(dyn Link + 'static) {
        &self.link
    }
}

impl std::ops::DerefMut for Node<dyn Link> {
    fn deref_mut(&mut self) -> &mut (dyn Link + 'static) {
        &mut self.link
    }
}

/// One entry of a callback chain.
pub(crate) trait Link: Send {
    /// Moves this link's input out of `src` (an `Option<Res<In>>`; empty or
    /// of another type: the result was taken) and runs the user code. One
    /// virtual call per link, and the input never lives in the link. Called
    /// with no lock held, except for a link whose [`Link::continues`] is
    /// true (it runs no user code).
    fn run(&mut self, src: &mut dyn Any) -> Step;
    /// Moves a result into this link's output slot from `src` (an
    /// `Option<Res<Out>>`): used when a Deferred this link returned delivers.
    fn refill(&mut self, src: &mut dyn Any);
    /// Drops what ties this link to another Deferred's state (a
    /// [`ContinueSlot`]'s outer Deferred) when it ends up not queued.
    fn unlink(&mut self) {}
    /// Whether `run` only hands the result to a waiting outer Deferred
    /// (`Step::ResumeSelf`), with no user code: the runner may then run it
    /// under the state's lock and end the run in the same lock section.
    fn continues(&self) -> bool {
        false
    }
    /// For a link whose [`Link::continues`] is true: `run`, returning the
    /// outer Deferred to resume instead of a [`Step`]. An `Option<Arc<_>>`
    /// comes back in two registers; a `Step` comes back through memory,
    /// and reading its `Arc` there stalled on the stores that wrote it
    /// (BENCHMARKS.md, round 12).
    fn continue_outer(&mut self, _src: &mut dyn Any) -> Option<Arc<dyn Core>> {
        None
    }
    /// The output slot, an `Option<Res<Out>>`.
    fn output(&mut self) -> &mut dyn Any;
    /// What the output slot holds.
    fn output_state(&self) -> ResultState;
    /// Takes the output if it is a failure.
    fn take_failure(&mut self) -> Option<Failure>;
    /// Replaces the output with a failure.
    fn fail_output(&mut self, failure: Failure);
    /// Whether the output slot holds a failure (no clone of it).
    fn output_is_err(&self) -> bool {
        matches!(self.output_state(), ResultState::Err(_))
    }
}

/// Moves a typed result out of an erased slot. A slot of the wrong type or
/// an empty one means the result was already taken.
pub(crate) fn take_from<T: 'static>(src: &mut dyn Any) -> Res<T> {
    match src.downcast_mut::<Option<Res<T>>>().and_then(Option::take) {
        Some(r) => r,
        None => Err(Failure::new(ResultTakenError {})),
    }
}

pub(crate) fn slot_state<T>(slot: &Option<Res<T>>) -> ResultState {
    match slot {
        None => ResultState::Empty,
        Some(Ok(_)) => ResultState::Ok,
        Some(Err(f)) => ResultState::Err(f.clone()),
    }
}

pub(crate) fn slot_take_failure<T>(slot: &mut Option<Res<T>>) -> Option<Failure> {
    match slot.take() {
        Some(Err(f)) => Some(f),
        other => {
            *slot = other;
            None
        }
    }
}

/// The `Link` methods of a link whose result slot is its `output` field
/// (an `Option<Res<_>>`): `refill`, `output`, `output_state`,
/// `take_failure`, `fail_output`, `output_is_err`.
macro_rules! output_slot {
    () => {
        fn refill(&mut self, src: &mut dyn ::std::any::Any) {
            self.output = Some($crate::state::take_from(src));
        }

        fn output(&mut self) -> &mut dyn ::std::any::Any {
            &mut self.output
        }

        fn output_state(&self) -> $crate::state::ResultState {
            $crate::state::slot_state(&self.output)
        }

        fn take_failure(&mut self) -> Option<$crate::Failure> {
            $crate::state::slot_take_failure(&mut self.output)
        }

        fn fail_output(&mut self, failure: $crate::Failure) {
            self.output = Some(Err(failure));
        }

        fn output_is_err(&self) -> bool {
            matches!(self.output, Some(Err(_)))
        }
    };
}
pub(crate) use output_slot;

/// What a callback (or errback) produced.
#[doc(hidden)]
#[derive(Debug)]
pub enum Outcome<U: Send + 'static> {
    /// A value or a failure, available now.
    Ready(Result<U, Failure>),
    /// A Deferred whose result the chain waits for.
    Chain(crate::Deferred<U>),
}

/// A link running a callback/errback pair.
pub(crate) struct CallbackLink<T, U: Send + 'static, F> {
    f: Option<F>,
    output: Option<Res<U>>,
    /// The input type: the input itself is never stored (see [`Link::run`]).
    input: PhantomData<fn(Res<T>)>,
}

/// An empty link (no callback yet): what `Box::default` builds in place.
impl<T, U: Send + 'static, F> Default for Node<CallbackLink<T, U, F>> {
    fn default() -> Self {
        Node {
            next: None,
            link: CallbackLink {
                f: None,
                output: None,
                input: PhantomData,
            },
        }
    }
}

impl<T, U, F> CallbackLink<T, U, F>
where
    T: Send + 'static,
    U: Send + 'static,
    F: FnOnce(Res<T>) -> Outcome<U> + Send + 'static,
{
    /// The link in its box. `Box::default` allocates first and builds the
    /// empty link in the block; the callback is then stored into it.
    /// `Box::new(link)` built the link on the stack and copied it after
    /// malloc, with loads that wait on the stores that built it (a
    /// store-forwarding stall; BENCHMARKS.md, round 8).
    #[inline]
    pub(crate) fn boxed(f: F) -> LinkBox {
        let mut node: Box<Node<Self>> = Box::default();
        node.link.f = Some(f);
        node
    }
}

impl<T, U, F> Link for CallbackLink<T, U, F>
where
    T: Send + 'static,
    U: Send + 'static,
    F: FnOnce(Res<T>) -> Outcome<U> + Send + 'static,
{
    fn run(&mut self, src: &mut dyn Any) -> Step {
        let input = take_from::<T>(src);
        let Some(f) = self.f.take() else {
            self.output = Some(Err(Failure::new(ResultTakenError {})));
            return Step::Done;
        };
        match catch_unwind(AssertUnwindSafe(move || f(input))) {
            Ok(Outcome::Ready(r)) => {
                self.output = Some(r);
                Step::Done
            }
            Ok(Outcome::Chain(d)) => match d.into_core() {
                Some(core) => Step::Wait(core),
                None => {
                    self.output = Some(Err(Failure::new(ResultTakenError {})));
                    Step::Done
                }
            },
            Err(payload) => {
                self.output = Some(Err(Failure::from_panic(payload)));
                Step::Done
            }
        }
    }

    output_slot!();
}

/// Twisted's `_CONTINUE` marker: appended to an inner Deferred that an outer
/// one waits on. It carries the outer's waiting link (`holder`), which
/// receives the inner's result and goes back to the outer.
struct ContinueLink {
    holder: Option<LinkBox>,
    outer: Option<Arc<dyn Core>>,
}

impl Link for ContinueLink {
    fn run(&mut self, src: &mut dyn Any) -> Step {
        if let Some(holder) = &mut self.holder {
            holder.refill(src);
        }
        match (self.outer.take(), self.holder.take()) {
            (Some(outer), Some(holder)) => Step::Resume { outer, holder },
            _ => Step::Done,
        }
    }

    fn refill(&mut self, _src: &mut dyn Any) {}

    /// Never holds a result: the slot handed out is of no result type, so a
    /// link pulling from it sees the result as taken.
    fn output(&mut self) -> &mut dyn Any {
        &mut self.outer
    }

    fn output_state(&self) -> ResultState {
        ResultState::Empty
    }

    fn take_failure(&mut self) -> Option<Failure> {
        None
    }

    fn fail_output(&mut self, _failure: Failure) {}
}

/// The waiting link of an outer Deferred made directly in the waiting state
/// ([`Inner::waiting_on`]): queued in the inner Deferred's chain, it takes the
/// inner's result into its own slot and goes back to the outer as the
/// outer's result holder. One allocation where a callback link plus a
/// [`ContinueLink`] take two.
struct ContinueSlot<U> {
    outer: Option<Arc<dyn Core>>,
    output: Option<Res<U>>,
}

impl<U: Send + 'static> Link for ContinueSlot<U> {
    fn run(&mut self, src: &mut dyn Any) -> Step {
        match self.continue_outer(src) {
            Some(outer) => Step::ResumeSelf(outer),
            None => Step::Done,
        }
    }

    fn unlink(&mut self) {
        self.outer = None;
    }

    fn continues(&self) -> bool {
        self.outer.is_some()
    }

    fn continue_outer(&mut self, src: &mut dyn Any) -> Option<Arc<dyn Core>> {
        self.output = Some(take_from::<U>(src));
        self.outer.take()
    }

    output_slot!();
}

/// `chain_deferred`: feeds this chain's result into another Deferred.
pub(crate) struct ChainLink<T: Send + 'static> {
    target: Option<Resolver<T>>,
    output: Option<Res<()>>,
    at: &'static Location<'static>,
}

impl<T: Send + 'static> ChainLink<T> {
    pub(crate) fn new(target: Resolver<T>, at: &'static Location<'static>) -> Self {
        ChainLink {
            target: Some(target),
            output: None,
            at,
        }
    }
}

impl<T: Send + 'static> Link for ChainLink<T> {
    fn run(&mut self, src: &mut dyn Any) -> Step {
        let input = take_from::<T>(src);
        let Some(target) = self.target.take() else {
            self.output = Some(Err(Failure::new(ResultTakenError {})));
            return Step::Done;
        };
        match target.inner.try_fire(input, |r| r, self.at, true) {
            Ok(run) => {
                self.output = Some(Ok(()));
                if run {
                    Step::Fed(target.inner.clone())
                } else {
                    Step::Done
                }
            }
            Err(e) => {
                self.output = Some(Err(Failure::new(e.without_value())));
                Step::Done
            }
        }
    }

    output_slot!();
}

/// What a Deferred's current result is, for `Debug` and inspection.
#[derive(Debug, Clone)]
pub(crate) enum ResultState {
    Empty,
    Ok,
    Err(Failure),
}

/// A point-in-time view of a Deferred's state.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) called: bool,
    pub(crate) running: bool,
    pub(crate) paused: u32,
    pub(crate) waiting: bool,
    pub(crate) callbacks: usize,
    pub(crate) result: ResultState,
    pub(crate) taken: bool,
}

/// Why [`Core::run_links`] stopped.
pub(crate) enum Stop {
    /// The token was released (finished, paused or waiting).
    Released,
    /// The token was released; go on with this Deferred. `None`: we hold
    /// its token. `Some(holder)`: it waited on the Deferred just run, whose
    /// result is in `holder`; its `run_links` takes the holder, its token
    /// and its links in one lock section.
    Switch(Arc<dyn Core>, Option<LinkBox>),
    /// Keep the first Deferred's token; run the second one first (as for
    /// `Switch`), then come back to the first.
    Nested(Arc<dyn Core>, Arc<dyn Core>, Option<LinkBox>),
}

/// A canceller that is asked every time `cancel()` is called on an unfired
/// Deferred (the coroutine bridge: it forwards to the awaited Deferred).
pub(crate) trait CooperativeCancel: Send + Sync {
    /// Returns `true` when the cancellation was forwarded and the Deferred
    /// must not fail now, `false` to fail it with `CancelledError`.
    fn cancel(&self) -> bool;
}

/// How a canceller is handed to [`Inner::new`].
pub(crate) enum Canceller<T: Send + 'static> {
    None,
    /// Twisted's canceller: runs at most once, with a Resolver.
    Once(Box<dyn CancelFn<T>>),
    /// Asked on every `cancel()` until the Deferred fires.
    Cooperative(Arc<dyn CooperativeCancel>),
}

/// A canceller as stored in the state: one thin-enough box, whatever kind
/// it is (16 bytes in [`Rest::Unfired`]).
pub(crate) trait CancelFn<T: Send + 'static>: Send {
    /// Runs the canceller. `keep` receives a Resolver the caller keeps alive
    /// until the default `CancelledError` is applied. `Some(self)`: the
    /// cancellation was forwarded; ask again on the next `cancel()`.
    fn cancel(
        self: Box<Self>,
        inner: &Arc<Inner<T>>,
        keep: &mut Option<Resolver<T>>,
    ) -> Option<Box<dyn CancelFn<T>>>;
}

impl<T, F> CancelFn<T> for F
where
    T: Send + 'static,
    F: FnOnce(&Resolver<T>) + Send,
{
    fn cancel(
        self: Box<Self>,
        inner: &Arc<Inner<T>>,
        keep: &mut Option<Resolver<T>>,
    ) -> Option<Box<dyn CancelFn<T>>> {
        let resolver = keep.insert(Resolver::from_inner(inner.clone()));
        (*self)(resolver);
        None
    }
}

struct Cooperative(Arc<dyn CooperativeCancel>);

impl<T: Send + 'static> CancelFn<T> for Cooperative {
    fn cancel(
        self: Box<Self>,
        inner: &Arc<Inner<T>>,
        keep: &mut Option<Resolver<T>>,
    ) -> Option<Box<dyn CancelFn<T>>> {
        // As for a Twisted canceller: the abort may drop the task, and the
        // Resolver it holds, on a worker before the default CancelledError
        // is applied here.
        keep.get_or_insert_with(|| Resolver::from_inner(inner.clone()));
        if self.0.cancel() { Some(self) } else { None }
    }
}

/// The object-safe face of a Deferred's shared state.
pub(crate) trait Core: Send + Sync + 'static {
    /// Appends a link; `true` when the caller took the runner token and must
    /// call [`run_chain`].
    fn add_link(&self, link: LinkBox) -> bool;
    /// `add_link` for a chain that adopts this Deferred (its handle was
    /// taken, so nobody else will consume its result): also marks it
    /// consumer-less, and reports now a failure at rest that can never reach
    /// the link (the Deferred is paused and nobody can unpause it any more),
    /// as dropping the handle would. One lock section for both.
    fn adopt_link(&self, link: LinkBox) -> bool;
    /// Runs links while it can. The caller holds the runner token.
    /// `check_pause`: stop at once if paused (Twisted checks when it starts
    /// or switches to a Deferred, not when a nested call returns to it).
    ///
    /// With `resumed`, a Deferred this one waited on delivered into that
    /// holder and the caller does not hold the token: the holder becomes
    /// the result, and the run goes on from the same lock section if it can
    /// take the token; if another run holds it or this Deferred is paused,
    /// the holder is left at rest (one lock per level of a nested chain).
    fn run_links(self: Arc<Self>, check_pause: bool, resumed: Option<LinkBox>) -> Stop;
    /// If this Deferred has a final result, moves it into `link`'s output and
    /// gives the link back; otherwise appends a continuation that will hand
    /// the link back to `outer` and returns `None`.
    fn steal_or_chain(&self, link: LinkBox, outer: Arc<dyn Core>) -> Option<LinkBox>;
    /// `steal_or_chain` for a link that is its own continuation (a
    /// [`ContinueSlot`]): if this Deferred has a final result, moves it into
    /// `cont`'s output and gives it back; otherwise queues `cont` itself.
    fn continue_with(&self, cont: LinkBox) -> Option<LinkBox>;
    /// One step of cancellation; returns the chained Deferred to forward the
    /// cancellation to, if any.
    fn cancel_one(self: Arc<Self>) -> Option<Arc<dyn Core>>;
    fn pause(&self);
    /// `true` when the caller took the runner token.
    fn unpause(&self) -> bool;
    /// Takes the final result through `sink` if there is one, else
    /// registers `waker`.
    fn poll_take(&self, waker: Option<&Waker>, sink: &mut dyn FnMut(&mut dyn Any)) -> Poll<()>;
    /// The handle (the consumer of the result) went away.
    fn release_consumer(&self);
    fn snapshot(&self) -> Snapshot;
    /// For the typed fast paths: a `Deferred<T>` whose state is an
    /// `Inner<T>` takes its result without the erased sink.
    fn as_any(&self) -> &dyn Any;
}

/// Runs chains from `start`, whose runner token the caller holds, until
/// every Deferred reached is finished, paused or waiting. Iterative: an
/// explicit stack replaces Twisted's recursion through nested Deferreds.
pub(crate) fn run_chain(start: Arc<dyn Core>) {
    drive(start.run_links(true, None));
}

/// `run_chain` after its first Deferred's run stopped with `stop`.
fn drive(mut stop: Stop) {
    let mut stack: Vec<Arc<dyn Core>> = Vec::new();
    loop {
        stop = match stop {
            // A Deferred we come back to after a nested one (chain_deferred's
            // target) goes on without a pause check, as Twisted's nested
            // `d.callback()` returns into a loop that does not re-check
            // `paused`.
            Stop::Released => match stack.pop() {
                Some(next) => next.run_links(false, None),
                None => return,
            },
            Stop::Switch(next, resumed) => next.run_links(true, resumed),
            Stop::Nested(me, next, resumed) => {
                stack.push(me);
                next.run_links(true, resumed)
            }
        };
    }
}

/// Cancels a Deferred, forwarding iteratively down chained Deferreds.
pub(crate) fn cancel_core(mut core: Arc<dyn Core>) {
    // Brent's cycle detection: Deferreds waiting on each other (a callback
    // returned a Deferred that waits, in the end, on the first) would make
    // the walk endless; it stops instead, in time linear in the walk.
    let addr = |c: &Arc<dyn Core>| Arc::as_ptr(c).cast::<()>();
    let (mut mark, mut power, mut steps) = (addr(&core), 1usize, 0usize);
    while let Some(next) = core.cancel_one() {
        core = next;
        if addr(&core) == mark {
            return;
        }
        steps += 1;
        if steps == power {
            (mark, power, steps) = (addr(&core), power * 2, 0);
        }
    }
}

/// Reverses a stack of links threaded through their `next` pointers:
/// the inbox (newest first) becomes a run list (oldest first).
#[inline]
fn reverse(mut stack: Option<LinkBox>) -> Option<LinkBox> {
    let mut out = None;
    while let Some(mut link) = stack {
        stack = link.next.take();
        link.next = out;
        out = Some(link);
    }
    out
}

/// Counts the links of a list threaded through `next` (for `Debug`).
fn count(mut list: Option<&LinkBox>) -> usize {
    let mut n = 0;
    while let Some(link) = list {
        n += 1;
        list = link.next.as_ref();
    }
    n
}

impl<L: ?Sized> Drop for Node<L> {
    /// Unlinks the rest of the list one by one: the default recursive drop
    /// of a long list would overflow the stack.
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(mut link) = next {
            next = link.next.take();
        }
    }
}

/// Where a Deferred's result is.
enum Rest<T: Send + 'static> {
    /// Not fired yet; the canceller, if any.
    Unfired(Option<Box<dyn CancelFn<T>>>),
    /// The result the Deferred was fired with, before any link ran.
    Source(Res<T>),
    /// The result is in this link's output slot. The link's `next` holds the
    /// links still to run before those of the inbox (the *outbox*): the
    /// runner takes every queued link at once and puts back what it did not
    /// run here, so the state needs no second list head.
    Holder(LinkBox),
    /// A callback returned this Deferred and the chain waits on it; the
    /// result and the outbox travel with the continuation queued in it.
    Waiting(Weak<dyn Core>),
    /// The result was taken (awaited, handed over, or being run).
    Taken,
}

/// The part of a Deferred's state guarded by its mutex: 64 bytes for a
/// `u64` Deferred (the flags live beside the mutex; see [`Inner`]).
struct State<T: Send + 'static> {
    /// Links added and not yet taken by a runner, newest first.
    inbox: Option<LinkBox>,
    rest: Rest<T>,
    waker: Option<Waker>,
    created: &'static Location<'static>,
}

impl<T: Send + 'static> State<T> {
    /// Queues a link (the inbox is newest first).
    #[inline]
    fn push(&mut self, mut link: LinkBox) {
        link.next = self.inbox.take();
        self.inbox = Some(link);
    }

    #[inline]
    fn outbox_empty(&self) -> bool {
        match &self.rest {
            Rest::Holder(h) => h.next.is_none(),
            _ => true,
        }
    }

    #[inline]
    fn links_empty(&self) -> bool {
        self.inbox.is_none() && self.outbox_empty()
    }

    #[inline]
    fn waiting(&self) -> bool {
        matches!(self.rest, Rest::Waiting(_))
    }

    /// Stores the waker of a task waiting for the result.
    #[inline]
    fn register(&mut self, waker: Option<&Waker>) {
        if let Some(waker) = waker {
            match &self.waker {
                Some(old) if old.will_wake(waker) => {}
                _ => self.waker = Some(waker.clone()),
            }
        }
    }

    /// Feeds the current result to `sink`; returns the emptied holder so it
    /// can be dropped after the lock is released. The outbox must be empty.
    #[inline]
    fn take_rest_into(&mut self, sink: &mut dyn FnMut(&mut dyn Any)) -> Option<LinkBox> {
        match mem::replace(&mut self.rest, Rest::Taken) {
            Rest::Source(r) => {
                let mut slot = Some(r);
                sink(&mut slot);
                if let Some(r) = slot {
                    // Not taken (a slot of another type): left at rest.
                    self.rest = Rest::Source(r);
                }
                None
            }
            Rest::Holder(mut holder) => {
                sink(holder.output());
                Some(holder)
            }
            other => {
                self.rest = other;
                sink(&mut ());
                None
            }
        }
    }

    fn result_state(&self) -> ResultState {
        match &self.rest {
            Rest::Source(Ok(_)) => ResultState::Ok,
            Rest::Source(Err(f)) => ResultState::Err(f.clone()),
            Rest::Holder(h) => h.output_state(),
            _ => ResultState::Empty,
        }
    }

    fn result_is_err(&self) -> bool {
        match &self.rest {
            Rest::Source(r) => r.is_err(),
            Rest::Holder(h) => h.output_is_err(),
            _ => false,
        }
    }

    fn take_failure(&mut self) -> Option<Failure> {
        match &mut self.rest {
            Rest::Source(Err(_)) => match mem::replace(&mut self.rest, Rest::Taken) {
                Rest::Source(Err(f)) => Some(f),
                _ => None,
            },
            Rest::Holder(h) => h.take_failure(),
            _ => None,
        }
    }
}

/// What to do once the lock is released after finishing a run.
struct Finish {
    waker: Option<Waker>,
    unhandled: Option<Box<Unhandled>>,
}

impl Finish {
    #[inline]
    fn run(self) {
        if let Some(waker) = self.waker {
            waker.wake();
        }
        if let Some(unhandled) = self.unhandled {
            unhandled.report();
        }
    }
}

/// A failure nobody will consume, with what its report says: collected
/// under the state's lock, reported after it is released.
struct Unhandled {
    failure: Failure,
    describe: Arc<str>,
    created: &'static Location<'static>,
    /// The debug side table's key, for the first-fire site.
    key: Option<usize>,
}

impl Unhandled {
    fn report(self) {
        let fired = debug::fired_site(self.key);
        report_unhandled(&self.failure, self.created, fired, &self.describe);
    }
}

// Bits of `Inner::flags`.
/// Fired (Twisted's `called`). Also read without the lock.
const CALLED: u8 = 1 << 0;
/// Someone holds the runner token.
const RUNNING: u8 = 1 << 1;
/// Swallow one late fire (after a canceller-less `cancel()`).
const SUPPRESS: u8 = 1 << 2;
/// The handle (the consumer of the result) went away.
const NO_CONSUMER: u8 = 1 << 3;
/// Twisted's armed `DebugInfo.failResult`: the result is a failure that was
/// at rest at the end of a completed (unpaused) run. When the state goes
/// away without its handle having reported (the handle moved into a
/// chain), only an armed failure is reported, as in Twisted.
const ARMED: u8 = 1 << 4;
/// A `cancel()` took the canceller and is running it.
const CANCELLING: u8 = 1 << 5;
/// Created with debugging on: has a record in the debug side table.
const TRACED: u8 = 1 << 6;

/// A Deferred's shared state, typed by the type it was created with.
///
/// Layout (a `u64` Deferred with no canceller: 96 bytes with the `Arc`
/// counts, one allocation): the mutex and its [`State`], then the
/// resolver count, the flag bits and the pause count. The flags and the
/// pause count are atomics only so that they can sit outside the mutex
/// (in the word beside the resolver count); they are written only under
/// the lock, with plain loads and stores, except `CALLED`, which dropping
/// a Resolver reads without it.
pub(crate) struct Inner<T: Send + 'static> {
    state: Mutex<State<T>>,
    resolvers: AtomicU32,
    flags: AtomicU8,
    paused: AtomicU16,
}

impl<T: Send + 'static> Inner<T> {
    #[inline]
    fn build(
        rest: Rest<T>,
        flags: u8,
        resolvers: u32,
        created: &'static Location<'static>,
        traced: bool,
    ) -> Arc<Self> {
        // Built in its allocation, with no locked instruction (`Arc::new`
        // stalls on copying the value, `new_cyclic` on its strong-count
        // increment; `src/arc_init.rs`).
        let inner = arc_in_place(move || Inner {
            state: Mutex::new(State {
                inbox: None,
                rest,
                waker: None,
                created,
            }),
            resolvers: AtomicU32::new(resolvers),
            flags: AtomicU8::new(if traced { flags | TRACED } else { flags }),
            paused: AtomicU16::new(0),
        });
        if traced {
            let key = inner.key();
            debug::trace_created(key);
            if flags & CALLED != 0 {
                debug::trace_fired(key, created);
            }
        }
        inner
    }

    #[inline]
    pub(crate) fn new(canceller: Canceller<T>, created: &'static Location<'static>) -> Arc<Self> {
        let canceller: Option<Box<dyn CancelFn<T>>> = match canceller {
            Canceller::None => None,
            Canceller::Once(f) => Some(f),
            Canceller::Cooperative(c) => Some(Box::new(Cooperative(c))),
        };
        Self::build(
            Rest::Unfired(canceller),
            0,
            1,
            created,
            debug::is_debugging(),
        )
    }

    /// A Deferred that already has `result` (Twisted's `succeed`/`fail`).
    pub(crate) fn new_fired(result: Res<T>, created: &'static Location<'static>) -> Arc<Self> {
        let flags = if result.is_err() {
            CALLED | ARMED
        } else {
            CALLED
        };
        Self::build(
            Rest::Source(result),
            flags,
            0,
            created,
            debug::is_debugging(),
        )
    }

    /// `new_fired` for an inline ready Deferred created while debugging was
    /// off, moving to a shared state later: no debug record, whatever
    /// `is_debugging` says now (as the shared state would have been).
    pub(crate) fn new_fired_untraced(
        result: Res<T>,
        created: &'static Location<'static>,
    ) -> Arc<Self> {
        let flags = if result.is_err() {
            CALLED | ARMED
        } else {
            CALLED
        };
        Self::build(Rest::Source(result), flags, 0, created, false)
    }

    /// An already-fired Deferred waiting on `inner` (what a callback
    /// returning `inner` leaves behind), made directly in that state: used
    /// when the callback of an inline ready Deferred returns an unfinished
    /// Deferred. Two allocations (this state and one [`ContinueSlot`])
    /// where a fired state plus a stand-in callback link plus a
    /// `ContinueLink` took three. Untraced, as the inline Deferred was.
    pub(crate) fn waiting_on(
        inner: Arc<dyn Core>,
        created: &'static Location<'static>,
    ) -> Arc<dyn Core> {
        let outer = Self::build(
            Rest::Waiting(Arc::downgrade(&inner)),
            CALLED,
            0,
            created,
            false,
        );
        // Two references to the outer state: the slot's and the returned
        // one (moved, not cloned: one atomic increment in all).
        let slot = Node::boxed(ContinueSlot::<T> {
            outer: Some(outer.clone()),
            output: None,
        });
        if let Some(mut slot) = inner.continue_with(slot) {
            // `inner` had its final result (it is in the slot now): no
            // waiting after all; drop the slot's reference to the outer
            // (it would be a cycle) and end as a finished run would.
            slot.unlink();
            let mut st = outer.lock();
            let armed = if slot.output_is_err() { ARMED } else { 0 };
            st.rest = Rest::Holder(slot);
            outer.flags.store(CALLED | armed, Ordering::Release);
        }
        outer
    }

    /// The key of this state in the debug side table.
    fn key(&self) -> usize {
        std::ptr::from_ref(self).addr()
    }

    fn traced_key(&self) -> Option<usize> {
        (self.flags() & TRACED != 0).then(|| self.key())
    }

    #[inline]
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // The crate's lock is never poisoned (`spin.rs`); loom's mutex,
        // swapped in for the model checks, could be: recover, never panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[inline]
    fn flags(&self) -> u8 {
        self.flags.load(Ordering::Relaxed)
    }

    /// Sets flag bits. Only under the lock (a plain load and store).
    #[inline]
    fn set(&self, bits: u8) {
        self.flags.store(self.flags() | bits, Ordering::Release);
    }

    /// Clears flag bits. Only under the lock.
    #[inline]
    fn clear(&self, bits: u8) {
        self.flags.store(self.flags() & !bits, Ordering::Release);
    }

    #[inline]
    fn paused(&self) -> u16 {
        self.paused.load(Ordering::Relaxed)
    }

    /// Fired, not running, not paused, not waiting, nothing queued. Under the lock.
    #[inline]
    fn finished(&self, st: &State<T>) -> bool {
        self.flags() & (CALLED | RUNNING) == CALLED
            && self.paused() == 0
            && !st.waiting()
            && st.links_empty()
    }

    /// Fired, not running, not paused, not waiting. Under the lock.
    #[inline]
    fn can_run(&self, st: &State<T>) -> bool {
        self.flags() & (CALLED | RUNNING) == CALLED && self.paused() == 0 && !st.waiting()
    }

    /// Takes the runner token if the chain can run now. Under the lock.
    #[inline]
    fn claim(&self, st: &State<T>) -> bool {
        let run = self.can_run(st);
        if run {
            self.set(RUNNING);
        }
        run
    }

    /// If this Deferred has its final result, moves it into `link`'s output
    /// and gives the link back; otherwise queues `continuation(link)`.
    fn steal_or_queue(
        &self,
        mut link: LinkBox,
        continuation: impl FnOnce(LinkBox) -> LinkBox,
    ) -> Option<LinkBox> {
        let mut st = self.lock();
        if self.finished(&st) {
            self.clear(ARMED);
            let emptied = st.take_rest_into(&mut |src| link.refill(src));
            drop(st);
            drop(emptied);
            return Some(link);
        }
        st.push(continuation(link));
        None
    }

    pub(crate) fn created_at(&self) -> &'static Location<'static> {
        self.lock().created
    }

    #[inline]
    pub(crate) fn is_called(&self) -> bool {
        self.flags.load(Ordering::Acquire) & CALLED != 0
    }

    fn describe(&self, st: &State<T>) -> Arc<str> {
        debug::describe(st.created, self.traced_key())
    }

    /// The report of `failure`, which nobody will consume. Under the lock.
    fn unhandled(&self, st: &State<T>, failure: Failure) -> Unhandled {
        Unhandled {
            failure,
            describe: self.describe(st),
            created: st.created,
            key: self.traced_key(),
        }
    }

    /// Fires the Deferred. `Ok(true)`: the caller took the runner token and
    /// must call [`run_chain`]. With `honour_suppress`, a fire after a
    /// canceller-less `cancel()` is swallowed once, as in Twisted.
    pub(crate) fn try_fire<V>(
        &self,
        value: V,
        convert: impl FnOnce(V) -> Res<T>,
        at: &'static Location<'static>,
        honour_suppress: bool,
    ) -> Result<bool, AlreadyCalledError<V>> {
        self.try_fire_locked(self.lock(), value, convert, at, honour_suppress)
    }

    /// `try_fire` with the lock already held (released on return).
    fn try_fire_locked<V>(
        &self,
        st: MutexGuard<'_, State<T>>,
        value: V,
        convert: impl FnOnce(V) -> Res<T>,
        at: &'static Location<'static>,
        honour_suppress: bool,
    ) -> Result<bool, AlreadyCalledError<V>> {
        let flags = self.flags();
        if flags & CALLED != 0 {
            if honour_suppress && flags & SUPPRESS != 0 {
                self.clear(SUPPRESS);
                return Ok(false);
            }
            let info = self.describe(&st);
            return Err(AlreadyCalledError::new(value, info));
        }
        Ok(self.fire_locked(st, convert(value), at))
    }

    /// Fires an unfired Deferred whose lock the caller holds; releases it.
    /// `true`: the caller took the runner token and must call [`run_chain`].
    fn fire_locked(
        &self,
        mut st: MutexGuard<'_, State<T>>,
        value: Res<T>,
        at: &'static Location<'static>,
    ) -> bool {
        let flags = self.flags();
        if flags & TRACED != 0 {
            debug::trace_fired(self.key(), at);
        }
        // The old rest holds the canceller: dropped after the unlock.
        let old = mem::replace(&mut st.rest, Rest::Source(value));
        let run = if self.paused() > 0 {
            self.flags.store(flags | CALLED, Ordering::Release);
            false
        } else if st.links_empty() {
            self.flags.store(flags | CALLED, Ordering::Release);
            let finish = self.finish(&mut st);
            drop(st);
            finish.run();
            drop(old);
            return false;
        } else {
            self.flags
                .store(flags | CALLED | RUNNING, Ordering::Release);
            true
        };
        drop(st);
        drop(old);
        run
    }

    /// Fires and runs the chain.
    #[inline]
    pub(crate) fn fire<V>(
        self: &Arc<Self>,
        value: V,
        convert: impl FnOnce(V) -> Res<T>,
        at: &'static Location<'static>,
    ) -> Result<(), AlreadyCalledError<V>> {
        // Fast path: store the result, wake the awaiting task.
        let st = self.lock();
        let flags = self.flags();
        if self.idle(&st, flags) {
            self.fire_idle(st, flags, convert(value));
            return Ok(());
        }
        self.fire_slow(st, value, convert, at)
    }

    /// Fires the Deferred only if that runs nothing but the wake of the
    /// awaiting task (see [`Inner::idle`]); gives the result back
    /// otherwise. `defer_to_thread`'s worker fires with it, so that
    /// callbacks never run on the blocking thread.
    pub(crate) fn fire_if_idle(&self, result: Res<T>) -> Result<(), Res<T>> {
        let st = self.lock();
        let flags = self.flags();
        if self.idle(&st, flags) {
            self.fire_idle(st, flags, result);
            Ok(())
        } else {
            Err(result)
        }
    }

    /// Whether a fire now would only store the result and wake the awaiting
    /// task: unfired, no canceller, nothing queued, not paused, not traced,
    /// a consumer (so no unhandled-failure report either). Under the lock.
    #[inline]
    fn idle(&self, st: &State<T>, flags: u8) -> bool {
        flags & (CALLED | TRACED | NO_CONSUMER) == 0
            && st.inbox.is_none()
            && self.paused() == 0
            && matches!(st.rest, Rest::Unfired(None))
    }

    /// The fire of an [`idle`](Inner::idle) Deferred: stores the result,
    /// releases the lock, wakes the awaiting task.
    #[inline]
    fn fire_idle(&self, mut st: MutexGuard<'_, State<T>>, flags: u8, result: Res<T>) {
        let bits = if result.is_err() {
            CALLED | ARMED
        } else {
            CALLED
        };
        // The old rest is `Unfired(None)`, which owns nothing: forgetting
        // it skips the enum's drop glue (a call on this hot path).
        mem::forget(mem::replace(&mut st.rest, Rest::Source(result)));
        self.flags.store(flags | bits, Ordering::Release);
        let waker = st.waker.take();
        drop(st);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The rest of `fire`, with the lock it took (not taken twice).
    #[inline(never)]
    fn fire_slow<V>(
        self: &Arc<Self>,
        st: MutexGuard<'_, State<T>>,
        value: V,
        convert: impl FnOnce(V) -> Res<T>,
        at: &'static Location<'static>,
    ) -> Result<(), AlreadyCalledError<V>> {
        if self.try_fire_locked(st, value, convert, at, true)? {
            self.run_chain_here();
        }
        Ok(())
    }

    /// Fails the Deferred if it has not fired, ignoring it otherwise.
    fn fail_if_unfired(self: &Arc<Self>, failure: Failure, at: &'static Location<'static>) {
        if let Ok(true) = self.try_fire(failure, Err, at, false) {
            self.run_chain_here();
        }
    }

    /// `Core::poll_take` for a handle of the state's own type `T` (the result
    /// at rest is then a `T`): no erased sink, no downcast of the source.
    #[inline]
    pub(crate) fn poll_typed(&self, waker: Option<&Waker>) -> Poll<Res<T>> {
        let mut st = self.lock();
        if self.finished(&st) {
            self.clear(ARMED);
            return match mem::replace(&mut st.rest, Rest::Taken) {
                Rest::Source(r) => Poll::Ready(r),
                Rest::Holder(mut holder) => {
                    drop(st);
                    Poll::Ready(take_from::<T>(holder.output()))
                }
                other => {
                    st.rest = other;
                    Poll::Ready(Err(Failure::new(ResultTakenError {})))
                }
            };
        }
        st.register(waker);
        Poll::Pending
    }

    /// Counts one more Resolver.
    pub(crate) fn add_resolver(&self) {
        self.resolvers.fetch_add(1, Ordering::Relaxed);
    }

    /// One Resolver went away. Once fired, the count no longer matters, so
    /// it is not even decremented (no atomic read-modify-write).
    #[inline]
    pub(crate) fn drop_resolver(self: &Arc<Self>) {
        if !self.is_called() && self.resolvers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.resolvers_gone();
        }
    }

    /// Every Resolver was dropped.
    #[cold]
    fn resolvers_gone(self: &Arc<Self>) {
        let created = {
            let st = self.lock();
            if self.flags() & CALLED != 0 {
                return;
            }
            st.created
        };
        let failure = Failure::new(crate::error::ResolverDroppedError {
            created: created.to_string(),
        });
        self.fail_if_unfired(failure, created);
    }

    /// Ends a run: releases the token and collects what to do outside the lock.
    fn finish(&self, st: &mut State<T>) -> Finish {
        let mut flags = self.flags() & !(RUNNING | ARMED);
        if st.result_is_err() {
            flags |= ARMED;
        }
        let links_empty = st.links_empty();
        let waker = if links_empty { st.waker.take() } else { None };
        let unhandled = if flags & NO_CONSUMER != 0 {
            st.take_failure().map(|f| {
                flags &= !ARMED;
                Box::new(self.unhandled(st, f))
            })
        } else {
            None
        };
        self.flags.store(flags, Ordering::Release);
        Finish { waker, unhandled }
    }

    /// `run_chain` from this state, whose runner token the caller took,
    /// borrowing the caller's `Arc`.
    pub(crate) fn run_chain_here(self: &Arc<Self>) {
        drive(self.run_links_from(true, None));
    }

    /// `Core::run_links` on a borrowed handle: a caller that holds the
    /// state typed (a fire, a cancel) runs it without an `Arc` clone and
    /// release of its own (two locked instructions per fire).
    fn run_links_from(
        self: &Arc<Self>,
        mut check_pause: bool,
        mut resumed: Option<LinkBox>,
    ) -> Stop {
        'state: loop {
            // Take the current result and every queued link in one lock
            // section; the links then run without the lock (Twisted checks
            // `paused` when it starts or switches to a Deferred, not between
            // its callbacks: a callback that pauses its own Deferred does
            // not stop the callbacks already queued behind it).
            let mut st = self.lock();
            // `held`: the link whose output slot holds the current result;
            // `source`: the fired value before any link ran.
            let mut held: Option<LinkBox> = None;
            let mut source: Option<Res<T>> = None;
            let mut outbox: Option<LinkBox> = None;
            if let Some(mut h) = resumed.take() {
                // `resume` and the start of a run in one lock section.
                if self.flags() & RUNNING != 0 || (check_pause && self.paused() > 0) {
                    st.rest = Rest::Holder(h);
                    return Stop::Released;
                }
                self.set(RUNNING);
                // What was at rest (the wait's `Waiting`) is replaced.
                st.rest = Rest::Taken;
                outbox = h.next.take();
                held = Some(h);
            } else {
                if check_pause && self.paused() > 0 {
                    self.clear(RUNNING);
                    return Stop::Released;
                }
                match mem::replace(&mut st.rest, Rest::Taken) {
                    Rest::Holder(mut h) => {
                        outbox = h.next.take();
                        held = Some(h);
                    }
                    Rest::Source(r) => source = Some(r),
                    Rest::Taken => {}
                    other @ (Rest::Unfired(_) | Rest::Waiting(_)) => {
                        // Not runnable (cannot happen with the token's rules).
                        st.rest = other;
                        self.clear(RUNNING);
                        return Stop::Released;
                    }
                }
            }
            self.clear(ARMED);
            if outbox.is_none() {
                outbox = reverse(st.inbox.take());
            }
            // The only link is a continuation (a level of a nested chain):
            // run it and end this run in this lock section, then hand the
            // result to the outer Deferred (one lock section less than
            // running it as any link and handing over after).
            match outbox.take() {
                Some(mut link) if link.next.is_none() && link.continues() => {
                    let outer = match &mut held {
                        Some(h) => link.continue_outer(h.output()),
                        None => link.continue_outer(&mut source),
                    };
                    if let Some(outer) = outer {
                        // Nothing at rest (`Taken`), no links left; the
                        // outer Deferred resumes with the link as its
                        // result holder.
                        let finish = self.finish(&mut st);
                        drop(st);
                        drop(held);
                        finish.run();
                        return Stop::Switch(outer, Some(link));
                    }
                    // Not reachable (`continues` means it resumes its
                    // outer); go on as after any finished link.
                    held = Some(link);
                }
                other => outbox = other,
            }
            drop(st);

            loop {
                let mut link = match outbox.take() {
                    Some(mut link) => {
                        outbox = link.next.take();
                        link
                    }
                    None => {
                        let mut st = self.lock();
                        match st.inbox.take() {
                            Some(inbox) => {
                                drop(st);
                                outbox = reverse(Some(inbox));
                                continue;
                            }
                            None => {
                                self.release(st, held, source);
                                return Stop::Released;
                            }
                        }
                    }
                };
                // The link moves its input out of the previous link's slot
                // (or the fired value) and runs; the previous link, now
                // empty, is freed after.
                let step = match held.take() {
                    Some(mut h) => link.run(h.output()),
                    None => link.run(&mut source),
                };
                match step {
                    Step::Done => held = Some(link),
                    Step::Wait(inner) => {
                        if std::ptr::addr_eq(Arc::as_ptr(&inner), Arc::as_ptr(self)) {
                            link.fail_output(Failure::new(crate::error::ChainedToSelfError {}));
                            held = Some(link);
                            continue;
                        }
                        // The links not run yet travel with the result.
                        link.next = outbox.take();
                        self.lock().rest = Rest::Waiting(Arc::downgrade(&inner));
                        let me: Arc<dyn Core> = self.clone();
                        match inner.steal_or_chain(link, me) {
                            Some(mut link) => {
                                self.lock().rest = Rest::Taken;
                                outbox = link.next.take();
                                held = Some(link);
                            }
                            None => {
                                let st = self.lock();
                                if st.waiting() {
                                    self.clear(RUNNING);
                                    return Stop::Released;
                                }
                                // The inner Deferred delivered while we
                                // chained: go on from the state.
                                drop(st);
                                check_pause = true;
                                continue 'state;
                            }
                        }
                    }
                    Step::Resume { outer, holder } => {
                        drop(link);
                        // This Deferred's result now belongs to `outer`,
                        // which resumes next (or, if it cannot run now,
                        // keeps it at rest and this run goes on).
                        return self.hand_over(None, outbox, outer, Some(holder));
                    }
                    Step::Fed(target) => {
                        return self.hand_over(Some(link), outbox, target, None);
                    }
                    Step::ResumeSelf(outer) => {
                        // The link holds this Deferred's result: it becomes
                        // `outer`'s result holder.
                        return self.hand_over(None, outbox, outer, Some(link));
                    }
                }
            }
        }
    }

    /// Stores `held` (and the links not run yet) as the result and either
    /// hands over to `next` (if this Deferred has nothing left to run) or
    /// keeps the token and nests; `resumed` goes to `next` (see `Stop`).
    fn hand_over(
        self: &Arc<Self>,
        held: Option<LinkBox>,
        outbox: Option<LinkBox>,
        next: Arc<dyn Core>,
        resumed: Option<LinkBox>,
    ) -> Stop {
        let held = match (held, outbox) {
            (Some(mut h), outbox) => {
                h.next = outbox;
                Some(h)
            }
            // No result (it went to the Deferred that waited on this one)
            // but links left: an empty holder carries them; they will see
            // the result as taken, as they would have.
            (None, Some(outbox)) => {
                let mut h = Node::boxed(ContinueLink {
                    holder: None,
                    outer: None,
                });
                h.next = Some(outbox);
                Some(h)
            }
            (None, None) => None,
        };
        let mut st = self.lock();
        if let Some(h) = held {
            st.rest = Rest::Holder(h);
        }
        if st.links_empty() {
            let finish = self.finish(&mut st);
            drop(st);
            finish.run();
            Stop::Switch(next, resumed)
        } else {
            drop(st);
            Stop::Nested(self.clone(), next, resumed)
        }
    }

    /// Ends a run with `held` (or the untouched `source`) at rest.
    fn release(
        &self,
        mut st: MutexGuard<'_, State<T>>,
        held: Option<LinkBox>,
        source: Option<Res<T>>,
    ) {
        st.rest = match (held, source) {
            (Some(h), _) => Rest::Holder(h),
            (None, Some(r)) => Rest::Source(r),
            (None, None) => Rest::Taken,
        };
        let finish = self.finish(&mut st);
        drop(st);
        finish.run();
    }
}

impl<T: Send + 'static> Core for Inner<T> {
    fn add_link(&self, link: LinkBox) -> bool {
        let mut st = self.lock();
        st.push(link);
        self.claim(&st)
    }

    fn adopt_link(&self, link: LinkBox) -> bool {
        let mut st = self.lock();
        st.push(link);
        self.set(NO_CONSUMER);
        if self.claim(&st) {
            return true;
        }
        let flags = self.flags();
        if flags & (CALLED | RUNNING) == CALLED && self.paused() > 0 && !st.waiting() {
            if let Some(failure) = st.take_failure() {
                self.clear(ARMED);
                let unhandled = self.unhandled(&st, failure);
                drop(st);
                unhandled.report();
            }
        }
        false
    }

    fn run_links(self: Arc<Self>, check_pause: bool, resumed: Option<LinkBox>) -> Stop {
        self.run_links_from(check_pause, resumed)
    }

    fn steal_or_chain(&self, link: LinkBox, outer: Arc<dyn Core>) -> Option<LinkBox> {
        self.steal_or_queue(link, |link| {
            Node::boxed(ContinueLink {
                holder: Some(link),
                outer: Some(outer),
            })
        })
    }

    fn continue_with(&self, cont: LinkBox) -> Option<LinkBox> {
        self.steal_or_queue(cont, |cont| cont)
    }

    fn cancel_one(self: Arc<Self>) -> Option<Arc<dyn Core>> {
        let mut st = self.lock();
        let flags = self.flags();
        if flags & CALLED != 0 {
            // Fired but waiting on a chained Deferred: forward. Else a no-op.
            return match &st.rest {
                Rest::Waiting(w) => w.upgrade(),
                _ => None,
            };
        }
        let created = st.created;
        let canceller = match &mut st.rest {
            Rest::Unfired(c) => c.take(),
            _ => None,
        };
        let Some(canceller) = canceller else {
            if flags & CANCELLING != 0 {
                // Another cancel() is running the canceller and will apply
                // the outcome (Twisted: the canceller runs at most once).
                return None;
            }
            // Twisted: with no canceller, fail with CancelledError and
            // silently swallow one late callback/errback. Both happen under
            // the lock, so a racing fire either wins outright or is the one
            // swallowed.
            self.set(SUPPRESS);
            if self.fire_locked(st, Err(Failure::new(CancelledError::new())), created) {
                self.run_chain_here();
            }
            return None;
        };
        self.set(CANCELLING);
        drop(st);
        // Kept until the default CancelledError is applied: if the canceller
        // dropped every other Resolver (e.g. by cancelling the timer that
        // held one), dropping this one first would fail the Deferred with
        // ResolverDroppedError instead of CancelledError.
        let mut keep: Option<Resolver<T>> = None;
        match catch_unwind(AssertUnwindSafe(|| canceller.cancel(&self, &mut keep))) {
            Ok(Some(again)) => {
                // Forwarded: ask it again on the next cancel().
                let mut st = self.lock();
                self.clear(CANCELLING);
                if let Rest::Unfired(slot @ None) = &mut st.rest {
                    *slot = Some(again);
                }
                return None;
            }
            Ok(None) => {}
            Err(payload) => self.fail_if_unfired(Failure::from_panic(payload), created),
        }
        self.fail_if_unfired(Failure::new(CancelledError::new()), created);
        drop(keep);
        None
    }

    fn pause(&self) {
        let _st = self.lock();
        self.paused
            .store(self.paused().saturating_add(1), Ordering::Relaxed);
    }

    fn unpause(&self) -> bool {
        let mut st = self.lock();
        self.paused
            .store(self.paused().saturating_sub(1), Ordering::Relaxed);
        if !self.can_run(&st) {
            return false;
        }
        if st.links_empty() {
            let finish = self.finish(&mut st);
            drop(st);
            finish.run();
            return false;
        }
        self.set(RUNNING);
        true
    }

    fn poll_take(&self, waker: Option<&Waker>, sink: &mut dyn FnMut(&mut dyn Any)) -> Poll<()> {
        let mut st = self.lock();
        if self.finished(&st) {
            self.clear(ARMED);
            let emptied = st.take_rest_into(sink);
            drop(st);
            drop(emptied);
            return Poll::Ready(());
        }
        st.register(waker);
        Poll::Pending
    }

    fn release_consumer(&self) {
        let mut st = self.lock();
        self.set(NO_CONSUMER);
        let waker = st.waker.take();
        // Any failure at rest is reported here, even a paused one: with the
        // handle gone nobody can unpause it any more (Rust does better than
        // Twisted, which reports only an armed failure).
        let flags = self.flags();
        if flags & (CALLED | RUNNING) == CALLED && !st.waiting() {
            let unhandled = st.take_failure().map(|failure| {
                self.clear(ARMED);
                self.unhandled(&st, failure)
            });
            drop(st);
            drop(waker);
            if let Some(unhandled) = unhandled {
                unhandled.report();
            }
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn snapshot(&self) -> Snapshot {
        let st = self.lock();
        let flags = self.flags();
        let outbox = match &st.rest {
            Rest::Holder(h) => count(h.next.as_ref()),
            _ => 0,
        };
        let running = flags & RUNNING != 0;
        let called = flags & CALLED != 0;
        Snapshot {
            called,
            running,
            paused: u32::from(self.paused()),
            waiting: st.waiting(),
            callbacks: count(st.inbox.as_ref()) + outbox,
            result: st.result_state(),
            taken: matches!(st.rest, Rest::Taken) && called && !running,
        }
    }
}

impl<T: Send + 'static> Drop for Inner<T> {
    /// A failure still in the state when it goes away was never consumed:
    /// e.g. a paused Deferred returned from a callback, whose handle moved
    /// into the chain (Twisted reports it when the Deferred is collected).
    fn drop(&mut self) {
        if self.flags.load(Ordering::Relaxed) & (ARMED | TRACED) != 0 {
            self.report_and_forget();
        }
    }
}

impl<T: Send + 'static> Inner<T> {
    #[cold]
    fn report_and_forget(&mut self) {
        let flags = self.flags.load(Ordering::Relaxed);
        let key = (flags & TRACED != 0).then(|| self.key());
        if flags & ARMED != 0 {
            let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
            if let Some(failure) = st.take_failure() {
                let describe = debug::describe(st.created, key);
                let created = st.created;
                Unhandled {
                    failure,
                    describe,
                    created,
                    key,
                }
                .report();
            }
        }
        if let Some(key) = key {
            debug::trace_forget(key);
        }
    }
}
