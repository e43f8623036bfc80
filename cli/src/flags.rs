//! Flags that override config keys, shared by `init` and `run`.

use clap::Args;
use rpcmesh_node::config::{ChainConfig, Config, Override, TomlValue, UpstreamConfig};

/// Config-overriding flags.
#[derive(Debug, Clone, Args)]
pub struct ConfigFlags {
    /// Mesh to join (messages of other networks are dropped)
    #[arg(long, value_name = "ID")]
    pub network_id: Option<String>,
    /// An upstream node of this provider, e.g. 1=http://127.0.0.1:8545 (repeatable; several
    /// URLs for one chain make several upstreams)
    #[arg(long, value_name = "CHAIN=URL", value_parser = parse_upstream)]
    pub upstream: Vec<(u64, String)>,
    /// p2p listen multiaddr (repeatable) [default: /ip4/0.0.0.0/tcp/4001 and /ip4/0.0.0.0/udp/4001/quic-v1]
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<String>,
    /// Peer to join through, e.g. /ip4/203.0.113.7/tcp/4001/p2p/12D3KooW... (repeatable)
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<String>,
    /// JSON-RPC gateway address [default: 127.0.0.1:8545]
    #[arg(long, value_name = "HOST:PORT")]
    pub rpc_addr: Option<std::net::SocketAddr>,
    /// Admin API address [default: 127.0.0.1:8546]
    #[arg(long, value_name = "HOST:PORT")]
    pub admin_addr: Option<std::net::SocketAddr>,
    /// Any config key, e.g. --set p2p.mdns=true (repeatable; see config.toml for keys)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

fn parse_upstream(s: &str) -> Result<(u64, String), String> {
    let (chain, url) = s.split_once('=').ok_or_else(|| format!("{s:?} is not CHAIN=URL"))?;
    let chain: u64 = chain.trim().parse().map_err(|_| format!("chain id {chain:?} is not a number"))?;
    let url = url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("upstream {url:?} must be an http:// or https:// URL"));
    }
    Ok((chain, url.to_string()))
}

fn toml_list(items: &[String]) -> TomlValue {
    TomlValue::Array(items.iter().cloned().map(Into::into).collect())
}

impl ConfigFlags {
    /// The key overrides these flags make, in a fixed order (`--set` last).
    pub fn overrides(&self) -> Result<Vec<Override>, rpcmesh_node::config::ConfigError> {
        let mut o = Vec::new();
        if let Some(id) = &self.network_id {
            o.push(Override::flag_value("--network-id", "network_id", id.clone().into()));
        }
        if !self.listen.is_empty() {
            o.push(Override::flag_value("--listen", "p2p.listen", toml_list(&self.listen)));
        }
        if !self.bootstrap.is_empty() {
            o.push(Override::flag_value("--bootstrap", "p2p.bootstrap", toml_list(&self.bootstrap)));
        }
        if let Some(a) = self.rpc_addr {
            o.push(Override::flag_value("--rpc-addr", "gateway.addr", a.to_string().into()));
        }
        if let Some(a) = self.admin_addr {
            o.push(Override::flag_value("--admin-addr", "admin.addr", a.to_string().into()));
        }
        for s in &self.set {
            o.push(Override::parse_set(s)?);
        }
        Ok(o)
    }

    /// Adds `--upstream` chains to `config`.
    pub fn apply_upstreams(&self, config: &mut Config) {
        for (chain, url) in &self.upstream {
            match config.chains.iter_mut().find(|c| c.id == *chain) {
                Some(c) if c.upstreams.iter().any(|u| &u.http == url) => {}
                Some(c) => c.upstreams.push(UpstreamConfig { http: url.clone(), ws: None }),
                None => config.chains.push(ChainConfig::with_upstream(*chain, url.clone())),
            }
        }
    }
}
