"""A `python:` engine for tests/e2e/test_global_limits.py: each call marks itself in flight with a file in
the folder named by $PROBE_DIR (shared by every worker process), records how many calls were in flight
when it entered, holds for a moment like a model call, and leaves."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

HOLD_S = 0.05


def extract(config: Any, inputs: Any, pass_index: int) -> dict[str, Any]:
    folder = Path(os.environ["PROBE_DIR"])
    mine = folder / "in-flight" / f"{os.getpid()}-{uuid.uuid4().hex}"
    mine.touch()
    try:
        seen = sum(1 for _ in (folder / "in-flight").iterdir())
        with (folder / "seen.log").open("a") as log:
            log.write(f"{os.getpid()} {seen}\n")
        time.sleep(HOLD_S)
    finally:
        mine.unlink()
    return {"invoice_number": f"INV-{pass_index}", "total": 1.0}
