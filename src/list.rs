//! Waiting on many Deferreds at once: [`DeferredList`], [`gather_results`]
//! (and [`gather2`], [`gather3`] for mixed types) and [`race`].
//!
//! ```
//! use tokio_deferred::{gather_results, race, Deferred, DeferredList, FirstError};
//!
//! let (a, ra) = Deferred::<u32>::new();
//! let (b, rb) = Deferred::<u32>::new();
//! let sum = gather_results([a, b]).add_callback(|v| Ok(v.iter().sum::<u32>()));
//! rb.callback(2).unwrap(); // any order: the values come back in input order
//! ra.callback(1).unwrap();
//! assert_eq!(sum.try_take().unwrap().unwrap(), 3);
//!
//! // Every outcome, failures included, in input order (Twisted's DeferredList):
//! let (a, ra) = Deferred::<u32>::new();
//! let (b, rb) = Deferred::<u32>::new();
//! let all = DeferredList::new([a, b]).consume_errors().all();
//! ra.errback(tokio_deferred::Failure::msg("down")).unwrap();
//! rb.callback(7).unwrap();
//! let outcomes = all.try_take().unwrap().unwrap();
//! assert!(outcomes[0].is_err());
//! assert_eq!(*outcomes[1].as_ref().unwrap(), 7);
//!
//! // The first success wins and the others are cancelled:
//! let (slow, _keep) = Deferred::<&str>::new();
//! let (fast, r) = Deferred::<&str>::new();
//! let winner = race([slow, fast]);
//! r.callback("fast").unwrap();
//! assert_eq!(winner.try_take().unwrap().unwrap(), (1, "fast"));
//! # let _ = FirstError::unwrap_failure;
//! ```
//!
//! In async code, await the result:
//!
//! ```
//! use std::time::Duration;
//! use tokio_deferred::{defer_later, gather_results};
//!
//! #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let pages = ["a", "b", "c"].map(|name| defer_later(Duration::from_secs(1), move || Ok(name)));
//!     assert_eq!(gather_results(pages).await.unwrap(), ["a", "b", "c"]);
//! }
//! ```
//!
//! # How it works
//!
//! Everything here is push-based, like Twisted: each input gets one link at
//! the end of its chain (a record of the list's own kind, not a boxed
//! closure) that hands its result to a state shared by the whole list.
//! Each input has its own pre-sized slot for its result, so inputs firing
//! in different threads never wait on one another, and the list counts
//! arrivals with the reference count of that shared state: the last input
//! to report (or the constructor, if every input had already fired)
//! collects the slots in input order and fires the output once. An outcome
//! decided earlier (a first failure, a first success) fires the output at
//! once. Nothing polls, and no lock is held while user code runs. A list of
//! fired Deferreds returns an already-fired Deferred.
//!
//! Why push rather than `futures::future::join_all` over channels: in a
//! Tokio task, the coop budget lets a task make 128 resource polls per
//! turn, after which every Tokio oneshot returns `Pending`, so `join_all`
//! takes many turns and walks its inputs again on each (quadratic in all),
//! while `gather_results`' cost per input stays flat (`cargo bench --bench
//! gather_scaling`; `BENCHMARKS.md` has the table).
//!
//! # Where each input's result goes (Twisted's `consumeErrors`)
//!
//! In Twisted the list's callback sits in the middle of each input's chain:
//! it records the result, then passes it on unchanged, so a failure keeps
//! going down the input's own chain (and is logged as unhandled if nothing
//! there handles it) unless `consumeErrors=True`. In Rust the list *takes*
//! the input Deferreds, so nobody can add callbacks after the list's; the
//! rest of each input's chain belongs to the list. It is kept that way:
//!
//! * without [`consume_errors`](DeferredList::consume_errors) (Twisted's
//!   default, for [`DeferredList`] and [`gather_results`]), a failed input's
//!   failure goes on down its own chain, where nothing handles it, so it is
//!   reported once as an unhandled error (a `tracing` event with target
//!   `tokio_deferred::unhandled`), even though the list also delivers it;
//! * with `consume_errors`, the list consumes the failure: nothing is
//!   reported, and the failure reaches you only through the list's result.
//!   This is what you want in almost every case.
//!
//! A successful value is moved into the list's result (Twisted passes it on
//! down the input's chain as well; in Rust the value can only be in one
//! place). [`race`] always consumes, as Twisted's does. To see an input's
//! result before the list does, add callbacks to it before passing it in:
//! the list sees each result at that point of the input's chain.
//!
//! # Cancellation
//!
//! Cancelling the output Deferred (while it has not fired) cancels every
//! input. The output then fires from the inputs' results as usual (for
//! example a [`DeferredList::all`] gets a list of
//! [`CancelledError`](crate::CancelledError) failures, a [`race`] a
//! [`FailureGroup`]); if the inputs did not fire the output, it fails with
//! `CancelledError`. An input whose canceller panics fails with that panic;
//! the other inputs are still cancelled. Once the output has fired,
//! cancelling it does nothing.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::mem;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use crate::deferred::link::{Link, Node, Res, Step, output_slot, take_from};
use crate::deferred::runner::{Core, cancel_core, run_chain};
use crate::deferred::state::Inner;
use crate::error::{FailureGroup, FirstError, ResultTakenError};
use crate::loom::Mutex;
use crate::{Deferred, Failure, Resolver};

/// What a combinator does with one input's result.
enum Arrival<S, O> {
    /// Keep it in the input's slot until every input has reported.
    Keep(S),
    /// The outcome is decided: fire the output with this result.
    Fire(Res<O>),
    /// Fire the output with this result after cancelling every other input
    /// (race).
    Win(Res<O>),
}

/// How a combinator turns the inputs' results into its output.
trait Policy: Send + Sync + 'static {
    type Input: Send + 'static;
    /// What is kept per input until every input has reported.
    type Slot: Send + 'static;
    type Output: Send + 'static;
    /// The output for an empty list of inputs.
    fn on_empty(&self) -> Res<Self::Output>;
    /// Input `index` reported `result` (no lock held).
    fn arrive(&self, index: usize, result: Res<Self::Input>) -> Arrival<Self::Slot, Self::Output>;
    /// Every input reported and nothing was decided: the output, from every
    /// input's slot in input order.
    fn complete(&self, slots: Vec<Self::Slot>) -> Res<Self::Output>;
}

/// The state shared by every input's link and the output's canceller.
///
/// Counting: every input's link holds one strong reference until it has
/// reported, and the constructor holds one until every link is in place.
/// Whoever drops the last reference is the last to report: [`Drop`]
/// collects the slots (with `&mut self`, no locks) and fires the output.
struct Shared<P: Policy> {
    policy: P,
    /// One entry per input, in input order.
    entries: Box<[Entry<P::Slot>]>,
    /// The outcome was decided early: later results are dropped on arrival.
    decided: AtomicBool,
    /// `None` once the output was fired by a decision.
    resolver: Mutex<Option<Resolver<P::Output>>>,
    consume: bool,
}

/// What the list keeps per input.
struct Entry<S> {
    /// The input's state (weak): for cancelling it and for passing a failure
    /// on down its chain.
    input: Weak<dyn Core>,
    /// Its result, written once, by its own link only (so this mutex is
    /// contended at most by an early decision clearing it; a `Mutex`
    /// because the value need not be `Sync`).
    slot: Mutex<Option<S>>,
}

/// Cancels an input if it is still there. Never panics: a panicking
/// canceller fails its own input, and the caller's loop goes on.
fn cancel_input(input: &Weak<dyn Core>) {
    if let Some(core) = input.upgrade() {
        cancel_core(core);
    }
}

impl<P: Policy> Shared<P> {
    /// Cancels every input but the race's winner (the output's canceller
    /// does its own loop, without holding the list).
    fn cancel_inputs(&self, except: Option<usize>) {
        for (i, entry) in self.entries.iter().enumerate() {
            if Some(i) != except {
                cancel_input(&entry.input);
            }
        }
    }

    /// Input `index` reported `result`. Returns what goes on down the rest
    /// of that input's chain.
    fn arrive(&self, index: usize, result: Res<P::Input>) -> Res<()> {
        let rest = match &result {
            // Nobody holds the input's handle (the list adopted it): the input
            // reports the failure as unhandled when its run ends, like a
            // Deferred whose handle was dropped.
            Err(f) if !self.consume => Err(f.clone()),
            _ => Ok(()),
        };
        if self.decided.load(Ordering::Acquire) {
            // Already fired: the late result is dropped (its destructor is
            // user code; no lock is held).
            drop(result);
            return rest;
        }
        match self.policy.arrive(index, result) {
            Arrival::Keep(value) => {
                if let Some(entry) = self.entries.get(index) {
                    let old = entry.slot.lock().replace(value);
                    drop(old);
                }
            }
            Arrival::Fire(out) => self.decide(out, None),
            Arrival::Win(out) => self.decide(out, Some(index)),
        }
        rest
    }

    /// Fires the output early (a first failure or success).
    fn decide(&self, out: Res<P::Output>, winner: Option<usize>) {
        let resolver = self.resolver.lock().take();
        self.decided.store(true, Ordering::Release);
        let Some(resolver) = resolver else {
            return;
        };
        // What was kept is not needed any more: drop it now, one slot at a
        // time and outside its lock (destructors are user code). A value
        // stored by an arrival racing with this in another thread stays
        // until the state goes away.
        for entry in self.entries.iter() {
            let kept = entry.slot.lock().take();
            drop(kept);
        }
        if let Some(winner) = winner {
            self.cancel_inputs(Some(winner));
        }
        // Cannot be fired already: the resolver is taken exactly once, and
        // the output's canceller never fires it itself. The only exception
        // is a cancel of the output racing with this line in another
        // thread; then the cancellation stands and `out` is dropped.
        let _ = resolver.resolve(out);
    }
}

impl<P: Policy> Drop for Shared<P> {
    /// The last reference: every input has reported (or a link was dropped
    /// without running). Fires the output if no decision did.
    fn drop(&mut self) {
        let resolver = self.resolver.get_mut().take();
        let Some(resolver) = resolver else {
            return;
        };
        // One pass: each input's result is moved out and its weak handle
        // dropped.
        let slots: Option<Vec<P::Slot>> = mem::take(&mut self.entries)
            .into_vec()
            .into_iter()
            .map(|e| e.slot.into_inner())
            .collect();
        match slots {
            Some(slots) => {
                let out = self.policy.complete(slots);
                let _ = resolver.resolve(out);
            }
            // An input's link went away without running (its Deferred was
            // dropped paused, say): the output can never be complete, and
            // dropping its resolver fails it with ResolverDroppedError.
            None => drop(resolver),
        }
    }
}

/// The link added at the end of each input's chain: hands the input's
/// result to the list.
struct ListLink<P: Policy> {
    shared: Option<Arc<Shared<P>>>,
    index: usize,
    output: Option<Res<()>>,
}

impl<P: Policy> Link for ListLink<P> {
    fn run(&mut self, src: &mut dyn Any) -> Step {
        let input = take_from::<P::Input>(src);
        let shared = self.shared.take();
        let index = self.index;
        // Dropping `shared` may be the last reference: that fires the output,
        // whose callbacks are user code (and so are the results' destructors).
        let rest = catch_unwind(AssertUnwindSafe(move || match shared {
            Some(shared) => shared.arrive(index, input),
            None => Ok(()),
        }));
        self.output = Some(rest.unwrap_or_else(|payload| Err(Failure::from_panic(payload))));
        Step::Done
    }

    output_slot!();
}

/// The push-based engine under every combinator here.
#[track_caller]
fn collect<P: Policy>(
    inputs: Vec<Deferred<P::Input>>,
    policy: P,
    consume: bool,
) -> Deferred<P::Output> {
    if inputs.is_empty() {
        return match policy.on_empty() {
            Ok(v) => crate::succeed(v),
            Err(f) => crate::fail(f),
        };
    }
    let at = Location::caller();
    // The list takes the inputs' states: the rest of each input's chain
    // belongs to it (see the module docs).
    let cores: Vec<Arc<dyn Core>> = inputs
        .into_iter()
        .map(|d| {
            d.into_core().unwrap_or_else(|| {
                Inner::<P::Input>::new_fired(Err(Failure::new(ResultTakenError {})), at)
            })
        })
        .collect();
    let shared = Arc::new(Shared {
        policy,
        entries: cores
            .iter()
            .map(|core| Entry {
                input: Arc::downgrade(core),
                slot: Mutex::new(None),
            })
            .collect(),
        decided: AtomicBool::new(false),
        resolver: Mutex::new(None),
        consume,
    });
    let weak = Arc::downgrade(&shared);
    let (output, resolver) = Deferred::with_canceller(move |_: &Resolver<P::Output>| {
        // Let go of the list before cancelling its inputs: the last reference
        // completes it, and a cancelled input's result may be the last one
        // the list waits for (then the list fires right then, before the
        // next input is cancelled, as in Twisted).
        let inputs: Vec<Weak<dyn Core>> = weak
            .upgrade()
            .map(|shared| shared.entries.iter().map(|e| e.input.clone()).collect())
            .unwrap_or_default();
        inputs.iter().for_each(cancel_input);
    });
    *shared.resolver.lock() = Some(resolver);
    for (index, core) in cores.into_iter().enumerate() {
        let link = Node::boxed(ListLink {
            shared: Some(shared.clone()),
            index,
            output: None,
        });
        // Adopted: the list took the handle, so the input has no consumer
        // left (a paused failed input reports its failure now).
        if core.adopt_link(link) {
            // The input had fired: its result reaches the list now.
            run_chain(core);
        }
    }
    // If every input has already reported, this fires the output.
    drop(shared);
    output
}

/// Waits on several Deferreds of the same type: Twisted's `DeferredList`.
///
/// Build it with [`new`](Self::new), set options, then choose what it fires
/// with:
///
/// * [`all`](Self::all): every outcome, `Vec<Result<T, Failure>>` in input
///   order, once all inputs have fired (Twisted's default
///   `[(success, result), ...]`);
/// * [`first_success`](Self::first_success): the first value and its index,
///   `(T, usize)` (Twisted's `fireOnOneCallback`).
///
/// Options: [`fire_on_one_errback`](Self::fire_on_one_errback) (fail with
/// [`FirstError`] on the first failure) and
/// [`consume_errors`](Self::consume_errors) (see the [module
/// docs](crate::list) for what this means when Rust owns the inputs).
///
/// ```
/// use tokio_deferred::{fail, succeed, DeferredList, Failure};
///
/// let d = DeferredList::new([succeed(1), fail(Failure::msg("two")), succeed(3)])
///     .consume_errors()
///     .all();
/// let outcomes = d.try_take().unwrap().unwrap();
/// assert_eq!(outcomes.len(), 3);
/// assert_eq!(*outcomes[0].as_ref().unwrap(), 1);
/// assert_eq!(outcomes[1].as_ref().unwrap_err().to_string(), "two");
/// ```
///
/// An empty list fires at once: [`all`](Self::all) with `vec![]`.
/// [`first_success`](Self::first_success) on an empty list fails at once with
/// an empty [`FailureGroup`] (Twisted's never fires; in Rust a Deferred that
/// can never fire would hang every `.await`, and "no input succeeded" is
/// true, as with JavaScript's `Promise.any([])`).
#[must_use = "a DeferredList does nothing until all() or first_success() is called"]
pub struct DeferredList<T> {
    inputs: Vec<Deferred<T>>,
    fire_on_one_errback: bool,
    consume_errors: bool,
}

impl<T: Send + 'static> DeferredList<T> {
    /// A list over `deferreds` (any iterator), with Twisted's default
    /// options: wait for all, do not consume errors.
    pub fn new<I>(deferreds: I) -> Self
    where
        I: IntoIterator<Item = Deferred<T>>,
    {
        DeferredList {
            inputs: deferreds.into_iter().collect(),
            fire_on_one_errback: false,
            consume_errors: false,
        }
    }

    /// Fail as soon as one input fails, with a [`FirstError`] holding its
    /// index and failure (Twisted's `fireOnOneErrback=True`). Later results
    /// are ignored (but still consumed if
    /// [`consume_errors`](Self::consume_errors) is set).
    pub fn fire_on_one_errback(mut self) -> Self {
        self.fire_on_one_errback = true;
        self
    }

    /// Consume the inputs' failures: they are delivered only through the
    /// list's result and never reported as unhandled (Twisted's
    /// `consumeErrors=True`).
    pub fn consume_errors(mut self) -> Self {
        self.consume_errors = true;
        self
    }

    /// The number of inputs.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether there are no inputs.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Fires with every input's outcome in input order once all have fired
    /// (or, with [`fire_on_one_errback`](Self::fire_on_one_errback), fails
    /// with [`FirstError`] at the first failure).
    ///
    /// ```
    /// use tokio_deferred::{Deferred, DeferredList, FirstError, Failure};
    ///
    /// let (a, ra) = Deferred::<u8>::new();
    /// let (b, rb) = Deferred::<u8>::new();
    /// let d = DeferredList::new([a, b]).fire_on_one_errback().consume_errors().all();
    /// ra.callback(1).unwrap();
    /// rb.errback(Failure::msg("b broke")).unwrap();
    /// let failure = d.try_take().unwrap().unwrap_err();
    /// assert_eq!(failure.downcast_ref::<FirstError>().unwrap().index, 1);
    /// ```
    #[track_caller]
    pub fn all(self) -> Deferred<Vec<Result<T, Failure>>> {
        let policy = AllPolicy {
            fire_on_one_errback: self.fire_on_one_errback,
            _marker: PhantomData,
        };
        collect(self.inputs, policy, self.consume_errors)
    }

    /// Fires with the first value and its index, `(value, index)` (Twisted's
    /// `fireOnOneCallback=True`). The other inputs are *not* cancelled (use
    /// [`race`] for that).
    ///
    /// If every input fails, it fails with a [`FailureGroup`] of their
    /// failures in input order (Twisted fires with the list of failures,
    /// which cannot be told apart from success: twisted#4919). With
    /// [`fire_on_one_errback`](Self::fire_on_one_errback) it fails with
    /// [`FirstError`] at the first failure instead. An empty list fails at
    /// once with an empty `FailureGroup`.
    ///
    /// ```
    /// use tokio_deferred::{Deferred, DeferredList};
    ///
    /// let (a, _ra) = Deferred::<&str>::new();
    /// let (b, rb) = Deferred::<&str>::new();
    /// let d = DeferredList::new([a, b]).first_success();
    /// rb.callback("b").unwrap();
    /// assert_eq!(d.try_take().unwrap().unwrap(), ("b", 1));
    /// ```
    #[track_caller]
    pub fn first_success(self) -> Deferred<(T, usize)> {
        let policy = FirstSuccessPolicy {
            fire_on_one_errback: self.fire_on_one_errback,
            _marker: PhantomData,
        };
        collect(self.inputs, policy, self.consume_errors)
    }
}

impl<T> fmt::Debug for DeferredList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredList")
            .field("inputs", &self.inputs.len())
            .field("fire_on_one_errback", &self.fire_on_one_errback)
            .field("consume_errors", &self.consume_errors)
            .finish()
    }
}

/// Options for [`gather_results`]: which failure to report and whether to
/// consume the inputs' failures.
///
/// ```
/// use tokio_deferred::{fail, succeed, Failure, Gather, FirstError};
///
/// // The input's own failure instead of a FirstError (Twisted #4627):
/// let d = Gather::new([succeed(1), fail(Failure::msg("boom"))])
///     .original_failure()
///     .consume_errors()
///     .into_deferred();
/// let failure = d.try_take().unwrap().unwrap_err();
/// assert!(!failure.is::<FirstError>());
/// assert_eq!(failure.to_string(), "boom");
/// ```
#[must_use = "a Gather does nothing until into_deferred() is called"]
pub struct Gather<T> {
    inputs: Vec<Deferred<T>>,
    consume_errors: bool,
    original_failure: bool,
}

impl<T: Send + 'static> Gather<T> {
    /// Gathers `deferreds` with Twisted's defaults: fail with
    /// [`FirstError`], do not consume errors.
    pub fn new<I>(deferreds: I) -> Self
    where
        I: IntoIterator<Item = Deferred<T>>,
    {
        Gather {
            inputs: deferreds.into_iter().collect(),
            consume_errors: false,
            original_failure: false,
        }
    }

    /// Consume the inputs' failures (Twisted's `consumeErrors=True`): see
    /// [`DeferredList::consume_errors`].
    pub fn consume_errors(mut self) -> Self {
        self.consume_errors = true;
        self
    }

    /// Fail with the first failing input's own failure, not a
    /// [`FirstError`] wrapping it (what Twisted users do by hand with
    /// `subFailure`, twisted#4627). The index is then lost.
    pub fn original_failure(mut self) -> Self {
        self.original_failure = true;
        self
    }

    /// The gathering Deferred: see [`gather_results`].
    #[track_caller]
    pub fn into_deferred(self) -> Deferred<Vec<T>> {
        let policy = GatherPolicy {
            original_failure: self.original_failure,
            _marker: PhantomData,
        };
        collect(self.inputs, policy, self.consume_errors)
    }
}

impl<T> fmt::Debug for Gather<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gather")
            .field("inputs", &self.inputs.len())
            .field("consume_errors", &self.consume_errors)
            .field("original_failure", &self.original_failure)
            .finish()
    }
}

/// The values of all `deferreds`, in input order, once all have succeeded
/// (Twisted's `gatherResults`).
///
/// At the first failure it fails with a [`FirstError`] (index and the
/// input's failure); the other inputs are not cancelled and their results
/// are ignored. Failures are not consumed (Twisted's default, see the
/// [module docs](crate::list)); use [`Gather`] to consume them or to get the
/// input's own failure instead of a `FirstError`. An empty input gives
/// `vec![]` at once. Cancelling the result cancels every input.
///
/// ```
/// use tokio_deferred::{gather_results, succeed};
///
/// let d = gather_results(vec![succeed(1), succeed(2)]);
/// assert_eq!(d.try_take().unwrap().unwrap(), [1, 2]);
/// let d = gather_results(Vec::<tokio_deferred::Deferred<u8>>::new());
/// assert!(d.try_take().unwrap().unwrap().is_empty());
/// ```
#[track_caller]
pub fn gather_results<T, I>(deferreds: I) -> Deferred<Vec<T>>
where
    T: Send + 'static,
    I: IntoIterator<Item = Deferred<T>>,
{
    Gather::new(deferreds).into_deferred()
}

/// One value of a mixed-type gather.
enum Slot<A, B, C> {
    A(A),
    B(B),
    C(C),
}

fn slot_mismatch() -> Failure {
    Failure::new(ResultTakenError {})
}

/// Gathers two Deferreds of different types into a pair: like
/// [`gather_results`] (first failure → [`FirstError`] with index 0 or 1,
/// failures not consumed, cancelling cancels both).
///
/// ```
/// use tokio_deferred::{gather2, succeed};
///
/// let d = gather2(succeed(1u8), succeed("one"));
/// assert_eq!(d.try_take().unwrap().unwrap(), (1, "one"));
/// ```
#[track_caller]
pub fn gather2<A, B>(a: Deferred<A>, b: Deferred<B>) -> Deferred<(A, B)>
where
    A: Send + 'static,
    B: Send + 'static,
{
    let inputs = vec![
        a.add_callback(|v| Ok(Slot::<A, B, ()>::A(v))),
        b.add_callback(|v| Ok(Slot::B(v))),
    ];
    gather_results(inputs).add_callback(|values| {
        let mut it = values.into_iter();
        match (it.next(), it.next()) {
            (Some(Slot::A(a)), Some(Slot::B(b))) => Ok((a, b)),
            _ => Err(slot_mismatch()),
        }
    })
}

/// Gathers three Deferreds of different types into a triple: see
/// [`gather2`].
///
/// ```
/// use tokio_deferred::{gather3, succeed};
///
/// let d = gather3(succeed(1u8), succeed("one"), succeed(1.0f64));
/// assert_eq!(d.try_take().unwrap().unwrap(), (1, "one", 1.0));
/// ```
#[track_caller]
pub fn gather3<A, B, C>(a: Deferred<A>, b: Deferred<B>, c: Deferred<C>) -> Deferred<(A, B, C)>
where
    A: Send + 'static,
    B: Send + 'static,
    C: Send + 'static,
{
    let inputs = vec![
        a.add_callback(|v| Ok(Slot::<A, B, C>::A(v))),
        b.add_callback(|v| Ok(Slot::B(v))),
        c.add_callback(|v| Ok(Slot::C(v))),
    ];
    gather_results(inputs).add_callback(|values| {
        let mut it = values.into_iter();
        match (it.next(), it.next(), it.next()) {
            (Some(Slot::A(a)), Some(Slot::B(b)), Some(Slot::C(c))) => Ok((a, b, c)),
            _ => Err(slot_mismatch()),
        }
    })
}

/// The first input to succeed, with its index; every other input is then
/// cancelled (Twisted's `race`).
///
/// * If every input fails, it fails with a [`FailureGroup`] holding their
///   failures in input order.
/// * Cancelling the race cancels every input; since they then fail with
///   [`CancelledError`](crate::CancelledError), the race fails with a
///   `FailureGroup` of those (as in Twisted), unless an input's canceller
///   makes it succeed, which then wins.
/// * Every input's result is consumed: losers' results and failures go
///   nowhere and are never reported as unhandled.
/// * An empty input fails at once with an empty `FailureGroup` (Twisted's
///   `race([])` never fires; in Rust that would hang every `.await`; this
///   matches JavaScript's `Promise.any([])`).
///
/// ```
/// use tokio_deferred::{race, CancelledError, Deferred};
///
/// let (a, _ra) = Deferred::<u8>::new();
/// let a = a.add_errback(|f| { assert!(f.is::<CancelledError>()); Err(f) });
/// let (b, rb) = Deferred::<u8>::new();
/// let d = race([a, b]);
/// rb.callback(2).unwrap(); // b wins; a is cancelled
/// assert_eq!(d.try_take().unwrap().unwrap(), (1, 2));
/// ```
#[track_caller]
pub fn race<T, I>(deferreds: I) -> Deferred<(usize, T)>
where
    T: Send + 'static,
    I: IntoIterator<Item = Deferred<T>>,
{
    let inputs: Vec<Deferred<T>> = deferreds.into_iter().collect();
    let policy = RacePolicy {
        _marker: PhantomData,
    };
    collect(inputs, policy, true)
}

// --- Policies ---------------------------------------------------------------

fn failure_group(failures: Vec<Failure>) -> Failure {
    Failure::new(FailureGroup::new(failures))
}

struct AllPolicy<T> {
    fire_on_one_errback: bool,
    _marker: PhantomData<fn(T)>,
}

impl<T: Send + 'static> Policy for AllPolicy<T> {
    type Input = T;
    type Slot = Res<T>;
    type Output = Vec<Res<T>>;

    fn on_empty(&self) -> Res<Self::Output> {
        Ok(Vec::new())
    }

    fn arrive(&self, index: usize, result: Res<T>) -> Arrival<Res<T>, Self::Output> {
        match result {
            Err(f) if self.fire_on_one_errback => {
                Arrival::Fire(Err(Failure::new(FirstError::new(index, f))))
            }
            result => Arrival::Keep(result),
        }
    }

    fn complete(&self, slots: Vec<Res<T>>) -> Res<Self::Output> {
        Ok(slots)
    }
}

struct FirstSuccessPolicy<T> {
    fire_on_one_errback: bool,
    _marker: PhantomData<fn(T)>,
}

impl<T: Send + 'static> Policy for FirstSuccessPolicy<T> {
    type Input = T;
    type Slot = Failure;
    type Output = (T, usize);

    fn on_empty(&self) -> Res<Self::Output> {
        Err(failure_group(Vec::new()))
    }

    fn arrive(&self, index: usize, result: Res<T>) -> Arrival<Failure, Self::Output> {
        match result {
            Ok(v) => Arrival::Fire(Ok((v, index))),
            Err(f) if self.fire_on_one_errback => {
                Arrival::Fire(Err(Failure::new(FirstError::new(index, f))))
            }
            Err(f) => Arrival::Keep(f),
        }
    }

    fn complete(&self, failures: Vec<Failure>) -> Res<Self::Output> {
        Err(failure_group(failures))
    }
}

struct GatherPolicy<T> {
    original_failure: bool,
    _marker: PhantomData<fn(T)>,
}

impl<T: Send + 'static> Policy for GatherPolicy<T> {
    type Input = T;
    type Slot = T;
    type Output = Vec<T>;

    fn on_empty(&self) -> Res<Self::Output> {
        Ok(Vec::new())
    }

    fn arrive(&self, index: usize, result: Res<T>) -> Arrival<T, Vec<T>> {
        match result {
            Ok(v) => Arrival::Keep(v),
            Err(f) if self.original_failure => Arrival::Fire(Err(f)),
            Err(f) => Arrival::Fire(Err(Failure::new(FirstError::new(index, f)))),
        }
    }

    fn complete(&self, values: Vec<T>) -> Res<Vec<T>> {
        Ok(values)
    }
}

struct RacePolicy<T> {
    _marker: PhantomData<fn(T)>,
}

impl<T: Send + 'static> Policy for RacePolicy<T> {
    type Input = T;
    type Slot = Failure;
    type Output = (usize, T);

    fn on_empty(&self) -> Res<Self::Output> {
        Err(failure_group(Vec::new()))
    }

    fn arrive(&self, index: usize, result: Res<T>) -> Arrival<Failure, Self::Output> {
        match result {
            Ok(v) => Arrival::Win(Ok((index, v))),
            Err(f) => Arrival::Keep(f),
        }
    }

    fn complete(&self, failures: Vec<Failure>) -> Res<Self::Output> {
        Err(failure_group(failures))
    }
}
