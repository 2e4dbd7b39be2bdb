//! A protocol client on one thread with `LocalDeferred`: Twisted's idiom of
//! a protocol that keeps a queue of the Deferreds of the requests it sent
//! and fires each one when its answer line arrives (as
//! `twisted.protocols.memcache` does), with callbacks that hold `Rc`s,
//! a callback that sends a follow-up request (implicit chaining), an
//! errback, and `.await` in a local task.
//!
//! Run with `cargo run --example local_protocol`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use tokio_deferred::{Failure, LocalDeferred, LocalResolver};

/// The client side of a line protocol: one answer line per request, in
/// order; an answer starting with `ERR ` is an error.
#[derive(Debug, Default)]
pub struct Client {
    /// The resolvers of the requests sent and not answered yet.
    pending: RefCell<VecDeque<LocalResolver<String>>>,
    /// What went out on the wire.
    pub sent: RefCell<Vec<String>>,
}

impl Client {
    /// Sends a request; the Deferred fires with its answer.
    pub fn request(&self, command: &str) -> LocalDeferred<String> {
        let (d, resolver) = LocalDeferred::new();
        self.sent.borrow_mut().push(command.to_owned());
        self.pending.borrow_mut().push_back(resolver);
        d
    }

    /// `lineReceived`: fires the oldest request's Deferred. The queue is
    /// released before the callbacks run, so they may send requests.
    pub fn line_received(&self, line: &str) {
        let Some(resolver) = self.pending.borrow_mut().pop_front() else {
            return; // an answer nobody asked for: ignored
        };
        let answer = match line.strip_prefix("ERR ") {
            Some(error) => Err(Failure::msg(error.to_owned())),
            None => Ok(line.to_owned()),
        };
        // Fired once: the resolver was just taken off the queue.
        let _ = resolver.resolve(answer);
    }
}

/// Runs the example and returns what it printed.
pub async fn run() -> Vec<String> {
    let client = Rc::new(Client::default());
    let log = Rc::new(RefCell::new(Vec::new()));
    let say = {
        let log = log.clone();
        move |line: String| {
            println!("{line}");
            log.borrow_mut().push(line);
        }
    };

    // A callback chain that sends a follow-up request from a callback: the
    // chain waits for the second answer (Twisted's implicit chaining).
    let (c, s) = (client.clone(), say.clone());
    let user = client
        .request("get user:1")
        .add_callback(move |name| {
            s(format!("user:1 is {name}"));
            c.request(&format!("get mail:{name}")) // the chain waits on it
        })
        .add_callback(|mail: String| Ok(mail.split(',').count()));
    let s = say.clone();
    let user = user.add_callback(move |n| {
        s(format!("user:1 has {n} messages"));
        Ok(n)
    });

    // An errback turns the server's error into a default.
    let s = say.clone();
    let missing = client.request("get user:2").add_errback(move |f: Failure| {
        s(format!("user:2: {f}; using a guest"));
        Ok("guest".to_owned())
    });

    // The answers arrive in order; the second request was sent by the
    // first one's callback, so its answer comes third.
    client.line_received("alice");
    client.line_received("ERR no such user");
    client.line_received("hi,lunch?,invoice");

    let messages = user.try_take().expect("fired").expect("a count");
    let guest = missing.try_take().expect("fired").expect("recovered");
    say(format!("results: {messages} messages, {guest}"));

    // The same Deferreds are futures: awaited in a task on this thread.
    let local = tokio::task::LocalSet::new();
    let c = client.clone();
    let answer = local
        .run_until(async move {
            let waiter = tokio::task::spawn_local(c.request("ping"));
            tokio::task::yield_now().await;
            c.line_received("pong");
            waiter.await
        })
        .await;
    match answer {
        Ok(Ok(pong)) => say(format!("ping -> {pong}")),
        other => say(format!("ping failed: {other:?}")),
    }
    say(format!("sent: {}", client.sent.borrow().join(" | ")));
    log.borrow().clone()
}

#[tokio::main(flavor = "current_thread")]
#[allow(dead_code)]
async fn main() {
    run().await;
}
