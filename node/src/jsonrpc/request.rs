//! Client requests, read without re-serialising: the method and id are borrowed from the body,
//! params stay raw bytes, batch elements are views into one buffer.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{INVALID_REQUEST, PARSE_ERROR};

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<&'a RawValue>,
    // Present-but-null is an id (answered with id null); only an absent id is a notification.
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<&'a RawValue>,
    // `"params": null` is present and invalid, not absent.
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// One request of a call (single or batch element).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The request's exact bytes.
    pub raw: Bytes,
    /// The method name.
    pub method: String,
    /// The id's exact JSON text; `None` for a notification.
    pub id: Option<Bytes>,
    /// `raw` with its id replaced by [`UPSTREAM_ID`], when the client's id is one a node may not
    /// echo exactly (a fraction, an exponent, a number beyond 2^53, an escaped string...).
    rewritten: Option<Bytes>,
}

/// The id sent to nodes in place of a client id they might not echo byte for byte. Each
/// forwarded request is alone on its HTTP exchange or relay, so one constant cannot be confused.
pub const UPSTREAM_ID: &[u8] = b"1";

impl Request {
    /// A request from its parts (`raw` must hold `method` and `id`; the id is echoed as given).
    pub fn new(raw: Bytes, method: impl Into<String>, id: Option<Bytes>) -> Self {
        let rewritten = id.as_ref().filter(|id| !echo_safe(id)).and_then(|id| with_id(&raw, id));
        Self { raw, method: method.into(), id, rewritten }
    }

    /// A request this daemon makes itself: `method(params)` with id [`UPSTREAM_ID`]. `params` is
    /// JSON text (an array or object), written as given.
    pub fn internal(method: &str, params: &str) -> Self {
        let raw = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#);
        Self::new(Bytes::from(raw), method, Some(Bytes::from_static(UPSTREAM_ID)))
    }

    /// Whether no answer is expected.
    pub fn is_notification(&self) -> bool {
        self.id.is_none()
    }

    /// The id as the client wrote it, or `null` (for our own error answers).
    pub fn id_or_null(&self) -> &[u8] {
        self.id.as_deref().unwrap_or(b"null")
    }

    /// The bytes to send to a node or peer: the client's, unless its id had to be replaced.
    pub fn upstream_body(&self) -> &Bytes {
        self.rewritten.as_ref().unwrap_or(&self.raw)
    }

    /// The id an answer to [`Request::upstream_body`] must carry (`None`: a notification).
    pub fn upstream_id(&self) -> Option<&[u8]> {
        match (&self.id, &self.rewritten) {
            (None, _) => None,
            (Some(_), Some(_)) => Some(UPSTREAM_ID),
            (Some(id), None) => Some(id),
        }
    }
}

/// Ids every node echoes byte for byte: `null`, an integer up to 2^53 without sign, fraction or
/// leading zero, or a short string of plain characters. Others (`1.50`, `-0`, `1e3`, huge
/// numbers, escapes) are re-serialised differently by some nodes (or answered with id null).
fn echo_safe(id: &[u8]) -> bool {
    const MAX_SAFE_DIGITS: usize = 15;
    match id {
        b"null" | b"0" => true,
        [b'"', inner @ .., b'"'] => {
            inner.len() <= 128 && inner.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
        }
        [b'1'..=b'9', rest @ ..] => rest.len() < MAX_SAFE_DIGITS && rest.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// `raw` with the value of its top-level `id` replaced by [`UPSTREAM_ID`]. `id` is a slice of the
/// exact text inside `raw` (found by position: the same text may also appear in params).
fn with_id(raw: &Bytes, id: &Bytes) -> Option<Bytes> {
    let start = (id.as_ptr() as usize).checked_sub(raw.as_ptr() as usize)?;
    let end = start.checked_add(id.len())?;
    if end > raw.len() || raw.get(start..end)? != &id[..] {
        return None;
    }
    let mut out = Vec::with_capacity(raw.len() - id.len() + UPSTREAM_ID.len());
    out.extend_from_slice(&raw[..start]);
    out.extend_from_slice(UPSTREAM_ID);
    out.extend_from_slice(&raw[end..]);
    Some(Bytes::from(out))
}

/// One element of what the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A valid request.
    Request(Request),
    /// Not a valid request; answer with this error (id echoed when it could be read).
    Invalid {
        /// Id text, or `null`.
        id: Bytes,
        /// Error code.
        code: i64,
        /// Message.
        message: String,
    },
}

/// What the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// A single request (or invalid single item).
    Single(Item),
    /// A non-empty batch.
    Batch(Vec<Item>),
    /// Not JSON, or an empty batch: answer this one error.
    Error {
        /// Error code.
        code: i64,
        /// Message.
        message: String,
    },
}

/// `part` as a view into `whole` when it lies inside it (always, for values borrowed from it),
/// else a copy: never a panic.
fn view(whole: &Bytes, part: &[u8]) -> Bytes {
    let inside = (part.as_ptr() as usize)
        .checked_sub(whole.as_ptr() as usize)
        .is_some_and(|start| start.checked_add(part.len()).is_some_and(|end| end <= whole.len()));
    if inside || part.is_empty() { whole.slice_ref(part) } else { Bytes::copy_from_slice(part) }
}

/// Classifies one JSON value's bytes as a request.
fn item(raw: &[u8], whole: &Bytes) -> Item {
    let null = || Bytes::from_static(b"null");
    let env: Envelope<'_> = match serde_json::from_slice(raw) {
        Ok(e) => e,
        Err(_) => {
            return Item::Invalid {
                id: null(),
                code: INVALID_REQUEST,
                message: "invalid request: not a JSON-RPC request object".into(),
            };
        }
    };
    // A view into the shared buffer (no copy): `with_id` finds the id's position from it.
    let id = env.id.map(|v| view(whole, v.get().as_bytes()));
    let id_or_null = || id.clone().unwrap_or_else(null);
    if let Some(idv) = env.id {
        let t = idv.get().as_bytes();
        let ok = matches!(t.first(), Some(b'"' | b'-' | b'0'..=b'9')) || t == b"null";
        if !ok {
            return Item::Invalid {
                id: null(),
                code: INVALID_REQUEST,
                message: "invalid request: id must be a string, number or null".into(),
            };
        }
    }
    if env.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
        return Item::Invalid {
            id: id_or_null(),
            code: INVALID_REQUEST,
            message: "invalid request: jsonrpc must be \"2.0\"".into(),
        };
    }
    let method = match env.method.map(|m| serde_json::from_str::<String>(m.get())) {
        Some(Ok(m)) if !m.is_empty() => m,
        _ => {
            return Item::Invalid {
                id: id_or_null(),
                code: INVALID_REQUEST,
                message: "invalid request: method must be a non-empty string".into(),
            };
        }
    };
    if let Some(p) = env.params
        && !matches!(p.get().as_bytes().first(), Some(b'[' | b'{'))
    {
        return Item::Invalid {
            id: id_or_null(),
            code: INVALID_REQUEST,
            message: "invalid request: params must be an array or object".into(),
        };
    }
    // A view into the shared buffer: batch elements are not copied.
    let raw = view(whole, raw);
    Item::Request(Request::new(raw, method, id))
}

/// The `method` of a JSON-RPC request body (e.g. one carried in an evidence bundle), if it has
/// one.
pub fn method_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct M {
        method: String,
    }
    serde_json::from_slice::<M>(body).ok().map(|m| m.method)
}

/// Parses a request body.
pub fn parse(body: &Bytes) -> Call {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'[') => {
            let elements: Vec<&RawValue> = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return Call::Error { code: PARSE_ERROR, message: format!("parse error: {e}") },
            };
            if elements.is_empty() {
                return Call::Error { code: INVALID_REQUEST, message: "invalid request: empty batch".into() };
            }
            Call::Batch(elements.iter().map(|e| item(e.get().as_bytes(), body)).collect())
        }
        Some(b'{') => match serde_json::from_slice::<&RawValue>(body) {
            Ok(_) => Call::Single(item(body, body)),
            Err(e) => Call::Error { code: PARSE_ERROR, message: format!("parse error: {e}") },
        },
        _ => match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            // Valid JSON but neither object nor array: not a request.
            Ok(_) => Call::Single(Item::Invalid {
                id: Bytes::from_static(b"null"),
                code: INVALID_REQUEST,
                message: "invalid request: expected an object or an array".into(),
            }),
            Err(e) => Call::Error { code: PARSE_ERROR, message: format!("parse error: {e}") },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    #[test]
    fn single_batch_and_errors() {
        match parse(&b(r#"{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":[]}"#)) {
            Call::Single(Item::Request(r)) => {
                assert_eq!(r.method, "eth_blockNumber");
                assert_eq!(&r.id.unwrap()[..], b"7");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(&b("{not json")), Call::Error { code: PARSE_ERROR, .. }));
        assert!(matches!(parse(&b("[]")), Call::Error { code: INVALID_REQUEST, .. }));
        assert!(matches!(parse(&b("42")), Call::Single(Item::Invalid { code: INVALID_REQUEST, .. })));
        assert!(matches!(parse(&b("")), Call::Error { code: PARSE_ERROR, .. }));
        match parse(&b(r#"[{"jsonrpc":"2.0","id":"a","method":"m"}, 5, {"jsonrpc":"2.0","method":"n"}]"#)) {
            Call::Batch(items) => {
                assert_eq!(items.len(), 3);
                assert!(matches!(&items[1], Item::Invalid { code: INVALID_REQUEST, .. }));
                assert!(matches!(&items[2], Item::Request(r) if r.is_notification()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ids_are_kept_byte_exact() {
        for id in ["1.50", "123456789012345678901234567890", "\"x\\\"y\"", "null", "-0"] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"m"}}"#);
            match parse(&Bytes::from(body)) {
                Call::Single(Item::Request(r)) => assert_eq!(&r.id.unwrap()[..], id.as_bytes()),
                other => panic!("{other:?}"),
            }
        }
        let bad = parse(&b(r#"{"jsonrpc":"2.0","id":{"a":1},"method":"m"}"#));
        assert!(matches!(bad, Call::Single(Item::Invalid { code: INVALID_REQUEST, .. })));
    }

    #[test]
    fn missing_version_or_method_is_invalid_request_with_id() {
        match parse(&b(r#"{"id":3,"method":"m"}"#)) {
            Call::Single(Item::Invalid { id, code, .. }) => {
                assert_eq!(&id[..], b"3");
                assert_eq!(code, INVALID_REQUEST);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(&b(r#"{"jsonrpc":"2.0","id":3}"#)), Call::Single(Item::Invalid { .. })));
        assert!(matches!(
            parse(&b(r#"{"jsonrpc":"2.0","id":3,"method":"m","params":1}"#)),
            Call::Single(Item::Invalid { .. })
        ));
    }
}
