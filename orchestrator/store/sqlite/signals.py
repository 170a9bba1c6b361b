"""Cross-process wake-ups for one SQLite file: a datagram to every listener of a channel.

SQLite has no NOTIFY, and the processes of one server (the API process and its workers) share only the
file. Each listener binds a Unix datagram socket in a folder named after the database; `notify` sends
one byte to every socket of the channel. A wake-up carries no data — the listener reads what changed from
the database — so a lost or coalesced datagram costs at most the listener's polling interval, which every
listener keeps as a fallback. Sockets of dead processes are unlinked by the first notify that finds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

_LISTING_TTL_S = 1.0  # how long a notifier trusts its listing of the folder


def signal_dir(db_path: str) -> Path:
    """A short per-user folder per database (socket paths are limited to ~100 bytes)."""
    key = hashlib.sha256(os.path.abspath(db_path).encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"orchestrator-{os.getuid()}"
    return base / key


class Listener:
    """One channel's wake-ups for this process: `on_wake()` is called on the event loop for each burst."""

    def __init__(self, folder: Path, channel: str, on_wake: Callable[[], None]) -> None:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = folder / f"{channel}-{os.getpid()}-{os.urandom(4).hex()}.sock"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._sock.bind(str(self.path))
        self._on_wake = on_wake
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._readable)

    def _readable(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._sock.recv(64):
                pass
        self._on_wake()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class Signals:
    def __init__(self, db_path: str) -> None:
        self.folder = signal_dir(db_path)
        self._out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._out.setblocking(False)
        self._listing: dict[str, tuple[float, list[str]]] = {}

    def listen(self, channel: str, on_wake: Callable[[], None]) -> Listener:
        """Call `on_wake` (on this event loop) when `channel` is notified; close() the listener after."""
        self._listing.clear()
        return Listener(self.folder, channel, on_wake)

    def notify(self, channel: str) -> None:
        """Wake every listener of `channel`, in this process and others. Never blocks, never raises."""
        now = time.monotonic()
        cached = self._listing.get(channel)
        if cached is None or now - cached[0] > _LISTING_TTL_S:
            try:
                names = [p.name for p in self.folder.glob(f"{channel}-*.sock")]
            except OSError:
                names = []
            cached = self._listing[channel] = (now, names)
        for name in cached[1]:
            path = self.folder / name
            try:
                self._out.sendto(b"!", str(path))
            except (BlockingIOError, InterruptedError):
                continue  # its queue is full: it has wake-ups pending already
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    with contextlib.suppress(OSError):
                        path.unlink()  # a listener that died without closing
                    self._listing.pop(channel, None)

    def close(self) -> None:
        self._out.close()
