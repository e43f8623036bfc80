//! State proofs (`eth_getProof`, EIP-1186) against a trusted state root.
//!
//! The account proof is a Merkle-Patricia path from the state root to `keccak256(address)`; its
//! leaf is `rlp([nonce, balance, storageRoot, codeHash])`, or nothing at all for an account that
//! does not exist (then the answer must claim the empty account: nonce 0, balance 0, empty code,
//! empty storage). Each storage proof is a path from the account's `storageRoot` to
//! `keccak256(slot)`; its leaf is `rlp(value)`, absent for zero.
//!
//! Verification walks the proof with alloy-trie: first for the claimed value (the common, honest
//! case costs one walk); on failure it finds out what the proof does prove (absence, or another
//! value) so the error says whether the proof is broken ([`EthError::ProofInvalid`]) or the
//! claimed value is wrong ([`EthError::AccountMismatch`], [`EthError::StorageMismatch`]).

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_rlp::Decodable;
use alloy_trie::nodes::TrieNode;
use alloy_trie::proof::{ProofVerificationError, verify_proof};
use alloy_trie::{EMPTY_ROOT_HASH, KECCAK_EMPTY, Nibbles, TrieAccount};
use serde::Deserialize;

use crate::EthError;
use crate::json::{self, field, parse_result};

/// A storage slot proven against an account's storage root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedSlot {
    /// The slot (32-byte key, as asked; hashed for the trie).
    pub slot: B256,
    /// Its value (zero when absent from the trie).
    pub value: U256,
}

/// An account proven against a trusted state root, with the storage slots the answer proved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAccount {
    address: Address,
    state_root: B256,
    exists: bool,
    account: TrieAccount,
    storage: Vec<VerifiedSlot>,
}

impl VerifiedAccount {
    /// The account's address.
    pub fn address(&self) -> Address {
        self.address
    }
    /// The state root it was proven against.
    pub fn state_root(&self) -> B256 {
        self.state_root
    }
    /// False when the proof shows the account is not in the state trie.
    pub fn exists(&self) -> bool {
        self.exists
    }
    /// The nonce (transaction count).
    pub fn nonce(&self) -> u64 {
        self.account.nonce
    }
    /// The balance in wei.
    pub fn balance(&self) -> U256 {
        self.account.balance
    }
    /// keccak256 of the code ([`KECCAK_EMPTY`] for none).
    pub fn code_hash(&self) -> B256 {
        self.account.code_hash
    }
    /// The storage trie root ([`EMPTY_ROOT_HASH`] for none).
    pub fn storage_root(&self) -> B256 {
        self.account.storage_root
    }
    /// The proven slots, in answer order.
    pub fn storage(&self) -> &[VerifiedSlot] {
        &self.storage
    }
    /// The proven value of `slot`, if the answer proved it.
    pub fn storage_value(&self, slot: B256) -> Option<U256> {
        self.storage.iter().find(|s| s.slot == slot).map(|s| s.value)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcStorageProof<'a> {
    key: &'a str,
    value: &'a str,
    #[serde(borrow)]
    proof: Vec<&'a str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcAccountProof<'a> {
    address: &'a str,
    balance: &'a str,
    code_hash: &'a str,
    nonce: &'a str,
    storage_hash: &'a str,
    #[serde(borrow)]
    account_proof: Vec<&'a str>,
    #[serde(borrow, default)]
    storage_proof: Vec<RpcStorageProof<'a>>,
}

/// What a proof proves at a key: a value, or absence.
#[derive(Debug, PartialEq, Eq)]
enum Proven {
    Absent,
    Value(Vec<u8>),
}

/// Walks `proof` from `root` to `key`. `claimed` is tried first (one walk in the honest case);
/// otherwise the proof's own leaf value (or absence) is found and verified.
fn prove(root: B256, key: Nibbles, proof: &[Bytes], claimed: Option<&[u8]>) -> Result<Proven, String> {
    let attempt = |value: Option<Vec<u8>>| verify_proof(root, key, value, proof);
    let first = attempt(claimed.map(<[u8]>::to_vec));
    if first.is_ok() {
        return Ok(claimed.map_or(Proven::Absent, |c| Proven::Value(c.to_vec())));
    }
    if claimed.is_some() && attempt(None).is_ok() {
        return Ok(Proven::Absent);
    }
    if let Some(leaf) = leaf_value(proof)
        && attempt(Some(leaf.clone())).is_ok()
    {
        return Ok(Proven::Value(leaf));
    }
    Err(match first {
        Err(ProofVerificationError::RootMismatch { got, expected }) => {
            format!("first node hashes to {got}, not the root {expected}")
        }
        Err(ProofVerificationError::ValueMismatch { path, .. }) => {
            format!("the path breaks after {} of {} nibbles", path.len(), key.len())
        }
        Err(e) => e.to_string(),
        Ok(()) => "unreachable".into(),
    })
}

/// The value of the last node of a proof, if it is a leaf. (In the state and storage tries keys
/// are 32-byte hashes, so a leaf never fits in 32 bytes and is never embedded in its parent.)
/// The walk in `prove` re-checks the value against the root either way.
fn leaf_value(proof: &[Bytes]) -> Option<Vec<u8>> {
    let last = proof.last()?;
    match TrieNode::decode(&mut &last[..]).ok()? {
        TrieNode::Leaf(leaf) => Some(leaf.value),
        _ => None,
    }
}

fn parse_nodes(name: &str, nodes: &[&str]) -> Result<Vec<Bytes>, EthError> {
    nodes.iter().map(|n| field(name, json::data(n))).collect()
}

/// A storage key as answered: 32-byte DATA, or a shorter QUANTITY-like form some nodes echo back.
fn storage_key(s: &str) -> Result<B256, EthError> {
    let digits = field("storageProof.key", json::fixed::<32>(s).map(B256::new));
    digits.or_else(|_| {
        let value = field("storageProof.key", json::quantity_u256(s))?;
        Ok(B256::from(value))
    })
}

fn verify_storage(address: Address, storage_root: B256, item: &RpcStorageProof<'_>) -> Result<VerifiedSlot, EthError> {
    let slot = storage_key(item.key)?;
    let claimed = field("storageProof.value", json::quantity_u256(item.value))?;
    let proof = parse_nodes("storageProof.proof", &item.proof)?;
    let key = Nibbles::unpack(keccak256(slot));
    let claimed_rlp = (!claimed.is_zero()).then(|| alloy_rlp::encode(claimed));
    let proven = prove(storage_root, key, &proof, claimed_rlp.as_deref())
        .map_err(|reason| EthError::ProofInvalid { what: format!("storage slot {slot} of {address}"), reason })?;
    let value = match proven {
        Proven::Absent => U256::ZERO,
        Proven::Value(rlp) => U256::decode(&mut rlp.as_slice()).map_err(|e| EthError::ProofInvalid {
            what: format!("storage slot {slot} of {address}"),
            reason: format!("leaf is not an RLP integer: {e}"),
        })?,
    };
    if value != claimed {
        return Err(EthError::StorageMismatch { slot, claimed, proven: value });
    }
    Ok(VerifiedSlot { slot, value })
}

fn account_mismatch(claimed: &TrieAccount, proven: &TrieAccount, address: Address) -> EthError {
    let (field, c, p) = if claimed.nonce != proven.nonce {
        ("nonce", claimed.nonce.to_string(), proven.nonce.to_string())
    } else if claimed.balance != proven.balance {
        ("balance", claimed.balance.to_string(), proven.balance.to_string())
    } else if claimed.code_hash != proven.code_hash {
        ("codeHash", claimed.code_hash.to_string(), proven.code_hash.to_string())
    } else {
        ("storageHash", claimed.storage_root.to_string(), proven.storage_root.to_string())
    };
    EthError::AccountMismatch { address, field, claimed: c, proven: p }
}

/// Verifies an `eth_getProof` answer against a trusted `state_root` (from a verified header):
/// the account proof (presence, or absence for an account that does not exist) and every storage
/// proof in the answer. `address` and `slots` are what the caller asked for: the answer must be
/// for that address and prove each of those slots.
///
/// For an absent account, nodes differ in what they claim for `codeHash`/`storageHash` (the
/// empty-code/empty-trie hashes, or zero): both are accepted, and the returned account carries
/// the empty hashes.
pub fn verify_account_proof(
    result: &[u8],
    state_root: B256,
    address: Address,
    slots: &[B256],
) -> Result<VerifiedAccount, EthError> {
    let raw: RpcAccountProof<'_> = parse_result("account proof", result)?;
    let got = field("address", json::fixed::<20>(raw.address).map(Address::new))?;
    if got != address {
        return Err(EthError::AddressMismatch { expected: address, got });
    }
    let claimed = TrieAccount {
        nonce: field("nonce", json::quantity_u64(raw.nonce))?,
        balance: field("balance", json::quantity_u256(raw.balance))?,
        storage_root: field("storageHash", json::fixed::<32>(raw.storage_hash).map(B256::new))?,
        code_hash: field("codeHash", json::fixed::<32>(raw.code_hash).map(B256::new))?,
    };
    let proof = parse_nodes("accountProof", &raw.account_proof)?;
    let key = Nibbles::unpack(keccak256(address));
    let claims_empty = claimed.nonce == 0
        && claimed.balance.is_zero()
        && [KECCAK_EMPTY, B256::ZERO].contains(&claimed.code_hash)
        && [EMPTY_ROOT_HASH, B256::ZERO].contains(&claimed.storage_root);
    let empty = TrieAccount { storage_root: EMPTY_ROOT_HASH, code_hash: KECCAK_EMPTY, ..TrieAccount::default() };

    // An empty claim is honest for an absent account: try absence first then.
    let hint = if claims_empty { None } else { Some(alloy_rlp::encode(claimed)) };
    let what = || format!("account {address}");
    let proven = prove(state_root, key, &proof, hint.as_deref())
        .map_err(|reason| EthError::ProofInvalid { what: what(), reason })?;
    let (exists, account) = match proven {
        Proven::Absent if claims_empty => (false, empty),
        Proven::Absent => {
            return Err(EthError::AccountMismatch {
                address,
                field: "existence",
                claimed: "present".into(),
                proven: "absent".into(),
            });
        }
        Proven::Value(rlp) => {
            let proven = TrieAccount::decode(&mut rlp.as_slice())
                .map_err(|e| EthError::ProofInvalid { what: what(), reason: format!("leaf is not an account: {e}") })?;
            if proven != claimed {
                return Err(account_mismatch(&claimed, &proven, address));
            }
            (true, proven)
        }
    };

    let storage = raw
        .storage_proof
        .iter()
        .map(|item| verify_storage(address, account.storage_root, item))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(slot) = slots.iter().find(|s| !storage.iter().any(|v| v.slot == **s)) {
        return Err(EthError::MissingStorageProof { slot: *slot });
    }
    Ok(VerifiedAccount { address, state_root, exists, account, storage })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_trie::{HashBuilder, proof::ProofRetainer};

    /// A small storage trie built here, with proofs for `targets`.
    fn trie(entries: &[(B256, U256)], targets: &[B256]) -> (B256, Vec<(B256, Vec<Bytes>)>) {
        let mut leaves: Vec<(Nibbles, Vec<u8>)> =
            entries.iter().map(|(k, v)| (Nibbles::unpack(keccak256(k)), alloy_rlp::encode(v))).collect();
        leaves.sort();
        let retainer = ProofRetainer::new(targets.iter().map(|t| Nibbles::unpack(keccak256(t))).collect());
        let mut hb = HashBuilder::default().with_proof_retainer(retainer);
        for (k, v) in &leaves {
            hb.add_leaf(*k, v);
        }
        let root = hb.root();
        let nodes = hb.take_proof_nodes();
        let proofs = targets
            .iter()
            .map(|t| {
                let path = Nibbles::unpack(keccak256(t));
                let proof = nodes.matching_nodes_sorted(&path).into_iter().map(|(_, node)| node).collect::<Vec<_>>();
                (*t, proof)
            })
            .collect();
        (root, proofs)
    }

    #[test]
    fn storage_presence_absence_and_tampering() {
        let slots: Vec<B256> = (0u64..40).map(|i| B256::from(U256::from(i))).collect();
        let entries: Vec<(B256, U256)> =
            slots[..30].iter().map(|s| (*s, U256::from(1000) + U256::from_be_bytes(s.0))).collect();
        let (root, proofs) = trie(&entries, &[slots[3], slots[35]]);
        let (present, absent) = (&proofs[0].1, &proofs[1].1);
        let value = alloy_rlp::encode(U256::from(1003));
        assert_eq!(
            prove(root, Nibbles::unpack(keccak256(slots[3])), present, Some(&value)),
            Ok(Proven::Value(value.clone()))
        );
        // Wrong claimed value: the proof still tells what it proves.
        let wrong = alloy_rlp::encode(U256::from(7));
        assert_eq!(prove(root, Nibbles::unpack(keccak256(slots[3])), present, Some(&wrong)), Ok(Proven::Value(value)));
        // Absence proven for a slot not in the trie, whatever was claimed.
        assert_eq!(prove(root, Nibbles::unpack(keccak256(slots[35])), absent, Some(&wrong)), Ok(Proven::Absent));
        // Claiming absence for a present slot with its own proof: the proof proves the value.
        assert!(matches!(prove(root, Nibbles::unpack(keccak256(slots[3])), present, None), Ok(Proven::Value(_))));
        // A flipped byte in any node breaks the proof.
        for i in 0..present.len() {
            let mut broken = present.clone();
            let mut node = broken[i].to_vec();
            let at = node.len() / 2;
            node[at] ^= 1;
            broken[i] = node.into();
            assert!(prove(root, Nibbles::unpack(keccak256(slots[3])), &broken, None).is_err(), "node {i}");
        }
        // A proof for another slot does not prove this one.
        assert!(!matches!(prove(root, Nibbles::unpack(keccak256(slots[4])), present, None), Ok(Proven::Value(_))));
        // Dropping the last node truncates the path.
        assert!(prove(root, Nibbles::unpack(keccak256(slots[3])), &present[..present.len() - 1], None).is_err());
    }

    #[test]
    fn empty_storage_trie_proves_absence_only() {
        let key = Nibbles::unpack(keccak256(B256::ZERO));
        let empty_node = [Bytes::from_static(&[0x80])];
        assert_eq!(prove(EMPTY_ROOT_HASH, key, &empty_node, None), Ok(Proven::Absent));
        assert_eq!(prove(EMPTY_ROOT_HASH, key, &[], Some(&[1])), Ok(Proven::Absent));
        assert!(prove(B256::repeat_byte(1), key, &empty_node, None).is_err());
    }

    #[test]
    fn storage_keys_as_data_or_quantity() {
        assert_eq!(
            storage_key("0x0000000000000000000000000000000000000000000000000000000000000001").unwrap(),
            B256::from(U256::from(1))
        );
        assert_eq!(storage_key("0x1").unwrap(), B256::from(U256::from(1)));
        assert!(storage_key("1").is_err());
    }
}
