"""systemd's notify protocol (sd_notify(3)) without libsystemd: datagrams to
$NOTIFY_SOCKET. READY=1 once the node serves, STATUS= lines for `systemctl status`,
WATCHDOG=1 from the event loop (a hung loop stops them and systemd restarts the node),
STOPPING=1 on shutdown. Without $NOTIFY_SOCKET every call does nothing."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

log = logging.getLogger("floatgate.systemd")


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        wanted = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        self.watchdog_interval = int(usec) / 1e6 / 2 if wanted else None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *lines: str, wait: float = 0.0) -> None:
        """One datagram. Keepalives never block: a reader that stopped reading fills the
        socket's queue (net.unix.max_dgram_qlen) and a blocking send would freeze the
        loop; READY and STOPPING wait up to ``wait`` seconds for room (a busy systemd
        that missed READY=1 would kill the node at its start timeout)."""
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                if wait > 0:
                    sock.settimeout(wait)
                else:
                    sock.setblocking(False)
                sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:  # systemd gone or not reading: nothing to tell, nothing to fail
            level = logging.WARNING if wait > 0 else logging.DEBUG
            log.log(level, "sd_notify %s to %s failed: %s", lines[0], self.address, exc)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}", wait=1.0)

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping: handing over and draining", wait=1.0)

    async def watchdog(self) -> None:
        """WATCHDOG=1 every half interval, for as long as the event loop runs."""
        if self.watchdog_interval is None:
            return
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)
