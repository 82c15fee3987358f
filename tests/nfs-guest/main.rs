//! Scenarios against real kernel NFS mounts, driven over gRPC like Kubernetes would. They run inside
//! the QEMU guest of tests/nfs-guest (this host's kernel has no NFS client), started by
//! `bash tests/nfs-guest/csi-suite.sh`, against a driver the guest script started and the harness's
//! ganesha on the host (10.0.2.2 from the guest). Each check prints `PASS name` or `FAIL name detail`
//! (the harness counts those lines); the test fails if any check did.
//!
//! - story-*: the StatefulSet story: two volumes made as csi-provisioner would for
//!   redis-pv-sts-0/1 (RWX, 100Mi), each published at two pods' targets, data written through one
//!   read through the other, unpublished, published again, deleted (the directories' absence is
//!   checked on the host afterwards, from `$RESULTS/deleted-volumes.txt`). Once with the
//!   StorageClass's mountOptions (nfsvers=4.1, as capability mount flags), once with the
//!   `mountOptions` parameter (nfsvers=3). A read-only pod reads but cannot write. One volume is
//!   deleted by a second, fresh driver: the options used at create time come back from the
//!   volume id alone.
//! - default-version: no version named: the node mounts the newest the server speaks (4.2).
//! - working-estale: the export directory behind the controller's kept mount is replaced on the
//!   server, so the mount's handles go stale; the next CreateVolume remounts and succeeds.
//! - node-stale-target: the same for a published target; publishing again remounts it.
//! - server-down: ganesha is stopped while CreateVolume and NodePublish calls are in flight; every
//!   call answers within its deadline (also NodeUnpublish of a busy target, which needs the lazy
//!   fallback, and NodeGetVolumeStats); after a start the next calls succeed on the same driver
//!   process and none of its threads is left stuck in the kernel.
//! - server-restart: a ganesha restart does not leave stale handles behind.
//!
//! Without `NSC_GUEST_SUITE=1` the test only prints why it does nothing (so `cargo test` on a host
//! passes). Environment: NSC_SOCKET, NSC_SOCKET2 (a controller-only driver), NSC_DRIVER_LOG,
//! NFS_SERVER, NFS_SHARE, RESULTS, NSC_PORT_OPTS_4 / NSC_PORT_OPTS_3 (",port=…" when ganesha is not
//! on 2049), NSC_GUEST_ONLY (comma list of scenario names to run; default all).

use nfs_subdir_csi::csi::pb::{
    self,
    controller_client::ControllerClient,
    node_client::NodeClient,
    volume_capability::{AccessMode, AccessType, MountVolume, access_mode::Mode},
};
use std::collections::HashMap;
use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

const MI: i64 = 1 << 20;

/// What the guest script tells us.
struct Env {
    socket: PathBuf,
    socket2: PathBuf,
    server: String,
    share: String,
    results: PathBuf,
    driver_log: PathBuf,
    port4: String,
    port3: String,
}

impl Env {
    fn from_env() -> Env {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
        Env {
            socket: var("NSC_SOCKET", "/tmp/nsc/csi.sock").into(),
            socket2: var("NSC_SOCKET2", "/tmp/nsc/csi2.sock").into(),
            server: var("NFS_SERVER", "10.0.2.2"),
            share: var("NFS_SHARE", "/export"),
            results: var("RESULTS", "/run/nfs-guest").into(),
            driver_log: var("NSC_DRIVER_LOG", "/run/nfs-guest/driver.log").into(),
            port4: var("NSC_PORT_OPTS_4", ""),
            port3: var("NSC_PORT_OPTS_3", ""),
        }
    }

    /// Mount options naming NFS version `vers`, with the port options the harness needs.
    fn version_opts(&self, vers: &str) -> String {
        let ports = if vers == "3" {
            &self.port3
        } else {
            &self.port4
        };
        format!("nfsvers={vers}{ports}")
    }
}

/// PASS/FAIL lines and their tally.
#[derive(Default)]
struct Report {
    passed: usize,
    failed: Vec<String>,
}

impl Report {
    fn check(&mut self, name: &str, ok: bool, detail: impl Display) -> bool {
        let detail = detail.to_string();
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(" ({detail})")
        };
        if ok {
            self.passed += 1;
            println!("PASS {name}{detail}");
        } else {
            self.failed.push(name.to_owned());
            println!("FAIL {name}{detail}");
        }
        ok
    }
}

fn info(msg: impl Display) {
    println!("  {msg}");
}

/// Both services of one driver.
#[derive(Clone)]
struct Csi {
    controller: ControllerClient<Channel>,
    node: NodeClient<Channel>,
}

async fn connect(socket: &Path) -> Csi {
    let endpoint = tonic::transport::Endpoint::try_from(format!("unix://{}", socket.display()))
        .expect("endpoint");
    let started = Instant::now();
    loop {
        match endpoint.connect().await {
            Ok(ch) => {
                return Csi {
                    controller: ControllerClient::new(ch.clone()),
                    node: NodeClient::new(ch),
                };
            }
            Err(e) if started.elapsed() > Duration::from_secs(20) => {
                panic!("cannot connect to {}: {e}", socket.display())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A request with a gRPC deadline.
fn req<T>(msg: T, deadline: Duration) -> Request<T> {
    let mut r = Request::new(msg);
    r.set_timeout(deadline);
    r
}

/// How one call went: its result code and how long the answer took. A call the driver does not
/// answer at all is cut off 5 s after its deadline and reported as `None`.
struct Timed<T> {
    result: Option<Result<T, Status>>,
    took: Duration,
}

impl<T> Timed<T> {
    fn code(&self) -> String {
        match &self.result {
            None => "no answer".into(),
            Some(Ok(_)) => "OK".into(),
            Some(Err(s)) => format!("{:?}", s.code()),
        }
    }
    fn ok(&self) -> bool {
        matches!(self.result, Some(Ok(_)))
    }
    fn describe(&self) -> String {
        let msg = match &self.result {
            Some(Err(s)) => format!(": {}", s.message().chars().take(160).collect::<String>()),
            _ => String::new(),
        };
        format!("{} after {} ms{msg}", self.code(), self.took.as_millis())
    }
    /// Answered before `deadline` with OK or one of `codes`.
    fn answered_within(&self, deadline: Duration, codes: &[Code]) -> bool {
        self.took < deadline
            && match &self.result {
                Some(Ok(_)) => true,
                Some(Err(s)) => codes.contains(&s.code()),
                None => false,
            }
    }
}

async fn timed<T, F>(deadline: Duration, fut: F) -> Timed<T>
where
    F: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
{
    let started = Instant::now();
    let result = tokio::time::timeout(deadline + Duration::from_secs(5), fut)
        .await
        .ok()
        .map(|r| r.map(tonic::Response::into_inner));
    Timed {
        result,
        took: started.elapsed(),
    }
}

fn capability(flags: &[String]) -> pb::VolumeCapability {
    pb::VolumeCapability {
        access_mode: Some(AccessMode {
            mode: Mode::MultiNodeMultiWriter as i32,
        }),
        access_type: Some(AccessType::Mount(MountVolume {
            mount_flags: flags.to_vec(),
            ..Default::default()
        })),
    }
}

/// How a scenario's StorageClass names the NFS version.
#[derive(Clone)]
struct Class {
    /// StorageClass parameters other than the claim metadata.
    params: Vec<(String, String)>,
    /// StorageClass mountOptions (capability mount flags at create and publish time).
    flags: Vec<String>,
    /// The version the mounts must show.
    vers: String,
}

impl Class {
    /// nfsvers in the StorageClass's mountOptions (the usual Kubernetes way).
    fn with_flags(env: &Env, share: &str, vers: &str) -> Class {
        Class {
            params: vec![
                ("server".into(), env.server.clone()),
                ("share".into(), share.into()),
            ],
            flags: env
                .version_opts(vers)
                .split(',')
                .map(str::to_owned)
                .collect(),
            vers: vers.into(),
        }
    }
    /// nfsvers in the `mountOptions` parameter (as csi-driver-nfs accepts).
    fn with_param(env: &Env, share: &str, vers: &str) -> Class {
        Class {
            params: vec![
                ("server".into(), env.server.clone()),
                ("share".into(), share.into()),
                ("mountOptions".into(), env.version_opts(vers)),
            ],
            flags: Vec::new(),
            vers: vers.into(),
        }
    }

    /// CreateVolume as csi-provisioner sends it for the claim `pvc` (namespace default).
    fn create(&self, name: &str, pvc: &str) -> pb::CreateVolumeRequest {
        let mut parameters: HashMap<String, String> = self.params.iter().cloned().collect();
        parameters.insert("csi.storage.k8s.io/pvc/name".into(), pvc.into());
        parameters.insert("csi.storage.k8s.io/pvc/namespace".into(), "default".into());
        parameters.insert("csi.storage.k8s.io/pv/name".into(), name.into());
        pb::CreateVolumeRequest {
            name: name.into(),
            capacity_range: Some(pb::CapacityRange {
                required_bytes: 100 * MI,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![capability(&self.flags)],
            parameters,
            ..Default::default()
        }
    }

    /// NodePublishVolume as kubelet sends it for `vol` at `target`.
    fn publish(&self, vol: &pb::Volume, target: &Path) -> pb::NodePublishVolumeRequest {
        pb::NodePublishVolumeRequest {
            volume_id: vol.volume_id.clone(),
            target_path: target.display().to_string(),
            volume_capability: Some(capability(&self.flags)),
            volume_context: vol.volume_context.clone(),
            ..Default::default()
        }
    }
}

fn new_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// A kubelet-style target for a new pod: /tmp/kubelet/pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount,
/// with its parent created (kubelet's part); the driver creates the target itself.
fn pod_target(pv: &str) -> PathBuf {
    let dir = Path::new("/tmp/kubelet/pods")
        .join(uuid::Uuid::new_v4().to_string())
        .join("volumes/kubernetes.io~csi")
        .join(pv);
    std::fs::create_dir_all(&dir).expect("mkdir pod dir");
    dir.join("mount")
}

/// The mountinfo line at `path`: (fstype, source, super options).
fn mounted_at(path: &Path) -> Option<(String, String, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = path.display().to_string();
    text.lines().rev().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mp = left.split(' ').nth(4)?;
        if mp != want {
            return None;
        }
        let r: Vec<&str> = right.split(' ').collect();
        Some((
            r.first()?.to_string(),
            r.get(1)?.to_string(),
            r.get(2)?.to_string(),
        ))
    })
}

/// A driver's working mounts (NFS mounts at `<dir>/<key>-<random>/root`): (mount point, fstype,
/// super options).
fn working_mounts(dir: &Path) -> Vec<(PathBuf, String, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mp = PathBuf::from(left.split(' ').nth(4)?);
            let r: Vec<&str> = right.split(' ').collect();
            (mp.parent()?.parent() == Some(dir) && r.first()?.starts_with("nfs"))
                .then(|| (mp, r[0].to_owned(), r.get(2).unwrap_or(&"").to_string()))
        })
        .collect()
}

fn version_shown(vers: &str, fstype: &str, opts: &str) -> bool {
    let want_type = if vers == "3" { "nfs" } else { "nfs4" };
    fstype == want_type && opts.split(',').any(|o| o == format!("vers={vers}"))
}

/// Reads a file with a time bound (the server may be down).
async fn read_bounded(path: &Path, within: Duration) -> Result<String, String> {
    let p = path.to_owned();
    let task = tokio::task::spawn_blocking(move || std::fs::read_to_string(p));
    match tokio::time::timeout(within, task).await {
        Ok(Ok(Ok(s))) => Ok(s),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", within.as_millis())),
    }
}

fn errno_of(path: &Path) -> String {
    match nix::sys::statvfs::statvfs(path) {
        Ok(_) => "ok".into(),
        Err(e) => format!("{e}"),
    }
}

/// Threads of the driver (NSC_DRIVER_PID) in uninterruptible sleep: stuck in the kernel, usually
/// on an NFS server that does not answer. `None` without a pid.
fn stuck_threads() -> Option<usize> {
    let pid = std::env::var("NSC_DRIVER_PID").ok()?;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    Some(
        tasks
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("stat"))
                    .ok()
                    .and_then(|st| st.rsplit_once(") ").map(|(_, r)| r.starts_with('D')))
                    .unwrap_or(false)
            })
            .count(),
    )
}

/// Appends volume names for the host check.
fn record_deleted(env: &Env, names: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(env.results.join("deleted-volumes.txt"))
        .expect("open deleted-volumes.txt");
    for n in names {
        writeln!(f, "{n}").expect("write deleted-volumes.txt");
    }
}

/// Asks the host to act on ganesha (protocol in run.sh's header); returns the ack time.
async fn nfs_server(env: &Env, op: &str) -> Result<Duration, String> {
    let req = env.results.join(format!("ganesha-{op}"));
    let ack = env.results.join(format!("ganesha-{op}.ack"));
    let tmp = env.results.join(format!("ganesha-{op}.tmp"));
    let _ = std::fs::remove_file(&ack);
    std::fs::write(&tmp, "").map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, &req).map_err(|e| e.to_string())?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(st) = std::fs::read_to_string(&ack) {
            let _ = std::fs::remove_file(&ack);
            return if st.trim() == "ok" {
                Ok(started.elapsed())
            } else {
                Err(st.trim().to_owned())
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_file(&req);
    Err("no acknowledgement within 60 s".into())
}

/// A mount of the whole export made by the test itself, to change things behind the driver's back.
struct RawMount {
    path: PathBuf,
}

impl RawMount {
    fn new(env: &Env, vers: &str) -> Result<RawMount, String> {
        let path = PathBuf::from(format!("/tmp/raw-v{vers}"));
        std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
        let ports = if vers == "3" { &env.port3 } else { &env.port4 };
        let mut data = format!("vers={vers},addr={}{ports}", env.server);
        if vers == "3" {
            data.push_str(",nolock");
        }
        nix::mount::mount(
            Some(format!("{}:{}", env.server, env.share).as_str()),
            &path,
            Some("nfs"),
            nix::mount::MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|e| format!("mount {data}: {e}"))?;
        Ok(RawMount { path })
    }
}

impl Drop for RawMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn count_in_log(env: &Env, needle: &str) -> usize {
    std::fs::read_to_string(&env.driver_log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

const DL: Duration = Duration::from_secs(10);

async fn create(csi: &mut Csi, r: pb::CreateVolumeRequest, dl: Duration) -> Timed<pb::Volume> {
    let t = timed(dl, csi.controller.create_volume(req(r, dl))).await;
    Timed {
        result: t.result.map(|r| r.map(|v| v.volume.unwrap_or_default())),
        took: t.took,
    }
}

async fn delete(csi: &mut Csi, id: &str, dl: Duration) -> Timed<pb::DeleteVolumeResponse> {
    let r = pb::DeleteVolumeRequest {
        volume_id: id.into(),
        ..Default::default()
    };
    timed(dl, csi.controller.delete_volume(req(r, dl))).await
}

async fn publish(
    csi: &mut Csi,
    r: pb::NodePublishVolumeRequest,
    dl: Duration,
) -> Timed<pb::NodePublishVolumeResponse> {
    timed(dl, csi.node.node_publish_volume(req(r, dl))).await
}

async fn unpublish(
    csi: &mut Csi,
    id: &str,
    target: &Path,
    dl: Duration,
) -> Timed<pb::NodeUnpublishVolumeResponse> {
    let r = pb::NodeUnpublishVolumeRequest {
        volume_id: id.into(),
        target_path: target.display().to_string(),
    };
    timed(dl, csi.node.node_unpublish_volume(req(r, dl))).await
}

// ------------------------------------------------------------------------------------------------

/// The StatefulSet story for one StorageClass.
async fn story(env: &Env, rep: &mut Report, label: &str, class: &Class) {
    let mut csi = connect(&env.socket).await;
    let mut fresh = connect(&env.socket2).await;
    let p = |s: &str| format!("story-{label}-{s}");
    let mut vols = Vec::new();
    for i in 0..2 {
        let name = new_name("pvc");
        let pvc = format!("redis-100m-pvc-redis-pv-sts-{i}");
        let t = create(&mut csi, class.create(&name, &pvc), DL).await;
        let detail = t.describe();
        let Some(Ok(vol)) = t.result else {
            rep.check(&p(&format!("create-sts-{i}")), false, detail);
            return;
        };
        let opts_in_id = class
            .flags
            .iter()
            .chain(
                class
                    .params
                    .iter()
                    .filter(|(k, _)| k == "mountOptions")
                    .map(|(_, v)| v),
            )
            .all(|o| vol.volume_id.contains(o.as_str()));
        rep.check(
            &p(&format!("create-sts-{i}")),
            vol.capacity_bytes == 100 * MI && opts_in_id,
            format!("{detail}; id {}", vol.volume_id),
        );
        vols.push((name, vol));
    }

    // two pods per volume: write through one, read through the other
    for (i, (name, vol)) in vols.iter().enumerate() {
        let (a, b) = (pod_target(name), pod_target(name));
        let mut ok = true;
        for t in [&a, &b] {
            let r = publish(&mut csi, class.publish(vol, t), DL).await;
            let shown = mounted_at(t);
            let good = r.ok()
                && shown.as_ref().is_some_and(|(fs, src, opts)| {
                    version_shown(&class.vers, fs, opts) && src.ends_with(&format!("/{name}"))
                });
            ok &= rep.check(
                &p(&format!("publish-sts-{i}")),
                good,
                format!("{}; mounted {shown:?}", r.describe()),
            );
        }
        if !ok {
            return;
        }
        let data = format!("redis aof of sts-{i} {}\n", uuid::Uuid::new_v4());
        let wrote = std::fs::write(a.join("appendonly.aof"), &data);
        let read = std::fs::read_to_string(b.join("appendonly.aof"));
        rep.check(
            &p(&format!("rwx-sts-{i}")),
            wrote.is_ok() && read.as_deref().ok() == Some(data.as_str()),
            format!("written through pod a {wrote:?}, read through pod b {read:?}"),
        );
        // the pod sees its own directory, not the share (no other volume's directory in it)
        let mut names: Vec<String> = std::fs::read_dir(&b)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        rep.check(
            &p(&format!("target-is-volume-dir-sts-{i}")),
            names == ["appendonly.aof"],
            format!("entries {names:?}"),
        );
        for t in [&a, &b] {
            let r = unpublish(&mut csi, &vol.volume_id, t, DL).await;
            rep.check(
                &p(&format!("unpublish-sts-{i}")),
                r.ok() && mounted_at(t).is_none() && !t.exists(),
                r.describe(),
            );
        }
        // the pod comes back (on this node or another): same data
        let c = pod_target(name);
        let r = publish(&mut csi, class.publish(vol, &c), DL).await;
        let again = std::fs::read_to_string(c.join("appendonly.aof"));
        rep.check(
            &p(&format!("republish-sees-data-sts-{i}")),
            r.ok() && again.as_deref().ok() == Some(data.as_str()),
            format!("{}; read {again:?}", r.describe()),
        );
        let r = unpublish(&mut csi, &vol.volume_id, &c, DL).await;
        rep.check(
            &p(&format!("unpublish-again-sts-{i}")),
            r.ok(),
            r.describe(),
        );
        // a read-only pod (readonly in the PV or the pod's volume): reads, cannot write
        let ro = pod_target(name);
        let mut r_req = class.publish(vol, &ro);
        r_req.readonly = true;
        let r = publish(&mut csi, r_req, DL).await;
        let shown = mounted_at(&ro);
        let is_ro = shown
            .as_ref()
            .is_some_and(|(_, _, o)| o.split(',').any(|x| x == "ro"))
            || std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap_or_default()
                .lines()
                .any(|l| l.contains(&format!(" {} ro,", ro.display())));
        let read = std::fs::read_to_string(ro.join("appendonly.aof"));
        let write = std::fs::write(ro.join("x"), "x");
        rep.check(
            &p(&format!("readonly-sts-{i}")),
            r.ok()
                && is_ro
                && read.as_deref().ok() == Some(data.as_str())
                && write
                    .as_ref()
                    .is_err_and(|e| e.raw_os_error() == Some(libc::EROFS)),
            format!("{}; read {read:?}; write {write:?}", r.describe()),
        );
        let r = unpublish(&mut csi, &vol.volume_id, &ro, DL).await;
        rep.check(
            &p(&format!("unpublish-readonly-sts-{i}")),
            r.ok(),
            r.describe(),
        );
    }

    // claims deleted: sts-0 by the driver that made it, sts-1 by a fresh controller that knows
    // nothing but the id (it must mount the export with the options given at create time)
    let before = working_mounts(Path::new("/tmp/nsc/work2")).len();
    for (i, (name, vol)) in vols.iter().enumerate() {
        let who = if i == 0 { &mut csi } else { &mut fresh };
        let r = delete(who, &vol.volume_id, DL).await;
        rep.check(&p(&format!("delete-sts-{i}")), r.ok(), r.describe());
        record_deleted(env, std::slice::from_ref(name));
    }
    let after = working_mounts(Path::new("/tmp/nsc/work2"));
    let good = after
        .iter()
        .any(|(_, fs, opts)| version_shown(&class.vers, fs, opts));
    rep.check(
        &p("delete-by-fresh-controller-uses-create-options"),
        good,
        format!("its working mounts before {before}, now {after:?}"),
    );
    let r = delete(&mut csi, &vols[0].1.volume_id, DL).await;
    rep.check(&p("delete-again-is-ok"), r.ok(), r.describe());
}

/// The directory behind the controller's kept mount is replaced on the server: its handles go
/// stale (ESTALE); the next CreateVolume must remount and succeed.
async fn working_estale(env: &Env, rep: &mut Report) {
    let mut csi = connect(&env.socket).await;
    let raw = match RawMount::new(env, "4.1") {
        Ok(r) => r,
        Err(e) => {
            rep.check("working-estale-raw-mount", false, e);
            return;
        }
    };
    let dir = format!("estale-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let share_dir = raw.path.join(&dir);
    std::fs::create_dir(&share_dir).expect("mkdir share dir");
    let share = format!("{}/{dir}", env.share.trim_end_matches('/'));
    let class = Class::with_param(env, &share, "4.1");
    let work = Path::new("/tmp/nsc/work");
    let src = format!("{}:{share}", env.server);
    let mounts_of = || {
        working_mounts(work)
            .into_iter()
            .filter(|(mp, _, _)| mounted_at(mp).is_some_and(|(_, s, _)| s == src))
            .map(|(mp, _, _)| mp)
            .collect::<Vec<_>>()
    };
    let first = new_name("pvc");
    let t = create(&mut csi, class.create(&first, "estale-0"), DL).await;
    let first_call = t.describe();
    let Some(Ok(v1)) = t.result else {
        rep.check("working-estale-first-create", false, first_call);
        return;
    };
    let before = mounts_of();
    rep.check(
        "working-estale-first-create",
        before.len() == 1,
        format!("{first_call}; working mounts of {src}: {before:?}"),
    );
    // replace the share directory on the server: old handles now point at a removed directory
    let old = raw.path.join(format!("{dir}-old"));
    let swapped = std::fs::rename(&share_dir, &old)
        .and_then(|()| std::fs::create_dir(&share_dir))
        .and_then(|()| std::fs::remove_dir_all(&old));
    if let Err(e) = swapped {
        rep.check("working-estale-swap", false, e);
        return;
    }
    let stale = before.first().map(|p| errno_of(p)).unwrap_or_default();
    info(format!("statfs of the old working mount now: {stale}"));
    let drops = count_in_log(env, "dropping working mount");
    let second = new_name("pvc");
    let t = create(&mut csi, class.create(&second, "estale-1"), DL).await;
    let after = mounts_of();
    let made = share_dir.join(&second).is_dir();
    rep.check(
        "working-estale-create-remounts",
        t.ok() && made && after.len() == 1 && after != before,
        format!(
            "{}; old mount {stale}; dir on server {made}; working mounts now {after:?}; \
             remounts logged {}",
            t.describe(),
            count_in_log(env, "dropping working mount") - drops
        ),
    );
    // the first volume went with the old directory; deleting it is fine (already gone)
    let r = delete(&mut csi, &v1.volume_id, DL).await;
    rep.check("working-estale-delete-vanished", r.ok(), r.describe());
    if let Some(Ok(v2)) = &t.result {
        let r = delete(&mut csi, &v2.volume_id, DL).await;
        rep.check("working-estale-delete", r.ok(), r.describe());
    }
}

/// A published target whose directory was replaced on the server (ESTALE): NodePublish at the
/// same target detaches it and mounts again.
async fn node_stale_target(env: &Env, rep: &mut Report) {
    let mut csi = connect(&env.socket).await;
    let class = Class::with_flags(env, &env.share, "4.1");
    let name = new_name("pvc");
    let t = create(&mut csi, class.create(&name, "stale-target"), DL).await;
    let Some(Ok(vol)) = t.result else {
        rep.check("node-stale-create", false, t.describe());
        return;
    };
    let target = pod_target(&name);
    let r = publish(&mut csi, class.publish(&vol, &target), DL).await;
    if !rep.check("node-stale-publish", r.ok(), r.describe()) {
        return;
    }
    std::fs::write(target.join("file"), "old").expect("write");
    let raw = match RawMount::new(env, "4.1") {
        Ok(r) => r,
        Err(e) => {
            rep.check("node-stale-raw-mount", false, e);
            return;
        }
    };
    let dir = raw.path.join(&name);
    let old = raw.path.join(format!("{name}-old"));
    let swapped = std::fs::rename(&dir, &old)
        .and_then(|()| std::fs::create_dir(&dir))
        .and_then(|()| std::fs::write(dir.join("file"), "new"))
        .and_then(|()| std::fs::remove_dir_all(&old));
    if let Err(e) = swapped {
        rep.check("node-stale-swap", false, e);
        return;
    }
    let before = errno_of(&target);
    rep.check(
        "node-stale-target-is-stale",
        before.contains("ESTALE"),
        format!("statfs of the target: {before}"),
    );
    let r = publish(&mut csi, class.publish(&vol, &target), DL).await;
    let read = std::fs::read_to_string(target.join("file"));
    rep.check(
        "node-stale-republish-remounts",
        r.ok() && read.as_deref().ok() == Some("new"),
        format!("{}; target now reads {read:?}", r.describe()),
    );
    let stacked = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&format!(" {} ", target.display())))
        .count();
    rep.check(
        "node-stale-one-mount-at-target",
        stacked == 1,
        format!("{stacked} mounts"),
    );
    let r = unpublish(&mut csi, &vol.volume_id, &target, DL).await;
    rep.check(
        "node-stale-unpublish",
        r.ok() && !target.exists(),
        r.describe(),
    );
    let r = delete(&mut csi, &vol.volume_id, DL).await;
    rep.check("node-stale-delete", r.ok(), r.describe());
    record_deleted(env, &[name]);
}

/// A StorageClass that names no NFS version: the node tries 4.2, 4.1, 4.0, 3 like mount.nfs and
/// mounts the newest the server speaks (ganesha here: 4.2); NFSv3 gets `nolock` added.
async fn default_version(env: &Env, rep: &mut Report) {
    let mut csi = connect(&env.socket).await;
    let class = Class {
        params: vec![
            ("server".into(), env.server.clone()),
            ("share".into(), env.share.clone()),
        ],
        flags: if env.port4.is_empty() {
            Vec::new()
        } else {
            env.port4
                .trim_start_matches(',')
                .split(',')
                .map(str::to_owned)
                .collect()
        },
        vers: "4.2".into(),
    };
    let name = new_name("pvc");
    let t = create(&mut csi, class.create(&name, "default-version"), DL).await;
    let detail = t.describe();
    let Some(Ok(vol)) = t.result else {
        rep.check("default-version-create", false, detail);
        return;
    };
    let target = pod_target(&name);
    let r = publish(&mut csi, class.publish(&vol, &target), DL).await;
    let shown = mounted_at(&target);
    rep.check(
        "default-version-mounts-4.2",
        r.ok()
            && shown
                .as_ref()
                .is_some_and(|(fs, _, o)| version_shown("4.2", fs, o)),
        format!("{}; mounted {shown:?}", r.describe()),
    );
    let r = unpublish(&mut csi, &vol.volume_id, &target, DL).await;
    rep.check("default-version-unpublish", r.ok(), r.describe());
    let r = delete(&mut csi, &vol.volume_id, DL).await;
    rep.check("default-version-delete", r.ok(), r.describe());
    record_deleted(env, &[name]);
}

/// One call made while the server goes away.
struct Flight {
    what: String,
    deadline: Duration,
    code: String,
    ok: bool,
    in_time: bool,
    took: Duration,
}

/// CreateVolume and NodePublish pairs back to back until `stop`, each with deadline `dl`.
async fn load_loop(
    csi: Csi,
    class: Class,
    target_vol: pb::Volume,
    dl: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (Vec<Flight>, Vec<pb::Volume>, Vec<PathBuf>) {
    let (mut flights, mut made, mut targets) = (Vec::new(), Vec::new(), Vec::new());
    // ABORTED: the volume is still busy with an earlier call (a mount waiting for the server)
    let codes = [Code::DeadlineExceeded, Code::Unavailable, Code::Aborted];
    let pv = target_vol
        .volume_context
        .get("subDir")
        .map_or("load", String::as_str);
    let mut n = 0;
    while !*stop.borrow() {
        n += 1;
        let name = new_name("pvc-load");
        let target = pod_target(pv);
        let (mut c1, mut c2) = (csi.clone(), csi.clone());
        let (c, p) = tokio::join!(
            create(&mut c1, class.create(&name, &format!("load-{n}")), dl),
            publish(&mut c2, class.publish(&target_vol, &target), dl),
        );
        for (what, ok, code, in_time, took) in [
            (
                format!("CreateVolume #{n}"),
                c.ok(),
                c.code(),
                c.answered_within(dl, &codes),
                c.took,
            ),
            (
                format!("NodePublish #{n}"),
                p.ok(),
                p.code(),
                p.answered_within(dl, &codes),
                p.took,
            ),
        ] {
            flights.push(Flight {
                what,
                deadline: dl,
                code,
                ok,
                in_time,
                took,
            });
        }
        if let Some(Ok(v)) = c.result {
            made.push(v);
        }
        targets.push(target);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (flights, made, targets)
}

/// ganesha stops while calls are in flight: every call answers within its deadline; after it
/// starts again the next calls succeed on the same driver process.
async fn server_down(env: &Env, rep: &mut Report) {
    let mut csi = connect(&env.socket).await;
    let class = Class::with_flags(env, &env.share, "4.1");
    // d1: a running pod with data (two targets); d4: a pod about to go away; d2: a pod about to
    // start; d3: what the background calls publish
    let mut vols = Vec::new();
    for what in ["down-running", "down-starting", "down-load", "down-leaving"] {
        let t = create(&mut csi, class.create(&new_name("pvc"), what), DL).await;
        let detail = t.describe();
        match t.result {
            Some(Ok(v)) => vols.push(v),
            _ => {
                rep.check("server-down-setup", false, detail);
                return;
            }
        }
    }
    let (d1, d2, d3, d4) = (
        vols[0].clone(),
        vols[1].clone(),
        vols[2].clone(),
        vols[3].clone(),
    );
    let pv = |v: &pb::Volume| v.volume_context.get("subDir").cloned().unwrap_or_default();
    let (t1a, t1b, t2, t4) = (
        pod_target(&pv(&d1)),
        pod_target(&pv(&d1)),
        pod_target(&pv(&d2)),
        pod_target(&pv(&d4)),
    );
    for (v, t) in [(&d1, &t1a), (&d1, &t1b), (&d4, &t4)] {
        let r = publish(&mut csi, class.publish(v, t), DL).await;
        if !r.ok() {
            rep.check("server-down-setup", false, r.describe());
            return;
        }
    }
    let data = format!("before the outage {}\n", uuid::Uuid::new_v4());
    std::fs::write(t1a.join("data"), &data).expect("write");
    // a process of the leaving pod still has a file open: a plain unmount gets EBUSY
    std::fs::write(t4.join("held"), "held").expect("write");
    let held = std::fs::File::open(t4.join("held")).expect("open");

    // calls back to back from before the stop until after it
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let load_dl = Duration::from_secs(8);
    let load = tokio::spawn(load_loop(
        csi.clone(),
        class.clone(),
        d3.clone(),
        load_dl,
        stop_rx,
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let stopped = nfs_server(env, "stop").await;
    if !rep.check("server-down-stop", stopped.is_ok(), format!("{stopped:?}")) {
        let _ = stop_tx.send(true);
        return;
    }
    let down_at = Instant::now();

    // the server is gone: a new volume, a new pod, kubelet re-publishing a running pod's target,
    // a pod going away, and volume stats — all at once, each with a 10 s deadline
    let codes = [Code::DeadlineExceeded, Code::Unavailable];
    let down_name = new_name("pvc");
    let (mut a, mut b, mut c, mut d, mut e) = (
        csi.clone(),
        csi.clone(),
        csi.clone(),
        csi.clone(),
        csi.clone(),
    );
    let stats_req = pb::NodeGetVolumeStatsRequest {
        volume_id: d1.volume_id.clone(),
        volume_path: t1b.display().to_string(),
        ..Default::default()
    };
    let (cr, pb_new, pb_again, unp, stats) = tokio::join!(
        create(&mut a, class.create(&down_name, "down-new"), DL),
        publish(&mut b, class.publish(&d2, &t2), DL),
        publish(&mut c, class.publish(&d1, &t1a), DL),
        unpublish(&mut d, &d4.volume_id, &t4, DL),
        timed(DL, e.node.node_get_volume_stats(req(stats_req, DL))),
    );
    rep.check(
        "server-down-create-answers-in-time",
        cr.answered_within(DL, &codes) && !cr.ok(),
        cr.describe(),
    );
    rep.check(
        "server-down-publish-answers-in-time",
        pb_new.answered_within(DL, &codes) && !pb_new.ok(),
        pb_new.describe(),
    );
    rep.check(
        "server-down-republish-answers-in-time",
        pb_again.answered_within(DL, &codes),
        pb_again.describe(),
    );
    rep.check(
        "server-down-unpublish-answers-in-time",
        unp.answered_within(DL, &codes) && (!unp.ok() || mounted_at(&t4).is_none()),
        format!("{}; still mounted: {:?}", unp.describe(), mounted_at(&t4)),
    );
    let abnormal = match &stats.result {
        Some(Ok(s)) => s.volume_condition.as_ref().map(|c| c.abnormal),
        _ => None,
    };
    rep.check(
        "server-down-stats-answers-in-time",
        stats.answered_within(DL, &codes),
        format!("{}; abnormal {abnormal:?}", stats.describe()),
    );
    println!(
        "MEASURE server-down: CreateVolume {} | NodePublish (new target) {} | NodePublish (mounted \
         target) {} | NodeUnpublish {} | NodeGetVolumeStats {} (deadline {} s each)",
        cr.describe(),
        pb_new.describe(),
        pb_again.describe(),
        unp.describe(),
        stats.describe(),
        DL.as_secs()
    );
    let stuck_down = stuck_threads();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop_tx.send(true);
    let (flights, load_made, load_targets) = load.await.expect("load loop");
    let late: Vec<String> = flights
        .iter()
        .filter(|f| !f.in_time)
        .map(|f| format!("{} {} after {} ms", f.what, f.code, f.took.as_millis()))
        .collect();
    let worst = flights.iter().map(|f| f.took).max().unwrap_or_default();
    let failed = flights.iter().filter(|f| !f.ok).count();
    rep.check(
        "server-down-calls-in-flight-answer-in-time",
        late.is_empty() && failed > 0,
        format!(
            "{} calls ({} failed while the server went away), slowest {} ms, deadline {} ms{}",
            flights.len(),
            failed,
            worst.as_millis(),
            flights
                .first()
                .map(|f| f.deadline)
                .unwrap_or(load_dl)
                .as_millis(),
            if late.is_empty() {
                String::new()
            } else {
                format!("; late: {late:?}")
            }
        ),
    );
    let calls: Vec<String> = flights
        .iter()
        .map(|f| format!("{} {} {} ms", f.what, f.code, f.took.as_millis()))
        .collect();
    info(format!("calls in flight: {}", calls.join(", ")));
    info(format!(
        "server was down {} ms",
        down_at.elapsed().as_millis()
    ));

    // back: the same driver process serves again
    let started = nfs_server(env, "start").await;
    if !rep.check("server-down-start", started.is_ok(), format!("{started:?}")) {
        return;
    }
    let up_at = Instant::now();
    // closing sends the server a CLOSE on this hard mount: only now that it answers again
    tokio::task::spawn_blocking(move || drop(held));
    let mut attempts = Vec::new();
    let mut made = None;
    while up_at.elapsed() < Duration::from_secs(60) {
        let t = create(&mut csi, class.create(&down_name, "down-new"), DL).await;
        attempts.push(t.describe());
        if let Some(Ok(v)) = t.result {
            made = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    rep.check(
        "server-back-create-succeeds",
        made.is_some(),
        format!(
            "after {} ms, {} attempt(s): {attempts:?}",
            up_at.elapsed().as_millis(),
            attempts.len()
        ),
    );
    println!(
        "MEASURE server-back: first CreateVolume after start: {} ({} attempts, ok {} ms after start)",
        attempts.first().cloned().unwrap_or_default(),
        attempts.len(),
        up_at.elapsed().as_millis()
    );
    let t = Instant::now();
    let mut last = String::new();
    let mut ok = false;
    while t.elapsed() < Duration::from_secs(60) && !ok {
        let r = publish(&mut csi, class.publish(&d2, &t2), DL).await;
        ok = r.ok();
        last = r.describe();
        if !ok {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    rep.check(
        "server-back-publish-succeeds",
        ok,
        format!("{last}; {} ms", t.elapsed().as_millis()),
    );
    let r = publish(&mut csi, class.publish(&d1, &t1a), DL).await;
    let read = read_bounded(&t1a.join("data"), DL).await;
    rep.check(
        "server-back-running-pod-sees-data",
        r.ok() && read.as_deref().ok() == Some(data.as_str()),
        format!("{}; read {read:?}", r.describe()),
    );

    // every thread that waited on the server has come back
    let t = Instant::now();
    let mut stuck_up = stuck_threads();
    while stuck_up.is_some_and(|n| n > 0) && t.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stuck_up = stuck_threads();
    }
    rep.check(
        "server-back-no-thread-left-stuck",
        stuck_up == Some(0),
        format!(
            "driver threads in D state: {stuck_down:?} while the server was down, {stuck_up:?} \
             {} ms after it answered again",
            t.elapsed().as_millis()
        ),
    );

    // clean up: every target unpublished, every volume deleted
    let mut clean = true;
    for (id, t) in [
        (&d1.volume_id, &t1a),
        (&d1.volume_id, &t1b),
        (&d2.volume_id, &t2),
        (&d4.volume_id, &t4),
    ]
    .into_iter()
    .chain(load_targets.iter().map(|t| (&d3.volume_id, t)))
    {
        let r = unpublish(&mut csi, id, t, DL).await;
        clean &= r.ok();
    }
    vols.extend(made);
    vols.extend(load_made);
    let mut deleted = Vec::new();
    for v in &vols {
        let r = delete(&mut csi, &v.volume_id, DL).await;
        clean &= r.ok();
        deleted.push(pv(v));
    }
    rep.check(
        "server-back-cleanup",
        clean,
        format!("{} volumes deleted", vols.len()),
    );
    record_deleted(env, &deleted);
}

/// A restart of ganesha: the kept working mount and a published target both carry on.
async fn server_restart(env: &Env, rep: &mut Report) {
    let mut csi = connect(&env.socket).await;
    let class = Class::with_flags(env, &env.share, "4.1");
    let name = new_name("pvc");
    let Some(Ok(vol)) = create(&mut csi, class.create(&name, "restart"), DL)
        .await
        .result
    else {
        rep.check("server-restart-setup", false, "CreateVolume failed");
        return;
    };
    let target = pod_target(&name);
    let r = publish(&mut csi, class.publish(&vol, &target), DL).await;
    if !rep.check("server-restart-setup", r.ok(), r.describe()) {
        return;
    }
    std::fs::write(target.join("data"), "kept").expect("write");
    let drops = count_in_log(env, "dropping working mount");
    let restarted = nfs_server(env, "restart").await;
    if !rep.check(
        "server-restart",
        restarted.is_ok(),
        format!("{restarted:?}"),
    ) {
        return;
    }
    let second = new_name("pvc");
    let t = create(&mut csi, class.create(&second, "restart-2"), DL).await;
    let remounts = count_in_log(env, "dropping working mount") - drops;
    rep.check(
        "server-restart-create-succeeds",
        t.ok(),
        format!("{}; working mounts dropped: {remounts}", t.describe()),
    );
    println!(
        "MEASURE server-restart: first CreateVolume {}; working mount {}",
        t.describe(),
        if remounts == 0 {
            "kept (no ESTALE after the restart)".to_owned()
        } else {
            format!("remade {remounts} time(s)")
        }
    );
    let read = read_bounded(&target.join("data"), DL).await;
    rep.check(
        "server-restart-target-still-reads",
        read.as_deref().ok() == Some("kept"),
        format!("{read:?}"),
    );
    let r = unpublish(&mut csi, &vol.volume_id, &target, DL).await;
    rep.check("server-restart-unpublish", r.ok(), r.describe());
    let mut names = vec![name];
    for v in [Some(vol), t.result.and_then(Result::ok)]
        .into_iter()
        .flatten()
    {
        let r = delete(&mut csi, &v.volume_id, DL).await;
        rep.check("server-restart-delete", r.ok(), r.describe());
        if let Some(n) = v.volume_context.get("subDir") {
            names.push(n.clone());
        }
    }
    names.dedup();
    record_deleted(env, &names);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nfs_guest_scenarios() {
    if std::env::var("NSC_GUEST_SUITE").as_deref() != Ok("1") {
        eprintln!(
            "nfs-guest scenarios skipped: they need a kernel NFS client and the harness's ganesha; \
             run `bash tests/nfs-guest/csi-suite.sh` (it sets NSC_GUEST_SUITE=1 inside its QEMU guest)"
        );
        return;
    }
    let env = Env::from_env();
    let only: Vec<String> = std::env::var("NSC_GUEST_ONLY")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let run = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let mut rep = Report::default();
    let started = Instant::now();
    let step = |name: &str| {
        println!(
            "nfs-guest-scenarios: {name} at {:.1} s",
            started.elapsed().as_secs_f64()
        );
    };
    if run("story") {
        step("story v4.1");
        story(
            &env,
            &mut rep,
            "v4.1",
            &Class::with_flags(&env, &env.share, "4.1"),
        )
        .await;
        step("story v3");
        story(
            &env,
            &mut rep,
            "v3",
            &Class::with_param(&env, &env.share, "3"),
        )
        .await;
    }
    if run("default-version") {
        step("default-version");
        default_version(&env, &mut rep).await;
    }
    if run("working-estale") {
        step("working-estale");
        working_estale(&env, &mut rep).await;
    }
    if run("node-stale-target") {
        step("node-stale-target");
        node_stale_target(&env, &mut rep).await;
    }
    if run("server-down") {
        step("server-down");
        server_down(&env, &mut rep).await;
    }
    if run("server-restart") {
        step("server-restart");
        server_restart(&env, &mut rep).await;
    }
    step("done");
    println!(
        "nfs-guest-scenarios: {} passed, {} failed in {:.1} s",
        rep.passed,
        rep.failed.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(rep.failed.is_empty(), "failed: {:?}", rep.failed);
}
