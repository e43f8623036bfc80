//! Raw signed transactions (`eth_sendRawTransaction`'s parameter): who sends them to whom, and
//! a **dry transfer** that no node can include.
//!
//! A daemon needs the sender and recipient of a transaction before it is sent, to know whether
//! it touches an address it watches for censorship; and it probes providers with a transaction
//! that must be refused for a reason every well-behaved node gives (the sender has no funds), so
//! a provider that refuses it for another reason shows it filters. The dry transfer is signed by
//! a key created for the purpose and never funded: nothing can ever mine it.

use alloy_consensus::transaction::SignerRecoverable as _;
use alloy_consensus::{SignableTransaction as _, Transaction as _, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::{Decodable2718 as _, Encodable2718 as _};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};

use crate::EthError;

/// What a raw transaction says about itself, its signature checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawTransaction {
    /// keccak256 of the raw bytes: the hash a node answers.
    pub hash: B256,
    /// The recovered sender.
    pub from: Address,
    /// The recipient; `None` for a contract creation.
    pub to: Option<Address>,
    /// The EIP-155 chain id it is signed for (`None`: a pre-EIP-155 legacy transaction).
    pub chain_id: Option<u64>,
}

/// Decodes an EIP-2718 transaction (legacy RLP or typed) and recovers its sender.
pub fn decode_raw_transaction(raw: &[u8]) -> Result<RawTransaction, EthError> {
    let mut buf = raw;
    let envelope =
        TxEnvelope::decode_2718(&mut buf).map_err(|e| EthError::Malformed(format!("raw transaction: {e}")))?;
    if !buf.is_empty() {
        return Err(EthError::Malformed("raw transaction: trailing bytes".into()));
    }
    let hash = keccak256(raw);
    let from = envelope.recover_signer().map_err(|_| EthError::InvalidSignature { hash })?;
    Ok(RawTransaction { hash, from, to: envelope.to(), chain_id: envelope.chain_id() })
}

/// A signed legacy transfer of 1 wei from the account of `secret` to `to` on `chain_id`, with
/// nonce 0 and `gas_price` wei per gas: unless that account holds funds (a fresh random key
/// does not), every node refuses it with "insufficient funds". Returns the raw bytes.
pub fn dry_transfer(chain_id: u64, secret: B256, to: Address, gas_price: u128) -> Result<Bytes, EthError> {
    let tx = TxLegacy {
        chain_id: Some(chain_id),
        nonce: 0,
        gas_price,
        gas_limit: 21_000,
        to: TxKind::Call(to),
        value: U256::from(1u8),
        input: Bytes::new(),
    };
    let signature = alloy_consensus::crypto::secp256k1::sign_message(secret, tx.signature_hash())
        .map_err(|e| EthError::Malformed(format!("signing key: {e}")))?;
    let envelope = TxEnvelope::Legacy(tx.into_signed(signature));
    Ok(envelope.encoded_2718().into())
}

/// The address of the account `secret` signs for.
pub fn address_of(secret: B256) -> Result<Address, EthError> {
    let tx = TxLegacy::default();
    let hash = tx.signature_hash();
    let signature = alloy_consensus::crypto::secp256k1::sign_message(secret, hash)
        .map_err(|e| EthError::Malformed(format!("signing key: {e}")))?;
    signature.recover_address_from_prehash(&hash).map_err(|_| EthError::Malformed("signing key".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_transfer_decodes_to_its_sender_and_recipient() {
        let secret = B256::repeat_byte(7);
        let to = Address::repeat_byte(0xaa);
        let raw = dry_transfer(31337, secret, to, 100_000_000_000).unwrap();
        let tx = decode_raw_transaction(&raw).unwrap();
        assert_eq!(tx.to, Some(to));
        assert_eq!(tx.from, address_of(secret).unwrap());
        assert_eq!(tx.chain_id, Some(31337));
        assert_eq!(tx.hash, keccak256(&raw));
    }

    #[test]
    fn garbage_and_trailing_bytes_are_malformed() {
        assert!(decode_raw_transaction(&[]).is_err());
        assert!(decode_raw_transaction(&[0x02, 0xc0]).is_err());
        let mut raw = dry_transfer(1, B256::repeat_byte(1), Address::ZERO, 1).unwrap().to_vec();
        raw.push(0);
        assert!(decode_raw_transaction(&raw).is_err());
    }

    #[test]
    fn anvils_first_dev_key_has_its_known_address() {
        // anvil's (and hardhat's) account #0.
        let secret: B256 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80".parse().unwrap();
        let want: Address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".parse().unwrap();
        assert_eq!(address_of(secret).unwrap(), want);
    }
}
