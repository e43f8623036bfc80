//! Reading a request body within bounds (size, time, and the bytes all bodies may hold at once),
//! and reading the ids of a body that was refused, so the error can echo them.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::respond::{GatewayError, Ids};
use crate::jsonrpc::{self, Call, Item};

/// Bytes of a refused body kept to read its ids from.
const SNIFF_BYTES: usize = 4096;

/// Why a body was not read, with what had arrived (up to [`SNIFF_BYTES`]) to read ids from.
#[derive(Debug)]
pub struct BodyRefused {
    /// The error to answer.
    pub error: GatewayError,
    /// The start of the body.
    pub prefix: Bytes,
}

/// Bytes of request bodies the gateway holds at once, across all connections
/// (`gateway.max_buffered_body_bytes`): the timeouts bound how long a slow client holds body
/// memory, this bounds how much all of them hold together (without it, clients that send all but
/// the last byte of a maximal body would hold `max_connections` × `max_body_bytes`).
#[derive(Debug, Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl BodyBudget {
    /// A budget of `total` bytes.
    pub fn new(total: usize) -> Self {
        let total = total.clamp(1, Semaphore::MAX_PERMITS);
        Self { bytes: Arc::new(Semaphore::new(total)), total }
    }

    /// Bytes of the budget not taken.
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// Takes `n` more bytes into `held`, or says the budget is spent (also for a WebSocket
    /// session's unfinished message, see [`crate::serve::ReadMeter`]).
    pub(crate) fn take(&self, n: usize, held: &mut Option<OwnedSemaphorePermit>) -> Result<(), GatewayError> {
        if n == 0 {
            return Ok(());
        }
        let spent = || GatewayError::BodyBudget { limit: self.total };
        let n = u32::try_from(n).map_err(|_| spent())?;
        let permit = self.bytes.clone().try_acquire_many_owned(n).map_err(|_| spent())?;
        match held {
            Some(h) => h.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}

/// A body's share of the [`BodyBudget`]: given back when dropped, once the request is answered.
#[derive(Debug)]
#[must_use = "the body's bytes stay counted only while this is held"]
pub struct BodyHeld {
    _bytes: Option<OwnedSemaphorePermit>,
}

/// Reads the whole body: at most `limit` bytes (a larger announced `Content-Length` is refused
/// before reading), within `timeout`, counted against `budget` (the announced length up front,
/// else each piece as it arrives) until the returned [`BodyHeld`] is dropped.
pub async fn read(
    body: Body,
    limit: usize,
    timeout: Duration,
    content_length: Option<usize>,
    budget: &BodyBudget,
) -> Result<(Bytes, BodyHeld), BodyRefused> {
    if content_length.is_some_and(|l| l > limit) {
        // Not read at all: nothing to sniff, and reading it would be the cost refused.
        return Err(BodyRefused { error: GatewayError::BodyTooLarge { limit }, prefix: Bytes::new() });
    }
    let mut held = None;
    let mut counted = content_length.unwrap_or(0);
    if let Err(error) = budget.take(counted, &mut held) {
        return Err(BodyRefused { error, prefix: Bytes::new() });
    }
    let mut body = body;
    let mut buf = BytesMut::with_capacity(content_length.unwrap_or(0).min(limit));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(refused(GatewayError::BodyTimeout, &buf)),
            Ok(None) => return Ok((buf.freeze(), BodyHeld { _bytes: held })),
            Ok(Some(Err(e))) => return Err(refused(GatewayError::BodyUnreadable(e.to_string()), &buf)),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else { continue };
        if buf.len() + data.len() > limit {
            let room = SNIFF_BYTES.saturating_sub(buf.len());
            buf.extend_from_slice(&data[..room.min(data.len())]);
            return Err(refused(GatewayError::BodyTooLarge { limit }, &buf));
        }
        // A body without a length (chunked) is counted as it arrives.
        let total = buf.len() + data.len();
        if total > counted {
            if let Err(error) = budget.take(total - counted, &mut held) {
                return Err(refused(error, &buf));
            }
            counted = total;
        }
        buf.extend_from_slice(&data);
    }
}

fn refused(error: GatewayError, buf: &[u8]) -> BodyRefused {
    BodyRefused { error, prefix: Bytes::copy_from_slice(&buf[..buf.len().min(SNIFF_BYTES)]) }
}

/// The ids of a complete body (a single request's, or a batch's), for errors about the whole
/// call (unknown chain, bad header).
pub fn ids_of(body: &Bytes) -> Ids {
    ids_of_call(&jsonrpc::parse(body))
}

/// The ids of a parsed call; see [`ids_of`].
pub fn ids_of_call(call: &Call) -> Ids {
    match call {
        Call::Single(Item::Request(r)) => r.id.clone().map_or(Ids::Unknown, Ids::Single),
        Call::Single(Item::Invalid { id, .. }) => Ids::Single(id.clone()),
        Call::Batch(items) => Ids::Batch(
            items
                .iter()
                .filter_map(|i| match i {
                    Item::Request(r) => r.id.clone(),
                    Item::Invalid { id, .. } => Some(id.clone()),
                })
                .collect(),
        ),
        Call::Error { .. } => Ids::Unknown,
    }
}

/// What a call costs against a quota: one per batch item (notifications and invalid items
/// included: each is work the gateway does), one for anything else.
pub fn calls_in(call: &Call) -> u32 {
    match call {
        Call::Batch(items) => u32::try_from(items.len()).unwrap_or(u32::MAX).max(1),
        Call::Single(_) | Call::Error { .. } => 1,
    }
}

/// The id of a single request whose body was cut short: the top-level `"id"` member, when it
/// arrived whole before the cut (clients write it before `params`, which is what makes bodies
/// large). A batch's or an unreadable body's ids are unknown.
pub fn sniff_id(prefix: &[u8]) -> Ids {
    let mut s = Scanner { b: prefix, i: 0 };
    s.ws();
    if s.peek() != Some(b'{') {
        return Ids::Unknown;
    }
    s.i += 1;
    loop {
        s.ws();
        let Some(key) = s.string() else { return Ids::Unknown };
        s.ws();
        if s.peek() != Some(b':') {
            return Ids::Unknown;
        }
        s.i += 1;
        s.ws();
        let start = s.i;
        if !s.value() {
            return Ids::Unknown;
        }
        if key == b"\"id\"" {
            let id = &prefix[start..s.i];
            // Only ids that are whole and valid as ids.
            return match serde_json::from_slice::<serde_json::Value>(id) {
                Ok(serde_json::Value::Number(_) | serde_json::Value::String(_) | serde_json::Value::Null) => {
                    Ids::Single(Bytes::copy_from_slice(id))
                }
                _ => Ids::Unknown,
            };
        }
        s.ws();
        match s.peek() {
            Some(b',') => s.i += 1,
            _ => return Ids::Unknown,
        }
    }
}

/// A minimal JSON skimmer over a possibly truncated buffer: every method returns `None`/`false`
/// when the input ends first.
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    /// A string, returned with its quotes.
    fn string(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        if self.peek()? != b'"' {
            return None;
        }
        self.i += 1;
        loop {
            match self.peek()? {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return self.b.get(start..self.i);
                }
                _ => self.i += 1,
            }
        }
    }

    /// Skips one value; false if it does not end within the buffer.
    fn value(&mut self) -> bool {
        match self.peek() {
            None => false,
            Some(b'"') => self.string().is_some(),
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    match self.peek() {
                        None => return false,
                        Some(b'"') => {
                            if self.string().is_none() {
                                return false;
                            }
                            continue;
                        }
                        Some(b'{' | b'[') => depth += 1,
                        Some(b'}' | b']') => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return true;
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            Some(_) => {
                let start = self.i;
                while self.peek().is_some_and(|c| !matches!(c, b',' | b'}' | b']') && !c.is_ascii_whitespace()) {
                    self.i += 1;
                }
                // A scalar is whole only if something follows it.
                self.i > start && self.peek().is_some()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sniffed_from_a_cut_body_when_whole() {
        let body = br#" {"jsonrpc":"2.0", "id" : "a\"b", "method":"eth_sendRawTransaction","params":["0xffff"#;
        assert_eq!(sniff_id(body), Ids::Single(Bytes::from_static(br#""a\"b""#)));
        assert_eq!(sniff_id(br#"{"jsonrpc":"2.0","id":12,"params":[1,2"#), Ids::Single(Bytes::from_static(b"12")));
        assert_eq!(
            sniff_id(br#"{"params":{"a":[1,{"b":"}"}]},"id":1.50,"x"#),
            Ids::Single(Bytes::from_static(b"1.50"))
        );
        // Cut inside the id, or the id after the cut, or not an object: unknown.
        assert_eq!(sniff_id(br#"{"jsonrpc":"2.0","id":12"#), Ids::Unknown);
        assert_eq!(sniff_id(br#"{"jsonrpc":"2.0","method":"m","params":["0xff"#), Ids::Unknown);
        assert_eq!(sniff_id(br#"[{"id":1}"#), Ids::Unknown);
        assert_eq!(sniff_id(br#"{"id":{"a":1},"x":1}"#), Ids::Unknown);
    }

    fn chunked(pieces: &[&'static [u8]]) -> Body {
        let frames: Vec<Result<Bytes, std::io::Error>> = pieces.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Body::from_stream(futures::stream::iter(frames))
    }

    #[tokio::test]
    async fn bodies_share_one_budget_of_bytes_until_answered() {
        let budget = BodyBudget::new(10);
        let t = Duration::from_secs(5);
        let (first, held) = read(Body::from("12345678"), 100, t, Some(8), &budget).await.unwrap();
        assert_eq!(&first[..], b"12345678");
        // The announced length is counted before a byte is read.
        let refused = read(Body::from("12345"), 100, t, Some(5), &budget).await.unwrap_err();
        assert_eq!(refused.error, GatewayError::BodyBudget { limit: 10 });
        assert_eq!(refused.error.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        // A body without a length is counted as it arrives: 2 bytes are left, so "a" fits and
        // "bc" overflows.
        let refused = read(chunked(&[b"a", b"bc", b"def"]), 100, t, None, &budget).await.unwrap_err();
        assert_eq!((refused.error, &refused.prefix[..]), (GatewayError::BodyBudget { limit: 10 }, &b"a"[..]));
        // Answered: its bytes are free again (and a refused body's never stayed counted).
        drop(held);
        let (_, a) = read(chunked(&[b"12345", b"67890"]), 100, t, None, &budget).await.unwrap();
        drop(a);
        assert_eq!(budget.bytes.available_permits(), 10);
    }

    #[test]
    fn ids_of_complete_bodies() {
        let batch = Bytes::from_static(br#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"n"},5]"#);
        assert_eq!(ids_of(&batch), Ids::Batch(vec![Bytes::from_static(b"1"), Bytes::from_static(b"null")]));
        let single = Bytes::from_static(br#"{"jsonrpc":"2.0","id":"x","method":"a"}"#);
        assert_eq!(ids_of(&single), Ids::Single(Bytes::from_static(br#""x""#)));
    }
}
