"""Faults survived without manual steps: Redis killed during a publish
flood, a worker killed, reload and binary upgrade under steady publishing,
Redis missing when nginx starts.  In each case nothing acknowledged is lost
and service resumes by itself."""

import os
import signal
import threading

from conftest import (Nginx, Redis, clients_on_workers, register, subscribe,
                      wait_for)
from wsclient import CLOSE, ConnectionClosed

SCHEMA = {"seq": None, "pad": None}


def publish(c, topic, seq, ack=True):
    c.send_json({"id": str(seq), "action": "publish", "topic": topic,
                 "data": {"seq": seq, "pad": "p" * 100},
                 "requireAck": ack})


def stored_seq(redis, topic):
    import json
    value = redis.client().hget("loom:{t:%s}" % topic, "value")
    return json.loads(value)["seq"] if value else None


def test_redis_kill_during_publish_flood(redis_server, nginx):
    pub = nginx.client()
    sub = nginx.client()
    register(pub, "flood", SCHEMA)
    subscribe(sub, "flood")

    acked, errors, sent = [], [], [0]
    window = 32

    def sender():
        # keeps `window` publishes in flight until told to stop
        while not stop.is_set():
            if sent[0] - len(acked) - len(errors) < window:
                publish(pub, "flood", sent[0])
                sent[0] += 1
            else:
                got.wait(1)
                got.clear()

    stop, got = threading.Event(), threading.Event()
    t = threading.Thread(target=sender)
    t.start()
    try:
        while len(errors) < 20:
            r = pub.recv_json()
            if r["code"] == 200:
                acked.append(int(r["id"]))
            else:
                errors.append(r)
            got.set()
            if len(acked) == 300 and redis_server.proc.poll() is None:
                redis_server.kill()
    finally:
        stop.set()
        t.join()

    # drain what is still in flight
    while len(acked) + len(errors) < sent[0]:
        r = pub.recv_json()
        (acked.append(int(r["id"])) if r["code"] == 200
         else errors.append(r))

    # acks came in order, then only clear errors
    assert acked == sorted(acked) and len(acked) >= 300
    for e in errors:
        assert e["code"] == 500, e
        assert e["message"].startswith("storage unavailable: "), e

    redis_server.start()
    wait_for(nginx.redis_up, what="the module to reconnect")

    # every acknowledged publish was stored: the value is the last one or a
    # later one whose answer was lost with the connection
    last = stored_seq(redis_server, "flood")
    assert last is not None and last >= max(acked)
    assert last < sent[0]
    r = pub.request({"id": "g", "action": "get", "topic": "flood"})
    assert r["code"] == 200 and r["data"]["seq"] == last
    schema = pub.request({"id": "l", "action": "listTopics"})["data"]
    assert schema == [{"name": "flood", "schema": {"version": 0,
                                                   "schema": SCHEMA}}]

    # the subscriber gets new messages without reconnecting; what it saw
    # before came in order, once each (a delivery still in Redis's output
    # buffers when it was killed is gone, its value is not)
    publish(pub, "flood", 10 ** 6)
    assert pub.recv_json()["code"] == 200
    seen = []
    while True:
        seq = sub.recv_json()["data"]["seq"]
        if seq == 10 ** 6:
            break
        seen.append(seq)
    assert seen == sorted(set(seen)) and seen[-1] <= last
    assert len(seen) >= 250
    pub.close()
    sub.close()


def test_worker_kill(make_nginx):
    n = make_nginx(workers=2, reuseport=True,
                   allowed_log=r"exited on signal 9")
    by_pid = clients_on_workers(n, per_worker=2)
    (victim_pid, victims), (live_pid, live) = sorted(
        by_pid.items(), key=lambda kv: kv[0])
    pub, sub = live
    register(pub, "wk", {"v": None})
    subscribe(sub, "wk")
    for c in victims:
        subscribe(c, "wk")
    wait_for(lambda: n.status()["subscriptions"] == 3,
             what="three subscriptions in the zone")

    os.kill(victim_pid, signal.SIGKILL)

    # the master replaces the worker; the replacement clears the zone
    wait_for(lambda: len(n.worker_pids()) == 2
             and victim_pid not in n.worker_pids(), what="a new worker")
    wait_for(lambda: n.status()["subscriptions"] == 1,
             what="the dead worker's subscriptions to go")
    st = n.status()
    assert st["topics"] == {"wk": 1}
    assert st["connections"] == 2

    # the clients of the other worker did not notice
    for i in range(20):
        pub.send_json({"id": str(i), "action": "publish", "topic": "wk",
                       "data": {"v": i}, "requireAck": True})
        assert pub.recv_json()["code"] == 200
        assert sub.recv_json()["data"] == {"v": i}

    # the dead worker's clients reconnect, with the same ClientId
    for c in victims:
        c.abort()
    again = n.client(headers={"ClientId": "victim"})
    subscribe(again, "wk")
    pub.send_json({"id": "x", "action": "publish", "topic": "wk",
                   "data": {"v": "x"}})
    assert again.recv_json()["data"] == {"v": "x"}
    assert sub.recv_json()["data"] == {"v": "x"}
    for c in (again, pub, sub):
        c.close()


def test_killed_worker_frees_its_client_ids(make_nginx):
    n = make_nginx(workers=1, allowed_log=r"exited on signal 9")
    c = n.client(headers={"ClientId": "only-once"})
    (pid,) = n.worker_pids()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: len(n.worker_pids()) == 1
             and pid not in n.worker_pids(), what="a new worker")
    c.abort()
    again = n.client(headers={"ClientId": "only-once"})
    assert again.request({"id": "1", "action": "listTopics"})["code"] == 200
    again.close()


class SteadyPublisher(threading.Thread):
    """Publishes every few milliseconds; reconnects when closed."""

    def __init__(self, n, topic):
        super().__init__(daemon=True)
        self.n, self.topic = n, topic
        self.acked = 0
        self.closes = []
        self.stop = threading.Event()
        self.c = n.client()

    def run(self):
        seq = 0
        while not self.stop.is_set():
            try:
                publish(self.c, self.topic, seq)
                f = self.c.recv_message()
                if f.opcode == CLOSE:
                    self.closes.append(f.close_code())
                    self.c.abort()
                    self.c = self.n.client()
                    continue
                assert f.payload.startswith(b'{"id":"%d"' % seq)
                self.acked += 1
                seq += 1
            except (ConnectionClosed, ConnectionResetError,
                    BrokenPipeError):
                self.c.abort()
                self.c = self.n.client()
            self.stop.wait(0.002)


def test_reload_under_steady_publishing(make_nginx):
    n = make_nginx(workers=2)
    c = n.client()
    register(c, "steady", SCHEMA)
    sub = n.client()
    subscribe(sub, "steady")
    p = SteadyPublisher(n, "steady")
    p.start()
    wait_for(lambda: p.acked > 50, what="publishing")
    before = n.status()

    n.reload()

    # old connections are closed with 1001
    assert sub.expect_close().close_code() == 1001
    assert c.expect_close().close_code() == 1001
    wait_for(lambda: 1001 in p.closes, what="the publisher to reconnect")
    wait_for(lambda: p.acked > 100 + before["publishes"], timeout=30,
             what="publishing to go on")

    # the zone and its counters survive the reload
    after = n.status()
    assert after["connections_total"] > before["connections_total"]
    assert after["publishes"] > before["publishes"]

    # new connections work
    sub2 = n.client()
    subscribe(sub2, "steady")
    sub2.recv_json()
    p.stop.set()
    p.join()
    for x in (sub2, p.c):
        x.close()
    assert "open socket" not in n.log()


def test_binary_upgrade_under_steady_publishing(make_nginx):
    n = make_nginx(workers=1)
    c = n.client()
    register(c, "upgrade", SCHEMA)
    p = SteadyPublisher(n, "upgrade")
    p.start()
    wait_for(lambda: p.acked > 20, what="publishing")
    old_master = n.master

    # the binary upgrade: a new master beside the old one
    os.kill(old_master, signal.SIGUSR2)
    wait_for(lambda: n.read_pid() not in (None, old_master),
             what="the new master")
    new_master = n.read_pid()
    wait_for(lambda: len(n.worker_pids_of(new_master)) == 1,
             what="the new workers")

    # the old workers go, closing their connections with 1001
    os.kill(old_master, signal.SIGWINCH)
    assert c.expect_close().close_code() == 1001
    wait_for(lambda: 1001 in p.closes, what="the publisher to move")
    acked = p.acked
    wait_for(lambda: p.acked > acked + 20, what="publishing to go on")

    os.kill(old_master, signal.SIGQUIT)
    wait_for(lambda: not os.path.exists("/proc/%d" % old_master)
             or open("/proc/%d/stat" % old_master).read().split()[2] == "Z",
             what="the old master to exit")
    n.master = new_master
    p.stop.set()
    p.join()
    p.c.close()
    assert "open socket" not in n.log()


def test_redis_missing_at_start(workdir):
    redis = Redis(os.path.join(workdir, "late-redis"))
    n = Nginx(os.path.join(workdir, "nginx"), redis.port, workers=2)
    try:
        n.start(wait_redis=False)
        st = n.status()
        assert [w["redis_command"] for w in st["redis"]["workers"]] \
            != ["up", "up"]

        c = n.client()
        r = c.request({"id": "1", "action": "listTopics"})
        assert r["code"] == 500
        assert r["message"].startswith("storage unavailable: ")

        redis.start()
        wait_for(n.redis_up, timeout=20, what="the links to come up")
        register(c, "late", {"v": None})
        subscribe(c, "late")
        c.send_json({"id": "p", "action": "publish", "topic": "late",
                     "data": {"v": 1}})
        assert c.recv_json()["data"] == {"v": 1}
        c.close()
        n.stop()
        assert n.bad_log_lines() == []
    finally:
        n.kill()
        redis.kill()


def test_redis_that_stops_answering(redis_server, make_nginx):
    n = make_nginx(http="loom_redis_timeout 300ms;")
    c = n.client()
    register(c, "silent", SCHEMA)
    # Redis holds every write back for a while: the script waits there
    redis_server.client().execute_command("CLIENT", "PAUSE", "2000",
                                          "WRITE")
    publish(c, "silent", 1)
    r = c.recv_json()
    assert (r["code"], r["message"]) == (
        500, "storage unavailable: connection to redis lost")
    assert "no reply for 300 ms" in n.log()
    # a write of our own returns when Redis takes writes again
    redis_server.client().set("probe", "1")
    # the link is back by itself (it reconnects meanwhile)
    wait_for(n.redis_up, timeout=20, what="the links to come back")
    publish(c, "silent", 2)
    assert c.recv_json()["code"] == 200
    c.close()
