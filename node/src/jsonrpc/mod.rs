//! JSON-RPC 2.0 envelopes: the leaf module every part of the request path shares (gateway,
//! router, relay, testnet). Nothing here knows about HTTP, peers or routing.
//!
//! - [`request`]: what a client sent, read without re-serialising: the method and id are
//!   borrowed from the body, params stay raw bytes; batches are split into views of one buffer.
//! - [`response`]: what a node or peer answered, checked to be exactly one well-formed
//!   JSON-RPC response for the request it answers (answer hygiene), and errors we produce.
//!
//! Errors follow the spec: invalid JSON → -32700 with id null; not a request → -32600; an
//! empty batch → one -32600 error. Ids are echoed byte for byte.

pub mod request;
pub mod response;

pub use request::{Call, Item, Request, method_of, parse};
pub use response::{
    Answered, Malformed, ResponseKind, RpcError, error_response, error_response_with_data, parse_response,
    response_kind, with_client_id,
};

/// Parse error (-32700).
pub const PARSE_ERROR: i64 = -32700;
/// Invalid request (-32600).
pub const INVALID_REQUEST: i64 = -32600;
/// Method not found (-32601).
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid params (-32602).
pub const INVALID_PARAMS: i64 = -32602;
/// Internal error (-32603).
pub const INTERNAL_ERROR: i64 = -32603;
/// Resource not found (EIP-1474), used for an unknown chain.
pub const RESOURCE_NOT_FOUND: i64 = -32001;
/// Resource unavailable (EIP-1474): no provider could serve the request.
pub const RESOURCE_UNAVAILABLE: i64 = -32002;
/// Limit exceeded (EIP-1474): a quota, a size or concurrency limit of this daemon.
pub const LIMIT_EXCEEDED: i64 = -32005;
