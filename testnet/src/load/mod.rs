//! The one load engine of the testnet: how the bench ([`crate::bench`]) and the scenarios
//! ([`crate::scenario`]) talk to servers, so that their figures come from the same client doing
//! the same work per request.
//!
//! - [`client`]: a loop's connection over HTTP/1.1 or WebSocket, reconnected after a failure,
//!   with one timeout per call;
//! - [`http1`]: the minimal HTTP/1.1 client under it (like `wrk`: a request serialised once, the
//!   response parsed in place, nothing copied);
//! - [`ws`]: the WebSocket client under it;
//! - [`pace`]: when a loop sends (back to back, or at a rate without bursts);
//! - [`threads`]: the load's own threads, apart from the runtime of simulated backends.
//!
//! What a loop sends and how it judges an answer stays with its user: the bench checks for a
//! JSON-RPC result and who served it; a scenario judges each answer against the chain's truth.
//! Percentiles and gossip convergence are defined once, in [`crate::measure`].

pub mod client;
pub mod http1;
pub mod pace;
pub mod threads;
pub mod ws;

pub use client::{Client, Transport};
pub use pace::{Pace, Schedule};
pub use threads::{CLIENT_THREADS, on_client_threads};
