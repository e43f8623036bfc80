//! A minimal HTTP/1.1 client for the load generator: one keep-alive connection, a request
//! serialised once and written with one `write`, the response head parsed in place (status,
//! `content-length` or chunked, `connection: close`, `x-rpcmesh-served-by`,
//! `x-rpcmesh-attempts`). Like `wrk`, it does
//! as little per request as HTTP allows, so the client's own cost stays out of the figures.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::ops::Range;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest response body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// The bytes of `POST / HTTP/1.1` to `addr` with `headers` and `body`.
pub fn request_bytes<K: AsRef<str>, V: AsRef<str>>(addr: &SocketAddr, headers: &[(K, V)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("POST / HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{}: {}\r\n", k.as_ref(), v.as_ref()));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// How the body of a response is delimited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyLen {
    /// `content-length`.
    Length(usize),
    /// `transfer-encoding: chunked`.
    Chunked,
    /// Neither: the body ends when the server closes.
    UntilClose,
}

/// A parsed response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// Bytes of the head, the blank line included.
    pub len: usize,
    /// Body framing.
    pub body: BodyLen,
    /// The server will close the connection.
    pub close: bool,
    /// Where the value of `x-rpcmesh-served-by` is in the buffer.
    pub served_by: Option<Range<usize>>,
    /// The value of `x-rpcmesh-attempts` (0 when absent or not a number).
    pub attempts: u32,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

fn trim(r: Range<usize>, buf: &[u8]) -> Range<usize> {
    let (mut s, mut e) = (r.start, r.end);
    while s < e && buf[s].is_ascii_whitespace() {
        s += 1;
    }
    while e > s && buf[e - 1].is_ascii_whitespace() {
        e -= 1;
    }
    s..e
}

/// Parses the response head at the start of `buf`: `Ok(None)` while it is incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = find(buf, b"\r\n\r\n", 0) else {
        return if buf.len() > MAX_HEAD { Err("response head too large".into()) } else { Ok(None) };
    };
    let len = end + 4;
    let status_end = find(buf, b"\r\n", 0).unwrap_or(end);
    let status_line = &buf[..status_end];
    if !status_line.starts_with(b"HTTP/1.") || status_line.len() < 12 {
        return Err(format!("not an HTTP/1.x response: {:?}", String::from_utf8_lossy(status_line)));
    }
    let status = std::str::from_utf8(&status_line[9..12])
        .ok()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {:?}", String::from_utf8_lossy(status_line)))?;
    let http10 = status_line.starts_with(b"HTTP/1.0");
    let (mut length, mut chunked, mut close, mut keep_alive, mut served_by) = (None, false, false, false, None);
    let mut attempts = 0;
    let mut pos = status_end + 2;
    while pos < end {
        let line_end = find(buf, b"\r\n", pos).unwrap_or(end).min(end);
        let line = pos..line_end;
        pos = line_end + 2;
        let Some(colon) = buf[line.clone()].iter().position(|b| *b == b':') else { continue };
        let name = &buf[line.start..line.start + colon];
        let value = trim(line.start + colon + 1..line.end, buf);
        let v = &buf[value.clone()];
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(v).ok().and_then(|s| s.parse::<usize>().ok());
            length = Some(n.ok_or("bad content-length")?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = v.to_ascii_lowercase().windows(7).any(|w| w == b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            let v = v.to_ascii_lowercase();
            close |= v.windows(5).any(|w| w == b"close");
            keep_alive |= v.windows(10).any(|w| w == b"keep-alive");
        } else if name.eq_ignore_ascii_case(rpcmesh_node::gateway::SERVED_BY.as_bytes()) {
            served_by = Some(value);
        } else if name.eq_ignore_ascii_case(rpcmesh_node::gateway::ATTEMPTS.as_bytes()) {
            attempts = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
        }
    }
    let body = match (chunked, length) {
        (true, _) => BodyLen::Chunked,
        (false, Some(n)) if n > MAX_BODY => return Err(format!("body of {n} bytes is too large")),
        (false, Some(n)) => BodyLen::Length(n),
        // 1xx, 204 and 304 have no body.
        (false, None) if status < 200 || status == 204 || status == 304 => BodyLen::Length(0),
        (false, None) => BodyLen::UntilClose,
    };
    Ok(Some(Head { status, len, body, close: close || (http10 && !keep_alive), served_by, attempts }))
}

/// Decodes a complete chunked body at the start of `buf`: `Ok(None)` while incomplete, else the
/// body and the bytes it took (trailers included).
pub fn decode_chunked(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let Some(line_end) = find(buf, b"\r\n", pos) else { return Ok(None) };
        let size_text = &buf[pos..line_end];
        let size_text = size_text.split(|b| *b == b';').next().unwrap_or(size_text);
        let size = std::str::from_utf8(size_text)
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .ok_or_else(|| format!("bad chunk size {:?}", String::from_utf8_lossy(size_text)))?;
        pos = line_end + 2;
        if size == 0 {
            // Trailers, then a blank line.
            loop {
                let Some(e) = find(buf, b"\r\n", pos) else { return Ok(None) };
                let blank = e == pos;
                pos = e + 2;
                if blank {
                    return Ok(Some((out, pos)));
                }
            }
        }
        if out.len() + size > MAX_BODY {
            return Err("chunked body too large".into());
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

/// Where a response is: its body and header values stay in the connection's buffer (read them
/// with [`Conn::response`]) until the next exchange, so a hot loop copies nothing.
#[derive(Debug)]
pub struct Exchanged {
    status: u16,
    served_by: Option<Range<usize>>,
    attempts: u32,
    body: BodyAt,
}

#[derive(Debug)]
enum BodyAt {
    /// In the buffer.
    Buffer(Range<usize>),
    /// Decoded from chunks.
    Owned(Vec<u8>),
}

/// A response, borrowed from the connection's buffer where possible.
pub struct Response<'a> {
    /// Status code.
    pub status: u16,
    /// Value of `x-rpcmesh-served-by`.
    pub served_by: Option<&'a [u8]>,
    /// Value of `x-rpcmesh-attempts` (0 when absent).
    pub attempts: u32,
    /// The body.
    pub body: Cow<'a, [u8]>,
}

/// One keep-alive connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` that belong to the previous response.
    consumed: usize,
    /// The server said it will close (or closed): do not reuse.
    pub closed: bool,
}

impl Conn {
    /// Connects to `addr` (`TCP_NODELAY`).
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream, buf: Vec::with_capacity(16 * 1024), consumed: 0, closed: false })
    }

    async fn fill(&mut self) -> Result<usize, String> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(self.buf.capacity().max(16 * 1024));
        }
        self.stream.read_buf(&mut self.buf).await.map_err(|e| format!("read: {e}"))
    }

    /// Writes `request` (from [`request_bytes`]) and reads one response.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<Exchanged, String> {
        self.buf.drain(..self.consumed);
        self.consumed = 0;
        self.stream.write_all(request).await.map_err(|e| format!("write: {e}"))?;
        let head = loop {
            if let Some(h) = parse_head(&self.buf)? {
                break h;
            }
            if self.fill().await? == 0 {
                self.closed = true;
                return Err("connection closed before a response".into());
            }
        };
        self.closed |= head.close;
        let start = head.len;
        let body = match head.body {
            BodyLen::Length(n) => {
                while self.buf.len() < start + n {
                    if self.fill().await? == 0 {
                        self.closed = true;
                        return Err("connection closed in the body".into());
                    }
                }
                self.consumed = start + n;
                BodyAt::Buffer(start..start + n)
            }
            BodyLen::Chunked => loop {
                if let Some((body, used)) = decode_chunked(&self.buf[start..])? {
                    // The head stays in the buffer until the next exchange.
                    self.consumed = start + used;
                    break BodyAt::Owned(body);
                }
                if self.fill().await? == 0 {
                    self.closed = true;
                    return Err("connection closed in a chunked body".into());
                }
            },
            BodyLen::UntilClose => {
                while self.fill().await? > 0 {
                    if self.buf.len() - start > MAX_BODY {
                        return Err(format!("body over {MAX_BODY} bytes"));
                    }
                }
                self.closed = true;
                self.consumed = self.buf.len();
                BodyAt::Buffer(start..self.buf.len())
            }
        };
        Ok(Exchanged { status: head.status, served_by: head.served_by, attempts: head.attempts, body })
    }

    /// The response `e` (this connection's last exchange) describes.
    pub fn response<'a>(&'a self, e: &'a Exchanged) -> Response<'a> {
        let buf = &self.buf;
        Response {
            status: e.status,
            served_by: e.served_by.clone().and_then(|r| buf.get(r)),
            attempts: e.attempts,
            body: match &e.body {
                BodyAt::Buffer(r) => Cow::Borrowed(buf.get(r.clone()).unwrap_or_default()),
                BodyAt::Owned(v) => Cow::Borrowed(v.as_slice()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nX-Rpcmesh-Served-By:  12D3Koo \r\nx-rpcmesh-attempts: 2\r\ncontent-length: 41\r\n\r\n{...";
        let h = parse_head(r).unwrap().unwrap();
        assert_eq!((h.status, h.body.clone(), h.close, h.attempts), (200, BodyLen::Length(41), false, 2));
        assert_eq!(&r[h.served_by.unwrap()], b"12D3Koo");
        assert_eq!(&r[h.len..], b"{...");
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap(), None);
        let h = parse_head(b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").unwrap();
        let h = h.unwrap();
        assert_eq!((h.status, h.body, h.close), (503, BodyLen::Chunked, true));
        assert_eq!(parse_head(b"HTTP/1.0 204 No\r\n\r\n").unwrap().unwrap().body, BodyLen::Length(0));
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn chunks() {
        assert_eq!(decode_chunked(b"5\r\nhello\r\n0\r\n\r\nNEXT").unwrap(), Some((b"hello".to_vec(), 15)));
        assert_eq!(decode_chunked(b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n").unwrap().unwrap().0, b"abcde");
        assert_eq!(decode_chunked(b"5\r\nhel").unwrap(), None);
        assert_eq!(decode_chunked(b"0\r\n").unwrap(), None);
        assert!(decode_chunked(b"zz\r\n").is_err());
    }

    #[test]
    fn request_wire() {
        let addr: SocketAddr = "127.0.0.1:8545".parse().unwrap();
        let w = request_bytes(&addr, &[("x-rpcmesh-failover", "off")], b"{}");
        assert_eq!(
            w,
            b"POST / HTTP/1.1\r\nhost: 127.0.0.1:8545\r\ncontent-type: application/json\r\nx-rpcmesh-failover: off\r\ncontent-length: 2\r\n\r\n{}"
        );
    }
}
