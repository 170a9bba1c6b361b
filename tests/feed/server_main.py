"""`python -m tests.feed.server_main serve …`: the real CLI, with the feed's shutdown hook registered.

The hook (`app.on_shutdown.append(feed.on_shutdown)`) lets open streams end at once on SIGTERM; this
wrapper adds it only when create_app does not do it already.
"""

from __future__ import annotations

import sys
from typing import Any

from aiohttp import web


def main(argv: list[str]) -> int:
    from orchestrator.api import app as app_module
    from orchestrator.api.routes import feed
    from orchestrator.cli import main as cli_main

    original = app_module.create_app

    def create_app(settings: Any, **kw: Any) -> web.Application:
        app = original(settings, **kw)
        if feed.on_shutdown not in app.on_shutdown:
            app.on_shutdown.append(feed.on_shutdown)
        return app

    app_module.create_app = create_app  # type: ignore[assignment]
    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
