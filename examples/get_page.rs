//! Twisted's "Asynchronous Programming with Twisted", in Rust: a
//! `get_page(url)` that returns a [`Deferred`] of a page's body, fetched
//! over real HTTP, handled with callbacks and an errback.
//!
//! ```text
//! cargo run --example get_page
//! ```
//!
//! The document fetches `http://twistedmatrix.com/` with
//! `twisted.web.client.getPage`. To run offline (and in the tests), this
//! example first starts a small HTTP server on `127.0.0.1` (a free port) and
//! fetches its pages instead; the client is hyper's, over a real socket.
//! The document's three programs run one after the other:
//!
//! 1. one callback (`printContents`);
//! 2. two chained callbacks (`lowerCaseContents`, then `printContents`);
//! 3. a page that does not exist: the 404 goes down the errback chain
//!    (`errorHandler`).
//!
//! Where Twisted calls `reactor.stop()` in the last callback, `run` simply
//! awaits the Deferred: a Deferred is a future.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_deferred::{Deferred, Failure, ensure_deferred};

/// The server answered with an error status (Twisted's
/// `twisted.web.error.Error`, which `getPage` errbacks with).
#[derive(Debug, thiserror::Error)]
#[error("{status}: {url}")]
pub struct PageError {
    /// The HTTP status, e.g. `404 Not Found`.
    pub status: StatusCode,
    /// The page that was asked for.
    pub url: String,
}

/// Twisted's `getPage(url)`: returns at once with a Deferred that fires with
/// the body of the page, or fails with a [`PageError`] for an error status
/// (4xx, 5xx), or with the client's error (bad URL, connection refused...).
///
/// The request runs as a task on the current Tokio runtime. Cancelling the
/// Deferred drops the request (and its connection) and fails the Deferred
/// with `CancelledError`, as cancelling `getPage`'s Deferred aborts the
/// download. (`getPage` itself is deprecated in Twisted in favour of
/// `Agent` and treq; the shape of the API is what matters here.)
pub fn get_page(url: &str) -> Deferred<String> {
    let url = url.to_owned();
    ensure_deferred(async move {
        let uri: Uri = url.parse()?; // any error converts into a Failure with `?`
        // A real program would build one Client and clone it (it keeps a
        // pool of connections); one per call keeps `get_page(url)` a plain
        // function like Twisted's.
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let response = client.get(uri).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            return Err(PageError { status, url }.into());
        }
        Ok::<_, Failure>(String::from_utf8(Vec::from(body))?)
    })
}

/// Where the example prints: stdout, and a copy that the test reads.
#[derive(Clone, Debug, Default)]
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

/// The home page of the local server (mixed case, for `lowerCaseContents`).
pub const HOME_PAGE: &str = "<HTML><BODY>Welcome to the Local Twisted Page</BODY></HTML>";
/// What the local server answers, with a 404, for any other path.
pub const NO_SUCH_RESOURCE: &str = "<html><body><h1>No Such Resource</h1></body></html>";

/// The local site: `/` is [`HOME_PAGE`], everything else a 404.
async fn site(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match request.uri().path() {
        "/" => (StatusCode::OK, HOME_PAGE),
        _ => (StatusCode::NOT_FOUND, NO_SUCH_RESOURCE),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    Ok(response)
}

/// Starts the local site on `127.0.0.1` (a free port), served by tasks on
/// the current runtime until it shuts down; returns its address.
pub async fn start_server() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let connection =
                http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(site));
            tokio::spawn(connection);
        }
    });
    Ok(addr)
}

/// Twisted's `lowerCaseContents`: the first of two chained callbacks; its
/// result is what the next callback receives.
fn lower_case_contents(contents: String) -> Result<String, Failure> {
    Ok(contents.to_lowercase())
}

/// Twisted's `printContents` (second version): the last callback.
fn print_contents(out: &Printer) -> impl FnOnce(String) -> Result<(), Failure> + Send + 'static {
    let out = out.clone();
    move |contents| {
        out.print(contents);
        Ok(())
    }
}

/// Twisted's `errorHandler`: "this isn't a very effective handling of the
/// error, we just print it out". Returning `Ok` ends the failure: the
/// Deferred's result is `Ok(())` again.
fn error_handler(out: &Printer) -> impl FnOnce(Failure) -> Result<(), Failure> + Send + 'static {
    let out = out.clone();
    move |error| {
        out.print(format!("An error has occurred: <{error}>"));
        Ok(())
    }
}

/// Runs the document's three programs against a local server; returns the
/// server's address (the printed lines contain it).
pub async fn run(out: &Printer) -> Result<SocketAddr, Failure> {
    let addr = start_server().await?;
    let home = format!("http://{addr}/");

    // 1. getPage returns immediately with a Deferred; printContents is
    //    called with the page when it has been downloaded.
    let printer = out.clone();
    let deferred = get_page(&home).add_callback(move |contents: String| {
        printer.print("The Deferred has called printContents with the following contents:");
        printer.print(contents);
        Ok(())
    });
    deferred.await?;

    // 2. Two callbacks: the result of the first is passed to the second.
    let deferred = get_page(&home)
        .add_callback(lower_case_contents)
        .add_callback(print_contents(out));
    deferred.await?;

    // 3. "We request a page which doesn't exist in order to demonstrate the
    //    error chain": printContents is skipped, errorHandler gets the 404.
    let deferred = get_page(&format!("http://{addr}/does-not-exist"))
        .add_callback(print_contents(out))
        .add_errback(error_handler(out));
    deferred.await?;

    Ok(addr)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(failure) = run(&Printer::default()).await {
        eprintln!("the get_page example failed: {failure}");
        std::process::exit(1);
    }
}
