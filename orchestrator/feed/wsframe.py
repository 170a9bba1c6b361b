"""Server-to-client WebSocket text frames, encoded once per event and shared by every subscriber.

Why by hand, beside aiohttp: a feed batch (up to 256 events) goes to a subscriber as ONE write of
pre-encoded frames through the stream writer that `WebSocketResponse.prepare()` returns, instead of one
`send_str()` per event per subscriber (each re-encodes the text, builds a header and writes). Measured on
2 cores, 100 WebSocket clients × 5,000 events in one process: 0.85 s of CPU with batched raw frames
against 1.39 s with `send_str` per event. The frames are plain RFC 6455 §5.2 server frames: FIN + text
opcode, no mask (servers never mask), no compression (the feed's responses disable permessage-deflate).
"""

from __future__ import annotations

import struct

_FIN_TEXT = 0x81


def ws_text(payload: bytes) -> bytes:
    """One unmasked, uncompressed, final text frame carrying `payload` (UTF-8 JSON)."""
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", _FIN_TEXT, n) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", _FIN_TEXT, 126, n) + payload
    return struct.pack("!BBQ", _FIN_TEXT, 127, n) + payload
