"""A TCP relay between nginx and Redis that can freeze a direction or
hang up.

A frozen direction stays open but carries nothing: the relay stops reading
that side, so the bytes wait in the kernel as they would behind a stuck
server, a dead peer on a half-open connection or a hung proxy.  Hanging up
ends nginx's side as a server that closes a client right behind its last
bytes (CLIENT KILL while messages flow).  Both apply to the connections
open at that moment; the ones made later pass freely, so a link that is
rebuilt works again.
"""

import selectors
import socket
import threading

from conftest import free_port


class _Pair:
    def __init__(self, client, server):
        self.client = client          # nginx's side
        self.server = server          # Redis's side
        self.subscriber = False       # it sent SUBSCRIBE
        self.frozen_up = False        # nginx -> Redis
        self.frozen_down = False      # Redis -> nginx
        self.hung_up = False          # nginx's side ended: nothing moves
        self.pending = {client: b"", server: b""}   # to write to each


class Relay:
    def __init__(self, target_port, host="127.0.0.1"):
        self.target = (host, target_port)
        self.port = free_port()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # a fixed receive buffer (no autotuning up to tcp_rmem's 32 MB):
        # what a frozen side holds back stays small and known
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(64)
        self.lsock.setblocking(False)
        self.pairs = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def freeze(self, down=True, up=False, subscriber_only=False):
        """Freezes the open connections (those that subscribed, or all)."""
        with self.lock:
            for p in self.pairs:
                if subscriber_only and not p.subscriber:
                    continue
                p.frozen_down = p.frozen_down or down
                p.frozen_up = p.frozen_up or up

    def thaw(self):
        """Lets every open connection carry its bytes again."""
        with self.lock:
            for p in self.pairs:
                p.frozen_down = p.frozen_up = False

    def hang_up(self, last, subscriber_only=True):
        """Sends nginx last on the open connections (those that subscribed,
        or all) and ends them: the bytes and the FIN leave in one TCP
        segment (corked), so nginx sees both with one readiness event.
        nginx's side stays open, half-closed, until close(): closing it
        with bytes unread would add a reset, a second event."""
        with self.lock:
            for p in self.pairs:
                if p.hung_up or (subscriber_only and not p.subscriber):
                    continue
                p.client.setblocking(True)
                p.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                p.client.sendall(p.pending[p.client] + last)
                p.client.shutdown(socket.SHUT_WR)
                p.server.close()
                p.hung_up = True

    def connections(self, subscriber=None):
        with self.lock:
            return [p for p in self.pairs if not p.hung_up
                    and (subscriber is None or p.subscriber == subscriber)]

    def close(self):
        self.running = False
        self.thread.join(timeout=5)
        with self.lock:
            for p in self.pairs:
                p.client.close()
                p.server.close()
        self.lsock.close()

    def _drop(self, p):
        self.pairs.remove(p)
        p.client.close()
        p.server.close()

    def _run(self):
        sel = selectors.DefaultSelector()
        while self.running:
            with self.lock:
                try:
                    c, _ = self.lsock.accept()
                    s = socket.create_connection(self.target)
                    c.setblocking(False)
                    s.setblocking(False)
                    self.pairs.append(_Pair(c, s))
                except BlockingIOError:
                    pass
                for p in list(self.pairs):
                    if p.hung_up:
                        continue
                    if not self._pump(p):
                        self._drop(p)
            sel.close()
            sel = selectors.DefaultSelector()
            with self.lock:
                sel.register(self.lsock, selectors.EVENT_READ)
                for p in self.pairs:
                    if p.hung_up:
                        continue
                    if not p.frozen_up:
                        sel.register(p.client, selectors.EVENT_READ)
                    if not p.frozen_down:
                        sel.register(p.server, selectors.EVENT_READ)
            sel.select(timeout=0.02)
        sel.close()

    def _pump(self, p):
        for src, dst, frozen in ((p.client, p.server, p.frozen_up),
                                 (p.server, p.client, p.frozen_down)):
            if frozen:
                continue
            try:
                data = src.recv(65536)
                if not data:
                    return False
                if src is p.client and b"SUBSCRIBE" in data:
                    p.subscriber = True
                p.pending[dst] += data
            except BlockingIOError:
                pass
            except OSError:
                return False
            if p.pending[dst]:
                try:
                    n = dst.send(p.pending[dst])
                    p.pending[dst] = p.pending[dst][n:]
                except BlockingIOError:
                    pass
                except OSError:
                    return False
        return True
