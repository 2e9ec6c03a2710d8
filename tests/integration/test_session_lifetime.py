"""The life of a session around nginx's own request handling: a loom
location with a mirror subrequest, nginx closing connections itself
(worker_shutdown_timeout), the status page while handshakes go on, and
what an idle connection keeps for the access log and limit_conn."""

import os
import signal
import socket
import struct
import threading
import time

import pytest

from conftest import register, subscribe, wait_for
from wsclient import CLOSE

LIST = '{"id":"l","action":"listTopics"}'


def access_lines(n):
    with open(os.path.join(n.prefix, "access.log")) as f:
        return [line for line in f if '"GET /ws ' in line]


def quit_and_wait(n):
    os.kill(n.master, signal.SIGQUIT)
    wait_for(lambda: not n.worker_pids(), timeout=20, what="workers to exit")


@pytest.mark.parametrize("keep", ["on", "off"])
def test_mirror_subrequest_in_a_loom_location(make_nginx, keep):
    n = make_nginx(server="location = /m { internal; return 204; }",
                   location="mirror /m; loom_keep_request %s;" % keep,
                   log_level="debug")
    clients = [n.client() for _ in range(3)]
    for c in clients:
        assert c.request({"id": "l", "action": "listTopics"})["code"] == 200
    for c in clients:
        c.close()
    wait_for(lambda: n.status()["connections"] == 0,
             what="the connections to close")
    c = n.client()
    assert c.request({"id": "l", "action": "listTopics"})["code"] == 200
    quit_and_wait(n)
    log = n.log()
    assert "open socket" not in log
    assert "request count is zero" not in log
    assert n.bad_log_lines() == []


class SlowBackend:
    """An HTTP server that answers 204 after a delay: a mirror subrequest
    that is still running when the WebSocket is taken over or closed."""

    def __init__(self, delay):
        self.delay = delay
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self.stopped = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(conn,),
                             daemon=True).start()

    def answer(self, conn):
        try:
            conn.recv(65536)
            self.requests += 1
            time.sleep(self.delay)
            conn.sendall(b"HTTP/1.1 204 No Content\r\n"
                         b"Connection: close\r\n\r\n")
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self):
        self.stopped = True
        self.sock.close()


@pytest.mark.parametrize("keep", ["on", "off"])
def test_slow_mirror_subrequest_in_a_loom_location(make_nginx, keep):
    backend = SlowBackend(1.0)
    try:
        n = make_nginx(
            server="location = /m { internal; proxy_pass http://127.0.0.1:%d; }"
                   % backend.port,
            location="mirror /m; loom_keep_request %s;" % keep)
        # the WebSocket works while the mirror waits for its answer
        a = n.client()
        assert a.request({"id": "l", "action": "listTopics"})["code"] == 200
        # closed before the mirror is done
        b = n.client()
        assert b.request({"id": "l", "action": "listTopics"})["code"] == 200
        b.close()
        wait_for(lambda: backend.requests >= 2, what="the mirrors")
        time.sleep(1.5)
        assert a.request({"id": "l", "action": "listTopics"})["code"] == 200
        a.close()
        wait_for(lambda: n.status()["connections"] == 0,
                 what="the connections to close")
        wait_for(lambda: len(access_lines(n)) == 2, what="the log lines")
        for line in access_lines(n):
            assert '" 101 ' in line
        quit_and_wait(n)
        log = n.log()
        assert "open socket" not in log
        assert "request count is zero" not in log
        assert "signal 11" not in log
        assert n.bad_log_lines() == []
    finally:
        backend.stop()
