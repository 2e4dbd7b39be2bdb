//! `#[inline_callbacks]`, `return_value!` and `ensure_deferred`: the
//! `thingummy` and `crawl` examples of Twisted's `twisted.internet.defer`
//! API documentation, in Rust.
//!
//! ```text
//! cargo run --example inline_callbacks
//! ```
//!
//! `get_page` here is a stand-in for an HTTP client: it returns a Deferred
//! that a task fires a moment later, as a reactor would (the `get_page`
//! example does the same over real HTTP).

use std::collections::BTreeMap;

use tokio_deferred::{Deferred, Failure, ensure_deferred, inline_callbacks, return_value};

/// The page does not exist on the fake site.
#[derive(Debug, thiserror::Error)]
#[error("404 page not found: {0}")]
pub struct PageNotFound(pub String);

/// The fake site: URL → body.
fn fake_site(url: &str) -> Option<&'static str> {
    match url {
        "http://localhost:8080/" => Some("I love Twisted"),
        "http://localhost:8080/asyncio" => Some("I love asyncio"),
        "http://localhost:8080/about" => Some("<h1>About</h1>"),
        "http://localhost:8080/news" => Some("<h1>News</h1>"),
        _ => None,
    }
}

/// Twisted's `getPage(url)`: a Deferred fired by another task with the
/// page's body, or with [`PageNotFound`].
pub fn get_page(url: &str) -> Deferred<String> {
    let (d, resolver) = Deferred::new();
    let url = url.to_owned();
    tokio::spawn(async move {
        tokio::task::yield_now().await; // the "network": answer later
        match fake_site(&url) {
            Some(body) => resolver.callback(body.to_owned()).ok(),
            None => resolver.errback(PageNotFound(url)).ok(),
        };
    });
    d
}

/// Twisted:
///
/// ```python
/// @inlineCallbacks
/// def thingummy():
///     thing = yield makeSomeRequestResultingInDeferred()
///     if thing == 'I love Twisted':
///         # will become the result of the Deferred
///         returnValue('TWISTED IS GREAT!')
///     else:
///         # will trigger an errback
///         raise Exception('DESTROY ALL LIFE')
/// ```
#[inline_callbacks]
pub async fn thingummy(url: String) -> Result<String, Failure> {
    let thing = get_page(&url).await?; // a failed page fails thingummy too
    if thing == "I love Twisted" {
        // will become the result of the Deferred (`return Ok(..)` is the
        // idiomatic spelling; Twisted deprecated returnValue in 24.7)
        return_value!("TWISTED IS GREAT!".to_owned());
    }
    // will trigger an errback
    Err(Failure::msg("DESTROY ALL LIFE"))
}

/// Twisted:
///
/// ```python
/// async def crawl(pages):
///     results = {}
///     for page in pages:
///         results[page] = await treq.content(await treq.get(page))
///     return results
/// ```
pub async fn crawl(pages: Vec<String>) -> Result<BTreeMap<String, String>, Failure> {
    let mut results = BTreeMap::new();
    for page in pages {
        let body = get_page(&page).await?;
        results.insert(page, body);
    }
    Ok(results)
}

/// Runs both examples and returns the lines `main` prints.
pub async fn run() -> Vec<String> {
    let mut lines = Vec::new();

    // thingummy(): a plain call that returns a Deferred, handled here with
    // Twisted-style callbacks, then awaited.
    for path in ["", "asyncio", "missing"] {
        let url = format!("http://localhost:8080/{path}");
        let d = thingummy(url.clone()).add_callbacks(
            move |great| Ok(format!("thingummy({url}) -> {great}")),
            |failure| Ok(format!("thingummy: errback: {failure}")),
        );
        lines.push(d.await.unwrap_or_else(|f| format!("unexpected: {f}")));
    }

    // d = ensureDeferred(crawl(pages)); d.addCallback(print)
    let pages = ["", "about", "news"]
        .iter()
        .map(|p| format!("http://localhost:8080/{p}"))
        .collect();
    let d = ensure_deferred(crawl(pages)).add_callback(|results| {
        Ok(results
            .iter()
            .map(|(page, body)| format!("crawl: {page} -> {body}"))
            .collect::<Vec<_>>())
    });
    match d.await {
        Ok(crawled) => lines.extend(crawled),
        Err(f) => lines.push(format!("crawl failed: {f}")),
    }

    // One missing page fails the whole crawl, as an exception would.
    let d = ensure_deferred(crawl(vec!["http://localhost:8080/gone".to_owned()]));
    if let Err(f) = d.await {
        lines.push(format!("crawl: errback: {f}"));
    }
    lines
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    for line in run().await {
        println!("{line}");
    }
}
