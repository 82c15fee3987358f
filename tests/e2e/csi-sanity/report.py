#!/usr/bin/env python3
"""Summarises a csi-sanity JUnit report: counts, every skipped spec with its reason, and a check
that each skip is for a capability the driver does not advertise. Exit 1 on failures or on a skip
that is not explained by a missing capability."""
import re
import sys
import xml.etree.ElementTree as ET

# Capabilities nfs-subdir-csi does not advertise; csi-sanity skips their specs. Snapshots, clones
# and GetSnapshot are advertised: a skip of their specs fails the run.
UNADVERTISED = re.compile(
    r"skipped - (GroupControllerService|NodeStageVolume|NodeUnstageVolume|NodeExpandVolume|"
    r"NodeGetVolumeHealth|NodeGetStorageHealth|ControllerListVolumeHealth|ControllerGetVolumeHealth|"
    r"SNAPSHOT_ACCESSIBILITY_CONSTRAINTS|Modify [Vv]olume|ControllerModifyVolume|ControllerPublishVolume|"
    r"ControllerUnpublishVolume|Controller Publish, UnpublishVolume) not supported$"
)


def main(path: str, label: str) -> int:
    root = ET.parse(path).getroot()
    passed = failed = skipped = pending = 0
    bad_skips = []
    lines = []
    for tc in root.iter("testcase"):
        name = re.sub(r"^\[It\] ", "", tc.get("name", ""))
        status = tc.get("status", "")
        if tc.find("failure") is not None or tc.find("error") is not None or status == "failed":
            failed += 1
            lines.append(f"  FAILED  {name}")
        elif tc.find("skipped") is not None:
            msg = tc.find("skipped").get("message", "")
            if msg == "pending" or status == "pending":
                pending += 1
                lines.append(f"  pending {name} -- marked pending (PIt) in csi-sanity itself")
                continue
            skipped += 1
            ok = bool(UNADVERTISED.search(msg))
            if not ok:
                bad_skips.append(name)
            lines.append(f"  skipped {name} -- {msg}{'' if ok else '   <-- NOT a missing capability'}")
        elif name.startswith("[BeforeSuite]") or name.startswith("[AfterSuite]"):
            continue
        else:
            passed += 1
    print(f"csi-sanity {label}: specs not run or failed:")
    print("\n".join(sorted(lines)) or "  (none)")
    print(f"csi-sanity {label}: {passed} passed, {failed} failed, {skipped} skipped, {pending} pending")
    if bad_skips:
        print(f"csi-sanity {label}: {len(bad_skips)} skips are not explained by an unadvertised capability")
    return 1 if failed or bad_skips or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""))
