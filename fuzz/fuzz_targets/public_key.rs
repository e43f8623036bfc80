//! `PublicKey::parse` on arbitrary UTF-8 (hex or base58 PeerId), plus the key ↔ PeerId
//! conversions on arbitrary 32-byte strings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpcmesh_protocol::PublicKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = PublicKey::from_hex(s);
        if let Ok(pk) = PublicKey::parse(s) {
            // Whatever parses has a hex form that parses back to it.
            assert_eq!(PublicKey::parse(&pk.to_hex()), Ok(pk));
            // A key reached through a PeerId is a valid curve point, so its canonical PeerId
            // parses back to it too.
            let hex_path = s.trim().len() == 64 && s.trim().bytes().all(|b| b.is_ascii_hexdigit());
            if !hex_path {
                assert!(pk.verifying_key().is_some(), "PeerId path produced a non-point key");
                assert_eq!(PublicKey::parse(&pk.to_peer_id().to_string()), Ok(pk));
            }
        }
    }
    if let Some(raw) = data.get(..32) {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(raw);
        let pk = PublicKey(bytes);
        // `to_peer_id` is total; `from_peer_id` succeeds exactly for valid curve points
        // (libp2p decodes the key), and then gives the same bytes back.
        let back = PublicKey::from_peer_id(&pk.to_peer_id());
        assert_eq!(back.is_ok(), pk.verifying_key().is_some(), "from_peer_id and verifying_key disagree");
        if let Ok(back) = back {
            assert_eq!(back, pk);
        }
    }
});
