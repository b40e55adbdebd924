"""A loopback listener that accepts and counts connections and never answers: the proof that nothing
(a redirect, a page, a discovery document) made plugdeck or a browser reach where it must not."""

from __future__ import annotations

import socket
import threading


class Canary:
    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def __enter__(self) -> Canary:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
