//! The store through its public API: round trips, sequence rules, pruning, locking, and
//! durability under `kill -9` (a child process, this same test binary, is killed mid-write).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::ops::RangeInclusive;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rpcmesh_node::store::{EvidenceRecord, IdentityMeta, PeerRecord, Store, StoreConfig, StoreError};
use rpcmesh_protocol::messages::{
    BlockRef, CapacityAnnouncement, ChainCapacity, HealthAttestation, MessageHeader, Observation,
};
use rpcmesh_protocol::{Identity, PublicKey, Signed};

const NET: &str = "store-test";
const T0: u64 = 1_700_000_000_000;

fn id(n: u8) -> Identity {
    Identity::from_secret_bytes([n; 32])
}

fn announcement(signer: &Identity, seq: u64, issued_at_ms: u64, ttl_ms: u64) -> Signed<CapacityAnnouncement> {
    let chain = ChainCapacity {
        chain_id: 1,
        head: Some(BlockRef { number: seq, hash: [seq as u8; 32] }),
        max_requests_per_sec: 100,
        utilisation_permille: (seq % 1000) as u16,
        max_concurrent_relays: 8,
        archive: seq.is_multiple_of(2),
        method_groups: vec!["eth".into(), "net".into()],
        policies: vec![],
    };
    let ann = CapacityAnnouncement::new(
        MessageHeader::new(NET, seq, issued_at_ms, ttl_ms),
        vec![chain],
        vec![format!("/ip4/127.0.0.1/tcp/{}", 4000 + seq % 1000)],
        None,
        "rpcmesh/test".into(),
    );
    Signed::sign(ann, signer)
}

fn attestation(attester: &Identity, subject: PublicKey, chain_id: u64, issued_at_ms: u64) -> Signed<HealthAttestation> {
    let body = HealthAttestation {
        header: MessageHeader::new(NET, issued_at_ms, issued_at_ms, 60_000),
        observation: Observation {
            subject,
            chain_id,
            window_start_ms: issued_at_ms.saturating_sub(10_000),
            window_end_ms: issued_at_ms,
            probes_sent: 10,
            probes_ok: (issued_at_ms % 11) as u32,
            latency_p50_us: 1_000,
            latency_p95_us: 5_000,
            observed_head: Some(100),
            reference_head: Some(101),
            head_lag_blocks: Some(1),
        },
    };
    Signed::sign(body, attester)
}

fn evidence(at_ms: u64, accused: PublicKey, detail: &str, data: Vec<u8>) -> EvidenceRecord {
    EvidenceRecord { at_ms, accused, kind: "wrong-result".into(), detail: detail.into(), data }
}

fn open(dir: &Path) -> Store {
    Store::open(dir, StoreConfig::default()).unwrap()
}

#[test]
fn identity_round_trips_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.identity().unwrap(), None);
    let meta = IdentityMeta { public_key: id(1).public_key(), created_at_ms: T0 };
    store.set_identity(&meta).unwrap();
    assert_eq!(store.identity().unwrap(), Some(meta.clone()));
    let other = IdentityMeta { public_key: id(2).public_key(), created_at_ms: T0 + 1 };
    store.set_identity(&other).unwrap();
    store.flush().unwrap();
    drop(store);
    assert_eq!(open(dir.path()).identity().unwrap(), Some(other));
}

#[test]
fn announcements_keep_the_highest_seq_per_signer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b) = (id(1), id(2));
    assert!(store.put_announcement(&announcement(&a, 5, T0, 60_000)).unwrap());
    assert!(!store.put_announcement(&announcement(&a, 3, T0 + 1, 60_000)).unwrap(), "a lower seq is refused");
    // An equal seq is refused even with different content: seq identifies the version.
    assert!(!store.put_announcement(&announcement(&a, 5, T0 + 2, 60_000)).unwrap());
    assert_eq!(store.announcement(&a.public_key()).unwrap(), Some(announcement(&a, 5, T0, 60_000)));
    assert!(store.put_announcement(&announcement(&a, 7, T0 + 3, 60_000)).unwrap());
    assert!(store.put_announcement(&announcement(&b, 1, T0, 60_000)).unwrap());

    let stored = store.announcement(&a.public_key()).unwrap().unwrap();
    assert_eq!(stored, announcement(&a, 7, T0 + 3, 60_000));
    stored.verify().expect("the stored bytes still carry a valid signature");
    let mut all: Vec<_> = store.announcements().unwrap().into_iter().map(|s| (s.signer, s.body.header.seq)).collect();
    all.sort();
    let mut expected = vec![(a.public_key(), 7), (b.public_key(), 1)];
    expected.sort();
    assert_eq!(all, expected);

    store.remove_announcement(&a.public_key()).unwrap();
    assert_eq!(store.announcement(&a.public_key()).unwrap(), None);
    assert!(store.put_announcement(&announcement(&a, 2, T0, 60_000)).unwrap(), "after removal any seq is new");
    store.flush().unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.announcement(&a.public_key()).unwrap().unwrap().body.header.seq, 2);
    assert_eq!(store.announcement(&b.public_key()).unwrap().unwrap().body.header.seq, 1);
}

#[test]
fn concurrent_announcement_writers_never_regress_the_seq() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let signer = id(3);
    let key = signer.public_key();
    let anns: Vec<_> = (1..=120).map(|seq| announcement(&signer, seq, T0 + seq, 60_000)).collect();
    std::thread::scope(|s| {
        for w in 0..4usize {
            let (store, anns) = (store.clone(), &anns);
            s.spawn(move || {
                // Each writer walks the seqs in a different order (a stride coprime with 120).
                let stride = [1, 7, 11, 13][w];
                let mut seen = 0;
                for i in 0..anns.len() {
                    let ann = &anns[(i * stride + w * 17) % anns.len()];
                    store.put_announcement(ann).unwrap();
                    let now = store.announcement(&key).unwrap().unwrap().body.header.seq;
                    assert!(now >= seen && now >= ann.body.header.seq, "seq went from {seen} to {now}");
                    seen = now;
                }
            });
        }
    });
    assert_eq!(store.announcement(&key).unwrap(), Some(anns[119].clone()));
}

#[test]
fn attestations_round_trip_per_subject_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (x, y) = (id(10).public_key(), id(11).public_key());
    let mut about_x = Vec::new();
    for (i, issued) in [T0 + 30, T0 + 10, T0 + 20].into_iter().enumerate() {
        let att = attestation(&id(1 + i as u8), x, 1, issued);
        store.put_attestation(&att).unwrap();
        about_x.push(att);
    }
    let about_y = attestation(&id(1), y, 137, T0 + 5);
    store.put_attestation(&about_y).unwrap();
    // The same subject, time, attester and chain: the second replaces the first.
    let mut replacement = attestation(&id(1), y, 137, T0 + 5);
    replacement.body.observation.probes_ok = 0;
    let replacement = Signed::sign(replacement.body, &id(1));
    store.put_attestation(&replacement).unwrap();

    about_x.sort_by_key(|a| a.body.header.issued_at_ms);
    assert_eq!(store.attestations_about(&x).unwrap(), about_x);
    assert_eq!(store.attestations_about(&y).unwrap(), vec![replacement.clone()]);
    assert!(store.attestations_about(&id(12).public_key()).unwrap().is_empty());
    store.flush().unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.attestations_about(&x).unwrap(), about_x);
    for att in store.attestations_about(&y).unwrap() {
        att.verify().unwrap();
    }
}

#[test]
fn peers_round_trip_replace_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (p, q) = (id(1).public_key(), id(2).public_key());
    let rec = |port: u16, seen: u64| PeerRecord {
        addrs: vec![format!("/ip4/10.0.0.1/tcp/{port}"), format!("/ip4/10.0.0.1/udp/{port}/quic-v1")],
        last_seen_ms: seen,
    };
    store.put_peer(&p, &rec(1, T0)).unwrap();
    store.put_peer(&q, &rec(2, T0)).unwrap();
    store.put_peer(&p, &rec(3, T0 + 9)).unwrap();
    let mut expected = vec![(p, rec(3, T0 + 9)), (q, rec(2, T0))];
    expected.sort_by_key(|(k, _)| *k);
    assert_eq!(store.peers().unwrap(), expected);
    store.remove_peer(&q).unwrap();
    store.remove_peer(&q).unwrap(); // removing twice is fine
    store.flush().unwrap();
    drop(store);
    assert_eq!(open(dir.path()).peers().unwrap(), vec![(p, rec(3, T0 + 9))]);
}

#[test]
fn evidence_ids_increase_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let accused = id(4).public_key();
    let first = evidence(T0, accused, "first", vec![1, 2, 3]);
    let id1 = store.put_evidence(&first).unwrap();
    let id2 = store.put_evidence(&evidence(T0 + 1, accused, "second", vec![])).unwrap();
    assert!(id2 > id1);
    store.flush().unwrap();
    drop(store);
    let store = open(dir.path());
    let big = evidence(T0 + 2, accused, "third", vec![7; 300_000]);
    let id3 = store.put_evidence(&big).unwrap();
    assert!(id3 > id2, "ids keep increasing after a reopen ({id3} after {id2})");
    let all = store.evidence().unwrap();
    assert_eq!(all.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![id1, id2, id3]);
    assert_eq!(all[0].1, first);
    assert_eq!(all[2].1, big);
}

#[test]
fn prune_drops_attestations_past_the_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig { attestation_ttl_ms: 1_000, ..StoreConfig::default() };
    let store = Store::open(dir.path(), cfg).unwrap();
    let subject = id(9).public_key();
    for i in 0..10u64 {
        store.put_attestation(&attestation(&id(1), subject, 1, T0 + i * 200)).unwrap();
    }
    // Cut-off T0 + 1_000: issued before it (0, 200, .., 800) go, 1_000 and later stay.
    let stats = store.prune(T0 + 2_000).unwrap();
    assert_eq!((stats.attestations_expired, stats.attestations_over_limit), (5, 0));
    let left: Vec<u64> =
        store.attestations_about(&subject).unwrap().iter().map(|a| a.body.header.issued_at_ms - T0).collect();
    assert_eq!(left, vec![1_000, 1_200, 1_400, 1_600, 1_800]);
    assert_eq!(store.prune(T0 + 2_000).unwrap().attestations_expired, 0, "pruning is idempotent");
    assert_eq!(store.prune(T0 + 10_000).unwrap().attestations_expired, 5);
    assert!(store.attestations_about(&subject).unwrap().is_empty());
}

#[test]
fn prune_keeps_the_newest_attestations_up_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig { max_attestations: 4, ..StoreConfig::default() };
    let store = Store::open(dir.path(), cfg).unwrap();
    let (x, y) = (id(8).public_key(), id(9).public_key());
    // Interleave two subjects so the oldest-first order crosses the per-subject key ranges.
    for i in 0..10u64 {
        store.put_attestation(&attestation(&id(1), if i % 2 == 0 { x } else { y }, 1, T0 + i)).unwrap();
    }
    let stats = store.prune(T0 + 10).unwrap();
    assert_eq!((stats.attestations_expired, stats.attestations_over_limit), (0, 6));
    let times = |s| -> Vec<u64> {
        store.attestations_about(&s).unwrap().iter().map(|a| a.body.header.issued_at_ms - T0).collect()
    };
    assert_eq!(times(x), vec![6, 8]);
    assert_eq!(times(y), vec![7, 9]);
}

#[test]
fn prune_bounds_evidence_and_drops_expired_announcements() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig { max_evidence: 3, ..StoreConfig::default() };
    let store = Store::open(dir.path(), cfg).unwrap();
    let accused = id(5).public_key();
    let ids: Vec<u64> =
        (0..5).map(|i| store.put_evidence(&evidence(T0 + i, accused, &format!("e{i}"), vec![])).unwrap()).collect();
    let (live, stale) = (id(1), id(2));
    store.put_announcement(&announcement(&live, 1, T0, 10_000)).unwrap(); // expires T0 + 10_000
    store.put_announcement(&announcement(&stale, 1, T0, 1_000)).unwrap(); // expires T0 + 1_000

    let stats = store.prune(T0 + 5_000).unwrap();
    assert_eq!((stats.evidence_over_limit, stats.announcements_expired, stats.corrupt_removed), (2, 1, 0));
    let kept: Vec<_> = store.evidence().unwrap().into_iter().map(|(i, e)| (i, e.detail)).collect();
    assert_eq!(kept, vec![(ids[2], "e2".into()), (ids[3], "e3".into()), (ids[4], "e4".into())]);
    assert!(store.announcement(&live.public_key()).unwrap().is_some());
    assert_eq!(store.announcement(&stale.public_key()).unwrap(), None);
    // An announcement is kept up to and including its expiry millisecond.
    assert_eq!(store.prune(T0 + 10_000).unwrap(), Default::default());
    assert_eq!(store.prune(T0 + 10_001).unwrap().announcements_expired, 1);
}

#[test]
fn open_names_the_path_when_it_cannot_create_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open(&file.join("store"), StoreConfig::default()).unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
    assert!(err.to_string().contains(&file.display().to_string()), "{err}");
}

/// sled locks the directory with `flock`, which conflicts between two open file descriptions
/// even inside one process: a second `Store::open` of an open directory fails too.
#[test]
fn a_second_open_in_the_same_process_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let err = Store::open(dir.path(), StoreConfig::default()).unwrap_err();
    assert_locked(&err, dir.path());
    let clone = first.clone();
    drop(first);
    assert_locked(&Store::open(dir.path(), StoreConfig::default()).unwrap_err(), dir.path());
    drop(clone); // the last handle closes the database and releases the lock
    open(dir.path());
}

#[test]
fn open_while_another_process_holds_the_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = CrashChild::spawn(dir.path(), 0, 1);
    child.wait_for(|line| line == "opened");
    assert_locked(&Store::open(dir.path(), StoreConfig::default()).unwrap_err(), dir.path());
    child.kill();
    // The kernel releases the lock with the killed process.
    open(dir.path());
}

fn assert_locked(err: &StoreError, dir: &Path) {
    match err {
        StoreError::Locked { path } => assert_eq!(path, dir),
        other => panic!("expected Locked, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("is another rpcmesh running with this home?"), "{msg}");
    assert!(msg.contains(&dir.display().to_string()), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// kill -9 durability.
//
// The parent test re-runs this test binary with only `crash_child` selected. The child writes
// entries numbered n = start, start+1, ... forever; after each batch it flushes and prints
// `committed <n>`. The parent kills it (SIGKILL) at a different point each round, reopens the
// store, and checks that every entry up to the last `committed` line is present and intact.

const CHILD_DIR_ENV: &str = "RPCMESH_STORE_CRASH_DIR";
const CHILD_START_ENV: &str = "RPCMESH_STORE_CRASH_START";
const CHILD_SEED_ENV: &str = "RPCMESH_STORE_CRASH_SEED";
/// Entry numbers of round r start at r * ROUND_STRIDE, so rounds never overlap.
const ROUND_STRIDE: u64 = 1_000_000;
/// How long the parent waits for the child's next expected line before failing.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
/// Starts every line the child prints for the parent. libtest writes its own text on the same
/// stdout (`test store::crash_child ... ` precedes the first line), so lines are searched for it.
const MARK: &str = "@crash-child ";

fn crash_cfg() -> StoreConfig {
    // Nothing is pruned in this test.
    StoreConfig {
        attestation_ttl_ms: u64::MAX,
        max_attestations: usize::MAX,
        max_evidence: usize::MAX,
        ..Default::default()
    }
}

/// Announcement signers, attesters and subjects of the crash test.
fn crash_ids() -> [Identity; 3] {
    [id(101), id(102), id(103)]
}

/// Entry n is a pure function of n, so the parent can recompute what the child wrote.
enum Entry {
    Announcement(Signed<CapacityAnnouncement>),
    Attestation(Signed<HealthAttestation>),
    Peer(PublicKey, PeerRecord),
    Evidence(EvidenceRecord),
}

fn crash_entry(n: u64) -> Entry {
    let ids = crash_ids();
    let pick = |k: u64| &ids[(k % 3) as usize];
    match n % 4 {
        0 => Entry::Announcement(announcement(pick(n / 4), n, T0 + n, 3_600_000)),
        1 => Entry::Attestation(attestation(pick(n), pick(n / 4 + 1).public_key(), 1 + n % 2, T0 + n)),
        2 => Entry::Peer(
            crash_peer_key(n),
            PeerRecord { addrs: vec![format!("/ip4/10.1.0.1/tcp/{n}")], last_seen_ms: n },
        ),
        _ => {
            // Every 8th evidence record is large enough for sled to store it as a separate blob.
            let len = if n % 32 == 3 { 100_000 } else { (n % 50) as usize };
            let data = (0..len).map(|i| (i as u64 ^ n) as u8).collect();
            Entry::Evidence(evidence(T0 + n, pick(n).public_key(), &format!("n={n}"), data))
        }
    }
}

fn crash_peer_key(n: u64) -> PublicKey {
    let mut k = [0xab; 32];
    k[24..].copy_from_slice(&n.to_be_bytes());
    PublicKey(k)
}

fn write_entry(store: &Store, n: u64) {
    match crash_entry(n) {
        Entry::Announcement(a) => assert!(store.put_announcement(&a).unwrap(), "entry {n}: announcement not stored"),
        Entry::Attestation(a) => store.put_attestation(&a).unwrap(),
        Entry::Peer(k, r) => store.put_peer(&k, &r).unwrap(),
        Entry::Evidence(e) => {
            store.put_evidence(&e).unwrap();
        }
    }
}

/// A small deterministic generator (xorshift64*) for batch sizes and kill points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The child half of `kill_9_loses_no_committed_entry`; does nothing unless run by it.
#[test]
#[ignore = "run as a child process by kill_9_loses_no_committed_entry"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else { return };
    let env_u64 = |name| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(1);
    let (mut n, mut rng) = (env_u64(CHILD_START_ENV), Rng(env_u64(CHILD_SEED_ENV) | 1));
    let store = Store::open(Path::new(&dir), crash_cfg()).unwrap_or_else(|e| panic!("child: {e}"));
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MARK}opened").and_then(|_| out.flush()).unwrap();
    loop {
        // Batches of 1..=3 writes per flush, so kills also land between writes of a batch.
        for _ in 0..1 + rng.next() % 3 {
            write_entry(&store, n);
            n += 1;
        }
        store.flush().unwrap();
        writeln!(out, "{MARK}committed {}", n - 1).and_then(|_| out.flush()).unwrap();
    }
}

/// A running `crash_child`; killed and reaped on drop, whatever happens in the test.
struct CrashChild {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    last_committed: Option<u64>,
}

impl CrashChild {
    fn spawn(dir: &Path, start: u64, seed: u64) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["store::crash_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR_ENV, dir)
            .env(CHILD_START_ENV, start.to_string())
            .env(CHILD_SEED_ENV, seed.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr_pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr_pipe.read_to_string(&mut s);
            s
        });
        Self { child, lines, stderr: Some(stderr), last_committed: None }
    }

    /// The child's message in `line` (after [`MARK`]), noting `committed` numbers.
    fn note<'l>(&mut self, line: &'l str) -> Option<&'l str> {
        let msg = &line[line.find(MARK)? + MARK.len()..];
        if let Some(n) = msg.strip_prefix("committed ").and_then(|n| n.parse().ok()) {
            self.last_committed = Some(n);
        }
        Some(msg)
    }

    /// Reads the child's messages until one satisfies `pred`; fails with the child's stderr if
    /// it dies or goes quiet first.
    fn wait_for(&mut self, mut pred: impl FnMut(&str) -> bool) {
        let deadline = Instant::now() + CHILD_TIMEOUT;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if self.note(&line).is_some_and(&mut pred) {
                        return;
                    }
                }
                Err(e) => {
                    self.kill();
                    let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
                    panic!("the crash child stopped printing ({e:?}); its stderr:\n{stderr}");
                }
            }
        }
    }

    /// SIGKILLs the child, reaps it, and reads the lines it printed before dying.
    /// Returns the last `committed` entry number.
    fn kill(&mut self) -> Option<u64> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The pipe closes with the process, so this ends.
        while let Ok(line) = self.lines.recv_timeout(CHILD_TIMEOUT) {
            self.note(&line);
        }
        self.last_committed
    }
}

impl Drop for CrashChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a round ends the child.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// At once: during exec, start-up or the store's recovery.
    Spawn,
    /// Right after it opened the store: during its first writes.
    Opened,
    /// Right after reading this many `committed` lines (the child is already writing the next).
    Commits(u64),
    /// After this many `committed` lines and a busy wait of up to ~2 ms (a different point of
    /// the write/flush cycle each round; only varies where the kill lands, nothing waits on it).
    CommitsThenSpin(u64),
}

#[test]
fn kill_9_loses_no_committed_entry() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // Fixed by default; set the variable to explore other batch sizes and kill points.
    let seed = std::env::var(CHILD_SEED_ENV).ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_u64);
    let mut rng = Rng(seed | 1);
    let plan = [
        KillAt::Commits(5),
        KillAt::Spawn,
        KillAt::CommitsThenSpin(12),
        KillAt::Opened,
        KillAt::Commits(1),
        KillAt::CommitsThenSpin(30),
        KillAt::Commits(20),
        KillAt::Spawn,
        KillAt::CommitsThenSpin(3),
        KillAt::Commits(45),
        KillAt::CommitsThenSpin(60),
        KillAt::Opened,
        KillAt::Commits(80),
        KillAt::CommitsThenSpin(8),
    ];
    let mut committed: Vec<RangeInclusive<u64>> = Vec::new();
    for (round, kill_at) in plan.into_iter().enumerate() {
        let start = (round as u64 + 1) * ROUND_STRIDE;
        let mut child = CrashChild::spawn(dir.path(), start, rng.next());
        match kill_at {
            KillAt::Spawn => {}
            KillAt::Opened => child.wait_for(|l| l == "opened"),
            KillAt::Commits(k) | KillAt::CommitsThenSpin(k) => {
                let mut seen = 0;
                child.wait_for(|l| {
                    seen += u64::from(l.starts_with("committed "));
                    seen == k
                });
                if let KillAt::CommitsThenSpin(_) = kill_at {
                    let spin = Duration::from_micros(rng.next() % 2_000);
                    let t = Instant::now();
                    while t.elapsed() < spin {
                        std::hint::spin_loop();
                    }
                }
            }
        }
        if let Some(last) = child.kill() {
            committed.push(start..=last);
        }
        drop(child);

        let ctx = format!("round {round} ({kill_at:?}, seed {seed})");
        let store =
            Store::open(dir.path(), crash_cfg()).unwrap_or_else(|e| panic!("{ctx}: reopening after kill -9: {e}"));
        check_committed(&store, &committed, &ctx);
    }
    let total: u64 = committed.iter().map(|r| r.end() - r.start() + 1).sum();
    assert!(total >= 300, "only {total} entries were committed");
    eprintln!("kill -9 test: {} rounds, {total} committed entries, {:?}", plan.len(), started.elapsed());
}

/// Every entry in `committed` is stored exactly as written, and everything stored is an entry
/// some child wrote (committed or not): nothing lost, nothing garbled.
fn check_committed(store: &Store, committed: &[RangeInclusive<u64>], ctx: &str) {
    let ids = crash_ids();
    let anns: HashMap<PublicKey, Signed<CapacityAnnouncement>> =
        store.announcements().unwrap().into_iter().map(|a| (a.signer, a)).collect();
    let atts: HashSet<Vec<u8>> = ids
        .iter()
        .flat_map(|i| store.attestations_about(&i.public_key()).unwrap())
        .inspect(|a| {
            assert!(
                matches!(crash_entry(a.body.header.issued_at_ms - T0), Entry::Attestation(e) if e == *a),
                "{ctx}: stray attestation"
            )
        })
        .map(|a| a.to_bytes())
        .collect();
    let peers: HashMap<PublicKey, PeerRecord> = store.peers().unwrap().into_iter().collect();
    let evidence = store.evidence().unwrap();
    // Ids follow insertion order across crashes: entry numbers grow with them.
    let numbers: Vec<u64> = evidence.iter().map(|(_, e)| e.at_ms - T0).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{ctx}: evidence ids out of insertion order: {numbers:?}");
    let evidence: HashMap<String, EvidenceRecord> = evidence.into_iter().map(|(_, e)| (e.detail.clone(), e)).collect();

    let mut newest_seq: HashMap<PublicKey, u64> = HashMap::new();
    for n in committed.iter().flat_map(|r| r.clone()) {
        match crash_entry(n) {
            Entry::Announcement(a) => {
                let seq = newest_seq.entry(a.signer).or_default();
                *seq = (*seq).max(n);
            }
            Entry::Attestation(a) => assert!(atts.contains(&a.to_bytes()), "{ctx}: lost attestation {n}"),
            Entry::Peer(k, r) => assert_eq!(peers.get(&k), Some(&r), "{ctx}: lost peer {n}"),
            Entry::Evidence(e) => assert_eq!(evidence.get(&e.detail), Some(&e), "{ctx}: lost evidence {n}"),
        }
    }
    for (signer, seq) in newest_seq {
        let stored = anns.get(&signer).unwrap_or_else(|| panic!("{ctx}: lost the announcement of {signer}"));
        let stored_seq = stored.body.header.seq;
        assert!(stored_seq >= seq, "{ctx}: announcement of {signer} went back from seq {seq} to {stored_seq}");
        assert!(
            matches!(crash_entry(stored_seq), Entry::Announcement(e) if e == *stored),
            "{ctx}: the stored announcement of {signer} (seq {stored_seq}) is not the one written"
        );
        stored.verify().unwrap();
    }
    for (k, r) in &peers {
        let n = u64::from_be_bytes(k.0[24..].try_into().unwrap());
        assert!(matches!(crash_entry(n), Entry::Peer(ek, er) if ek == *k && er == *r), "{ctx}: stray peer {k}");
    }
    for (detail, e) in &evidence {
        let n: u64 = detail.strip_prefix("n=").and_then(|n| n.parse().ok()).unwrap();
        assert!(matches!(crash_entry(n), Entry::Evidence(ee) if ee == *e), "{ctx}: stray evidence {detail}");
    }
}
