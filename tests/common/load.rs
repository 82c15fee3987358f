//! Load-test fixtures (tests/crash_load.rs): a seeded random generator, a retry loop that retries
//! what the sidecars retry, counters shared by the clients, and a reader of a volume's files.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// One call of `method` on a clone of `client` with a clone of `req`, as a retryable future.
#[macro_export]
macro_rules! call {
    ($client:expr, $method:ident, $req:expr) => {{
        let (mut client, req) = ($client.clone(), $req.clone());
        async move { client.$method(req).await }
    }};
}

/// A small xorshift generator; the seed is printed so a run can be repeated.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Counts by name (retries by gRPC code, acknowledged operations by kind), shared by all clients.
#[derive(Clone, Default)]
pub struct Counts(Arc<Mutex<BTreeMap<String, u64>>>);
impl Counts {
    pub fn add(&self, what: impl Into<String>) {
        *self.0.lock().unwrap().entry(what.into()).or_default() += 1;
    }
    pub fn get(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap().clone()
    }
    pub fn total(&self) -> u64 {
        self.0.lock().unwrap().values().sum()
    }
}

/// Calls `op` until it succeeds, retrying what a sidecar retries (the driver gone or busy), counted
/// in `retries` by `what` and code. Any other error fails the test. Gives up after two minutes so a hang cannot stall CI.
pub async fn settle<T, F, Fut>(what: &str, retries: &Counts, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let started = Instant::now();
    loop {
        let status = match op().await {
            Ok(resp) => return resp.into_inner(),
            Err(status) => status,
        };
        let retry = matches!(
            status.code(),
            Code::Unavailable
                | Code::Aborted
                | Code::DeadlineExceeded
                | Code::Unknown
                | Code::Cancelled
        );
        assert!(retry, "{what}: not retryable: {status:?}");
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{what}: still failing after 2 min: {status:?}"
        );
        retries.add(format!("{what} {:?}", status.code()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A channel to the driver's socket that connects on first use (and again after a restart).
pub fn lazy_channel(socket: &Path) -> Channel {
    Endpoint::try_from(format!("unix://{}", socket.display()))
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect_lazy()
}

/// A directory's contents: relative path → file data (directories as `path/` with no data).
pub type Tree = BTreeMap<String, Vec<u8>>;

/// Reads every file and directory below `dir` (symlinks and special files are not expected).
pub fn read_tree(dir: &Path) -> Tree {
    fn walk(dir: &Path, prefix: &str, out: &mut Tree) {
        for name in super::ls(dir) {
            let path = dir.join(&name);
            let rel = format!("{prefix}{name}");
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(&path, &format!("{rel}/"), out);
            } else {
                assert!(meta.is_file(), "{}: not a file", path.display());
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    assert!(dir.is_dir(), "{} is not a directory", dir.display());
    let mut out = Tree::new();
    walk(dir, "", &mut out);
    out
}
