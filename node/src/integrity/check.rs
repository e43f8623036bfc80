//! The integrity answer check: the [`AnswerCheck`] that verifies answers against the trusted
//! chain ([`super::anchor`]) with material from other operators ([`super::source`]), judged by
//! [`super::judge`].
//!
//! Per answer: CPU-only checks (header hash, transaction hash and sender) whenever the mode is
//! not `off`; checks that need material (the trusted header, a proof, the block's receipts) on
//! every answer in `strict` mode and on a keyed-hash sample in `sample` mode (every answer of a
//! provider that failed a check recently). A proven lie from a peer becomes evidence; in
//! `strict` mode an answer that cannot be verified is not used, so the attempt layer goes to
//! the next operator exactly as after a transport error.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use rpcmesh_eth::{B256, BlockId, bloom_may_match, json, logs::FilterBlocks, parse_logs, verify_header_of};
use rpcmesh_protocol::messages::{BlockRef, Evidence, LieKind, MessageHeader};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::anchor::Anchors;
use super::claim::{BlockSel, Claim, block_param_index, claim_of};
use super::judge::{self, Verdict};
use super::source::Source;
use super::{EvidenceSink, IntegrityMetrics};
use crate::jsonrpc::Request;
use crate::router::check::{AnswerCheck, Prepared};
use crate::router::outcome::CheckFailure;
use crate::router::{Answer, AttemptError, Call, Target, Verified, VerifyMode};

/// Operators other than the one that answered asked for material before it is asked itself.
pub const MATERIAL_SOURCES: usize = 2;

/// Blocks whose receipts one `eth_getLogs` check fetches at once.
pub const LOG_BLOCKS_IN_FLIGHT: usize = 8;
/// Bytes of verified material (receipts, proofs, blocks) kept for reuse.
pub const MATERIAL_CACHE_BYTES: usize = 32 << 20;
/// Blocks whose receipts are kept verified (decoded, root checked) for reuse: a sampled check
/// of logs or a receipt in a block seen before costs a comparison, not a trie rebuild.
pub const VERIFIED_RECEIPTS_BLOCKS: usize = 256;

/// Bytes of block answers remembered as verified (by their exact bytes), so that the same
/// block asked again costs a comparison instead of a parse and a keccak.
pub const VERIFIED_BLOCK_ANSWERS_BYTES: usize = 4 << 20;
/// After a failed check, every answer of that provider is fully checked for this long.
pub const SUSPECT_FOR: Duration = Duration::from_secs(3600);

/// Tuning of the check.
#[derive(Debug, Clone, Copy)]
pub struct CheckSettings {
    /// Share of answers fully checked in `sample` mode, per mille.
    pub sample_permille: u16,
    /// Most blocks of an `eth_getLogs` range verified; wider ranges pass unverified.
    pub max_log_blocks: u64,
    /// How far `eth_blockNumber` may be above the highest head the quorum reported, blocks.
    pub head_slack_blocks: u64,
    /// How far `eth_blockNumber` may be behind the trusted head, blocks.
    pub max_lag_blocks: u64,
}

/// The integrity [`AnswerCheck`].
pub struct IntegrityCheck {
    anchors: Arc<Anchors>,
    source: Arc<Source>,
    settings: CheckSettings,
    /// Keyed per process: providers cannot tell which answers are sampled.
    sampler: std::collections::hash_map::RandomState,
    draws: std::sync::atomic::AtomicU64,
    suspects: Mutex<HashMap<Target, Instant>>,
    cache: MaterialCache,
    receipts: ReceiptsCache,
    block_answers: BlockAnswers,
    memory: super::equivocation::Memory,
    evidence: Arc<dyn EvidenceSink>,
    metrics: IntegrityMetrics,
}

impl IntegrityCheck {
    /// A check over `anchors`, reporting lies to `evidence`.
    pub fn new(
        anchors: Arc<Anchors>,
        source: Arc<Source>,
        settings: CheckSettings,
        evidence: Arc<dyn EvidenceSink>,
        metrics: IntegrityMetrics,
    ) -> Self {
        Self {
            anchors,
            source,
            settings,
            sampler: Default::default(),
            draws: Default::default(),
            suspects: Mutex::new(HashMap::new()),
            cache: MaterialCache::new(MATERIAL_CACHE_BYTES),
            receipts: ReceiptsCache::default(),
            block_answers: BlockAnswers::new(VERIFIED_BLOCK_ANSWERS_BYTES),
            memory: Default::default(),
            evidence,
            metrics,
        }
    }

    /// How this attempt's answer is checked: decided once, before the attempt.
    fn depth(&self, call: &Call<'_>, target: Target) -> Depth {
        if call.mode == VerifyMode::Off {
            return Depth::default();
        }
        let distrusted = self.distrusted(call, target);
        let deep = match call.mode {
            VerifyMode::Sample => {
                // A fresh draw per attempt (a counter in the keyed hash): the same request asked
                // again is sampled independently, so polling one value cannot dodge the checks.
                let draw = self.draws.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                distrusted
                    || self.sampler.hash_one((call.req.raw.as_ref(), draw)) % 1000
                        < u64::from(self.settings.sample_permille)
            }
            _ => true,
        };
        Depth { deep, distrusted }
    }

    /// Whether `target` failed a check recently, or is this node's own upstream and the mesh
    /// proved it lied (peers route around it; the cordon lasts longer than a suspicion). Its
    /// answers are checked in full in every mode, and used only if they verified: an answer
    /// that cannot be checked (no anchor within the deadline on a busy machine) goes to the
    /// next operator, as in strict mode.
    fn distrusted(&self, call: &Call<'_>, target: Target) -> bool {
        let suspect = {
            let s = self.suspects.lock().unwrap_or_else(|p| p.into_inner());
            s.get(&target).is_some_and(|since| since.elapsed() < SUSPECT_FOR)
        };
        suspect || (matches!(target, Target::Own(_)) && self.source.own_cordoned(call.chain_id))
    }

    fn suspect(&self, target: Target) {
        let mut s = self.suspects.lock().unwrap_or_else(|p| p.into_inner());
        s.retain(|_, since| since.elapsed() < SUSPECT_FOR);
        s.insert(target, Instant::now());
    }

    /// Judges an answer with material `method(params)`, asked of operators other than `not`
    /// first (at most [`MATERIAL_SOURCES`]), then of `not` itself: material is verified, never
    /// trusted for who sent it, and material that fails its own verification is asked of the
    /// next operator. Returns the verdict and the material it rests on.
    async fn with_material(
        &self,
        chain_id: u64,
        not: Target,
        method: &str,
        params: &str,
        deadline: Instant,
        judge: impl Fn(&[u8]) -> judge::Judged,
    ) -> (judge::Judged, Option<Bytes>) {
        // Material is content-addressed by what it is asked for at a block (a block's receipts by
        // its hash, a proof at a number on the trusted chain): material that verified once is
        // reused, not fetched again for the next request about the same block.
        let key = (chain_id, method.to_string(), params.to_string());
        if let Some(b) = self.cache.get(&key) {
            match judge(&b) {
                Err(Verdict::BadMaterial(_)) => self.cache.forget(&key),
                judged => return (judged, Some(b)),
            }
        }
        let mut ops: Vec<Target> =
            self.source.operators(chain_id).into_iter().filter(|t| *t != not).take(MATERIAL_SOURCES).collect();
        ops.push(not);
        let mut last = String::from("no operator");
        for t in ops {
            match self.source.ask(chain_id, t, method, params, deadline).await {
                Ok(b) if judge::is_null(&b) => last = format!("{method} answered null"),
                Ok(b) => match judge(&b) {
                    Err(Verdict::BadMaterial(why)) => {
                        tracing::debug!(chain_id, target = ?t, method, %why, "material failed its own verification");
                        last = why;
                    }
                    judged => {
                        let size = b.len();
                        self.cache.put(key, b.clone(), size);
                        return (judged, Some(b));
                    }
                },
                Err(e) => last = e,
            }
        }
        (Err(Verdict::Unverifiable(format!("no verifiable {method}: {last}"))), None)
    }

    /// Material `method(params)` that `valid` accepts, asked as in [`Self::with_material`].
    async fn material(
        &self,
        chain_id: u64,
        not: Target,
        method: &str,
        params: &str,
        deadline: Instant,
        valid: impl Fn(&[u8]) -> bool,
    ) -> Result<Bytes, Verdict> {
        let (judged, bytes) = self
            .with_material(chain_id, not, method, params, deadline, |b| {
                if valid(b) { Ok(Verified::None) } else { Err(Verdict::BadMaterial("rejected".into())) }
            })
            .await;
        judged?;
        bytes.ok_or_else(|| Verdict::Unverifiable(format!("no {method}")))
    }

    /// The trusted header at the block a selector names (`Head` must have been pinned).
    async fn trusted_at(
        &self,
        chain_id: u64,
        sel: BlockSel,
        target: Target,
        deadline: Instant,
    ) -> Result<Arc<super::anchor::Trusted>, Verdict> {
        let unverifiable = |e: String| Verdict::Unverifiable(e);
        match sel {
            BlockSel::Number(n) => self.anchors.at(chain_id, n, deadline).await.map_err(unverifiable),
            BlockSel::Earliest => self.anchors.at(chain_id, 0, deadline).await.map_err(unverifiable),
            BlockSel::Hash(h) => {
                let params = format!(r#"["{h}",false]"#);
                let valid = |b: &[u8]| verify_header_of(b, BlockId::Hash(h)).is_ok();
                let body = self.material(chain_id, target, "eth_getBlockByHash", &params, deadline, valid).await?;
                let header = verify_header_of(&body, BlockId::Hash(h)).map_err(|e| unverifiable(e.to_string()))?;
                let trusted = self.anchors.at(chain_id, header.number(), deadline).await.map_err(unverifiable)?;
                if trusted.header.hash() != h {
                    return Err(unverifiable(format!("block {h} is not on the trusted chain")));
                }
                Ok(trusted)
            }
            BlockSel::Head => Err(unverifiable("a head-relative answer that was not pinned".into())),
            BlockSel::Pending => Err(unverifiable("pending state is in no block: nothing proves it".into())),
        }
    }

    /// Judges one answer. `Ok(level)`: verified that far; `Err`: why not.
    async fn judge(
        &self,
        call: &Call<'_>,
        target: Target,
        result: &[u8],
        deep: bool,
        deadline: Instant,
    ) -> Result<(Verified, Option<Material>), (Verdict, Option<Material>)> {
        let chain_id = call.chain_id;
        let claim = match claim_of(&call.req.method, call.req.upstream_body()) {
            Ok(Some(c)) => c,
            Ok(None) | Err(_) => return Ok((Verified::None, None)),
        };
        let no = |v: Verdict| (v, None);
        if judge::is_null(result) && !matches!(claim, Claim::Head | Claim::ChainId) {
            return Ok((Verified::None, None));
        }
        match claim {
            Claim::ChainId => {
                let id = json::parse_quantity_result(result).map_err(|e| no(Verdict::Unverifiable(e.to_string())))?;
                if id != rpcmesh_eth::U256::from(chain_id) {
                    return Err(no(Verdict::Unverifiable(format!("chain id {id}, expected {chain_id}"))));
                }
                Ok((Verified::None, None))
            }
            Claim::Head => {
                if !deep {
                    return Ok((Verified::None, None));
                }
                let n = json::parse_quantity_result(result).map_err(|e| no(Verdict::Unverifiable(e.to_string())))?;
                let n: u64 = n.try_into().map_err(|_| no(Verdict::Unverifiable("block number too large".into())))?;
                let head = self.anchors.head(chain_id, deadline).await.map_err(|e| no(Verdict::Unverifiable(e)))?;
                let low = head.header.header.number().saturating_sub(self.settings.max_lag_blocks);
                let high = head.highest_seen + self.settings.head_slack_blocks;
                if n < low || n > high {
                    return Err(no(Verdict::Lie {
                        kind: LieKind::Head,
                        detail: format!("head #{n} outside the quorum's #{low}..=#{high}"),
                    }));
                }
                Ok((Verified::Quorum, None))
            }
            Claim::Block { block } => {
                let key = self.block_answers.key(result);
                let judged = match self.block_answers.get(key, result) {
                    Some(header) => judge::is_asked_block(&header, block).map(|()| header),
                    None => judge::block_alone(result, block).map(|b| {
                        let header = Arc::new(b.header().clone());
                        self.block_answers.put(key, result, header.clone());
                        header
                    }),
                };
                let b = match judged {
                    Ok(b) => b,
                    Err(lie @ Verdict::Lie { .. }) => {
                        // Wrong on its face; the trusted header of the block asked for makes it evidence.
                        let m = match block {
                            // A block wrong on its face proves itself; the trusted head only
                            // places the bundle in time.
                            BlockSel::Head | BlockSel::Pending => {
                                self.anchors.head(chain_id, deadline).await.ok().map(|h| Material::new(&h.header))
                            }
                            sel => {
                                self.trusted_at(chain_id, sel, target, deadline).await.ok().map(|t| Material::new(&t))
                            }
                        };
                        return Err((lie, m));
                    }
                    Err(v) => return Err(no(v)),
                };
                if !deep {
                    return Ok((Verified::None, None));
                }
                let trusted =
                    self.anchors.at(chain_id, b.number(), deadline).await.map_err(|e| no(Verdict::Unverifiable(e)))?;
                if judge::on_trusted_chain(&b, &trusted.header).is_ok() {
                    return Ok((Verified::Header, None));
                }
                // Another block than the trusted one at that height: a lie, or a reorganisation
                // since the header was trusted. A quorum asked afresh decides which.
                let trusted = self
                    .anchors
                    .reconfirm(chain_id, b.number(), deadline)
                    .await
                    .map_err(|e| no(Verdict::Unverifiable(e)))?;
                let m = Material::new(&trusted);
                judge::on_trusted_chain(&b, &trusted.header).map_err(|v| (v, Some(m.clone())))?;
                Ok((Verified::Header, None))
            }
            Claim::Transaction { hash } => {
                let tx = judge::transaction_alone(result, hash).map_err(no)?;
                let Some(place) = tx.placement().filter(|_| deep) else { return Ok((Verified::None, None)) };
                let trusted = self.trusted_at(chain_id, BlockSel::Number(place.block_number), target, deadline).await;
                let trusted = trusted.map_err(no)?;
                if trusted.header.hash() != place.block_hash {
                    return Err(no(Verdict::Unverifiable("placed in a block off the trusted chain".into())));
                }
                let params = format!(r#"["{}",true]"#, place.block_hash);
                let judged = self
                    .with_material(chain_id, target, "eth_getBlockByHash", &params, deadline, |block| {
                        judge::transaction_in(&tx, block, &trusted.header)
                    })
                    .await;
                settle(judged, &trusted)
            }
            Claim::Receipt { .. } => {
                if !deep {
                    return Ok((Verified::None, None));
                }
                let at = placed(result).map_err(no)?;
                let trusted =
                    self.trusted_at(chain_id, BlockSel::Number(at.number), target, deadline).await.map_err(no)?;
                if trusted.header.hash() != at.hash {
                    return Err(no(Verdict::Unverifiable("receipt of a block off the trusted chain".into())));
                }
                match self.verified_receipts(chain_id, target, &trusted, deadline).await {
                    Ok(receipts) => match judge::receipt_against(result, &receipts) {
                        Err(Verdict::Lie { .. }) => {}
                        judged => return judged.map(|v| (v, None)).map_err(no),
                    },
                    Err(v) => return Err(no(v)),
                }
                // A lie: judged again over the material's bytes, which the evidence carries.
                let params = format!(r#"["{}"]"#, at.hash);
                let judged = self
                    .with_material(chain_id, target, "eth_getBlockReceipts", &params, deadline, |receipts| {
                        judge::receipt(result, receipts, &trusted.header)
                    })
                    .await;
                settle(judged, &trusted)
            }
            Claim::BlockReceipts { block } => {
                if !deep {
                    return Ok((Verified::None, None));
                }
                let sel = match block {
                    BlockSel::Head | BlockSel::Pending => match placed_first(result) {
                        Some(at) => BlockSel::Number(at.number),
                        None => return Err(no(Verdict::Unverifiable("empty receipts of an unpinned head".into()))),
                    },
                    other => other,
                };
                let trusted = self.trusted_at(chain_id, sel, target, deadline).await.map_err(no)?;
                let m = Material::new(&trusted);
                judge::block_receipts(result, &trusted.header).map_err(|v| (v, Some(m))).map(|v| (v, None))
            }
            Claim::Logs { filter } => {
                if !deep {
                    return Ok((Verified::None, None));
                }
                self.logs(call, target, result, &filter, deadline).await
            }
            Claim::Call { block } => {
                if !deep {
                    return Ok((Verified::None, None));
                }
                if matches!(block, BlockSel::Head | BlockSel::Pending) {
                    return Err(no(Verdict::Unverifiable("a head-relative call that was not pinned".into())));
                }
                self.cross_check(call, target, result, deadline).await.map(|v| (v, None)).map_err(no)
            }
            Claim::State { value, address, slot, block } => {
                if !deep {
                    return Ok((Verified::None, None));
                }
                let trusted = self.trusted_at(chain_id, block, target, deadline).await.map_err(no)?;
                let slots = match slot {
                    Some(s) => format!(r#"["{s}"]"#),
                    None => "[]".into(),
                };
                let params = format!(r#"["{address}",{slots},"{:#x}"]"#, trusted.header.number());
                let judged = self
                    .with_material(chain_id, target, "eth_getProof", &params, deadline, |proof| {
                        judge::state(result, value, address, slot, proof, &trusted.header)
                    })
                    .await;
                settle(judged, &trusted)
            }
        }
    }

    /// Asks other operators the same (pinned) question: agreement with one is a quorum of two;
    /// on disagreement a third decides, and an answer two others contradict is refused.
    async fn cross_check(
        &self,
        call: &Call<'_>,
        target: Target,
        result: &[u8],
        deadline: Instant,
    ) -> Result<Verified, Verdict> {
        let params = super::claim::params_text(call.req.upstream_body())
            .ok_or_else(|| Verdict::Unverifiable("params".into()))?;
        let answer: serde_json::Value =
            serde_json::from_slice(result).map_err(|e| Verdict::Unverifiable(e.to_string()))?;
        let others: Vec<Target> =
            self.source.operators(call.chain_id).into_iter().filter(|t| *t != target).take(2).collect();
        let mut against = 0;
        for t in others {
            let Ok(theirs) = self.source.ask(call.chain_id, t, &call.req.method, &params, deadline).await else {
                continue;
            };
            match serde_json::from_slice::<serde_json::Value>(&theirs) {
                Ok(v) if v == answer => return Ok(Verified::Quorum),
                Ok(_) => against += 1,
                Err(_) => {}
            }
        }
        if against >= 2 {
            return Err(Verdict::Lie {
                kind: LieKind::Disagreement,
                detail: format!("{} answered differently by two other operators", call.req.method),
            });
        }
        Err(Verdict::Unverifiable(format!("no other operator agreed ({against} disagreed)")))
    }

    /// `eth_getLogs`: every block of the (pinned) range whose trusted bloom may match, or that
    /// the answer has logs for, checked against its verified receipts.
    async fn logs(
        &self,
        call: &Call<'_>,
        target: Target,
        result: &[u8],
        filter: &rpcmesh_eth::LogFilter,
        deadline: Instant,
    ) -> Result<(Verified, Option<Material>), (Verdict, Option<Material>)> {
        let chain_id = call.chain_id;
        let no = |v: Verdict| (v, None);
        let logs = parse_logs(result).map_err(|e| no(Verdict::Unverifiable(e.to_string())))?;
        let (from, to) = match filter.blocks {
            FilterBlocks::Hash(h) => {
                let t = self.trusted_at(chain_id, BlockSel::Hash(h), target, deadline).await.map_err(no)?;
                (t.header.number(), t.header.number())
            }
            FilterBlocks::Range { from, to } => match (number_of(from), number_of(to)) {
                (Some(f), Some(t)) if f <= t => (f, t),
                (Some(_), Some(_)) => return Ok((Verified::Header, None)),
                _ => return Err(no(Verdict::Unverifiable("a head-relative range that was not pinned".into()))),
            },
        };
        if to - from + 1 > self.settings.max_log_blocks {
            self.metrics.too_wide();
            return Err(no(Verdict::Unverifiable(format!(
                "range of {} blocks is over the {} verified per request",
                to - from + 1,
                self.settings.max_log_blocks
            ))));
        }
        let headers =
            self.anchors.range(chain_id, from, to, deadline).await.map_err(|e| no(Verdict::Unverifiable(e)))?;
        for log in &logs {
            if !headers.iter().any(|h| h.header.hash() == log.block_hash) {
                return Err(no(Verdict::Unverifiable(format!(
                    "log of block {} outside the trusted range",
                    log.block_hash
                ))));
            }
        }
        let blocks: Vec<Arc<super::anchor::Trusted>> = headers
            .iter()
            .filter(|trusted| {
                let hash = trusted.header.hash();
                logs.iter().any(|l| l.block_hash == hash) || bloom_may_match(trusted.header.logs_bloom(), filter)
            })
            .cloned()
            .collect();
        // The answer is parsed once; each block is judged on its own share of it. The blocks'
        // receipts are fetched concurrently (bounded), judged as they arrive.
        let checks: Vec<_> = blocks
            .into_iter()
            .map(|trusted| {
                let hash = trusted.header.hash();
                let mine: Vec<rpcmesh_eth::ClaimedLog> =
                    logs.iter().filter(|l| l.block_hash == hash).cloned().collect();
                self.logs_of(chain_id, target, result, mine, filter, trusted, deadline)
            })
            .collect();
        let mut judged = futures::stream::iter(checks).buffered(LOG_BLOCKS_IN_FLIGHT);
        while let Some(r) = judged.next().await {
            r?;
        }
        Ok((Verified::Header, None))
    }

    /// One block's share of an `eth_getLogs` answer (`mine`) against that block's receipts.
    #[allow(clippy::too_many_arguments)]
    async fn logs_of(
        &self,
        chain_id: u64,
        target: Target,
        result: &[u8],
        mine: Vec<rpcmesh_eth::ClaimedLog>,
        filter: &rpcmesh_eth::LogFilter,
        trusted: Arc<super::anchor::Trusted>,
        deadline: Instant,
    ) -> Result<(Verified, Option<Material>), (Verdict, Option<Material>)> {
        match self.verified_receipts(chain_id, target, &trusted, deadline).await {
            Ok(receipts) => match judge::logs_against(&mine, filter, &receipts) {
                Err(Verdict::Lie { .. }) => {}
                judged => return judged.map(|v| (v, None)).map_err(|v| (v, None)),
            },
            Err(v) => return Err((v, None)),
        }
        // A lie: judged again over the material's bytes, which the evidence carries.
        let params = format!(r#"["{}"]"#, trusted.header.hash());
        let judged = self
            .with_material(chain_id, target, "eth_getBlockReceipts", &params, deadline, |receipts| {
                judge::logs_of_block(result, filter, receipts, &trusted.header)
            })
            .await;
        settle(judged, &trusted)
    }

    /// The verified receipts of a trusted block: reused when verified before, else fetched as
    /// material (other operators first) and verified against the header.
    async fn verified_receipts(
        &self,
        chain_id: u64,
        target: Target,
        trusted: &super::anchor::Trusted,
        deadline: Instant,
    ) -> Result<Arc<rpcmesh_eth::VerifiedReceipts>, Verdict> {
        let hash = trusted.header.hash();
        if let Some(r) = self.receipts.get(chain_id, hash) {
            return Ok(r);
        }
        let params = format!(r#"["{hash}"]"#);
        let verified: Mutex<Option<Arc<rpcmesh_eth::VerifiedReceipts>>> = Mutex::new(None);
        let (judged, _) = self
            .with_material(chain_id, target, "eth_getBlockReceipts", &params, deadline, |b| {
                let r = judge::verified_receipts(b, &trusted.header)?;
                *verified.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(r));
                Ok(Verified::Header)
            })
            .await;
        judged?;
        let r = verified
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .ok_or_else(|| Verdict::Unverifiable("no verified receipts".into()))?;
        self.receipts.put(chain_id, hash, r.clone());
        Ok(r)
    }

    /// Pins a head-relative state read or log filter to the trusted head.
    async fn pin(&self, call: &Call<'_>, deadline: Instant) -> Result<Option<Request>, Verdict> {
        let req = call.req;
        let body = req.upstream_body();
        let pinnable = matches!(
            req.method.as_str(),
            "eth_getBalance"
                | "eth_getTransactionCount"
                | "eth_getCode"
                | "eth_getStorageAt"
                | "eth_getLogs"
                | "eth_call"
                | "eth_estimateGas"
        );
        if !pinnable {
            return Ok(None);
        }
        let Ok(Some(claim)) = claim_of(&req.method, body) else { return Ok(None) };
        let needs = match &claim {
            Claim::State { block: BlockSel::Head, .. } | Claim::Call { block: BlockSel::Head } => true,
            Claim::Logs { filter } => {
                matches!(filter.blocks, FilterBlocks::Range { from, to } if number_of(from).is_none() || number_of(to).is_none())
            }
            _ => false,
        };
        if !needs {
            return Ok(None);
        }
        let head = self.anchors.head(call.chain_id, deadline).await.map_err(Verdict::Unverifiable)?;
        let n = format!("{:#x}", head.header.header.number());
        let params = rewrite_params(&req.method, body, &n).ok_or_else(|| Verdict::Unverifiable("params".into()))?;
        let id: &[u8] = req.upstream_id().unwrap_or(b"null");
        let mut raw = Vec::with_capacity(body.len() + 16);
        raw.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        raw.extend_from_slice(id);
        raw.extend_from_slice(br#","method":""#);
        raw.extend_from_slice(req.method.as_bytes());
        raw.extend_from_slice(br#"","params":"#);
        raw.extend_from_slice(params.as_bytes());
        raw.push(b'}');
        Ok(Some(Request::new(Bytes::from(raw), req.method.clone(), req.upstream_id().map(Bytes::copy_from_slice))))
    }

    /// A sampled head-relative read (sample mode never rewrites a client's request, so it cannot
    /// be proven as asked): compared with the proven answer at the trusted head, it is verified
    /// when equal. When not, the provider may simply be ahead of the trusted head, so the same
    /// provider is asked the question `pinned` to that head: a lie there is proven (evidence,
    /// and the client's answer is refused so the request moves on), an honest answer there
    /// leaves the client's answer as it was, unverified (refused instead when its provider is
    /// [`Self::distrusted`]).
    async fn sampled_at_head(
        &self,
        call: &Call<'_>,
        pinned: &Request,
        target: Target,
        mut answer: Answer,
        distrusted: bool,
        deadline: Instant,
    ) -> Result<Answer, AttemptError> {
        let method = &call.req.method;
        let at_head = Call { chain_id: call.chain_id, req: pinned, mode: call.mode };
        // An answer left unverified: the client's, unless its provider is distrusted.
        let unverified = |answer: Answer, verdict: Verdict| {
            self.metrics.checked(method, verdict.outcome());
            if distrusted { Err(failure(verdict)) } else { Ok(answer) }
        };
        let result = answer.result().unwrap_or_default();
        match self.judge(&at_head, target, result, true, deadline).await {
            Ok((verified, _)) => {
                self.metrics.checked(method, verified.label());
                answer.verified = verified;
                return Ok(answer);
            }
            Err((Verdict::Lie { .. }, _)) => {}
            Err((verdict, _)) => return unverified(answer, verdict),
        }
        // Not a suspicion yet: an honest provider ahead of the trusted head differs too.
        let shadow = match self.source.forward(call.chain_id, target, pinned, deadline).await {
            Ok(a) => a,
            Err(why) => {
                tracing::debug!(chain_id = call.chain_id, %method, ?target, %why, "no answer at the trusted head");
                return unverified(answer, Verdict::Unverifiable(why));
            }
        };
        let Some(shadow_result) = shadow.result() else {
            return unverified(answer, Verdict::Unverifiable("no result at the trusted head".into()));
        };
        match self.judge(&at_head, target, shadow_result, true, deadline).await {
            Err((verdict @ Verdict::Lie { .. }, material)) => {
                Err(self.proven_lie(&at_head, target, &shadow, verdict, material))
            }
            // Honest at the trusted head: the client's answer is about newer state.
            _ if distrusted => {
                unverified(answer, Verdict::Unverifiable("differs from the trusted head's answer".into()))
            }
            _ => {
                self.metrics.checked(method, Verified::None.label());
                Ok(answer)
            }
        }
    }

    /// A lie proven in `answer` (to `call`, by `target`): counted, logged, its provider
    /// suspected, reported as evidence when `material` shows it; the attempt fails with it.
    fn proven_lie(
        &self,
        call: &Call<'_>,
        target: Target,
        answer: &Answer,
        verdict: Verdict,
        material: Option<Material>,
    ) -> AttemptError {
        self.metrics.checked(&call.req.method, verdict.outcome());
        if let Verdict::Lie { kind, detail } = &verdict {
            tracing::warn!(chain_id = call.chain_id, method = %call.req.method, ?target, kind = kind.as_str(), %detail, "answer proven wrong");
            self.suspect(target);
            if let Some(m) = material {
                self.report(call, target, answer, *kind, m);
            }
        }
        failure(verdict)
    }

    /// Remembers a peer's signed answer to a question pinned to a block hash; when it contradicts
    /// an earlier one of the same peer, reports the pair (proof by itself) and returns true.
    async fn equivocation(&self, call: &Call<'_>, target: Target, answer: &Answer, deadline: Instant) -> bool {
        let (Target::Peer(accused), Some(receipt)) = (target, answer.receipt.as_ref()) else { return false };
        let body = call.req.upstream_body();
        // A cheap filter first: only these can name a block by hash.
        let maybe = matches!(call.req.method.as_str(), "eth_getBlockByHash" | "eth_getBlockReceipts")
            || body.windows(9).any(|w| w == b"blockHash");
        if !maybe || !super::equivocation::pinned_by_hash(&call.req.method, body) {
            return false;
        }
        let now = super::equivocation::Exchange {
            request: body.to_vec(),
            response: answer.body.to_vec(),
            receipt: (**receipt).clone(),
        };
        let Some(earlier) = self.memory.observe(accused, call.chain_id, &call.req.method, now) else { return false };
        tracing::warn!(chain_id = call.chain_id, method = %call.req.method, ?target, "two different signed answers to one question pinned to a block hash");
        self.suspect(target);
        match self.anchors.head(call.chain_id, deadline).await {
            Ok(head) => {
                let t = &head.header;
                let material = Material {
                    anchor: BlockRef { number: t.header.number(), hash: t.header.hash().0 },
                    parts: super::equivocation::material(t.json.to_vec(), &earlier),
                };
                self.report(call, target, answer, LieKind::Equivocation, material);
            }
            Err(why) => tracing::debug!(chain_id = call.chain_id, %why, "no trusted head to anchor an equivocation on"),
        }
        true
    }

    fn report(&self, call: &Call<'_>, target: Target, answer: &Answer, kind: LieKind, material: Material) {
        let (Target::Peer(accused), Some(receipt)) = (target, answer.receipt.as_ref()) else { return };
        let evidence = Evidence {
            header: MessageHeader::new(String::new(), 0, 0, 0),
            accused,
            chain_id: call.chain_id,
            kind,
            request: call.req.upstream_body().to_vec(),
            response: answer.body.to_vec(),
            receipt: (**receipt).clone(),
            anchor: material.anchor,
            material: material.parts,
        };
        self.evidence.report(evidence);
    }
}

type MaterialKey = (u64, String, String);

/// Verified material by (chain, method, params), bounded in bytes, oldest out first. Only
/// material about a fixed block is ever asked for (a hash, or a number on the trusted chain), so
/// an entry never goes stale; a reorg changes the trusted hash, and with it the key.
type MaterialCache = ByteBounded<MaterialKey, Bytes>;

/// A map bounded by the bytes its values stand for, oldest out first; a value above a quarter
/// of the bound is not kept.
struct ByteBounded<K, V> {
    max_bytes: usize,
    inner: Mutex<ByteBoundedInner<K, V>>,
}

struct ByteBoundedInner<K, V> {
    map: HashMap<K, (V, usize)>,
    order: std::collections::VecDeque<K>,
    bytes: usize,
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> ByteBounded<K, V> {
    fn new(max_bytes: usize) -> Self {
        let inner = ByteBoundedInner { map: HashMap::new(), order: Default::default(), bytes: 0 };
        Self { max_bytes, inner: Mutex::new(inner) }
    }

    fn get(&self, key: &K) -> Option<V> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).map.get(key).map(|(v, _)| v.clone())
    }

    fn forget(&self, key: &K) {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, size)) = c.map.remove(key) {
            c.bytes -= size;
            c.order.retain(|k| k != key);
        }
    }

    /// Keeps `value`, standing for `size` bytes, unless `key` is kept already.
    fn put(&self, key: K, value: V, size: usize) {
        if size > self.max_bytes / 4 {
            return;
        }
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if c.map.contains_key(&key) {
            return;
        }
        c.bytes += size;
        c.order.push_back(key.clone());
        c.map.insert(key, (value, size));
        while c.bytes > self.max_bytes {
            let Some(old) = c.order.pop_front() else { break };
            if let Some((_, size)) = c.map.remove(&old) {
                c.bytes -= size;
            }
        }
    }
}

/// Block answers whose header hash (and transactions root, when hydrated) verified, by their
/// exact bytes, oldest out first: every client polling a block (the latest one above all) gets
/// the same bytes, which would otherwise be parsed and hashed again for each (in sample mode, for
/// every answer). A hit compares the whole answer, so an answer differing by one byte, a lie
/// included, is verified afresh. What is remembered is the verification of the block on its
/// own; whether it is on the trusted chain is judged per answer.
struct BlockAnswers {
    keyer: std::collections::hash_map::RandomState,
    kept: ByteBounded<u64, (Bytes, Arc<rpcmesh_eth::VerifiedHeader>)>,
}

impl BlockAnswers {
    fn new(max_bytes: usize) -> Self {
        Self { keyer: Default::default(), kept: ByteBounded::new(max_bytes) }
    }

    /// The key of `answer` in this memo (keyed per process: providers cannot aim collisions).
    fn key(&self, answer: &[u8]) -> u64 {
        self.keyer.hash_one(answer)
    }

    /// The verified header of exactly this answer (`key` is its [`Self::key`]), if it verified
    /// before.
    fn get(&self, key: u64, answer: &[u8]) -> Option<Arc<rpcmesh_eth::VerifiedHeader>> {
        self.kept.get(&key).filter(|(bytes, _)| bytes[..] == *answer).map(|(_, header)| header)
    }

    fn put(&self, key: u64, answer: &[u8], header: Arc<rpcmesh_eth::VerifiedHeader>) {
        self.kept.put(key, (Bytes::copy_from_slice(answer), header), answer.len());
    }
}

/// Verified receipts by (chain, block hash), at most [`VERIFIED_RECEIPTS_BLOCKS`], oldest out
/// first. Keyed by hash: a reorg makes another key, never a stale entry.
#[derive(Default)]
struct ReceiptsCache {
    inner: Mutex<(ReceiptsByBlock, std::collections::VecDeque<(u64, B256)>)>,
}

type ReceiptsByBlock = HashMap<(u64, B256), Arc<rpcmesh_eth::VerifiedReceipts>>;

impl ReceiptsCache {
    fn get(&self, chain_id: u64, hash: B256) -> Option<Arc<rpcmesh_eth::VerifiedReceipts>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).0.get(&(chain_id, hash)).cloned()
    }

    fn put(&self, chain_id: u64, hash: B256, r: Arc<rpcmesh_eth::VerifiedReceipts>) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *g;
        if map.insert((chain_id, hash), r).is_none() {
            order.push_back((chain_id, hash));
        }
        while order.len() > VERIFIED_RECEIPTS_BLOCKS {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }
}

/// What shows a lie: the trusted header and what was checked against it.
#[derive(Debug, Clone)]
struct Material {
    anchor: BlockRef,
    parts: Vec<Vec<u8>>,
}

impl Material {
    fn new(trusted: &super::anchor::Trusted) -> Self {
        let anchor = BlockRef { number: trusted.header.number(), hash: trusted.header.hash().0 };
        Self { anchor, parts: vec![trusted.json.to_vec()] }
    }

    fn with(mut self, part: Bytes) -> Self {
        self.parts.push(part.to_vec());
        self
    }
}

/// How one attempt's answer is checked ([`IntegrityCheck::depth`]), carried from `prepare` to
/// `check` so that the sampling draw and the distrust lookup are made once per attempt.
#[derive(Debug, Clone, Copy, Default)]
pub struct Depth {
    /// The checks that need material apply (strict mode, a sampled attempt, a distrusted target).
    deep: bool,
    /// The target is [`IntegrityCheck::distrusted`]: its answers are used only if they verified.
    distrusted: bool,
}

impl AnswerCheck for IntegrityCheck {
    type Ticket = Depth;

    async fn prepare<'a>(
        &'a self,
        call: &'a Call<'a>,
        target: Target,
        deadline: Instant,
    ) -> Result<Prepared<Depth>, AttemptError> {
        let depth = self.depth(call, target);
        // Only a client that asked for strict answers gets its head-relative request rewritten
        // (and a head up to `head_fresh_ms` old): in sample mode a request is never changed, so
        // a client reading its own writes (an estimate after a deployment) sees them.
        if call.mode != VerifyMode::Strict {
            return Ok(Prepared { request: None, ticket: depth });
        }
        match self.pin(call, deadline).await {
            Ok(request) => Ok(Prepared { request, ticket: depth }),
            Err(v) => Err(failure(v)),
        }
    }

    async fn check<'a>(
        &'a self,
        call: &'a Call<'a>,
        target: Target,
        mut answer: Answer,
        Depth { deep, distrusted }: Depth,
        deadline: Instant,
    ) -> Result<Answer, AttemptError> {
        if call.mode == VerifyMode::Off {
            return Ok(answer);
        }
        if answer.result().is_none() {
            return Ok(answer);
        }
        let contradicted = self.equivocation(call, target, &answer, deadline).await;
        if deep
            && call.mode == VerifyMode::Sample
            && !contradicted
            && let Ok(Some(pinned)) = self.pin(call, deadline).await
        {
            return self.sampled_at_head(call, &pinned, target, answer, distrusted, deadline).await;
        }
        let Some(result) = answer.result() else { return Ok(answer) };
        match self.judge(call, target, result, deep, deadline).await {
            // One of two contradicting answers is a lie: this one is used only if it verified.
            Ok((Verified::None, _)) if contradicted => {
                self.metrics.checked(&call.req.method, LieKind::Equivocation.outcome());
                Err(failure(Verdict::Lie {
                    kind: LieKind::Equivocation,
                    detail: "contradicts the provider's earlier signed answer".into(),
                }))
            }
            Ok((verified, _)) => {
                self.metrics.checked(&call.req.method, verified.label());
                answer.verified = verified;
                Ok(answer)
            }
            Err((verdict @ Verdict::Lie { .. }, material)) => {
                Err(self.proven_lie(call, target, &answer, verdict, material))
            }
            Err((verdict, _)) => {
                self.metrics.checked(&call.req.method, verdict.outcome());
                if call.mode == VerifyMode::Strict || distrusted {
                    tracing::debug!(chain_id = call.chain_id, method = %call.req.method, ?target, ?verdict, "answer not verifiable");
                    Err(failure(verdict))
                } else {
                    Ok(answer)
                }
            }
        }
    }
}

/// A judgement with material, as [`IntegrityCheck::judge`] returns it: a lie carries the trusted
/// header and the material that shows it.
fn settle(
    (judged, material): (judge::Judged, Option<Bytes>),
    trusted: &super::anchor::Trusted,
) -> Result<(Verified, Option<Material>), (Verdict, Option<Material>)> {
    match judged {
        Ok(v) => Ok((v, None)),
        Err(v @ Verdict::Lie { .. }) => {
            let m = material.map(|b| Material::new(trusted).with(b)).unwrap_or_else(|| Material::new(trusted));
            Err((v, Some(m)))
        }
        Err(v) => Err((v, None)),
    }
}

fn failure(v: Verdict) -> AttemptError {
    let kind = v.label();
    let detail = match v {
        Verdict::Lie { detail, .. } => detail,
        Verdict::Unverifiable(why) | Verdict::BadMaterial(why) => why,
    };
    AttemptError::Unverified(CheckFailure { kind, detail })
}

fn number_of(spec: Option<rpcmesh_eth::logs::BlockSpec>) -> Option<u64> {
    match spec? {
        rpcmesh_eth::logs::BlockSpec::Number(n) => Some(n),
        rpcmesh_eth::logs::BlockSpec::Earliest => Some(0),
        _ => None,
    }
}

/// Where a receipt says it is.
struct At {
    number: u64,
    hash: B256,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Placement<'a> {
    block_hash: &'a str,
    block_number: &'a str,
}

fn at_of(p: Placement<'_>) -> Result<At, Verdict> {
    let bad = |e: rpcmesh_eth::EthError| Verdict::Unverifiable(e.to_string());
    Ok(At {
        number: json::parse_quantity_u64(p.block_number).map_err(bad)?,
        hash: json::parse_hash(p.block_hash).map_err(bad)?,
    })
}

fn placed(receipt: &[u8]) -> Result<At, Verdict> {
    let p: Placement<'_> = serde_json::from_slice(receipt).map_err(|e| Verdict::Unverifiable(e.to_string()))?;
    at_of(p)
}

fn placed_first(receipts: &[u8]) -> Option<At> {
    let list: Vec<&RawValue> = serde_json::from_slice(receipts).ok()?;
    placed(list.first()?.get().as_bytes()).ok()
}

/// The params of a head-relative request with its head pinned to block `n` (hex).
fn rewrite_params(method: &str, body: &[u8], n: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Env {
        #[serde(default)]
        params: Vec<serde_json::Value>,
    }
    let mut params = serde_json::from_slice::<Env>(body).ok()?.params;
    let pinned = serde_json::Value::String(n.to_string());
    if method == "eth_getLogs" {
        let filter = params.first_mut()?.as_object_mut()?;
        for key in ["fromBlock", "toBlock"] {
            let tagged = match filter.get(key) {
                None | Some(serde_json::Value::Null) => true,
                Some(serde_json::Value::String(s)) => matches!(s.as_str(), "latest" | "safe" | "finalized"),
                _ => false,
            };
            if tagged {
                filter.insert(key.to_string(), pinned.clone());
            }
        }
    } else {
        let i = block_param_index(method)?;
        while params.len() <= i {
            params.push(serde_json::Value::Null);
        }
        params[i] = pinned;
    }
    serde_json::to_string(&params).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_answer_is_remembered_by_its_exact_bytes_and_within_bounds() {
        let answer =
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../eth/tests/fixtures/block_2_hashes.json")).to_vec();
        let header = Arc::new(judge::block_alone(&answer, BlockSel::Head).unwrap().header().clone());
        let memo = BlockAnswers::new(64 * answer.len());
        let get = |a: &[u8]| memo.get(memo.key(a), a);
        assert!(get(&answer).is_none());
        memo.put(memo.key(&answer), &answer, header.clone());
        assert_eq!(get(&answer), Some(header.clone()));
        // One byte changed (a lie, or another block): not remembered.
        let other = String::from_utf8_lossy(&answer).replacen("\"gasUsed\": \"0x", "\"gasUsed\": \"0x1", 1);
        assert_ne!(other.as_bytes(), &answer[..]);
        assert!(get(other.as_bytes()).is_none());
        // A hit needs the same bytes, not only the same key (a collision is a miss).
        memo.put(memo.key(other.as_bytes()), &answer, header.clone());
        assert!(get(other.as_bytes()).is_none());
        // Bounded in bytes: older answers go first.
        for n in 1..=80 {
            let mut a = answer.clone();
            a.extend(std::iter::repeat_n(b' ', n));
            memo.put(memo.key(&a), &a, header.clone());
        }
        assert!(memo.kept.inner.lock().unwrap().bytes <= 64 * answer.len());
        assert!(get(&answer).is_none(), "the oldest answer was dropped");
    }

    #[test]
    fn verified_receipts_are_reused_and_bounded() {
        let header = rpcmesh_eth::verify_header(include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../eth/tests/fixtures/block_4_hashes.json"
        )))
        .unwrap();
        let bytes = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../eth/tests/fixtures/block_4_receipts.json"));
        let r = Arc::new(judge::verified_receipts(bytes, &header).unwrap());
        let cache = ReceiptsCache::default();
        let hash = |i: usize| B256::from(word(i));
        for i in 0..VERIFIED_RECEIPTS_BLOCKS + 10 {
            cache.put(1, hash(i), r.clone());
        }
        assert!(cache.get(1, hash(0)).is_none(), "the oldest went first");
        assert!(cache.get(1, hash(VERIFIED_RECEIPTS_BLOCKS + 9)).is_some());
        assert!(cache.get(2, hash(VERIFIED_RECEIPTS_BLOCKS + 9)).is_none(), "by chain");
        assert_eq!(cache.inner.lock().unwrap().0.len(), VERIFIED_RECEIPTS_BLOCKS);
    }

    fn word(i: usize) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[24..].copy_from_slice(&(i as u64).to_be_bytes());
        b
    }

    #[test]
    fn pins_the_head_of_state_reads_and_log_ranges() {
        let a = "0x00000000000000000000000000000000000000aa";
        let body = format!(r#"{{"id":1,"method":"eth_getBalance","params":["{a}"]}}"#);
        assert_eq!(rewrite_params("eth_getBalance", body.as_bytes(), "0x10").unwrap(), format!(r#"["{a}","0x10"]"#));
        let body = format!(r#"{{"id":1,"method":"eth_getStorageAt","params":["{a}","0x0","latest"]}}"#);
        assert_eq!(
            rewrite_params("eth_getStorageAt", body.as_bytes(), "0x10").unwrap(),
            format!(r#"["{a}","0x0","0x10"]"#)
        );
        let body = r#"{"id":1,"method":"eth_getLogs","params":[{"fromBlock":"0x1"}]}"#;
        assert_eq!(
            rewrite_params("eth_getLogs", body.as_bytes(), "0x10").unwrap(),
            r#"[{"fromBlock":"0x1","toBlock":"0x10"}]"#
        );
    }
}
