//! Transactions: recompute the hash from the signed fields and recover the sender.
//!
//! Every type Ethereum mainnet carries is rebuilt as alloy's consensus type: legacy (with and
//! without EIP-155 replay protection), EIP-2930, EIP-1559, EIP-4844 (the transaction without its
//! sidecar: `blobs`, `commitments` and `proofs` members are ignored, they are not part of the
//! hash) and EIP-7702. The hash is keccak256 of the EIP-2718 encoding; the sender is recovered
//! from `(r, s, yParity)` over the signing hash (high `s` accepted, as for pre-Homestead
//! transactions that are part of the chain).
//!
//! Not covered by the hash: `from` (checked by recovery), `blockHash`, `blockNumber`,
//! `transactionIndex` (checked against a block by [`crate::verify_block`] or against what was
//! asked by [`VerifiedTransaction::expect_position`]) and, for fee-market types, `gasPrice`
//! (the effective price, checked by [`crate::verify_block`] from the block's base fee).

use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::{
    Signed, TxEip1559, TxEip2930, TxEip4844, TxEip4844Variant, TxEip7702, TxEnvelope, TxLegacy,
    transaction::SignableTransaction,
};
use alloy_eips::eip2930::{AccessList, AccessListItem};
use alloy_eips::eip7702::{Authorization, SignedAuthorization};
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256};
use serde::Deserialize;

use crate::EthError;
use crate::error::BlockId;
use crate::json::{self, field, parse_result, required};

/// Where a mined transaction sits (`blockHash`, `blockNumber`, `transactionIndex`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TxPlacement {
    /// The including block's hash.
    pub block_hash: B256,
    /// The including block's number.
    pub block_number: u64,
    /// Position in the block.
    pub index: u64,
}

/// A transaction whose hash was recomputed from its signed fields and whose sender was recovered.
///
/// This proves the transaction is well-formed and signed by `from`, not that it is in any block:
/// inclusion comes from a verified full block (see [`crate::VerifiedBlock::transaction`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTransaction {
    envelope: TxEnvelope,
    from: Address,
    placement: Option<TxPlacement>,
    claimed_gas_price: Option<u128>,
}

impl VerifiedTransaction {
    /// The transaction hash.
    pub fn hash(&self) -> B256 {
        *self.envelope.tx_hash()
    }
    /// The recovered sender.
    pub fn from(&self) -> Address {
        self.from
    }
    /// The EIP-2718 type byte (0 for legacy).
    pub fn tx_type(&self) -> u8 {
        self.envelope.tx_type() as u8
    }
    /// The recipient; `None` for a contract creation.
    pub fn to(&self) -> Option<Address> {
        alloy_consensus::Transaction::to(&self.envelope)
    }
    /// The sender's nonce.
    pub fn nonce(&self) -> u64 {
        alloy_consensus::Transaction::nonce(&self.envelope)
    }
    /// The value transferred, in wei.
    pub fn value(&self) -> U256 {
        alloy_consensus::Transaction::value(&self.envelope)
    }
    /// The calldata or init code.
    pub fn input(&self) -> &Bytes {
        alloy_consensus::Transaction::input(&self.envelope)
    }
    /// The chain id it is signed for; `None` for a pre-EIP-155 legacy transaction.
    pub fn chain_id(&self) -> Option<u64> {
        alloy_consensus::Transaction::chain_id(&self.envelope)
    }
    /// `blockHash` / `blockNumber` / `transactionIndex` as claimed; `None` while pending.
    /// Checked only by [`crate::verify_block`] and [`Self::expect_position`].
    pub fn placement(&self) -> Option<TxPlacement> {
        self.placement
    }
    /// The signed transaction as alloy's consensus type.
    pub fn envelope(&self) -> &TxEnvelope {
        &self.envelope
    }
    /// The `gasPrice` member as claimed (for fee-market types: the effective price).
    pub(crate) fn claimed_gas_price(&self) -> Option<u128> {
        self.claimed_gas_price
    }

    /// Checks that this is the transaction asked for (`eth_getTransactionByHash`).
    pub fn expect_hash(&self, asked: B256) -> Result<(), EthError> {
        if self.hash() == asked {
            Ok(())
        } else {
            Err(EthError::UnexpectedTransaction { expected: asked, got: self.hash() })
        }
    }

    /// Checks the claimed position against what was asked
    /// (`eth_getTransactionByBlockHashAndIndex` / `...ByBlockNumberAndIndex`). Whether the
    /// transaction really is there needs the block: [`crate::VerifiedBlock::transaction`].
    pub fn expect_position(&self, block: BlockId, index: u64) -> Result<(), EthError> {
        let hash = self.hash();
        let placement = self.placement.ok_or(EthError::TransactionFieldMismatch { hash, field: "blockHash" })?;
        let block_ok = match block {
            BlockId::Hash(h) => placement.block_hash == h,
            BlockId::Number(n) => placement.block_number == n,
        };
        if !block_ok {
            let field = if matches!(block, BlockId::Hash(_)) { "blockHash" } else { "blockNumber" };
            return Err(EthError::TransactionFieldMismatch { hash, field });
        }
        if placement.index != index {
            return Err(EthError::TransactionFieldMismatch { hash, field: "transactionIndex" });
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RpcAccessListItem<'a> {
    address: &'a str,
    #[serde(borrow)]
    storage_keys: Vec<&'a str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcAuthorization<'a> {
    chain_id: &'a str,
    address: &'a str,
    nonce: &'a str,
    y_parity: &'a str,
    r: &'a str,
    s: &'a str,
}

/// The members of a transaction answer; which ones are required depends on `type`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RpcTransaction<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<&'a str>,
    hash: &'a str,
    from: &'a str,
    nonce: &'a str,
    gas: &'a str,
    #[serde(borrow)]
    gas_price: Option<&'a str>,
    #[serde(borrow)]
    max_fee_per_gas: Option<&'a str>,
    #[serde(borrow)]
    max_priority_fee_per_gas: Option<&'a str>,
    #[serde(borrow)]
    max_fee_per_blob_gas: Option<&'a str>,
    #[serde(borrow)]
    to: Option<&'a str>,
    value: &'a str,
    input: &'a str,
    #[serde(borrow)]
    chain_id: Option<&'a str>,
    #[serde(borrow)]
    access_list: Option<Vec<RpcAccessListItem<'a>>>,
    #[serde(borrow)]
    blob_versioned_hashes: Option<Vec<&'a str>>,
    #[serde(borrow)]
    authorization_list: Option<Vec<RpcAuthorization<'a>>>,
    #[serde(borrow)]
    v: Option<&'a str>,
    r: &'a str,
    s: &'a str,
    #[serde(borrow)]
    y_parity: Option<&'a str>,
    #[serde(borrow)]
    block_hash: Option<&'a str>,
    #[serde(borrow)]
    block_number: Option<&'a str>,
    #[serde(borrow)]
    transaction_index: Option<&'a str>,
}

fn hash32(s: &str) -> Result<B256, String> {
    json::fixed::<32>(s).map(B256::new)
}

fn address(s: &str) -> Result<Address, String> {
    json::fixed::<20>(s).map(Address::new)
}

fn access_list(items: Option<&[RpcAccessListItem<'_>]>) -> Result<AccessList, EthError> {
    let items = items.ok_or_else(|| EthError::malformed("missing `accessList`"))?;
    let list = items
        .iter()
        .map(|item| {
            Ok(AccessListItem {
                address: field("accessList.address", address(item.address))?,
                storage_keys: item
                    .storage_keys
                    .iter()
                    .map(|k| field("accessList.storageKeys", hash32(k)))
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect::<Result<Vec<_>, EthError>>()?;
    Ok(AccessList(list))
}

fn authorization_list(items: Option<&[RpcAuthorization<'_>]>) -> Result<Vec<SignedAuthorization>, EthError> {
    let items = items.ok_or_else(|| EthError::malformed("missing `authorizationList`"))?;
    items
        .iter()
        .map(|a| {
            let inner = Authorization {
                chain_id: field("authorizationList.chainId", json::quantity_u256(a.chain_id))?,
                address: field("authorizationList.address", address(a.address))?,
                nonce: field("authorizationList.nonce", json::quantity_u64(a.nonce))?,
            };
            let y_parity = field("authorizationList.yParity", json::quantity_u64(a.y_parity))?;
            let y_parity = u8::try_from(y_parity)
                .ok()
                .filter(|p| *p <= 1)
                .ok_or_else(|| EthError::malformed("`authorizationList.yParity` is not 0 or 1"))?;
            Ok(SignedAuthorization::new_unchecked(
                inner,
                y_parity,
                field("authorizationList.r", json::quantity_u256(a.r))?,
                field("authorizationList.s", json::quantity_u256(a.s))?,
            ))
        })
        .collect()
}

/// `yParity` of a typed transaction: from `yParity`, else from `v` (older nodes), and both must
/// agree when both are given.
fn typed_parity(tx: &RpcTransaction<'_>) -> Result<bool, EthError> {
    let y = tx.y_parity.map(|s| field("yParity", json::quantity_u64(s))).transpose()?;
    let v = tx.v.map(|s| field("v", json::quantity_u64(s))).transpose()?;
    let parity = match (y, v) {
        (Some(y), Some(v)) if y != v => return Err(EthError::malformed("`yParity` and `v` disagree")),
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => return Err(EthError::malformed("missing `yParity`")),
    };
    match parity {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(EthError::malformed(format!("`yParity` {parity} is not 0 or 1"))),
    }
}

/// Legacy `v`: 27/28 (no chain id) or `chain_id * 2 + 35/36` (EIP-155).
fn legacy_parity_and_chain(v: u64) -> Result<(bool, Option<u64>), EthError> {
    match v {
        27 | 28 => Ok((v == 28, None)),
        35.. => Ok(((v - 35) % 2 == 1, Some((v - 35) / 2))),
        _ => Err(EthError::malformed(format!("legacy `v` {v} is neither 27/28 nor EIP-155"))),
    }
}

fn call_target(to: Option<&str>) -> Result<TxKind, EthError> {
    Ok(match to {
        Some(s) => TxKind::Call(field("to", address(s))?),
        None => TxKind::Create,
    })
}

impl<'a> RpcTransaction<'a> {
    fn placement(&self) -> Result<Option<TxPlacement>, EthError> {
        match (self.block_hash, self.block_number, self.transaction_index) {
            (None, None, None) => Ok(None),
            (Some(h), Some(n), Some(i)) => Ok(Some(TxPlacement {
                block_hash: field("blockHash", hash32(h))?,
                block_number: field("blockNumber", json::quantity_u64(n))?,
                index: field("transactionIndex", json::quantity_u64(i))?,
            })),
            _ => Err(EthError::malformed(
                "`blockHash`, `blockNumber` and `transactionIndex` must be all set or all null",
            )),
        }
    }

    fn envelope(&self) -> Result<TxEnvelope, EthError> {
        let ty = match self.ty {
            Some(s) => field("type", json::quantity_u64(s))?,
            None => 0, // pre-EIP-2718 nodes omit `type`
        };
        let nonce = field("nonce", json::quantity_u64(self.nonce))?;
        let gas_limit = field("gas", json::quantity_u64(self.gas))?;
        let value = field("value", json::quantity_u256(self.value))?;
        let input = field("input", json::data(self.input))?;
        let r = field("r", json::quantity_u256(self.r))?;
        let s = field("s", json::quantity_u256(self.s))?;
        let chain_id = self.chain_id.map(|c| field("chainId", json::quantity_u64(c))).transpose()?;
        let u128_of = |name: &str, v: Option<&str>| field(name, json::quantity_u128(required(name, v)?));
        let to_address = |to: Option<&str>| field("to", address(required("to", to)?));

        Ok(match ty {
            0 => {
                let v = field("v", json::quantity_u64(required("v", self.v)?))?;
                let (parity, v_chain) = legacy_parity_and_chain(v)?;
                // Some nodes send `chainId` for unprotected (pre-EIP-155) transactions too; only
                // a `chainId` that contradicts an EIP-155 `v` is malformed.
                if v_chain.is_some() && chain_id.is_some_and(|c| Some(c) != v_chain) {
                    return Err(EthError::malformed("legacy `chainId` disagrees with `v`"));
                }
                let tx = TxLegacy {
                    chain_id: v_chain,
                    nonce,
                    gas_price: u128_of("gasPrice", self.gas_price)?,
                    gas_limit,
                    to: call_target(self.to)?,
                    value,
                    input,
                };
                TxEnvelope::Legacy(tx.into_signed(Signature::new(r, s, parity)))
            }
            1 => {
                let tx = TxEip2930 {
                    chain_id: field("chainId", chain_id.ok_or("missing".to_string()))?,
                    nonce,
                    gas_price: u128_of("gasPrice", self.gas_price)?,
                    gas_limit,
                    to: call_target(self.to)?,
                    value,
                    access_list: access_list(self.access_list.as_deref())?,
                    input,
                };
                TxEnvelope::Eip2930(tx.into_signed(Signature::new(r, s, typed_parity(self)?)))
            }
            2 => {
                let tx = TxEip1559 {
                    chain_id: field("chainId", chain_id.ok_or("missing".to_string()))?,
                    nonce,
                    gas_limit,
                    max_fee_per_gas: u128_of("maxFeePerGas", self.max_fee_per_gas)?,
                    max_priority_fee_per_gas: u128_of("maxPriorityFeePerGas", self.max_priority_fee_per_gas)?,
                    to: call_target(self.to)?,
                    value,
                    access_list: access_list(self.access_list.as_deref())?,
                    input,
                };
                TxEnvelope::Eip1559(tx.into_signed(Signature::new(r, s, typed_parity(self)?)))
            }
            3 => {
                let hashes = self
                    .blob_versioned_hashes
                    .as_deref()
                    .ok_or_else(|| EthError::malformed("missing `blobVersionedHashes`"))?;
                let tx = TxEip4844 {
                    chain_id: field("chainId", chain_id.ok_or("missing".to_string()))?,
                    nonce,
                    gas_limit,
                    max_fee_per_gas: u128_of("maxFeePerGas", self.max_fee_per_gas)?,
                    max_priority_fee_per_gas: u128_of("maxPriorityFeePerGas", self.max_priority_fee_per_gas)?,
                    to: to_address(self.to)?,
                    value,
                    access_list: access_list(self.access_list.as_deref())?,
                    blob_versioned_hashes: hashes
                        .iter()
                        .map(|h| field("blobVersionedHashes", hash32(h)))
                        .collect::<Result<_, _>>()?,
                    max_fee_per_blob_gas: u128_of("maxFeePerBlobGas", self.max_fee_per_blob_gas)?,
                    input,
                };
                let signed: Signed<TxEip4844Variant> =
                    TxEip4844Variant::TxEip4844(tx).into_signed(Signature::new(r, s, typed_parity(self)?));
                TxEnvelope::Eip4844(signed)
            }
            4 => {
                let tx = TxEip7702 {
                    chain_id: field("chainId", chain_id.ok_or("missing".to_string()))?,
                    nonce,
                    gas_limit,
                    max_fee_per_gas: u128_of("maxFeePerGas", self.max_fee_per_gas)?,
                    max_priority_fee_per_gas: u128_of("maxPriorityFeePerGas", self.max_priority_fee_per_gas)?,
                    to: to_address(self.to)?,
                    value,
                    access_list: access_list(self.access_list.as_deref())?,
                    authorization_list: authorization_list(self.authorization_list.as_deref())?,
                    input,
                };
                TxEnvelope::Eip7702(tx.into_signed(Signature::new(r, s, typed_parity(self)?)))
            }
            other => return Err(EthError::UnsupportedTransactionType(u8::try_from(other).unwrap_or(u8::MAX))),
        })
    }

    /// Rebuilds the transaction, checks its hash and its sender.
    pub(crate) fn verify(&self) -> Result<VerifiedTransaction, EthError> {
        let claimed = field("hash", hash32(self.hash))?;
        let claimed_from = field("from", address(self.from))?;
        let placement = self.placement()?;
        let claimed_gas_price = self.gas_price.map(|g| field("gasPrice", json::quantity_u128(g))).transpose()?;
        let envelope = self.envelope()?;
        let computed = *envelope.tx_hash();
        if computed != claimed {
            return Err(EthError::TransactionHashMismatch { claimed, computed });
        }
        let recovered =
            envelope.recover_signer_unchecked().map_err(|_| EthError::InvalidSignature { hash: computed })?;
        if recovered != claimed_from {
            return Err(EthError::SenderMismatch { hash: computed, claimed: claimed_from, recovered });
        }
        Ok(VerifiedTransaction { envelope, from: recovered, placement, claimed_gas_price })
    }
}

/// Verifies a transaction answer (`eth_getTransactionByHash`,
/// `eth_getTransactionByBlockHashAndIndex`, `eth_getTransactionByBlockNumberAndIndex`, or one
/// element of a hydrated block's `transactions`): the hash recomputed from the signed fields must
/// equal `hash`, and the signature must recover to `from`.
pub fn verify_transaction(result: &[u8]) -> Result<VerifiedTransaction, EthError> {
    parse_result::<RpcTransaction<'_>>("transaction", result)?.verify()
}

/// [`verify_transaction`] for `eth_getTransactionByHash`: also the hash asked for.
pub fn verify_transaction_by_hash(result: &[u8], asked: B256) -> Result<VerifiedTransaction, EthError> {
    let tx = verify_transaction(result)?;
    tx.expect_hash(asked)?;
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::crypto::secp256k1::sign_message;
    use alloy_primitives::{b256, hex};
    use serde_json::json;

    /// Signs a legacy transaction with a throwaway key, as a pre-EIP-155 or EIP-155 answer.
    fn signed_legacy_json(chain_id: Option<u64>) -> serde_json::Value {
        let key = b256!("4646464646464646464646464646464646464646464646464646464646464646");
        let tx = TxLegacy {
            chain_id,
            nonce: 9,
            gas_price: 20_000_000_000,
            gas_limit: 21_000,
            to: TxKind::Call(Address::repeat_byte(0x35)),
            value: U256::from(10u64).pow(U256::from(18)),
            input: Bytes::new(),
        };
        let sig = sign_message(key, tx.signature_hash()).unwrap();
        let from = alloy_consensus::crypto::secp256k1::recover_signer(&sig, tx.signature_hash()).unwrap();
        let signed = tx.clone().into_signed(sig);
        let v = match chain_id {
            Some(c) => c * 2 + 35 + u64::from(sig.v()),
            None => 27 + u64::from(sig.v()),
        };
        json!({
            "hash": signed.hash().to_string(), "from": from.to_string(), "nonce": "0x9",
            "gas": "0x5208", "gasPrice": "0x4a817c800", "to": "0x3535353535353535353535353535353535353535",
            "value": "0xde0b6b3a7640000", "input": "0x", "v": format!("{v:#x}"),
            "r": format!("{:#x}", sig.r()), "s": format!("{:#x}", sig.s()),
            "blockHash": null, "blockNumber": null, "transactionIndex": null,
        })
    }

    #[test]
    fn pre_and_post_eip155_legacy_verify() {
        for chain in [None, Some(1), Some(31337)] {
            let tx = verify_transaction(&serde_json::to_vec(&signed_legacy_json(chain)).unwrap()).unwrap();
            assert_eq!(tx.chain_id(), chain);
            assert_eq!(tx.tx_type(), 0);
            assert!(tx.placement().is_none());
        }
        let mut contradicting = signed_legacy_json(Some(1));
        contradicting["chainId"] = json!("0x2");
        assert_eq!(verify_transaction(&serde_json::to_vec(&contradicting).unwrap()).unwrap_err().kind(), "malformed");
        let mut unprotected = signed_legacy_json(None);
        unprotected["chainId"] = json!("0x1");
        assert_eq!(verify_transaction(&serde_json::to_vec(&unprotected).unwrap()).unwrap().chain_id(), None);
    }

    #[test]
    fn legacy_v_decoding() {
        assert_eq!(legacy_parity_and_chain(27).unwrap(), (false, None));
        assert_eq!(legacy_parity_and_chain(28).unwrap(), (true, None));
        assert_eq!(legacy_parity_and_chain(37).unwrap(), (false, Some(1)));
        assert_eq!(legacy_parity_and_chain(38).unwrap(), (true, Some(1)));
        assert_eq!(legacy_parity_and_chain(62709).unwrap(), (false, Some(31337)));
        for bad in [0, 1, 26, 29, 34] {
            assert!(legacy_parity_and_chain(bad).is_err());
        }
    }

    #[test]
    fn signature_and_sender_tampering() {
        let honest = signed_legacy_json(Some(1));
        let mut other_from = honest.clone();
        other_from["from"] = json!("0x0000000000000000000000000000000000000001");
        assert_eq!(verify_transaction(&serde_json::to_vec(&other_from).unwrap()).unwrap_err().kind(), "tx_sender");
        // Any change of a signed member moves the hash.
        for (member, value) in
            [("nonce", json!("0xa")), ("r", json!("0x1")), ("v", json!("0x26")), ("input", json!("0x00"))]
        {
            let mut t = honest.clone();
            t[member] = value;
            assert_eq!(verify_transaction(&serde_json::to_vec(&t).unwrap()).unwrap_err().kind(), "tx_hash", "{member}");
        }
        // An unknown type is not a lie.
        let mut deposit = honest.clone();
        deposit["type"] = json!("0x7e");
        assert_eq!(
            verify_transaction(&serde_json::to_vec(&deposit).unwrap()).unwrap_err().kind(),
            "unsupported_tx_type"
        );
        // Partial placement is malformed.
        let mut partial = honest;
        partial["blockNumber"] = json!("0x1");
        assert_eq!(verify_transaction(&serde_json::to_vec(&partial).unwrap()).unwrap_err().kind(), "malformed");
    }

    #[test]
    fn unrecoverable_signature_is_reported() {
        // r = 0 recovers no key; the hash is recomputed with it, so only recovery can fail.
        let tx = TxLegacy { chain_id: Some(1), gas_limit: 21_000, ..Default::default() };
        let sig = Signature::new(U256::ZERO, U256::from(1), false);
        let hash = tx.clone().into_signed(sig).hash().to_string();
        let answer = json!({
            "hash": hash, "from": "0x0000000000000000000000000000000000000001", "nonce": "0x0", "gas": "0x5208",
            "gasPrice": "0x0", "to": null, "value": "0x0", "input": "0x", "v": "0x25", "r": "0x0", "s": "0x1",
        });
        assert_eq!(verify_transaction(&serde_json::to_vec(&answer).unwrap()).unwrap_err().kind(), "tx_signature");
    }

    /// The worked example of EIP-155: the JSON form of its signed transaction must hash to
    /// keccak256 of the raw bytes the EIP gives, and recover the EIP's sender.
    #[test]
    fn eip155_worked_example() {
        let raw = hex!(
            "f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83"
        );
        let mut answer = signed_legacy_json(Some(1));
        answer["hash"] = json!(alloy_primitives::keccak256(raw).to_string());
        answer["from"] = json!("0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F");
        answer["v"] = json!("0x25");
        answer["r"] = json!("0x28ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276");
        answer["s"] = json!("0x67cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83");
        let tx = verify_transaction(&serde_json::to_vec(&answer).unwrap()).unwrap();
        assert_eq!(tx.chain_id(), Some(1));
        assert_eq!(tx.nonce(), 9);
    }
}
