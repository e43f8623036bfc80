//! Who may use the admin API: a bearer token and a Host check, applied to every request.
//!
//! - Every mutating request (anything but `GET`/`HEAD`) needs `Authorization: Bearer <token>`,
//!   wherever the API listens: a web page the operator visits must not be able to change the
//!   node. The token is the content of `admin.token_file` (written 0600 by `rpcmesh init`,
//!   created at start-up if missing), read by the CLI commands that call the API.
//! - When the API listens beyond loopback, reads need the token too, except `/health` and
//!   `/metrics` (load balancers and scrapers).
//! - The `Host` header must name the bound address, `localhost`, a loopback address, or one of
//!   `admin.allowed_hosts`: a DNS-rebinding page (its own name resolving to 127.0.0.1) sends its
//!   own name and is refused before any handler runs.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Random bytes in a generated token (hex-encoded in the file).
const TOKEN_BYTES: usize = 32;
/// Paths readable without the token even when the API listens beyond loopback.
const OPEN_PATHS: &[&str] = &["/health", "/metrics"];

/// The admin API's access rules.
#[derive(Debug, Clone)]
pub struct AdminAuth {
    token: Arc<str>,
    reads_need_token: bool,
    bound: SocketAddr,
    allowed_hosts: Arc<[String]>,
}

impl AdminAuth {
    /// Rules for an API bound to `bound` with `token`; `allowed_hosts` are extra names
    /// (`admin.allowed_hosts`) clients may reach it by.
    pub fn new(token: String, bound: SocketAddr, allowed_hosts: &[String]) -> Self {
        Self {
            token: Arc::from(token),
            reads_need_token: !bound.ip().is_loopback(),
            bound,
            allowed_hosts: allowed_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        // The name without its port (`[::1]:8546` → `[::1]`, `a.b:80` → `a.b`).
        let name = match host.rsplit_once(':') {
            Some((n, port)) if !n.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !n.ends_with(':') => n,
            _ => host.as_str(),
        };
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        name == "localhost"
            || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback() || ip == self.bound.ip())
            || self.allowed_hosts.iter().any(|h| *h == host || *h == name)
    }

    fn token_ok(&self, req: &Request) -> bool {
        let Some(given) = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        constant_time_eq(given.trim().as_bytes(), self.token.as_bytes())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware enforcing [`AdminAuth`].
pub async fn guard(State(auth): State<AdminAuth>, req: Request, next: Next) -> Response {
    if let Some(host) = req.headers().get(header::HOST) {
        let allowed = host.to_str().is_ok_and(|h| auth.host_allowed(h));
        if !allowed {
            return (
                StatusCode::MISDIRECTED_REQUEST,
                "Host not accepted by the admin API (reach it by its address, localhost, or a name in \
                 admin.allowed_hosts)\n",
            )
                .into_response();
        }
    }
    let mutating = !matches!(*req.method(), Method::GET | Method::HEAD);
    let needs_token = mutating || (auth.reads_need_token && !OPEN_PATHS.contains(&req.uri().path()));
    if needs_token && !auth.token_ok(&req) {
        let why = if mutating {
            "this admin endpoint changes the node: send Authorization: Bearer <token> (the token is in the \
             file admin.token_file of the node's home)\n"
        } else {
            "the admin API listens beyond loopback: send Authorization: Bearer <token> (admin.token_file)\n"
        };
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], why).into_response();
    }
    next.run(req).await
}

/// A new random token, hex.
pub fn generate_token() -> std::io::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// Writes a new token to `path` (mode 0600, refusing to replace an existing file).
pub fn create_token_file(path: &Path) -> std::io::Result<String> {
    let token = generate_token()?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(token.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(token)
}

/// Reads the token in `path` (surrounding whitespace ignored).
pub fn read_token_file(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let token = text.trim();
    if token.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "the token file is empty"));
    }
    Ok(token.to_string())
}

/// The token in `path`, created first if the file does not exist (homes made before tokens).
pub fn load_or_create_token(path: &Path) -> std::io::Result<String> {
    match read_token_file(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match create_token_file(path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_token_file(path),
            r => r,
        },
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_the_api_may_be_reached_by() {
        let auth = AdminAuth::new("t".into(), "127.0.0.1:8546".parse().unwrap(), &["admin.example".into()]);
        for ok in ["127.0.0.1:8546", "localhost:8546", "LOCALHOST", "[::1]:8546", "127.0.0.2", "admin.example:8546"] {
            assert!(auth.host_allowed(ok), "{ok}");
        }
        for bad in ["evil.example:8546", "evil.example", "localhost.evil.example", "10.0.0.1:8546", "127.0.0.1.nip.io"]
        {
            assert!(!auth.host_allowed(bad), "{bad}");
        }
        let public = AdminAuth::new("t".into(), "10.0.0.1:8546".parse().unwrap(), &[]);
        assert!(public.host_allowed("10.0.0.1:8546"));
        assert!(public.reads_need_token);
        assert!(!auth.reads_need_token);
    }

    #[test]
    fn token_files_are_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("rpcmesh-token-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("admin.token");
        let _ = std::fs::remove_file(&path);
        let t = load_or_create_token(&path).unwrap();
        assert_eq!(t.len(), 2 * TOKEN_BYTES);
        assert_eq!(load_or_create_token(&path).unwrap(), t, "an existing token is kept");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
