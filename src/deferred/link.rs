//! The links of a callback chain: what a callback, a continuation or a
//! `chain_deferred` target looks like to the runner.
//!
//! The chain is a FIFO of boxed [`Link`]s threaded through their own `next`
//! pointers ([`Node`]). Each link is typed: it owns its callback and its
//! output slot. Values move from one link's output slot into the next link
//! through `&mut dyn Any` downcasts, so no value is boxed on its way down the
//! chain. A link runs with no lock held (except a pure continuation, which
//! runs no user code).

use std::any::Any;
use std::marker::PhantomData;
use std::mem;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::Arc;

use crate::deferred::runner::Core;
use crate::error::ResultTakenError;
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
    pub(crate) next: Option<LinkBox>,
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
    /// outer Deferred to resume instead of a [`Step`] (an `Option<Arc<_>>`
    /// is returned in registers, a `Step` through memory).
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
            self.output = Some($crate::deferred::link::take_from(src));
        }

        fn output(&mut self) -> &mut dyn ::std::any::Any {
            &mut self.output
        }

        fn output_state(&self) -> $crate::deferred::link::ResultState {
            $crate::deferred::link::slot_state(&self.output)
        }

        fn take_failure(&mut self) -> Option<$crate::Failure> {
            $crate::deferred::link::slot_take_failure(&mut self.output)
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
    slot: Slot<F, U>,
    /// The input type: the input itself is never stored (see [`Link::run`]).
    input: PhantomData<fn(Res<T>)>,
}

/// A [`CallbackLink`]'s callback until it runs, then its output slot: the
/// two never live together, so a link is as big as the larger of them
/// (a callback that captured a large value does not also pay for a slot of
/// the same size).
enum Slot<F, U> {
    Callback(F),
    Output(Option<Res<U>>),
}

/// An empty link (no callback yet): what `Box::default` builds in place.
impl<T, U: Send + 'static, F> Default for Node<CallbackLink<T, U, F>> {
    fn default() -> Self {
        Node {
            next: None,
            link: CallbackLink {
                slot: Slot::Output(None),
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
    /// empty link in the block; the callback is then stored into it, so the
    /// link is not built on the stack and copied in.
    #[inline]
    pub(crate) fn boxed(f: F) -> LinkBox {
        let mut node: Box<Node<Self>> = Box::default();
        node.link.slot = Slot::Callback(f);
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
        let f = match mem::replace(&mut self.slot, Slot::Output(None)) {
            Slot::Callback(f) => f,
            Slot::Output(_) => {
                self.slot = Slot::Output(Some(Err(Failure::new(ResultTakenError {}))));
                return Step::Done;
            }
        };
        let output = match catch_unwind(AssertUnwindSafe(move || f(input))) {
            Ok(Outcome::Ready(r)) => r,
            Ok(Outcome::Chain(d)) => match d.into_core() {
                Some(core) => return Step::Wait(core),
                None => Err(Failure::new(ResultTakenError {})),
            },
            Err(payload) => Err(Failure::from_panic(payload)),
        };
        self.slot = Slot::Output(Some(output));
        Step::Done
    }

    fn refill(&mut self, src: &mut dyn Any) {
        self.slot = Slot::Output(Some(take_from(src)));
    }

    /// The output slot; on a link that has not run (which the runner never
    /// reads), a value of no result type, as for a result that was taken.
    fn output(&mut self) -> &mut dyn Any {
        match &mut self.slot {
            Slot::Output(output) => output,
            Slot::Callback(_) => &mut self.input,
        }
    }

    fn output_state(&self) -> ResultState {
        match &self.slot {
            Slot::Output(output) => slot_state(output),
            Slot::Callback(_) => ResultState::Empty,
        }
    }

    fn take_failure(&mut self) -> Option<Failure> {
        match &mut self.slot {
            Slot::Output(output) => slot_take_failure(output),
            Slot::Callback(_) => None,
        }
    }

    fn fail_output(&mut self, failure: Failure) {
        self.slot = Slot::Output(Some(Err(failure)));
    }

    fn output_is_err(&self) -> bool {
        matches!(self.slot, Slot::Output(Some(Err(_))))
    }
}

/// Twisted's `_CONTINUE` marker: appended to an inner Deferred that an outer
/// one waits on. It carries the outer's waiting link (`holder`), which
/// receives the inner's result and goes back to the outer.
pub(crate) struct ContinueLink {
    pub(crate) holder: Option<LinkBox>,
    pub(crate) outer: Option<Arc<dyn Core>>,
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
/// ([`Inner::waiting_on`](crate::deferred::state::Inner::waiting_on)): queued in the inner Deferred's chain, it takes the
/// inner's result into its own slot and goes back to the outer as the
/// outer's result holder. One allocation where a callback link plus a
/// [`ContinueLink`] take two.
pub(crate) struct ContinueSlot<U> {
    pub(crate) outer: Option<Arc<dyn Core>>,
    pub(crate) output: Option<Res<U>>,
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

/// Reverses a stack of links threaded through their `next` pointers:
/// the inbox (newest first) becomes a run list (oldest first).
#[inline]
pub(crate) fn reverse(mut stack: Option<LinkBox>) -> Option<LinkBox> {
    let mut out = None;
    while let Some(mut link) = stack {
        stack = link.next.take();
        link.next = out;
        out = Some(link);
    }
    out
}

/// Counts the links of a list threaded through `next` (for `Debug`).
pub(crate) fn count(mut list: Option<&LinkBox>) -> usize {
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
