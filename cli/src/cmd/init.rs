//! `rpcmesh init`: create a home directory with a commented config, an identity and a store.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use rpcmesh_node::config::{CONFIG_FILE, Config, render_template};
use rpcmesh_node::store::{IdentityMeta, Store};
use rpcmesh_protocol::Identity;

use crate::Failure;
use crate::home::HomeArgs;

/// Arguments of `rpcmesh init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    home: HomeArgs,
    #[command(flatten)]
    flags: crate::flags::ConfigFlags,
    /// Replace an existing identity and config (the old PeerId is lost)
    #[arg(long)]
    force: bool,
}

impl InitArgs {
    /// The config these flags describe (environment variables are not baked into the file).
    fn config(&self) -> Result<Config, Failure> {
        let mut config = Config::default().with_overrides(&self.flags.overrides()?)?;
        self.flags.apply_upstreams(&mut config);
        config.check().map_err(|e| Failure::Usage(e.into()))?;
        Ok(config)
    }
}

/// Runs `rpcmesh init`.
pub fn run(args: InitArgs) -> Result<(), Failure> {
    let home = args.home.resolve()?;
    let config = args.config()?;
    let config_path = home.join(CONFIG_FILE);
    let key_path = Config::resolve(&home, &config.identity.key_file);

    if key_path.exists() && !args.force {
        return Err(Failure::Runtime(anyhow::anyhow!(
            "{} already holds an identity ({}); refusing to replace it. Use --force to create a new identity \
             (the old PeerId is lost), or `rpcmesh id --home {}` to see the existing one",
            home.display(),
            key_path.display(),
            home.display()
        )));
    }
    create_private_dir(&home)?;

    let write_config = args.force || !config_path.exists();
    if write_config {
        write_atomically(&config_path, render_template(&config).as_bytes())
            .with_context(|| format!("writing {}", config_path.display()))?;
    }

    let identity = Identity::generate();
    identity.save(&key_path, args.force)?;

    let token_path = Config::resolve(&home, &config.admin.token_file);
    if args.force {
        let _ = std::fs::remove_file(&token_path);
    }
    rpcmesh_node::admin::auth::load_or_create_token(&token_path)
        .with_context(|| format!("writing the admin token {}", token_path.display()))?;

    let store_path = Config::resolve(&home, &config.store.path);
    let store = Store::open(&store_path, Default::default())
        .with_context(|| format!("creating the store at {}", store_path.display()))?;
    store.set_identity(&IdentityMeta { public_key: identity.public_key(), created_at_ms: now_ms() })?;
    store.flush()?;

    eprintln!("Initialized rpcmesh home {}", home.display());
    if write_config {
        eprintln!("  config    {}", config_path.display());
    } else {
        eprintln!("  config    {} (kept the existing file)", config_path.display());
    }
    eprintln!("  identity  {} (mode 0600)", key_path.display());
    eprintln!("  admin     {} (bearer token, mode 0600)", token_path.display());
    eprintln!("  store     {}", store_path.display());
    eprintln!("  network   {}", config.network_id);
    // stdout carries only the PeerId so scripts can capture it.
    println!("{}", identity.peer_id());
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Writes via a temporary sibling and a rename, so a crash never leaves a half-written config.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp: PathBuf = path.with_extension("toml.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
