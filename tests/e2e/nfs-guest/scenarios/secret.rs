//! secret-mount-options: mount options given in the provisioner secret (csi-driver-nfs's
//! `mountOptions` key) reach the controller's working mount at create and at delete time, and
//! never the volume id, the volume context, ListVolumes or the driver's log.

use crate::class::{Class, dir_of, new_name};
use crate::csi::{DL, connect};
use crate::harness::{count_in_log, record_deleted};
use crate::mounts::working_mounts;
use crate::{Env, Report, info};
use std::collections::HashMap;
use std::path::Path;

/// Unusual values (the working mount sets timeo and retrans itself, so not those), so that
/// finding them anywhere means they came from the secret.
const SECRET_OPTS: [&str; 2] = ["rsize=262144", "wsize=131072"];

pub async fn secret_mount_options(env: &Env, rep: &mut Report) {
    let csi = connect(&env.socket).await;
    // A public option no other scenario uses, so this share gets a working mount of its own
    // and the secret is what makes it.
    let mut class = Class::with_flags(env, &env.share, "4.1");
    class.flags.push("lookupcache=positive".into());
    let secrets: HashMap<String, String> =
        [("mountOptions".to_owned(), SECRET_OPTS.join(","))].into();
    let name = new_name("pvc");
    let mut req = class.create(&name, "secret-claim");
    req.secrets = secrets.clone();
    let t = csi.create(req, DL).await;
    let Some(vol) = rep.require("secret-mount-options-create", t.value()) else {
        return;
    };
    let printed = format!("{} {:?}", vol.volume_id, vol.volume_context);
    rep.check(
        "secret-mount-options-not-in-id-or-context",
        SECRET_OPTS.iter().all(|o| !printed.contains(o)),
        &printed,
    );
    let mounts = working_mounts(Path::new("/tmp/nsc/work"));
    let made = mounts
        .iter()
        .find(|(_, _, opts)| opts.contains("lookupcache=pos"));
    rep.check(
        "secret-mount-options-reach-the-working-mount",
        made.is_some_and(|(_, _, opts)| {
            SECRET_OPTS.iter().all(|o| opts.split(',').any(|m| m == *o))
        }),
        format!("{made:?}"),
    );
    let listed = csi.list(DL).await;
    let listing = format!("{:?}", listed.result);
    rep.check(
        "secret-mount-options-not-in-listvolumes",
        listing.contains(&name) && SECRET_OPTS.iter().all(|o| !listing.contains(o)),
        if listing.contains(&name) {
            ""
        } else {
            "volume not listed"
        },
    );
    let deleted = csi.delete_with_secrets(&vol.volume_id, secrets, DL).await;
    if rep.check(
        "secret-mount-options-delete",
        deleted.ok(),
        deleted.describe(),
    ) {
        record_deleted(env, &[dir_of(&vol)]);
    }
    let leaks: usize = SECRET_OPTS.iter().map(|o| count_in_log(env, o)).sum();
    rep.check(
        "secret-mount-options-not-in-the-log",
        leaks == 0,
        format!("{leaks} occurrences in {}", env.driver_log.display()),
    );
    info(format!("working mount made with the secret: {made:?}"));
}
