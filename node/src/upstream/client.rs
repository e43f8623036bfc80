//! A pooled HTTP client for JSON-RPC upstreams: keep-alive connections, a body cap, a timeout.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt as _, Full};
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;

/// A response from an upstream, body unparsed.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// HTTP status code.
    pub status: u16,
    /// The body as received.
    pub body: Bytes,
}

/// Why an upstream call failed before a JSON-RPC answer could be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TransportError {
    /// Connection refused, reset, or a protocol error.
    #[error("transport: {0}")]
    Connect(String),
    /// No answer within the deadline.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// The response exceeded the size cap.
    #[error("response over {0} bytes")]
    TooLarge(usize),
}

/// Most requests the daemon has in flight towards all its upstreams together, and so most
/// upstream connections in use (HTTP/1: one request per connection; idle ones are capped per
/// host by the pool). Far above what a node serves well, low enough that a burst of client
/// traffic cannot exhaust the daemon's file descriptors and mark its own node down.
pub const MAX_UPSTREAM_REQUESTS: usize = 1024;

/// Clone-able handle to one connection pool, shared by every upstream of the daemon.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
    max_response_bytes: usize,
    /// One permit per request in flight (see [`MAX_UPSTREAM_REQUESTS`]).
    in_flight: Arc<Semaphore>,
}

impl HttpClient {
    /// A client whose responses are capped at `max_response_bytes`, with at most
    /// [`MAX_UPSTREAM_REQUESTS`] requests in flight.
    pub fn new(max_response_bytes: usize) -> Self {
        Self::with_max_in_flight(max_response_bytes, MAX_UPSTREAM_REQUESTS)
    }

    /// A client with at most `max_in_flight` requests (and so connections) in use at once;
    /// more wait for a free one within their own timeout.
    pub fn with_max_in_flight(max_response_bytes: usize, max_in_flight: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(connector);
        Self { inner, max_response_bytes, in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))) }
    }

    /// POSTs a JSON body to `uri` and reads the whole response within `timeout`.
    pub async fn post_json(&self, uri: &Uri, body: Bytes, timeout: Duration) -> Result<HttpReply, TransportError> {
        self.post_json_bearer(uri, body, None, timeout).await
    }

    /// [`post_json`](Self::post_json) with `Authorization: Bearer <token>` when a token is given
    /// (the admin API's `POST /relay`, called by `federation vet --peer` at the ramp's rate, so
    /// over pooled connections).
    pub async fn post_json_bearer(
        &self,
        uri: &Uri,
        body: Bytes,
        token: Option<&str>,
        timeout: Duration,
    ) -> Result<HttpReply, TransportError> {
        let timeout_ms = timeout.as_millis() as u64;
        let fut = async {
            // Held until the body is read: the connection is busy until then.
            let _permit =
                self.in_flight.acquire().await.map_err(|_| TransportError::Connect("client closed".into()))?;
            let mut req = hyper::Request::post(uri.clone()).header(hyper::header::CONTENT_TYPE, "application/json");
            if let Some(t) = token {
                req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
            }
            let req = req.body(Full::new(body)).map_err(|e| TransportError::Connect(e.to_string()))?;
            let resp = self.inner.request(req).await.map_err(|e| TransportError::Connect(error_chain(&e)))?;
            let status = resp.status().as_u16();
            let length = resp
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            let body = read_body(resp.into_body(), length, self.max_response_bytes).await?;
            Ok(HttpReply { status, body })
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout(timeout_ms)),
        }
    }
}

/// Reads a whole body of at most `limit` bytes. A body in one frame is returned as is; a longer
/// one is copied frame by frame into one buffer sized from `Content-Length`, so each frame is
/// released at once and hyper reuses its read buffer: one copy of the body in memory instead of
/// two (every frame held until the end, then joined), which at 64 concurrent 100 KiB answers
/// is megabytes of resident memory.
async fn read_body(
    mut body: hyper::body::Incoming,
    length: Option<usize>,
    limit: usize,
) -> Result<Bytes, TransportError> {
    if length.is_some_and(|l| l > limit) {
        return Err(TransportError::TooLarge(limit));
    }
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| TransportError::Connect(error_chain(&e)))?;
        let Ok(data) = frame.into_data() else { continue };
        total += data.len();
        if total > limit {
            return Err(TransportError::TooLarge(limit));
        }
        match (&mut first, &mut joined) {
            (None, None) => first = Some(data),
            (_, Some(buf)) => buf.extend_from_slice(&data),
            (Some(head), None) => {
                let mut buf = BytesMut::with_capacity(length.unwrap_or(0).max(head.len() + data.len()));
                buf.extend_from_slice(head);
                buf.extend_from_slice(&data);
                first = None;
                joined = Some(buf);
            }
        }
    }
    Ok(match (first, joined) {
        (_, Some(buf)) => buf.freeze(),
        (Some(head), None) => head,
        (None, None) => Bytes::new(),
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    /// A one-connection HTTP server answering the first request with `parts`, written one by one
    /// (flushed apart, so the client sees several frames).
    async fn serve(parts: Vec<Vec<u8>>) -> Uri {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let mut buf = vec![0u8; 4096];
            let _ = sock.read(&mut buf).await;
            for p in parts {
                if sock.write_all(&p).await.is_err() {
                    return;
                }
                let _ = sock.flush().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        format!("http://{addr}/").parse().expect("uri")
    }

    fn body_of(n: usize) -> Vec<u8> {
        (0..n).map(|i| b'a' + (i % 26) as u8).collect()
    }

    async fn post(uri: &Uri, limit: usize) -> Result<HttpReply, TransportError> {
        HttpClient::new(limit).post_json(uri, Bytes::from_static(b"{}"), Duration::from_secs(5)).await
    }

    #[tokio::test]
    async fn requests_beyond_the_in_flight_cap_wait_for_a_free_connection() {
        // A server that accepts connections and never answers: each request holds one.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let uri: Uri = format!("http://{}/", listener.local_addr().expect("addr")).parse().expect("uri");
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(sock);
            }
        });
        let client = HttpClient::with_max_in_flight(1 << 20, 2);
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let (c, u) = (client.clone(), uri.clone());
                tokio::spawn(
                    async move { c.post_json(&u, Bytes::from_static(b"{}"), Duration::from_millis(300)).await },
                )
            })
            .collect();
        for c in calls {
            assert!(matches!(c.await.expect("join"), Err(TransportError::Timeout(_))));
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2, "two connections at most");
    }

    #[tokio::test]
    async fn a_body_in_many_frames_is_joined_whole() {
        let body = body_of(100 * 1024);
        let mut parts = vec![format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes()];
        parts.extend(body.chunks(7_000).map(<[u8]>::to_vec));
        let reply = post(&serve(parts).await, 1 << 20).await.expect("reply");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body.as_ref(), body.as_slice());
    }

    #[tokio::test]
    async fn a_chunked_body_without_length_is_joined_whole() {
        let body = body_of(50_000);
        let mut parts = vec![b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec()];
        for c in body.chunks(9_000) {
            let mut p = format!("{:x}\r\n", c.len()).into_bytes();
            p.extend_from_slice(c);
            p.extend_from_slice(b"\r\n");
            parts.push(p);
        }
        parts.push(b"0\r\n\r\n".to_vec());
        let reply = post(&serve(parts).await, 1 << 20).await.expect("reply");
        assert_eq!(reply.body.as_ref(), body.as_slice());
    }

    #[tokio::test]
    async fn bodies_over_the_cap_are_refused_by_length_or_by_count() {
        let announced = vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2000\r\n\r\n".to_vec(), body_of(2000)];
        assert_eq!(post(&serve(announced).await, 1000).await.unwrap_err(), TransportError::TooLarge(1000));
        let mut chunked = vec![b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec()];
        for _ in 0..3 {
            chunked.push(b"258\r\n".iter().copied().chain(body_of(600)).chain(*b"\r\n").collect());
        }
        chunked.push(b"0\r\n\r\n".to_vec());
        assert_eq!(post(&serve(chunked).await, 1000).await.unwrap_err(), TransportError::TooLarge(1000));
    }

    #[tokio::test]
    async fn an_empty_body_is_empty() {
        let parts = vec![b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()];
        let reply = post(&serve(parts).await, 1000).await.expect("reply");
        assert_eq!((reply.status, reply.body.len()), (204, 0));
    }
}
