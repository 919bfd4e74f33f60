"""Runs in the client namespace: GET the VIP every 10 ms for N seconds; prints JSON with
every failure time and the longest outage (first failure to next success)."""

from __future__ import annotations

import http.client
import json
import sys
import time


def main() -> None:
    host, seconds = sys.argv[1], float(sys.argv[2])
    end = time.monotonic() + seconds
    failures: list[float] = []
    longest = 0.0
    outage_start: float | None = None
    start = time.monotonic()
    ok = 0
    while time.monotonic() < end:
        t = time.monotonic()
        try:
            conn = http.client.HTTPConnection(host, 80, timeout=0.5)
            conn.request("GET", "/")
            success = conn.getresponse().status == 200
            conn.close()
        except OSError:
            success = False
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
    print(json.dumps({"ok": ok, "failures": len(failures), "longest_outage": round(longest, 3)}))


if __name__ == "__main__":
    main()
