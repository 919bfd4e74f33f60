"""Runs in the client namespace: asks "who has VIP?" every 50 ms and records every ARP
frame that claims the VIP (replies and gratuitous announcements) with its sender MAC,
until SIGTERM; then prints them as JSON lines of [monotonic time, MAC]."""

from __future__ import annotations

import ipaddress
import json
import signal
import socket
import sys
import time

from vip.garp import ETH_P_ARP, parse_arp, parse_mac, request_frame


def main() -> None:
    interface, own_ip, vip = sys.argv[1], sys.argv[2], ipaddress.IPv4Address(sys.argv[3])
    with open(f"/sys/class/net/{interface}/address") as f:
        mac = parse_mac(f.read().strip())
    ask = request_frame(mac, ipaddress.IPv4Address(own_ip), vip)
    stop = False

    def finish(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, finish)
    seen: list[tuple[float, str]] = []
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
        sock.bind((interface, 0))
        sock.settimeout(0.01)
        asked = 0.0
        while not stop:
            now = time.monotonic()
            if now - asked >= 0.05:
                sock.send(ask)
                asked = now
            try:
                frame = sock.recv(2048)
            except (TimeoutError, InterruptedError):
                continue
            parsed = parse_arp(frame)
            if parsed and parsed[1] != mac and parsed[2] == vip:
                seen.append((round(time.monotonic(), 4), parsed[1].hex(":")))
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
