"""The Redis scripts alone, against a real redis-server (no nginx).

Each script of ngx_loom_module/lua is sent with EVAL as the module sends
it (keys first, then the arguments, in the order each script's header
names them).  What is checked: revisions are contiguous and the channel
message carries seq, rev and ts; sendWithoutSave and memory topics get no
revision; history is trimmed by count and by age, a bounded amount per
publish; history pages by revision and by time (against a brute-force
filter of the same entries); the resume rules; the epoch rules.
"""

import os
import time

import pytest

LUA = os.path.join(os.path.dirname(__file__), "..", "..", "ngx_loom_module",
                   "lua")
P = "loom:"
DEFAULT_N, DEFAULT_AGE, TRIM = 1000, 0, 64


def script(name):
    with open(os.path.join(LUA, name + ".lua")) as f:
        return f.read()


class Topic:
    """The keys of topic T and helpers calling the scripts on it."""

    def __init__(self, r, name):
        self.r = r
        self.name = name
        self.hash = P + "{t:%s}" % name
        self.stream = self.hash + ":h"
        self.channel = self.hash + ":msg"
        self.tag = None

    def eval(self, name, keys, args):
        return self.r.eval(script(name), len(keys), *keys, *args)

    def register(self, reg="reg1", history="", max_age="", storage=""):
        got = self.eval("register", [self.hash, P + "topics", self.stream],
                        [self.name, '{"a":null}', reg, history, max_age,
                         storage])
        self.tag = self.r.hget(self.hash, "tag").decode()
        return got

    def update(self, history="", max_age="", storage=""):
        got = self.eval("update", [self.hash, P + "topics", self.stream],
                        [self.name, '{"a":null}', P + "ctl", history,
                         max_age, storage])
        self.tag = self.r.hget(self.hash, "tag").decode()
        return got

    def publish(self, data, store=True, n=DEFAULT_N, age=DEFAULT_AGE,
                trim=TRIM, pid="p"):
        """One message: the one reply of a group of one."""
        got = self.publish_group([(data, store, pid)], n=n, age=age,
                                 trim=trim)
        assert isinstance(got, list) and len(got) == 1
        return got[0]

    def item(self, data, store=True, pid="p", tag=None):
        delivery = ('{"id":"%s","action":"publish","topic":"%s","data":%s,'
                    '"senderId":"alice"}\n' % (pid, self.name, data))
        offset = delivery.index('"data":') + 7
        return [(self.tag or "") if tag is None else tag,
                "1" if store else "0", delivery, offset, len(data)]

    def publish_group(self, messages, n=DEFAULT_N, age=DEFAULT_AGE,
                      trim=TRIM):
        """Messages (data, store, pid[, tag]) in one script call: the
        channel, the default retention and the trimming bound, then five
        arguments per message (tag, store, delivery, the data's offset,
        0-based, and its length)."""
        args = [self.channel, n, age, trim]
        for m in messages:
            args += self.item(*m)
        return self.eval("append", [self.hash, self.stream], args)

    def snapshot(self, registration=False):
        return self.eval("snapshot", [self.hash],
                         ["1"] if registration else [])

    def resume(self, epoch, rev, limit=100, n=DEFAULT_N, age=DEFAULT_AGE):
        return self.eval("resume", [self.hash, self.stream],
                         [epoch, rev, limit, n, age, self.channel])

    def history(self, since="", limit=100, reverse=False, frm="", until="",
                n=DEFAULT_N, age=DEFAULT_AGE):
        return self.eval("history", [self.hash, self.stream],
                         [since, limit, "1" if reverse else "0", frm, until,
                          n, age])

    def epoch(self, known, delivered):
        return self.eval("epoch", [self.hash],
                         [known, delivered, self.channel])

    def stored(self):
        """(rev, fields) of each revision in the stream, in order: an
        entry "<rev>-0" holds one (t, d, o, l), a group's "<last>-<k>"
        k of them (t, then "<o>:<l>" and the delivery per message)."""
        out = []
        for i, f in self.r.xrange(self.stream):
            hi, k = (int(x) for x in i.split(b"-"))
            if k == 0:
                out.append((hi, {x.decode(): v for x, v in f.items()}))
                continue
            # as the readers see it: field names may repeat
            raw = self.r.eval("return redis.call('XRANGE', KEYS[1], "
                              "ARGV[1], ARGV[1])", 1, self.stream, i)[0][1]
            assert raw[0] == b"t" and len(raw) == 2 + 2 * k, raw
            for j in range(k):
                o, n = raw[2 + 2 * j].split(b":")
                out.append((hi - k + 1 + j, {"t": raw[1],
                                             "d": raw[3 + 2 * j],
                                             "o": o, "l": n}))
        return out

    def stored_at(self, rev):
        return dict(self.stored())[rev]

    def ids(self):
        return [rev for rev, _ in self.stored()]

    def entries(self):
        """The stream's own entry ids."""
        return [i.decode() for i, _ in self.r.xrange(self.stream)]


def revs(entries):
    return [int(e[0].split(b"-")[0]) for e in entries]


def fields(entry):
    f = entry[1]
    if isinstance(f, dict):     # redis-py's own XRANGE
        return {k.decode(): v for k, v in f.items()}
    return {f[i].decode(): f[i + 1] for i in range(0, len(f), 2)}


@pytest.fixture
def r(redis_server):
    return redis_server.client()


def messages(ps, n, timeout=5.0):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        m = ps.get_message(timeout=0.1)
        if m and m["type"] == "message":
            got.append(m["data"])
    return got


def test_revisions_are_contiguous_and_published(r):
    t = Topic(r, "chat")
    assert t.register() == [1]
    assert r.hget(t.hash, "epoch") == b"reg1"
    ps = r.pubsub()
    ps.subscribe(t.channel)
    assert ps.get_message(timeout=2)["type"] == "subscribe"
    got = [t.publish('{"a":%d}' % i) for i in range(1, 21)]
    assert [g[:2] for g in got] == [[i, i] for i in range(1, 21)]
    stamps = [g[2] for g in got]
    assert stamps == sorted(stamps)
    assert abs(stamps[-1] - time.time() * 1000) < 60000
    assert r.hget(t.hash, "value") == b'{"a":20}'
    assert r.hget(t.hash, "ts") == str(stamps[-1]).encode()
    assert t.ids() == list(range(1, 21))
    e = t.stored_at(7)
    d = e["d"]
    assert int(e["t"]) == stamps[6]
    o, n = int(e["o"]), int(e["l"])
    assert d[o:o + n] == b'{"a":7}'
    m = messages(ps, 20)
    assert len(m) == 20
    for i, msg in enumerate(m, 1):
        seq, rev, ts, epoch, rest = msg.split(b" ", 4)
        assert (int(seq), int(rev), int(ts)) == (i, i, stamps[i - 1])
        assert epoch == b"reg1"
        assert rest.startswith(b'{"id":"p"') and rest.endswith(b"}\n")
    ps.close()


def test_send_without_save_gets_no_revision(r):
    t = Topic(r, "chat")
    t.register()
    t.publish('{"a":1}')
    ps = r.pubsub()
    ps.subscribe(t.channel)
    ps.get_message(timeout=2)
    assert t.publish('{"a":2}', store=False) == [2, 0, 0]
    assert r.hget(t.hash, "value") == b'{"a":1}'
    assert t.ids() == [1]
    assert messages(ps, 1)[0].startswith(b"2 0 0 reg1 {")
    assert t.publish('{"a":3}')[:2] == [3, 2]
    ps.close()


def test_stale_tag_and_missing_topic(r):
    t = Topic(r, "chat")
    assert t.publish('{"a":1}') is None
    t.register()
    good = t.tag
    t.update()
    t.tag = good
    got = t.publish('{"a":1}')
    assert got[0] == b"reg1:1" and got[1] == b'{"a":null}'
    assert r.hget(t.hash, "rev") == b"0" and t.ids() == []


def test_trim_by_count_is_bounded_per_publish(r):
    t = Topic(r, "chat")
    t.register(history="5")
    assert r.hget(t.hash, "hn") == b"5"
    for i in range(1, 13):
        t.publish('{"a":%d}' % i)
    assert t.ids() == list(range(8, 13))
    # the directive's default applies to a topic without its own
    u = Topic(r, "other")
    u.register()
    for i in range(1, 8):
        u.publish('{"a":%d}' % i, n=3)
    assert u.ids() == [5, 6, 7]
    # lowered from 100 to 2: at most TRIM entries go per publish
    v = Topic(r, "big")
    v.register(history="100")
    for i in range(1, 101):
        v.publish('{"a":%d}' % i)
    assert v.update(history="2") == 1
    v.publish('{"a":101}', trim=10)
    assert v.ids() == list(range(11, 102))
    for i in range(102, 112):
        v.publish('{"a":%d}' % i, trim=10)
    assert v.ids() == [110, 111]


def test_trim_by_age(r):
    t = Topic(r, "chat")
    t.register(max_age="1")
    for i in range(1, 4):
        t.publish('{"a":%d}' % i)
    ttl = r.pttl(t.stream)
    assert 0 < ttl <= 1000
    time.sleep(1.1)
    # aged entries are not history any more, even before they are trimmed
    assert t.history()[3] == []
    assert t.resume("reg1", 1)[0] == 0
    t.publish('{"a":4}')
    assert t.ids() == [4]
    assert revs(t.history()[3]) == [4]
    # a quiet topic's history expires as a whole; the value stays
    time.sleep(1.1)
    assert not r.exists(t.stream)
    assert t.snapshot()[3] == b'{"a":4}'
    # an age limit taken away makes the history keep
    t.update(max_age="0")
    t.publish('{"a":5}')
    assert r.pttl(t.stream) == -1


def test_trim_by_age_is_bounded_per_publish(r):
    t = Topic(r, "chat")
    t.register()
    for i in range(1, 11):
        t.publish('{"a":%d}' % i)
    time.sleep(0.05)
    t.update(max_age="1")
    # pretend ten entries are two seconds old
    old = time.time() * 1000 - 2000
    r.delete(t.stream)
    for i in range(1, 11):
        r.xadd(t.stream, {"t": int(old), "d": "x", "o": 0, "l": 1},
               id="%d-0" % i)
    t.publish('{"a":11}')
    assert t.ids() == list(range(5, 12))
    t.publish('{"a":12}')
    assert t.ids() == [9, 10, 11, 12]


def test_latest_only_and_memory_topics(r):
    t = Topic(r, "latest")
    t.register(history="0")
    for i in range(1, 4):
        assert t.publish('{"a":%d}' % i)[1] == i
    assert not r.exists(t.stream)
    assert t.snapshot()[0] == 3 and t.snapshot()[3] == b'{"a":3}'
    assert t.history()[0] == 0
    assert t.resume("reg1", 3)[:3] == [1, b"reg1", 3]
    assert t.resume("reg1", 2)[0] == 0

    m = Topic(r, "mem")
    m.register(storage="memory")
    assert r.hget(m.hash, "st") == b"memory"
    assert m.publish('{"a":1}') == [1, 0, 0]
    assert m.snapshot() == [0, b"reg1", 0, None]
    # the shared read of subscribes: the registration and storage too
    assert m.snapshot(True) == [0, b"reg1", 0, None, b"reg1", b"memory"]
    assert not r.exists(m.stream) and not r.hexists(m.hash, "value")
    assert m.history()[0] == 0
    # the storage is chosen once
    assert m.update(storage="redis") == -1
    assert r.hget(m.hash, "sv") == b"0"
    assert m.update(storage="memory") == 1

    # a stored topic that goes to no history drops its stream at once
    h = Topic(r, "h")
    h.register()
    h.publish('{"a":1}')
    assert r.exists(h.stream)
    h.update(history="0")
    assert not r.exists(h.stream)
    h.update(history="-")
    assert not r.hexists(h.hash, "hn")


def test_history_paging_by_revision(r):
    t = Topic(r, "chat")
    t.register()
    for i in range(1, 26):
        t.publish('{"a":%d}' % i)
    got, since = [], ""
    while True:
        ok, epoch, top, e = t.history(since=since, limit=10)
        assert (ok, epoch, top) == (1, b"reg1", 25)
        if not e:
            break
        got += revs(e)
        since = revs(e)[-1]
    assert got == list(range(1, 26))
    got, since = [], ""
    while True:
        e = t.history(since=since, limit=7, reverse=True)[3]
        if not e:
            break
        got += revs(e)
        since = revs(e)[-1]
    assert got == list(range(25, 0, -1))
    assert t.history(limit=0) == [1, b"reg1", 25, []]
    assert revs(t.history(since=25)[3]) == []
    f = fields(t.history(since=4, limit=1)[3][0])
    assert f["d"][int(f["o"]):int(f["o"]) + int(f["l"])] == b'{"a":5}'
    assert Topic(r, "none").history() is None


def test_history_paging_by_time(r):
    t = Topic(r, "chat")
    t.register()
    for i in range(1, 41):
        t.publish('{"a":%d}' % i)
        if i % 4 == 0:
            time.sleep(0.003)
    entries = [(rev, int(e["t"])) for rev, e in t.stored()]
    assert [rev for rev, _ in entries] == list(range(1, 41))
    stamps = sorted({ts for _, ts in entries})
    assert len(stamps) >= 5
    bounds = [""] + [stamps[0] - 1] + stamps + [stamps[-1] + 1]
    for frm in bounds:
        for until in bounds:
            for reverse in (False, True):
                want = [rev for rev, ts in entries
                        if (frm == "" or ts >= frm)
                        and (until == "" or ts <= until)]
                if reverse:
                    want.reverse()
                got = revs(t.history(frm=frm, until=until, limit=1000,
                                     reverse=reverse)[3])
                assert got == want, (frm, until, reverse)
    # a time window paged by revision
    frm, until = stamps[1], stamps[-2]
    want = [rev for rev, ts in entries if frm <= ts <= until]
    got, since = [], ""
    while True:
        e = t.history(since=since, limit=3, frm=frm, until=until)[3]
        if not e:
            break
        got += revs(e)
        since = revs(e)[-1]
    assert got == want


def test_history_and_resume_over_groups(r):
    """Entries of one message and groups of several, mixed: every page of
    history (by revision either way, by time) and every resume give each
    revision as its own entry, the data where o and l say, as a topic of
    single entries would."""
    t = Topic(r, "mixed")
    t.register(history="30")
    sizes = [1, 5, 3, 1, 7, 2, 1, 4, 6, 1, 3]
    rev = 0
    for k in sizes:
        t.publish_group([('{"a":%d}' % (rev + j), True, "p%d" % (rev + j))
                         for j in range(1, k + 1)])
        rev += k
        time.sleep(0.003)
    assert rev == 34 and len(t.entries()) == len(sizes) - 1
    stored = t.stored()
    # the newest 30 are what the readers know of; 1 to 4 went or are cut
    assert [x for x, _ in stored][-30:] == list(range(5, 35))
    kept = [(x, e) for x, e in stored if x >= 5]

    def check(entries, want):
        assert revs(entries) == want
        for e in entries:
            f = fields(e)
            x = int(e[0].split(b"-")[0])
            o, n = int(f["o"]), int(f["l"])
            assert f["d"][o:o + n] == b'{"a":%d}' % x
            assert b'"id":"p%d"' % x in f["d"]
            assert f["t"] == dict(kept)[x]["t"]

    for limit in (1, 2, 3, 7, 100):
        for reverse in (False, True):
            got, since = [], ""
            while True:
                e = t.history(since=since, limit=limit, reverse=reverse)[3]
                check(e, revs(e))
                assert len(e) <= limit
                got += revs(e)
                if len(e) < limit:
                    break
                since = revs(e)[-1]
            want = [x for x, _ in kept]
            assert got == (want[::-1] if reverse else want), (limit, reverse)
    stamps = sorted({int(e["t"]) for _, e in kept})
    bounds = [""] + [stamps[0] - 1] + stamps + [stamps[-1] + 1]
    for frm in bounds:
        for until in bounds:
            for reverse in (False, True):
                want = [x for x, e in kept
                        if (frm == "" or int(e["t"]) >= frm)
                        and (until == "" or int(e["t"]) <= until)]
                got = t.history(frm=frm, until=until, reverse=reverse)[3]
                check(got, want[::-1] if reverse else want)
    for since in range(0, 35):
        got = t.resume("reg1", since, limit=4)
        if since < 4:
            assert got[0] == 0 and got[5] == [], since
        else:
            assert got[0] == 1, since
            check(got[5], list(range(since + 1, min(since + 4, 34) + 1)))


def test_resume_rules(r):
    t = Topic(r, "chat")
    t.register(history="10")
    for i in range(1, 16):
        t.publish('{"a":%d}' % i)
    # in the window: every revision after the one given
    ok, epoch, top, ts, value, e = t.resume("reg1", 8)
    assert (ok, epoch, top, value) == (1, b"reg1", 15, b'{"a":15}')
    assert revs(e) == list(range(9, 16))
    assert revs(t.resume("reg1", 5, limit=4)[5]) == [6, 7, 8, 9]
    assert t.resume("reg1", 15)[0] == 1 and t.resume("reg1", 15)[5] == []
    # older than the window, or another epoch: not recovered, nothing
    assert t.resume("reg1", 4)[0] == 0 and t.resume("reg1", 4)[5] == []
    assert t.resume("reg1", 5)[0] == 1
    assert t.resume("other", 10)[:3] == [0, b"reg1", 15]
    assert r.hget(t.hash, "epoch") == b"reg1"
    # a client that saw a revision Redis does not have: data loss
    ps = r.pubsub()
    ps.subscribe(t.channel)
    ps.get_message(timeout=2)
    got = t.resume("reg1", 20)
    e2 = got[1]
    assert got[0] == 0 and got[2] == 15
    assert e2.startswith(b"reg1.") and len(e2) > len(b"reg1.") + 6
    assert r.hget(t.hash, "epoch") == e2
    m = messages(ps, 1)[0]
    assert m.startswith(b"E " + e2 + b" 15 ") and m.endswith(b' {"a":15}')
    # the revisions go on, in the new epoch, which the messages name
    assert t.publish('{"a":16}')[1] == 16
    m = messages(ps, 1)[0].split(b" ", 4)
    assert (m[0], m[1], m[3]) == (b"16", b"16", e2)
    assert t.resume(e2.decode(), 15)[0] == 1
    assert Topic(r, "none").resume("reg1", 0) is None
    ps.close()


def test_epoch_change_rules(r):
    t = Topic(r, "chat")
    t.register()
    for i in range(1, 6):
        t.publish('{"a":%d}' % i)
    ps = r.pubsub()
    ps.subscribe(t.channel)
    ps.get_message(timeout=2)
    # nothing lost: no change
    assert t.epoch("reg1", 5)[:3] == [0, b"reg1", 5]
    assert t.epoch("reg1", 3)[:3] == [0, b"reg1", 5]
    # Redis lost revisions 4 and 5 (an older copy of the data came back)
    r.hset(t.hash, "rev", 3)
    got = t.epoch("reg1", 5)
    e2 = got[1]
    assert (got[0], got[2]) == (1, 3) and e2.startswith(b"reg1.")
    assert messages(ps, 1)[0].startswith(b"E " + e2 + b" 3 ")
    # a second worker that saw the loss finds the epoch changed already
    assert t.epoch("reg1", 5)[:3] == [0, e2, 3]
    assert r.hget(t.hash, "epoch") == e2
    assert messages(ps, 1, timeout=0.3) == []
    # a second loss in the same epoch gives yet another one
    r.hset(t.hash, "rev", 2)
    e3 = t.epoch(e2.decode(), 3)[1]
    assert e3 not in (e2, b"reg1") and e3.startswith(b"reg1.")
    r.hset(t.hash, "rev", 3)
    # the stream still holds 4 and 5 of the lost epoch: they give way
    got = t.publish('{"a":"new4"}')
    assert got[1] == 4
    assert t.ids() == [4]
    assert t.stored()[0][1]["d"].count(b'"new4"') == 1
    assert Topic(r, "none").epoch("reg1", 1) is None
    ps.close()


def test_register_unregister_and_old_topics(r):
    t = Topic(r, "chat")
    t.register(reg="r1", history="7", max_age="60")
    assert r.hmget(t.hash, "hn", "ha", "rev", "epoch") == \
        [b"7", b"60", b"0", b"r1"]
    t.publish('{"a":1}')
    # an existing topic keeps its retention
    assert t.register(reg="r2", history="1")[0] == 0
    assert r.hget(t.hash, "hn") == b"7"
    assert t.eval("unregister", [t.hash, P + "topics", t.stream],
                  [t.name, t.channel, P + "ctl"]) == 1
    assert not r.exists(t.hash) and not r.exists(t.stream)
    # a stream left by an older registration is not the new one's
    r.xadd(t.stream, {"t": 1, "d": "x", "o": 0, "l": 1}, id="9-0")
    t.register(reg="r3")
    assert not r.exists(t.stream)
    assert t.snapshot() == [0, b"r3", 0, None]
    # a topic from before revisions: its epoch is its registration id
    r.hdel(t.hash, "epoch", "rev")
    assert t.snapshot()[:2] == [0, b"r3"]
    assert t.snapshot(True) == [0, b"r3", 0, None, b"r3", None]
    assert t.publish('{"a":1}')[1] == 1
    # the scripts as the module called them before, with two keys
    u = Topic(r, "old")
    assert u.eval("register", [u.hash, P + "topics"],
                  [u.name, "{}", "r9"]) == [1]
    assert u.eval("unregister", [u.hash, P + "topics"],
                  [u.name, u.channel, P + "ctl"]) == 1


# group commits: several messages of one topic in one call


def test_group_stores_each_message_in_order(r):
    t = Topic(r, "chat")
    t.register()
    t.publish('{"a":0}')
    ps = r.pubsub()
    ps.subscribe(t.channel)
    assert ps.get_message(timeout=2)["type"] == "subscribe"
    got = t.publish_group([('{"a":%d}' % i, True, "p%d" % i)
                           for i in range(1, 17)])
    assert [g[:2] for g in got] == [[i + 1, i + 1] for i in range(1, 17)]
    # one clock reading for the group, never below the previous one
    assert len({g[2] for g in got}) == 1
    assert got[0][2] >= int(t.stored_at(1)["t"])
    assert r.hget(t.hash, "value") == b'{"a":16}'
    assert r.hget(t.hash, "rev") == b"17" and r.hget(t.hash, "seq") == b"17"
    assert t.ids() == list(range(1, 18))
    # the group is one entry of the history: its last revision and size
    assert t.entries() == ["1-0", "17-16"]
    for i in range(1, 17):
        e = t.stored_at(i + 1)
        o, n = int(e["o"]), int(e["l"])
        assert e["d"][o:o + n] == b'{"a":%d}' % i
        assert b'"id":"p%d"' % i in e["d"]
    # one channel message per message, in order, each with its own numbers
    m = messages(ps, 16)
    assert len(m) == 16
    for i, msg in enumerate(m, 1):
        seq, rev, ts, epoch, rest = msg.split(b" ", 4)
        assert (int(seq), int(rev), int(ts)) == (i + 1, i + 1, got[0][2])
        assert rest.startswith(b'{"id":"p%d"' % i)
    ps.close()


def test_group_mixes_stored_and_ephemeral(r):
    t = Topic(r, "chat")
    t.register()
    got = t.publish_group([('{"a":1}', True, "a"), ('{"a":2}', False, "b"),
                           ('{"a":3}', True, "c"), ('{"a":4}', False, "d")])
    assert got[0][:2] == [1, 1] and got[2][:2] == [3, 2]
    assert got[1] == [2, 0, 0] and got[3] == [4, 0, 0]
    assert t.ids() == [1, 2]
    # the value is the last stored one's, the counter counts every message
    assert r.hget(t.hash, "value") == b'{"a":3}'
    assert r.hget(t.hash, "seq") == b"4" and r.hget(t.hash, "rev") == b"2"
    # a group of nothing but ephemeral messages stores nothing
    assert t.publish_group([('{"a":5}', False), ('{"a":6}', False)]) == \
        [[5, 0, 0], [6, 0, 0]]
    assert r.hget(t.hash, "value") == b'{"a":3}' and t.ids() == [1, 2]


def test_group_stops_at_a_stale_tag(r):
    t = Topic(r, "chat")
    t.register()
    good = t.tag
    t.publish('{"a":1}')
    t.update()
    ps = r.pubsub()
    ps.subscribe(t.channel)
    assert ps.get_message(timeout=2)["type"] == "subscribe"
    got = t.publish_group([('{"a":2}', True, "a", t.tag),
                           ('{"a":3}', True, "b", good),
                           ('{"a":4}', True, "c", t.tag),
                           ('{"a":5}', False, "d", t.tag)])
    assert got[0][:2] == [2, 2]
    # the stale one answers the current schema; the ones after it too,
    # marked: refused only to keep the order
    assert got[1][:2] == [b"reg1:1", b'{"a":null}'] and len(got[1]) == 3
    for g in got[2:]:
        assert g[:2] == [b"reg1:1", b'{"a":null}'] and g[3] == b"after"
    assert t.ids() == [1, 2] and r.hget(t.hash, "rev") == b"2"
    assert r.hget(t.hash, "seq") == b"2"
    assert r.hget(t.hash, "value") == b'{"a":2}'
    assert len(messages(ps, 4, timeout=1)) == 1
    ps.close()
    # a topic that does not exist: nil for each
    u = Topic(r, "none")
    assert u.publish_group([('{"a":1}', True), ('{"a":2}', True)]) == \
        [None, None]


def test_group_trims_to_the_retention(r):
    t = Topic(r, "chat")
    t.register(history="5")
    for i in range(3):
        t.publish_group([('{"a":%d}' % (4 * i + j), True)
                         for j in range(1, 5)])
    # an entry goes whole, once its last revision is older than the
    # newest 5: 5 to 7 stay with 8, but the readers see the newest 5 only
    assert t.entries() == ["8-4", "12-4"]
    assert t.ids() == list(range(5, 13))
    assert revs(t.history()[3]) == list(range(8, 13))
    assert revs(t.history(reverse=True)[3]) == list(range(12, 7, -1))
    assert t.resume("reg1", 6)[0] == 0
    assert revs(t.resume("reg1", 7)[5]) == list(range(8, 13))
    # lowered from 100 to 2: at most TRIM entries go per message, fewer
    # when entries are groups (each holds its revisions until its last
    # one goes)
    v = Topic(r, "big")
    v.register(history="100")
    v.publish_group([('{"a":%d}' % i, True) for i in range(1, 65)])
    v.publish_group([('{"a":%d}' % i, True) for i in range(65, 101)])
    assert v.ids() == list(range(1, 101))
    assert v.update(history="2") == 1
    v.publish_group([('{"a":101}', True), ('{"a":102}', True)], trim=10)
    # the bound: entries ending below 21 may go, and none does
    assert v.entries() == ["64-64", "100-36", "102-2"]
    assert r.hget(v.hash, "hf") == b"21"
    assert revs(v.history()[3]) == [101, 102]
    v.publish_group([('{"a":%d}' % i, True) for i in range(103, 112)],
                    trim=10)
    assert v.entries() == ["111-9"]
    assert revs(v.history()[3]) == [110, 111]
    # by age: at most four entries go per stored message
    w = Topic(r, "aged")
    w.register()
    for i in range(1, 11):
        w.publish('{"a":%d}' % i)
    w.update(max_age="1")
    old = time.time() * 1000 - 2000
    r.delete(w.stream)
    for i in range(1, 11):
        r.xadd(w.stream, {"t": int(old), "d": "x", "o": 0, "l": 1},
               id="%d-0" % i)
    w.publish_group([('{"a":11}', True), ('{"a":12}', False)])
    assert w.ids() == list(range(5, 12))
    w.publish_group([('{"a":13}', True), ('{"a":14}', True)])
    assert w.ids() == [11, 12, 13]
