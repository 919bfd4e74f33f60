"""The lab from the command line (root):

    python -m deploy.lab up [--etcd-members 3] [--etcd-tls]   # lab + etcd + web + n1 + n2
    python -m deploy.lab status                                # who holds the VIP
    python -m deploy.lab down                                  # stop by PID, delete all
    python -m deploy.lab nemesis --seed S --events N [--ttl 1s] [--arp-probe 0s]
                         [--fence lifetime] [--etcd-members 3] [--nodes 3]
                         [--faults etcd-delay,sigstop]

``up`` leaves everything running and records the namespaces, PIDs and work directory in
/run/floatgate-lab.json; ``down`` stops exactly those PIDs (never by name) and deletes
the namespaces and the work directory. Enter a host with
``ip netns exec fglabclient bash`` (namespaces are named fglab<host>). The nodes' admin
APIs serve HTTPS with a lab CA (``<workdir>/admin-pki/ca.pem``; ``up`` prints a curl).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from deploy.lab.netlab import HOSTS, VIP, SwitchedLab, admin_url, run

STATE = Path("/run/floatgate-lab.json")
TAG = "fglab"


def up(members: int, tls: bool) -> int:
    if STATE.exists():
        print(f"lab: already up ({STATE}); run `python -m deploy.lab down` first",
              file=sys.stderr)  # fmt: skip
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="floatgate-lab-"))
    lab = SwitchedLab(workdir, etcd_members=members, etcd_tls=tls, tag=TAG)
    print(f"lab: namespaces {TAG}<host>, 10.199.2.0/24, VIP {VIP}; starting (~10 s) ...")
    try:
        lab.start_cluster()
    except Exception as exc:
        print(f"lab: start failed: {exc}; tearing down", file=sys.stderr)
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)
        return 1
    state = {"workdir": str(workdir), "namespaces": sorted(lab.ns.values()),
             "pids": {name: [p.pid, _cmdline(p.pid)] for name, p in lab.procs.items()}}  # fmt: skip
    STATE.write_text(json.dumps(state, indent=1))
    print(f"lab: up. n1 holds the VIP: {lab.holders() == ['n1']}; logs in {workdir}")
    for host, address in HOSTS.items():
        print(f"  {host:<7}{address:<14}ip netns exec {TAG}{host} ...")
    print(f"  node files: {workdir}/n1.yaml {workdir}/n2.yaml {workdir}/cluster.yaml")
    print(f"  admin APIs: {admin_url('n1')} {admin_url('n2')} (HTTPS, lab CA "
          f"{lab.admin_pki / 'ca.pem'}): ip netns exec {TAG}client "
          f"{' '.join(lab.admin_curl())} {admin_url('n1', '/status')}")  # fmt: skip
    return 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def down() -> int:
    if not STATE.exists():
        print("lab: not up (nothing recorded); deleting any leftover fglab namespaces")
        for ns in run("ip", "netns", "list").split():
            if ns.startswith(TAG):
                run("ip", "netns", "del", ns, check=False)
        return 0
    state = json.loads(STATE.read_text())
    alive = []
    for name, (pid, cmdline) in state["pids"].items():
        if cmdline and _cmdline(pid) == cmdline:  # the same process, not a reused PID
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGTERM)
            alive.append((name, pid, cmdline))
    deadline = time.monotonic() + 10
    while alive and time.monotonic() < deadline:
        alive = [a for a in alive if _cmdline(a[1]) == a[2]]
        time.sleep(0.1)
    for name, pid, _ in alive:
        print(f"lab: {name} (pid {pid}) ignored SIGTERM: SIGKILL")
        os.kill(pid, signal.SIGKILL)
    for ns in state["namespaces"]:
        run("ip", "netns", "del", ns, check=False)
    shutil.rmtree(state["workdir"], ignore_errors=True)
    STATE.unlink()
    print("lab: down (processes stopped by PID, namespaces and work directory deleted)")
    return 0


def status() -> int:
    if not STATE.exists():
        print("lab: not up")
        return 1
    state = json.loads(STATE.read_text())
    lab = SwitchedLab(Path(state["workdir"]), tag=TAG)
    for name, (pid, cmdline) in state["pids"].items():
        print(f"  {name:<8}pid {pid:<8}{'running' if _cmdline(pid) == cmdline else 'gone'}")
    print(f"VIP {VIP} on: {', '.join(lab.holders()) or 'no node'}")
    return 0


def nemesis(args: argparse.Namespace) -> int:
    import random

    from deploy.lab.nemesis import FaultChoiceError, choose_faults, run_nemesis, table

    def stop(*_: object) -> None:
        raise SystemExit(143)  # unwinds: the lab is torn down by PID in a finally

    signal.signal(signal.SIGTERM, stop)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    only = [f.strip() for f in (args.faults or "").split(",") if f.strip()]
    try:
        choose_faults(random.Random(seed), 0, args.etcd_members, only)
    except FaultChoiceError as exc:
        print(f"nemesis: {exc}", file=sys.stderr)
        return 2
    result = run_nemesis(seed, args.events, args.ttl, args.arp_probe, args.fence,
                         args.etcd_members, args.nodes, only,
                         workers=args.workers)  # fmt: skip
    verdict = result.verdict
    steady = all(o.steady for o in result.outcomes)
    print(table([result]))
    if verdict is None:
        print(f"nemesis: seed {seed}: no verdict (the lab did not start)")
        return 1
    print(f"nemesis: seed {seed}: {len(result.outcomes)} events; two holders "
          f"{verdict.two_holders_ms:g} ms, two answerers {verdict.two_answerers_ms:g} ms "
          f"({verdict.questions} ARP questions, {verdict.claims} claims, "
          f"{len(verdict.handovers)} handovers within a question period)"
          + ("" if steady else "; a fault left no steady state")
          + (f"; VOID: {'; '.join(verdict.blind)}" if verdict.blind else ""))  # fmt: skip
    if args.json:
        print(json.dumps({"seed": seed, "settings": result.settings,
                          "outcomes": [o.__dict__ if hasattr(o, "__dict__") else
                                       {k: getattr(o, k) for k in o.__slots__}
                                       for o in result.outcomes],
                          "two_holders_ms": verdict.two_holders_ms,
                          "two_answerers_ms": verdict.two_answerers_ms,
                          "holder_overlaps": verdict.holder_overlaps,
                          "answerer_periods": verdict.answerer_periods,
                          "handovers": verdict.handovers,
                          "periods": result.periods}))  # fmt: skip
    if not verdict.safe or not steady:
        for period in result.periods:
            print(f"two answerers {period['start']:.3f}-{period['end']:.3f}: frames "
                  f"{period['frames']}; addresses {period['addresses']}")  # fmt: skip
        again = (f" --ttl {args.ttl} --arp-probe {args.arp_probe} --fence {args.fence}"
                 f" --etcd-members {args.etcd_members} --nodes {args.nodes}"
                 f" --workers {args.workers}"
                 + (f" --faults {','.join(only)}" if only else ""))  # fmt: skip
        print(f"nemesis: FAILED; replay with --seed {seed} --events {args.events}{again}")
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.lab",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="lab, etcd, a backend and two nodes")
    start.add_argument("--etcd-members", type=int, choices=(1, 3), default=1)
    start.add_argument("--etcd-tls", action="store_true", help="etcd with client TLS")
    commands.add_parser("down", help="stop everything by PID and delete the lab")
    commands.add_parser("status", help="processes and VIP holder")
    nem = commands.add_parser("nemesis", help="random faults judged by the event checker")
    nem.add_argument("--seed", type=int, help="replay a schedule (default: a random seed)")
    nem.add_argument("--events", type=int, default=20)
    nem.add_argument("--ttl", default="2s", help="election.lease_ttl (1s, 2s, 3s)")
    nem.add_argument("--arp-probe", default="50ms", help="vip.arp_probe")
    nem.add_argument("--fence", choices=("bpf", "lifetime"), default="bpf")
    nem.add_argument("--etcd-members", type=int, choices=(1, 3), default=1)
    nem.add_argument("--nodes", type=int, choices=(2, 3), default=2, help="floatgate nodes")
    nem.add_argument("--workers", type=int, default=0, help="node.yaml workers on every node")
    nem.add_argument("--faults", help="comma-separated faults to draw from (default: all)")
    nem.add_argument("--json", action="store_true", help="also every event as JSON")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("lab: needs root (network namespaces)", file=sys.stderr)
        return 2
    if args.command == "up":
        return up(args.etcd_members, args.etcd_tls)
    if args.command == "nemesis":
        return nemesis(args)
    return down() if args.command == "down" else status()


if __name__ == "__main__":
    sys.exit(main())
