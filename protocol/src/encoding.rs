//! The canonical byte form of every message.
//!
//! bincode 2.0.1 with **fixed-width little-endian integers** and a hard size limit. Fixed width
//! (rather than bincode's default varints) makes the encoding a bijection on valid values: there is
//! exactly one byte string for each value, so re-encoding a decoded body reproduces the signed
//! bytes, and flipping any byte of a message either fails decoding or changes the value.
//! All encoding goes through this module so that a future switch of format is one file.

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};
use bincode::{Decode, Encode};

/// Upper bound on any encoded protocol message, in bytes. Relay bodies are bounded separately
/// and more tightly by the node's configuration; this only stops absurd allocations.
pub const MAX_ENCODED_BYTES: usize = 64 * 1024 * 1024;

type Config = Configuration<LittleEndian, Fixint, Limit<MAX_ENCODED_BYTES>>;

const CONFIG: Config =
    bincode::config::standard().with_little_endian().with_fixed_int_encoding().with_limit::<MAX_ENCODED_BYTES>();

/// Why a byte string is not a valid encoding.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes do not decode as the expected type.
    #[error("malformed encoding: {0}")]
    Malformed(String),
    /// A valid value was followed by extra bytes.
    #[error("{0} trailing bytes after the encoded value")]
    TrailingBytes(usize),
}

/// Encodes `value` in the canonical form.
pub fn to_bytes<T: Encode>(value: &T) -> Vec<u8> {
    // Encoding into a Vec cannot fail for our types except by exceeding the limit, which
    // constructors and validation prevent; an empty result would then fail every signature.
    bincode::encode_to_vec(value, CONFIG).unwrap_or_default()
}

/// Appends the canonical form of `value` to `out`.
pub fn encode_into<T: Encode>(value: &T, out: &mut Vec<u8>) {
    // Writing into a Vec has no I/O failure mode; see `to_bytes`.
    let _ = bincode::encode_into_std_write(value, out, CONFIG);
}

/// Decodes one `T` from the start of `bytes` and ignores the rest: a message's leading
/// [`crate::MessageHeader`] without decoding (and copying) its body. Not for validation, which
/// must see the whole message ([`from_bytes`]).
pub fn from_prefix<T: Decode<()>>(bytes: &[u8]) -> Result<T, DecodeError> {
    bincode::decode_from_slice::<T, _>(bytes, CONFIG)
        .map(|(value, _)| value)
        .map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// Decodes exactly one `T` from `bytes`, rejecting trailing data.
pub fn from_bytes<T: Decode<()>>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, used) =
        bincode::decode_from_slice::<T, _>(bytes, CONFIG).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}
