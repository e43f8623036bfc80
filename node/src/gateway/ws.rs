use super::Gateway;
use crate::router::RouteOptions;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;
pub fn upgrade(_gw: Gateway, _chain: u64, _opts: RouteOptions, up: WebSocketUpgrade) -> Response {
    up.on_upgrade(|_s| async {})
}
