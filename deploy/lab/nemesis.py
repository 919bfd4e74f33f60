"""The nemesis: random fault schedules against a running lab cluster, judged by the
event-driven checker (deploy/lab/checker.py). ``python -m deploy.lab nemesis --seed S
--events N`` prints the seed first; the same seed, settings and event count replay the
same schedule.

Faults (each on the active node unless said otherwise; healed before the next one):
kill -9 (the node is started again), SIGSTOP for 50 ms - 3 s, link down, random loss
(20-100 %) on the node's etcd traffic only, a delay of the node's etcd traffic (25-500 ms
each way, 10 % jitter), nft partitions (node -> etcd only, etcd -> node only, both ways
with everything else flowing, node <-> node ARP only), a planned switchover (alone, or
during etcd loss), with 3 etcd members a pause of the etcd leader, and slow fsync on the
etcd leader (strace fault injection: every fdatasync delayed 50-400 ms). This kernel has
no netem (CONFIG_NET_SCH_NETEM is off): loss is an nft rule (numgen random), and delay
an iptables NFQUEUE rule whose packets deploy/lab/nfdelay.py lets through late. After
each fault the run waits for a steady state (one holder, every node running) before the
next.
"""

from __future__ import annotations

import json
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deploy.lab.checker import EventChecker
from deploy.lab.netlab import ETCD_HOSTS, HOSTS, REPO, SwitchedLab, run
from deploy.lab.verdict import BACKSTOP, Verdict
from node.config.reader import parse_duration

FAULTS = ("kill-9", "sigstop", "link-down", "etcd-loss", "cut-to-etcd", "cut-from-etcd",
          "cut-etcd-both", "cut-arp", "switchover", "switchover-during-loss", "etcd-leader-pause",
          "etcd-slow-fsync", "etcd-delay")  # fmt: skip
DELAY_QUEUE = 7  # the NFQUEUE number etcd-delay uses in a node's namespace


@dataclass(slots=True)
class Outcome:
    fault: str
    node: str
    started: float
    seconds: float  # how long the fault lasted
    takeover: float | None = None  # first claim by another MAC after the fault began
    steady: bool = True
    two_holders_ms: float = 0.0
    two_answerers_ms: float = 0.0


@dataclass(slots=True)
class Run:
    seed: int
    settings: dict[str, object]
    outcomes: list[Outcome] = field(default_factory=list)
    verdict: Verdict | None = None
    # each period with two answerers, as recorded: frames (s from the period's start,
    # node or MAC, "question" or "claim") and address events (s, node, present)
    periods: list[dict[str, object]] = field(default_factory=list)


class Nemesis:
    def __init__(self, lab: SwitchedLab, rng: random.Random) -> None:
        self.lab = lab
        self.rng = rng

    # -- faults ---------------------------------------------------------------------------
    def active(self) -> str:
        holders = self.lab.holders()
        return holders[0] if len(holders) == 1 else "n1"

    def other(self, node: str) -> str:
        return self.rng.choice([n for n in self.lab.nodes if n != node])

    def _nft(self, node: str, script: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.lab.ns[node], "nft", "-f", "-"],
                       input=script, text=True, check=True, timeout=10)  # fmt: skip

    def _heal_nft(self, node: str) -> None:
        for family in ("ip", "netdev"):
            subprocess.run(["ip", "netns", "exec", self.lab.ns[node], "nft", "delete", "table",
                            family, "nemesis"], capture_output=True, timeout=10)  # fmt: skip

    def _etcd_rules(self, chain: str, match: str, percent: int = 100) -> str:
        hosts = ", ".join(HOSTS[h] for h in ETCD_HOSTS[: self.lab.etcd_members])
        hook = "output" if chain == "out" else "input"
        some = "" if percent >= 100 else f"numgen random mod 100 < {percent} "
        return (f"table ip nemesis {{\n chain {chain} {{\n type filter hook {hook} priority 0\n"
                f" {match} {{ {hosts} }} {some}drop\n }}\n}}\n")  # fmt: skip

    def etcd_leader(self) -> str | None:
        endpoints = ",".join(self.lab.etcd_endpoints())
        out = subprocess.run(
            ["ip", "netns", "exec", self.lab.ns["client"], "etcdctl", f"--endpoints={endpoints}",
             "endpoint", "status", "-w", "json"], capture_output=True, text=True, timeout=10,
            env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        try:
            for entry in json.loads(out.stdout):
                status = entry["Status"]
                if status["leader"] == status["header"]["member_id"]:
                    host = entry["Endpoint"].split("//")[1].split(":")[0]
                    return next(h for h in ETCD_HOSTS if HOSTS[h] == host)
        except (ValueError, KeyError, StopIteration):
            return None
        return None

    def inject(self, fault: str) -> tuple[str, float]:
        """Apply ``fault``, hold it, heal it; returns (node, seconds it lasted)."""
        rng, lab = self.rng, self.lab
        node = self.active()
        hold = round(rng.uniform(0.5, 3.0), 3)
        if fault == "kill-9":
            lab.signal(node, signal.SIGKILL)
            lab.procs[node].wait(10)
            time.sleep(hold)
            lab.restart_node(node)
        elif fault == "sigstop":
            hold = round(rng.uniform(0.05, 3.0), 3)
            lab.signal(node, signal.SIGSTOP)
            time.sleep(hold)
            lab.signal(node, signal.SIGCONT)
        elif fault == "link-down":
            run("ip", "-n", lab.ns[node], "link", "set", "eth0", "down")
            time.sleep(hold)
            run("ip", "-n", lab.ns[node], "link", "set", "eth0", "up")
        elif fault in ("etcd-loss", "switchover-during-loss"):
            percent = rng.choice((20, 50, 100))
            self._nft(node, self._etcd_rules("out", "ip daddr", percent))
            try:
                if fault == "switchover-during-loss":
                    time.sleep(0.3)
                    self._switchover()
                time.sleep(hold)
            finally:
                self._heal_nft(node)
        elif fault in ("cut-to-etcd", "cut-from-etcd", "cut-etcd-both"):
            if fault != "cut-from-etcd":
                self._nft(node, self._etcd_rules("out", "ip daddr"))
            if fault != "cut-to-etcd":
                self._nft(node, self._etcd_rules("in", "ip saddr"))
            time.sleep(hold)
            self._heal_nft(node)
        elif fault == "cut-arp":
            peer = self.other(node)
            for here, there in ((node, peer), (peer, node)):
                mac = lab.mac(there)
                self._nft(
                    here,
                    f"table netdev nemesis {{\n chain in {{\n type filter hook ingress "
                    f'device "eth0" priority 0\n ether saddr {mac} ether type arp drop\n }}\n}}\n',
                )
            time.sleep(hold)
            for here in (node, peer):
                self._heal_nft(here)
        elif fault == "switchover":
            self._switchover()
            hold = 0.0
        elif fault == "etcd-slow-fsync":
            leader = self.etcd_leader() or "etcd"
            node = leader
            delay_us = rng.choice((50, 100, 200, 400)) * 1000
            tracer = subprocess.Popen(
                ["strace", "-f", "-qq", "-o", "/dev/null", "-p", str(lab.procs[leader].pid),
                 "-e", "trace=fdatasync,fsync",
                 "-e", f"inject=fdatasync,fsync:delay_enter={delay_us}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                time.sleep(hold)
            finally:
                tracer.terminate()  # strace detaches from every thread on SIGTERM
                tracer.wait(10)
        elif fault == "etcd-delay":
            one_way = rng.choice((25, 100, 250, 500))
            self.delay_etcd(node, one_way, rng.randrange(1 << 30))
            try:
                time.sleep(hold)
            finally:
                self.heal_delay(node)
        elif fault == "etcd-leader-pause":
            leader = self.etcd_leader() or "etcd"
            node = leader
            lab.signal(leader, signal.SIGSTOP)
            time.sleep(hold)
            lab.signal(leader, signal.SIGCONT)
        else:
            raise ValueError(f"unknown fault {fault}")
        return node, hold

    def delay_etcd(self, node: str, one_way_ms: int, seed: int = 0) -> None:
        """Every packet between ``node`` and etcd waits ``one_way_ms`` (10 % jitter), in
        both directions: a round trip of twice that, on connections already open too."""
        lab = self.lab
        delayer = lab.start(f"nfdelay-{node}", node, sys.executable, "-m", "deploy.lab.nfdelay",
                            "--queue", str(DELAY_QUEUE), "--delay-ms", str(one_way_ms),
                            "--jitter-ms", str(one_way_ms / 10), "--seed", str(seed))  # fmt: skip
        log = lab.workdir / f"nfdelay-{node}.log"
        end = time.monotonic() + 5
        while "bound" not in log.read_text():
            if delayer.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"nfdelay did not start: {log.read_text()[-500:]}")
            time.sleep(0.02)
        hosts = ",".join(HOSTS[h] for h in ETCD_HOSTS[: lab.etcd_members])
        queue = ["-j", "NFQUEUE", "--queue-num", str(DELAY_QUEUE), "--queue-bypass"]
        for chain, side in (("OUTPUT", "-d"), ("INPUT", "-s")):
            run("ip", "netns", "exec", lab.ns[node], "iptables", "-t", "mangle", "-A", chain,
                side, hosts, *queue)  # fmt: skip

    def heal_delay(self, node: str) -> None:
        """Rules first (new packets pass at once), then the delayer lets its held ones go."""
        lab = self.lab
        for chain in ("OUTPUT", "INPUT"):
            run("ip", "netns", "exec", lab.ns[node], "iptables", "-t", "mangle", "-F", chain,
                check=False)  # fmt: skip
        delayer = lab.procs.pop(f"nfdelay-{node}", None)
        if delayer is not None and delayer.poll() is None:
            delayer.terminate()
            delayer.wait(10)

    def _switchover(self) -> None:
        subprocess.run(
            ["ip", "netns", "exec", self.lab.ns["client"], sys.executable, "-m", "node.cli",
             "switchover", "--node", str(self.lab.workdir / "n1.yaml"), "--cluster-name",
             "lab"], cwd=REPO, capture_output=True, timeout=30,
        )  # fmt: skip

    def steady(self, settle: float, timeout: float = 30.0) -> bool:
        """Every node process running and answering, and one and the same holder for
        ``settle`` seconds (a lease TTL: what a fault set in motion has played out)."""
        end = time.monotonic() + timeout
        holder, since = None, time.monotonic()
        while time.monotonic() < end:
            holders = self.lab.holders()
            running = all(self.lab.procs[n].poll() is None for n in self.lab.nodes)
            current = holders[0] if running and len(holders) == 1 else None
            if current != holder:
                holder, since = current, time.monotonic()
            elif current is not None and time.monotonic() - since >= settle:
                try:
                    if all(self.lab.admin_status(n).get("role") for n in self.lab.nodes):
                        return True
                except (RuntimeError, ValueError):
                    pass
            time.sleep(0.1)
        return False


class FaultChoiceError(ValueError):
    """The faults asked for cannot be drawn with these settings."""


NEEDS_THREE_ETCD = ("etcd-leader-pause",)  # with one member it is plain etcd loss


def choose_faults(
    rng: random.Random, count: int, etcd_members: int, only: Sequence[str] = ()
) -> list[str]:
    """`count` faults drawn uniformly from `only` (default: every fault these settings can
    run). A name that is not a fault, or one that needs 3 etcd members on a 1-member etcd,
    is refused rather than silently left out."""
    unknown = [f for f in only if f not in FAULTS]
    if unknown:
        raise FaultChoiceError(f"unknown fault {', '.join(unknown)}; faults: {', '.join(FAULTS)}")
    if etcd_members != 3 and (needy := [f for f in only if f in NEEDS_THREE_ETCD]):
        raise FaultChoiceError(f"{', '.join(needy)} needs --etcd-members 3")
    pool = list(dict.fromkeys(only)) or [
        f for f in FAULTS if f not in NEEDS_THREE_ETCD or etcd_members == 3
    ]
    return [rng.choice(pool) for _ in range(count)]


def run_nemesis(
    seed: int,
    events: int,
    lease_ttl: str = "2s",
    arp_probe: str = "50ms",
    fence: str = "bpf",
    etcd_members: int = 1,
    nodes: int = 2,
    faults: Sequence[str] = (),
    say: Callable[[str], None] = print,
    workdir: Path | None = None,
    workers: int = 0,
) -> Run:
    import shutil
    import tempfile

    rng = random.Random(seed)
    settings: dict[str, object] = {"lease_ttl": lease_ttl, "arp_probe": arp_probe,
                                   "fence": fence, "etcd_members": etcd_members,
                                   "nodes": nodes}  # fmt: skip
    if faults:
        settings["faults"] = list(faults)
    if workers:
        settings["workers"] = workers
    schedule = choose_faults(rng, events, etcd_members, faults)  # refused before any lab
    say(f"nemesis: seed {seed}, {events} events, {settings}")
    workdir = workdir or Path(tempfile.mkdtemp(prefix="floatgate-nemesis-"))
    lab = SwitchedLab(workdir, etcd_members=etcd_members, lease_ttl=lease_ttl,
                      arp_probe=arp_probe, fence=fence, nodes=nodes,
                      workers=workers)  # fmt: skip
    result = Run(seed, settings)
    try:
        lab.start_cluster()
        asker = lab.start_arp_watch()
        checker = EventChecker(lab)
        checker.start()
        nemesis = Nemesis(lab, rng)
        for index, fault in enumerate(schedule, 1):
            before = time.monotonic()
            holders = lab.holders()
            previous = lab.mac(holders[0]) if len(holders) == 1 else None
            node, seconds = nemesis.inject(fault)
            outcome = Outcome(fault, node, before, seconds)
            outcome.steady = nemesis.steady(settle=parse_duration(lease_ttl))
            claims = [e for e in checker.arp if not e.question and e.at > before]
            moved = next((e.at for e in claims if e.mac != previous), None)
            outcome.takeover = round(moved - before, 3) if moved is not None else None
            result.outcomes.append(outcome)
            say(f"[{index}/{events}] {fault} on {node} for {seconds:.2f}s: "
                f"{f'takeover {outcome.takeover:.2f}s' if outcome.takeover else 'no takeover'}"
                f"{'' if outcome.steady else ' -- NO STEADY STATE'}; now held by "
                f"{','.join(lab.holders()) or 'nobody'}")  # fmt: skip
            if not outcome.steady:
                break
        asker.terminate()
        asker.wait(10)
        result.verdict = checker.stop(fenced_backstop=_backstop(settings))
        _attribute(result)
        result.periods = _period_records(
            result.verdict, checker, {lab.mac(n): n for n in lab.nodes}
        )
    finally:
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _period_records(
    verdict: Verdict, checker: EventChecker, nodes: dict[str, str]
) -> list[dict[str, object]]:
    """What the checker saw around each period with two answerers (0.2 s either side
    for frames, 0.5 s for addresses), to tell a handover from a split brain."""
    records: list[dict[str, object]] = []
    for start, end, _ in verdict.answerer_periods:
        frames = [(round(e.at - start, 4), nodes.get(e.mac, e.mac),
                   "question" if e.question else "claim")
                  for e in checker.arp if start - 0.2 <= e.at <= end + 0.2]  # fmt: skip
        addresses = [(round(a.at - start, 4), a.node, a.present)
                     for a in checker.addresses if start - 0.5 <= a.at <= end + 0.5]  # fmt: skip
        records.append({"start": start, "end": end, "frames": frames, "addresses": addresses})
    return records


def _attribute(result: Run) -> None:
    """Split the verdict's bad intervals among the faults during which they began."""
    verdict = result.verdict
    if verdict is None:
        return
    slack = BACKSTOP if _backstop(result.settings) else 0.0
    starts = [o.started for o in result.outcomes] + [float("inf")]
    for index, outcome in enumerate(result.outcomes):
        low, high = starts[index], starts[index + 1]
        outcome.two_holders_ms = _within(verdict.holder_overlaps, low, high, slack)
        outcome.two_answerers_ms = _within(verdict.answerer_periods, low, high)


def _backstop(settings: dict[str, object]) -> bool:
    """bpf fence with reigns under a second: the address is a 1 s backstop."""
    ttl = parse_duration(str(settings["lease_ttl"]))
    return settings["fence"] == "bpf" and ttl < 2


def _within(
    intervals: list[tuple[float, float, tuple[str, ...]]],
    low: float,
    high: float,
    slack: float = 0.0,
) -> float:
    found = [max(0.0, b - a - slack) for a, b, _ in intervals if low <= a < high]
    return round(sum(found) * 1000, 1)


def table(runs: list[Run]) -> str:
    """Markdown: fault, count, takeover median / max, two-holder ms, two-answerer ms."""
    rows: dict[str, list[Outcome]] = {}
    for run_ in runs:
        for outcome in run_.outcomes:
            rows.setdefault(outcome.fault, []).append(outcome)
    lines = [
        "| fault | count | takeovers | takeover median s | takeover max s | "
        "two holders ms | two answerers ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for fault in FAULTS:
        outcomes = rows.get(fault, [])
        if not outcomes:
            continue
        times = [o.takeover for o in outcomes if o.takeover is not None]
        median = f"{statistics.median(times):.2f}" if times else "-"
        worst = f"{max(times):.2f}" if times else "-"
        lines.append(f"| {fault} | {len(outcomes)} | {len(times)} | {median} | {worst} | "
                     f"{sum(o.two_holders_ms for o in outcomes):g} | "
                     f"{sum(o.two_answerers_ms for o in outcomes):g} |")  # fmt: skip
    return "\n".join(lines)
