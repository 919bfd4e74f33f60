"""The cluster demo (needs root): a namespace lab with etcd, two floatgate nodes, a
backend and a client that GETs the VIP every 10 ms. It kills the active node with
SIGKILL, shows the standby taking the VIP, prints what the client saw, and tears
everything down.

    .venv/bin/python deploy/lab/demo.py
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from deploy.lab.netlab import (
    VIP,
    SwitchedLab,
    wait_for,
)


def main() -> int:
    if shutil.which("etcd") is None:
        print("demo: etcd is not installed (scripts/setup.sh installs it)", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="floatgate-demo-"))
    lab = SwitchedLab(workdir)
    try:
        print("1. lab up: switch, etcd, n1, n2, web, client namespaces on 10.199.2.0/24")
        lab.start_cluster()
        print("2. floatgate n1 (priority 900) and n2 (priority 100) campaigning ...")
        print(f"   {lab.holders()[0]} is active and holds VIP {VIP}")
        print("3. a client GETs http://10.199.2.50/ every 10 ms for 8 s")
        result: dict[str, object] = {}

        def probe() -> None:
            proc = lab.start("probe", "client", sys.executable, "-m", "deploy.lab.client_probe",
                             VIP, "8", "0.5")  # fmt: skip
            proc.wait(30)
            result.update(json.loads(lab.log("probe").strip().splitlines()[-1]))

        thread = threading.Thread(target=probe)
        thread.start()
        time.sleep(2.0)
        active = lab.holders()[0]
        standby = "n2" if active == "n1" else "n1"
        print(f"4. kill -9 {active} (pid {lab.procs[active].pid})")
        lab.signal(active, signal.SIGKILL)
        took = wait_for(lambda: lab.holders() == [standby], 15, f"{standby} to take the VIP")
        print(f"   {standby} holds the VIP {took:.2f}s after the kill")
        thread.join(30)
        print(f"5. the client: {result.get('ok')} requests answered, {result.get('failures')} "
              f"failed, longest outage {result.get('longest_outage')} s")  # fmt: skip
        return 0
    finally:
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)
        print("6. lab torn down")


if __name__ == "__main__":
    sys.exit(main())
