//! The load's WebSocket client: one connection per loop, a JSON-RPC request per text message,
//! the answer found by its id among whatever else the server sends (notifications).

use futures::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

type Stream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One WebSocket connection to a gateway.
pub struct WsConn(Stream);

impl WsConn {
    /// Opens `ws://{addr}/` with `headers` on the upgrade request.
    pub async fn connect<K: AsRef<str>, V: AsRef<str>>(addr: &str, headers: &[(K, V)]) -> Result<WsConn, String> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
        let mut req = format!("ws://{addr}/").into_client_request().map_err(|e| e.to_string())?;
        for (k, v) in headers {
            let name =
                HeaderName::from_bytes(k.as_ref().as_bytes()).map_err(|_| format!("bad header {:?}", k.as_ref()))?;
            let value =
                HeaderValue::from_str(v.as_ref()).map_err(|_| format!("bad {} value {:?}", k.as_ref(), v.as_ref()))?;
            req.headers_mut().insert(name, value);
        }
        let (c, _) = tokio_tungstenite::connect_async(req).await.map_err(|e| e.to_string())?;
        Ok(WsConn(c))
    }

    /// Sends `body` (a JSON-RPC request with id `id`) and returns the text of the answer that
    /// carries that id.
    pub async fn call(&mut self, body: &[u8], id: u64) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(body).map_err(|e| format!("request is not UTF-8: {e}"))?;
        self.0.send(Message::text(text.to_string())).await.map_err(|e| e.to_string())?;
        loop {
            match self.0.next().await {
                Some(Ok(Message::Text(t))) => {
                    if answer_id(t.as_str()) == Some(id) {
                        return Ok(t.as_bytes().to_vec());
                    }
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("websocket closed".into()),
            }
        }
    }
}

/// The numeric `id` of a JSON-RPC message, if it has one.
fn answer_id(text: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: Option<serde_json::Value>,
    }
    serde_json::from_str::<Id>(text).ok()?.id?.as_u64()
}

#[cfg(test)]
mod tests {
    #[test]
    fn answers_are_told_from_notifications_by_id() {
        assert_eq!(super::answer_id(r#"{"jsonrpc":"2.0","id":7,"result":"0x1"}"#), Some(7));
        assert_eq!(super::answer_id(r#"{"jsonrpc":"2.0","method":"eth_subscription","params":{}}"#), None);
        assert_eq!(super::answer_id("not json"), None);
    }
}
