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


def pipeline(c, requests):
    """Sends every request, then reads one answer for each, by id."""
    for r in requests:
        c.send_json(r)
    got = {}
    while len(got) < len(requests):
        m = c.recv_json(timeout=30)
        got[m["id"]] = m
    return got


def test_status_with_many_topics_while_handshakes_go_on(make_nginx):
    # the page is copied out of the zone under its lock and built after:
    # with many topics it stays exact while other workers take the lock
    n = make_nginx(workers=2, location="loom_max_subscriptions 2000;")
    admin = n.client()
    topics = ["many/%04d" % i for i in range(800)]
    got = pipeline(admin, [{"id": t, "action": "registerTopic", "topic": t,
                            "data": {"v": None}, "requireAck": True}
                           for t in topics])
    assert all(m["code"] == 200 for m in got.values())
    a, b = n.client(), n.client()
    for c, part in ((a, topics), (b, topics[:300])):
        got = pipeline(c, [{"id": t, "action": "subscribe", "topic": t,
                            "requireAck": True} for t in part])
        assert all(m["code"] == 200 for m in got.values())

    stop = threading.Event()
    errors = []
    opened = [0]

    def churn():
        try:
            while not stop.is_set():
                c = n.client(headers={"ClientId": "churn-%d" % opened[0]})
                assert c.request({"id": "l", "action": "listTopics"},
                                 timeout=10)["code"] == 200
                c.close()
                opened[0] += 1
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=churn) for _ in range(1)]
    for t in threads:
        t.start()
    try:
        expected = {t: 1 for t in topics}
        for t in topics[:300]:
            expected[t] = 2
        for _ in range(20):
            st = n.status()
            assert st["topics"] == expected
            assert st["topics_subscribed"] == 800
            assert st["subscriptions"] == 1100
            assert 3 <= st["connections"] <= 4
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert opened[0] > 0
    wait_for(lambda: n.status()["connections"] == 3, what="the churn to end")
