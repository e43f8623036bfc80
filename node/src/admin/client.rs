//! A tiny client for the admin API, used by `rpcmesh status|peers` and tests.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    /// The URL is not valid.
    #[error("invalid admin URL {0:?}")]
    Url(String),
    /// Could not connect or read.
    #[error("cannot reach the admin API at {url}: {reason} (is `rpcmesh run` running? see admin.addr)")]
    Unreachable {
        /// URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Non-2xx answer.
    #[error("{url} answered HTTP {status}: {body}")]
    Status {
        /// URL.
        url: String,
        /// Status.
        status: u16,
        /// Body.
        body: String,
    },
}

/// GETs `url` and returns status and body.
pub async fn get(url: &str, timeout: Duration) -> Result<(u16, Bytes), AdminClientError> {
    get_with_token(url, None, timeout).await
}

/// GETs `url` with the admin bearer `token` (needed beyond loopback) and returns status and body.
pub async fn get_with_token(
    url: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<(u16, Bytes), AdminClientError> {
    let uri: hyper::Uri = url.parse().map_err(|_| AdminClientError::Url(url.into()))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let unreachable = |reason: String| AdminClientError::Unreachable { url: url.into(), reason };
    let mut req = hyper::Request::get(uri);
    if let Some(t) = token {
        req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.body(Empty::new()).map_err(|e| unreachable(e.to_string()))?;
    let fut = async {
        let resp = client.request(req).await.map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(|e| unreachable(e.to_string()))?.to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| unreachable("timed out".into()))?
}

/// GETs `url`, requiring a 2xx, and returns the body.
pub async fn get_ok(url: &str, timeout: Duration) -> Result<Bytes, AdminClientError> {
    get_ok_with_token(url, None, timeout).await
}

/// GETs `url` with the admin bearer `token`, requiring a 2xx, and returns the body.
pub async fn get_ok_with_token(url: &str, token: Option<&str>, timeout: Duration) -> Result<Bytes, AdminClientError> {
    let (status, body) = get_with_token(url, token, timeout).await?;
    if !(200..300).contains(&status) {
        return Err(AdminClientError::Status { url: url.into(), status, body: String::from_utf8_lossy(&body).into() });
    }
    Ok(body)
}

/// PUTs a JSON body to `url` with the admin bearer `token` (every mutating admin endpoint
/// needs it), requiring a 2xx.
pub async fn put_json(
    url: &str,
    body: &serde_json::Value,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Bytes, AdminClientError> {
    send_json(hyper::Method::PUT, url, body, token, timeout).await
}

/// POSTs a JSON body to `url` (with `token` as bearer if given), requiring a 2xx.
pub async fn post_json(
    url: &str,
    body: &serde_json::Value,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Bytes, AdminClientError> {
    send_json(hyper::Method::POST, url, body, token, timeout).await
}

/// DELETEs `url` with the admin `token` (mutating endpoints need it), requiring a 2xx, and
/// returns the body.
pub async fn delete(url: &str, token: Option<&str>, timeout: Duration) -> Result<Bytes, AdminClientError> {
    send(hyper::Method::DELETE, url, None, token, timeout).await
}

async fn send_json(
    method: hyper::Method,
    url: &str,
    body: &serde_json::Value,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Bytes, AdminClientError> {
    send(method, url, Some(body), token, timeout).await
}

async fn send(
    method: hyper::Method,
    url: &str,
    body: Option<&serde_json::Value>,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Bytes, AdminClientError> {
    let uri: hyper::Uri = url.parse().map_err(|_| AdminClientError::Url(url.into()))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<http_body_util::Full<Bytes>>();
    let unreachable = |reason: String| AdminClientError::Unreachable { url: url.into(), reason };
    let mut req = hyper::Request::builder().method(method).uri(uri);
    let bytes = match body {
        Some(b) => {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
            Bytes::from(b.to_string())
        }
        None => Bytes::new(),
    };
    if let Some(t) = token {
        req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.body(http_body_util::Full::new(bytes)).map_err(|e| unreachable(e.to_string()))?;
    let fut = async {
        let resp = client.request(req).await.map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(|e| unreachable(e.to_string()))?.to_bytes();
        Ok((status, body))
    };
    let (status, body) = tokio::time::timeout(timeout, fut).await.map_err(|_| unreachable("timed out".into()))??;
    if !(200..300).contains(&status) {
        return Err(AdminClientError::Status { url: url.into(), status, body: String::from_utf8_lossy(&body).into() });
    }
    Ok(body)
}
