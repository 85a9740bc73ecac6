//! One probe of one origin: a TCP connect, or an HTTP/1.1 `GET` over a kept-alive
//! connection.
//!
//! The HTTP client is deliberately minimal: each HTTP target's probe task owns one
//! [`HttpProbe`] — one `TcpStream`, one request built once, one reused buffer — and makes
//! one exchange at a time on it (responses are parsed with `httparse`, the parser hyper
//! uses). A general client's pool, per-request task hand-offs and header maps cost more
//! than the probe itself at thousands of probes per second (`benches/probe_bench`).

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Response header an origin may report its load in (0.0–1.0).
pub const LOAD_HEADER: &str = "origin-load";

/// Most bytes of a response head (status line and headers); a longer one is an error.
pub const MAX_HEAD: usize = 16 * 1024;

/// Most body bytes read from a probe answer; after a longer body the connection is dropped
/// (the status still counts; the next probe connects anew).
pub const MAX_BODY: usize = 64 * 1024;

/// Most response headers parsed.
const MAX_HEADERS: usize = 64;

/// What one probe found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// Connected (TCP) or 2xx/3xx (HTTP), with the reported load if any.
    Healthy(Option<f64>),
    /// An HTTP answer other than 2xx/3xx.
    Unhealthy,
    /// No answer within the timeout.
    Timeout,
    /// Refused, reset, unreachable, or not HTTP.
    Error,
}

impl Outcome {
    /// The `result` label of `origin_discovery_probe_results_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Healthy(_) => "healthy",
            Self::Unhealthy => "unhealthy",
            Self::Timeout => "timeout",
            Self::Error => "error",
        }
    }
}

/// A TCP connect; healthy as soon as the handshake completes.
pub async fn tcp(addr: SocketAddr) -> Outcome {
    match TcpStream::connect(addr).await {
        Ok(_) => Outcome::Healthy(None),
        Err(_) => Outcome::Error,
    }
}

/// HTTP probes of one origin over one kept-alive connection.
#[derive(Debug)]
pub struct HttpProbe {
    addr: SocketAddr,
    /// `GET <path> HTTP/1.1` with `Host: <addr>`, built once.
    request: Vec<u8>,
    /// The kept-alive connection, if any.
    conn: Option<TcpStream>,
    /// Read buffer, reused.
    buf: Vec<u8>,
}

/// How the end of a response body is known.
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

impl HttpProbe {
    /// Probes `http://<addr><path>` (`path` starts with `/`); `Host` is the origin's address.
    pub fn new(addr: SocketAddr, path: &str) -> Self {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: origin-discovery-probe\r\nAccept: */*\r\n\r\n"
        )
        .into_bytes();
        Self {
            addr,
            request,
            conn: None,
            buf: Vec::with_capacity(512),
        }
    }

    /// Forgets the connection (after a timeout cut an exchange short: its state is unknown).
    pub fn reset(&mut self) {
        self.conn = None;
        self.buf.clear();
    }

    /// Whether a connection is kept for the next probe.
    pub fn connected(&self) -> bool {
        self.conn.is_some()
    }

    /// One `GET`: 2xx/3xx is healthy. A kept connection the origin closed while idle is
    /// replaced once, transparently; any other failure drops the connection.
    pub async fn probe(&mut self) -> Outcome {
        let reused = self.conn.is_some();
        let mut result = self.exchange().await;
        if reused && matches!(&result, Err(e) if is_stale(e)) {
            result = self.exchange().await;
        }
        match result {
            Ok(outcome) => outcome,
            Err(_) => {
                self.reset();
                Outcome::Error
            }
        }
    }

    async fn exchange(&mut self) -> io::Result<Outcome> {
        if self.conn.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.conn = Some(stream);
        }
        let stream = self.conn.as_mut().expect("connected above");
        self.buf.clear();
        if let Err(e) = stream.write_all(&self.request).await {
            self.conn = None;
            return Err(e);
        }
        // The head, skipping interim (1xx) responses.
        let (status, head_len, framing, close, load) = loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = response.code.unwrap_or(0);
                    if (100..200).contains(&status) {
                        self.buf.drain(..len);
                        continue;
                    }
                    let (framing, close, load) = head_facts(status, response.headers);
                    break (status, len, framing, close, load);
                }
                Ok(httparse::Status::Partial) if self.buf.len() < MAX_HEAD => {}
                _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "not HTTP")),
            }
            if read_more(stream, &mut self.buf).await? == 0 {
                self.conn = None;
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        };
        let outcome = if (200..400).contains(&status) {
            Outcome::Healthy(load)
        } else {
            Outcome::Unhealthy
        };
        // The body, so the connection can carry the next probe.
        let keep = match framing {
            Framing::None => true,
            Framing::Length(n) if n <= MAX_BODY => {
                while self.buf.len() < head_len + n {
                    if read_more(stream, &mut self.buf).await? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                self.buf.len() == head_len + n
            }
            Framing::Chunked => loop {
                match chunked_end(&self.buf[head_len..]) {
                    Ok(Some(end)) => break head_len + end == self.buf.len(),
                    Ok(None) if self.buf.len() - head_len <= MAX_BODY => {
                        if read_more(stream, &mut self.buf).await? == 0 {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                    }
                    _ => break false,
                }
            },
            Framing::Length(_) | Framing::UntilClose => false,
        };
        if close || !keep {
            self.conn = None;
        }
        if self.buf.capacity() > 4 * 1024 {
            self.buf = Vec::with_capacity(512);
        }
        Ok(outcome)
    }
}

/// Body framing, `Connection: close`, and the reported load, from a final response's head.
fn head_facts(status: u16, headers: &[httparse::Header<'_>]) -> (Framing, bool, Option<f64>) {
    let mut length = None;
    let mut chunked = false;
    let mut close = false;
    let mut load = None;
    for h in headers {
        let value = std::str::from_utf8(h.value).unwrap_or("");
        if h.name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse::<usize>().ok();
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = value.to_ascii_lowercase().contains("close");
        } else if h.name.eq_ignore_ascii_case(LOAD_HEADER) {
            load = parse_load(value);
        }
    }
    let framing = if status == 204 || status == 304 {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        if n == 0 {
            Framing::None
        } else {
            Framing::Length(n)
        }
    } else {
        Framing::UntilClose
    };
    (framing, close, load)
}

/// Where a complete chunked body ends in `buf`, `None` if more is needed, `Err` if malformed.
/// Trailers are not expected from a probe answer and count as malformed.
fn chunked_end(buf: &[u8]) -> Result<Option<usize>, ()> {
    let mut at = 0;
    loop {
        match httparse::parse_chunk_size(&buf[at..]) {
            Ok(httparse::Status::Complete((len, 0))) => {
                let end = at + len + 2;
                return match buf.get(at + len..end) {
                    Some(b"\r\n") => Ok(Some(end)),
                    Some(_) => Err(()),
                    None => Ok(None),
                };
            }
            Ok(httparse::Status::Complete((len, size))) => {
                let size = usize::try_from(size).map_err(|_| ())?;
                let data_end = at + len + size;
                match buf.get(data_end..data_end + 2) {
                    Some(b"\r\n") => at = data_end + 2,
                    Some(_) => return Err(()),
                    None => return Ok(None),
                }
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(()),
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.reserve(1024);
    stream.read_buf(buf).await
}

/// The origin closed a kept connection while it was idle (the request never reached it).
fn is_stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

/// An `Origin-Load` value: a finite number within 0.0–1.0, else ignored.
pub fn parse_load(value: &str) -> Option<f64> {
    let v: f64 = value.trim().parse().ok()?;
    (v.is_finite() && (0.0..=1.0).contains(&v)).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn load_header_values_outside_zero_to_one_are_ignored() {
        assert_eq!(parse_load("0.25"), Some(0.25));
        assert_eq!(parse_load(" 1 "), Some(1.0));
        assert_eq!(parse_load("0"), Some(0.0));
        for bad in ["1.5", "-0.1", "NaN", "inf", "high", ""] {
            assert_eq!(parse_load(bad), None, "{bad}");
        }
    }

    #[test]
    fn chunked_bodies_are_delimited() {
        assert_eq!(chunked_end(b"0\r\n\r\n"), Ok(Some(5)));
        assert_eq!(chunked_end(b"2\r\nok\r\n0\r\n\r\n"), Ok(Some(12)));
        assert_eq!(chunked_end(b"2\r\nok\r\n0\r\n"), Ok(None));
        assert_eq!(chunked_end(b"2\r\no"), Ok(None));
        assert_eq!(chunked_end(b"2\r\nokXX0\r\n\r\n"), Err(()));
        assert_eq!(chunked_end(b"zz\r\n"), Err(()));
    }

    /// A server answering each request on one connection with `answers` in turn (raw bytes),
    /// then closing; returns its address and the requests it read.
    async fn server(
        answers: Vec<&'static [u8]>,
    ) -> (SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut answers = answers.into_iter().peekable();
            'conns: while let Ok((mut s, _)) = l.accept().await {
                let mut buf = Vec::new();
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                            continue 'conns;
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    seen.push(String::from_utf8_lossy(&buf[..end]).to_string());
                    buf.drain(..end);
                    let Some(a) = answers.next() else {
                        break 'conns;
                    };
                    if a.is_empty() {
                        continue 'conns; // close without answering
                    }
                    s.write_all(a).await.unwrap();
                    if answers.peek().is_none() {
                        break 'conns;
                    }
                }
            }
            seen
        });
        (addr, task)
    }

    #[tokio::test]
    async fn http_probe_keeps_its_connection_and_reads_status_load_and_bodies() {
        let (addr, task) = server(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nOrigin-Load: 0.4\r\n\r\nok",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 302 Found\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
        ])
        .await;
        let mut p = HttpProbe::new(addr, "/healthz");
        assert_eq!(p.probe().await, Outcome::Healthy(Some(0.4)));
        assert!(p.connected());
        assert_eq!(p.probe().await, Outcome::Healthy(None));
        assert_eq!(p.probe().await, Outcome::Unhealthy);
        assert!(
            p.connected(),
            "an unhealthy answer still keeps the connection"
        );
        assert_eq!(p.probe().await, Outcome::Healthy(None));
        assert!(!p.connected(), "Connection: close");
        drop(p);
        let seen = task.await.unwrap();
        assert_eq!(seen.len(), 4);
        assert!(
            seen[0].starts_with("GET /healthz HTTP/1.1\r\n"),
            "{}",
            seen[0]
        );
        assert!(
            seen[0].contains(&format!("Host: {addr}\r\n")),
            "{}",
            seen[0]
        );
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_replaced_transparently() {
        // The first connection answers once, then closes after the next request (an idle
        // timeout racing the probe); the probe retries once on a new connection.
        let (addr, _task) = server(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            b"",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        ])
        .await;
        let mut p = HttpProbe::new(addr, "/");
        assert_eq!(p.probe().await, Outcome::Healthy(None));
        assert_eq!(p.probe().await, Outcome::Healthy(None));
    }

    #[tokio::test]
    async fn garbage_and_refusals_are_errors() {
        let (addr, _task) = server(vec![b"SSH-2.0-OpenSSH_9.6\r\n\r\n"]).await;
        let mut p = HttpProbe::new(addr, "/");
        assert_eq!(p.probe().await, Outcome::Error);
        assert!(!p.connected());
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = l.local_addr().unwrap();
        drop(l);
        assert_eq!(HttpProbe::new(closed, "/").probe().await, Outcome::Error);
        assert_eq!(tcp(closed).await, Outcome::Error);
    }
}
