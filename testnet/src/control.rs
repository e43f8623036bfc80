//! The testnet runner's control API (127.0.0.1, random port, written to `DIR/testnet.json`):
//! what `rpcmesh testnet fault|partition|restart|down` talk to.
//!
//! - `GET /state`: nodes, faults in force.
//! - `POST /fault` `{"node": K, "fault": "down"}`.
//! - `POST /partition` `{"groups": "0,1,2:3,4"}`; `POST /heal-partition`.
//! - `POST /restart` `{"node": K}`.
//! - `POST /shutdown`: tear everything down and exit.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::{Mutex, Notify};

use crate::net::{Testnet, parse_groups};

/// Shared runner state.
#[derive(Clone)]
pub struct Control {
    /// The testnet.
    pub testnet: Arc<Mutex<Testnet>>,
    /// Notified by `POST /shutdown`.
    pub shutdown: Arc<Notify>,
}

#[derive(Deserialize)]
struct FaultBody {
    node: usize,
    fault: String,
}

#[derive(Deserialize)]
struct PartitionBody {
    groups: String,
}

#[derive(Deserialize)]
struct NodeBody {
    node: usize,
}

fn result(r: Result<(), String>) -> Response {
    match r {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({ "ok": true }))).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": e }))).into_response(),
    }
}

/// The control router.
pub fn router(control: Control) -> axum::Router {
    axum::Router::new()
        .route("/state", get(state))
        .route("/fault", post(fault))
        .route("/partition", post(partition))
        .route("/heal-partition", post(heal_partition))
        .route("/restart", post(restart))
        .route("/shutdown", post(shutdown))
        .with_state(control)
}

async fn state(State(c): State<Control>) -> Json<serde_json::Value> {
    let t = c.testnet.lock().await;
    Json(serde_json::json!({ "nodes": t.nodes(), "faults": t.faults() }))
}

async fn fault(State(c): State<Control>, Json(b): Json<FaultBody>) -> Response {
    result(c.testnet.lock().await.fault(b.node, &b.fault).await)
}

async fn partition(State(c): State<Control>, Json(b): Json<PartitionBody>) -> Response {
    let groups = match parse_groups(&b.groups) {
        Ok(g) => g,
        Err(e) => return result(Err(e)),
    };
    result(c.testnet.lock().await.partition(&groups).await)
}

async fn heal_partition(State(c): State<Control>) -> Response {
    result(c.testnet.lock().await.heal_partition().await)
}

async fn restart(State(c): State<Control>, Json(b): Json<NodeBody>) -> Response {
    result(c.testnet.lock().await.restart(b.node).await)
}

async fn shutdown(State(c): State<Control>) -> Response {
    c.shutdown.notify_one();
    result(Ok(()))
}

/// Sends a control request to the runner described by `dir/testnet.json`.
pub async fn call(dir: &std::path::Path, path: &str, body: serde_json::Value) -> Result<serde_json::Value, String> {
    let state = crate::net::TestnetState::load(dir)?;
    let url = format!("{}{path}", state.control);
    let bytes = rpcmesh_node::admin::client::post_json(&url, &body, None, Duration::from_secs(120))
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}
