"""Redis Cluster under failure and change, with live clients that never
reconnect:

- kill -9 of the master that owns a busy topic's slot while it is being
  published to: its replica takes over, publishing resumes on the same
  connections, subscribers go on; without loom_redis_wait, whatever Redis
  lost is told to subscribers as a resync event (a changed epoch), never
  skipped in silence; with loom_redis_wait 1, no acked publish is lost
  (the killed master comes back as the new one's replica, so that writes
  can be confirmed again);
- the busy topic's slot moved to another master under load, by hand
  (SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE) and with
  `redis-cli --cluster reshard`: publishers see no error (MOVED and ASK
  are followed inside), nothing is lost, and subscribers follow the slot
  to its new master.

Each test starts its own cluster of 3 masters and 3 replicas.
"""

import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import Nginx, register, stop_all, wait_for
from rediscluster import REDIS_CLI, Cluster
from test_revisions import SCHEMA, Follower, top, v2

pytestmark = pytest.mark.slow

TOPIC = "busy"
KEY = "loom:{t:%s}" % TOPIC


@pytest.fixture
def cluster(workdir):
    # a node timeout that a busy machine does not mistake for a failure
    c = Cluster("%s/cluster" % workdir, masters=3, replicas=1,
                node_timeout=2000).start()
    yield c
    c.stop()


@pytest.fixture
def make_cluster_nginx(workdir, cluster):
    made = []

    def make(http="", **kw):
        n = Nginx("%s/nginx%d" % (workdir, len(made)), 0, redis_addr="",
                  http="loom_redis_cluster %s;\n%s" % (cluster.seeds(), http),
                  **kw)
        made.append(n)
        return n.start()

    yield make
    stop_all(made)


class Resyncing(Follower):
    """A follower for which a resync event is a new starting point."""

    def take(self, m):
        if m.get("type") == "event":
            assert m["action"] == "resync" and m["topic"] == self.topic, m
            self.events.append(m)
            self.epoch, self.rev = m["epoch"], m["rev"]
            return
        super().take(m)


class AckedPublisher(threading.Thread):
    """Publishes {"n": i} with requireAck at about rate msg/s and keeps,
    for every ack, the revision it names; counts the errors."""

    def __init__(self, c, topic, rate=150):
        super().__init__(daemon=True)
        self.c, self.topic, self.rate = c, topic, rate
        self.sent = 0
        self.acked = {}            # n -> rev
        self.errors = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self.read, daemon=True)

    def read(self):
        while not (self.stop.is_set() and self.answered() >= self.sent):
            try:
                m = self.c.recv_json(timeout=0.5)
            except Exception:
                if self.stop.is_set():
                    return
                continue
            if m.get("type") != "response":
                continue
            n = int(m["id"])
            with self.lock:
                if m["code"] == 200:
                    self.acked[n] = m["rev"]
                else:
                    self.errors.append(m)

    def answered(self):
        with self.lock:
            return len(self.acked) + len(self.errors)

    def run(self):
        self.reader.start()
        while not self.stop.is_set():
            self.c.send_json({"id": str(self.sent), "action": "publish",
                              "topic": self.topic,
                              "data": {"n": self.sent},
                              "requireAck": True})
            self.sent += 1
            time.sleep(1.0 / self.rate)

    def finish(self, timeout=30):
        self.stop.set()
        self.join(timeout=10)
        wait_for(lambda: self.answered() >= self.sent, timeout=timeout,
                 what="every publish answered")
        self.reader.join(timeout=5)

    def count(self):
        with self.lock:
            return len(self.acked)


def history(c, topic):
    """Every retained entry: {rev: n}."""
    out, since = {}, 0
    while True:
        r = c.request({"id": "h", "action": "history", "topic": topic,
                       "since": since, "limit": 1000})
        assert r["code"] == 200, r
        for e in r["data"]:
            out[e["rev"]] = e["data"]["n"]
        if not r["data"]:
            return out
        since = r["data"][-1]["rev"]


def start_load(cluster, make_cluster_nginx, http="", topic=TOPIC):
    n = make_cluster_nginx(workers=2, http=http)
    c = v2(n)
    register(c, topic, SCHEMA)
    followers = []
    for i in range(4):
        f = Resyncing(v2(n), topic)
        f.snapshot()
        followers.append(f)
    pub = AckedPublisher(v2(n), topic)
    pub.start()
    wait_for(lambda: pub.count() >= 100, timeout=20,
             what="publishes before the change")
    return n, c, followers, pub


def drain(followers, c, timeout=30):
    epoch, rev = top(c, followers[0].topic)
    for f in followers:
        deadline = time.monotonic() + timeout
        while f.rev < rev or f.epoch != epoch:
            left = deadline - time.monotonic()
            assert left > 0, (f.epoch, f.rev, epoch, rev)
            f.take(f.c.recv_json(timeout=left))
    return epoch, rev


def failover(cluster):
    master = cluster.master_of(KEY)
    wait_for(lambda: cluster.has_replica(master), timeout=30,
             what="a replica of the busy topic's master")
    # the topic itself (its registration) has reached the replica: what
    # the failover may lose is the publishes of the last moments.  WAIT
    # counts the replicas that have the writes of its own connection, so
    # that connection writes a key of the topic's slot first, after the
    # registration (a WAIT alone answers at once; and a replica that has
    # just loaded its first copy takes up to a second to ask for more)
    probe = master.client()
    probe.execute_command("SET", "test:{t:%s}:probe" % TOPIC, "1")
    assert probe.execute_command("WAIT", 1, 10000) >= 1
    cluster.kill(master)
    wait_for(lambda: cluster.owner_port(cluster.keyslot(KEY))
             not in (None, master.port), timeout=60,
             what="a replica promoted")
    cluster.wait_ok()
    return master


def test_failover_without_wait(cluster, make_cluster_nginx):
    n, c, followers, pub = start_load(cluster, make_cluster_nginx)
    before = pub.count()
    old = failover(cluster)
    # service resumes on the same connections
    wait_for(lambda: pub.count() >= before + 200, timeout=30,
             what="acked publishes after the failover")
    pub.finish()
    epoch, rev = drain(followers, c)
    assert cluster.master_of(KEY).port != old.port
    kept = history(c, TOPIC)
    for f in followers:
        if not f.events:
            # no resync: nothing of this epoch was lost
            assert f.epoch == followers[0].epoch
    lost = [k for k, r in pub.acked.items() if kept.get(r) != k]
    if lost:
        # acked publishes Redis lost: every subscriber was told
        assert all(f.events for f in followers), (lost[:5], followers)
        assert all(f.epoch == epoch for f in followers)
    # the errors were those of the failover: the slot had no master
    assert all(e["code"] == 500
               and e["message"].startswith("storage unavailable: ")
               for e in pub.errors), {e.get("message") for e in pub.errors}


def replica_of(cluster, master):
    info = master.info("replication")
    ports = [v["port"] for k, v in info.items()
             if k.startswith("slave") and isinstance(v, dict)]
    assert len(ports) == 1, info
    return cluster.node(ports[0])


def test_failover_to_a_replica_without_the_topic(cluster,
                                                 make_cluster_nginx):
    """The replica never got the topic: it was stopped, its replication
    link cut, and the master killed before it ran again.  The promoted
    master has no such topic, as a Redis restarted empty has none: the
    subscriptions end as after unregisterTopic, publishes are told the
    topic does not exist, and the topic registered again has a new epoch
    from which no old position resumes."""
    n = make_cluster_nginx(workers=2)
    c = v2(n)
    master = cluster.master_of(KEY)
    wait_for(lambda: cluster.has_replica(master), timeout=30,
             what="a replica of the busy topic's master")
    replica = replica_of(cluster, master)
    os.kill(replica.proc.pid, signal.SIGSTOP)
    try:
        master.client().execute_command("CLIENT", "KILL", "TYPE", "replica")
        register(c, TOPIC, SCHEMA)
        followers = [Resyncing(v2(n), TOPIC) for _ in range(4)]
        for f in followers:
            f.snapshot()
        for i in range(5):
            r = c.request({"id": "p%d" % i, "action": "publish",
                           "topic": TOPIC, "data": {"n": i},
                           "requireAck": True})
            assert r["code"] == 200, r
        old_epoch, old_rev = drain(followers, c)
        assert old_rev == 5
        wait_for(lambda: n.status()["subscriptions"] == 4, timeout=10,
                 what="the followers' subscriptions")
        cluster.kill(master)
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)
    wait_for(lambda: cluster.owner_port(cluster.keyslot(KEY))
             == replica.port, timeout=60, what="the replica promoted")
    cluster.wait_ok()

    def publish():
        return c.request({"id": "q", "action": "publish", "topic": TOPIC,
                          "data": {"n": 0}, "requireAck": True})

    # 500 while the slot has no master, then: no such topic
    wait_for(lambda: publish()["code"] != 500, timeout=30,
             what="an answer from the promoted master")
    assert publish() == {"type": "response", "id": "q",
                         "action": "publish", "code": 400,
                         "message": "could not get topic by name: busy"}
    wait_for(lambda: n.status()["subscriptions"] == 0, timeout=30,
             what="the lost registration's subscriptions ended")
    # silently, as unregisterTopic ends them (protocol.md section 6)
    assert not any(f.events for f in followers)
    register(c, TOPIC, SCHEMA)
    epoch, rev = top(c, TOPIC)
    assert epoch != old_epoch and rev == 0
    r = c.request({"id": "r", "action": "subscribe", "topic": TOPIC,
                   "since": {"epoch": old_epoch, "rev": old_rev}})
    assert r["code"] == 200 and r["recovered"] is False, r
    assert r["epoch"] == epoch and r["rev"] == 0, r


def test_failover_with_wait_loses_no_acked_publish(cluster,
                                                   make_cluster_nginx):
    n, c, followers, pub = start_load(cluster, make_cluster_nginx,
                                      http="loom_redis_wait 1 1s;")
    before = pub.count()
    old = failover(cluster)
    # the new master has no replica to confirm writes until the old one
    # comes back as its replica: acks wait (and fail) meanwhile
    old.start()
    wait_for(lambda: old.ping() and old.role() == "slave"
             and old.info("replication").get("master_link_status") == "up",
             timeout=30, what="the old master back as a replica")
    wait_for(lambda: pub.count() >= before + 200, timeout=30,
             what="acked publishes after the failover")
    pub.finish()
    drain(followers, c)
    kept = history(c, TOPIC)
    lost = [(k, r) for k, r in pub.acked.items() if kept.get(r) != k]
    assert not lost, lost[:10]
    assert all(e["code"] == 500 for e in pub.errors), pub.errors[:3]


def move_slot(cluster, slot, src, dst):
    """Moves one slot from src to dst, the way redis-cli's reshard does."""
    s, d = src.client(), dst.client()
    src_id, dst_id = cluster.node_id(src), cluster.node_id(dst)
    d.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
    s.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
    while True:
        keys = s.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
        if not keys:
            break
        s.execute_command("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000,
                          "KEYS", *keys)
        time.sleep(0.2)   # under load, while the slot is half moved
    for node in [dst, src] + [m for m in cluster.master_nodes()
                              if m not in (src, dst)]:
        node.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE",
                                      dst_id)


def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xffff
    return crc


def reshard(cluster, src, dst):
    """redis-cli --cluster reshard moves the source's first slots: ten of
    them, the busy one first."""
    r = subprocess.run(
        [REDIS_CLI, "--cluster", "reshard", src.addr,
         "--cluster-from", cluster.node_id(src),
         "--cluster-to", cluster.node_id(dst),
         "--cluster-slots", "10", "--cluster-yes"],
        capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr


@pytest.mark.parametrize("how", ["by hand", "redis-cli"])
def test_reshard_busy_slot(cluster, make_cluster_nginx, how):
    topic = TOPIC
    if how == "redis-cli":
        # a topic in the lowest slot of its master: the first one moved
        firsts = {int(r[0]) for r in cluster.live()[0].client()
                  .execute_command("CLUSTER", "SLOTS")}
        for i in range(200000):
            topic = "busy%d" % i
            if crc16(("t:" + topic).encode()) % 16384 in firsts:
                break
    key = "loom:{t:%s}" % topic
    n, c, followers, pub = start_load(cluster, make_cluster_nginx,
                                      topic=topic)
    slot = cluster.keyslot(key)
    src = cluster.master_of(key)
    dst = [m for m in cluster.master_nodes() if m.port != src.port][0]
    before = pub.count()
    if how == "by hand":
        move_slot(cluster, slot, src, dst)
    else:
        reshard(cluster, src, dst)
    wait_for(lambda: cluster.owner_port(slot) == dst.port, timeout=10,
             what="the slot at its new master")
    wait_for(lambda: pub.count() >= before + 200, timeout=30,
             what="publishes after the move")
    pub.finish()
    # no client saw an error
    assert pub.errors == [], pub.errors[:5]
    epoch, rev = drain(followers, c)
    assert rev == pub.sent
    # nothing lost, nothing skipped
    kept = history(c, topic)
    assert all(kept.get(r) == k for k, r in pub.acked.items())
    for f in followers:
        assert not f.events, f.events
        assert f.epoch == epoch
    # the subscribers followed the slot: deliveries come from its new master
    channel = "loom:{t:%s}:msg" % topic
    wait_for(lambda: channel.encode() in dst.client().execute_command(
        "PUBSUB", "SHARDCHANNELS"), what="the subscription at the new master")
    r = c.request({"id": "p", "action": "publish", "topic": topic,
                   "data": {"n": -1}, "requireAck": True})
    assert r["code"] == 200, r
    for f in followers:
        f.until(r["rev"])
    assert json.loads(dst.client().hget(key, "value")) == {"n": -1}
