"""The real `orchestrator serve` in a child process, for the tests that need a server of their own.

`start_server` spawns it, reads its start-up block from stdout (on the pipe, never on a clock tick)
and hands the pipe to a daemon thread that keeps draining it, so the server never blocks on a full
pipe. `ServerProcess.stop` sends SIGTERM and returns the exit code; `kill` is a crash (SIGKILL).
Synchronous on purpose: async tests call it through `anyio.to_thread`.
"""

from __future__ import annotations

import codecs
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
LISTENING = "orchestrator listening on "
LOGIN = "Open in a browser: "
# The last line of serve's start-up block: waiting for it (not just LISTENING) means the login line,
# printed in between, is already in `stdout` when start_server returns.
READY = "SDK:"
DEFAULT_KEY = "k"


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any ORCHESTRATOR_* / RETAB_* setting that could leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "RETAB_"))}
    env.update(extra)
    return env


class _Lines:
    """Splits what os.read returns into lines. Reading the fd directly (not the text wrapper) matters:
    a buffered readline could swallow several lines at once and leave the selector with nothing to wake on."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, chunk: bytes) -> list[str]:
        self._pending += self._decoder.decode(chunk, final=not chunk)
        *lines, self._pending = self._pending.split("\n")
        if not chunk and self._pending:
            lines, self._pending = [*lines, self._pending], ""
        return [line.rstrip("\r") for line in lines]


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    base_url: str
    api_key: str
    stdout: list[str]
    db: Path | str  # a SQLite file, or a postgresql:// URL
    stderr_path: Path
    _drain: threading.Thread | None = field(default=None, repr=False)

    def login_url(self) -> str | None:
        """The `Open in a browser: …` link, if the server printed one."""
        return next((line.removeprefix(LOGIN).strip() for line in self.stdout if line.startswith(LOGIN)), None)

    def stderr_tail(self, chars: int = 4000) -> str:
        path = self.stderr_path
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send `sig` (if still running) and return the exit code; SIGKILL if it does not exit in time
        (the code is then -SIGKILL)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._join_drain()
        return code

    def kill(self) -> None:
        """A crash: SIGKILL, no chance to clean up."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._join_drain()

    def _join_drain(self) -> None:
        # The pipe ends with the process, so this is quick; afterwards `stdout` is complete.
        if self._drain is not None:
            self._drain.join(timeout=10)


def _drain(fd: int, lines: _Lines, out: list[str], pipe: IO[str]) -> None:
    try:
        while chunk := os.read(fd, 65536):
            out.extend(lines.feed(chunk))
        out.extend(lines.feed(b""))
    finally:
        pipe.close()


def _read_start_up(proc: subprocess.Popen[str], lines: _Lines, out: list[str], timeout: float, log: Path) -> str:
    """Read stdout until READY; → the URL from the LISTENING line."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"server did not start within {timeout} s; stdout: {out}; stderr: {_tail(log)}")
            if not sel.select(timeout=left):
                continue
            chunk = os.read(fd, 65536)
            out.extend(lines.feed(chunk))
            url = next((line.removeprefix(LISTENING).strip() for line in out if line.startswith(LISTENING)), "")
            if url and any(line.startswith(READY) for line in out):
                return url
            if not chunk:
                code = proc.wait()
                raise RuntimeError(f"server exited with {code} before listening; stdout: {out}; stderr: {_tail(log)}")


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def start_server(
    db: Path | str,
    *,
    api_key: str = DEFAULT_KEY,
    demo: bool = False,
    port: int = 0,
    extra: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stderr: Path | None = None,
    start_timeout: float = 60,
    module: Sequence[str] = ("-m", "orchestrator"),
) -> ServerProcess:
    """Start `serve` on `db` (127.0.0.1, `port` 0 = any free one) and return once it listens.

    `db` is a SQLite file or a postgresql:// URL. `env` replaces the whole environment (default:
    `clean_env()`); stderr is appended to `stderr` (default: `server.stderr` next to a SQLite database;
    required with a URL); `cwd` defaults to the repository root.
    """
    cmd = [sys.executable, *module, "serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(db)]
    cmd += ["--api-key", api_key, *([] if demo else ["--no-demo"]), *extra]
    if stderr is None and not isinstance(db, Path):
        raise ValueError("start_server(db=URL) needs stderr=PATH")
    log = stderr or Path(db).parent / "server.stderr"
    with log.open("a") as err:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd or ROOT,
            env=dict(env) if env is not None else clean_env(),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    assert proc.stdout is not None
    lines, out = _Lines(), list[str]()
    try:
        url = _read_start_up(proc, lines, out, start_timeout, log)
    except BaseException:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        raise
    drain = threading.Thread(target=_drain, args=(proc.stdout.fileno(), lines, out, proc.stdout), daemon=True)
    drain.start()
    return ServerProcess(proc, url, api_key, out, db, log, drain)


@contextmanager
def server(db: Path, **kw: Any) -> Iterator[ServerProcess]:
    """`start_server(db, **kw)`, stopped with SIGTERM on the way out (the exit code is not checked)."""
    srv = start_server(db, **kw)
    try:
        yield srv
    finally:
        srv.stop()
