//! The signed envelope shared by every gossiped or receipted message.
//!
//! Wire form (canonical encoding, see [`crate::encoding`]): `body || signer (32) || signature (64)`.
//! The signature is ed25519 over `T::DOMAIN || canonical_bytes(body)`; the domain tag names the
//! message kind and protocol version, so a signature for one kind can never be replayed as
//! another. Verification uses `verify_strict` (rejects small-order keys and malleable
//! signatures).

use bincode::{Decode, Encode};
use ed25519_dalek::Signature;

use crate::encoding::{self, DecodeError};
use crate::identity::{Identity, PublicKey};

/// A message body that can be signed: it has a domain tag and a header.
pub trait SignedBody: Encode + Decode<()> + Clone {
    /// Domain separation tag, unique per message kind and protocol version.
    const DOMAIN: &'static [u8];
    /// Short name of the kind, for logs and errors.
    const KIND: &'static str;
}

/// A body, its signer's public key, and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Signed<T> {
    /// The message.
    pub body: T,
    /// Who signed it.
    pub signer: PublicKey,
    /// ed25519 signature over `T::DOMAIN || canonical_bytes(body)`.
    pub signature: [u8; 64],
}

/// Why a signature does not verify.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The signer field is not a valid ed25519 public key.
    #[error("the signer is not a valid ed25519 public key")]
    BadKey,
    /// The signature does not match body and signer.
    #[error("the signature does not verify")]
    BadSignature,
}

/// The exact bytes a signature covers: domain tag, then the canonical body.
pub fn signing_bytes<T: SignedBody>(body: &T) -> Vec<u8> {
    let mut msg = Vec::with_capacity(T::DOMAIN.len() + 256);
    msg.extend_from_slice(T::DOMAIN);
    encoding::encode_into(body, &mut msg);
    msg
}

impl<T: SignedBody> Signed<T> {
    /// Signs `body` with `identity`.
    pub fn sign(body: T, identity: &Identity) -> Self {
        let signature = identity.sign_raw(&signing_bytes(&body));
        Self { body, signer: identity.public_key(), signature }
    }

    /// Checks the signature (strictly). Does not check the header; see [`crate::validate`].
    pub fn verify(&self) -> Result<(), SignatureError> {
        let key = self.signer.verifying_key().ok_or(SignatureError::BadKey)?;
        let sig = Signature::from_bytes(&self.signature);
        key.verify_strict(&signing_bytes(&self.body), &sig).map_err(|_| SignatureError::BadSignature)
    }

    /// The canonical wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::to_bytes(self)
    }

    /// Decodes wire bytes (no signature check).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::from_bytes(bytes)
    }
}

/// Verifies many signed messages of one kind at once with ed25519 batch verification
/// (roughly twice as fast per message as one-by-one for large batches). On failure, fall back
/// to [`Signed::verify`] per message to find the bad one.
///
/// **Not a drop-in for [`Signed::verify`]**: batch verification uses the cofactored equation,
/// so a key holder can craft signatures (a torsion component in R) that pass here and fail
/// `verify_strict`. Validation and gossip therefore use `verify`; use this only where
/// accepting that superset is harmless (e.g. auditing stored history), never to decide what
/// to forward.
pub fn verify_batch<T: SignedBody>(messages: &[Signed<T>]) -> Result<(), SignatureError> {
    let mut keys = Vec::with_capacity(messages.len());
    let mut sigs = Vec::with_capacity(messages.len());
    let mut bodies = Vec::with_capacity(messages.len());
    for m in messages {
        let key = m.signer.verifying_key().ok_or(SignatureError::BadKey)?;
        // Batch verification is not strict; reject weak keys up front as verify_strict would.
        if key.is_weak() {
            return Err(SignatureError::BadKey);
        }
        keys.push(key);
        sigs.push(Signature::from_bytes(&m.signature));
        bodies.push(signing_bytes(&m.body));
    }
    let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
    ed25519_dalek::verify_batch(&refs, &sigs, &keys).map_err(|_| SignatureError::BadSignature)
}
