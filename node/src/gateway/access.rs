//! Client access control at the gateway: API keys (`[[gateway.keys]]`), what each key may call,
//! and the quotas of keys and of clients without one ([`super::quota`]).
//!
//! A client presents its key as `Authorization: Bearer <key>` or as a path prefix,
//! `/k/<key>` or `/k/<key>/<chain>` (for clients that cannot set headers); the path form wins
//! when both are given. The config holds only the SHA-256 of each key: the presented key is
//! hashed and its digest compared with every configured one in constant time, so neither the
//! config file nor response timing reveals a key.
//!
//! Decisions, in order: a presented key that matches none → 401 (whatever `require_key` says:
//! a typo must not silently fall back to anonymous access); no key and `require_key` → 401; then
//! the quota of the key, or of the client's address for calls without a key → 429. Quotas count
//! compute units ([`super::cost`]: a plain read is 1, `eth_getLogs` 10...), so a client's rate
//! is the same whichever way it spends it. A key's `allow_methods` narrows the gateway's method
//! policy per call (-32601), in the dispatch.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sha2::{Digest as _, Sha256};

use super::cost::MethodCosts;
use super::quota::{IpQuota, KeyQuota, Rate};
use crate::config::GatewayConfig;
use crate::jsonrpc::Call;
use crate::metrics::AccessLabels;
use crate::router::MethodRules;

/// Path segment that introduces a key in the path form (`/k/<key>/<chain>`).
pub const KEY_PATH_PREFIX: &str = "k";
/// Prefix of the keys `rpcmesh gateway key new` makes: recognisable in logs and secret scanners.
pub const KEY_PREFIX: &str = "rmk_";
/// Random bytes in a new key: 256 bits, beyond guessing.
const KEY_RANDOM_BYTES: usize = 32;
/// The `key` label of calls without a key.
pub const NO_KEY_LABEL: &str = "(none)";
/// The `key` label of calls with a key that matched none (names are validated not to contain
/// parentheses, so neither label can be a key's name).
pub const UNKNOWN_KEY_LABEL: &str = "(unknown)";

/// One configured key.
#[derive(Debug)]
pub struct ApiKey {
    /// Its name from the config: the label in metrics and logs.
    pub name: Arc<str>,
    digest: [u8; 32],
    /// `None`: whatever the gateway allows.
    methods: Option<MethodRules>,
    quota: Option<KeyQuota>,
}

impl ApiKey {
    /// Whether this key may call `method` (the gateway's own policy applies as well).
    pub fn allows(&self, method: &str) -> bool {
        self.methods.as_ref().is_none_or(|m| m.allows(method))
    }

    /// The JSON-RPC error message of a method this key may not call (-32601).
    pub fn refusal(&self, method: &str) -> String {
        format!("method {method} is not allowed for API key {} (set [[gateway.keys]] allow_methods)", self.name)
    }
}

/// Why a client is refused before any call is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No key, and `gateway.require_key` is set.
    MissingKey,
    /// A key that matches none configured.
    BadKey,
    /// Over quota: wait this long.
    RateLimited {
        /// How long until the request would be admitted.
        wait: Duration,
        /// Whose quota: a key's name, or `None` for the client address's.
        key: Option<Arc<str>>,
    },
}

/// The configured keys and quotas, shared by every request.
#[derive(Debug)]
pub struct Access {
    keys: Vec<Arc<ApiKey>>,
    require_key: bool,
    per_ip: Option<IpQuota>,
    /// What each method costs against the quotas.
    costs: MethodCosts,
    /// Calls (batch items) per key label and outcome.
    metrics: Family<AccessLabels, Counter>,
    /// Compute units per key label and outcome (`admitted`, `rate_limited`).
    units_metrics: Family<AccessLabels, Counter>,
}

impl Access {
    /// Access control as `cfg` says; counts into `metrics`. Keys whose hash does not parse are
    /// skipped with an error log (`Config::check` refuses them before this).
    pub fn new(cfg: &GatewayConfig, metrics: Family<AccessLabels, Counter>) -> Self {
        let keys = cfg
            .keys
            .iter()
            .filter_map(|k| {
                let digest = parse_digest(&k.key_sha256);
                if digest.is_none() {
                    tracing::error!(key = %k.name, "gateway key_sha256 is not 64 hex digits; key ignored");
                }
                let methods = (!k.allow_methods.is_empty()).then(|| MethodRules::new(&k.allow_methods, &[] as &[&str]));
                let quota = k.requests_per_sec.map(|r| KeyQuota::new(Rate::new(r, k.burst.unwrap_or(0))));
                Some(Arc::new(ApiKey { name: k.name.as_str().into(), digest: digest?, methods, quota }))
            })
            .collect();
        let per_ip = (cfg.per_ip_requests_per_sec > 0)
            .then(|| IpQuota::new(Rate::new(cfg.per_ip_requests_per_sec, cfg.per_ip_burst)));
        Self {
            keys,
            require_key: cfg.require_key,
            per_ip,
            costs: MethodCosts::new(&cfg.method_costs),
            metrics,
            units_metrics: Family::default(),
        }
    }

    /// Counts compute units charged, per key and outcome, into `units`.
    pub fn with_units_metrics(mut self, units: Family<AccessLabels, Counter>) -> Self {
        self.units_metrics = units;
        self
    }

    /// What `call` costs against a quota, in compute units ([`super::cost`]). A batch over
    /// `max_batch_len` is refused whole without being routed: it costs one unit per item the
    /// limit allows, whatever its methods.
    pub fn units(&self, call: &Call, max_batch_len: usize) -> u32 {
        match call {
            Call::Batch(items) if items.len() > max_batch_len => {
                u32::try_from(max_batch_len).unwrap_or(u32::MAX).max(1)
            }
            _ => self.costs.units(call),
        }
    }

    /// The key a client presented, if any: `path_key` (from `/k/<key>/...`) or the bearer token.
    pub fn presented<'a>(path_key: Option<&'a str>, headers: &'a HeaderMap) -> Option<&'a str> {
        path_key.or_else(|| {
            let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
    }

    /// Who the client is: its key (if it presented one), or a refusal.
    pub fn authenticate(&self, presented: Option<&str>) -> Result<Option<Arc<ApiKey>>, Denied> {
        let Some(secret) = presented else {
            return if self.require_key { Err(Denied::MissingKey) } else { Ok(None) };
        };
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        // Every configured digest is compared, each in constant time: the time taken says
        // nothing about which key, or how much of one, matched.
        let mut found = None;
        for k in &self.keys {
            if ct_eq(&digest, &k.digest) {
                found = Some(k.clone());
            }
        }
        found.map(Some).ok_or(Denied::BadKey)
    }

    /// Charges `units` (what [`Access::units`] says `calls` batch items cost) to the key's quota,
    /// or to the client address's when there is no key. A key without a quota is not limited
    /// (nor by the address quota: a key is trust).
    pub fn charge(&self, key: Option<&ApiKey>, ip: IpAddr, calls: u32, units: u32) -> Result<(), Denied> {
        let (calls, units) = (calls.max(1), units.max(1));
        let result = match key {
            Some(k) => match &k.quota {
                Some(q) => q.charge(units).map_err(|wait| Denied::RateLimited { wait, key: Some(k.name.clone()) }),
                None => Ok(()),
            },
            None => match &self.per_ip {
                Some(q) => q.charge(ip, units).map_err(|wait| Denied::RateLimited { wait, key: None }),
                None => Ok(()),
            },
        };
        let outcome = if result.is_ok() { "admitted" } else { "rate_limited" };
        self.count(key, outcome, calls);
        let label = key.map_or(NO_KEY_LABEL, |k| &k.name);
        self.units_metrics
            .get_or_create(&AccessLabels { key: label.to_string(), outcome: outcome.to_string() })
            .inc_by(u64::from(units));
        result
    }

    /// Counts `calls` of `key` (or of clients without one) with `outcome`.
    pub fn count(&self, key: Option<&ApiKey>, outcome: &'static str, calls: u32) {
        let key = key.map_or(NO_KEY_LABEL, |k| &k.name);
        self.count_label(key, outcome, calls);
    }

    /// Counts a refusal before a key was known (`missing_key`, `bad_key`).
    pub fn count_denied(&self, denied: &Denied, calls: u32) {
        let (label, outcome) = match denied {
            Denied::MissingKey => (NO_KEY_LABEL, "missing_key"),
            Denied::BadKey => (UNKNOWN_KEY_LABEL, "bad_key"),
            Denied::RateLimited { .. } => return,
        };
        self.count_label(label, outcome, calls);
    }

    fn count_label(&self, key: &str, outcome: &'static str, calls: u32) {
        self.metrics
            .get_or_create(&AccessLabels { key: key.to_string(), outcome: outcome.to_string() })
            .inc_by(u64::from(calls.max(1)));
    }
}

fn parse_digest(hex_digest: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex_digest).ok()?;
    bytes.try_into().ok()
}

/// Equality of two digests in time independent of where they differ.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A fresh key for a client and the SHA-256 (hex) to put in `[[gateway.keys]] key_sha256`.
pub fn new_key() -> Result<(String, String), getrandom::Error> {
    let mut random = [0u8; KEY_RANDOM_BYTES];
    getrandom::fill(&mut random)?;
    let key = format!("{KEY_PREFIX}{}", hex::encode(random));
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    Ok((key, digest))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;
    use crate::config::ApiKeyConfig;

    fn sha(key: &str) -> String {
        hex::encode(Sha256::digest(key.as_bytes()))
    }

    fn access(require_key: bool) -> Access {
        let cfg = GatewayConfig {
            require_key,
            keys: vec![
                ApiKeyConfig {
                    name: "alice".into(),
                    key_sha256: sha("alice-secret"),
                    requests_per_sec: Some(1),
                    burst: Some(2),
                    allow_methods: vec!["eth_blockNumber".into(), "eth_get*".into()],
                },
                ApiKeyConfig {
                    name: "bob".into(),
                    key_sha256: sha("bob-secret").to_ascii_uppercase(),
                    requests_per_sec: None,
                    burst: None,
                    allow_methods: Vec::new(),
                },
            ],
            per_ip_requests_per_sec: 1,
            ..GatewayConfig::default()
        };
        Access::new(&cfg, Family::default())
    }

    #[test]
    fn keys_match_by_their_hash_only() {
        let a = access(false);
        assert_eq!(a.authenticate(Some("alice-secret")).unwrap().unwrap().name.as_ref(), "alice");
        assert_eq!(a.authenticate(Some("bob-secret")).unwrap().unwrap().name.as_ref(), "bob", "hex case ignored");
        assert_eq!(a.authenticate(Some("alice-secreT")).unwrap_err(), Denied::BadKey);
        assert_eq!(a.authenticate(Some(&sha("alice-secret"))).unwrap_err(), Denied::BadKey, "the hash is no key");
        assert_eq!(a.authenticate(Some("")).unwrap_err(), Denied::BadKey);
        assert!(a.authenticate(None).unwrap().is_none());
        assert_eq!(access(true).authenticate(None).unwrap_err(), Denied::MissingKey);
    }

    #[test]
    fn a_key_narrows_the_methods() {
        let a = access(false);
        let alice = a.authenticate(Some("alice-secret")).unwrap().unwrap();
        assert!(alice.allows("eth_blockNumber"));
        assert!(alice.allows("eth_getBalance"));
        assert!(!alice.allows("eth_call"));
        let bob = a.authenticate(Some("bob-secret")).unwrap().unwrap();
        assert!(bob.allows("eth_call"));
    }

    #[test]
    fn bearer_header_and_path_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(Access::presented(None, &h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer  rmk_abc "));
        assert_eq!(Access::presented(None, &h), Some("rmk_abc"));
        assert_eq!(Access::presented(Some("rmk_path"), &h), Some("rmk_path"), "the path wins");
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer rmk_abc"));
        assert_eq!(Access::presented(None, &h), Some("rmk_abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjpwdw=="));
        assert_eq!(Access::presented(None, &h), None);
    }

    #[tokio::test(start_paused = true)]
    async fn quotas_per_key_and_per_address() {
        let a = access(false);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let alice = a.authenticate(Some("alice-secret")).unwrap().unwrap();
        let bob = a.authenticate(Some("bob-secret")).unwrap().unwrap();
        assert!(a.charge(Some(&alice), ip, 2, 2).is_ok());
        match a.charge(Some(&alice), ip, 1, 1) {
            Err(Denied::RateLimited { wait, key }) => {
                assert_eq!(wait, Duration::from_secs(1));
                assert_eq!(key.as_deref(), Some("alice"));
            }
            other => panic!("{other:?}"),
        }
        // Bob has no quota, and the address quota does not apply to keys.
        for _ in 0..10 {
            assert!(a.charge(Some(&bob), ip, 5, 5).is_ok());
        }
        // Without a key: the address's own bucket (1/s, burst 1).
        assert!(a.charge(None, ip, 1, 1).is_ok());
        assert!(matches!(a.charge(None, ip, 1, 1), Err(Denied::RateLimited { key: None, .. })));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(a.charge(None, ip, 1, 1).is_ok());
        let admitted = AccessLabels { key: "bob".into(), outcome: "admitted".into() };
        assert_eq!(a.metrics.get_or_create(&admitted).get(), 50);
        let limited = AccessLabels { key: "alice".into(), outcome: "rate_limited".into() };
        assert_eq!(a.metrics.get_or_create(&limited).get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn quotas_count_compute_units() {
        let mut cfg = GatewayConfig {
            keys: vec![ApiKeyConfig {
                name: "carol".into(),
                key_sha256: sha("carol-secret"),
                requests_per_sec: Some(10),
                burst: Some(20),
                allow_methods: Vec::new(),
            }],
            per_ip_requests_per_sec: 10,
            ..GatewayConfig::default()
        };
        cfg.method_costs.insert("eth_chainId".into(), 4);
        let units = Family::<AccessLabels, Counter>::default();
        let a = Access::new(&cfg, Family::default()).with_units_metrics(units.clone());
        let parse = |s: &'static str| crate::jsonrpc::parse(&bytes::Bytes::from_static(s.as_bytes()));
        let logs = parse(r#"{"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":[{}]}"#);
        let batch = parse(
            r#"[{"jsonrpc":"2.0","id":1,"method":"eth_call","params":[]},{"jsonrpc":"2.0","id":2,"method":"eth_chainId"}]"#,
        );
        assert_eq!(a.units(&logs, 1000), 10);
        assert_eq!(a.units(&batch, 1000), 5 + 4, "eth_chainId as configured");
        assert_eq!(a.units(&batch, 1), 1, "over max_batch_len: refused whole, one unit per allowed item");
        let carol = a.authenticate(Some("carol-secret")).unwrap().unwrap();
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        // A burst of 20 units: two log queries, not twenty.
        assert!(a.charge(Some(&carol), ip, 1, a.units(&logs, 1000)).is_ok());
        assert!(a.charge(Some(&carol), ip, 1, a.units(&logs, 1000)).is_ok());
        assert!(a.charge(Some(&carol), ip, 1, 1).is_err());
        // The address quota (10/s, burst 10) counts units the same way: a batch of 9 units, then
        // one more unit, and the next log query waits a second.
        assert!(a.charge(None, ip, 2, a.units(&batch, 1000)).is_ok());
        assert!(a.charge(None, ip, 1, 1).is_ok());
        match a.charge(None, ip, 1, a.units(&logs, 1000)) {
            Err(Denied::RateLimited { wait, .. }) => assert_eq!(wait, Duration::from_secs(1)),
            other => panic!("{other:?}"),
        }
        let admitted = AccessLabels { key: "carol".into(), outcome: "admitted".into() };
        assert_eq!(units.get_or_create(&admitted).get(), 20);
        assert_eq!(a.metrics.get_or_create(&admitted).get(), 2, "calls are counted as calls");
    }

    #[test]
    fn new_keys_are_random_and_hash_to_their_digest() {
        let (k1, d1) = new_key().unwrap();
        let (k2, _) = new_key().unwrap();
        assert_ne!(k1, k2);
        assert!(k1.starts_with(KEY_PREFIX) && k1.len() == KEY_PREFIX.len() + 2 * KEY_RANDOM_BYTES);
        assert_eq!(d1, sha(&k1));
        assert!(ct_eq(&parse_digest(&d1).unwrap(), &Sha256::digest(k1.as_bytes()).into()));
    }
}
