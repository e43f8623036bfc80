//! One load loop's connection to a server, over HTTP/1.1 ([`super::http1`]) or WebSocket
//! ([`super::ws`]): connected on first use, dropped on any failure or timeout and reconnected on
//! the next call, so one bad answer never poisons the loop's later requests.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;

use super::http1::{self, Conn, Exchanged, Response};
use super::ws::WsConn;
pub use crate::record::Transport;

/// Pause after a failed connect, so a refusing server does not turn a loop into a busy loop.
const CONNECT_ERROR_PAUSE: Duration = Duration::from_millis(1);

/// A loop's client.
pub struct Client {
    addr: SocketAddr,
    transport: Transport,
    headers: Vec<(String, String)>,
    timeout: Duration,
    http: Option<Conn>,
    last: Option<Exchanged>,
    ws: Option<WsConn>,
    ws_answer: Vec<u8>,
}

impl Client {
    /// A client of `addr` over `transport`; each call fails after `timeout` (connecting included).
    pub fn new(addr: SocketAddr, transport: Transport, timeout: Duration) -> Client {
        Client {
            addr,
            transport,
            headers: Vec::new(),
            timeout,
            http: None,
            last: None,
            ws: None,
            ws_answer: Vec::new(),
        }
    }

    /// Sends `name: value` with every request (on WebSocket: with the upgrade request).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Client {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The HTTP request of `body` as it goes on the wire: build once, [`Client::send`] many times.
    pub fn wire(&self, body: &[u8]) -> Vec<u8> {
        http1::request_bytes(&self.addr, &self.headers, body)
    }

    /// Sends the JSON-RPC request `body`, whose id is `id`, and returns its answer.
    pub async fn call(&mut self, body: &[u8], id: u64) -> Result<Response<'_>, String> {
        match self.transport {
            Transport::Http => {
                let wire = self.wire(body);
                self.send(&wire).await
            }
            Transport::Ws => self.call_ws(body, id).await,
        }
    }

    /// HTTP: sends `wire` (from [`Client::wire`]) and returns the answer, borrowed from the
    /// connection's buffer until the next call.
    pub async fn send(&mut self, wire: &[u8]) -> Result<Response<'_>, String> {
        if self.http.as_ref().is_some_and(|c| c.closed) {
            self.http = None;
        }
        let timeout = self.timeout;
        let exchanged = tokio::time::timeout(timeout, async {
            if self.http.is_none() {
                match Conn::connect(self.addr).await {
                    Ok(c) => self.http = Some(c),
                    Err(e) => {
                        tokio::time::sleep(CONNECT_ERROR_PAUSE).await;
                        return Err(format!("connect {}: {e}", self.addr));
                    }
                }
            }
            let c = self.http.as_mut().ok_or("no connection")?;
            c.exchange(wire).await
        })
        .await
        .unwrap_or_else(|_| Err(format!("client timeout after {} ms", timeout.as_millis())));
        match exchanged {
            Ok(e) => {
                let last = self.last.insert(e);
                let conn = self.http.as_ref().ok_or("no connection")?;
                Ok(conn.response(last))
            }
            Err(e) => {
                self.http = None;
                Err(e)
            }
        }
    }

    async fn call_ws(&mut self, body: &[u8], id: u64) -> Result<Response<'_>, String> {
        let timeout = self.timeout;
        let answer = tokio::time::timeout(timeout, async {
            if self.ws.is_none() {
                self.ws = Some(WsConn::connect(&self.addr.to_string(), &self.headers).await?);
            }
            self.ws.as_mut().ok_or("no connection")?.call(body, id).await
        })
        .await
        .unwrap_or_else(|_| Err(format!("client timeout after {} ms", timeout.as_millis())));
        match answer {
            Ok(text) => {
                self.ws_answer = text;
                Ok(Response { status: 200, served_by: None, attempts: 0, body: Cow::Borrowed(&self.ws_answer) })
            }
            Err(e) => {
                self.ws = None;
                Err(e)
            }
        }
    }
}
