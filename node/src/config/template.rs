//! The commented `config.toml` that `rpcmesh init` writes: every key present, with its value
//! and a comment saying what it does, so an operator edits rather than looks things up.

use std::fmt::Write as _;

use super::{Config, TrustMode};

fn v<T: serde::Serialize + ?Sized>(value: &T) -> String {
    match toml::Value::try_from(value) {
        Ok(v) => v.to_string(),
        Err(_) => "\"\"".into(),
    }
}

/// Renders `config` as a fully commented TOML file. Parsing the result gives back `config`.
pub fn render_template(c: &Config) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"# rpcmesh daemon configuration.
#
# Every key can be overridden by an environment variable RPCMESH_<SECTION>__<KEY>
# (e.g. RPCMESH_P2P__MDNS=true, RPCMESH_NETWORK_ID=my-mesh) and by `--set section.key=value`.
# Relative paths are relative to this file's directory. Unknown keys are an error.

# Which mesh to join; messages of other networks are dropped.
network_id = {network_id}
# Where this operator is subject to law (e.g. "DE", "US-CA"), announced so that transactions are
# broadcast across jurisdictions. Optional.
{jurisdiction}

[identity]
# The daemon's ed25519 key (mode 0600). It is the libp2p PeerId and signs every message.
key_file = {key_file}

[p2p]
# Multiaddrs to listen on (TCP + QUIC).
listen = {listen}
# Peers to join through, e.g. "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooW...".
bootstrap = {bootstrap}
# Extra addresses to announce (e.g. a public address behind NAT).
external_addrs = {external_addrs}
# Discover peers on the local network by mDNS.
mdns = {mdns}
# Never dial or announce non-loopback addresses (local testnets).
loopback_only = {loopback_only}
# Connection limits.
max_connections = {max_connections}
max_connections_per_peer = {max_connections_per_peer}
max_pending_incoming = {max_pending_incoming}
# Of them, from one IP address (a local testnet, all on 127.0.0.1, needs more).
max_pending_per_ip = {max_pending_per_ip}
# Close connections idle this long (seconds).
idle_connection_timeout_secs = {idle}
# Upper bound of the reconnect backoff towards bootstrap peers (milliseconds).
bootstrap_backoff_max_ms = {backoff}
# Most established incoming connections from peers that are neither bootstrap nor trusted
# (0 = only those). Bootstrap and trusted peers always get in, closing a stranger's connection
# when max_connections is reached; max_pending_incoming does not count their addresses.
max_incoming = {max_incoming}

[gateway]
# Ethereum JSON-RPC over HTTP and WebSocket for wallets, dapps and tools.
addr = {gw_addr}
# Largest request body (bytes); larger gets HTTP 413 with JSON-RPC error -32600.
max_body_bytes = {gw_body}
# Most requests in one batch.
max_batch_len = {gw_batch}
# Chain served on "/" (0 = the first [[chain]]); others on "/<chain id>" or "/<alias>".
default_chain = {gw_default}
# CORS origins allowed; ["*"] for any, [] to send no CORS headers.
cors_origins = {gw_cors}
# Most client requests in flight, and most open connections (WebSocket sessions included);
# beyond it: HTTP 503 with JSON-RPC -32005 (no queueing).
max_connections = {gw_conns}
# Most of them from one client address (IPv6: one /64); 0 = no per-address limit (e.g. behind a
# reverse proxy that connects from one address).
max_connections_per_ip = {gw_conns_ip}
# Time a client has to send its request headers (also the keep-alive idle timeout), and its
# body (HTTP 408 after it), in milliseconds.
header_timeout_ms = {gw_header_to}
body_timeout_ms = {gw_body_to}
# Methods clients may call ("*" wildcards), minus those denied (deny wins). Refused calls get
# JSON-RPC -32601. The default serves the public read/write surface and refuses node-admin,
# dev-chain, debugging and unlocked-account methods (anvil_reset, debug_*, eth_sendTransaction,
# eth_sign...). To serve e.g. debug_traceTransaction, add it to allow_methods and remove
# "debug_*" from deny_methods. A [[chain]] can replace either list for itself.
allow_methods = {gw_allow}
deny_methods = {gw_deny}
# Client access control (see "Running a public gateway" in docs/operator-guide.md). Clients
# present a key as "Authorization: Bearer <key>" or in the path, "/k/<key>/<chain>". With
# require_key = true, calls without a valid key get HTTP 401; a wrong key always does.
require_key = {gw_require_key}
# Compute units (see method_costs) per second per client address without a key, and its burst
# (0 = one second's worth); 0 turns the quota off. Over quota: HTTP 429, JSON-RPC -32005,
# retry-after.
per_ip_requests_per_sec = {gw_ip_rate}
per_ip_burst = {gw_ip_burst}
# API keys, stored as the SHA-256 of the secret; make one with `rpcmesh gateway key new --name NAME`.
# Each: name, key_sha256, optional requests_per_sec and burst, optional allow_methods (narrower
# than the gateway's). Written here as inline tables; [[gateway.keys]] sections work as well.
keys = {gw_keys}
# Compute units per call that quotas count, over the built-in table (plain reads 1; blocks,
# receipts, eth_feeHistory 2; eth_call, eth_estimateGas, eth_getProof, eth_sendRawTransaction,
# eth_subscribe 5; eth_getLogs, eth_getBlockReceipts 10; debug_*, trace_* 20). A batch costs the
# sum of its items. E.g. method_costs = {{ eth_getLogs = 25, "debug_*" = 50 }}
method_costs = {gw_costs}
# Bytes all request bodies may hold at once (at least max_body_bytes); beyond it: HTTP 503 with
# JSON-RPC -32005. Bounds the memory slow clients can hold with large bodies.
max_buffered_body_bytes = {gw_body_budget}

[admin]
# Operator API: /status /peers /health /ready /metrics /explain. Keep it on loopback.
addr = {admin_addr}
# Bearer token file (0600): required by every mutating endpoint, and beyond loopback by every
# endpoint but /health and /metrics. `rpcmesh status|peers` read it from here.
token_file = {admin_token}
# Names clients may reach the API by besides its address, localhost and loopback (Host check
# against DNS rebinding), e.g. ["admin.internal:8546"].
allowed_hosts = {admin_hosts}

[announce]
# Capacity announcement heartbeat (ms); material changes are announced at once.
heartbeat_ms = {hb}
# Announcements expire after this many heartbeats.
expiry_heartbeats = {expiry}
# Heartbeats the whole mesh may send per second: in a larger mesh the heartbeat stretches to
# providers / mesh_rate_per_sec seconds, so each daemon's gossip load stays flat.
mesh_rate_per_sec = {mesh_rate:?}

[prober]
# Own-upstream probe period and timeout (ms).
interval_ms = {p_int}
timeout_ms = {p_to}
# Peer probing: period (ms) and providers sampled per chain per period (bounds probe load).
peer_interval_ms = {p_peer_int}
peer_sample = {p_sample}
# Window summarised in one health attestation, and how often attestations are signed (ms).
window_ms = {p_window}
attest_interval_ms = {p_attest}
# Attestation rounds the whole mesh may sign per second (stretches attest_interval_ms likewise).
mesh_rounds_per_sec = {mesh_rounds:?}

[routing]
# Route to trusted peers when own upstreams cannot serve (per request: header x-rpcmesh-failover: on|off).
failover = {failover}
# Most blocks a provider may trail the median head of trusted providers.
max_head_lag_blocks = {lag}
# Budget per client request, retries and hedges included (ms).
request_timeout_ms = {r_to}
# Most attempts per client request.
max_attempts = {r_attempts}
# Hedge reads: if the first provider has not answered within 3x its usual latency (25 ms..1 s),
# ask the next one too; the first answer wins. Writes are never hedged.
hedge = {hedge}
# Outlier ejection: consecutive failures before a provider sits out, and for how long (ms).
eject_after_failures = {eject_n}
eject_ms = {eject_ms}

[integrity]
# How far answers are verified (per request: header x-rpcmesh-verify: off|sample|strict).
# "sample": CPU-only checks (block and transaction hashes) on every answer, and proofs, receipts
# and the trusted chain on a share of answers that providers cannot predict (all answers of a
# provider that failed a check in the last hour). "strict": every verifiable answer is fully
# checked before it is used; an answer that cannot be verified is not used. "off": no checks.
mode = {i_mode}
# Distinct operators that must agree on a block hash before it is trusted (unset: a majority of
# the eligible ones, at least 2 when 2 exist).
{i_quorum}
# Share of answers fully verified in sample mode (per mille).
sample_permille = {i_sample}
# Most blocks of one eth_getLogs range verified per request.
max_log_blocks = {i_logs}
# Reuse of a trusted head before asking the quorum again (ms), and trusted headers kept per chain.
head_fresh_ms = {i_fresh}
trusted_headers = {i_headers}
# eth_blockNumber may run this far ahead of the quorum's highest head, or lag the trusted head (blocks).
head_slack_blocks = {i_slack}
max_lag_blocks = {i_lag}
# Seconds a provider proven to have answered wrongly stays out of routing on that chain, unless
# cleared first with `rpcmesh evidence clear PEER`.
cordon_secs = {cordon_secs}

[censorship]
# Providers whose announced [[chain]] policies match one of these patterns are not routed to
# (this node's own upstreams included): e.g. ["filters:*"]. Per request: x-rpcmesh-avoid: filters.
avoid = {c_avoid}
# Addresses whose reads and transactions are always verified (whatever the integrity mode) and
# that canaries ask every provider about: proven reads, and a dry transaction no node can mine.
watch = {c_watch}
# Seconds between canary rounds (jittered by 20 %); 0 turns canaries off.
canary_interval_secs = {c_canary}
# eth_sendRawTransaction goes to this many distinct operators, other jurisdictions first; the
# first acceptance ("already known" included) answers the client.
broadcast_operators = {c_bcast}
# Ask one more operator for an accepted transaction after this long and send it there if it
# does not know it (ms); 0: off.
confirm_ms = {c_confirm}
# Distinct filtered subjects (addresses, or methods) proven against one provider before it is
# cordoned like a liar.
max_filtered_subjects = {c_subjects}

[cache]
# Reuse answers while the chain says they hold: answers about a block hash until evicted, about
# settled history (final_depth_blocks below the head) until a reorganisation is seen, about the
# head while the head stays and at most head_ttl_ms. Identical requests in flight are asked once.
enabled = {cache_on}
max_mib = {rcache_mib}
final_depth_blocks = {cache_depth}
head_ttl_ms = {cache_ttl}
# Disk for a second tier in the store (MiB; 0: memory only): answers about a block hash or
# settled history are also kept there, read on a memory miss, and survive restarts.
sled_mib = {cache_sled}

[relay]
# Serve relays for any valid peer, not only trusted ones.
open = {relay_open}
# Largest relayed request or response (bytes).
max_body_bytes = {relay_body}
# Relay over long-lived per-peer streams (false: one request-response exchange per relay; peers
# without streams are served and asked that way anyway).
streams = {relay_streams}
# Methods peers may have this node's upstreams serve ("*" wildcards), minus those denied (deny
# wins); refused relays make the requesting gateway answer JSON-RPC -32601. Independent of the
# gateway lists. The default relays the public surface and never node-admin, dev-chain,
# debugging or signing methods.
allow_methods = {relay_allow}
deny_methods = {relay_deny}
# Per-peer opt-ins beyond these lists, e.g. your own test rig driving a dev chain:
# [[relay.grants]] tables with peer = "12D3KooW..." and allow_methods = ["evm_*", "anvil_*"].
grants = {relay_grants}

[trust]
# "federated": trusted = trust.peers + holders of a membership certificate from a root in
# trust.federations. "open": every valid peer, ranked by observed reputation.
mode = {mode}
# PeerIds trusted explicitly.
peers = {peers}
# Federation root public keys (hex), as printed by `rpcmesh federation init`.
federations = {federations}
# This node's own membership certificate (from `rpcmesh federation admit`); "" for none.
membership_cert = {cert}

[store]
# Database directory.
path = {store_path}
# Attestation history: pruned after this many seconds, and never more than max_attestations.
attestation_ttl_secs = {att_ttl}
max_attestations = {att_max}
# Most evidence records kept.
max_evidence = {ev_max}
# Page cache of the database, MiB (resident memory grows up to about this much).
cache_mib = {cache_mib}

[log]
# tracing filter, e.g. "info" or "info,rpcmesh_node::p2p=debug" (RUST_LOG wins if set).
level = {log_level}
# "text" or "json".
format = {log_format}

[telemetry]
# OpenTelemetry export of the spans (a "request" span per client request, a "relay" span per
# relay served for a peer, in the requester's trace). OTLP/HTTP protobuf traces URL of a
# collector, e.g. "http://127.0.0.1:4318/v1/traces"; "" (the default): off.
otlp_endpoint = {otlp_endpoint}
service_name = {otlp_service}
# Share of traces exported (0.0 to 1.0); relays follow the requester's decision.
sample_ratio = {otlp_ratio:?}

[runtime]
# Async worker threads; 0 = half the CPU cores, at least 1 (the chain node needs the rest).
# 1 gives the lowest latency to a single client (no cross-thread hand-over per request);
# more carry more concurrent load.
worker_threads = {worker_threads}
"#,
        network_id = v(&c.network_id),
        key_file = v(&c.identity.key_file),
        listen = v(&c.p2p.listen),
        bootstrap = v(&c.p2p.bootstrap),
        external_addrs = v(&c.p2p.external_addrs),
        mdns = c.p2p.mdns,
        loopback_only = c.p2p.loopback_only,
        max_connections = c.p2p.max_connections,
        max_connections_per_peer = c.p2p.max_connections_per_peer,
        max_pending_incoming = c.p2p.max_pending_incoming,
        max_pending_per_ip = c.p2p.max_pending_per_ip,
        idle = c.p2p.idle_connection_timeout_secs,
        backoff = c.p2p.bootstrap_backoff_max_ms,
        max_incoming = c.p2p.max_incoming,
        gw_addr = v(&c.gateway.addr),
        gw_body = c.gateway.max_body_bytes,
        gw_batch = c.gateway.max_batch_len,
        gw_default = c.gateway.default_chain,
        gw_cors = v(&c.gateway.cors_origins),
        gw_conns = c.gateway.max_connections,
        gw_conns_ip = c.gateway.max_connections_per_ip,
        gw_costs = v(&c.gateway.method_costs),
        gw_body_budget = c.gateway.max_buffered_body_bytes,
        gw_header_to = c.gateway.header_timeout_ms,
        gw_body_to = c.gateway.body_timeout_ms,
        gw_allow = v(&c.gateway.allow_methods),
        gw_deny = v(&c.gateway.deny_methods),
        gw_require_key = c.gateway.require_key,
        gw_ip_rate = c.gateway.per_ip_requests_per_sec,
        gw_ip_burst = c.gateway.per_ip_burst,
        gw_keys = v(&c.gateway.keys),
        admin_addr = v(&c.admin.addr),
        admin_token = v(&c.admin.token_file),
        admin_hosts = v(&c.admin.allowed_hosts),
        hb = c.announce.heartbeat_ms,
        expiry = c.announce.expiry_heartbeats,
        p_int = c.prober.interval_ms,
        p_to = c.prober.timeout_ms,
        p_peer_int = c.prober.peer_interval_ms,
        p_sample = c.prober.peer_sample,
        p_window = c.prober.window_ms,
        p_attest = c.prober.attest_interval_ms,
        mesh_rate = c.announce.mesh_rate_per_sec,
        mesh_rounds = c.prober.mesh_rounds_per_sec,
        failover = c.routing.failover,
        lag = c.routing.max_head_lag_blocks,
        r_to = c.routing.request_timeout_ms,
        r_attempts = c.routing.max_attempts,
        hedge = c.routing.hedge,
        jurisdiction = match &c.jurisdiction {
            Some(j) => format!("jurisdiction = {}", v(j)),
            None => "# jurisdiction = \"DE\"".to_string(),
        },
        cache_on = c.cache.enabled,
        rcache_mib = c.cache.max_mib,
        cache_depth = c.cache.final_depth_blocks,
        cache_ttl = c.cache.head_ttl_ms,
        cache_sled = c.cache.sled_mib,
        c_avoid = v(&c.censorship.avoid),
        c_watch = v(&c.censorship.watch),
        c_canary = c.censorship.canary_interval_secs,
        c_bcast = c.censorship.broadcast_operators,
        c_confirm = c.censorship.confirm_ms,
        c_subjects = c.censorship.max_filtered_subjects,
        eject_n = c.routing.eject_after_failures,
        eject_ms = c.routing.eject_ms,
        i_mode = v(c.integrity.mode.label()),
        i_quorum = match c.integrity.quorum {
            Some(q) => format!("quorum = {q}"),
            None => "# quorum = 2".to_string(),
        },
        i_sample = c.integrity.sample_permille,
        i_logs = c.integrity.max_log_blocks,
        i_fresh = c.integrity.head_fresh_ms,
        i_headers = c.integrity.trusted_headers,
        i_slack = c.integrity.head_slack_blocks,
        i_lag = c.integrity.max_lag_blocks,
        relay_open = c.relay.open,
        relay_body = c.relay.max_body_bytes,
        relay_streams = c.relay.streams,
        relay_allow = v(&c.relay.allow_methods),
        relay_deny = v(&c.relay.deny_methods),
        relay_grants = v(&c.relay.grants),
        mode = v(match c.trust.mode {
            TrustMode::Federated => "federated",
            TrustMode::Open => "open",
        }),
        peers = v(&c.trust.peers),
        federations = v(&c.trust.federations),
        cert = v(&c.trust.membership_cert),
        store_path = v(&c.store.path),
        att_ttl = c.store.attestation_ttl_secs,
        att_max = c.store.max_attestations,
        ev_max = c.store.max_evidence,
        cache_mib = c.store.cache_mib,
        cordon_secs = c.integrity.cordon_secs,
        log_level = v(&c.log.level),
        log_format = v(&c.log.format),
        otlp_endpoint = v(&c.telemetry.otlp_endpoint),
        otlp_service = v(&c.telemetry.service_name),
        otlp_ratio = c.telemetry.sample_ratio,
        worker_threads = c.runtime.worker_threads,
    );
    s.push_str(
        "\n# Chains served, one [[chain]] table each. Upstreams are this provider's own nodes;\n\
         # rpcmesh checks eth_chainId against `id` and never serves a mismatching node.\n",
    );
    if c.chains.is_empty() {
        s.push_str(
            "#\n# [[chain]]\n# id = 1\n# aliases = [\"eth\"]\n\
             # upstreams = [{ http = \"http://127.0.0.1:8545\", ws = \"ws://127.0.0.1:8545\" }]\n\
             # max_requests_per_sec = 500\n# max_concurrent_relays = 64\n# archive = false\n\
             # method_groups = [\"eth\", \"net\", \"web3\"]\n# policies = []\n",
        );
    }
    for chain in &c.chains {
        let upstreams: Vec<String> = chain
            .upstreams
            .iter()
            .map(|u| match &u.ws {
                Some(ws) => format!("{{ http = {}, ws = {} }}", v(&u.http), v(ws)),
                None => format!("{{ http = {} }}", v(&u.http)),
            })
            .collect();
        let _ = write!(
            s,
            "\n[[chain]]\n# EIP-155 chain id.\nid = {id}\n# Gateway path aliases (\"/eth\").\naliases = {aliases}\n\
             # This provider's nodes: {{ http = \"...\", ws = \"...\" }} (ws optional, used for subscriptions).\n\
             upstreams = [{ups}]\n# Capacity offered to the mesh.\nmax_requests_per_sec = {rps}\n\
             max_concurrent_relays = {relays}\n# Whether the nodes keep full history.\narchive = {archive}\n\
             # JSON-RPC namespaces served.\nmethod_groups = {groups}\n\
             # Disclosures of filtering, announced verbatim (e.g. \"filters transactions by sanctions list\").\n\
             policies = {policies}\n\
             # Method policy of this chain, replacing gateway.allow_methods / deny_methods for it.\n\
             {allow}{deny}",
            id = chain.id,
            aliases = v(&chain.aliases),
            ups = upstreams.join(", "),
            rps = chain.max_requests_per_sec,
            relays = chain.max_concurrent_relays,
            archive = chain.archive,
            groups = v(&chain.method_groups),
            policies = v(&chain.policies),
            allow = match &chain.allow_methods {
                Some(a) => format!("allow_methods = {}\n", v(a)),
                None => "# allow_methods = [\"eth_*\", \"net_*\", \"web3_*\"]\n".into(),
            },
            deny = match &chain.deny_methods {
                Some(d) => format!("deny_methods = {}\n", v(d)),
                None => "# deny_methods = [\"debug_*\"]\n".into(),
            },
        );
    }
    s
}
