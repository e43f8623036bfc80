//! `Signed<Evidence>`: decode, canonical re-encode, verify, validate (see `src/lib.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpcmesh_protocol::messages::Evidence;

fuzz_target!(|data: &[u8]| {
    rpcmesh_protocol_fuzz::check_signed::<Evidence>(data);
});
