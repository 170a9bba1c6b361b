"""Document decoding off the event loop: a bounded pool of processes, with a deadline and a memory cap.

Decoding a PDF is pure CPU in pypdf: a 61 KB PDF that inflates to 60 MB of text took 15.5 s and a
20,000-page one 8.1 s, on the event loop that also serves every request, feed and run. Here PDF,
HTML and XML are decoded in anyio's worker processes (at most `processes` at once), each capped in
address space; past `timeout_s` the process is killed (anyio's `cancellable`) and the child fails
with `document_too_large`. Plain text, JSON and images stay in-process: decoding them is a copy.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_process

from orchestrator.engines.base import Document, EngineError
from orchestrator.engines.documents import Limits, load_document, needs_process, too_large

_capped = False


@dataclass(frozen=True)
class DecodeLimits(Limits):
    timeout_s: float = 30.0
    max_memory_mb: int = 1024  # address space a decoding process may add to what it started with


def _decode_in_process(filename: str, mime_type: str | None, data: bytes, limits: DecodeLimits) -> Any:
    """Runs in a pool process: caps its address space once, then decodes. Returns the Document or the
    fields of the EngineError (a dataclass exception does not survive pickling back)."""
    global _capped
    if not _capped:
        with open("/proc/self/statm") as f:  # Linux; elsewhere the deadline alone bounds a decode
            used = int(f.read().split()[0]) * resource.getpagesize()
        cap = used + limits.max_memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        _capped = True
    plain = Limits(max_pages=limits.max_pages, max_chars=limits.max_chars)
    try:
        return load_document(filename=filename, mime_type=mime_type, data=data, limits=plain)
    except EngineError as exc:
        return ("error", exc.code, exc.message, exc.details)
    except MemoryError:
        return ("error", "document_too_large", f"decoding {filename!r} needs more than {limits.max_memory_mb} MB", {})


class Decoder:
    def __init__(self, limits: DecodeLimits, processes: int = 1) -> None:
        self.limits = limits
        # Queueing for a process is not decoding: the deadline starts once a process is ours.
        self._slots = anyio.CapacityLimiter(max(1, processes))
        self._processes = anyio.CapacityLimiter(max(1, processes))

    async def decode(self, *, filename: str, mime_type: str | None, data: bytes) -> Document:
        limits = self.limits
        plain = Limits(max_pages=limits.max_pages, max_chars=limits.max_chars)
        if not needs_process(filename, mime_type, data):
            return load_document(filename=filename, mime_type=mime_type, data=data, limits=plain)
        async with self._slots:
            try:
                with anyio.fail_after(limits.timeout_s):
                    answer = await anyio.to_process.run_sync(
                        _decode_in_process, filename, mime_type, data, limits, cancellable=True, limiter=self._processes
                    )
            except TimeoutError:
                raise too_large(filename, f"decoding it took longer than {limits.timeout_s:g} s") from None
            except anyio.BrokenWorkerProcess:
                raise too_large(filename, "the decoding process died (out of memory?)") from None
        if isinstance(answer, Document):
            return answer
        _, code, message, details = answer
        raise EngineError(kind="input", code=code, message=message, details=details)
