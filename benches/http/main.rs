//! The HTTP benchmark's servers and its load generator, in one binary
//! (`scripts/http_bench.sh` builds it with `cargo build --release --example
//! http_bench` and runs every server under the same load).
//!
//! ```text
//! http_bench serve deferred DELAY_MS   # examples/delayed_resource.rs: defer_later + a callback
//! http_bench serve tokio DELAY_MS      # the same hyper server with tokio::time::sleep
//! http_bench serve tokio-alloc DELAY_MS  # the same, holding three heap blocks per request (a control)
//! http_bench load ADDR CONNECTIONS SECONDS [--warmup S] [--pid PID] [--label L] [--delay-ms D] [--threads N] [--json FILE]
//! ```
//!
//! A server prints `listening on http://ADDR/` once it accepts, then serves
//! `GET /` with Twisted Web's "Sorry to keep you waiting." page after the
//! delay, on a current-thread runtime (one thread, as Twisted's reactor).
//! The Twisted server is `benches/http/delayed_resource.py`.
//!
//! The load generator is closed-loop (on a multi-thread runtime with one
//! worker per core unless `--threads` says otherwise): it opens CONNECTIONS
//! keep-alive HTTP/1.1 connections, and each sends `GET /`, reads the whole
//! response, checks it, and sends the next, for `--warmup` seconds (not
//! counted) and then SECONDS seconds (counted). Its HTTP client is a minimal
//! one (a fixed request; status line, headers, `Content-Length` or chunked
//! body), as `wrk`'s is, so that it costs less CPU per request than the
//! servers it measures. It prints one Markdown row: requests/s, the latency
//! percentiles of the counted requests, errors, and, with `--pid`, the
//! server's peak RSS (`VmHWM`) and CPU use in the counted seconds (100 % =
//! one core busy: below that, the server was not the bottleneck), and on
//! stderr its RSS (`VmRSS`) sampled every second from the start of the
//! warm-up. `--json FILE` appends the
//! same as one JSON object per line (what `scripts/http_bench.sh` reads).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

#[allow(dead_code)]
#[path = "../../examples/delayed_resource.rs"]
mod delayed_resource;

use delayed_resource::{DelayedResource, PAGE};

const USAGE: &str = "usage: http_bench serve deferred|tokio|tokio-alloc DELAY_MS\n       \
    http_bench load ADDR CONNECTIONS SECONDS [--warmup S] [--pid PID] [--label L] [--delay-ms D] [--threads N] [--json FILE]";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["serve", kind, delay_ms] => serve(kind, delay_ms),
        ["load", addr, connections, seconds, options @ ..] => {
            load(addr, connections, seconds, options)
        }
        _ => Err(USAGE.to_owned()),
    };
    if let Err(message) = result {
        eprintln!("{message}");
        std::process::exit(2);
    }
}

fn parse<T: std::str::FromStr>(what: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{what}: cannot parse {value:?}\n{USAGE}"))
}

fn serve(kind: &str, delay_ms: &str) -> Result<(), String> {
    let delay = Duration::from_millis(parse("DELAY_MS", delay_ms)?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let addr = match kind {
            "deferred" => delayed_resource::start_server(DelayedResource::new(delay)).await,
            "tokio" => start_sleep_server(delay, false).await,
            "tokio-alloc" => start_sleep_server(delay, true).await,
            _ => return Err(USAGE.to_owned()),
        }
        .map_err(|e| format!("cannot listen: {e}"))?;
        println!("listening on http://{addr}/");
        std::future::pending::<()>().await;
        Ok(())
    })
}

/// The plain-Tokio server: `examples/delayed_resource.rs`'s hyper set-up,
/// with the Deferred chain replaced by `tokio::time::sleep` (the response
/// future is dropped, and the sleep with it, when the client hangs up).
///
/// With `hold_blocks`, a control for the RSS run: each request also holds,
/// over its sleep, three heap blocks of the sizes a tokio-deferred request
/// allocates (the Deferred, and its two callback links holding the request
/// and then the response), so the two servers differ in the timer and the
/// chain, not in how many blocks the allocator places per request.
async fn start_sleep_server(delay: Duration, hold_blocks: bool) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(move |request: Request<Incoming>| async move {
                let page = match *request.method() {
                    Method::GET => {
                        let blocks = hold_blocks.then(|| {
                            std::hint::black_box((
                                Box::new([1u8; 104]),
                                Box::new([1u8; 160]),
                                Box::new([1u8; 272]),
                            ))
                        });
                        tokio::time::sleep(delay).await;
                        std::hint::black_box(blocks);
                        Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())))
                    }
                    _ => {
                        let mut response =
                            Response::new(Full::new(Bytes::from_static(b"Method Not Allowed")));
                        *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                        response
                    }
                };
                Ok::<_, Infallible>(page)
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    Ok(addr)
}

/// What one connection's loop measured.
#[derive(Default)]
struct Tally {
    /// Latencies of the counted requests, in microseconds.
    latencies_us: Vec<u32>,
    /// Requests that failed or got a wrong answer (warm-up included).
    errors: u64,
}

/// Options of `load`.
struct LoadOptions {
    threads: usize,
    json: Option<String>,
    warmup: Duration,
    pid: Option<u32>,
    label: String,
    /// The server's delay, recorded in the JSON line.
    delay_ms: Option<f64>,
}

fn load_options(options: &[&str]) -> Result<LoadOptions, String> {
    let mut out = LoadOptions {
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        json: None,
        warmup: Duration::from_secs(2),
        pid: None,
        label: "server".to_owned(),
        delay_ms: None,
    };
    let mut it = options.iter();
    while let Some(option) = it.next() {
        let value = it.next().ok_or_else(|| USAGE.to_owned())?;
        match *option {
            "--warmup" => out.warmup = Duration::from_secs_f64(parse("--warmup", value)?),
            "--pid" => out.pid = Some(parse("--pid", value)?),
            "--threads" => out.threads = parse("--threads", value)?,
            "--json" => out.json = Some((*value).to_owned()),
            "--label" => out.label = (*value).to_owned(),
            "--delay-ms" => out.delay_ms = Some(parse("--delay-ms", value)?),
            _ => return Err(USAGE.to_owned()),
        }
    }
    Ok(out)
}

fn load(addr: &str, connections: &str, seconds: &str, options: &[&str]) -> Result<(), String> {
    let addr: SocketAddr = parse("ADDR", addr)?;
    let connections: usize = parse("CONNECTIONS", connections)?;
    let measured = Duration::from_secs_f64(parse("SECONDS", seconds)?);
    let options = load_options(options)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        // Connect everyone first (64 at a time: a listen backlog may be
        // small), then start every loop at the same instant.
        let mut streams = Vec::with_capacity(connections);
        for chunk in (0..connections).collect::<Vec<_>>().chunks(64) {
            let batch = futures::future::join_all(chunk.iter().map(|_| connect(addr))).await;
            for stream in batch {
                streams.push(stream?);
            }
        }
        let start = Instant::now();
        let counted_from = start + options.warmup;
        let until = counted_from + measured;
        let rss = options
            .pid
            .map(|pid| tokio::spawn(sample_rss(pid, start, counted_from, until)));
        let tasks: Vec<_> = streams
            .into_iter()
            .map(|stream| tokio::spawn(client_loop(addr, stream, counted_from, until)))
            .collect();
        let mut latencies = Vec::new();
        let mut errors = 0;
        for task in tasks {
            let tally = task.await.map_err(|e| e.to_string())?;
            latencies.extend(tally.latencies_us);
            errors += tally.errors;
        }
        latencies.sort_unstable();
        let rss = match rss {
            Some(task) => Some(task.await.map_err(|e| e.to_string())?),
            None => None,
        };
        report(&options, connections, measured, &latencies, errors, rss)
    })
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let mut tries = 0;
    loop {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                return Ok(stream);
            }
            Err(e) if tries < 50 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(format!("cannot connect to {addr}: {e}")),
        }
    }
}

/// One connection's closed loop: request, whole response, next request.
/// A failed connection is opened again (its error counted).
async fn client_loop(
    addr: SocketAddr,
    stream: TcpStream,
    counted_from: Instant,
    until: Instant,
) -> Tally {
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut tally = Tally::default();
    let mut stream = Some(stream);
    let mut buf = Vec::with_capacity(4096);
    while Instant::now() < until {
        let mut io = match stream.take() {
            Some(stream) => stream,
            None => match connect(addr).await {
                Ok(stream) => stream,
                Err(_) => {
                    tally.errors += 1;
                    return tally;
                }
            },
        };
        buf.clear();
        loop {
            let now = Instant::now();
            if now >= until {
                break;
            }
            match one_request(&mut io, request.as_bytes(), &mut buf).await {
                Ok(()) => {
                    let done = Instant::now();
                    if now >= counted_from && done <= until {
                        let us = (done - now).as_micros();
                        tally
                            .latencies_us
                            .push(u32::try_from(us).unwrap_or(u32::MAX));
                    }
                }
                Err(()) => {
                    tally.errors += 1;
                    break;
                }
            }
        }
    }
    tally
}

/// Sends one `GET /` and reads the whole response (`buf` keeps what the
/// server sent beyond it, which is nothing when it keeps to HTTP/1.1).
/// `Ok` only for `200` with [`PAGE`] as the body.
///
/// A minimal HTTP/1.1 client (status line, `Content-Length` or chunked
/// body), as `wrk` has: hyper's client costs more CPU per request than the
/// servers measured here, and the generator shares the machine with them.
async fn one_request(io: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) -> Result<(), ()> {
    io.write_all(request).await.map_err(drop)?;
    loop {
        match parse_response(buf) {
            Parsed::Done { ok, used } => {
                buf.drain(..used);
                return if ok { Ok(()) } else { Err(()) };
            }
            Parsed::Invalid => return Err(()),
            Parsed::Partial => {
                if buf.len() > 64 * 1024 {
                    return Err(());
                }
                buf.reserve(4096);
                if io.read_buf(buf).await.map_err(drop)? == 0 {
                    return Err(()); // closed by the server
                }
            }
        }
    }
}

/// What [`parse_response`] found at the start of the buffer.
#[derive(Debug, PartialEq)]
enum Parsed {
    /// A whole response, `used` bytes long; `ok`: `200` with [`PAGE`].
    Done { ok: bool, used: usize },
    /// More bytes are needed.
    Partial,
    /// Not an HTTP/1.1 response this client understands.
    Invalid,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_response(buf: &[u8]) -> Parsed {
    let Some(head_len) = find(buf, b"\r\n\r\n") else {
        return Parsed::Partial;
    };
    let Ok(head) = std::str::from_utf8(&buf[..head_len]) else {
        return Parsed::Invalid;
    };
    let mut lines = head.split("\r\n");
    let status_ok = match lines.next().map(|l| l.split(' ').collect::<Vec<_>>()) {
        Some(parts) if parts.len() >= 2 && parts[0].starts_with("HTTP/1.") => parts[1] == "200",
        _ => return Parsed::Invalid,
    };
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Parsed::Invalid;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let Ok(n) = value.parse::<usize>() else {
                return Parsed::Invalid;
            };
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let body_at = head_len + 4;
    if chunked {
        // Chunks: HEX-SIZE CRLF DATA CRLF ..., ending with a 0-size chunk
        // and an empty trailer.
        let mut body = Vec::new();
        let mut at = body_at;
        loop {
            let Some(eol) = find(&buf[at..], b"\r\n") else {
                return Parsed::Partial;
            };
            let size_field = std::str::from_utf8(&buf[at..at + eol]).unwrap_or("");
            let size_field = size_field.split(';').next().unwrap_or("").trim();
            let Ok(size) = usize::from_str_radix(size_field, 16) else {
                return Parsed::Invalid;
            };
            at += eol + 2;
            if buf.len() < at + size + 2 {
                return Parsed::Partial;
            }
            if size == 0 {
                // No trailers are expected: the empty line ends the body.
                if &buf[at..at + 2] != b"\r\n" {
                    return Parsed::Invalid;
                }
                let ok = status_ok && body == PAGE.as_bytes();
                return Parsed::Done { ok, used: at + 2 };
            }
            body.extend_from_slice(&buf[at..at + size]);
            at += size + 2;
        }
    }
    let Some(length) = length else {
        return Parsed::Invalid; // a body up to the end of the connection
    };
    if buf.len() < body_at + length {
        return Parsed::Partial;
    }
    let ok = status_ok && &buf[body_at..body_at + length] == PAGE.as_bytes();
    Parsed::Done {
        ok,
        used: body_at + length,
    }
}

/// The server's RSS and CPU time over the run.
struct Rss {
    /// `VmRSS` in KiB, one sample per second from the start of the warm-up.
    samples_kib: Vec<u64>,
    /// `VmHWM` in KiB at the end.
    peak_kib: u64,
    /// The server's CPU time (user + system) in the counted seconds, as a
    /// share of one core.
    cpu: f64,
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU time of a process, in clock ticks (`/proc/PID/stat`).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces): utime and
    // stime are the 12th and 13th of them.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

async fn sample_rss(pid: u32, start: Instant, counted_from: Instant, until: Instant) -> Rss {
    let mut samples_kib = Vec::new();
    let mut next = start;
    let mut cpu_from = None;
    while next <= until {
        tokio::time::sleep_until(next).await;
        samples_kib.extend(proc_status_kib(pid, "VmRSS:"));
        if next >= counted_from && cpu_from.is_none() {
            cpu_from = Some((cpu_ticks(pid), Instant::now()));
        }
        next += Duration::from_secs(1);
    }
    let cpu = match (cpu_from, cpu_ticks(pid)) {
        (Some((Some(from), at)), Some(to)) => {
            // Linux reports CPU times in USER_HZ ticks, 100 per second.
            (to - from) as f64 / 100.0 / at.elapsed().as_secs_f64()
        }
        _ => f64::NAN,
    };
    let peak_kib = proc_status_kib(pid, "VmHWM:").unwrap_or(0);
    Rss {
        samples_kib,
        peak_kib,
        cpu,
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn report(
    options: &LoadOptions,
    connections: usize,
    measured: Duration,
    latencies: &[u32],
    errors: u64,
    rss: Option<Rss>,
) -> Result<(), String> {
    let label = &options.label;
    let rate = latencies.len() as f64 / measured.as_secs_f64();
    let (p50, p99, max) = (
        percentile(latencies, 0.50),
        percentile(latencies, 0.99),
        percentile(latencies, 1.0),
    );
    let (peak, cpu) = rss.as_ref().map_or(("—".to_owned(), "—".to_owned()), |r| {
        (
            format!("{:.1} MiB", mib(r.peak_kib)),
            format!("{:.0} %", r.cpu * 100.0),
        )
    });
    println!(
        "| {label} | {connections} | {rate:.0} | {p50:.2} ms | {p99:.2} ms | {max:.2} ms | {errors} | {peak} | {cpu} |"
    );
    let series: Vec<String> = rss
        .as_ref()
        .map(|r| r.samples_kib.iter().map(u64::to_string).collect())
        .unwrap_or_default();
    if let Some(r) = &rss {
        let mibs: Vec<String> = r
            .samples_kib
            .iter()
            .map(|&k| format!("{:.1}", mib(k)))
            .collect();
        eprintln!(
            "{label} {connections}: RSS MiB per second: {}",
            mibs.join(" ")
        );
    }
    if let Some(path) = &options.json {
        use std::io::Write;
        let (peak_kib, cpu) = rss.as_ref().map_or((0, f64::NAN), |r| (r.peak_kib, r.cpu));
        let line = format!(
            "{{\"label\": {label:?}, \"delay_ms\": {}, \"connections\": {connections}, \"rps\": {rate:.1}, \
             \"p50_ms\": {p50:.3}, \"p99_ms\": {p99:.3}, \"max_ms\": {max:.3}, \"errors\": {errors}, \
             \"peak_kib\": {peak_kib}, \"cpu\": {}, \"rss_kib\": [{}]}}\n",
            options
                .delay_ms
                .map_or_else(|| "null".to_owned(), |d| format!("{d}")),
            if cpu.is_finite() {
                format!("{cpu:.3}")
            } else {
                "null".to_owned()
            },
            series.join(", ")
        );
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{PAGE, Parsed, parse_response};

    fn with_length(status: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\ndate: now\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn a_whole_response_with_content_length_is_done_and_ok() {
        let bytes = with_length("200 OK", PAGE);
        let used = bytes.len();
        assert_eq!(parse_response(&bytes), Parsed::Done { ok: true, used });
    }

    #[test]
    fn a_chunked_response_is_reassembled() {
        let (a, b) = PAGE.split_at(10);
        let bytes = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        )
        .into_bytes();
        let used = bytes.len();
        assert_eq!(parse_response(&bytes), Parsed::Done { ok: true, used });
    }

    #[test]
    fn every_prefix_of_a_response_is_partial() {
        let bytes = with_length("200 OK", PAGE);
        for end in 0..bytes.len() {
            assert_eq!(
                parse_response(&bytes[..end]),
                Parsed::Partial,
                "{end} bytes"
            );
        }
    }

    #[test]
    fn a_response_followed_by_more_bytes_uses_only_its_own() {
        let mut bytes = with_length("200 OK", PAGE);
        let used = bytes.len();
        bytes.extend_from_slice(b"HTTP/1.1 200");
        assert_eq!(parse_response(&bytes), Parsed::Done { ok: true, used });
    }

    #[test]
    fn another_status_or_body_is_not_ok() {
        let bytes = with_length("500 Internal Server Error", PAGE);
        let used = bytes.len();
        assert_eq!(parse_response(&bytes), Parsed::Done { ok: false, used });
        let bytes = with_length("200 OK", "something else");
        let used = bytes.len();
        assert_eq!(parse_response(&bytes), Parsed::Done { ok: false, used });
    }

    #[test]
    fn what_is_not_http_is_invalid() {
        assert_eq!(parse_response(b"SSH-2.0\r\n\r\n"), Parsed::Invalid);
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n"),
            Parsed::Invalid
        );
        // No length and not chunked: a body up to the connection's end,
        // which a keep-alive client cannot use.
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\n\r\nbody"),
            Parsed::Invalid
        );
    }
}
