//! The key-file parser, reached through `Identity::load` (the parser is private): the input is
//! written to a per-process file with mode 0600 and loaded. Whatever loads must save and load
//! back to the same identity.
#![no_main]

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rpcmesh_protocol::Identity;

fn paths() -> &'static (PathBuf, PathBuf) {
    static PATHS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    PATHS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rpcmesh-fuzz-key-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        (dir.join("input.key"), dir.join("resaved.key"))
    })
}

fuzz_target!(|data: &[u8]| {
    let (input, resaved) = paths();
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(input).expect("open temp key file");
        f.write_all(data).expect("write temp key file");
    }
    match Identity::load(input) {
        Ok(id) => {
            id.save(resaved, true).expect("save");
            let again = Identity::load(resaved).expect("a saved key file loads");
            assert_eq!(again.secret_bytes(), id.secret_bytes());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
