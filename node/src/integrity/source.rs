//! Where material comes from: asking one operator (own node or a peer over the relay) a
//! JSON-RPC question on the integrity layer's behalf, below the answer check (material is
//! verified by whoever uses it, never trusted for who sent it).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::time::Instant;

use crate::jsonrpc::Request;
use crate::router::{Call, Forward, Target, Targets, VerifyMode, WeakRouter};

/// Asks operators questions; knows who serves a chain through the router.
pub struct Source {
    targets: Targets,
    router: OnceLock<WeakRouter>,
}

impl Source {
    /// A source over the production forward; [`Source::attach`] must follow once the router
    /// exists (the router owns the check that owns this source).
    pub fn new(targets: Targets) -> Arc<Self> {
        Arc::new(Self { targets, router: OnceLock::new() })
    }

    /// Lets the source see which operators are eligible.
    pub fn attach(&self, router: WeakRouter) {
        let _ = self.router.set(router);
    }

    /// Eligible operators for `chain_id`, best first, one entry per operator (own upstreams
    /// are one operator: this node).
    pub fn operators(&self, chain_id: u64) -> Vec<Target> {
        let Some(router) = self.router.get().and_then(WeakRouter::upgrade) else { return Vec::new() };
        let mut out: Vec<Target> = Vec::new();
        for t in router.eligible_targets(chain_id) {
            let own_seen = matches!(t, Target::Own(_)) && out.iter().any(|o| matches!(o, Target::Own(_)));
            if !own_seen && !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }

    /// Whether the mesh has cordoned this node on `chain_id` (its own upstream proven lying).
    pub fn own_cordoned(&self, chain_id: u64) -> bool {
        self.router.get().and_then(WeakRouter::upgrade).is_some_and(|r| r.own_cordoned(chain_id))
    }

    /// `req` as `target` answers it (with its signed receipt when a peer answered), unchecked.
    pub async fn forward(
        &self,
        chain_id: u64,
        target: Target,
        req: &Request,
        deadline: Instant,
    ) -> Result<crate::router::Answer, String> {
        let call = Call { chain_id, req, mode: VerifyMode::Off };
        let budget = deadline.saturating_duration_since(Instant::now());
        if budget.is_zero() {
            return Err("no time left".into());
        }
        self.targets.forward(&call, target, budget).await.map_err(|e| e.to_string())
    }

    /// The raw `result` of `method(params)` at `target`, or why there is none.
    pub async fn ask(
        &self,
        chain_id: u64,
        target: Target,
        method: &str,
        params: &str,
        deadline: Instant,
    ) -> Result<Bytes, String> {
        let answer = self.forward(chain_id, target, &Request::internal(method, params), deadline).await?;
        let range = match &answer.answered {
            crate::jsonrpc::Answered::Result(r) => r.clone(),
            crate::jsonrpc::Answered::Error(e) => return Err(format!("error {}: {}", e.code, e.message)),
        };
        Ok(answer.body.slice(range))
    }
}
