//! `RelayRequest` (unsigned): decode, canonical re-encode, `decode_relay` (see `src/lib.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rpcmesh_protocol_fuzz::check_relay_request(data);
});
