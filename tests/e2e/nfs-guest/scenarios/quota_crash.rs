//! quota-crash-*, quota-restart-*: a controller that dies between making a volume's directory and
//! setting its project quota, and the retry that finishes the job. The crash is made exact with
//! the driver's hidden fault injection (NSC_FAULT=abort-before-quota, read once at start-up: the
//! controller calls std::process::abort right after the directory is made, before the quota
//! call — the same state kill -9 leaves there, without racing a signal against the call). The
//! driver restarted without it gets the same CreateVolume and ends with the project and limit
//! set; another controller process (the suite's quota driver) finds that project id again:
//! expansion through it raises that project's limit, and the restarted one's delete releases it.

use crate::class::{MI, dir_of, new_name};
use crate::csi::{Csi, DL, connect};
use crate::quota::{Setup, class, project_of};
use crate::{Report, info};
use nfs_subdir_csi::quota::project;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Another controller-only driver process on `/tmp/nsc/csi-<tag>.sock`, with `args` and the
/// environment `env`.
async fn spawn_driver(
    q: &Setup,
    tag: &str,
    args: &[String],
    env: &[(&str, &str)],
) -> std::io::Result<(Child, Csi)> {
    let sock = PathBuf::from(format!("/tmp/nsc/csi-{tag}.sock"));
    let log = std::fs::File::create(format!("/tmp/nsc/driver-{tag}.log"))?;
    let child = Command::new(&q.driver)
        .args(["serve", "--roles", "controller", "--nodeid", "nfs-guest"])
        .arg(format!("--endpoint=unix://{}", sock.display()))
        .arg(format!("--working-mount-dir=/tmp/nsc/work-{tag}"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let started = Instant::now();
    while !sock.exists() && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((child, connect(&sock).await))
}

pub async fn crashed_driver(q: &Setup, csi: &Csi, rep: &mut Report) {
    let local = q.root.join("xfs");
    let mapping = format!("--export-path={}:/xfs={}", q.server, local.display());
    let fault = [("NSC_FAULT", "abort-before-quota")];
    let started = spawn_driver(q, "crashing", std::slice::from_ref(&mapping), &fault).await;
    let Some((mut child, crashing)) = rep.require("quota-crash-driver-start", started) else {
        return;
    };
    let class = class(q, "xfs", "enforce");
    let name = new_name("pvc");
    let first = crashing.create(class.create(&name, "k"), DL).await;
    let exit = child.wait();
    let dir = local.join(&name);
    let before = project_of(&local, &dir);
    let died = exit.as_ref().ok().and_then(|s| s.signal());
    info(format!(
        "driver with the fault: {}, exit {exit:?}; directory {} exists: {}, project {before:?}",
        first.describe(),
        dir.display(),
        dir.is_dir()
    ));
    rep.check(
        "quota-crash-aborted-between-directory-and-quota",
        !first.ok()
            && died == Some(libc::SIGABRT)
            && dir.is_dir()
            && before.as_ref().is_ok_and(|b| b.0 == 0),
        format!(
            "{}; signal {died:?}; directory made: {}; project {before:?}",
            first.describe(),
            dir.is_dir()
        ),
    );
    let started = spawn_driver(q, "restarted", std::slice::from_ref(&mapping), &[]).await;
    let Some((mut child, fresh)) = rep.require("quota-restart-driver-start", started) else {
        return;
    };
    let t = fresh.create(class.create(&name, "k"), DL).await;
    let after = project_of(&local, &dir);
    rep.check(
        "quota-crash-retry-sets-quota",
        t.ok()
            && after
                .as_ref()
                .is_ok_and(|a| a.0 >= project::FIRST_ID && a.1 && a.2 == 100 * MI as u64),
        format!("{}; before {before:?}, after {after:?}", t.describe()),
    );
    let Some(vol) = t.value().ok() else {
        let _ = child.kill();
        let _ = child.wait();
        return;
    };
    info(format!(
        "retried volume {} in {}",
        vol.volume_id,
        dir_of(&vol)
    ));
    let claims = local.join(".nfs-subdir-csi/projects");
    for e in std::fs::read_dir(&claims).into_iter().flatten().flatten() {
        let to = std::fs::read_link(e.path()).unwrap_or_default();
        info(format!("claim {} -> {}", e.path().display(), to.display()));
    }
    let t = csi.expand(&vol.volume_id, 150 * MI, DL).await;
    let now = project_of(&local, &dir);
    let want = after.as_ref().ok().map(|a| (a.0, 150 * MI as u64));
    rep.check(
        "quota-restart-same-project-expanded",
        t.ok() && now.as_ref().ok().map(|n| (n.0, n.2)) == want,
        format!("{}; before {after:?}, now {now:?}", t.describe()),
    );
    let t = fresh.delete(&vol.volume_id, DL).await;
    let claim = claims.join(after.map(|a| a.0).unwrap_or_default().to_string());
    let left = claim.symlink_metadata().is_ok();
    rep.check(
        "quota-restart-delete-releases",
        t.ok() && !left,
        format!("{}; claim {} left: {left}", t.describe(), claim.display()),
    );
    let _ = child.kill();
    let _ = child.wait();
}
