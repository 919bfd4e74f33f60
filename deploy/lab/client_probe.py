"""Runs in the client namespace: GET the VIP every 10 ms for N seconds; prints JSON with
every failure time, the longest outage (first failure to next success) and the slowest
request (a SYN retransmit shows as ~1 s)."""

from __future__ import annotations

import http.client
import json
import sys
import time


def main() -> None:
    host, seconds = sys.argv[1], float(sys.argv[2])
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 0.5
    end = time.monotonic() + seconds
    failures: list[float] = []
    errors: list[str] = []
    longest = 0.0
    outage_start: float | None = None
    start = time.monotonic()
    ok = 0
    slowest = 0.0
    while time.monotonic() < end:
        t = time.monotonic()
        try:
            conn = http.client.HTTPConnection(host, 80, timeout=timeout)
            conn.request("GET", "/")
            success = conn.getresponse().status == 200
            conn.close()
        except OSError as exc:
            success = False
            errors.append(f"{t - start:.3f}:{type(exc).__name__}:{exc}")
        slowest = max(slowest, time.monotonic() - t)
        if success:
            ok += 1
            if outage_start is not None:
                longest = max(longest, t - outage_start)
                outage_start = None
        else:
            failures.append(round(t - start, 3))
            outage_start = outage_start if outage_start is not None else t
        time.sleep(max(0.0, 0.01 - (time.monotonic() - t)))
    if outage_start is not None:
        longest = max(longest, time.monotonic() - outage_start)
    print(json.dumps({"ok": ok, "failures": len(failures), "longest_outage": round(longest, 3),
                      "slowest": round(slowest, 3), "errors": errors[:5]}))  # fmt: skip


if __name__ == "__main__":
    main()
