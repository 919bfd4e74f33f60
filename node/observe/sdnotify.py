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

    def send(self, *lines: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # never blocking: a reader that stopped reading fills the socket's queue
                # (net.unix.max_dgram_qlen), and a blocking send would then freeze the loop
                sock.setblocking(False)
                sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:  # systemd gone or not reading: nothing to tell, nothing to fail
            log.debug("sd_notify to %s failed: %s", self.address, exc)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping: handing over and draining")

    async def watchdog(self) -> None:
        """WATCHDOG=1 every half interval, for as long as the event loop runs."""
        if self.watchdog_interval is None:
            return
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)
