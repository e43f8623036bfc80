//! The mesh view: per provider, its latest valid announcement, recent attestations about it,
//! our own observations, trust, and derived health per chain.
//!
//! [`MeshTask`] is the single writer; everyone else reads an `Arc<MeshSnapshot>` from a
//! `watch` channel (no lock held, no swarm access).

mod reserved;
mod state;
mod task;
mod view;

pub use reserved::{sync_trusted, trusted_peers};
pub use state::{MeshSettings, MeshState};
pub use task::{MeshInput, MeshTask};
pub use view::{
    AttestationSummary, ChainView, CordonView, FilterView, Health, MeshSnapshot, ProviderView, Source, Standing,
};
