//! The innermost layer: carrying one request to one [`Target`] and reading its reply.
//!
//! [`Forward`] is the trait every layer above is written against; [`Targets`] is the production
//! implementation (own upstreams over pooled HTTP, peers over the libp2p relay). Tests script
//! their own. [`DynForward`] erases the type once at start-up so the router is not generic.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rpcmesh_protocol::PublicKey;
use rpcmesh_protocol::messages::RelayStatus;

use super::classify::{judge_body, judge_status};
use super::outcome::{Answer, AttemptError};
use crate::jsonrpc::Request;
use crate::p2p::P2pError;
use crate::relay::{RelayCallError, RelayClient};
use crate::upstream::{TransportError, UpstreamSet};

/// A provider that can serve: one of our upstreams, or a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Own upstream, by index in the chain's upstream list.
    Own(usize),
    /// A peer, by key.
    Peer(PublicKey),
}

impl Target {
    /// `own` or `peer`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Own(_) => "own",
            Self::Peer(_) => "peer",
        }
    }
}

/// How much of an answer the answer-check layer verifies (`[integrity] mode`, overridden per
/// request by `x-rpcmesh-verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// No content checks.
    Off,
    /// CPU-only checks on every answer; checks that need material (proofs, receipts, the
    /// trusted chain) on a share of answers that providers cannot predict, and on every answer of
    /// a provider after it failed one.
    #[default]
    Sample,
    /// Every verifiable answer fully checked before it is used; an answer that cannot be verified
    /// is not used.
    Strict,
}

impl VerifyMode {
    /// Reads a mode as written in config and headers.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "off" => Some(Self::Off),
            "sample" => Some(Self::Sample),
            "strict" => Some(Self::Strict),
            _ => None,
        }
    }

    /// As written in config and headers.
    pub fn label(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Sample => "sample",
            Self::Strict => "strict",
        }
    }
}

/// One request on its way to targets.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// Chain to serve it on.
    pub chain_id: u64,
    /// The request.
    pub req: &'a Request,
    /// How far its answer must be verified.
    pub mode: VerifyMode,
}

impl Call<'_> {
    /// Whether this is `eth_sendRawTransaction` (never hedged; "already known" is a success).
    pub fn is_send(&self) -> bool {
        self.req.method == "eth_sendRawTransaction"
    }
}

/// Carries a call to one target within `budget` and judges the reply.
pub trait Forward: Send + Sync {
    /// The answer of `target`, or why there is none usable.
    fn forward<'a>(
        &'a self,
        call: &'a Call<'a>,
        target: Target,
        budget: Duration,
    ) -> impl Future<Output = Result<Answer, AttemptError>> + Send + 'a;
}

/// Object-safe [`Forward`]: the composed stack behind one pointer (one allocation per attempt).
pub trait DynForward: Send + Sync {
    /// See [`Forward::forward`].
    fn forward_dyn<'a>(
        &'a self,
        call: &'a Call<'a>,
        target: Target,
        budget: Duration,
    ) -> BoxFuture<'a, Result<Answer, AttemptError>>;
}

impl<F: Forward> DynForward for F {
    fn forward_dyn<'a>(
        &'a self,
        call: &'a Call<'a>,
        target: Target,
        budget: Duration,
    ) -> BoxFuture<'a, Result<Answer, AttemptError>> {
        Box::pin(self.forward(call, target, budget))
    }
}

/// The erased stack, usable wherever a [`Forward`] is. A struct rather than an alias of
/// `Arc<dyn ..>`: futures over a bare trait object trip the compiler's higher-ranked `Send`
/// analysis (the object's lifetime is erased in generic code).
#[derive(Clone)]
pub struct SharedForward(Arc<dyn DynForward>);

impl SharedForward {
    /// Erases a composed stack.
    pub fn new(forward: impl Forward + 'static) -> Self {
        Self(Arc::new(forward))
    }
}

impl Forward for SharedForward {
    fn forward<'a>(
        &'a self,
        call: &'a Call<'a>,
        target: Target,
        budget: Duration,
    ) -> impl Future<Output = Result<Answer, AttemptError>> + Send + 'a {
        self.0.forward_dyn(call, target, budget)
    }
}

/// Own upstreams and peers: the production [`Forward`].
#[derive(Clone)]
pub struct Targets {
    /// Own upstreams.
    pub upstreams: Arc<UpstreamSet>,
    /// The relay to peers (`None`: own upstreams only).
    pub relay: Option<RelayClient>,
}

impl Forward for Targets {
    async fn forward<'a>(
        &'a self,
        call: &'a Call<'a>,
        target: Target,
        budget: Duration,
    ) -> Result<Answer, AttemptError> {
        let body = call.req.upstream_body().clone();
        match target {
            Target::Own(i) => {
                let upstream =
                    self.upstreams.for_chain(call.chain_id).get(i).ok_or(AttemptError::Unavailable("upstream gone"))?;
                let reply = upstream.forward(body, budget).await.map_err(transport_error)?;
                judge_status(reply.status)?;
                judge_body(call.req, reply.body)
            }
            Target::Peer(key) => {
                let relay = self.relay.as_ref().ok_or(AttemptError::Unavailable("relay disabled"))?;
                let reply = relay
                    .call(key, call.chain_id, Vec::from(body), budget)
                    .await
                    .map_err(|e| relay_error(e, budget))?;
                match reply.status {
                    RelayStatus::Ok => {
                        let mut answer = judge_body(call.req, reply.body.into())?;
                        answer.receipt = reply.receipt.map(Box::new);
                        Ok(answer)
                    }
                    RelayStatus::Busy => Err(AttemptError::Busy),
                    RelayStatus::Refused if let Some(why) = reply.method_refusal() => {
                        Err(AttemptError::MethodRefused(why))
                    }
                    status => Err(AttemptError::Relay(status)),
                }
            }
        }
    }
}

fn transport_error(e: TransportError) -> AttemptError {
    match e {
        TransportError::Timeout(after_ms) => AttemptError::Timeout { after_ms },
        TransportError::TooLarge(limit) => AttemptError::TooLarge { limit },
        TransportError::Connect(why) => AttemptError::Unreachable(why),
    }
}

fn relay_error(e: RelayCallError, budget: Duration) -> AttemptError {
    match e {
        RelayCallError::Transport(P2pError::Timeout(_)) => {
            AttemptError::Timeout { after_ms: budget.as_millis().try_into().unwrap_or(u64::MAX) }
        }
        RelayCallError::Transport(e) => AttemptError::Unreachable(e.to_string()),
        RelayCallError::Invalid { reason, .. } => AttemptError::RelayInvalid(reason),
    }
}
