//! Daemon identity: one ed25519 key that is both the libp2p identity and the message signer.
//!
//! Conversions: [`Identity`] (secret) → [`PublicKey`] → [`PeerId`], and back from a `PeerId`
//! to the `PublicKey` (an ed25519 `PeerId` inlines its key). Key files hold the 32-byte secret
//! as hex behind a format line, are written with mode 0600, and are refused when group- or
//! world-readable.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use bincode::{Decode, Encode};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use libp2p_identity::PeerId;
use zeroize::Zeroize as _;

/// Protobuf prefix of an ed25519 `PublicKey` message: field 1 (KeyType) = 1 (Ed25519),
/// field 2 (Data) with length 32. The PeerId is the identity multihash of prefix || key.
const PEER_ID_PROTOBUF_PREFIX: [u8; 4] = [0x08, 0x01, 0x12, 0x20];

/// First line of a key file; names the format so a future format can be told apart.
pub const KEY_FILE_HEADER: &str = "rpcmesh-ed25519-secret-v1";

/// A daemon's secret key. Never printed: `Debug` shows only the public key.
#[derive(Clone)]
pub struct Identity {
    signing: SigningKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("public", &self.public_key()).finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh key from the operating system's randomness.
    ///
    /// # Panics
    /// If the operating system cannot provide randomness.
    pub fn generate() -> Self {
        let mut secret = [0u8; 32];
        // Without OS randomness no safe key can exist; there is nothing sensible to fall back to.
        getrandom::fill(&mut secret).expect("the operating system's random number generator failed");
        let id = Self::from_secret_bytes(secret);
        secret.zeroize();
        id
    }

    /// The identity with this 32-byte ed25519 secret (seed).
    pub fn from_secret_bytes(secret: [u8; 32]) -> Self {
        Self { signing: SigningKey::from_bytes(&secret) }
    }

    /// The 32-byte secret. Handle with care: this is the whole identity.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    /// The libp2p PeerId of this identity.
    pub fn peer_id(&self) -> PeerId {
        self.public_key().to_peer_id()
    }

    /// The same key as a libp2p keypair, for building the swarm.
    pub fn to_libp2p_keypair(&self) -> libp2p_identity::Keypair {
        let mut secret = self.secret_bytes();
        // `ed25519_from_bytes` zeroizes its input; it only fails on a wrong length, and ours is 32.
        match libp2p_identity::Keypair::ed25519_from_bytes(&mut secret) {
            Ok(kp) => kp,
            Err(_) => unreachable!("a 32-byte ed25519 secret is always accepted"),
        }
    }

    /// Signs `message` (already prefixed with its domain tag by the caller).
    pub fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// Loads an identity from a key file, refusing files readable by group or others.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let path_buf = path.to_path_buf();
        check_permissions(path)?;
        let mut text =
            std::fs::read_to_string(path).map_err(|source| KeyFileError::Io { path: path_buf.clone(), source })?;
        let parsed = parse_key_file(&text).map_err(|reason| KeyFileError::Malformed { path: path_buf, reason });
        text.zeroize();
        parsed
    }

    /// Writes this identity to `path` with mode 0600. Fails if the file exists and `overwrite`
    /// is false, so an identity is never replaced by accident.
    pub fn save(&self, path: &Path, overwrite: bool) -> Result<(), KeyFileError> {
        let path_buf = path.to_path_buf();
        if path.exists() && !overwrite {
            return Err(KeyFileError::Exists(path_buf));
        }
        let io = |source| KeyFileError::Io { path: path_buf.clone(), source };
        // Write a sibling temp file with 0600 from creation, fsync, then rename: a crash leaves
        // either the old key or the new one, never a torn or briefly world-readable file.
        let tmp = path.with_extension("key.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut file = opts.open(&tmp).map_err(io)?;
        let mut contents = format!("{KEY_FILE_HEADER}\n{}\n", hex::encode(self.secret_bytes()));
        let written = file.write_all(contents.as_bytes()).and_then(|_| file.sync_all());
        contents.zeroize();
        written.map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }
}

fn parse_key_file(text: &str) -> Result<Identity, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    match lines.next() {
        Some(KEY_FILE_HEADER) => {}
        Some(other) => return Err(format!("expected first line {KEY_FILE_HEADER:?}, found {:?}", truncate(other))),
        None => return Err("the file is empty".into()),
    }
    let hex_line = lines.next().ok_or("missing the secret line")?;
    if lines.next().is_some() {
        return Err("unexpected lines after the secret".into());
    }
    let mut secret = [0u8; 32];
    hex::decode_to_slice(hex_line, &mut secret).map_err(|_| "the secret is not 64 hex characters".to_string())?;
    let id = Identity::from_secret_bytes(secret);
    secret.zeroize();
    Ok(id)
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), KeyFileError> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(|source| KeyFileError::Io { path: path.to_path_buf(), source })?;
    if meta.is_dir() {
        let source = std::io::Error::other("is a directory, not a key file (set identity.key_file to a file)");
        return Err(KeyFileError::Io { path: path.to_path_buf(), source });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions { path: path.to_path_buf(), mode });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path) -> Result<(), KeyFileError> {
    Ok(())
}

/// Why a key file could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is readable by group or others.
    #[error(
        "key file {path} has mode {mode:04o}, readable by other users; run `chmod 600 {path}` (and consider the key compromised if others could read it)"
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The content is not a key file.
    #[error("key file {path} is not an rpcmesh key file: {reason}")]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Refused to overwrite.
    #[error("key file {0} already exists; refusing to replace an identity (use --force to overwrite it)")]
    Exists(PathBuf),
}

/// An ed25519 public key: the stable name of a daemon (and of a federation root).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub struct PublicKey(pub [u8; 32]);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl PublicKey {
    /// Lower-case hex of the 32 bytes.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self, PeerIdError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out).map_err(|_| PeerIdError::BadHex)?;
        Ok(Self(out))
    }

    /// The libp2p PeerId for this key (identity multihash of the protobuf-encoded key).
    ///
    /// Total on all 32-byte strings: the PeerId is built from the bytes alone, so a key that is
    /// not a valid curve point still has a stable name (it just never verifies a signature).
    pub fn to_peer_id(&self) -> PeerId {
        let mut mh = [0u8; 2 + PEER_ID_PROTOBUF_PREFIX.len() + 32];
        mh[0] = 0x00; // multihash code: identity
        mh[1] = (PEER_ID_PROTOBUF_PREFIX.len() + 32) as u8; // digest length
        mh[2..6].copy_from_slice(&PEER_ID_PROTOBUF_PREFIX);
        mh[6..].copy_from_slice(&self.0);
        match PeerId::from_bytes(&mh) {
            Ok(peer) => peer,
            Err(_) => unreachable!("an identity multihash of 36 bytes is a valid PeerId"),
        }
    }

    /// Recovers the public key from an ed25519 PeerId.
    pub fn from_peer_id(peer: &PeerId) -> Result<Self, PeerIdError> {
        let mh = peer.as_ref();
        // Code 0x00 is the identity multihash: the digest is the protobuf-encoded public key.
        if mh.code() != 0x00 {
            return Err(PeerIdError::NotEd25519);
        }
        let pk = libp2p_identity::PublicKey::try_decode_protobuf(mh.digest()).map_err(|_| PeerIdError::NotEd25519)?;
        let ed = pk.try_into_ed25519().map_err(|_| PeerIdError::NotEd25519)?;
        let key = Self(ed.to_bytes());
        // Protobuf allows several encodings of one key; only the canonical PeerId is accepted,
        // so one key has exactly one PeerId string.
        if &key.to_peer_id() != peer {
            return Err(PeerIdError::NotEd25519);
        }
        Ok(key)
    }

    /// Parses either a PeerId (base58, `12D3KooW…`) or 64 hex characters.
    pub fn parse(s: &str) -> Result<Self, PeerIdError> {
        let s = s.trim();
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Self::from_hex(s);
        }
        let peer: PeerId = s.parse().map_err(|_| PeerIdError::BadPeerId(truncate(s)))?;
        Self::from_peer_id(&peer)
    }

    /// The dalek verifying key, if these bytes are a valid curve point.
    pub fn verifying_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_bytes(&self.0).ok()
    }
}

/// Why a PeerId or public key string could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerIdError {
    /// Not 64 hex characters.
    #[error("expected 64 hex characters")]
    BadHex,
    /// Not a parsable PeerId.
    #[error("{0:?} is neither a PeerId nor a 64-character hex public key")]
    BadPeerId(String),
    /// A PeerId, but not of an inline ed25519 key.
    #[error("the PeerId is not of an ed25519 key; rpcmesh identities are ed25519")]
    NotEd25519,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_round_trips_to_public_key() {
        let id = Identity::generate();
        let peer = id.peer_id();
        assert_eq!(PublicKey::from_peer_id(&peer).unwrap(), id.public_key());
        assert_eq!(PublicKey::parse(&peer.to_string()).unwrap(), id.public_key());
        assert_eq!(PublicKey::parse(&id.public_key().to_hex()).unwrap(), id.public_key());
        assert_eq!(id.to_libp2p_keypair().public().to_peer_id(), peer);
    }

    #[test]
    fn key_file_round_trip_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        let id = Identity::generate();
        id.save(&path, false).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(Identity::load(&path).unwrap().public_key(), id.public_key());
        assert!(matches!(Identity::generate().save(&path, false), Err(KeyFileError::Exists(_))));
        let other = Identity::generate();
        other.save(&path, true).unwrap();
        assert_eq!(Identity::load(&path).unwrap().public_key(), other.public_key());
    }

    #[cfg(unix)]
    #[test]
    fn refuses_group_or_world_readable_key() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        Identity::generate().save(&path, false).unwrap();
        for mode in [0o640, 0o604, 0o644] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = Identity::load(&path).unwrap_err();
            assert!(matches!(err, KeyFileError::Permissions { .. }), "{err}");
            assert!(err.to_string().contains("chmod 600"));
        }
    }

    #[test]
    fn malformed_key_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        for body in ["", "hello\n", "rpcmesh-ed25519-secret-v1\nzz\n", "rpcmesh-ed25519-secret-v1\n"] {
            std::fs::write(&path, body).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
            assert!(matches!(Identity::load(&path), Err(KeyFileError::Malformed { .. })), "{body:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let id = Identity::from_secret_bytes([7u8; 32]);
        let dbg = format!("{id:?}");
        assert!(!dbg.contains(&hex::encode([7u8; 32])));
    }
}
