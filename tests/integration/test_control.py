"""Control frames and the life of a connection: ping and pong, the close
handshake, keep-alive pings, the idle timeout, nginx quit and reload (1001),
TLS, several workers, and a peer that stops reading."""

import signal
import struct
import os

import pytest

from conftest import clients_on_workers, register, subscribe, wait_for
from wsclient import CLOSE, PING, PONG, TEXT, ConnectionClosed

LIST = '{"id":"l","action":"listTopics"}'


def test_ping_gets_pong_with_same_payload(nginx):
    c = nginx.client()
    for payload in [b"", b"abc", bytes(range(125))]:
        c.send_frame(PING, payload)
        f = c.recv_frame()
        assert (f.opcode, f.payload) == (PONG, payload)
    c.close()


def test_unsolicited_pong_is_ignored(nginx):
    c = nginx.client()
    c.send_frame(PONG, b"whatever")
    c.send_text(LIST)
    f = c.recv_frame()
    assert f.opcode == TEXT
    c.close()


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 1014, 3000,
                                  4999])
def test_close_code_is_echoed(nginx, code):
    c = nginx.client()
    c.send_frame(CLOSE, struct.pack("!H", code) + "reason \u00e9".encode())
    f = c.expect_close()
    assert f.close_code() == code
    c.expect_eof()


def test_empty_close_is_echoed_empty(nginx):
    c = nginx.client()
    c.send_frame(CLOSE, b"")
    f = c.expect_close()
    assert f.payload == b""
    c.expect_eof()


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016,
                                  2999, 5000, 65535])
def test_invalid_close_code_is_1002(nginx, code):
    c = nginx.client()
    c.send_frame(CLOSE, struct.pack("!H", code))
    f = c.expect_close()
    assert f.close_code() == 1002
    c.expect_eof()


def test_one_byte_close_payload_is_1002(nginx):
    c = nginx.client()
    c.send_frame(CLOSE, b"\x03")
    assert c.expect_close().close_code() == 1002
    c.expect_eof()


def test_close_reason_must_be_utf8(nginx):
    c = nginx.client()
    c.send_frame(CLOSE, struct.pack("!H", 1000) + b"\xff\xfe")
    assert c.expect_close().close_code() == 1007
    c.expect_eof()


def test_server_pings_an_idle_client(make_nginx):
    n = make_nginx(location="loom_ping_interval 200ms;"
                            " loom_idle_timeout 0;")
    c = n.client()
    f = c.recv_frame(timeout=5)
    assert f.opcode == PING
    c.send_frame(PONG, f.payload)
    # and again, as long as the client stays
    assert c.recv_frame(timeout=5).opcode == PING
    c.close()


def test_idle_client_is_closed(make_nginx):
    n = make_nginx(location="loom_ping_interval 100ms;"
                            " loom_idle_timeout 500ms;")
    c = n.client()
    f = c.recv_message(timeout=5)      # pings are skipped, never answered
    assert f.opcode == CLOSE
    assert f.close_code() == 1001
    assert f.close_reason() == "idle timeout"
    c.send_frame(CLOSE, struct.pack("!H", 1001))
    c.expect_eof()


def test_pong_keeps_a_client_alive(make_nginx):
    n = make_nginx(location="loom_ping_interval 200ms;"
                            " loom_idle_timeout 1500ms;")
    c = n.client()
    pings = 0
    while pings < 10:                  # well past the idle timeout
        f = c.recv_frame(timeout=5)
        assert f.opcode == PING, f
        pings += 1
        c.send_frame(PONG, f.payload)
    c.send_text(LIST)
    while True:
        f = c.recv_frame(timeout=5)
        if f.opcode != PING:
            break
    assert f.opcode == TEXT
    c.close()


def test_quit_closes_connections_with_1001(make_nginx):
    n = make_nginx(workers=2)
    clients = [n.client() for _ in range(6)]
    for c in clients:
        c.send_text(LIST)
        c.recv_json()
    os.kill(n.master, signal.SIGQUIT)
    for c in clients:
        f = c.expect_close()
        assert f.close_code() == 1001
        assert f.close_reason() == "server shutting down"
        c.send_frame(CLOSE, struct.pack("!H", 1001))
        c.expect_eof()
    wait_for(lambda: not n.worker_pids(), what="workers to exit")
    assert "open socket" not in n.log()


def test_quit_while_client_does_not_answer_the_close(make_nginx):
    n = make_nginx(location="loom_close_timeout 300ms;")
    c = n.client()
    os.kill(n.master, signal.SIGQUIT)
    assert c.expect_close().close_code() == 1001
    # no close frame back: the server gives up after close_timeout
    c.expect_eof(timeout=5)
    wait_for(lambda: not n.worker_pids(), what="workers to exit")


def test_reload_moves_clients_to_new_workers(make_nginx):
    n = make_nginx(workers=2)
    old = n.client()
    old.send_text(LIST)
    old.recv_json()
    n.reload()
    f = old.expect_close()
    assert f.close_code() == 1001
    old.send_frame(CLOSE, struct.pack("!H", 1001))
    old.expect_eof()
    # the new workers answer listTopics once their Redis links are up
    wait_for(n.redis_up, what="the new workers' links")
    new = n.client()
    new.send_text(LIST)
    assert new.recv_json()["code"] == 200
    new.close()
    assert "open socket" not in n.log()


def test_shutdown_timeout_drops_stuck_clients(make_nginx):
    n = make_nginx(main="worker_shutdown_timeout 300ms;",
                   location="loom_close_timeout 60s;")
    c = n.client()
    os.kill(n.master, signal.SIGQUIT)
    assert c.expect_close().close_code() == 1001
    c.expect_eof(timeout=10)
    wait_for(lambda: not n.worker_pids(), what="workers to exit")


def test_wss(make_nginx):
    n = make_nginx(tls=True)
    a = n.client(tls=True, headers={"ClientId": "tls-a"})
    b = n.client(tls=True)
    register(a, "tls", {"v": None})
    subscribe(b, "tls")
    a.send_json({"id": "p", "action": "publish", "topic": "tls",
                 "data": {"v": "x" * 40000}, "requireAck": True})
    assert a.recv_json()["code"] == 200
    d = b.recv_json()
    assert d["data"]["v"] == "x" * 40000 and d["senderId"] == "tls-a"
    b.send_frame(PING, b"tls")
    assert b.recv_frame().payload == b"tls"
    a.close()
    b.close()


def test_wss_quit_closes_with_1001(make_nginx):
    n = make_nginx(tls=True)
    c = n.client(tls=True)
    c.send_text(LIST)
    c.recv_json()
    os.kill(n.master, signal.SIGQUIT)
    assert c.expect_close().close_code() == 1001
    c.send_frame(CLOSE, struct.pack("!H", 1001))
    try:
        c.expect_eof()
    except OSError:
        pass
    wait_for(lambda: not n.worker_pids(), what="workers to exit")




def test_two_workers_serve_websockets(make_nginx):
    n = make_nginx(workers=2, reuseport=True)
    by_pid = clients_on_workers(n)
    assert len(by_pid) == 2
    (a,), (b,) = by_pid.values()
    register(a, "w2", {"k": None})
    subscribe(b, "w2")
    subscribe(a, "w2")
    a.send_json({"id": "1", "action": "publish", "topic": "w2",
                 "data": {"k": 1}})
    assert b.recv_json()["data"] == {"k": 1}
    assert a.recv_json()["data"] == {"k": 1}
    a.close()
    b.close()


def test_reader_that_stops_does_not_block_others(make_nginx):
    n = make_nginx(location="loom_max_send_queue 256k;")
    pub = n.client(headers={"ClientId": "pub"})
    slow = n.client()
    fast = n.client()
    register(pub, "flood", {"v": None})
    subscribe(slow, "flood")
    subscribe(fast, "flood")
    payload = "y" * 40000
    i = 0
    # kernel buffers take a few megabytes before the queue starts to grow
    while n.status()["slow_consumers"] == 0:
        pub.send_json({"id": str(i), "action": "publish", "topic": "flood",
                       "data": {"v": payload}, "requireAck": True})
        assert pub.recv_json()["code"] == 200
        assert fast.recv_json()["id"] == str(i)
        i += 1
        assert i < 2000
    # the publisher and the other subscriber go on as before
    for j in range(i, i + 20):
        pub.send_json({"id": str(j), "action": "publish", "topic": "flood",
                       "data": {"v": payload}, "requireAck": True})
        assert pub.recv_json()["code"] == 200
        assert fast.recv_json()["id"] == str(j)
    # the slow one gets what was queued before, then 4008
    f = slow.recv_message()
    while f.opcode != CLOSE:
        f = slow.recv_message()
    assert f.close_code() == 4008
    assert f.close_reason() == "slow consumer"
    pub.close()
    fast.close()


def test_send_timeout_closes_a_stuck_reader(make_nginx):
    n = make_nginx(location="send_timeout 300ms; loom_max_send_queue 64m;")
    pub = n.client()
    stuck = n.client()
    register(pub, "stuck", {"v": None})
    subscribe(stuck, "stuck")
    payload = "z" * 60000
    i = 0
    # publish until the server gives up on the reader that never reads
    while n.status()["connections"] == 2:
        pub.send_json({"id": str(i), "action": "publish", "topic": "stuck",
                       "data": {"v": payload}, "requireAck": True})
        assert pub.recv_json()["code"] == 200
        i += 1
        assert i < 5000
    assert "client timed out" in n.log()
    pub.close()
    with pytest.raises((ConnectionClosed, ConnectionResetError)):
        while True:
            stuck.recv_frame(timeout=5)


def access_lines(n):
    with open(os.path.join(n.prefix, "access.log")) as f:
        return [line for line in f if '"GET /ws ' in line]


def test_request_is_logged_when_the_connection_closes(nginx):
    c = nginx.client()
    c.send_text(LIST)
    c.recv_json()
    assert access_lines(nginx) == []
    c.close()
    wait_for(lambda: access_lines(nginx), what="the access log line")
    line = access_lines(nginx)[0]
    assert '" 101 ' in line
    # $body_bytes_sent counts the frames sent after the 101
    assert int(line.split('" 101 ')[1].split()[0]) >= 70


def test_released_request_is_logged_at_the_handshake(make_nginx):
    n = make_nginx(location="loom_keep_request off;")
    a = n.client(headers={"ClientId": "lean"})
    wait_for(lambda: access_lines(n), what="the access log line")
    assert '" 101 ' in access_lines(n)[0]
    b = n.client()
    register(a, "lean", {"v": None})
    subscribe(b, "lean")
    a.send_json({"id": "1", "action": "publish", "topic": "lean",
                 "data": {"v": 1}, "requireAck": True})
    assert a.recv_json()["code"] == 200
    assert b.recv_json()["senderId"] == "lean"
    a.close()
    b.close()
    os.kill(n.master, signal.SIGQUIT)
    wait_for(lambda: not n.worker_pids(), what="workers to exit")
