//! A pooled HTTP client for JSON-RPC upstreams: keep-alive connections, a body cap, a timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

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

/// Clone-able handle to one connection pool, shared by every upstream of the daemon.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
    max_response_bytes: usize,
}

impl HttpClient {
    /// A client whose responses are capped at `max_response_bytes`.
    pub fn new(max_response_bytes: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(connector);
        Self { inner, max_response_bytes }
    }

    /// POSTs a JSON body to `uri` and reads the whole response within `timeout`.
    pub async fn post_json(&self, uri: &Uri, body: Bytes, timeout: Duration) -> Result<HttpReply, TransportError> {
        let timeout_ms = timeout.as_millis() as u64;
        let fut = async {
            let req = hyper::Request::post(uri.clone())
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(body))
                .map_err(|e| TransportError::Connect(e.to_string()))?;
            let resp = self.inner.request(req).await.map_err(|e| TransportError::Connect(error_chain(&e)))?;
            let status = resp.status().as_u16();
            let limited = Limited::new(resp.into_body(), self.max_response_bytes);
            let body = match limited.collect().await {
                Ok(c) => c.to_bytes(),
                Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                    return Err(TransportError::TooLarge(self.max_response_bytes));
                }
                Err(e) => return Err(TransportError::Connect(e.to_string())),
            };
            Ok(HttpReply { status, body })
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout(timeout_ms)),
        }
    }
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
