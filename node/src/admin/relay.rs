//! `POST /relay/{peer}/{chain}`: one JSON-RPC body relayed to exactly one peer, and what came
//! back, for `rpcmesh federation vet --peer` (vetting a candidate's own node through the mesh).
//!
//! Why a route of its own rather than the gateway: the gateway chooses providers, fails over,
//! verifies answers and rewrites ids, all of which would hide the candidate. This route does none
//! of it: the body goes as it is (a single call or a whole batch, so the candidate's own batch
//! limit is what gets measured) to the one peer named, with no retry, no breaker (a vetting ramp
//! pushed to failure must not eject the peer from client routing) and no answer checks; the
//! peer's relay status, its reason, its answer verbatim and its signed receipt come back as they
//! are. It is an operator tool, so it sits behind the admin token like every `POST`.
//!
//! The relays go through their own [`RelayClient`] (as the prober's do): a vetting ramp's
//! thousands of receipts must not push client receipts out of `/receipts`.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rpcmesh_protocol::PublicKey;
use rpcmesh_protocol::messages::RelayStatus;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{ADMIN_REQUEST_TIMEOUT, AdminState};
use crate::p2p::P2pError;
use crate::relay::RelayCallError;

/// Relay timeout when the query gives none, ms: the vet tool's default request timeout.
pub const DEFAULT_RELAY_TIMEOUT_MS: u64 = 10_000;
/// Longest relay timeout, ms: under [`ADMIN_REQUEST_TIMEOUT`] by a margin, so a slow peer is
/// answered with the relay's own `timeout` status instead of being cut by the admin API's 408.
pub const MAX_RELAY_TIMEOUT_MS: u64 = ADMIN_REQUEST_TIMEOUT.as_millis() as u64 - 2_000;
/// Longest reason echoed back, bytes (a refusal's text, an upstream error).
const MAX_REASON_BYTES: usize = 1_000;

/// Query of `POST /relay/{peer}/{chain}`.
#[derive(Debug, Deserialize)]
pub struct RelayQuery {
    /// The relay's timeout, ms (default [`DEFAULT_RELAY_TIMEOUT_MS`], at most
    /// [`MAX_RELAY_TIMEOUT_MS`]).
    pub timeout_ms: Option<u64>,
}

/// The answer of `POST /relay/{peer}/{chain}` when the peer answered the relay (HTTP 200,
/// whatever the relay status).
#[derive(Debug, Serialize, Deserialize)]
pub struct RelayAnswer {
    /// The peer asked.
    pub peer: String,
    /// The chain.
    pub chain_id: u64,
    /// The peer's relay status: `ok`, `busy`, `refused`, `not_serving_chain`, `upstream_error`,
    /// `timeout`.
    pub status: String,
    /// Round trip of the relay as this daemon measured it (p2p and the peer's node), µs.
    pub relay_us: u64,
    /// The peer's node's answer, verbatim (status `ok`; `null` if it was not JSON, as for a
    /// notification).
    pub answer: Option<Box<RawValue>>,
    /// The peer's reason (any other status), shortened.
    pub reason: Option<String>,
    /// Refused by the peer's relay method policy (`relay.allow_methods`): the peer's choice of
    /// what it serves to the mesh, not a failure of its node.
    pub method_refused: bool,
    /// The peer's signed receipt for the answer (status `ok`).
    pub receipt: Option<RelayReceipt>,
}

/// A receipt as `POST /relay` shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct RelayReceipt {
    /// The signature verified (binding to the request, the answer, this node and the chain was
    /// checked before the answer was accepted).
    pub verified: bool,
    /// The head the peer's node was at, as the peer signed it.
    pub head: Option<u64>,
    /// The signed receipt, hex of its canonical bytes (verifiable by anyone).
    pub signed: String,
}

fn error(status: StatusCode, why: String) -> Response {
    (status, Json(serde_json::json!({ "error": why }))).into_response()
}

fn shorten(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let mut end = text.len().min(MAX_REASON_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// `POST /relay/{peer}/{chain}[?timeout_ms=N]` with a JSON-RPC body: see the module docs. HTTP
/// 200 with a [`RelayAnswer`] when the peer answered; 502 when it could not be reached or its
/// answer failed validation; 504 when nothing came back in time; 400 for a bad peer or an empty
/// body; 503 when relaying is disabled.
pub async fn relay_to_peer(
    State(s): State<AdminState>,
    Path((peer, chain_id)): Path<(String, u64)>,
    Query(q): Query<RelayQuery>,
    body: Bytes,
) -> Response {
    let key = match PublicKey::parse(&peer) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("{peer:?} is not a PeerId: {e}")),
    };
    let peer_id = key.to_peer_id().to_string();
    if peer_id == s.peer_id {
        let why = "this is the node's own PeerId: test its own node with `federation vet --endpoint`";
        return error(StatusCode::BAD_REQUEST, why.into());
    }
    if body.is_empty() {
        return error(StatusCode::BAD_REQUEST, "send a JSON-RPC request or batch as the body".into());
    }
    let timeout_ms = q.timeout_ms.unwrap_or(DEFAULT_RELAY_TIMEOUT_MS).clamp(1, MAX_RELAY_TIMEOUT_MS);
    let outcome = match s.relay.call(key, chain_id, Vec::from(body), Duration::from_millis(timeout_ms)).await {
        Ok(o) => o,
        Err(RelayCallError::Transport(P2pError::Timeout(_))) => {
            return error(StatusCode::GATEWAY_TIMEOUT, format!("no answer from {peer_id} within {timeout_ms} ms"));
        }
        Err(e) => return error(StatusCode::BAD_GATEWAY, e.to_string()),
    };
    let method_refused = outcome.method_refusal().is_some();
    let ok = outcome.status == RelayStatus::Ok;
    let answer = if ok {
        String::from_utf8(outcome.body.clone()).ok().and_then(|t| RawValue::from_string(t).ok())
    } else {
        None
    };
    let reason = match (ok, &answer) {
        (false, _) => Some(shorten(&outcome.body)),
        (true, None) => Some(format!("the answer is not JSON: {}", shorten(&outcome.body))),
        (true, Some(_)) => None,
    };
    // Checked here (~35 µs) rather than left to the background check: the caller reports it.
    let receipt = outcome.receipt.as_ref().map(|r| RelayReceipt {
        verified: r.verify().is_ok(),
        head: r.body.head,
        signed: hex::encode(r.to_bytes()),
    });
    Json(RelayAnswer {
        peer: peer_id,
        chain_id,
        status: outcome.status.label().into(),
        relay_us: outcome.elapsed.as_micros().try_into().unwrap_or(u64::MAX),
        answer,
        reason,
        method_refused,
        receipt,
    })
    .into_response()
}
