//! Shared checks for the fuzz targets in `fuzz_targets/`.
//!
//! Every target feeds arbitrary bytes to one decoder and asserts properties that must hold for
//! *every* input, not just "does not panic":
//!
//! - canonical encoding is a bijection: whatever decodes re-encodes to exactly the input bytes;
//! - `decode_and_validate` / `decode_relay` agree with "decode, then validate" step by step;
//! - a signature that passes `verify` (strict) also passes `verify_batch` on its own;
//! - a validated message's signature verifies;
//! - error `Display` and `verdict()` never panic.
//!
//! Each input is validated against two contexts: the one the golden vectors were made for
//! (network `rpcmesh-test`, clock just after `T0`), so seeds from `protocol/tests/vectors` pass
//! the header rules and reach the signature check, and one derived from the decoded header itself
//! (its own network id and issue time), so mutated timestamps and network ids still reach the
//! body rules.
#![forbid(unsafe_code)]

use rpcmesh_protocol::encoding::{self, DecodeError};
use rpcmesh_protocol::messages::{MessageHeader, RelayRequest, RelayResponse};
use rpcmesh_protocol::signed::{Signed, SignedBody, verify_batch};
use rpcmesh_protocol::validate::{self, Validate, ValidationContext, ValidationError};

/// Network id of the golden vectors (`protocol/tests/it/samples.rs`).
pub const VECTOR_NET: &str = "rpcmesh-test";
/// Issue time of the golden vectors, Unix ms.
pub const VECTOR_T0: u64 = 1_760_000_000_000;

/// The validation contexts an input is checked against.
pub fn contexts(header: Option<&MessageHeader>) -> Vec<ValidationContext> {
    let mut out = vec![ValidationContext::new(VECTOR_NET, VECTOR_T0 + 1_000)];
    if let Some(h) = header {
        out.push(ValidationContext::new(h.network_id.clone(), h.issued_at_ms));
    }
    out
}

fn touch_error(e: &ValidationError) {
    let _ = e.verdict();
    let _ = e.to_string();
}

/// Decodes `data` as a `Signed<T>` and checks every property listed in the crate docs.
pub fn check_signed<T>(data: &[u8])
where
    T: SignedBody + Validate + PartialEq + std::fmt::Debug,
{
    let decoded: Result<Signed<T>, DecodeError> = Signed::<T>::from_bytes(data);
    if let Ok(msg) = &decoded {
        assert_eq!(msg.to_bytes(), data, "canonical re-encoding differs from the input");
        if msg.verify().is_ok() {
            assert!(verify_batch(std::slice::from_ref(msg)).is_ok(), "verify_strict passed but verify_batch failed");
        }
    }
    let header = decoded.as_ref().ok().map(|m| m.body.header());
    for ctx in contexts(header) {
        let whole = validate::decode_and_validate::<T>(data, &ctx);
        if let Err(e) = &whole {
            touch_error(e);
        }
        if data.len() > T::max_bytes(&ctx.limits) {
            assert!(matches!(whole, Err(ValidationError::Oversized { .. })));
            continue;
        }
        match &decoded {
            Err(e) => assert_eq!(whole, Err(ValidationError::Decode(e.clone()))),
            Ok(msg) => {
                let split = validate::validate_signed(msg.clone(), &ctx);
                assert_eq!(whole, split, "decode_and_validate disagrees with from_bytes + validate_signed");
                if let Ok(v) = &whole {
                    assert!(v.signed().verify().is_ok(), "validated message does not verify");
                    assert_eq!(v.signed(), msg);
                }
            }
        }
    }
}

/// Decodes `data` as a [`RelayRequest`] and checks the relay properties.
pub fn check_relay_request(data: &[u8]) {
    let decoded = encoding::from_bytes::<RelayRequest>(data);
    if let Ok(m) = &decoded {
        assert_eq!(encoding::to_bytes(m), data, "canonical re-encoding differs from the input");
    }
    for ctx in contexts(decoded.as_ref().ok().map(|m| &m.header)) {
        let r = validate::decode_relay::<RelayRequest>(data, &ctx);
        check_relay_result(data, &decoded, r, RelayRequest::max_bytes(&ctx.limits));
    }
}

/// Decodes `data` as a [`RelayResponse`] and checks the relay properties.
pub fn check_relay_response(data: &[u8]) {
    let decoded = encoding::from_bytes::<RelayResponse>(data);
    if let Ok(m) = &decoded {
        assert_eq!(encoding::to_bytes(m), data, "canonical re-encoding differs from the input");
        if let Some(receipt) = &m.receipt {
            // The embedded receipt is itself canonical: its own bytes decode to it.
            let rb = receipt.to_bytes();
            assert_eq!(Signed::from_bytes(&rb).as_ref(), Ok(receipt));
        }
    }
    for ctx in contexts(decoded.as_ref().ok().map(|m| &m.header)) {
        let r = validate::decode_relay::<RelayResponse>(data, &ctx);
        if let Ok(resp) = &r
            && let Some(receipt) = &resp.receipt
        {
            assert!(receipt.verify().is_ok(), "accepted response carries a receipt that does not verify");
            assert_eq!(receipt.body.header.seq, resp.header.seq);
        }
        check_relay_result(data, &decoded, r, RelayResponse::max_bytes(&ctx.limits));
    }
}

fn check_relay_result<T: PartialEq + std::fmt::Debug>(
    data: &[u8],
    decoded: &Result<T, DecodeError>,
    r: Result<T, ValidationError>,
    limit: usize,
) {
    if let Err(e) = &r {
        touch_error(e);
    }
    if data.len() > limit {
        assert!(matches!(r, Err(ValidationError::Oversized { .. })));
        return;
    }
    match (decoded, &r) {
        (Err(e), _) => assert_eq!(r, Err(ValidationError::Decode(e.clone()))),
        (Ok(m), Ok(v)) => assert_eq!(m, v),
        (Ok(_), Err(e)) => assert!(!matches!(e, ValidationError::Decode(_) | ValidationError::Oversized { .. })),
    }
}
