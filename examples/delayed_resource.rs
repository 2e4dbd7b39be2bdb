//! Twisted Web's "Asynchronous Responses (via Deferred)", in Rust: an HTTP
//! resource whose response is rendered by a callback on a `defer_later`
//! Deferred, served by hyper on `127.0.0.1`.
//!
//! ```text
//! cargo run --example delayed_resource               # one request, a 5 s wait
//! cargo run --example delayed_resource -- 0.5        # a 0.5 s delay
//! cargo run --example delayed_resource -- 5 --serve  # keep serving; try curl
//! ```
//!
//! Twisted's version:
//!
//! ```python
//! class DelayedResource(Resource):
//!     def _delayedRender(self, request):
//!         request.write(b"<html><body>Sorry to keep you waiting.</body></html>")
//!         request.finish()
//!
//!     def render_GET(self, request):
//!         d = deferLater(reactor, 5, lambda: request)
//!         d.addCallback(self._delayedRender)
//!         return NOT_DONE_YET
//! ```
//!
//! # `NOT_DONE_YET` in Rust
//!
//! A Twisted `render_GET` returns either the body (bytes), which is sent at
//! once, or the marker `NOT_DONE_YET`, which promises that some later code
//! will call `request.write(...)` and `request.finish()`. A hyper handler
//! instead returns a *future of the response*, and a `Deferred` is a future.
//! So:
//!
//! * returning an unfired `Deferred<Response>` is `NOT_DONE_YET`: hyper
//!   waits for it and sends the response when it fires;
//! * returning `succeed(response)` (already fired) is returning bytes;
//! * firing the Deferred with the finished `Response` is `request.write` +
//!   `request.finish()`, and the types make it impossible to forget
//!   `finish()` (a common Twisted mistake, which leaves the client hanging).
//!
//! When the client hangs up first, hyper drops the handler's future. Here
//! that future awaits [`Deferred::cancel_on_drop`], so dropping it cancels
//! the Deferred and with it the pending timer (Twisted's "Interrupted
//! Responses" does the same by hand with `request.notifyFinish()` and
//! `d.cancel()`). A Deferred that fails becomes a 500 page in the server
//! glue, where Twisted's `Request.processingFailed` makes one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_deferred::{CancelledError, Deferred, Failure, defer_later, succeed};

/// The document's delay: 5 seconds.
pub const DEFAULT_DELAY: Duration = Duration::from_secs(5);

/// What `_delayedRender` writes.
pub const PAGE: &str = "<html><body>Sorry to keep you waiting.</body></html>";

/// A response with a body that is all in memory.
pub type Page = Response<Full<Bytes>>;

/// Twisted's `DelayedResource`: answers `GET` after a delay. Clones share
/// their count of waiting requests.
#[derive(Clone, Debug)]
pub struct DelayedResource {
    delay: Duration,
    waiting: Arc<AtomicUsize>,
}

impl DelayedResource {
    /// A resource whose responses wait `delay`.
    pub fn new(delay: Duration) -> DelayedResource {
        DelayedResource {
            delay,
            waiting: Arc::default(),
        }
    }

    /// How many requests are waiting for their response now (a gauge a
    /// real server would export). A request stops waiting when its response
    /// is rendered, or when its client hangs up.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Twisted's `_delayedRender`: "writes" the page and "finishes" the
    /// request, by making the whole response.
    fn delayed_render(_request: Request<Incoming>) -> Result<Page, Failure> {
        Ok(Response::new(Full::new(Bytes::from_static(
            PAGE.as_bytes(),
        ))))
    }

    /// Twisted's `render_GET`.
    pub fn render_get(&self, request: Request<Incoming>) -> Deferred<Page> {
        // The request counts as waiting until `_delayedRender` runs or is
        // dropped unrun (the Deferred failed or was cancelled): the guard
        // rides in the callback, so counting adds no link to the chain.
        let waiting = Waiting::enter(&self.waiting);
        // d = deferLater(reactor, 5, lambda: request)
        let d = defer_later(self.delay, move || Ok(request));
        // d.addCallback(self._delayedRender)
        // return NOT_DONE_YET: the Deferred itself, not fired yet.
        d.add_callback(move |request| {
            drop(waiting);
            Self::delayed_render(request)
        })
    }

    /// Twisted's `Resource.render`: dispatches on the method. A method with
    /// no `render_*` gets an immediate answer (an already-fired Deferred,
    /// like a `render` that returns bytes).
    pub fn render(&self, request: Request<Incoming>) -> Deferred<Page> {
        match *request.method() {
            Method::GET => self.render_get(request),
            _ => succeed(plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")),
        }
    }
}

/// One request counted in [`DelayedResource::waiting`] until dropped.
struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    fn enter(count: &Arc<AtomicUsize>) -> Waiting {
        count.fetch_add(1, Ordering::SeqCst);
        Waiting(count.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Twisted's `Request.processingFailed`: a failed render becomes a 500 page.
/// (A cancelled Deferred means the client has gone: nobody reads this page.)
pub fn processing_failed(failure: Failure) -> Page {
    if !failure.is::<CancelledError>() {
        eprintln!("rendering failed: {failure}");
    }
    plain(StatusCode::INTERNAL_SERVER_ERROR, "Processing Failed")
}

/// A small page with a status.
fn plain(status: StatusCode, text: &'static str) -> Page {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

/// Serves `resource` on `127.0.0.1` (a free port) with tasks on the current
/// runtime, until it shuts down; returns the address.
pub async fn start_server(resource: DelayedResource) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            // The handler's future awaits the Deferred, which is cancelled
            // if hyper drops it (the client hung up); a failure becomes the
            // 500 page, as the server (not the resource) does in Twisted.
            let resource = resource.clone();
            let service = service_fn(move |request| {
                let page = resource.render(request).cancel_on_drop();
                async move { Ok::<_, Infallible>(page.await.unwrap_or_else(processing_failed)) }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    Ok(addr)
}

/// A real HTTP `GET` of `url`: its status and body.
pub async fn fetch(url: &str) -> Result<(StatusCode, String), Failure> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client.get(url.parse::<Uri>()?).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8(body.to_vec())?))
}

/// `[SECONDS] [--serve]`.
fn parse_args() -> Option<(Duration, bool)> {
    let (mut delay, mut serve) = (DEFAULT_DELAY, false);
    for arg in std::env::args().skip(1) {
        if arg == "--serve" {
            serve = true;
        } else {
            delay = Duration::try_from_secs_f64(arg.parse().ok()?).ok()?;
        }
    }
    Some((delay, serve))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Failure> {
    let Some((delay, serve)) = parse_args() else {
        eprintln!("usage: cargo run --example delayed_resource [-- [SECONDS] [--serve]]");
        std::process::exit(2);
    };
    let addr = start_server(DelayedResource::new(delay)).await?;
    println!("DelayedResource on http://{addr}/ answers after {delay:?}");
    if serve {
        println!("try: curl http://{addr}/   (Ctrl-C to stop)");
        std::future::pending::<()>().await;
    }
    let started = tokio::time::Instant::now();
    let (status, body) = fetch(&format!("http://{addr}/")).await?;
    println!(
        "GET / -> {status} after {:.1} s: {body}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
