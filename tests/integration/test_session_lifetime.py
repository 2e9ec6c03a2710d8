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
from wsclient import CLOSE, HandshakeError

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


def test_shutdown_timeout_gives_back_client_ids(make_nginx):
    n = make_nginx(workers=2, main="worker_shutdown_timeout 1s;",
                   location="loom_close_timeout 60s;")
    names = ["stuck-%d" % i for i in range(6)]
    clients = [n.client(headers={"ClientId": name}) for name in names]
    for c in clients:
        assert c.request({"id": "l", "action": "listTopics"})["code"] == 200
    register(clients[0], "held", {"v": None})
    for c in clients:
        subscribe(c, "held")
    old = set(n.worker_pids())
    n.reload()
    # the old workers send 1001, nobody answers: nginx closes them itself
    for c in clients:
        assert c.expect_close(timeout=10).close_code() == 1001
    for c in clients:
        c.expect_eof(timeout=15)
    wait_for(lambda: not (set(n.worker_pids()) & old), timeout=20,
             what="the old workers to exit")
    st = n.status()
    assert st["connections"] == 0
    assert st["subscriptions"] == 0
    # the ClientIds are free again: the new workers take them
    again = [n.client(headers={"ClientId": name}) for name in names]
    for c in again:
        assert c.request({"id": "l", "action": "listTopics"})["code"] == 200
    assert n.status()["connections"] == len(names)
    for c in again:
        c.close()
    wait_for(lambda: n.status()["connections"] == 0,
             what="the connections to close")


def test_shutdown_timeout_with_a_client_that_never_reads(make_nginx):
    # the stuck client's socket is full: its close frame cannot go out
    n = make_nginx(main="worker_shutdown_timeout 1s;",
                   location="loom_close_timeout 60s; "
                            "loom_max_send_queue 16m;")
    a = n.client(headers={"ClientId": "reader"})
    stuck = n.client(headers={"ClientId": "sleeper"})
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    register(a, "big", {"v": None})
    subscribe(stuck, "big")
    blob = "x" * 60000
    for i in range(40):
        a.send_json({"id": "p%d" % i, "action": "sendWithoutSave",
                     "topic": "big", "data": {"v": blob}})
    time.sleep(0.5)
    old = set(n.worker_pids())
    n.reload()
    wait_for(lambda: not (set(n.worker_pids()) & old), timeout=20,
             what="the old worker to exit")
    st = n.status()
    assert st["connections"] == 0
    again = n.client(headers={"ClientId": "sleeper"})
    assert again.request({"id": "l", "action": "listTopics"})["code"] == 200
    again.close()
    stuck.abort()


@pytest.mark.parametrize("keep", ["on", "off"])
def test_connection_closed_before_the_takeover(make_nginx, keep):
    # a mirror subrequest that answers 444 terminates the main request,
    # and nginx closes the connection between the 101 and the takeover:
    # the session's cleanup gives back the ClientId and the gauge
    n = make_nginx(server="location = /m { internal; return 444; } "
                          "location = /plain { loom; }",
                   location="mirror /m; loom_keep_request %s;" % keep)
    for i in range(3):
        try:
            c = n.client(headers={"ClientId": "gone"})
            c.expect_eof(timeout=10)
        except (ConnectionError, OSError, HandshakeError):
            pass
    wait_for(lambda: n.status()["connections"] == 0,
             what="the gauge to come back")
    c = n.client(path="/plain", headers={"ClientId": "gone"})
    assert c.request({"id": "l", "action": "listTopics"})["code"] == 200
    assert n.status()["connections"] == 1
    c.close()
    quit_and_wait(n)
    assert "signal 11" not in n.log()


@pytest.mark.parametrize("keep", ["on", "off"])
def test_limit_conn_counts_open_websockets(make_nginx, keep):
    n = make_nginx(http="limit_conn_zone $binary_remote_addr zone=ws:1m;",
                   location="limit_conn ws 2; loom_keep_request %s;" % keep)
    a, b = n.client(), n.client()
    for c in (a, b):
        assert c.request({"id": "l", "action": "listTopics"})["code"] == 200
    if keep == "on":
        # the slots stay taken while the WebSockets are open
        with pytest.raises(HandshakeError) as e:
            n.client()
        assert e.value.status == 503
        a.close()
        wait_for(lambda: n.status()["connections"] == 1,
                 what="the first to close")
    # room again (with off the slots went at the handshake)
    c = n.client()
    assert c.request({"id": "l", "action": "listTopics"})["code"] == 200


def test_access_log_line_written_at_close(make_nginx):
    n = make_nginx(
        http="log_format ws '$status $body_bytes_sent $bytes_sent "
             "$request_time \"$request\" \"$http_user_agent\" "
             "$http_clientid $request_length $host $cookie_b "
             "$remote_user $request_method $uri $args';",
        location="access_log ws.log ws;")
    c = n.client(path="/ws?x=1",
                 headers={"ClientId": "logged", "User-Agent": "loom-test/1",
                          "Cookie": "a=1; b=two",
                          "Authorization": "Basic dXNlcjpwdw=="})
    for i in range(5):
        assert c.request({"id": str(i), "action": "listTopics"})["code"] \
            == 200
    time.sleep(1.1)
    path = os.path.join(n.prefix, "ws.log")
    assert not os.path.exists(path) or open(path).read() == ""
    c.close()
    wait_for(lambda: os.path.exists(path) and open(path).read(),
             what="the access log line")
    line = open(path).read().strip()
    head, request, agent, rest = line.split('"')[0], line.split('"')[1], \
        line.split('"')[3], line.split('"')[4].split()
    status, body, sent, rtime = head.split()
    assert status == "101"
    assert int(body) >= 5 * 30       # the frames sent after the 101
    assert int(sent) > int(body)     # and the 101 response itself
    assert float(rtime) >= 1.0
    assert request == "GET /ws?x=1 HTTP/1.1"
    assert agent == "loom-test/1"
    assert rest[0] == "logged"
    assert int(rest[1]) > 100
    assert rest[2] == "127.0.0.1"
    assert rest[3:] == ["two", "user", "GET", "/ws", "x=1"]


@pytest.mark.parametrize("keep", ["on", "off"])
def test_reload_while_a_mirror_holds_the_request(make_nginx, keep):
    backend = SlowBackend(2.0)
    try:
        n = make_nginx(
            server="location = /m { internal; proxy_pass http://127.0.0.1:%d; }"
                   % backend.port,
            location="mirror /m; loom_keep_request %s;" % keep)
        c = n.client(headers={"ClientId": "mirrored"})
        assert c.request({"id": "l", "action": "listTopics"})["code"] == 200
        wait_for(lambda: backend.requests >= 1, what="the mirror")
        old = set(n.worker_pids())
        n.reload()
        assert c.expect_close(timeout=10).close_code() == 1001
        c.send_frame(CLOSE, struct.pack("!H", 1001))
        # the connection goes once the mirror is done
        c.expect_eof(timeout=10)
        wait_for(lambda: not (set(n.worker_pids()) & old), timeout=20,
                 what="the old worker to exit")
        assert n.status()["connections"] == 0
        again = n.client(headers={"ClientId": "mirrored"})
        assert again.request({"id": "l", "action": "listTopics"})["code"] \
            == 200
        again.close()
        wait_for(lambda: len(access_lines(n)) == 2, what="the log lines")
        assert "open socket" not in n.log()
    finally:
        backend.stop()
