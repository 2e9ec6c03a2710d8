"""loom_redis_wait: acks only for writes that replicas confirmed.

A master with one replica.  With `loom_redis_wait 1 2s` every change
(registerTopic, updateSchema, unregisterTopic, publish) is followed by
WAIT 1 2000 on the same link, and its answer goes out only once WAIT
counted the replica.  A replica that stops (SIGSTOP) makes the answers
errors that say what happened: the write is on the master, not confirmed.
"""

import os
import signal

import pytest

from conftest import Redis, register, subscribe, wait_for

def replica_online(master):
    info = master.client().info("replication")
    return (info.get("connected_slaves") == 1
            and info["slave0"]["state"] == "online"
            and master.client().execute_command("WAIT", 1, 1000) == 1)


@pytest.fixture
def replicated(workdir, make_nginx):
    """A master, its replica, and nginx on the master with WAIT 1 2s."""
    master = Redis(os.path.join(workdir, "master")).start()
    replica = Redis(os.path.join(workdir, "replica"),
                    args=["--replicaof", "127.0.0.1",
                          str(master.port)]).start()
    try:
        wait_for(lambda: replica_online(master), what="the replica")
        n = make_nginx(redis_port=master.port,
                       http="loom_redis_wait 1 2s;")
        yield master, replica, n
    finally:
        replica.kill()
        master.kill()


UNCONFIRMED = ("storage error: written on the master, not confirmed by 1 "
               "replicas within 2000 ms")


def test_acks_wait_for_the_replica(replicated):
    master, replica, n = replicated
    c = n.client()
    register(c, "durable", {"v": None})
    subscribe(c, "durable")

    r = c.request({"id": "1", "action": "publish", "topic": "durable",
                   "data": {"v": 1}, "requireAck": True})
    assert r["data"] == {"v": 1}
    assert c.recv_json()["code"] == 200
    # acked: the replica has it
    assert replica.client().hget("loom:{t:durable}", "value") \
        == b'{"v": 1}'

    os.kill(replica.proc.pid, signal.SIGSTOP)
    try:
        c.send_json({"id": "2", "action": "publish", "topic": "durable",
                     "data": {"v": 2}, "requireAck": True})
        assert c.recv_json()["data"] == {"v": 2}
        r = c.recv_json(timeout=5)
        assert (r["id"], r["code"], r["message"]) == (
            "2", 500, UNCONFIRMED)
        # what the error says: the master has it
        r = c.request({"id": "g", "action": "get", "topic": "durable"})
        assert r["data"] == {"v": 2}
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)

    r = c.request({"id": "3", "action": "publish", "topic": "durable",
                   "data": {"v": 3}, "requireAck": True})
    assert r["data"] == {"v": 3}
    assert c.recv_json()["code"] == 200

    # sendWithoutSave stores nothing: it does not wait
    os.kill(replica.proc.pid, signal.SIGSTOP)
    try:
        c.send_json({"id": "4", "action": "sendWithoutSave",
                     "topic": "durable", "data": {"v": 4},
                     "requireAck": True})
        assert c.recv_json()["data"] == {"v": 4}
        r = c.recv_json(timeout=0.4)
        assert (r["id"], r["code"]) == ("4", 200)
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)
    c.close()


def test_scripts_flushed_with_wait(replicated):
    # a NOSCRIPT retry keeps its place before its own WAIT
    master, replica, n = replicated
    c = n.client()
    register(c, "flushed", {"v": None})
    master.client().script_flush()
    for i in range(3):
        c.send_json({"id": str(i), "action": "publish",
                     "topic": "flushed", "data": {"v": i},
                     "requireAck": True})
    for i in range(3):
        r = c.recv_json()
        assert (r["id"], r["code"]) == (str(i), 200)
    assert replica.client().hget("loom:{t:flushed}", "value") \
        == b'{"v": 2}'
    c.close()
