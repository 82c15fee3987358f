//! Calls kept in flight while the server goes away (part of server-down): CreateVolume and
//! NodePublish pairs back to back, and the check that every one of them answered in time.

use crate::class::{Class, new_name, pod_target};
use crate::csi::{Csi, Timed};
use crate::{Report, info};
use nfs_subdir_csi::csi::pb;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;
use tonic::Code;

/// One call made while the server goes away.
pub struct Flight {
    what: String,
    code: String,
    ok: bool,
    in_time: bool,
    took: Duration,
}

impl Flight {
    /// ABORTED counts as in time too: the volume is still busy with an earlier call (a mount
    /// waiting for the server).
    fn of<T>(what: String, t: &Timed<T>, dl: Duration) -> Flight {
        let codes = [Code::DeadlineExceeded, Code::Unavailable, Code::Aborted];
        Flight {
            what,
            code: t.code(),
            ok: t.ok(),
            in_time: t.answered_within(dl, &codes),
            took: t.took,
        }
    }
}

/// What the load left behind: the calls, the volumes it made, the targets it published.
pub struct Load {
    pub flights: Vec<Flight>,
    pub made: Vec<pb::Volume>,
    pub targets: Vec<PathBuf>,
}

/// CreateVolume and NodePublish (of `target_vol`) pairs back to back until `stop`, each with
/// deadline `dl`.
pub async fn load_loop(
    csi: Csi,
    class: Class,
    target_vol: pb::Volume,
    dl: Duration,
    stop: watch::Receiver<bool>,
) -> Load {
    let mut load = Load {
        flights: Vec::new(),
        made: Vec::new(),
        targets: Vec::new(),
    };
    let pv = target_vol
        .volume_context
        .get("subDir")
        .map_or("load", String::as_str);
    let mut n = 0;
    while !*stop.borrow() {
        n += 1;
        let name = new_name("pvc-load");
        let target = pod_target(pv);
        let (c, p) = tokio::join!(
            csi.create(class.create(&name, &format!("load-{n}")), dl),
            csi.publish(class.publish(&target_vol, &target), dl),
        );
        load.flights
            .push(Flight::of(format!("CreateVolume #{n}"), &c, dl));
        load.flights
            .push(Flight::of(format!("NodePublish #{n}"), &p, dl));
        if let Some(Ok(v)) = c.result {
            load.made.push(v);
        }
        load.targets.push(target);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    load
}

/// server-down-calls-in-flight-answer-in-time: every call of the load answered within its
/// deadline `dl`, and some failed (so the server really went away while they ran).
pub fn check_in_flight(rep: &mut Report, flights: &[Flight], dl: Duration) {
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
            dl.as_millis(),
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
}
