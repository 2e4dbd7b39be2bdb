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
    assert!(!failure.is::<get_page::PageError>(), "{failure}");
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
