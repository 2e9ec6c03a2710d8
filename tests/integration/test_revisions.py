"""Revisions, history, snapshot-then-live and gap-free resume (protocol.md
section 15), against real nginx nodes and a real Redis.

- the old-client guarantee: a v1 session's frames, byte for byte;
- the dataloom.v2 handshake, rev on deliveries, acks and get;
- snapshot-then-live while another node publishes at >= 1,000 msg/s;
- resume with clients dropping at random on 2 nodes x 2 workers;
- links that drop (CLIENT KILL TYPE pubsub, a frozen link, a Redis restart
  with AOF): connected subscribers miss nothing, the epoch stays;
- a gap past the history window: the resync event;
- data loss (Redis restarted empty): recovered false and a new epoch;
- retention, latest-only and memory topics, history paging, errors.

Every subscriber checks that its revisions are contiguous: no gap, no
duplicate.
"""

import hashlib
import json
import os
import random
import select
import shutil
import signal
import threading
import time

import pytest

from conftest import Nginx, answer, register, subscribe, wait_for
from relay import Relay
from wsclient import TEXT, encode_frame

V2 = "dataloom.v2"
SCHEMA = {"n": None}


def v2(n, cid=None, **kw):
    headers = {"Sec-WebSocket-Protocol": V2}
    if cid:
        headers["ClientId"] = cid
    c = n.client(headers=headers, **kw)
    if c.response_headers.get("sec-websocket-protocol") != V2:
        c.abort()
        raise AssertionError("no %s in %r" % (V2, c.response_headers))
    return c


def top(c, topic):
    """The topic's epoch and top revision (history with limit 0)."""
    r = c.request({"id": "top", "action": "history", "topic": topic,
                   "limit": 0})
    assert r["code"] == 200, r
    return r["epoch"], r["rev"]


def publish_frame(topic, i, rid="p"):
    return encode_frame(TEXT, json.dumps(
        {"id": rid, "action": "publish", "topic": topic,
         "data": {"n": i}}))


class Publisher(threading.Thread):
    """Publishes to topic through client c at rate msg/s (no acks) until
    stopped; counts what it sent.  Answers (only errors: 500 while Redis
    is away) are read and counted by a reader thread."""

    def __init__(self, c, topic, rate):
        super().__init__(daemon=True)
        self.c, self.topic, self.rate = c, topic, rate
        self.sent = 0
        self.errors = 0
        self.stop = threading.Event()
        self.started = None
        self.elapsed = None
        self.reader = threading.Thread(target=self.read, daemon=True)

    def read(self):
        while not self.stop.is_set():
            try:
                self.c.recv_json(timeout=0.2)
                self.errors += 1
            except Exception:
                continue

    def run(self):
        self.reader.start()
        self.started = time.monotonic()
        tick = 0.01
        while not self.stop.is_set():
            due = int((time.monotonic() - self.started) * self.rate) + 1
            batch = b"".join(publish_frame(self.topic, i)
                             for i in range(self.sent, due))
            if batch:
                try:
                    self.c.sock.sendall(batch)
                except OSError:
                    return
                self.sent = due
            time.sleep(tick)
        self.elapsed = time.monotonic() - self.started

    def finish(self):
        self.stop.set()
        self.join(timeout=10)
        self.reader.join(timeout=5)
        return self.sent / self.elapsed


class Follower:
    """A v2 subscriber that checks its revisions are contiguous."""

    def __init__(self, c, topic):
        self.c, self.topic = c, topic
        self.epoch = None
        self.rev = None
        self.revs = []
        self.events = []

    def snapshot(self, rid="snap"):
        self.c.send_json({"id": rid, "action": "subscribe",
                          "topic": self.topic, "snapshot": True})
        r = self.answer(rid)
        assert r["code"] == 200, r
        self.epoch, self.rev = r["epoch"], r["rev"]
        return r

    def resume(self, epoch, rev, rid="r"):
        """subscribe with since: the answer, the position set to rev"""
        self.c.send_json({"id": rid, "action": "subscribe",
                          "topic": self.topic,
                          "since": {"epoch": epoch, "rev": rev}})
        self.epoch, self.rev = epoch, rev
        return self.answer(rid)

    def answer(self, rid, timeout=10):
        while True:
            m = self.c.recv_json(timeout=timeout)
            if m.get("type") == "response" and m["id"] == rid:
                return m
            self.take(m)

    def take(self, m):
        if m.get("type") == "event":
            self.events.append(m)
            return
        assert m.get("type") is None, m
        if m["topic"] != self.topic or m["action"] != "publish":
            return
        assert m["rev"] == self.rev + 1, (self.rev, m["rev"])
        self.rev = m["rev"]
        self.revs.append(m["rev"])

    def until(self, rev, timeout=20):
        deadline = time.monotonic() + timeout
        while self.rev < rev:
            left = deadline - time.monotonic()
            stuck = "stuck at rev %d of %d, events %r" % (
                self.rev, rev, self.events)
            assert left > 0, stuck
            try:
                m = self.c.recv_json(timeout=left)
            except TimeoutError:
                raise AssertionError(stuck) from None
            self.take(m)


# -- the old-client guarantee ------------------------------------------------

V1_FRAMES = [
    b'{"id":"s","action":"subscribe","code":200,"type":"response"}\n',
    b'{"id":"g0","action":"get","code":200,"data":null,'
    b'"type":"response"}\n',
    b'{"id":"p1","action":"publish","topic":"v1t","data":{"n" : 1},'
    b'"senderId":"pub"}\n',
    b'{"id":"w1","action":"sendWithoutSave","topic":"v1t","data":{"n":2},'
    b'"senderId":"pub"}\n',
    b'{"id":"p2","action":"publish","topic":"v1t","data":{"n":3},'
    b'"senderId":"old"}\n',
    b'{"id":"p2","action":"publish","code":200,"type":"response"}\n',
    b'{"id":"g1","action":"get","code":200,"data":{"n":3},'
    b'"type":"response"}\n',
    b'{"id":"x","action":"unsubscribe","code":200,"type":"response"}\n',
    b'{"id":"l","action":"listTopics","code":200,"data":[{"name":"v1t",'
    b'"schema":{"version":0,"schema":{"n":null}}}],"type":"response"}\n',
    b'{"id":"g2","action":"get","code":500,"message":"couldn\'t get value'
    b' for topic. topic doesn\'t exist. topic: nope","type":"response"}\n',
]


def test_v1_session_frames_are_unchanged(nginx):
    """A client that sends none of the new fields sees today's frames,
    also when the publisher uses the new ones."""
    pub = nginx.client(headers={"ClientId": "pub",
                                "Sec-WebSocket-Protocol": V2})
    old = nginx.client(headers={"ClientId": "old"})
    other = nginx.client(headers={"ClientId": "o2",
                                  "Sec-WebSocket-Protocol": "chat"})
    assert "sec-websocket-protocol" not in old.response_headers
    assert "sec-websocket-protocol" not in other.response_headers
    pub.send_text('{"id":"r","action":"registerTopic","topic":"v1t",'
                  '"data":{"n":null},"retention":{"history":5},'
                  '"requireAck":true}')
    assert pub.recv_json() == answer("r", "registerTopic", data={})

    frames = []

    def frame():
        f = old.recv_message()
        assert f.opcode == TEXT
        frames.append(f.payload)

    old.send_text('{"id":"s","action":"subscribe","topic":"v1t",'
                  '"requireAck":true}')
    frame()
    old.send_text('{"id":"g0","action":"get","topic":"v1t"}')
    frame()
    pub.send_text('{"id":"p1","action":"publish","topic":"v1t",'
                  '"data":{"n" : 1},"requireAck":true}')
    pub.recv_json()
    pub.send_text('{"id":"w1","action":"sendWithoutSave","topic":"v1t",'
                  '"data":{"n":2},"requireAck":true}')
    pub.recv_json()
    frame()
    frame()
    old.send_text('{"id":"p2","action":"publish","topic":"v1t",'
                  '"data":{"n":3},"requireAck":true}')
    frame()
    frame()
    old.send_text('{"id":"g1","action":"get","topic":"v1t"}')
    frame()
    old.send_text('{"id":"x","action":"unsubscribe","topic":"v1t",'
                  '"requireAck":true}')
    frame()
    old.send_text('{"id":"l","action":"listTopics"}')
    frame()
    old.send_text('{"id":"g2","action":"get","topic":"nope"}')
    frame()
    assert frames == V1_FRAMES
    old.expect_silence(0.2)


def test_history_directives(workdir, redis_server, make_nginx):
    make_nginx(http="loom_history 10; loom_history_max_age 1h; "
                    "loom_history_limit 100; loom_history_page 50;")
    n = Nginx(os.path.join(workdir, "bad"), redis_server.port,
              http="loom_history 200; loom_history_limit 100;")
    r = n.cmd("-t")
    assert r.returncode != 0
    assert '"loom_history" 200 is above "loom_history_limit" 100' in r.stderr
    n = Nginx(os.path.join(workdir, "bad2"), redis_server.port,
              http="loom_history_page 0;")
    r = n.cmd("-t")
    assert r.returncode != 0
    assert "value must be between 1 and 1048576" in r.stderr


# -- dataloom.v2 -------------------------------------------------------------

def test_v2_handshake(nginx):
    v2(nginx).close()
    c = nginx.client(headers={"Sec-WebSocket-Protocol": "chat, " + V2})
    got = c.response_headers.get("sec-websocket-protocol")
    c.close()
    assert got == V2
    c = nginx.client(headers={"Sec-WebSocket-Protocol": "chat"})
    got = c.response_headers
    c.close()
    assert "sec-websocket-protocol" not in got


def test_v2_deliveries_acks_and_get(nginx):
    c = v2(nginx, "alice")
    old = nginx.client(headers={"ClientId": "bob"})
    register(c, "t", SCHEMA)
    r = c.request({"id": "g", "action": "get", "topic": "t"})
    epoch = r["epoch"]
    assert isinstance(epoch, str) and epoch
    assert r == answer("g", "get", data=None, rev=0, epoch=epoch, ts=0)
    subscribe(c, "t")
    subscribe(old, "t")
    before = time.time() * 1000
    c.send_text('{"id":"p","action":"publish","topic":"t",'
                '"data":{"n":1},"requireAck":true}')
    d = c.recv_message().payload
    ts = json.loads(d)["ts"]
    assert before - 5000 < ts < time.time() * 1000 + 5000
    assert d == (b'{"id":"p","action":"publish","topic":"t","data":{"n":1},'
                 b'"senderId":"alice","rev":1,"ts":%d}\n' % ts)
    assert c.recv_message().payload == \
        b'{"id":"p","action":"publish","code":200,"rev":1,"type":"response"}\n'
    assert old.recv_message().payload == \
        b'{"id":"p","action":"publish","topic":"t","data":{"n":1},' \
        b'"senderId":"alice"}\n'
    c.send_text('{"id":"w","action":"sendWithoutSave","topic":"t",'
                '"data":{"n":2},"requireAck":true}')
    assert c.recv_message().payload == \
        b'{"id":"w","action":"sendWithoutSave","topic":"t","data":{"n":2},' \
        b'"senderId":"alice"}\n'
    assert c.recv_json() == answer("w", "sendWithoutSave")
    assert old.recv_message().payload == \
        b'{"id":"w","action":"sendWithoutSave","topic":"t","data":{"n":2},' \
        b'"senderId":"alice"}\n'
    r = c.request({"id": "g", "action": "get", "topic": "t"})
    assert r == answer("g", "get", data={"n": 1}, rev=1, epoch=epoch, ts=ts)
    assert list(r) == ["id", "action", "code", "data", "rev", "epoch", "ts",
                       "type"]
    # a v1 session's get is unchanged
    assert old.request({"id": "g", "action": "get", "topic": "t"}) == \
        answer("g", "get", data={"n": 1})


# -- snapshot-then-live --------------------------------------------------------

def test_snapshot_then_live_races(make_nginx):
    """Thousands of subscribes with snapshot on one node while another
    publishes at >= 1,000 msg/s: every snapshot is followed by exactly the
    revisions after it."""
    a = make_nginx(workers=2)
    b = make_nginx(workers=2)
    c = v2(a)
    register(c, "race", SCHEMA)
    pub = Publisher(a.client(), "race", 1500)
    pub.start()
    errors = []
    snapshots = []

    def subscriber(k):
        try:
            f = Follower(v2(b), "race")
            for i in range(100):
                f.snapshot("s%d" % i)
                snapshots.append(k)
                start = f.rev
                f.until(start + 3)
                f.c.send_json({"id": "u%d" % i, "action": "unsubscribe",
                               "topic": "race", "requireAck": True})
                assert f.answer("u%d" % i)["code"] == 200
            assert not f.events, f.events
        except Exception as e:
            errors.append("subscriber %d: %r" % (k, e))

    threads = [threading.Thread(target=subscriber, args=(k,))
               for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    rate = pub.finish()
    assert not errors, errors[:5]
    assert len(snapshots) == 2000
    assert rate >= 1000, rate
    assert pub.errors == 0


SNAPSHOT_LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "..", "..", "ngx_loom_module", "lua",
                            "snapshot.lua")


class ScriptCounter(threading.Thread):
    """Counts the calls of one script in Redis (MONITOR) until stopped,
    and the HMGETs that clients sent (not those of scripts)."""

    def __init__(self, redis_server, sha):
        super().__init__(daemon=True)
        self.r = redis_server.client()
        self.waker = redis_server.client()
        self.sha = sha
        self.calls = 0
        self.hmgets = 0
        self.ready = threading.Event()
        self.stop = threading.Event()

    def run(self):
        with self.r.monitor() as m:
            self.ready.set()
            while not self.stop.is_set():
                try:
                    c = m.next_command()
                    cmd = c["command"]
                except Exception:
                    continue
                if cmd.startswith("EVALSHA " + self.sha):
                    self.calls += 1
                elif cmd.startswith("HMGET ") and c["client_type"] != "lua":
                    self.hmgets += 1

    def finish(self):
        self.stop.set()
        self.waker.ping()
        self.join(timeout=10)
        return self.calls


def test_snapshot_burst_shares_reads(redis_server, make_nginx):
    """Hundreds of subscribes with snapshot to one topic at once, from as
    many connections, while another node publishes: each one's deliveries
    follow its snapshot with no gap and no duplicate, and a worker's
    subscribes waiting at the same time share their snapshot.lua reads
    (one, then one for all that came while it was out: two or three per
    worker).  A new subscription learns its registration from that read:
    only the second subscribe of a connection, a re-sync of a live
    subscription, asks for it with an HMGET of its own."""
    with open(SNAPSHOT_LUA, "rb") as f:
        # the script as sent: comment lines left out (scripts/lua2c.sh)
        sha = hashlib.sha1(b"".join(
            line for line in f if not line.lstrip().startswith(b"--")
        )).hexdigest()
    a = make_nginx(workers=2)
    b = make_nginx(workers=2)
    c = v2(a)
    register(c, "burst", SCHEMA)
    assert redis_server.client().script_exists(sha) == [True]
    n = 400
    followers = [Follower(v2(b), "burst") for _ in range(n)]
    counter = ScriptCounter(redis_server, sha)
    counter.start()
    assert counter.ready.wait(10)
    pub = Publisher(a.client(), "burst", 1500)
    pub.start()
    time.sleep(0.3)

    def frame(rid):
        return encode_frame(TEXT, json.dumps(
            {"id": rid, "action": "subscribe", "topic": "burst",
             "snapshot": True}))

    # every fourth connection asks twice in a row: answers in its order
    frames = [frame("s%d" % k) + (frame("t%d" % k) if k % 4 == 0 else b"")
              for k in range(n)]
    # Redis holds every command for a moment: the burst's subscribes are
    # all waiting at once, however slowly the busy machine reads them
    redis_server.client().execute_command("CLIENT", "PAUSE", "800", "ALL")
    for f, data in zip(followers, frames):
        f.c.sock.sendall(data)
    for k, f in enumerate(followers):
        r = f.answer("s%d" % k, timeout=30)
        assert r["code"] == 200, r
        f.epoch, f.rev = r["epoch"], r["rev"]
        if k % 4 == 0:
            r = f.answer("t%d" % k, timeout=30)
            assert r["code"] == 200, r
            assert r["epoch"] == f.epoch and r["rev"] >= f.rev, (r, f.rev)
            f.rev = r["rev"]
    time.sleep(0.5)
    rate = pub.finish()
    calls = counter.finish()
    epoch, last = top(c, "burst")
    errors = []
    for k, f in enumerate(followers):
        try:
            assert f.epoch == epoch
            f.until(last, timeout=60)
            assert not f.events, f.events
        except Exception as e:
            errors.append("follower %d: %r" % (k, e))
    assert not errors, errors[:5]
    # every one of them saw revisions published during the burst
    assert min(f.rev for f in followers) == last
    assert len({f.revs[0] for f in followers if f.revs}) > 1
    assert rate >= 1000, rate
    assert pub.errors == 0
    # one read per subscribe would be n; shared, a few per worker
    assert 2 <= calls <= n // 20, calls
    assert counter.hmgets == n // 4, counter.hmgets


def test_snapshot_subscribe_sees_a_new_registration(make_nginx):
    """A subscribe with snapshot learns its registration from the snapshot
    read: on a worker whose channel of the topic is live, a subscribe made
    right after the topic was unregistered and registered again on
    another node is made to the new registration (its position, its
    deliveries), and the unregister notice of the old one, which may come
    after it, ends only the subscription made before."""
    a = make_nginx()
    b = make_nginx()
    admin = v2(b)
    register(admin, "nr", SCHEMA)
    publish_n(admin, "nr", 3)
    first = Follower(v2(a), "nr")
    first.snapshot()
    assert first.rev == 3
    epochs = {first.epoch}
    for k in range(5):
        r = admin.request({"id": "u", "action": "unregisterTopic",
                           "topic": "nr", "requireAck": True})
        assert r == answer("u", "unregisterTopic")
        register(admin, "nr", SCHEMA)
        publish_n(admin, "nr", 2)
        f = Follower(v2(a), "nr")
        f.snapshot()
        assert f.rev == 2 and f.epoch not in epochs, (f.rev, f.epoch)
        epochs.add(f.epoch)
        r = admin.request({"id": "p", "action": "publish", "topic": "nr",
                           "data": {"n": 3}, "requireAck": True})
        assert r["code"] == 200 and r["rev"] == 3, r
        f.until(3)
        assert f.revs == [3] and not f.events
        f.c.expect_silence(0.2)
    # the first one's registration ended: nothing of the later ones came
    first.c.expect_silence(0.3)
    r = first.c.request({"id": "x", "action": "unsubscribe", "topic": "nr",
                         "requireAck": True})
    assert r["code"] == 500 and "not subscribed" in r["message"], r


def test_snapshot_subscribe_to_an_unregistered_topic(make_nginx):
    """Right after an unregister on another node, a subscribe with
    snapshot on a worker whose channel is live answers that the topic does
    not exist, and leaves nothing subscribed: a registration made later
    delivers nothing to that connection."""
    a = make_nginx()
    b = make_nginx()
    admin = v2(b)
    register(admin, "gone", SCHEMA)
    live = Follower(v2(a), "gone")
    live.snapshot()
    r = admin.request({"id": "u", "action": "unregisterTopic",
                       "topic": "gone", "requireAck": True})
    assert r == answer("u", "unregisterTopic")
    c = v2(a)
    r = c.request({"id": "s", "action": "subscribe", "topic": "gone",
                   "snapshot": True})
    assert r == answer("s", "subscribe", 500,
                       "topic doesn't exist for gone"), r
    r = c.request({"id": "s2", "action": "subscribe", "topic": "gone"})
    assert r == answer("s2", "subscribe", 500,
                       "topic doesn't exist for gone"), r
    register(admin, "gone", SCHEMA)
    publish_n(admin, "gone", 1)
    c.expect_silence(0.3)
    r = c.request({"id": "x", "action": "unsubscribe", "topic": "gone",
                   "requireAck": True})
    assert r["code"] == 500 and "not subscribed" in r["message"], r


def test_snapshot_of_an_empty_topic_and_resubscribe(nginx):
    c = v2(nginx)
    register(c, "e", SCHEMA)
    f = Follower(c, "e")
    r = f.snapshot()
    assert r == answer("snap", "subscribe", data=None, rev=0,
                       epoch=r["epoch"], ts=0)
    c.send_json({"id": "p", "action": "publish", "topic": "e",
                 "data": {"n": 1}})
    f.until(1)
    # a snapshot on a live subscription re-syncs it
    r = f.snapshot("again")
    assert (r["data"], r["rev"]) == ({"n": 1}, 1)
    c.send_json({"id": "p", "action": "publish", "topic": "e",
                 "data": {"n": 2}})
    f.until(2)
    assert f.revs == [1, 2]


# -- resume ---------------------------------------------------------------------

def test_resume_with_random_drops(make_nginx):
    """Clients drop and resume from their position at random while a
    publisher on each of 2 nodes x 2 workers runs: zero gaps, zero
    duplicates."""
    nodes = [make_nginx(workers=2), make_nginx(workers=2)]
    c = v2(nodes[0])
    # every revision of the run stays in the history: a follower starved
    # on a busy machine, then a publisher catching up on its rate, may put
    # it more than the default 1000 behind, and a resume from there is
    # not recovered by design (the window has its own tests)
    r = c.request({"id": "r", "action": "registerTopic", "topic": "res",
                   "data": SCHEMA, "retention": {"history": 100000},
                   "requireAck": True})
    assert r["code"] == 200, r
    pubs = [Publisher(n.client(), "res", 300) for n in nodes]
    errors = []
    done = threading.Event()
    resumes = [0]
    rng = random.Random(9)

    def subscriber(k):
        try:
            f = Follower(v2(rng.choice(nodes)), "res")
            f.snapshot()
            first = f.rev
            while True:
                if not f.c.buf and not select.select([f.c.sock], [], [],
                                                     0.2)[0]:
                    if done.is_set():
                        f.until(final[1])
                        break
                    continue
                f.take(f.c.recv_json())
                if rng.random() < 0.03:
                    f.c.abort()
                    f.c = v2(rng.choice(nodes))
                    f.c.send_json({"id": "r", "action": "subscribe",
                                   "topic": "res",
                                   "since": {"epoch": f.epoch,
                                             "rev": f.rev}})
                    r = f.answer("r")
                    assert r["recovered"] is True, (f.rev, r)
                    assert r["epoch"] == f.epoch
                    assert r["replayed"] == r["rev"] - f.rev, r
                    resumes[0] += 1
            assert f.revs == list(range(first + 1, final[1] + 1))
            assert not f.events, f.events
        except Exception as e:
            errors.append("subscriber %d: %r" % (k, e))

    final = [None, None]
    threads = [threading.Thread(target=subscriber, args=(k,))
               for k in range(8)]
    for p in pubs:
        p.start()
    for t in threads:
        t.start()
    time.sleep(5)
    for p in pubs:
        p.finish()
    final[:] = top(c, "res")
    done.set()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[:5]
    assert final[1] == sum(p.sent for p in pubs)
    assert resumes[0] >= 20


def register_kept(c, topic, history):
    r = c.request({"id": "reg", "action": "registerTopic", "topic": topic,
                   "data": SCHEMA, "retention": {"history": history},
                   "requireAck": True})
    assert r["code"] == 200, r


def publish_fast(c, topic, n):
    """n publishes in one write, then a get: all stored when it answers."""
    c.sock.sendall(b"".join(publish_frame(topic, i) for i in range(n)))
    c.request({"id": "sync", "action": "get", "topic": topic})


def test_replay_in_many_pages(redis_server, make_nginx):
    """A replay longer than a page, with pages of 7 (two read at a time,
    none beginning on a multiple of 7 from the resume's revision) through
    history entries that hold groups of publishes, and a publisher going
    on meanwhile: every revision once, in order, then live."""
    n = make_nginx(http="loom_history_page 7;")
    c = v2(n)
    register_kept(c, "mp", 10000)
    publish_fast(c, "mp", 500)
    # the publishes of one write were grouped: fewer entries than revisions
    assert redis_server.client().xlen("loom:{t:mp}:h") < 100
    pub = Publisher(n.client(), "mp", 300)
    pub.start()
    epoch, _ = top(c, "mp")
    followers = []
    for since in (0, 150, 493):
        f = Follower(v2(n), "mp")
        r = f.resume(epoch, since)
        assert r["code"] == 200 and r["recovered"] is True, r
        assert r["replayed"] == r["rev"] - since, r
        followers.append((since, f))
    time.sleep(0.5)
    pub.finish()
    _, last = top(c, "mp")
    assert last == 500 + pub.sent
    for since, f in followers:
        f.until(last)
        assert f.revs == list(range(since + 1, last + 1))
        assert not f.events, f.events


def test_replay_stops_when_the_epoch_changes(redis_server, make_nginx):
    """Each page is written only once Redis says the epoch is still the
    resume's: an epoch that changes mid-replay stops it with a resync
    event of the new epoch, and nothing read after the change comes."""
    n = make_nginx(http="loom_history_page 1;")
    c = v2(n)
    register_kept(c, "ep", 10000)
    publish_fast(c, "ep", 3000)
    epoch, _ = top(c, "ep")
    f = Follower(v2(n), "ep")
    r = f.resume(epoch, 0)
    assert r["recovered"] is True and r["rev"] == 3000, r
    redis_server.client().hset("loom:{t:ep}", "epoch", "other")
    while not f.events:
        f.take(f.c.recv_json(timeout=10))
    assert f.events[0]["action"] == "resync", f.events
    assert f.events[0]["reason"] == "gap", f.events
    assert f.events[0]["epoch"] == "other", f.events
    assert f.events[0]["rev"] == 3000, f.events
    assert f.revs == list(range(1, len(f.revs) + 1))
    assert len(f.revs) < 3000
    # and live from the event's position on
    f.rev = 3000
    c.send_json({"id": "p", "action": "publish", "topic": "ep",
                 "data": {"n": 1}})
    f.until(3001)
    assert f.events[1:] == [], f.events


def test_resume_answers(nginx):
    c = v2(nginx)
    register(c, "ra", SCHEMA)
    for i in range(1, 6):
        c.send_json({"id": "p%d" % i, "action": "publish", "topic": "ra",
                     "data": {"n": i}})
    epoch, rev = top(c, "ra")
    assert rev == 5
    d = v2(nginx)
    r = d.request({"id": "r", "action": "subscribe", "topic": "ra",
                   "since": {"epoch": epoch, "rev": 2}})
    assert r == answer("r", "subscribe", rev=5, epoch=epoch, recovered=True,
                       replayed=3)
    assert [d.recv_json()["rev"] for _ in range(3)] == [3, 4, 5]
    # at the top: recovered, nothing replayed
    e = v2(nginx)
    assert e.request({"id": "r", "action": "subscribe", "topic": "ra",
                      "since": {"epoch": epoch, "rev": 5}}) == \
        answer("r", "subscribe", rev=5, epoch=epoch, recovered=True,
               replayed=0)
    # another epoch: not recovered, live from now, with the snapshot
    r = e.request({"id": "r2", "action": "subscribe", "topic": "ra",
                   "snapshot": True,
                   "since": {"epoch": "nope", "rev": 1}})
    assert r == answer("r2", "subscribe", data={"n": 5}, rev=5, epoch=epoch,
                       ts=r["ts"], recovered=False, replayed=0)
    e.expect_silence(0.3)
    # a v1 connection gets the replay as v1 deliveries
    sender = c.request({"id": "h", "action": "history", "topic": "ra",
                        "since": 4})["data"][0]["senderId"]
    old = nginx.client()
    r = old.request({"id": "r", "action": "subscribe", "topic": "ra",
                     "since": {"epoch": epoch, "rev": 4}})
    assert r["recovered"] is True and r["replayed"] == 1
    assert old.recv_json() == {"id": "p5", "action": "publish",
                               "topic": "ra", "data": {"n": 5},
                               "senderId": sender}


# -- links that drop ------------------------------------------------------------

def stream_through(a, b, disrupt, seconds=3.0, rate=500):
    """Followers on node b, a publisher on node a; disrupt() mid-stream.
    Returns the followers, the epoch before and the final position."""
    c = v2(a)
    register(c, "live", SCHEMA)
    epoch = top(c, "live")[0]
    followers = []
    for _ in range(4):
        f = Follower(v2(b), "live")
        f.snapshot()
        followers.append(f)
    pub = Publisher(a.client(), "live", rate)
    pub.start()
    time.sleep(seconds / 3)
    disrupt()
    time.sleep(seconds * 2 / 3)
    pub.finish()
    wait_for(a.redis_up, what="node a back")
    wait_for(b.redis_up, what="node b back")
    c = v2(a)
    final = wait_for(lambda: (lambda t: t if t[1] > 0 else None)(
        top(c, "live")), what="the top")
    for f in followers:
        f.until(final[1])
    return followers, epoch, final


def test_pubsub_link_killed_mid_stream(redis_server, make_nginx):
    a = make_nginx(workers=2)
    b = make_nginx(workers=2)
    r = redis_server.client()

    def kill():
        assert r.execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 1

    followers, epoch, final = stream_through(a, b, kill)
    assert final[0] == epoch
    for f in followers:
        assert f.revs == list(range(1, final[1] + 1))
        assert not f.events, f.events


def test_pubsub_link_killed_while_the_node_sleeps(redis_server, make_nginx):
    """The kill of a busy machine: node b's worker (one, so that it has
    every follower) is not scheduled while Redis closes its link, so the
    last messages and the close are there together when it wakes, in one
    readiness event.  The close must be seen then: with pings 60 s apart
    nothing else would find the dead link within the test, and the
    followers would wait for revisions that never come."""
    a = make_nginx(workers=2)
    b = make_nginx(http="loom_redis_ping_interval 60s;")
    r = redis_server.client()
    pids = b.worker_pids()

    def kill():
        c = v2(a)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            # messages for node b wait in its socket, the close behind them
            since = top(c, "live")[1]
            wait_for(lambda: top(c, "live")[1] >= since + 20,
                     what="publishes while node b sleeps")
            assert r.execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 1
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        c.close()

    followers, epoch, final = stream_through(a, b, kill)
    assert final[0] == epoch
    for f in followers:
        assert f.revs == list(range(1, final[1] + 1))
        assert not f.events, f.events


def test_redis_restart_with_aof(redis_server, make_nginx):
    a = make_nginx(workers=2)
    b = make_nginx(workers=2)
    followers, epoch, final = stream_through(a, b, redis_server.restart)
    assert final[0] == epoch
    for f in followers:
        assert f.revs == list(range(1, final[1] + 1))
        assert not f.events, f.events


@pytest.fixture
def relayed(redis_server, make_nginx):
    relays = []

    def make(**kw):
        relay = Relay(redis_server.port)
        relays.append(relay)
        return relay, make_nginx(
            redis_port=relay.port,
            http="loom_redis_timeout 500ms; loom_redis_ping_interval 300ms;",
            **kw)

    yield make
    for r in relays:
        r.close()


def frozen_gap(relayed, make_nginx, history):
    """A node whose subscriber link stops carrying anything while another
    node publishes 20 revisions; the link is declared down and rebuilt."""
    relay, b = relayed()
    a = make_nginx()
    c = v2(a)
    r = c.request({"id": "r", "action": "registerTopic", "topic": "gap",
                   "data": SCHEMA, "retention": {"history": history},
                   "requireAck": True})
    assert r["code"] == 200, r
    f = Follower(v2(b), "gap")
    f.snapshot()
    c.send_json({"id": "p", "action": "publish", "topic": "gap",
                 "data": {"n": 0}})
    f.until(1)
    wait_for(lambda: relay.connections(subscriber=True), what="the link")
    relay.freeze(down=True, subscriber_only=True)
    for i in range(1, 21):
        c.send_json({"id": "p", "action": "publish", "topic": "gap",
                     "data": {"n": i}})
    assert top(c, "gap")[1] == 21
    return f


def test_frozen_link_gap_is_repaired(relayed, make_nginx):
    f = frozen_gap(relayed, make_nginx, 100)
    f.until(21)
    assert f.revs == list(range(1, 22))
    assert not f.events


def test_gap_past_the_window_is_signalled(relayed, make_nginx):
    f = frozen_gap(relayed, make_nginx, 5)
    # nothing after revision 1 can be delivered without a hole: the event
    # comes first
    e = f.c.recv_json(timeout=15)
    assert e == {"action": "resync", "topic": "gap", "reason": "gap",
                 "data": {"n": 20}, "rev": 21, "epoch": e["epoch"],
                 "ts": e["ts"], "type": "event"}
    f.c.send_json({"id": "p", "action": "publish", "topic": "gap",
                   "data": {"n": 21}})
    assert f.c.recv_json()["rev"] == 22


# -- data loss -------------------------------------------------------------------

def test_redis_restarted_empty_gives_a_new_epoch(redis_server, nginx):
    c = v2(nginx)
    register(c, "dl", SCHEMA)
    for i in range(1, 11):
        c.send_json({"id": "p", "action": "publish", "topic": "dl",
                     "data": {"n": i}})
    epoch, rev = top(c, "dl")
    assert rev == 10
    live = Follower(v2(nginx), "dl")
    live.snapshot()

    redis_server.kill()
    shutil.rmtree(os.path.join(redis_server.dir, "appendonlydir"),
                  ignore_errors=True)
    redis_server.start()
    wait_for(nginx.redis_up, what="the links to come back")
    c = v2(nginx)
    register(c, "dl", SCHEMA)
    for i in range(1, 4):
        c.send_json({"id": "p", "action": "publish", "topic": "dl",
                     "data": {"n": i}})
    new, rev = top(c, "dl")
    assert new != epoch and rev == 3
    for since in (10, 2, 0):
        d = v2(nginx)
        r = d.request({"id": "r", "action": "subscribe", "topic": "dl",
                       "since": {"epoch": epoch, "rev": since}})
        assert r == answer("r", "subscribe", rev=3, epoch=new,
                           recovered=False, replayed=0)
    # the subscription made to the lost registration ended with it, as an
    # unregister ends it: nothing of the new registration comes to it
    live.c.expect_silence(0.5)


def test_resume_above_the_top_changes_the_epoch(redis_server, nginx):
    c = v2(nginx)
    register(c, "up", SCHEMA)
    for i in range(1, 6):
        c.send_json({"id": "p", "action": "publish", "topic": "up",
                     "data": {"n": i}})
    epoch, rev = top(c, "up")
    live = Follower(v2(nginx), "up")
    live.snapshot()
    # Redis "lost" revisions 4 and 5
    redis_server.client().hset("loom:{t:up}", "rev", 3)
    d = v2(nginx)
    r = d.request({"id": "r", "action": "subscribe", "topic": "up",
                   "since": {"epoch": epoch, "rev": 5}})
    assert r["recovered"] is False and r["epoch"] != epoch and r["rev"] == 3
    m = live.c.recv_json()
    assert m["action"] == "resync" and m["reason"] == "epoch"
    assert (m["epoch"], m["rev"]) == (r["epoch"], 3)


# -- retention and storage ----------------------------------------------------------

def publish_n(c, topic, n):
    for i in range(1, n + 1):
        c.send_json({"id": "p%d" % i, "action": "publish", "topic": topic,
                     "data": {"n": i}})
    c.request({"id": "sync", "action": "get", "topic": topic})


def history_revs(c, topic, **kw):
    r = c.request(dict({"id": "h", "action": "history", "topic": topic},
                       **kw))
    assert r["code"] == 200, r
    return [e["rev"] for e in r["data"]]


def test_retention_by_count_and_age(nginx):
    c = v2(nginx)
    r = c.request({"id": "r", "action": "registerTopic", "topic": "cnt",
                   "data": SCHEMA, "retention": {"history": 5},
                   "requireAck": True})
    assert r == answer("r", "registerTopic", data={})
    publish_n(c, "cnt", 12)
    assert history_revs(c, "cnt") == [8, 9, 10, 11, 12]
    r = c.request({"id": "r", "action": "registerTopic", "topic": "age",
                   "data": SCHEMA, "retention": {"maxAge": 1},
                   "requireAck": True})
    assert r["code"] == 200, r
    publish_n(c, "age", 3)
    assert history_revs(c, "age") == [1, 2, 3]
    time.sleep(1.2)
    assert history_revs(c, "age") == []
    publish_n(c, "age", 1)
    assert history_revs(c, "age") == [4]
    # updateSchema changes the retention
    r = c.request({"id": "u", "action": "updateSchema", "topic": "cnt",
                   "data": SCHEMA, "retention": {"history": 2},
                   "requireAck": True})
    assert r == answer("u", "updateSchema")
    publish_n(c, "cnt", 1)
    assert history_revs(c, "cnt") == [12, 13]


def test_latest_only_and_memory_topics(nginx):
    c = v2(nginx)
    r = c.request({"id": "r", "action": "registerTopic", "topic": "latest",
                   "data": SCHEMA, "retention": {"history": 0},
                   "requireAck": True})
    assert r["code"] == 200, r
    publish_n(c, "latest", 3)
    r = c.request({"id": "g", "action": "get", "topic": "latest"})
    assert (r["data"], r["rev"]) == ({"n": 3}, 3)
    assert c.request({"id": "h", "action": "history", "topic": "latest"}) \
        == answer("h", "history", 400,
                  "history is disabled for topic latest")
    r = c.request({"id": "s", "action": "subscribe", "topic": "latest",
                   "since": {"epoch": r["epoch"], "rev": 1}})
    assert r["recovered"] is False and r["rev"] == 3

    m = v2(nginx, "mem")
    r = m.request({"id": "r", "action": "registerTopic", "topic": "mem",
                   "data": SCHEMA, "storage": "memory", "requireAck": True})
    assert r["code"] == 200, r
    subscribe(m, "mem")
    m.send_text('{"id":"p","action":"publish","topic":"mem",'
                '"data":{"n":1},"requireAck":true}')
    assert m.recv_message().payload == \
        b'{"id":"p","action":"publish","topic":"mem","data":{"n":1},' \
        b'"senderId":"mem"}\n'
    assert m.recv_json() == answer("p", "publish")
    r = m.request({"id": "g", "action": "get", "topic": "mem"})
    assert (r["data"], r["rev"], r["ts"]) == (None, 0, 0)
    assert m.request({"id": "h", "action": "history", "topic": "mem"}) == \
        answer("h", "history", 400, "history is disabled for topic mem")
    r = m.request({"id": "u", "action": "updateSchema", "topic": "mem",
                   "data": SCHEMA, "storage": "redis"})
    assert r == answer("u", "updateSchema", 400,
                       "the storage of a topic cannot change: unregister it"
                       " and register it again")


def test_memory_topic_link_drop_is_signalled(redis_server, nginx):
    c = v2(nginx, "m")
    r = c.request({"id": "r", "action": "registerTopic", "topic": "mem",
                   "data": SCHEMA, "storage": "memory", "requireAck": True})
    assert r["code"] == 200, r
    subscribe(c, "mem")
    old = nginx.client()
    subscribe(old, "mem")
    r = redis_server.client()
    assert r.execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 1
    # what was published meanwhile cannot be read back: v2 is told
    e = c.recv_json(timeout=15)
    assert e == {"action": "resync", "topic": "mem", "reason": "gap",
                 "data": None, "rev": 0, "epoch": e["epoch"], "ts": 0,
                 "type": "event"}
    # the subscription goes on; a v1 connection hears nothing of it
    c.send_json({"id": "p", "action": "publish", "topic": "mem",
                 "data": {"n": 1}})
    assert c.recv_json()["data"] == {"n": 1}
    assert old.recv_json() == {"id": "p", "action": "publish",
                               "topic": "mem", "data": {"n": 1},
                               "senderId": "m"}


# -- history paging -------------------------------------------------------------------

def test_history_paging(nginx):
    c = v2(nginx, "h")
    register(c, "hp", SCHEMA)
    publish_n(c, "hp", 25)
    r = c.request({"id": "h", "action": "history", "topic": "hp",
                   "since": 3, "limit": 2})
    epoch = r["epoch"]
    assert r == answer("h", "history", data=[
        {"rev": 4, "ts": r["data"][0]["ts"], "data": {"n": 4},
         "senderId": "h"},
        {"rev": 5, "ts": r["data"][1]["ts"], "data": {"n": 5},
         "senderId": "h"}], epoch=epoch, rev=25)
    got, since = [], 0
    while True:
        page = history_revs(c, "hp", since=since, limit=10)
        got += page
        if len(page) < 10:
            break
        since = page[-1]
    assert got == list(range(1, 26))
    got, since = [], None
    while True:
        kw = {"reverse": True, "limit": 7}
        if since is not None:
            kw["since"] = since
        page = history_revs(c, "hp", **kw)
        got += page
        if len(page) < 7:
            break
        since = page[-1]
    assert got == list(range(25, 0, -1))
    r = c.request({"id": "h", "action": "history", "topic": "hp",
                   "limit": 0})
    assert r == answer("h", "history", data=[], epoch=epoch, rev=25)
    # by time
    entries = c.request({"id": "h", "action": "history",
                         "topic": "hp"})["data"]
    stamps = [e["ts"] for e in entries]
    assert stamps == sorted(stamps)
    frm, until = stamps[5], stamps[15]
    want = [e["rev"] for e in entries if frm <= e["ts"] <= until]
    assert history_revs(c, "hp", **{"from": frm, "until": until}) == want
    assert history_revs(c, "hp", **{"from": until + 1,
                                    "until": frm}) == []


def test_history_over_grouped_entries(redis_server, nginx):
    """History entries that hold groups of publishes (docs/architecture.md)
    page as entries of one: every revision once, its own data, either way,
    and the retention cut at exactly the newest N."""
    c = v2(nginx, "g")
    register_kept(c, "gp", 250)
    publish_fast(c, "gp", 300)
    assert redis_server.client().xlen("loom:{t:gp}:h") < 100
    for limit, reverse in ((7, False), (11, True), (1000, False)):
        got, since = [], None
        while True:
            kw = {"limit": limit, "reverse": reverse}
            if since is not None:
                kw["since"] = since
            r = c.request(dict({"id": "h", "action": "history",
                                "topic": "gp"}, **kw))
            assert r["code"] == 200 and r["rev"] == 300, r
            for e in r["data"]:
                assert e["data"] == {"n": e["rev"] - 1}, e
                assert e["senderId"] == "g"
            got += [e["rev"] for e in r["data"]]
            if len(r["data"]) < limit:
                break
            since = got[-1]
        want = list(range(51, 301))
        assert got == (want[::-1] if reverse else want), (limit, reverse)
    # a resume from inside the kept window, and from just outside it
    epoch, _ = top(c, "gp")
    f = Follower(v2(nginx), "gp")
    r = f.resume(epoch, 50)
    assert r["recovered"] is True and r["replayed"] == 250, r
    f.until(300)
    assert f.revs == list(range(51, 301))
    r = v2(nginx).request({"id": "r", "action": "subscribe", "topic": "gp",
                           "since": {"epoch": epoch, "rev": 49}})
    assert r["code"] == 200 and r["recovered"] is False, r


def test_history_page_is_capped(nginx):
    c = v2(nginx)
    r = c.request({"id": "r", "action": "registerTopic", "topic": "cap",
                   "data": SCHEMA, "retention": {"history": 2000},
                   "requireAck": True})
    assert r["code"] == 200, r
    publish_n(c, "cap", 1005)
    assert history_revs(c, "cap", limit=5000) == list(range(1, 1001))
    assert history_revs(c, "cap", since=1000) == list(range(1001, 1006))


# -- errors --------------------------------------------------------------------

def test_new_field_errors(nginx):
    c = v2(nginx)
    register(c, "err", SCHEMA)
    cases = [
        ({"action": "subscribe", "snapshot": 1},
         'invalid "snapshot": it must be true or false'),
        ({"action": "subscribe", "since": 5},
         'invalid "since": it needs "epoch" (a string) and "rev" (an'
         ' integer of 0 or more)'),
        ({"action": "subscribe", "since": {"epoch": "e"}},
         'invalid "since": it needs "epoch" (a string) and "rev" (an'
         ' integer of 0 or more)'),
        ({"action": "subscribe", "since": {"epoch": "e", "rev": -1}},
         'invalid "since": it needs "epoch" (a string) and "rev" (an'
         ' integer of 0 or more)'),
        ({"action": "history", "since": "x"},
         'invalid "since": it must be an integer of 0 or more'),
        ({"action": "history", "limit": 1.5},
         'invalid "limit": it must be an integer of 0 or more'),
        ({"action": "history", "reverse": "yes"},
         'invalid "reverse": it must be true or false'),
        ({"action": "history", "from": "now"},
         'invalid "from": it must be an integer (ms since 1970)'),
        ({"action": "history", "until": []},
         'invalid "until": it must be an integer (ms since 1970)'),
        ({"action": "registerTopic", "topic": "e2", "data": SCHEMA,
          "retention": 5},
         'invalid "retention": it must be an object'),
        ({"action": "registerTopic", "topic": "e2", "data": SCHEMA,
          "retention": {"history": -1}},
         'invalid "retention": "history" must be an integer from 0 to'
         ' 1000000'),
        ({"action": "registerTopic", "topic": "e2", "data": SCHEMA,
          "retention": {"history": 1000001}},
         'invalid "retention": "history" must be an integer from 0 to'
         ' 1000000'),
        ({"action": "registerTopic", "topic": "e2", "data": SCHEMA,
          "retention": {"maxAge": "1h"}},
         'invalid "retention": "maxAge" must be an integer of 0 or more'),
        ({"action": "registerTopic", "topic": "e2", "data": SCHEMA,
          "storage": "disk"},
         'invalid "storage": it must be "redis" or "memory"'),
    ]
    for req, message in cases:
        req = dict({"id": "e", "topic": "err"}, **req)
        assert c.request(req) == answer("e", req["action"], 400, message), \
            req
    assert c.request({"id": "e", "action": "history", "topic": "nope"}) == \
        answer("e", "history", 500, "couldn't get history for topic. topic"
               " doesn't exist. topic: nope")
    assert c.request({"id": "e", "action": "history", "topic": ""}) == \
        answer("e", "history", 400, "no topic provided")
    # nothing was registered by the refused requests
    r = c.request({"id": "l", "action": "listTopics"})
    assert [t["name"] for t in r["data"]] == ["err"]
