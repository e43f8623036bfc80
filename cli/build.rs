//! Stamps the binary with the git commit it was built from, for `rpcmesh --version`.
//!
//! `RPCMESH_GIT_COMMIT` is the commit (so `docker build` and packagers, whose sources carry no
//! `.git`, can pass it in); otherwise `git rev-parse --short HEAD`, but only when the repository
//! found is this workspace's own (not some outer repository a source tarball was unpacked
//! into); otherwise `unknown`. A build never fails for want of git.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Longest commit accepted from the environment: a full SHA-256 object name.
const MAX_COMMIT_LEN: usize = 64;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RPCMESH_GIT_COMMIT");
    let commit = from_env().or_else(from_git).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=RPCMESH_GIT_COMMIT={commit}");
}

/// `RPCMESH_GIT_COMMIT`, if set to something that looks like a commit id (it ends up in a
/// `rustc-env` line and in `--version`: no spaces, newlines or other surprises).
fn from_env() -> Option<String> {
    let v = std::env::var("RPCMESH_GIT_COMMIT").ok()?;
    let v = v.trim();
    let ok = !v.is_empty() && v.len() <= MAX_COMMIT_LEN && v.bytes().all(|b| b.is_ascii_hexdigit());
    if !ok && !v.is_empty() {
        println!("cargo:warning=ignoring RPCMESH_GIT_COMMIT={v:?}: not a hex commit id");
    }
    ok.then(|| v.to_ascii_lowercase())
}

/// Runs `git args` in the crate's directory; its trimmed stdout on success.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).current_dir(manifest_dir()?).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    Some(s.trim().to_string())
}

fn manifest_dir() -> Option<PathBuf> {
    std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from)
}

/// The short commit of HEAD, when this crate sits in the top of its own git work tree.
fn from_git() -> Option<String> {
    let manifest = manifest_dir()?;
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    // cli/ is one level below the workspace root; any other layout means the repository found
    // is not ours (e.g. sources unpacked inside an unrelated checkout).
    if !same_dir(manifest.parent()?, &top) {
        return None;
    }
    let commit = git(&["rev-parse", "--short", "HEAD"])?;
    if commit.is_empty() || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    watch_head();
    Some(commit)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Reruns this script when HEAD moves: a new commit or checkout changes `HEAD` (detached) or
/// the branch's ref file, or `packed-refs` after a `git gc`. Worktrees keep `HEAD` in their own
/// git dir and refs in the common one, hence both.
fn watch_head() {
    let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) else { return };
    let git_dir = PathBuf::from(git_dir);
    println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
    let common = git(&["rev-parse", "--git-common-dir"]).map(|c| {
        let c = PathBuf::from(c);
        if c.is_absolute() { c } else { manifest_dir().unwrap_or_default().join(c) }
    });
    let common = common.unwrap_or(git_dir);
    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
        let path = common.join(&head_ref);
        // A branch only in packed-refs gets its loose file with the next commit: watch the
        // directory it will appear in (a missing path would rerun the script on every build).
        let watched = if path.exists() { Some(path.as_path()) } else { path.parent().filter(|p| p.exists()) };
        if let Some(w) = watched {
            println!("cargo:rerun-if-changed={}", w.display());
        }
    }
    let packed = common.join("packed-refs");
    if packed.exists() {
        println!("cargo:rerun-if-changed={}", packed.display());
    }
}
