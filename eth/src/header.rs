//! Block headers: recompute `hash` from the header fields of a block answer.
//!
//! The hash of a block is keccak256 of the RLP list of its header fields. Forks append fields
//! to that list: London `baseFeePerGas`, Shanghai `withdrawalsRoot`, Cancun `blobGasUsed`,
//! `excessBlobGas`, `parentBeaconBlockRoot`, Prague `requestsHash`, and (drafts, already in
//! alloy) Amsterdam `blockAccessListHash` and `slotNumber`. A fork field is present exactly from
//! its fork on, so the present ones must form a prefix of that order; an answer with a gap (say
//! `requestsHash` without `parentBeaconBlockRoot`) is malformed.
//!
//! Members outside the header (`totalDifficulty`, `size`) are not covered by the hash and are not
//! verified; the body members (`transactions`, `withdrawals`, `uncles`) are checked by
//! [`crate::block`].

use alloy_consensus::Header;
use alloy_primitives::{Address, B256, Bloom, Bytes};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::EthError;
use crate::error::BlockId;
use crate::json::{self, field, parse_result};

/// A header whose `hash` was recomputed from its fields.
///
/// Only this crate builds one (from an answer whose hash checked out), so a function that takes a
/// `&VerifiedHeader` knows its roots are bound to its hash. Whether the hash is the one the caller
/// trusts is the caller's question: see [`VerifiedHeader::expect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedHeader {
    hash: B256,
    header: Header,
}

impl VerifiedHeader {
    /// The block hash (keccak256 of the header's RLP).
    pub fn hash(&self) -> B256 {
        self.hash
    }
    /// The block number.
    pub fn number(&self) -> u64 {
        self.header.number
    }
    /// The parent block's hash.
    pub fn parent_hash(&self) -> B256 {
        self.header.parent_hash
    }
    /// The state trie root after this block (anchor for `eth_getProof`).
    pub fn state_root(&self) -> B256 {
        self.header.state_root
    }
    /// The root of the block's transactions trie.
    pub fn transactions_root(&self) -> B256 {
        self.header.transactions_root
    }
    /// The root of the block's receipts trie.
    pub fn receipts_root(&self) -> B256 {
        self.header.receipts_root
    }
    /// The union of the blooms of the block's receipts.
    pub fn logs_bloom(&self) -> &Bloom {
        &self.header.logs_bloom
    }
    /// Seconds since the Unix epoch.
    pub fn timestamp(&self) -> u64 {
        self.header.timestamp
    }
    /// The block's fee recipient (`miner`).
    pub fn beneficiary(&self) -> Address {
        self.header.beneficiary
    }
    /// Gas used by the block's transactions.
    pub fn gas_used(&self) -> u64 {
        self.header.gas_used
    }
    /// The block's gas limit.
    pub fn gas_limit(&self) -> u64 {
        self.header.gas_limit
    }
    /// EIP-1559 base fee, from London on.
    pub fn base_fee_per_gas(&self) -> Option<u64> {
        self.header.base_fee_per_gas
    }
    /// The root of the block's withdrawals, from Shanghai on.
    pub fn withdrawals_root(&self) -> Option<B256> {
        self.header.withdrawals_root
    }
    /// Every header field, as alloy's consensus type.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Checks that this is the block the caller asked for.
    pub fn expect(&self, asked: BlockId) -> Result<(), EthError> {
        let matches = match asked {
            BlockId::Number(n) => n == self.number(),
            BlockId::Hash(h) => h == self.hash,
        };
        if matches {
            Ok(())
        } else {
            Err(EthError::UnexpectedBlock { expected: asked, number: self.number(), hash: self.hash })
        }
    }
}

/// The members of a block answer (`eth_getBlockBy*`, `eth_getHeaderBy*`, `newHeads`).
///
/// Borrowed strings: the hex is parsed strictly afterwards with the member name in the error.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RpcBlock<'a> {
    #[serde(borrow)]
    pub hash: Option<&'a str>,
    pub parent_hash: &'a str,
    pub sha3_uncles: &'a str,
    #[serde(borrow)]
    pub miner: Option<&'a str>,
    pub state_root: &'a str,
    pub transactions_root: &'a str,
    pub receipts_root: &'a str,
    pub logs_bloom: &'a str,
    pub difficulty: &'a str,
    #[serde(borrow)]
    pub number: Option<&'a str>,
    pub gas_limit: &'a str,
    pub gas_used: &'a str,
    pub timestamp: &'a str,
    pub extra_data: &'a str,
    #[serde(borrow)]
    pub mix_hash: Option<&'a str>,
    #[serde(borrow)]
    pub nonce: Option<&'a str>,
    #[serde(borrow)]
    pub base_fee_per_gas: Option<&'a str>,
    #[serde(borrow)]
    pub withdrawals_root: Option<&'a str>,
    #[serde(borrow)]
    pub blob_gas_used: Option<&'a str>,
    #[serde(borrow)]
    pub excess_blob_gas: Option<&'a str>,
    #[serde(borrow)]
    pub parent_beacon_block_root: Option<&'a str>,
    #[serde(borrow)]
    pub requests_hash: Option<&'a str>,
    #[serde(borrow)]
    pub block_access_list_hash: Option<&'a str>,
    #[serde(borrow)]
    pub slot_number: Option<&'a str>,
    #[serde(borrow)]
    pub transactions: Option<&'a RawValue>,
    #[serde(borrow)]
    pub uncles: Option<&'a RawValue>,
    #[serde(borrow)]
    pub withdrawals: Option<&'a RawValue>,
}

/// The fork fields in the order they are appended to the header's RLP list.
const FORK_FIELDS: [&str; 8] = [
    "baseFeePerGas",
    "withdrawalsRoot",
    "blobGasUsed",
    "excessBlobGas",
    "parentBeaconBlockRoot",
    "requestsHash",
    "blockAccessListHash",
    "slotNumber",
];

fn opt<T>(name: &str, value: Option<&str>, parse: impl Fn(&str) -> Result<T, String>) -> Result<Option<T>, EthError> {
    value.map(|s| field(name, parse(s))).transpose()
}

fn hash32(s: &str) -> Result<B256, String> {
    json::fixed::<32>(s).map(B256::new)
}

impl<'a> RpcBlock<'a> {
    /// Parses the header members and checks that they hash to the claimed `hash`.
    pub(crate) fn verify_header(&self) -> Result<VerifiedHeader, EthError> {
        let missing =
            |name: &str| EthError::malformed(format!("missing `{name}` (a pending block cannot be verified)"));
        let claimed = field("hash", hash32(self.hash.ok_or_else(|| missing("hash"))?))?;
        let present = [
            self.base_fee_per_gas.is_some(),
            self.withdrawals_root.is_some(),
            self.blob_gas_used.is_some(),
            self.excess_blob_gas.is_some(),
            self.parent_beacon_block_root.is_some(),
            self.requests_hash.is_some(),
            self.block_access_list_hash.is_some(),
            self.slot_number.is_some(),
        ];
        if let Some(gap) = present.windows(2).position(|w| !w[0] && w[1]) {
            return Err(EthError::malformed(format!(
                "`{}` is present but the earlier fork field `{}` is not",
                FORK_FIELDS[gap + 1],
                FORK_FIELDS[gap]
            )));
        }
        let header = Header {
            parent_hash: field("parentHash", hash32(self.parent_hash))?,
            ommers_hash: field("sha3Uncles", hash32(self.sha3_uncles))?,
            beneficiary: field(
                "miner",
                json::fixed::<20>(self.miner.ok_or_else(|| missing("miner"))?).map(Address::new),
            )?,
            state_root: field("stateRoot", hash32(self.state_root))?,
            transactions_root: field("transactionsRoot", hash32(self.transactions_root))?,
            receipts_root: field("receiptsRoot", hash32(self.receipts_root))?,
            logs_bloom: field("logsBloom", json::fixed::<256>(self.logs_bloom).map(Bloom::new))?,
            difficulty: field("difficulty", json::quantity_u256(self.difficulty))?,
            number: field("number", json::quantity_u64(self.number.ok_or_else(|| missing("number"))?))?,
            gas_limit: field("gasLimit", json::quantity_u64(self.gas_limit))?,
            gas_used: field("gasUsed", json::quantity_u64(self.gas_used))?,
            timestamp: field("timestamp", json::quantity_u64(self.timestamp))?,
            extra_data: field("extraData", json::data(self.extra_data))?,
            mix_hash: field("mixHash", hash32(self.mix_hash.ok_or_else(|| missing("mixHash"))?))?,
            nonce: field("nonce", json::fixed::<8>(self.nonce.ok_or_else(|| missing("nonce"))?).map(Into::into))?,
            base_fee_per_gas: opt("baseFeePerGas", self.base_fee_per_gas, json::quantity_u64)?,
            withdrawals_root: opt("withdrawalsRoot", self.withdrawals_root, hash32)?,
            blob_gas_used: opt("blobGasUsed", self.blob_gas_used, json::quantity_u64)?,
            excess_blob_gas: opt("excessBlobGas", self.excess_blob_gas, json::quantity_u64)?,
            parent_beacon_block_root: opt("parentBeaconBlockRoot", self.parent_beacon_block_root, hash32)?,
            requests_hash: opt("requestsHash", self.requests_hash, hash32)?,
            block_access_list_hash: opt("blockAccessListHash", self.block_access_list_hash, hash32)?,
            slot_number: opt("slotNumber", self.slot_number, json::quantity_u64)?,
        };
        let computed = header.hash_slow();
        if computed != claimed {
            return Err(EthError::HeaderHashMismatch { claimed, computed });
        }
        Ok(VerifiedHeader { hash: computed, header })
    }
}

/// Verifies the header of a block answer: recomputes its hash from the header fields and
/// requires it to equal the claimed `hash`. Accepts `eth_getBlockBy*` answers (hydrated or not;
/// the body is ignored here, see [`crate::verify_block`]) and bare headers.
pub fn verify_header(result: &[u8]) -> Result<VerifiedHeader, EthError> {
    parse_result::<RpcBlock<'_>>("block", result)?.verify_header()
}

/// Like [`verify_header`], and the block must be the one asked for.
pub fn verify_header_of(result: &[u8], asked: BlockId) -> Result<VerifiedHeader, EthError> {
    let header = verify_header(result)?;
    header.expect(asked)?;
    Ok(header)
}

/// Bytes of a header, for callers that need the RLP (e.g. to store or forward it).
pub fn header_rlp(header: &VerifiedHeader) -> Bytes {
    alloy_rlp::encode(header.header()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// Mainnet block 1 (2015), from the original chain: a pre-London header.
    const MAINNET_1: &str = r#"{
        "hash": "0x88e96d4537bea4d9c05d12549907b32561d3bf31f45aae734cdc119f13406cb6",
        "parentHash": "0xd4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3",
        "sha3Uncles": "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347",
        "miner": "0x05a56e2d52c817161883f50c441c3228cfe54d9f",
        "stateRoot": "0xd67e4d450343046425ae4271474353857ab860dbc0a1dde64b41b5cd3a532bf3",
        "transactionsRoot": "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421",
        "receiptsRoot": "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421",
        "logsBloom": "0x00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "difficulty": "0x3ff800000",
        "number": "0x1",
        "gasLimit": "0x1388",
        "gasUsed": "0x0",
        "timestamp": "0x55ba4224",
        "extraData": "0x476574682f76312e302e302f6c696e75782f676f312e342e32",
        "mixHash": "0x969b900de27b6ac6a67742365dd65f55a0526c41fd18e1b16f1a1215c2e66f59",
        "nonce": "0x539bd4979fef1ec4",
        "totalDifficulty": "0x7ff800000",
        "size": "0x219",
        "uncles": [],
        "transactions": []
    }"#;

    #[test]
    fn mainnet_block_1_verifies() {
        let header = verify_header(MAINNET_1.as_bytes()).expect("mainnet block 1");
        assert_eq!(header.number(), 1);
        assert!(header.base_fee_per_gas().is_none());
        header.expect(BlockId::Number(1)).unwrap();
        assert_eq!(header.expect(BlockId::Number(2)).unwrap_err().kind(), "unexpected_block");
        assert_eq!(header_rlp(&header).len(), 0x219 - 3 - 2); // block size minus the empty body lists
    }

    fn with(member: &str, value: Value) -> Vec<u8> {
        let mut v: Value = serde_json::from_str(MAINNET_1).unwrap();
        if value.is_null() {
            v.as_object_mut().unwrap().remove(member);
        } else {
            v[member] = value;
        }
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn any_field_change_breaks_the_hash() {
        for (member, value) in [
            ("parentHash", json!("0xd4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa4")),
            ("stateRoot", json!("0x0000000000000000000000000000000000000000000000000000000000000000")),
            ("miner", json!("0x05a56e2d52c817161883f50c441c3228cfe54d9e")),
            ("difficulty", json!("0x3ff800001")),
            ("number", json!("0x2")),
            ("gasLimit", json!("0x1389")),
            ("timestamp", json!("0x55ba4225")),
            ("extraData", json!("0x")),
            ("nonce", json!("0x539bd4979fef1ec5")),
            // adding a fork field changes the RLP list
            ("baseFeePerGas", json!("0x7")),
        ] {
            let err = verify_header(&with(member, value)).unwrap_err();
            assert_eq!(err.kind(), "header_hash", "{member}: {err}");
        }
    }

    #[test]
    fn malformed_members_are_named() {
        for (member, value) in [
            ("number", json!("1")),
            ("number", json!("0x01")),
            ("number", json!(1)),
            ("gasLimit", json!("0x1_388")),
            ("extraData", json!("0x476")),
            ("stateRoot", json!("0xd67e")),
            ("hash", Value::Null),
            ("mixHash", Value::Null),
        ] {
            let err = verify_header(&with(member, value.clone())).unwrap_err();
            assert_eq!(err.kind(), "malformed", "{member}={value}: {err}");
            // Hex errors name the member; a JSON type error (a number for a string) names the position.
            if value.is_string() || value.is_null() {
                assert!(err.to_string().contains(member), "{member}: {err}");
            }
        }
        assert_eq!(verify_header(b"null"), Err(EthError::NotFound));
        assert_eq!(verify_header(b"[]").unwrap_err().kind(), "malformed");
    }

    #[test]
    fn fork_fields_must_form_a_prefix() {
        let gap = with("withdrawalsRoot", json!("0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"));
        let err = verify_header(&gap).unwrap_err();
        assert!(err.to_string().contains("baseFeePerGas"), "{err}");
    }

    #[test]
    fn duplicate_members_are_rejected() {
        let dup = MAINNET_1.replacen("\"number\": \"0x1\",", "\"number\": \"0x1\", \"number\": \"0x2\",", 1);
        assert_eq!(verify_header(dup.as_bytes()).unwrap_err().kind(), "malformed");
    }
}
