//! Scenarios against real kernel NFS mounts, driven over gRPC like Kubernetes would. They run inside
//! the QEMU guest of tests/e2e/nfs-guest (this host's kernel has no NFS client), started by
//! `bash tests/e2e/nfs-guest/run.sh`, against a driver the guest script started and the harness's
//! ganesha on the host (10.0.2.2 from the guest). Each check prints `PASS name` or `FAIL name: why`
//! (the harness counts those lines); the test fails if any check did.
//!
//! - story-* (story.rs): the StatefulSet story: two volumes made as csi-provisioner would for
//!   redis-pv-sts-0/1 (RWX, 100Mi), each published at two pods' targets, data written through one
//!   read through the other, unpublished, published again, deleted (the directories' absence is
//!   checked on the host afterwards, from `$RESULTS/deleted-volumes.txt`). Once with the
//!   StorageClass's mountOptions (nfsvers=4.1, as capability mount flags), once with the
//!   `mountOptions` parameter (nfsvers=3). A read-only pod reads but cannot write. One volume is
//!   deleted by a second, fresh driver: the options used at create time come back from the
//!   volume id alone.
//! - default-version (story.rs): no version named: the node mounts the newest the server speaks
//!   (4.2).
//! - working-estale (stale.rs): the export directory behind the controller's kept mount is replaced
//!   on the server, so the mount's handles go stale; the next CreateVolume remounts and succeeds.
//! - node-stale-target (stale.rs): the same for a published target: NodeGetVolumeStats answers
//!   in time with an abnormal condition; publishing again remounts it (condition normal again).
//! - server-down (outage.rs, inflight.rs): ganesha is stopped while CreateVolume and NodePublish
//!   calls are in flight; every call answers within its deadline (also NodeUnpublish of a busy
//!   target, which needs the lazy fallback, and NodeGetVolumeStats); after a start the next calls
//!   succeed on the same driver process and none of its threads is left stuck in the kernel.
//! - server-restart (outage.rs): a ganesha restart does not leave stale handles behind.
//! - csi-driver-nfs (legacy.rs): its directories, handles and volume attributes: NodePublish
//!   mounts server:share/subdir; DeleteVolume deletes, archives (archived-<subDir>), retains, and
//!   refuses hostile handles.
//! - secret-mount-options (secret.rs): the provisioner secret's `mountOptions` reach the
//!   working mount at create and delete time and never the id, the context, ListVolumes or the log.
//! - export-full (faults.rs): a 16 MiB / 128-inode filesystem behind /export-full: CreateVolume,
//!   CreateSnapshot and a restore answer RESOURCE_EXHAUSTED and leave no half volume and no
//!   .tmp- tree (also with one inode left: mkdir succeeds, the record does not); DeleteVolume
//!   frees the space and all three work again. Extra exports: tests/e2e/nfs-guest/fault-exports.sh.
//! - export-ro (faults.rs): an Access_Type = RO export: CreateVolume and DeleteVolume answer
//!   FAILED_PRECONDITION naming the cause, five client retries each cost a handful of NFS calls,
//!   the export is unchanged.
//! - export-squash (squash.rs): Root_Squash with Redis-like data (uid 999, 0644 in 0755): create
//!   on a root-owned share is PERMISSION_DENIED naming the fix; delete answers OK, the removal
//!   the squashed root cannot do is a visible backlog (log + nfs_subdir_csi_trash_* metrics) that
//!   drains once the export stops squashing; All_Squash with Anonymous_Uid 999 deletes by itself.
//!   These run on drivers of their own (fault_driver.rs) with /metrics.
//! - restart-mid-removal (removal.rs): ganesha goes away for 15 s while the driver removes a
//!   deleted volume's 10,000 files from the trash; the removal completes once it is back.
//! - slow-server (netem.rs): create/publish/write/read/unpublish/delete cycles on a plain link,
//!   with tc netem 100 ms delay and with 5 % loss; right results, median time per call printed.
//! - partition (partition.rs, link.rs): every packet between guest and server dropped for 60 s;
//!   every call answers within its deadline, the driver's threads stuck in the kernel are counted
//!   and all come back; the same process serves afterwards.
//! - quota (quota.rs): project quotas through the guest's kernel NFS server on XFS and ext4.
//! - snapshot (snapshot.rs): a volume filled through a pod's mount is snapshotted and restored
//!   (NFSv4.2 and v4.1) and cloned (v4.2); the new volumes hold the same tree; prints how the data
//!   moved (clone / copy_file_range / read-write) and what did not stick.
//!
//! Shared helpers: csi.rs (gRPC calls with deadlines), class.rs (requests as csi-provisioner and
//! kubelet send them), mounts.rs (what the guest kernel shows), harness.rs (the results share:
//! ganesha control, deleted-volume list, driver log).
//!
//! The test is `#[ignore]`d: `cargo test` on a host lists it as ignored with the reason. The guest
//! script runs it with `--ignored` and `NSC_GUEST_SUITE=1`; run with `--ignored` anywhere else it
//! fails at once. Environment: NSC_SOCKET, NSC_SOCKET2 (a controller-only driver), NSC_DRIVER_LOG,
//! NSC_DRIVER_PID, NFS_SERVER, NFS_SHARE, RESULTS, NSC_PORT_OPTS_4 / NSC_PORT_OPTS_3 (",port=…"
//! when ganesha is not on 2049), NSC_GUEST_ONLY (comma list of scenario names to run; default all).

mod class;
mod csi;
mod fault_driver;
mod faults;
mod harness;
mod inflight;
mod legacy;
mod link;
mod mounts;
mod netem;
mod outage;
mod partition;
mod quota;
mod quota_crash;
mod removal;
mod secret;
mod snapshot;
mod squash;
mod stale;
mod story;

use class::Class;
use std::fmt::Display;
use std::path::PathBuf;
use std::time::Instant;

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

    /// The port options (",port=…", or empty) the harness's ganesha needs for NFS version `vers`.
    fn port_opts(&self, vers: &str) -> &str {
        if vers == "3" {
            &self.port3
        } else {
            &self.port4
        }
    }

    /// Mount options naming NFS version `vers`, with the port options the harness needs.
    fn version_opts(&self, vers: &str) -> String {
        format!("nfsvers={vers}{}", self.port_opts(vers))
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
        // The result lines of tests/e2e/lib.sh: `PASS name (note)`, `FAIL name: why`.
        let detail = detail.to_string();
        if ok {
            self.passed += 1;
            if detail.is_empty() {
                println!("PASS {name}");
            } else {
                println!("PASS {name} ({detail})");
            }
        } else {
            self.failed.push(name.to_owned());
            let why = if detail.is_empty() { "failed" } else { &detail };
            println!("FAIL {name}: {why}");
        }
        ok
    }

    /// The value of a step a scenario cannot go on without; on an error, `FAIL name (error)` and
    /// `None` (the scenario returns).
    fn require<T>(&mut self, name: &str, step: Result<T, impl Display>) -> Option<T> {
        match step {
            Ok(v) => Some(v),
            Err(e) => {
                self.check(name, false, e);
                None
            }
        }
    }
}

fn info(msg: impl Display) {
    println!("  {msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a kernel NFS client and the harness's ganesha: run bash tests/e2e/nfs-guest/run.sh"]
async fn nfs_guest_scenarios() {
    assert!(
        std::env::var("NSC_GUEST_SUITE").as_deref() == Ok("1"),
        "NSC_GUEST_SUITE=1 is not set: the nfs-guest scenarios need a kernel NFS client, a running \
         driver and the harness's ganesha; run `bash tests/e2e/nfs-guest/run.sh` (its QEMU guest \
         sets NSC_GUEST_SUITE=1)"
    );
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
        let class = Class::with_flags(&env, &env.share, "4.1");
        story::story(&env, &mut rep, "v4.1", &class).await;
        step("story v3");
        let class = Class::with_param(&env, &env.share, "3");
        story::story(&env, &mut rep, "v3", &class).await;
    }
    if run("default-version") {
        step("default-version");
        story::default_version(&env, &mut rep).await;
    }
    if run("working-estale") {
        step("working-estale");
        stale::working_estale(&env, &mut rep).await;
    }
    if run("node-stale-target") {
        step("node-stale-target");
        stale::node_stale_target(&env, &mut rep).await;
    }
    if run("snapshot") {
        for (vers, clone) in [("4.2", true), ("4.1", false)] {
            step(&format!("snapshot v{vers}"));
            let class = Class::with_flags(&env, &env.share, vers);
            snapshot::snapshot(&env, &mut rep, &format!("v{vers}"), &class, clone).await;
        }
    }
    if run("secret-mount-options") {
        step("secret-mount-options");
        secret::secret_mount_options(&env, &mut rep).await;
    }
    if run("csi-driver-nfs") {
        step("csi-driver-nfs");
        legacy::csi_driver_nfs(&env, &mut rep).await;
    }
    if run("server-down") {
        step("server-down");
        outage::server_down(&env, &mut rep).await;
    }
    if run("server-restart") {
        step("server-restart");
        outage::server_restart(&env, &mut rep).await;
    }
    if run("restart-mid-removal") {
        step("restart-mid-removal");
        removal::restart_mid_removal(&env, &mut rep).await;
    }
    if run("slow-server") {
        step("slow-server");
        netem::slow_server(&env, &mut rep).await;
    }
    if run("partition") {
        step("partition");
        partition::partition_60s(&env, &mut rep).await;
    }
    if run("export-full") {
        step("export-full");
        faults::export_full(&env, &mut rep).await;
    }
    if run("export-ro") {
        step("export-ro");
        faults::export_ro(&env, &mut rep).await;
    }
    if run("export-squash") {
        // last of the ganesha scenarios: it turns root squashing off for the rest of the boot
        step("export-squash");
        squash::export_squash(&env, &mut rep).await;
        step("export-anon");
        squash::export_anon(&env, &mut rep).await;
    }
    if run("quota") {
        step("quota");
        quota::quota(&env, &mut rep).await;
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
