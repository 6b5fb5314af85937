//! A minimal HTTP/1.1 client on a raw TCP stream, for what an HTTP library will not do: stop
//! half-way through a request, hold the connection, and finish (or never finish) later.
//! Every wait is bounded.

use std::io;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on any single step of the raw client unless a test gives its own.
pub const STEP: Duration = Duration::from_secs(10);

/// One connection.
pub struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Every header, in order.
    pub headers: Vec<(String, String)>,
    /// The body (by `Content-Length`, or up to the end of the stream).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_owned())
}

impl Raw {
    /// Connects to `addr` (`127.0.0.1:PORT`).
    pub async fn connect(addr: &str) -> io::Result<Self> {
        let stream = tokio::time::timeout(STEP, TcpStream::connect(addr))
            .await
            .map_err(|_| timed_out("connect"))??;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::new(),
        })
    }

    /// Writes `bytes` as they are.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        tokio::time::timeout(STEP, self.stream.write_all(bytes))
            .await
            .map_err(|_| timed_out("write"))??;
        self.stream.flush().await
    }

    /// Starts `POST /` with `Content-Length: len` and `Expect: 100-continue`, and waits for
    /// `100 Continue`: proof that the server parsed the headers, admitted the request (it holds
    /// a concurrency permit and passed authentication) and that the handler now reads the body.
    pub async fn start_post(addr: &str, len: usize, extra: &[(&str, &str)]) -> Self {
        let mut raw = Self::connect(addr).await.expect("connect");
        let mut head = format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {len}\r\nExpect: 100-continue\r\n"
        );
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        raw.send(head.as_bytes()).await.expect("send head");
        let (status, _) = raw.read_head(STEP).await.expect("read 100 Continue");
        assert_eq!(status, 100, "expected 100 Continue before the body");
        raw
    }

    /// Sends the head of `POST /` with `Content-Length: len` (no `Expect`) and the first bytes
    /// of the body, `{"bar":`; the rest never comes unless the test sends it.
    pub async fn stalled_post(addr: &str, len: usize) -> Self {
        let mut raw = Self::connect(addr).await.expect("connect");
        raw.send(
            format!(
                "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
                 Content-Length: {len}\r\n\r\n{{\"bar\":"
            )
            .as_bytes(),
        )
        .await
        .expect("head and a few bytes");
        raw
    }

    /// Reads one response head; `Ok` with the status and headers.
    async fn read_head(&mut self, limit: Duration) -> io::Result<(u16, Vec<(String, String)>)> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 4);
                let mut lines = head.split("\r\n");
                let status_line = lines.next().unwrap_or_default();
                let status = status_line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse::<u16>().ok())
                    .ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("bad status line {status_line:?}"),
                        )
                    })?;
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .collect();
                return Ok((status, headers));
            }
            if self.fill(deadline).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed before a response head",
                ));
            }
        }
    }

    /// Reads more bytes; `Ok(0)` at end of stream.
    async fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let mut chunk = [0u8; 8192];
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, self.stream.read(&mut chunk))
            .await
            .map_err(|_| timed_out("read"))??;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads the final response (skipping any 1xx), within `limit`.
    pub async fn read_response(&mut self, limit: Duration) -> io::Result<RawResponse> {
        let deadline = Instant::now() + limit;
        let (status, headers) = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (status, headers) = self.read_head(left).await?;
            if status >= 200 {
                break (status, headers);
            }
        };
        let len = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok());
        match len {
            Some(len) => {
                while self.buf.len() < len {
                    if self.fill(deadline).await? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "closed in the middle of the body",
                        ));
                    }
                }
            }
            None => while self.fill(deadline).await? > 0 {},
        }
        let body = self.buf.drain(..len.unwrap_or(self.buf.len())).collect();
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// Waits until the server closes the connection (end of stream or reset), returning how
    /// long that took and any bytes it sent before closing. `Err` if still open after `limit`.
    pub async fn closed_within(&mut self, limit: Duration) -> io::Result<(Duration, Vec<u8>)> {
        let start = Instant::now();
        let deadline = start + limit;
        loop {
            match self.fill(deadline).await {
                Ok(0) => return Ok((start.elapsed(), std::mem::take(&mut self.buf))),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(e),
                Err(_) => return Ok((start.elapsed(), std::mem::take(&mut self.buf))),
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Polls `addr` until a connection attempt is refused; returns how long that took.
/// Panics if it is still accepting after `limit`.
pub async fn refused_within(addr: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        match tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await {
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => return start.elapsed(),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    panic!("{addr} still accepted connections {limit:?} after the signal");
}
