use std::path::Path;

use super::*;

fn custom() -> Config {
    let mut c = Config { network_id: "testnet-7".into(), ..Config::default() };
    c.p2p.bootstrap = vec!["/ip4/127.0.0.1/tcp/4002/p2p/12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5".into()];
    c.chains = vec![ChainConfig::with_upstream(1, "http://127.0.0.1:8545".into()), {
        let mut p = ChainConfig::with_upstream(137, "http://127.0.0.1:9545".into());
        p.aliases = vec!["polygon".into()];
        p.upstreams[0].ws = Some("ws://127.0.0.1:9545".into());
        p.policies = vec!["filters transactions by sanctions list".into()];
        p
    }];
    c.trust.mode = TrustMode::Open;
    c.log.format = LogFormat::Json;
    c.gateway.keys = vec![
        ApiKeyConfig {
            name: "alice".into(),
            key_sha256: "ab".repeat(32),
            requests_per_sec: Some(10),
            burst: Some(20),
            allow_methods: vec!["eth_blockNumber".into()],
        },
        ApiKeyConfig {
            name: "bob".into(),
            key_sha256: "cd".repeat(32),
            requests_per_sec: None,
            burst: None,
            allow_methods: Vec::new(),
        },
    ];
    c.gateway.per_ip_requests_per_sec = 5;
    c
}

#[test]
fn api_keys_are_checked() {
    let key = |name: &str, hash: String| ApiKeyConfig {
        name: name.into(),
        key_sha256: hash,
        requests_per_sec: None,
        burst: None,
        allow_methods: Vec::new(),
    };
    let check = |keys: Vec<ApiKeyConfig>, require: bool| {
        let mut c = Config::default();
        c.gateway.keys = keys;
        c.gateway.require_key = require;
        c.check().err().map(|e| e.to_string())
    };
    assert_eq!(check(vec![key("a", "ab".repeat(32))], true), None);
    assert!(check(Vec::new(), true).unwrap().contains("gateway.require_key"));
    assert!(check(vec![key("a", "secret".into())], false).unwrap().contains("64 hex digits"));
    assert!(check(vec![key("a b", "ab".repeat(32))], false).unwrap().contains("name"));
    let twice = check(vec![key("a", "ab".repeat(32)), key("b", "AB".repeat(32))], false).unwrap();
    assert!(twice.contains("same as another"), "{twice}");
    assert!(check(vec![key("a", "ab".repeat(32)), key("a", "cd".repeat(32))], false).unwrap().contains("twice"));
    let mut zero = key("a", "ab".repeat(32));
    zero.requests_per_sec = Some(0);
    assert!(check(vec![zero], false).unwrap().contains("at least 1"));
}

#[test]
fn template_parses_back_to_the_same_config() {
    for c in [Config::default(), custom()] {
        let text = render_template(&c);
        assert_eq!(Config::from_toml(&text, Path::new("config.toml")).unwrap(), c);
    }
}

#[test]
fn template_has_every_key_present() {
    // Every key of the serialized config appears uncommented in the template, with its value.
    let c = custom();
    let text = render_template(&c);
    let from_template: toml::Table = toml::from_str(&text).unwrap();
    let from_config = toml::Table::try_from(&c).unwrap();
    assert_eq!(from_template, from_config);
    // Every key line is preceded by a comment or another key of its group.
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.contains(" = ") && !l.starts_with('#') && i > 0 {
            let prev = lines[i - 1];
            assert!(prev.starts_with('#') || prev.contains(" = ") || prev.starts_with('['), "uncommented: {l}");
        }
    }
}

#[test]
fn empty_file_is_the_defaults() {
    assert_eq!(Config::from_toml("", Path::new("c")).unwrap(), Config::default());
    let d = Config::default();
    assert_eq!(d.gateway.addr.to_string(), "127.0.0.1:8545");
    assert_eq!(d.admin.addr.to_string(), "127.0.0.1:8546");
    assert_eq!(d.p2p.listen, vec!["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"]);
}

#[test]
fn unknown_key_names_key_and_line() {
    let text = "network_id = \"x\"\n\n[p2p]\nmdsn = true\n";
    let err = Config::from_toml(text, Path::new("/h/config.toml")).unwrap_err().to_string();
    assert!(err.contains("mdsn"), "{err}");
    assert!(err.contains("line 4"), "{err}");
    assert!(err.contains("/h/config.toml"), "{err}");
}

#[test]
fn mistyped_value_names_key_and_line() {
    let text = "[gateway]\naddr = \"not an address\"\n";
    let err = Config::from_toml(text, Path::new("c.toml")).unwrap_err().to_string();
    assert!(err.contains("line 2"), "{err}");
    let text = "[p2p]\nmdns = \"yes\"\n";
    let err = Config::from_toml(text, Path::new("c.toml")).unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("bool"), "{err}");
}

#[test]
fn env_overrides_apply_with_types() {
    let vars = [
        ("RPCMESH_P2P__MDNS", "true"),
        ("RPCMESH_NETWORK_ID", "from-env"),
        ("RPCMESH_P2P__BOOTSTRAP", "/ip4/127.0.0.1/tcp/1,/ip4/127.0.0.1/tcp/2"),
        ("RPCMESH_ROUTING__MAX_ATTEMPTS", "7"),
        ("RPCMESH_HOME", "/ignored"),
        ("OTHER", "x"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let c = Config::default().with_overrides(&env_overrides(vars)).unwrap();
    assert!(c.p2p.mdns);
    assert_eq!(c.network_id, "from-env");
    assert_eq!(c.p2p.bootstrap.len(), 2);
    assert_eq!(c.routing.max_attempts, 7);
}

#[test]
fn numeric_looking_string_values_stay_strings() {
    let c = Config::default().with_overrides(&[Override::flag("--network-id", "network_id", "1234")]).unwrap();
    assert_eq!(c.network_id, "1234");
}

#[test]
fn unknown_env_key_names_the_variable() {
    let vars = [("RPCMESH_P2P__MDSN".to_string(), "true".to_string())];
    let err = Config::default().with_overrides(&env_overrides(vars)).unwrap_err();
    assert!(err.is_usage());
    let msg = err.to_string();
    assert!(msg.contains("RPCMESH_P2P__MDSN") && msg.contains("mdsn"), "{msg}");
}

#[test]
fn mistyped_flag_value_names_the_flag() {
    let err =
        Config::default().with_overrides(&[Override::parse_set("routing.max_attempts=many").unwrap()]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("--set routing.max_attempts"), "{msg}");
    assert!(Override::parse_set("novalue").is_err());
}

#[test]
fn overrides_win_over_file_and_later_over_earlier() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[gateway]\naddr = \"127.0.0.1:1000\"\n").unwrap();
    let c = Config::load(
        &path,
        true,
        &[
            Override::flag("RPCMESH_GATEWAY__ADDR", "gateway.addr", "127.0.0.1:2000"),
            Override::flag("--rpc-addr", "gateway.addr", "127.0.0.1:3000"),
        ],
    )
    .unwrap();
    assert_eq!(c.gateway.addr.port(), 3000);
}

#[test]
fn one_chain_key_is_set_by_id_even_before_its_upstream_joins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[[chain]]\nid = 1\nupstreams = [{ http = \"http://127.0.0.1:8545\" }]\n").unwrap();
    let set = |k: &str, v: &str| Override::flag(format!("--set {k}"), k, v);
    let c = Config::load(&path, true, &[set("chain.1.policies", "filters:ofac-sdn, geo:blocks:cu")]).unwrap();
    assert_eq!(c.chains[0].policies, ["filters:ofac-sdn", "geo:blocks:cu"]);
    // A chain named only by the override starts its table; the load refuses it without upstreams
    // (the CLI adds --upstream ones between the overrides and the check).
    let err = Config::load(&path, true, &[set("chain.5.policies", r#"["filters:x"]"#)]).unwrap_err();
    assert!(err.to_string().contains("chain 5 has no upstreams"), "{err}");
    let c = Config::default().with_overrides(&[set("chain.5.policies", r#"["filters:x"]"#)]).unwrap();
    assert_eq!((c.chains[0].id, c.chains[0].policies.as_slice()), (5, ["filters:x".to_string()].as_slice()));
    assert!(Config::load(&path, true, &[set("chain.1.id", "2")]).is_err());
    assert!(Config::load(&path, true, &[set("chain.x.policies", "a")]).is_err());
    assert!(Config::load(&path, true, &[set("chain.1.nonsense", "a")]).is_err(), "unknown keys are still errors");
}

#[test]
fn censorship_settings_are_checked() {
    let mut c = custom();
    c.censorship.watch = vec!["0x1234".into()];
    assert!(c.check().unwrap_err().to_string().contains("censorship.watch"));
    let mut c = custom();
    c.censorship.avoid = vec!["filters *".into()];
    assert!(c.check().unwrap_err().to_string().contains("censorship.avoid"));
    let mut c = custom();
    c.censorship.broadcast_operators = 0;
    assert!(c.check().is_err());
    let mut c = custom();
    c.jurisdiction = Some("Germany, mostly".into());
    assert!(c.check().unwrap_err().to_string().contains("jurisdiction"));
    let mut c = custom();
    c.jurisdiction = Some("US-CA".into());
    c.censorship.watch = vec!["0xa0ee7a142d267c1f36714e4a8f75612f20a79720".into()];
    c.censorship.avoid = vec!["filters".into()];
    c.check().unwrap();
}

#[test]
fn consistency_checks() {
    let mut c = custom();
    c.chains[1].id = 1;
    assert!(c.check().unwrap_err().to_string().contains("twice"));
    let mut c = custom();
    c.chains[0].aliases = vec!["polygon".into()];
    assert!(c.check().unwrap_err().to_string().contains("both"));
    let mut c = custom();
    c.chains[0].upstreams[0].http = "127.0.0.1:8545".into();
    assert!(c.check().is_err());
    let mut c = custom();
    c.trust.peers = vec!["nope".into()];
    assert!(c.check().unwrap_err().to_string().contains("trust.peers"));
    let mut c = custom();
    c.gateway.default_chain = 5;
    assert!(c.check().is_err());
    custom().check().unwrap();
}

#[test]
fn method_costs_and_max_incoming_round_trip_and_are_checked() {
    let mut c = Config::default();
    c.gateway.method_costs.insert("eth_getLogs".into(), 25);
    c.gateway.method_costs.insert("debug_*".into(), 50);
    c.p2p.max_incoming = 7;
    let text = render_template(&c);
    assert_eq!(Config::from_toml(&text, Path::new("config.toml")).unwrap(), c);
    // One cost from the command line, over the file.
    let set = Override::parse_set("gateway.method_costs.eth_call=9").unwrap();
    let c2 = c.clone().with_overrides(&[set]).unwrap();
    assert_eq!(c2.gateway.method_costs.get("eth_call"), Some(&9));
    assert_eq!(c2.gateway.method_costs.get("eth_getLogs"), Some(&25));
    let check = |pattern: &str, cost: u32| {
        let mut c = Config::default();
        c.gateway.method_costs.insert(pattern.into(), cost);
        c.check().err().map(|e| e.to_string())
    };
    assert_eq!(check("eth_*", 3), None);
    assert!(check("eth_call", 0).unwrap().contains("gateway.method_costs.eth_call"));
    assert!(check("eth_call", crate::gateway::cost::MAX_METHOD_COST + 1).unwrap().contains("1..="));
    assert!(check("eth call", 2).unwrap().contains("gateway.method_costs"));
}

#[test]
fn gossip_budgets_and_the_per_ip_handshake_cap_refuse_nonsense() {
    for (key, bad, says) in [
        ("announce.mesh_rate_per_sec", "0.0", "announce.mesh_rate_per_sec"),
        ("prober.mesh_rounds_per_sec", "-1.0", "prober.mesh_rounds_per_sec"),
        ("p2p.max_pending_per_ip", "0", "p2p.max_pending_per_ip"),
    ] {
        let set = Override::parse_set(&format!("{key}={bad}")).unwrap();
        let err = Config::default().with_overrides(&[set]).and_then(|c| c.check().map(|()| c)).unwrap_err();
        assert!(err.to_string().contains(says), "{key}={bad}: {err}");
    }
    Config::default().check().unwrap();
}
