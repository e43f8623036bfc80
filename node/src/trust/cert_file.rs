//! Membership certificate files: a format line, then the signed certificate's canonical bytes
//! in hex. Written by `rpcmesh federation admit`, read through `trust.membership_cert`.

use std::path::Path;

use rpcmesh_protocol::Signed;
use rpcmesh_protocol::messages::MembershipCert;

/// First line of a certificate file.
pub const CERT_FILE_HEADER: &str = "rpcmesh-membership-cert-v1";

/// Renders a certificate file.
pub fn render(cert: &Signed<MembershipCert>) -> String {
    format!("{CERT_FILE_HEADER}\n{}\n", hex::encode(cert.to_bytes()))
}

/// Parses a certificate file's text and checks its signature.
pub fn parse(text: &str) -> Result<Signed<MembershipCert>, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some(CERT_FILE_HEADER) {
        return Err(format!("not a certificate file (expected first line {CERT_FILE_HEADER:?})"));
    }
    let hex_line = lines.next().ok_or("missing the certificate line")?;
    let bytes = hex::decode(hex_line).map_err(|_| "the certificate is not hex".to_string())?;
    let cert = Signed::<MembershipCert>::from_bytes(&bytes).map_err(|e| format!("malformed certificate: {e}"))?;
    cert.verify().map_err(|e| format!("certificate signature: {e}"))?;
    Ok(cert)
}

/// Reads and parses a certificate file.
pub fn load(path: &Path) -> Result<Signed<MembershipCert>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}
