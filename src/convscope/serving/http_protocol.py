"""uvicorn's HTTP/1.1 protocol, answering requests it cannot parse (`Content-Length: -1`, a broken request
line) with a JSON error like every other, instead of plain text.

A module-level class, so that `--workers` can hand it to worker processes (spawned workers import it by name).
"""

from __future__ import annotations

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class JsonErrorH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"error": f"the request is not valid HTTP ({msg.rstrip('.')})."}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
        self.transport.write(self.conn.send(h11.Data(data=body)))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()
