//! Runs the examples of examples/ in-process (each is included as a module
//! and its `run` called), so that they cannot rot. Each check is on what the
//! example prints or returns, never on how long it took.

#[allow(dead_code)]
#[path = "../examples/get_page.rs"]
mod get_page;

use tokio_deferred::{CancelledError, Failure};

// Twisted's "Asynchronous Programming with Twisted": getPage with one
// callback, two chained callbacks, and an errback for a missing page.
#[tokio::test]
async fn get_page_example_prints_the_page_then_lowercase_then_the_404() {
    let out = get_page::Printer::default();
    let addr = get_page::run(&out).await.unwrap();
    assert_eq!(
        out.lines(),
        [
            "The Deferred has called printContents with the following contents:".to_owned(),
            get_page::HOME_PAGE.to_owned(),
            get_page::HOME_PAGE.to_lowercase(),
            format!("An error has occurred: <404 Not Found: http://{addr}/does-not-exist>"),
        ]
    );
}

#[tokio::test]
async fn get_page_fails_with_page_error_carrying_the_status() {
    let addr = get_page::start_server().await.unwrap();
    let url = format!("http://{addr}/nowhere");
    let failure = get_page::get_page(&url).await.unwrap_err();
    let error = failure.downcast_ref::<get_page::PageError>().unwrap();
    assert_eq!(error.status, hyper::StatusCode::NOT_FOUND);
    assert_eq!(error.url, url);
}

#[tokio::test]
async fn get_page_fails_on_a_bad_url_or_a_closed_port() {
    let failure = get_page::get_page("not a url").await.unwrap_err();
    assert!(failure.is::<hyper::http::uri::InvalidUri>(), "{failure}");

    // A port that was just free: nothing listens there any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let failure = get_page::get_page(&format!("http://{addr}/"))
        .await
        .unwrap_err();
    assert!(
        failure.is::<hyper_util::client::legacy::Error>(),
        "{failure}"
    );
}

// Cancelling getPage's Deferred aborts the download.
#[tokio::test]
async fn cancelling_get_page_drops_the_request() {
    // A server that accepts the connection and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted_tx, accepted_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let _ = accepted_tx.send(());
        // Reads until the client hangs up (0 bytes), then reports it.
        let mut buf = [0u8; 1024];
        loop {
            match tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    let d = get_page::get_page(&format!("http://{addr}/slow"));
    accepted_rx.await.unwrap(); // the request is in flight
    d.cancel();
    let failure: Failure = d.await.unwrap_err();
    assert!(failure.is::<CancelledError>(), "{failure}");
    // The client hung up: the server reads the end of the stream. (The
    // timeout only stops a broken build from hanging; it is not measured.)
    tokio::time::timeout(std::time::Duration::from_secs(30), server)
        .await
        .expect("the connection was not closed")
        .unwrap();
}

#[allow(dead_code)]
#[path = "../examples/quickstart.rs"]
mod quickstart;

#[tokio::test]
async fn quickstart_runs_to_the_end() {
    quickstart::run().await;
}

// The README's first command ends with a tour of the other examples: it
// must name each of them, and nothing else.
#[test]
fn quickstart_tour_names_every_other_example() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .filter_map(|path| Some(path.file_stem()?.to_str()?.to_owned()))
        .filter(|name| name != "quickstart")
        .collect();
    on_disk.sort();
    let mut toured: Vec<String> = quickstart::TOUR
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect();
    toured.sort();
    assert_eq!(toured, on_disk);
}

#[allow(dead_code)]
#[path = "../examples/fibonacci_thread.rs"]
mod fibonacci_thread;

/// The 10,000th Fibonacci number, shortened (checked against Python's).
const FIB_10000: &str = "33644764876431783266...66073310059947366875 (2090 digits)";

#[test]
fn fibonacci_number_is_the_10000th() {
    let n = fibonacci_thread::large_fibonacci_number();
    assert_eq!(fibonacci_thread::shorten(&n), FIB_10000);
}

// Twisted's "Generating Deferreds": largeFibonnaciNumber blocks inside a
// Deferred-returning function, deferToThread does not, immediateIsValidUser
// returns succeed(...). The lines that tell durations or tick counts of the
// thread part are the only ones not compared in full.
#[tokio::test]
async fn fibonacci_example_blocks_then_runs_on_a_thread_then_succeeds() {
    let out = fibonacci_thread::Printer::default();
    fibonacci_thread::run(&out).await.unwrap();
    let lines: Vec<String> = out
        .lines()
        .into_iter()
        .map(|line| {
            for prefix in ["Total time taken for", "Meanwhile the ticker ticked"] {
                if line.starts_with(prefix) {
                    return format!("{prefix} ...");
                }
            }
            line
        })
        .collect();
    let mut expected = vec![
        "1. Computing inside a Deferred-returning function blocks the loop.".to_owned(),
        "The ticker is ticking.".to_owned(),
    ];
    expected.extend(
        (0..10).map(|k| format!("Progress: calculating the {}th Fibonacci number", k * 1000)),
    );
    expected.extend(
        [
            "Total time taken for ...",
            // The only thread was busy: the ticker could not tick.
            "During the call the ticker (due every 1 ms) ticked 0 times: the loop was blocked",
            "The Deferred came back already fired: true",
            "Adding the callback now.",
            &format!("The 10000th Fibonacci number is {FIB_10000}"),
            "2. defer_to_thread runs the blocking function on a thread; the loop goes on.",
            // defer_to_thread returned at once; its Deferred fires on the runtime.
            "1st line after the addition of the callback",
            "2nd line after the addition of the callback",
            &format!("largeFibonacciNumber result = {FIB_10000}"),
            "Meanwhile the ticker ticked ...",
            "3. Synchronous results as Deferreds: succeed, fail, maybe_deferred.",
            "immediate_is_valid_user(\"Alice\") -> true",
            "immediate_is_valid_user(\"Bob\") -> false",
            "maybe_deferred(|| synchronous_is_valid_user(\"Agnes\")) fired at once: true",
            "immediate_user_number errback: unknown user \"Bob\"",
            "A second callback is refused; \"second\" is given back",
            "paused: true; the callback has not run yet",
            "after unpause, the callback got \"first\"",
        ]
        .map(str::to_owned),
    );
    assert_eq!(lines, expected);
}

#[test]
fn immediate_results_are_fired_before_they_are_returned() {
    // No runtime needed: succeed and fail fire at once.
    let d = fibonacci_thread::immediate_is_valid_user("Angus");
    assert!(d.try_take().unwrap().unwrap());
    let d = fibonacci_thread::immediate_user_number("Agnes");
    assert_eq!(d.try_take().unwrap().unwrap(), 3);
    let d = fibonacci_thread::immediate_user_number("Mallory");
    let failure = d.try_take().unwrap().unwrap_err();
    assert!(failure.is::<fibonacci_thread::UnknownUserError>());
}

#[allow(dead_code)]
#[path = "../examples/delayed_resource.rs"]
mod delayed_resource;

// Twisted Web's "Asynchronous Responses (via Deferred)": the response is
// rendered by a callback on deferLater. On the paused test clock the
// document's own 5 s pass at once, and the clock tells that they passed.
#[tokio::test(start_paused = true)]
async fn delayed_resource_answers_after_the_default_delay() {
    let resource = delayed_resource::DelayedResource::new(delayed_resource::DEFAULT_DELAY);
    let addr = delayed_resource::start_server(resource).await.unwrap();
    let started = tokio::time::Instant::now();
    let (status, body) = delayed_resource::fetch(&format!("http://{addr}/"))
        .await
        .unwrap();
    assert_eq!(status, hyper::StatusCode::OK);
    assert_eq!(body, "<html><body>Sorry to keep you waiting.</body></html>");
    assert!(started.elapsed() >= delayed_resource::DEFAULT_DELAY);
}

// The same on the real clock with a short delay, three requests at once:
// each waits on its own timer, none blocks the server.
#[tokio::test]
async fn delayed_resource_serves_concurrent_requests_with_a_short_delay() {
    let resource = delayed_resource::DelayedResource::new(std::time::Duration::from_millis(5));
    let addr = delayed_resource::start_server(resource).await.unwrap();
    let url = format!("http://{addr}/");
    let (a, b, c) = tokio::join!(
        delayed_resource::fetch(&url),
        delayed_resource::fetch(&url),
        delayed_resource::fetch(&url)
    );
    for result in [a, b, c] {
        let (status, body) = result.unwrap();
        assert_eq!(status, hyper::StatusCode::OK);
        assert_eq!(body, delayed_resource::PAGE);
    }
}

// A method with no render_* is answered at once (an already-fired
// Deferred), with no wait, even on a very long delay.
#[tokio::test(start_paused = true)]
async fn delayed_resource_refuses_other_methods_at_once() {
    let resource = delayed_resource::DelayedResource::new(std::time::Duration::from_secs(3600));
    let addr = delayed_resource::start_server(resource).await.unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<hyper::body::Bytes>>();
    let request = hyper::Request::post(format!("http://{addr}/"))
        .body(http_body_util::Empty::new())
        .unwrap();
    let started = tokio::time::Instant::now();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), hyper::StatusCode::METHOD_NOT_ALLOWED);
    assert!(started.elapsed() < std::time::Duration::from_secs(3600));
}

// A failed render becomes a 500 page, as Twisted's processingFailed makes
// one; the server, not the resource, does it.
#[tokio::test]
async fn delayed_resource_answers_a_failed_render_with_a_500_page() {
    use http_body_util::BodyExt;
    let page = delayed_resource::processing_failed(tokio_deferred::Failure::msg("no page"));
    assert_eq!(page.status(), hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let body = page.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"Processing Failed");
}

// A client that hangs up before the response: hyper drops the handler's
// future, which (cancel_on_drop) cancels the Deferred and its hour-long
// timer, so the request stops waiting long before the hour is up.
// (Twisted: "Interrupted Responses", request.notifyFinish + d.cancel.)
#[tokio::test]
async fn delayed_resource_cancels_the_timer_when_the_client_hangs_up() {
    use tokio::io::AsyncWriteExt;
    let resource = delayed_resource::DelayedResource::new(std::time::Duration::from_secs(3600));
    let addr = delayed_resource::start_server(resource.clone())
        .await
        .unwrap();
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    // The timeouts only stop a broken build from hanging; nothing is timed.
    let wait_until = |want: usize| {
        let resource = resource.clone();
        tokio::time::timeout(std::time::Duration::from_secs(30), async move {
            while resource.waiting() != want {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        })
    };
    wait_until(1)
        .await
        .expect("the request never reached render_get");
    drop(client);
    wait_until(0)
        .await
        .expect("the hang-up did not cancel the Deferred");
}

#[allow(dead_code)]
#[path = "../examples/local_protocol.rs"]
mod local_protocol;

// LocalDeferred: requests answered in order, a follow-up request sent from
// a callback (the chain waits on it), an errback, `.await` in a local task.
#[tokio::test(flavor = "current_thread")]
async fn local_protocol_answers_in_order_and_chains_the_follow_up() {
    assert_eq!(
        local_protocol::run().await,
        [
            "user:1 is alice",
            "user:2: no such user; using a guest",
            "user:1 has 3 messages",
            "results: 3 messages, guest",
            "ping -> pong",
            "sent: get user:1 | get user:2 | get mail:alice | ping",
        ]
    );
}

#[allow(dead_code)]
#[path = "../examples/job_runner.rs"]
mod job_runner;

/// A transcript recorded by running the Twisted version of an example
/// (`examples/twisted/<name>.py`) with Twisted 26.10; `.ci/run` records it
/// again and checks that it did not change.
fn twisted_transcript(name: &str) -> Vec<String> {
    let path = format!("{}/examples/twisted/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

// A DeferredQueue job runner with task.cooperate under task.react: the
// same lines as the Twisted program, in the same order, on the paused clock
// of a current-thread runtime (react's kind).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn job_runner_prints_what_twisted_prints() {
    let out = job_runner::Printer::default();
    job_runner::run(&out).await.unwrap();
    assert_eq!(out.lines(), twisted_transcript("job_runner"));
}

#[allow(dead_code)]
#[path = "../examples/cancel_walkthrough.rs"]
mod cancel_walkthrough;

// Twelve cancels (before and after the fire, with and without a canceller,
// a callLater canceller, a chain, a coroutine): the same lines as the
// Twisted program.
#[tokio::test(flavor = "current_thread")]
async fn cancel_walkthrough_prints_what_twisted_prints() {
    let out = cancel_walkthrough::Printer::default();
    cancel_walkthrough::run(&out).await;
    assert_eq!(out.lines(), twisted_transcript("cancel_walkthrough"));
}
