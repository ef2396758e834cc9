"""A real TCP proxy on loopback that can cut connections: the network faults of the tests.

``cut_after`` cuts the connection right after forwarding a client packet that contains the given
bytes, so the server runs the statement but the client never hears back (a DROP whose answer is
lost). ``refuse_next`` closes the next N new connections at once (the network is down). ``go_down``
cuts every connection and refuses new ones until ``come_back`` (a network partition).
"""

from __future__ import annotations

import socket
import threading


class FaultyProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.cut_after: bytes | None = None
        self.cuts = 0
        self.refuse_next = 0
        self.refused = 0
        self.down = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                if self.down:
                    self.refused += 1
                    client.close()
                    continue
                if self.refuse_next > 0:
                    self.refuse_next -= 1
                    self.refused += 1
                    client.close()
                    continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            self._conns += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                if upstream and self.cut_after and self.cut_after in data:
                    with self._lock:
                        self.cut_after = None
                        self.cuts += 1
                    # Let the server read the statement, then cut before any answer comes back.
                    for s in (src, dst):
                        s.shutdown(socket.SHUT_RDWR)
                    break
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def go_down(self) -> None:
        with self._lock:
            self.down = True
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def come_back(self) -> None:
        with self._lock:
            self.down = False

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        for s in self._conns:
            try:
                s.close()
            except OSError:
                pass
