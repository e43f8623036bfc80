#!/bin/sh
# Seeds fuzz/corpus/<target>/ from the golden vectors in protocol/tests/vectors/.
# The vectors are hex, 64 characters per line; `xxd -r -p` turns them into the raw wire bytes.
# Usage (from anywhere): fuzz/seed-corpus.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
vectors="$here/../protocol/tests/vectors"
corpus="$here/corpus"

seed() { # seed <target> <vector name>
    mkdir -p "$corpus/$1"
    xxd -r -p "$vectors/$2.hex" > "$corpus/$1/vector-$2"
}

seed announcement capacity_announcement
seed announcement membership_cert
seed attestation health_attestation
seed membership_cert membership_cert
seed receipt receipt
seed evidence evidence
seed relay_request relay_request
seed relay_response relay_response
seed relay_response relay_request

# public_key: the identity vector's hex key and PeerId, one per file.
mkdir -p "$corpus/public_key"
awk '$1 == "public_key" { printf "%s", $2 > "'"$corpus"'/public_key/vector-hex" }
     $1 == "peer_id"    { printf "%s", $2 > "'"$corpus"'/public_key/vector-peer-id" }' "$vectors/identity.txt"

# key_file: a well-formed key file (secret = 32 bytes of 0x01, the identity of the vectors' signer).
mkdir -p "$corpus/key_file"
printf 'rpcmesh-ed25519-secret-v1\n%s\n' "$(printf '01%.0s' $(seq 32))" > "$corpus/key_file/valid"

echo "seeded $(find "$corpus" -type f | wc -l) files under $corpus"
