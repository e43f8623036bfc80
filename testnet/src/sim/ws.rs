//! One WebSocket session: JSON-RPC request/response (single and batch) plus `newHeads`
//! subscriptions.
//!
//! One task per session does everything in order, so a subscription's id always reaches the
//! client before its first notification, and a slow client slows only its own session (sends
//! wait for the socket; nothing queues without bound). New heads come from the backend's shared
//! ticker (`watch`); a session that fell behind, or a node that caught up after `Stale`, sends at
//! most [`MAX_CATCHUP_HEADS`] of the blocks it missed, the newest ones.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::fault::Fault;
use super::rpc::{Subscriptions, notification};
use super::server::{Admission, Counters, Shared};

/// Most `newHeads` notifications sent per subscription for one head change.
pub const MAX_CATCHUP_HEADS: u64 = 16;

enum Event {
    Stop,
    Message(Option<Result<Message, axum::Error>>),
    NewHead,
}

/// Serves one upgraded connection until the client leaves, the backend goes down or stops.
pub(crate) async fn session(
    shared: Arc<Shared>,
    mut socket: WebSocket,
    token: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    Counters::add(&shared.stats.ws_sessions, 1);
    let mut heads = shared.heads.subscribe();
    let mut subs = Subscriptions::default();
    loop {
        let event = tokio::select! {
            () = token.cancelled() => Event::Stop,
            message = socket.recv() => Event::Message(message),
            changed = heads.changed(), if !subs.list.is_empty() => {
                if changed.is_ok() { Event::NewHead } else { Event::Stop }
            }
        };
        let keep_going = match event {
            Event::Stop | Event::Message(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => false,
            Event::Message(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => true,
            Event::Message(Some(Ok(Message::Text(text)))) => {
                answer(&shared, &mut socket, &token, text.as_str().as_bytes(), &mut subs).await
            }
            Event::Message(Some(Ok(Message::Binary(bytes)))) => {
                answer(&shared, &mut socket, &token, &bytes, &mut subs).await
            }
            Event::NewHead => notify(&shared, &mut socket, &token, &mut subs).await,
        };
        if !keep_going {
            break;
        }
    }
}

/// Sends `text`, giving up if the session is cancelled meanwhile. False if the session is over.
async fn send(socket: &mut WebSocket, token: &CancellationToken, text: String) -> bool {
    tokio::select! {
        () = token.cancelled() => false,
        sent = socket.send(Message::Text(text.into())) => sent.is_ok(),
    }
}

async fn answer(
    shared: &Shared,
    socket: &mut WebSocket,
    token: &CancellationToken,
    payload: &[u8],
    subs: &mut Subscriptions,
) -> bool {
    Counters::add(&shared.stats.ws_messages, 1);
    let admission = tokio::select! {
        () = token.cancelled() => return false,
        admission = shared.admit(false) => admission,
    };
    let (fault, inject_internal) = match admission {
        Admission::Answer { fault, inject_internal } => (fault, inject_internal),
        // Not produced for WebSocket; answer with internal errors all the same.
        Admission::Http500 => (Fault::None, true),
    };
    match shared.answer(&fault, inject_internal, payload, Some(subs)).body {
        Some(text) => send(socket, token, text).await,
        None => true,
    }
}

async fn notify(shared: &Shared, socket: &mut WebSocket, token: &CancellationToken, subs: &mut Subscriptions) -> bool {
    let fault = shared.current_fault();
    if fault.holds_requests() {
        // Frozen: say nothing now; the blocks are sent (capped) at the first head after healing.
        return true;
    }
    if let Fault::Slow { delay_ms, jitter_ms } = fault {
        tokio::select! {
            () = token.cancelled() => return false,
            () = shared.slow(delay_ms, jitter_ms) => {}
        }
    }
    let view = shared.view(&fault);
    for sub in &mut subs.list {
        if view.head < sub.next_block {
            continue;
        }
        let first = sub.next_block.max(view.head.saturating_sub(MAX_CATCHUP_HEADS - 1));
        for n in first..=view.head {
            let Some(header) = view.block(n, true) else { continue };
            if !send(socket, token, notification(&sub.id, header)).await {
                return false;
            }
            Counters::add(&shared.stats.notifications, 1);
        }
        sub.next_block = view.head + 1;
    }
    true
}
