use bincode::{Decode, Encode};

use super::{BlockRef, MessageHeader, Receipt};
use crate::identity::PublicKey;
use crate::signed::{Signed, SignedBody};

/// What a provably wrong answer got wrong. Each kind names the check that failed, so a receiver
/// re-runs exactly that check on the bundle's material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub enum LieKind {
    /// A block header whose fields do not hash to its `hash`, or a hash off the trusted chain.
    Header,
    /// A block whose transactions do not hash to its header's `transactionsRoot`.
    Block,
    /// A transaction whose fields do not hash to its hash, or whose sender does not recover.
    Transaction,
    /// Receipts that do not hash to the trusted header's `receiptsRoot` (or its `logsBloom`).
    Receipt,
    /// Logs not in the verified receipts of their block, or altered.
    Logs,
    /// A log that matches the filter, present in the verified receipts, left out of the answer.
    LogOmitted,
    /// A state read (balance, nonce, code, storage) that the proof against the trusted header's
    /// `stateRoot` contradicts.
    State,
    /// A head (`eth_blockNumber`, a `latest` block) outside what a quorum of trusted providers has
    /// seen.
    Head,
    /// An answer that disagrees with the answers of a quorum of other operators to the same
    /// request pinned to the same block (`eth_call`, `eth_estimateGas`).
    Disagreement,
    /// A transaction refused with an error that is none of the reasons a well-behaved node gives
    /// (nonce, funds, fees, gas, size, type, signature, already known): a filtered write. The
    /// accused's signed receipt binds the transaction and the refusal; the material is only the
    /// anchor's header (which places the bundle in time).
    Refusal,
    /// Two different answers, each under the accused's signed receipt, to one question pinned to
    /// a block hash: a lie by itself, whichever answer is the wrong one.
    Equivocation,
}

/// Each kind with its lower-case name, written once for both names below.
macro_rules! lie_kind_names {
    ($($kind:ident => $name:literal),* $(,)?) => {
        impl LieKind {
            /// Lower-case name, as shown by `/evidence`.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(Self::$kind => $name,)*
                }
            }

            /// `lie_<name>`: the outcome of a check that proved this lie, in metrics.
            pub fn outcome(&self) -> &'static str {
                match self {
                    $(Self::$kind => concat!("lie_", $name),)*
                }
            }
        }
    };
}

lie_kind_names! {
    Header => "header",
    Block => "block",
    Transaction => "transaction",
    Receipt => "receipt",
    Logs => "logs",
    LogOmitted => "log_omitted",
    State => "state",
    Head => "head",
    Disagreement => "disagreement",
    Refusal => "refusal",
    Equivocation => "equivocation",
}

/// A reporter's signed claim that `accused` answered a request wrongly, with everything a third
/// party needs to re-check it deterministically: the accused's own signed [`Receipt`] binding the
/// request and response bytes, the trusted block the answer is judged against, and the material
/// (raw JSON-RPC results: the header, a proof, the block's receipts) that shows the lie.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Evidence {
    /// Common header (the reporter's `seq`, time and network).
    pub header: MessageHeader,
    /// The provider that answered wrongly.
    pub accused: PublicKey,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Which check failed.
    pub kind: LieKind,
    /// The JSON-RPC request exactly as relayed (its SHA-256 is the receipt's `request_digest`).
    pub request: Vec<u8>,
    /// The accused's answer exactly as received (its SHA-256 is the receipt's `response_digest`).
    pub response: Vec<u8>,
    /// The accused's signed receipt for this request and answer.
    pub receipt: Signed<Receipt>,
    /// The trusted block the answer is judged against (a receiver checks it is on its own trusted
    /// chain).
    pub anchor: BlockRef,
    /// Raw JSON-RPC `result` values that show the lie, in an order fixed per kind (the header of
    /// `anchor` first, then a proof, receipts or a block).
    pub material: Vec<Vec<u8>>,
}

impl SignedBody for Evidence {
    const DOMAIN: &'static [u8] = b"rpcmesh/v1/evidence\0";
    const KIND: &'static str = "evidence";
}
