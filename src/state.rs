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
use std::mem;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::{Poll, Waker};

use crate::debug::{DebugInfo, report_unhandled};
use crate::error::{AlreadyCalledError, CancelledError, ResultTakenError};
use crate::loom::{AtomicBool, AtomicUsize, Mutex, MutexGuard};
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
}

/// A boxed link with the `next` pointer of the [`LinkQueue`] it sits in,
/// so queueing a callback allocates nothing beyond the link's own box.
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
    /// Moves this link's input out of `src` (an `Option<Res<In>>`).
    fn pull(&mut self, src: &mut dyn Any);
    /// Moves a result into this link's output slot from `src` (an
    /// `Option<Res<Out>>`): used when a Deferred this link returned delivers.
    fn refill(&mut self, src: &mut dyn Any);
    /// Runs the user code. Called with no lock held.
    fn run(&mut self) -> Step;
    /// The output slot, an `Option<Res<Out>>`.
    fn output(&mut self) -> &mut dyn Any;
    /// What the output slot holds.
    fn output_state(&self) -> ResultState;
    /// Takes the output if it is a failure.
    fn take_failure(&mut self) -> Option<Failure>;
    /// Replaces the output with a failure.
    fn fail_output(&mut self, failure: Failure);
}

/// Moves a typed result out of an erased slot. A slot of the wrong type or
/// an empty one means the result was already taken.
pub(crate) fn take_from<T: 'static>(src: &mut dyn Any) -> Res<T> {
    match src.downcast_mut::<Option<Res<T>>>().and_then(Option::take) {
        Some(r) => r,
        None => Err(Failure::new(ResultTakenError {})),
    }
}

fn slot_state<T>(slot: &Option<Res<T>>) -> ResultState {
    match slot {
        None => ResultState::Empty,
        Some(Ok(_)) => ResultState::Ok,
        Some(Err(f)) => ResultState::Err(f.clone()),
    }
}

fn slot_take_failure<T>(slot: &mut Option<Res<T>>) -> Option<Failure> {
    match slot.take() {
        Some(Err(f)) => Some(f),
        other => {
            *slot = other;
            None
        }
    }
}

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
    input: Option<Res<T>>,
    output: Option<Res<U>>,
}

impl<T, U: Send + 'static, F> CallbackLink<T, U, F> {
    pub(crate) fn new(f: F) -> Self {
        CallbackLink {
            f: Some(f),
            input: None,
            output: None,
        }
    }
}

impl<T, U, F> Link for CallbackLink<T, U, F>
where
    T: Send + 'static,
    U: Send + 'static,
    F: FnOnce(Res<T>) -> Outcome<U> + Send + 'static,
{
    fn pull(&mut self, src: &mut dyn Any) {
        self.input = Some(take_from::<T>(src));
    }

    fn refill(&mut self, src: &mut dyn Any) {
        self.output = Some(take_from::<U>(src));
    }

    fn run(&mut self) -> Step {
        let (Some(f), Some(input)) = (self.f.take(), self.input.take()) else {
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

    fn output(&mut self) -> &mut dyn Any {
        &mut self.output
    }

    fn output_state(&self) -> ResultState {
        slot_state(&self.output)
    }

    fn take_failure(&mut self) -> Option<Failure> {
        slot_take_failure(&mut self.output)
    }

    fn fail_output(&mut self, failure: Failure) {
        self.output = Some(Err(failure));
    }
}

/// Twisted's `_CONTINUE` marker: appended to an inner Deferred that an outer
/// one waits on. It carries the outer's waiting link (`holder`), which
/// receives the inner's result and goes back to the outer.
struct ContinueLink {
    holder: Option<LinkBox>,
    outer: Option<Arc<dyn Core>>,
    empty: Option<Res<()>>,
}

impl Link for ContinueLink {
    fn pull(&mut self, src: &mut dyn Any) {
        if let Some(holder) = &mut self.holder {
            holder.refill(src);
        }
    }

    fn refill(&mut self, _src: &mut dyn Any) {}

    fn run(&mut self) -> Step {
        match (self.outer.take(), self.holder.take()) {
            (Some(outer), Some(holder)) => Step::Resume { outer, holder },
            _ => Step::Done,
        }
    }

    fn output(&mut self) -> &mut dyn Any {
        &mut self.empty
    }

    fn output_state(&self) -> ResultState {
        ResultState::Empty
    }

    fn take_failure(&mut self) -> Option<Failure> {
        None
    }

    fn fail_output(&mut self, _failure: Failure) {}
}

/// `chain_deferred`: feeds this chain's result into another Deferred.
pub(crate) struct ChainLink<T: Send + 'static> {
    target: Option<Resolver<T>>,
    input: Option<Res<T>>,
    output: Option<Res<()>>,
    at: &'static Location<'static>,
}

impl<T: Send + 'static> ChainLink<T> {
    pub(crate) fn new(target: Resolver<T>, at: &'static Location<'static>) -> Self {
        ChainLink {
            target: Some(target),
            input: None,
            output: None,
            at,
        }
    }
}

impl<T: Send + 'static> Link for ChainLink<T> {
    fn pull(&mut self, src: &mut dyn Any) {
        self.input = Some(take_from::<T>(src));
    }

    fn refill(&mut self, src: &mut dyn Any) {
        self.output = Some(take_from::<()>(src));
    }

    fn run(&mut self) -> Step {
        let (Some(target), Some(input)) = (self.target.take(), self.input.take()) else {
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

    fn output(&mut self) -> &mut dyn Any {
        &mut self.output
    }

    fn output_state(&self) -> ResultState {
        slot_state(&self.output)
    }

    fn take_failure(&mut self) -> Option<Failure> {
        slot_take_failure(&mut self.output)
    }

    fn fail_output(&mut self, failure: Failure) {
        self.output = Some(Err(failure));
    }
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
    /// The token was released; go on with this Deferred, whose token we hold.
    Switch(Arc<dyn Core>),
    /// Keep the first Deferred's token; run the second one (whose token we
    /// hold) first, then come back to the first.
    Nested(Arc<dyn Core>, Arc<dyn Core>),
}

/// A canceller that is asked every time `cancel()` is called on an unfired
/// Deferred (the coroutine bridge: it forwards to the awaited Deferred).
pub(crate) trait CooperativeCancel: Send + Sync {
    /// Returns `true` when the cancellation was forwarded and the Deferred
    /// must not fail now, `false` to fail it with `CancelledError`.
    fn cancel(&self) -> bool;
}

pub(crate) enum Canceller<T: Send + 'static> {
    None,
    Once(Box<dyn FnOnce(&Resolver<T>) + Send>),
    Cooperative(Arc<dyn CooperativeCancel>),
    /// A `Once` canceller was taken by a `cancel()` that is running it; a
    /// concurrent `cancel()` leaves the outcome to that one.
    Spent,
}

/// The object-safe face of a Deferred's shared state.
pub(crate) trait Core: Send + Sync + 'static {
    /// Appends a link; `true` when the caller took the runner token and must
    /// call [`run_chain`].
    fn add_link(&self, link: LinkBox) -> bool;
    /// Runs links while it can. The caller holds the runner token.
    /// `check_pause`: stop at once if paused (Twisted checks when it starts
    /// or switches to a Deferred, not when a nested call returns to it).
    fn run_links(self: Arc<Self>, check_pause: bool) -> Stop;
    /// If this Deferred has a final result, moves it into `link`'s output and
    /// gives the link back; otherwise appends a continuation that will hand
    /// the link back to `outer` and returns `None`.
    fn steal_or_chain(&self, link: LinkBox, outer: Arc<dyn Core>) -> Option<LinkBox>;
    /// A Deferred this one was waiting on delivered into `holder`. `true`
    /// when the caller took the runner token.
    fn resume(&self, holder: LinkBox) -> bool;
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
}

/// Runs chains from `start`, whose runner token the caller holds, until
/// every Deferred reached is finished, paused or waiting. Iterative: an
/// explicit stack replaces Twisted's recursion through nested Deferreds.
pub(crate) fn run_chain(start: Arc<dyn Core>) {
    let mut stack: Vec<Arc<dyn Core>> = Vec::new();
    let mut current = start;
    // A Deferred we come back to after a nested one (chain_deferred's
    // target) goes on without a pause check, as Twisted's nested
    // `d.callback()` returns into a loop that does not re-check `paused`.
    let mut check_pause = true;
    loop {
        match current.run_links(check_pause) {
            Stop::Released => match stack.pop() {
                Some(next) => {
                    current = next;
                    check_pause = false;
                }
                None => return,
            },
            Stop::Switch(next) => {
                current = next;
                check_pause = true;
            }
            Stop::Nested(me, next) => {
                stack.push(me);
                current = next;
                check_pause = true;
            }
        }
    }
}

/// Cancels a Deferred, forwarding iteratively down chained Deferreds.
pub(crate) fn cancel_core(mut core: Arc<dyn Core>) {
    while let Some(next) = core.cancel_one() {
        core = next;
    }
}

pub(crate) fn same_core(a: &Arc<dyn Core>, b: &Arc<dyn Core>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// The FIFO of links waiting to run, as two singly linked stacks threaded
/// through the links' own `next` pointers (no buffer to allocate or grow):
/// `push_back` pushes onto `inbox` (newest first); `pop_front` pops from
/// `outbox` (oldest first), reversing `inbox` into it when it runs dry.
/// Each link moves at most twice, so both are amortised O(1).
struct LinkQueue {
    inbox: Option<LinkBox>,
    outbox: Option<LinkBox>,
    len: usize,
}

impl LinkQueue {
    const fn new() -> Self {
        LinkQueue {
            inbox: None,
            outbox: None,
            len: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn push_back(&mut self, mut link: LinkBox) {
        link.next = self.inbox.take();
        self.inbox = Some(link);
        self.len += 1;
    }

    #[inline]
    fn pop_front(&mut self) -> Option<LinkBox> {
        if self.outbox.is_none() {
            while let Some(mut link) = self.inbox.take() {
                self.inbox = link.next.take();
                link.next = self.outbox.take();
                self.outbox = Some(link);
            }
        }
        let mut link = self.outbox.take()?;
        self.outbox = link.next.take();
        self.len -= 1;
        Some(link)
    }
}

impl Drop for LinkQueue {
    /// Unlinks one by one: the default recursive drop of a long list would
    /// overflow the stack.
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        let mut cur = self.outbox.take();
        loop {
            while let Some(mut link) = cur {
                cur = link.next.take();
            }
            match self.inbox.take() {
                Some(link) => cur = Some(link),
                None => return,
            }
        }
    }
}

enum Rest<T> {
    /// Not fired yet.
    Unfired,
    /// The result the Deferred was fired with, before any link ran (the
    /// slot is what links `pull` from).
    Source(Option<Res<T>>),
    /// The result is in this link's output slot.
    Holder(LinkBox),
    /// The result was taken (awaited, handed over, or being run).
    Taken,
}

struct State<T: Send + 'static> {
    links: LinkQueue,
    rest: Rest<T>,
    called: bool,
    running: bool,
    suppress_already_called: bool,
    consumer: bool,
    /// Twisted's armed `DebugInfo.failResult`: the result is a failure that
    /// was at rest at the end of a completed (unpaused) run. When the state
    /// goes away without its handle having reported (the handle moved into
    /// a chain), only an armed failure is reported, as in Twisted.
    armed: bool,
    paused: u32,
    waiting: Option<Weak<dyn Core>>,
    canceller: Canceller<T>,
    waker: Option<Waker>,
    debug: DebugInfo,
}

impl<T: Send + 'static> State<T> {
    /// Unfired when `result` is `None`, fired with it otherwise.
    fn new(result: Option<Res<T>>, canceller: Canceller<T>, debug: DebugInfo) -> Self {
        let called = result.is_some();
        let armed = matches!(result, Some(Err(_)));
        State {
            armed,
            links: LinkQueue::new(),
            rest: match result {
                Some(r) => Rest::Source(Some(r)),
                None => Rest::Unfired,
            },
            called,
            running: false,
            suppress_already_called: false,
            consumer: true,
            paused: 0,
            waiting: None,
            canceller,
            waker: None,
            debug,
        }
    }

    fn finished(&self) -> bool {
        self.called
            && !self.running
            && self.paused == 0
            && self.waiting.is_none()
            && self.links.is_empty()
    }

    fn can_run(&self) -> bool {
        self.called && !self.running && self.paused == 0 && self.waiting.is_none()
    }

    /// Feeds the current result to `sink`; returns the emptied holder so it
    /// can be dropped after the lock is released.
    fn take_rest_into(&mut self, sink: &mut dyn FnMut(&mut dyn Any)) -> Option<LinkBox> {
        self.armed = false;
        if let Rest::Source(slot) = &mut self.rest {
            sink(slot);
            if slot.is_none() {
                self.rest = Rest::Taken;
            }
            // Else not taken (a slot of another type): left at rest.
            return None;
        }
        match mem::replace(&mut self.rest, Rest::Taken) {
            Rest::Source(_) => None,
            Rest::Holder(mut holder) => {
                sink(holder.output());
                Some(holder)
            }
            Rest::Unfired => {
                self.rest = Rest::Unfired;
                sink(&mut ());
                None
            }
            Rest::Taken => {
                sink(&mut ());
                None
            }
        }
    }

    fn result_state(&self) -> ResultState {
        match &self.rest {
            Rest::Source(slot) => slot_state(slot),
            Rest::Holder(h) => h.output_state(),
            Rest::Unfired | Rest::Taken => ResultState::Empty,
        }
    }

    fn take_failure(&mut self) -> Option<Failure> {
        self.armed = false;
        match &mut self.rest {
            Rest::Source(slot) => slot_take_failure(slot),
            Rest::Holder(h) => h.take_failure(),
            Rest::Unfired | Rest::Taken => None,
        }
    }
}

/// What to do once the lock is released after finishing a run.
struct Finish {
    waker: Option<Waker>,
    unhandled: Option<(Failure, UnhandledInfo)>,
}

struct UnhandledInfo(DebugSummary);

/// The parts of a [`DebugInfo`] needed to report outside the lock.
struct DebugSummary {
    created: &'static Location<'static>,
    fired: Option<&'static Location<'static>>,
    describe: Arc<str>,
}

impl Finish {
    fn run(self) {
        if let Some(waker) = self.waker {
            waker.wake();
        }
        if let Some((failure, UnhandledInfo(info))) = self.unhandled {
            report_unhandled(&failure, info.created, info.fired, &info.describe);
        }
    }
}

/// A Deferred's shared state, typed by the type it was created with.
pub(crate) struct Inner<T: Send + 'static> {
    state: Mutex<State<T>>,
    pub(crate) resolvers: AtomicUsize,
    /// Mirrors `State::called` (set under the lock) so that dropping the
    /// last Resolver of a fired Deferred needs no lock.
    fired: AtomicBool,
}

impl<T: Send + 'static> Inner<T> {
    pub(crate) fn new(canceller: Canceller<T>, created: &'static Location<'static>) -> Arc<Self> {
        let mut inner = Arc::new(Inner {
            state: Mutex::new(State::new(None, Canceller::None, DebugInfo::light(created))),
            resolvers: AtomicUsize::new(1),
            fired: AtomicBool::new(false),
        });
        // The rare parts are filled in place: building the whole State on the
        // stack and copying it into the Arc stalls on the copy (measured:
        // new+fire+take 102 -> 69 ns; BENCHMARKS.md).
        let debugging = crate::debug::is_debugging();
        if debugging || !matches!(canceller, Canceller::None) {
            if let Some(inner) = Arc::get_mut(&mut inner) {
                let st = inner.state.get_mut().unwrap_or_else(|e| e.into_inner());
                st.canceller = canceller;
                if debugging {
                    st.debug = DebugInfo::new(created);
                }
            }
        }
        inner
    }

    /// A Deferred that already has `result` (Twisted's `succeed`/`fail`).
    pub(crate) fn new_fired(result: Res<T>, created: &'static Location<'static>) -> Arc<Self> {
        let mut debug = DebugInfo::light(created);
        debug.fired = Some(created);
        let mut inner = Arc::new(Inner {
            state: Mutex::new(State::new(Some(result), Canceller::None, debug)),
            resolvers: AtomicUsize::new(0),
            fired: AtomicBool::new(true),
        });
        if crate::debug::is_debugging() {
            if let Some(inner) = Arc::get_mut(&mut inner) {
                let st = inner.state.get_mut().unwrap_or_else(|e| e.into_inner());
                st.debug = DebugInfo::new(created);
                st.debug.record_fire(created);
            }
        }
        inner
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // No user code runs under this lock, so it cannot be poisoned by a
        // user panic; recover anyway rather than panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn created_at(&self) -> &'static Location<'static> {
        self.lock().debug.created
    }

    pub(crate) fn is_called(&self) -> bool {
        self.lock().called
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
        let mut st = self.lock();
        if st.called {
            if honour_suppress && st.suppress_already_called {
                st.suppress_already_called = false;
                return Ok(false);
            }
            let info = st.debug.describe();
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
        st.called = true;
        self.fired.store(true, Ordering::Release);
        st.debug.record_fire(at);
        st.rest = Rest::Source(Some(value));
        let canceller = mem::replace(&mut st.canceller, Canceller::None);
        let run = if st.paused > 0 {
            false
        } else if st.links.is_empty() {
            let finish = Self::finish(&mut st);
            drop(st);
            finish.run();
            drop(canceller);
            return false;
        } else {
            st.running = true;
            true
        };
        drop(st);
        drop(canceller);
        run
    }

    /// Fires and runs the chain.
    pub(crate) fn fire<V>(
        self: &Arc<Self>,
        value: V,
        convert: impl FnOnce(V) -> Res<T>,
        at: &'static Location<'static>,
    ) -> Result<(), AlreadyCalledError<V>> {
        if self.try_fire(value, convert, at, true)? {
            run_chain(self.clone());
        }
        Ok(())
    }

    /// Fails the Deferred if it has not fired, ignoring it otherwise.
    fn fail_if_unfired(self: &Arc<Self>, failure: Failure, at: &'static Location<'static>) {
        if let Ok(true) = self.try_fire(failure, Err, at, false) {
            run_chain(self.clone());
        }
    }

    /// Every Resolver was dropped.
    pub(crate) fn resolvers_gone(self: &Arc<Self>) {
        if self.fired.load(Ordering::Acquire) {
            return;
        }
        let created = {
            let st = self.lock();
            if st.called {
                return;
            }
            st.debug.created
        };
        let failure = Failure::new(crate::error::ResolverDroppedError {
            created: created.to_string(),
        });
        self.fail_if_unfired(failure, created);
    }

    /// Ends a run: releases the token and collects what to do outside the lock.
    fn finish(st: &mut State<T>) -> Finish {
        st.running = false;
        st.armed = matches!(st.result_state(), ResultState::Err(_));
        let waker = if st.links.is_empty() {
            st.waker.take()
        } else {
            None
        };
        let unhandled = if !st.consumer {
            st.take_failure().map(|f| {
                let info = DebugSummary {
                    created: st.debug.created,
                    fired: st.debug.fired,
                    describe: st.debug.describe(),
                };
                (f, UnhandledInfo(info))
            })
        } else {
            None
        };
        Finish { waker, unhandled }
    }

    /// Stores `held` as the result and either hands over to `next` (if this
    /// Deferred has nothing left to run) or keeps the token and nests.
    fn hand_over(self: Arc<Self>, held: Option<LinkBox>, next: Arc<dyn Core>) -> Stop {
        let mut st = self.lock();
        if let Some(h) = held {
            st.rest = Rest::Holder(h);
        }
        if st.links.is_empty() {
            let finish = Self::finish(&mut st);
            drop(st);
            finish.run();
            Stop::Switch(next)
        } else {
            drop(st);
            Stop::Nested(self, next)
        }
    }
}

impl<T: Send + 'static> Core for Inner<T> {
    fn add_link(&self, link: LinkBox) -> bool {
        let mut st = self.lock();
        st.links.push_back(link);
        if st.can_run() {
            st.running = true;
            true
        } else {
            false
        }
    }

    fn run_links(self: Arc<Self>, mut check_pause: bool) -> Stop {
        // `held`: the link whose output slot holds the current result while
        // the chain runs; `None` means the result is in the state.
        let mut held: Option<LinkBox> = None;
        // Twisted checks `paused` when it starts (or switches to) a
        // Deferred, not between its callbacks: a callback that pauses its own
        // Deferred does not stop the callbacks already queued behind it.
        loop {
            let mut st = self.lock();
            if held.is_none() && check_pause && st.paused > 0 {
                st.running = false;
                return Stop::Released;
            }
            check_pause = false;
            let Some(mut link) = st.links.pop_front() else {
                if let Some(h) = held.take() {
                    st.rest = Rest::Holder(h);
                }
                let finish = Self::finish(&mut st);
                drop(st);
                finish.run();
                return Stop::Released;
            };
            let emptied = match held.take() {
                Some(mut h) => {
                    link.pull(h.output());
                    Some(h)
                }
                None => st.take_rest_into(&mut |src| link.pull(src)),
            };
            drop(st);
            drop(emptied);

            match link.run() {
                Step::Done => held = Some(link),
                Step::Wait(inner) => {
                    let me: Arc<dyn Core> = self.clone();
                    if same_core(&inner, &me) {
                        link.fail_output(Failure::new(crate::error::ChainedToSelfError {}));
                        held = Some(link);
                        continue;
                    }
                    self.lock().waiting = Some(Arc::downgrade(&inner));
                    match inner.steal_or_chain(link, me) {
                        Some(link) => {
                            self.lock().waiting = None;
                            held = Some(link);
                        }
                        None => {
                            let mut st = self.lock();
                            if st.waiting.is_some() {
                                st.running = false;
                                return Stop::Released;
                            }
                            // The inner Deferred delivered while we chained:
                            // go on from the state.
                            check_pause = true;
                        }
                    }
                }
                Step::Resume { outer, holder } => {
                    drop(link);
                    // This Deferred's result now belongs to `outer`.
                    if outer.resume(holder) {
                        return self.hand_over(None, outer);
                    }
                }
                Step::Fed(target) => {
                    return self.hand_over(Some(link), target);
                }
            }
        }
    }

    fn steal_or_chain(&self, mut link: LinkBox, outer: Arc<dyn Core>) -> Option<LinkBox> {
        let mut st = self.lock();
        if st.finished() {
            let emptied = st.take_rest_into(&mut |src| link.refill(src));
            drop(st);
            drop(emptied);
            return Some(link);
        }
        st.links.push_back(Node::boxed(ContinueLink {
            holder: Some(link),
            outer: Some(outer),
            empty: None,
        }));
        None
    }

    fn resume(&self, holder: LinkBox) -> bool {
        let mut st = self.lock();
        st.rest = Rest::Holder(holder);
        st.waiting = None;
        if st.running || st.paused > 0 {
            false
        } else {
            st.running = true;
            true
        }
    }

    fn cancel_one(self: Arc<Self>) -> Option<Arc<dyn Core>> {
        let mut st = self.lock();
        if st.called {
            // Fired but waiting on a chained Deferred: forward. Else a no-op.
            return st.waiting.as_ref().and_then(Weak::upgrade);
        }
        let created = st.debug.created;
        let canceller = match mem::replace(&mut st.canceller, Canceller::Spent) {
            Canceller::None => {
                // Twisted: with no canceller, fail with CancelledError and
                // silently swallow one late callback/errback. Both happen
                // under the lock, so a racing fire either wins outright or
                // is the one swallowed.
                st.suppress_already_called = true;
                if self.fire_locked(st, Err(Failure::new(CancelledError::new())), created) {
                    run_chain(self.clone());
                }
                return None;
            }
            Canceller::Spent => {
                // Another cancel() is running the canceller and will apply
                // the outcome (Twisted: the canceller runs at most once).
                return None;
            }
            Canceller::Cooperative(c) => {
                st.canceller = Canceller::Cooperative(c.clone());
                Canceller::Cooperative(c)
            }
            once => once,
        };
        drop(st);
        // Kept until the default CancelledError is applied: if the canceller
        // dropped every other Resolver (e.g. by cancelling the timer that
        // held one), dropping this one first would fail the Deferred with
        // ResolverDroppedError instead of CancelledError.
        let mut _keep_alive = None;
        match canceller {
            Canceller::None | Canceller::Spent => {}
            Canceller::Once(f) => {
                let resolver = _keep_alive.insert(Resolver::from_inner(self.clone()));
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(resolver))) {
                    self.fail_if_unfired(Failure::from_panic(payload), created);
                }
            }
            Canceller::Cooperative(c) => match catch_unwind(AssertUnwindSafe(|| c.cancel())) {
                Ok(true) => return None,
                Ok(false) => {}
                Err(payload) => self.fail_if_unfired(Failure::from_panic(payload), created),
            },
        }
        self.fail_if_unfired(Failure::new(CancelledError::new()), created);
        None
    }

    fn pause(&self) {
        let mut st = self.lock();
        st.paused = st.paused.saturating_add(1);
    }

    fn unpause(&self) -> bool {
        let mut st = self.lock();
        st.paused = st.paused.saturating_sub(1);
        if !st.can_run() {
            return false;
        }
        if st.links.is_empty() {
            let finish = Self::finish(&mut st);
            drop(st);
            finish.run();
            return false;
        }
        st.running = true;
        true
    }

    fn poll_take(&self, waker: Option<&Waker>, sink: &mut dyn FnMut(&mut dyn Any)) -> Poll<()> {
        let mut st = self.lock();
        if st.finished() {
            let emptied = st.take_rest_into(sink);
            drop(st);
            drop(emptied);
            return Poll::Ready(());
        }
        if let Some(waker) = waker {
            match &st.waker {
                Some(old) if old.will_wake(waker) => {}
                _ => st.waker = Some(waker.clone()),
            }
        }
        Poll::Pending
    }

    fn release_consumer(&self) {
        let mut st = self.lock();
        st.consumer = false;
        let waker = st.waker.take();
        // Any failure at rest is reported here, even a paused one: with the
        // handle gone nobody can unpause it any more (Rust does better than
        // Twisted, which reports only an armed failure).
        if st.called && !st.running && st.waiting.is_none() {
            let failure = st.take_failure();
            let info = failure.as_ref().map(|_| DebugSummary {
                created: st.debug.created,
                fired: st.debug.fired,
                describe: st.debug.describe(),
            });
            drop(st);
            drop(waker);
            if let (Some(f), Some(info)) = (failure, info) {
                report_unhandled(&f, info.created, info.fired, &info.describe);
            }
        }
    }

    fn snapshot(&self) -> Snapshot {
        let st = self.lock();
        Snapshot {
            called: st.called,
            running: st.running,
            paused: st.paused,
            waiting: st.waiting.is_some(),
            callbacks: st.links.len(),
            result: st.result_state(),
            taken: matches!(st.rest, Rest::Taken) && st.called && !st.running,
        }
    }
}

impl<T: Send + 'static> Drop for Inner<T> {
    /// A failure still in the state when it goes away was never consumed:
    /// e.g. a paused Deferred returned from a callback, whose handle moved
    /// into the chain (Twisted reports it when the Deferred is collected).
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if !st.armed {
            return;
        }
        if let Some(failure) = st.take_failure() {
            report_unhandled(
                &failure,
                st.debug.created,
                st.debug.fired,
                &st.debug.describe(),
            );
        }
    }
}

/// Keeps [`Resolver`] counting in one place.
pub(crate) fn add_resolver<T: Send + 'static>(inner: &Inner<T>) {
    inner.resolvers.fetch_add(1, Ordering::Relaxed);
}

/// Returns `true` when this was the last Resolver.
pub(crate) fn drop_resolver<T: Send + 'static>(inner: &Inner<T>) -> bool {
    inner.resolvers.fetch_sub(1, Ordering::AcqRel) == 1
}
