"""A real HTTP file server on 127.0.0.1 for the model-zoo tests (a thread of the test process).

It serves in-memory files by URL path, answers ``Range: bytes=N-`` with 206, can be told to
cut the next response after N body bytes (once), and records every request: its path, Range
header, status and how many body bytes it sent.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    path: str
    range: str | None
    status: int
    sent: int = 0
    complete: bool = False  # the whole body of the response went out


class _Handler(BaseHTTPRequestHandler):
    server: ZooServer

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass  # quiet test output

    def do_GET(self):
        state = self.server
        byte_range = self.headers.get("Range")
        data = state.files.get(self.path)
        if data is None:
            self._record(Served(self.path, byte_range, 404))
            self.send_error(404)
            return
        start = 0
        if byte_range:
            match = re.fullmatch(r"bytes=(\d+)-", byte_range.strip())
            if not match or int(match[1]) >= len(data):
                self._record(Served(self.path, byte_range, 416))
                self.send_error(416)
                return
            start = int(match[1])
        body = memoryview(data)[start:]
        served = Served(self.path, byte_range, 206 if start else 200)
        self._record(served)
        self.send_response(served.status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        limit = state.take_cut()
        to_send = body if limit is None else body[:limit]
        try:
            for offset in range(0, len(to_send), 1 << 20):
                chunk = to_send[offset:offset + (1 << 20)]
                self.wfile.write(chunk)
                served.sent += len(chunk)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        served.complete = served.sent == len(body)
        self.close_connection = True  # a cut response ends here, short of Content-Length

    def _record(self, served: Served) -> None:
        with self.server.lock:
            self.server.requests.append(served)


class ZooServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.files: dict[str, bytes] = {}
        self.requests: list[Served] = []
        self._cut_after: int | None = None
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> ZooServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def reset(self) -> None:
        with self.lock:
            self.files.clear()
            self.requests.clear()
            self._cut_after = None

    def cut_next_response_after(self, n_bytes: int) -> None:
        """The next response sends only `n_bytes` of its body, then closes the connection."""
        with self.lock:
            self._cut_after = n_bytes

    def take_cut(self) -> int | None:
        with self.lock:
            cut, self._cut_after = self._cut_after, None
            return cut

    def requests_for(self, path: str) -> list[Served]:
        with self.lock:
            return [r for r in self.requests if r.path == path]
