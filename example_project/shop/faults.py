"""A reference database that hangs or dies on request, for ``manage.py benchmark_degraded``.

A TCP proxy on 127.0.0.1 in front of the database: forwarding, *hung* (it accepts
connections and forwards nothing, as a stopped server or a frozen host), or *dead* (it
drops every connection, old and new, as a killed server). Bounded: it serves 127.0.0.1
only and ends with :meth:`Proxy.close`.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time


class Proxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port: int = self.sock.getsockname()[1]
        self.state = "forwarding"  # or "hung", "dead"
        self._lock = threading.Lock()
        self._ends: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    def forward(self) -> None:
        self.state = "forwarding"

    def hang(self) -> None:
        self.state = "hung"

    def kill(self) -> None:
        """Drop every connection; new ones are dropped as they arrive."""
        self.state = "dead"
        with self._lock:
            ends, self._ends = self._ends, set()
        for end in ends:
            _drop(end)

    def _serve(self) -> None:
        while not self._closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self.state == "dead":
                _drop(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _drop(client)
                continue
            with self._lock:
                self._ends |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError):
            while not self._closed and self.state != "dead":
                if self.state != "forwarding":
                    time.sleep(0.005)  # hung: what arrives waits
                    continue
                ready, _, _ = select.select([source], [], [], 0.05)
                if not ready:
                    continue
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        _drop(source)
        _drop(sink)

    def close(self) -> None:
        self._closed = True
        self.kill()
        _drop(self.sock)


def _drop(end: socket.socket) -> None:
    with contextlib.suppress(OSError):
        end.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        end.close()
