"""Failover benchmark: floatgate vs keepalived, the same faults, the same client.

Runs as root in the network-namespace lab (deploy/lab). A client in its own namespace
GETs the VIP every 10 ms (0.5 s timeout, a new connection each time) and reports the
longest gap between answered requests, failed requests and the slowest request.

Scenarios (each run ``--runs`` times on a fresh cluster):
- crash: the active node's link goes down (the whole node vanishes from the network);
- kill9: SIGKILL of the cluster process (floatgate node / keepalived);
- sigterm: SIGTERM of that process (planned stop);
- switchover: ``floatgate switchover`` (keepalived has no planned handover command;
  its nearest equivalent is the SIGTERM row);
- sigstop: SIGSTOP of that process (keepalived: its VRRP child) for 4 s, then SIGCONT.

keepalived runs VRRP unicast between the same two namespaces, each node serving HTTP
itself (python http.server), with default timers (advert_int 1 s) and tuned timers
(VRRPv3, advert_int 0.1 s). floatgate runs with its lab settings at each ``--ttl``
(lease TTL 1 s and 2 s by default; the lab's etcd has election timeout 100 ms, so it
grants 1 s leases, as the LAN profile does).

The event checker (deploy/lab/checker.py) runs through every run: "2 answerers" is the
milliseconds during which two MACs answered the client's ARP questions for the VIP
(the client-visible split brain).

    sudo .venv/bin/python bench/failover.py [--runs 5] [--only floatgate|keepalived]
        [--scenario crash --scenario sigstop ...] [--ttl 1 --ttl 2] [--seed S]
        [--phase-locked]

A fault comes 1.5 s after the client starts plus a random delay of 0-1 s (seeded:
``--seed`` replays), so it hits a random point of the active's renewal cycle (floatgate's
TTL/3 renewals, keepalived's adverts), as a real failure does. ``--phase-locked`` leaves
the random delay out: the fault then comes at about the same point of the cycle every
run (for floatgate right after a renewal, its slowest case).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy.lab.checker import EventChecker
from deploy.lab.netlab import HOSTS, REPO, VIP, SwitchedLab, run, wait_for

SCENARIOS = ("crash", "kill9", "sigterm", "switchover", "sigstop")


def ensure_keepalived() -> None:
    if shutil.which("keepalived") is None:
        print("installing keepalived ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "keepalived"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip


def probe(lab: SwitchedLab, seconds: float) -> dict[str, Any]:
    proc = lab.start("probe", "client", sys.executable, "-m", "deploy.lab.client_probe",
                     VIP, str(seconds), "0.5")  # fmt: skip
    proc.wait(seconds + 30)
    result: dict[str, Any] = json.loads(lab.log("probe").strip().splitlines()[-1])
    return result


def fault_run(
    lab: SwitchedLab, fault: Any, standby: str, seconds: float, delay: float
) -> dict[str, Any]:
    """Probe for ``seconds``; inject the fault after 1.5 s + ``delay``; measure VIP move
    and gap."""
    result: dict[str, Any] = {}
    asker = lab.start_arp_watch()
    checker = EventChecker(lab)
    checker.start()
    client = threading.Thread(target=lambda: result.update(probe(lab, seconds)))
    client.start()
    time.sleep(1.5 + delay)
    fault()
    try:
        moved = wait_for(lambda: standby in lab.holders(), 15, f"{standby} to hold the VIP")
    except AssertionError:
        moved = float("nan")
    client.join(seconds + 40)
    asker.terminate()
    asker.wait(10)
    verdict = checker.stop()
    result["vip_moved"] = round(moved, 3)
    result["two_answerers_ms"] = verdict.two_answerers_ms
    if verdict.blind:
        print(f"  the event checker may have missed events: {'; '.join(verdict.blind)}")
    return result


# -- floatgate --------------------------------------------------------------------------


def stop_for(lab: SwitchedLab, name: str, seconds: float, pid: int | None = None) -> None:
    """SIGSTOP ``name`` (or ``pid``), SIGCONT it ``seconds`` later (in the background)."""
    target = pid if pid is not None else lab.procs[name].pid
    os.kill(target, signal.SIGSTOP)
    threading.Timer(seconds, os.kill, (target, signal.SIGCONT)).start()


def floatgate_run(scenario: str, ttl: int, delay: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="floatgate-bench-"))
    lab = SwitchedLab(workdir, lease_ttl=f"{ttl}s")
    try:
        lab.start_cluster()
        wait_for(lambda: lab.holders() == ["n1"], 20, "n1 to hold the VIP")
        faults = {
            "crash": lambda: run("ip", "-n", lab.ns["n1"], "link", "set", "eth0", "down"),
            "kill9": lambda: lab.signal("n1", signal.SIGKILL),
            "sigterm": lambda: lab.signal("n1", signal.SIGTERM),
            "switchover": lambda: subprocess.run(
                ["ip", "netns", "exec", lab.ns["client"], sys.executable, "-m", "node.cli",
                 "switchover", "--node", str(workdir / "n1.yaml"), "--cluster-name", "lab"],
                cwd=REPO, capture_output=True, check=True, timeout=30),
            "sigstop": lambda: stop_for(lab, "n1", 4.0),
        }  # fmt: skip
        return fault_run(lab, faults[scenario], "n2", 7.0, delay)
    finally:
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)


# -- keepalived -------------------------------------------------------------------------

KEEPALIVED_CONF = """
global_defs {{
    router_id {name}
    vrrp_version {version}
    script_user root
    enable_script_security
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {advert}
    unicast_src_ip {me}
    unicast_peer {{
        {peer}
    }}
    virtual_ipaddress {{
        {vip}/24 dev eth0
    }}
}}
"""


def keepalived_run(scenario: str, tuned: bool, delay: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="keepalived-bench-"))
    lab = SwitchedLab(workdir)
    try:
        lab.up()
        for name, peer, priority in (("n1", "n2", 150), ("n2", "n1", 100)):
            lab.start(f"web-{name}", name, sys.executable, "-m", "http.server", "80",
                      "--bind", "0.0.0.0", "--directory", str(workdir))  # fmt: skip
            conf = workdir / f"{name}.conf"
            conf.write_text(KEEPALIVED_CONF.format(
                name=name, version=3 if tuned else 2, priority=priority,
                advert=0.1 if tuned else 1, me=HOSTS[name], peer=HOSTS[peer], vip=VIP))  # fmt: skip
            lab.start(name, name, "keepalived", "--dont-fork", "--log-console", "--vrrp",
                      "--use-file", str(conf), "--pid", str(workdir / f"{name}.pid"),
                      "--vrrp_pid", str(workdir / f"{name}.vrrp.pid"))  # fmt: skip
            if name == "n1":
                wait_for(lambda: lab.holders() == ["n1"], 30, "n1 (keepalived) to hold the VIP")
        time.sleep(1.0 if not tuned else 0.5)
        faults = {
            "crash": lambda: run("ip", "-n", lab.ns["n1"], "link", "set", "eth0", "down"),
            "kill9": lambda: lab.signal("n1", signal.SIGKILL),
            "sigterm": lambda: lab.signal("n1", signal.SIGTERM),
            "sigstop": lambda: stop_for(lab, "n1", 4.0,
                                        int((workdir / "n1.vrrp.pid").read_text())),
        }  # fmt: skip
        return fault_run(lab, faults[scenario], "n2", 8.0, delay)
    finally:
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)


# -- report -----------------------------------------------------------------------------


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    gaps = [r["longest_outage"] for r in runs]
    return {
        "outage_median": round(statistics.median(gaps), 3),
        "outage_max": round(max(gaps), 3),
        "failed_median": statistics.median(r["failures"] for r in runs),
        "slowest_max": round(max(r["slowest"] for r in runs), 3),
        "vip_moved_median": round(statistics.median(r["vip_moved"] for r in runs), 3),
        "two_answerers_ms": round(sum(r["two_answerers_ms"] for r in runs), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("floatgate", "keepalived"))
    parser.add_argument("--scenario", choices=SCENARIOS, action="append")
    parser.add_argument("--ttl", type=int, action="append", help="floatgate lease TTLs (s)")
    parser.add_argument("--seed", type=int, help="the random fault delays (default: random)")
    parser.add_argument("--phase-locked", action="store_true",
                        help="no random delay before a fault")  # fmt: skip
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/failover: needs root (network namespaces)", file=sys.stderr)
        return 2
    ensure_keepalived()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    rng = random.Random(seed)
    if not args.phase_locked:
        print(f"fault delays: seed {seed} (1.5 s + 0-1 s after the client starts)", flush=True)
    scenarios = args.scenario or list(SCENARIOS)
    targets: list[tuple[str, Any]] = []
    if args.only != "keepalived":
        for ttl in args.ttl or [1, 2]:
            targets.append((f"floatgate TTL {ttl}s",
                            lambda s, d, t=ttl: floatgate_run(s, t, d)))  # fmt: skip
    if args.only != "floatgate":
        targets.append(("keepalived default", lambda s, d: keepalived_run(s, False, d)))
        targets.append(("keepalived tuned", lambda s, d: keepalived_run(s, True, d)))
    table: list[tuple[str, str, dict[str, Any]]] = []
    for scenario in scenarios:
        for label, runner in targets:
            if scenario == "switchover" and label.startswith("keepalived"):
                continue
            results = []
            for index in range(args.runs):
                print(f"{scenario:<11}{label:<20}run {index + 1}/{args.runs} ...", flush=True)
                delay = 0.0 if args.phase_locked else rng.uniform(0.0, 1.0)
                results.append(runner(scenario, delay))
            table.append((scenario, label, summary(results)))
    print()
    print(f"{'scenario':<11}{'target':<20}{'outage med':>11}{'outage max':>11}"
          f"{'failed med':>11}{'slowest':>9}{'VIP moved':>10}{'2 answerers':>13}")  # fmt: skip
    for scenario, label, row in table:
        print(f"{scenario:<11}{label:<20}{row['outage_median']:>10.2f}s{row['outage_max']:>10.2f}s"
              f"{row['failed_median']:>11}{row['slowest_max']:>8.2f}s"
              f"{row['vip_moved_median']:>9.2f}s{row['two_answerers_ms']:>10.1f} ms")  # fmt: skip
    print()
    for scenario, label, row in table:
        if not label.startswith("keepalived") or row["outage_median"] <= 0:
            continue
        for other, fg_label, fg_row in table:
            if other == scenario and fg_label.startswith("floatgate"):
                ratio = fg_row["outage_median"] / row["outage_median"]
                print(f"{scenario}: {fg_label} outage / {label} = {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
