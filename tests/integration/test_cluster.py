"""Redis Cluster mode (loom_redis_cluster): the main protocol against a
local cluster of 3 masters and 3 replicas.

nginx is given one seed; each worker reads the slot map, sends each
topic's commands and scripts to the master of its slot, and subscribes
(SSUBSCRIBE) there on one subscriber link per master.  Topics are chosen
so that they spread over every master.  Register, publish, get,
subscribe across 2 nodes x 2 workers, revisions, snapshot, resume,
updateSchema (the control channel), unregisterTopic and listTopics
(paged, over every master) are checked.
"""

import json
import time

import pytest

from conftest import Nginx, answer, clients_on_workers, register, subscribe
from conftest import stop_all, wait_for
from rediscluster import Cluster
from test_revisions import SCHEMA, Follower, Publisher, top, v2

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    # a long node timeout: no failover on a busy machine
    c = Cluster(masters=3, replicas=1, node_timeout=5000).start()
    yield c
    c.stop()


@pytest.fixture
def make_cluster_nginx(workdir, cluster):
    made = []

    def make(seeds=None, http="", **kw):
        n = Nginx("%s/nginx%d" % (workdir, len(made)), 0, redis_addr="",
                  http="loom_redis_cluster %s;\n%s"
                  % (seeds or cluster.nodes[0].addr, http), **kw)
        made.append(n)
        return n.start()

    yield make
    stop_all(made)


def spread(cluster, prefix, count=3):
    """Topic names whose slots belong to count different masters."""
    names, owners = [], set()
    for i in range(1000):
        name = "%s%d" % (prefix, i)
        port = cluster.master_of("loom:{t:%s}" % name).port
        if port not in owners:
            owners.add(port)
            names.append(name)
        if len(names) == count:
            return names
    raise AssertionError("topics do not spread over %d masters" % count)


def test_register_publish_get_on_every_master(cluster, make_cluster_nginx):
    n = make_cluster_nginx()
    a, b = n.client(), n.client()
    topics = spread(cluster, "basic")
    for t in topics:
        register(a, t, {"n": None})
        subscribe(b, t)
    for i, t in enumerate(topics):
        r = a.request({"id": "p%d" % i, "action": "publish", "topic": t,
                       "data": {"n": i}, "requireAck": True})
        assert r == answer("p%d" % i, "publish"), r
        d = b.recv_json(timeout=10)
        assert (d["topic"], d["data"]) == (t, {"n": i}), d
        assert a.request({"id": "g", "action": "get", "topic": t}) == \
            answer("g", "get", data={"n": i})
        # the data is on the master of the topic's slot
        m = cluster.master_of("loom:{t:%s}" % t)
        assert json.loads(m.client().hget("loom:{t:%s}" % t, "value")) \
            == {"n": i}
    # a second registration with another schema is refused, as ever
    r = a.request({"id": "r", "action": "registerTopic", "topic": topics[0],
                   "data": {"x": 1}, "requireAck": True})
    assert r["code"] == 500, r
    # schema checks hold
    r = a.request({"id": "bad", "action": "publish", "topic": topics[1],
                   "data": {"m": 1}, "requireAck": True})
    assert r["code"] == 400, r
    # the status page says every master's links are up
    st = n.status()["redis"]
    assert st["address"].startswith("cluster "), st
    assert all(w["redis_command"] == "up" and w["redis_subscriber"] == "up"
               for w in st["workers"]), st


def test_subscribe_across_nodes_and_workers(cluster, make_cluster_nginx):
    nodes = [make_cluster_nginx(workers=2),
             make_cluster_nginx(workers=2, seeds=cluster.seeds())]
    topics = spread(cluster, "fan")
    c = nodes[0].client()
    for t in topics:
        register(c, t, {"n": None})
    subs = []
    for n in nodes:
        for pid, clients in clients_on_workers(n).items():
            for s in clients:
                for t in topics:
                    subscribe(s, t, rid="s" + t)
                subs.append(s)
    assert len(subs) == 4
    pubs = [nodes[1].client(), nodes[0].client()]
    for i in range(30):
        t = topics[i % len(topics)]
        r = pubs[i % 2].request({"id": "p", "action": "publish",
                                 "topic": t, "data": {"n": i},
                                 "requireAck": True})
        assert r == answer("p", "publish"), r
    for s in subs:
        got = {}
        for i in range(30):
            d = s.recv_json(timeout=10)
            got.setdefault(d["topic"], []).append(d["data"]["n"])
        # in order per topic
        for k, t in enumerate(topics):
            assert got[t] == list(range(k, 30, len(topics))), got


def test_revisions_snapshot_and_resume(cluster, make_cluster_nginx):
    nodes = [make_cluster_nginx(workers=2), make_cluster_nginx(workers=2)]
    topics = spread(cluster, "rev")
    c = v2(nodes[0])
    for t in topics:
        register(c, t, SCHEMA)
    pubs = [Publisher(nodes[i % 2].client(), t, 200)
            for i, t in enumerate(topics)]
    for p in pubs:
        p.start()
    followers = []
    try:
        # snapshot-then-live while the publishers run
        for i, t in enumerate(topics):
            for n in nodes:
                f = Follower(v2(n), t)
                f.snapshot()
                followers.append(f)
        time.sleep(1)
        # a subscriber drops and resumes from its position
        for f in followers[::2]:
            f.c.abort()
            f.c = v2(nodes[1])
            f.c.send_json({"id": "r", "action": "subscribe",
                           "topic": f.topic,
                           "since": {"epoch": f.epoch, "rev": f.rev}})
            r = f.answer("r")
            assert r["recovered"] is True and r["epoch"] == f.epoch, r
            assert r["replayed"] == r["rev"] - f.rev, r
        time.sleep(1)
    finally:
        for p in pubs:
            p.finish()
    for f in followers:
        epoch, rev = top(c, f.topic)
        assert epoch == f.epoch
        f.until(rev)
        # Follower.take checked that every revision came once, in order
        assert f.rev == rev and f.revs, (f.rev, rev)
        assert not f.events, f.events
    for p in pubs:
        assert p.errors == 0
        assert top(c, p.topic)[1] == p.sent


def test_update_and_unregister_reach_every_node(cluster,
                                                make_cluster_nginx):
    nodes = [make_cluster_nginx(), make_cluster_nginx()]
    topics = spread(cluster, "upd")
    a, b = nodes[0].client(), nodes[1].client()
    for t in topics:
        register(a, t, {"n": None})
        # node b caches the schema
        r = b.request({"id": "p", "action": "publish", "topic": t,
                       "data": {"n": 1}, "requireAck": True})
        assert r == answer("p", "publish"), r
        r = a.request({"id": "u", "action": "updateSchema", "topic": t,
                       "data": {"m": None}, "requireAck": True})
        assert r["code"] == 200, r
        # the control channel reached node b: the new schema applies
        r = b.request({"id": "p2", "action": "publish", "topic": t,
                       "data": {"m": 1}, "requireAck": True})
        assert r == answer("p2", "publish"), r
    subscribe(b, topics[0])
    r = a.request({"id": "x", "action": "unregisterTopic",
                   "topic": topics[0], "requireAck": True})
    assert r["code"] == 200, r
    r = b.request({"id": "g", "action": "get", "topic": topics[0]})
    assert r["code"] == 500, r
    names = [t["name"] for t in a.request(
        {"id": "l", "action": "listTopics"})["data"]]
    assert topics[0] not in names
    assert set(topics[1:]) <= set(names)


def test_list_topics_pages_over_every_master(cluster, make_cluster_nginx):
    from redis.cluster import ClusterNode, RedisCluster
    rc = RedisCluster(startup_nodes=[
        ClusterNode("127.0.0.1", cluster.nodes[0].port)])
    count = 2500
    pipe = rc.pipeline()
    for i in range(count):
        pipe.hset("loom:{t:page%05d}" % i, mapping={
            "sv": 0, "tag": "r%d:0" % i, "schema": '{"n%d":null}' % i,
            "seq": 0, "rev": 0})
    pipe.execute()
    rc.close()

    n = make_cluster_nginx()
    c = n.client()
    names = []
    pages = 0
    request = {"id": "l", "action": "listTopics"}
    while True:
        r = c.request(request, timeout=20)
        assert (r["id"], r["code"]) == ("l", 200), r
        page = [t["name"] for t in r["data"]]
        assert page == sorted(page)
        assert len(page) <= 1200, len(page)
        for t in r["data"]:
            if t["name"].startswith("page"):
                i = int(t["name"][4:])
                assert t["schema"] == {"version": 0,
                                       "schema": {"n%d" % i: None}}
        names += page
        pages += 1
        if "cursor" not in r:
            break
        assert r["cursor"].isdigit() and r["cursor"] != "0", r
        request = {"id": "l", "action": "listTopics",
                   "data": {"cursor": r["cursor"]}}
        assert pages < 30
    assert pages >= 3
    assert sorted(x for x in set(names) if x.startswith("page")) == \
        ["page%05d" % i for i in range(count)]


@pytest.mark.parametrize("http, error", [
    ("loom_redis 127.0.0.1:6379; loom_redis_cluster 127.0.0.1:7000;",
     '"loom_redis_cluster" directive cannot be used with "loom_redis"'),
    ("loom_redis_cluster 127.0.0.1:7000; loom_redis 127.0.0.1:6379;",
     '"loom_redis" directive cannot be used with "loom_redis_cluster"'),
    ("loom_redis_cluster 127.0.0.1:7000; loom_redis_sentinel 127.0.0.1:1 "
     "master=m;",
     '"loom_redis_sentinel" directive cannot be used with '
     '"loom_redis_cluster"'),
    ("loom_redis_cluster 127.0.0.1:7000; loom_redis_cluster 127.0.0.1:1;",
     '"loom_redis_cluster" directive is duplicate'),
    ("loom_redis_cluster 127.0.0.1:7000; loom_redis_db 1;",
     '"loom_redis_db" cannot be used with "loom_redis_cluster"'),
    ("loom_redis_cluster 127.0.0.1:99999;",
     'of the "loom_redis_cluster" directive'),
])
def test_configuration_errors(workdir, http, error):
    n = Nginx("%s/conf" % workdir, 0, redis_addr="", http=http)
    r = n.cmd("-t")
    assert r.returncode != 0
    assert error in r.stderr, r.stderr


def test_prefix_and_empty_map(cluster, make_cluster_nginx):
    """Another key prefix is used for every key and channel; nginx reads
    the map from whichever seed answers (the first is not listening)."""
    dead = "127.0.0.1:1"
    n = make_cluster_nginx(seeds="%s %s" % (dead, cluster.nodes[1].addr),
                           http='loom_redis_prefix "app:";')
    a, b = n.client(), n.client()
    t = spread(cluster, "pfx", 1)[0]
    register(a, t, {"n": None})
    subscribe(b, t)
    r = a.request({"id": "p", "action": "publish", "topic": t,
                   "data": {"n": 5}, "requireAck": True})
    assert r == answer("p", "publish"), r
    assert b.recv_json(timeout=10)["data"] == {"n": 5}
    m = cluster.master_of("app:{t:%s}" % t)
    assert m.client().exists("app:{t:%s}" % t) == 1
    other = "loom:{t:%s}" % t
    assert cluster.master_of(other).client().exists(other) == 0
    names = [x["name"] for x in a.request(
        {"id": "l", "action": "listTopics"})["data"]]
    assert names == [t], names


def test_client_ids_claimed_in_the_cluster(cluster, make_cluster_nginx):
    """loom_client_id_claim: the claim key P{c:ID} goes to the master of
    its slot like any key; an id held on one node is refused on another."""
    from wsclient import HandshakeError
    http = "loom_client_id_claim on;"
    a = make_cluster_nginx(http=http)
    b = make_cluster_nginx(http=http, seeds=cluster.seeds())
    ids = ["cid%d" % i for i in range(12)]
    owners = {cluster.master_of("loom:{c:%s}" % i).port for i in ids}
    assert len(owners) > 1
    held = [a.client(headers={"ClientId": i}) for i in ids]
    for i in ids:
        m = cluster.master_of("loom:{c:%s}" % i)
        assert m.client().get("loom:{c:%s}" % i) is not None
        with pytest.raises(HandshakeError) as e:
            b.client(headers={"ClientId": i})
        assert e.value.status == 409
    for c in held:
        c.close()
    wait_for(lambda: all(
        cluster.master_of("loom:{c:%s}" % i).client().exists(
            "loom:{c:%s}" % i) == 0 for i in ids),
        what="the claims deleted on close")
    c = b.client(headers={"ClientId": ids[0]})
    assert c.request({"id": "l", "action": "listTopics"})["code"] == 200
