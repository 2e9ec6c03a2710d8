"""Redis Sentinel: 1 master, 2 replicas, 3 sentinels, all on loopback.

nginx is given only the sentinels (loom_redis_sentinel); each worker asks
them where the master is, verifies with ROLE that what it reached is the
master, and follows +switch-master.  The master is killed with SIGKILL
under a live subscription: the sentinels promote a replica, the workers
move to it by themselves, and the same client connections go on
publishing and receiving without reconnecting.
"""

import os
import subprocess

import pytest

from conftest import REDIS, Redis, free_port, register, subscribe, wait_for

MASTER = "loommaster"


class Sentinel:
    def __init__(self, workdir, master_port):
        self.dir = workdir
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.conf = os.path.join(self.dir, "sentinel.conf")
        with open(self.conf, "w") as f:
            f.write("port %d\n"
                    "bind 127.0.0.1\n"
                    "dir %s\n"
                    "logfile %s\n"
                    "sentinel monitor %s 127.0.0.1 %d 2\n"
                    "sentinel down-after-milliseconds %s 1000\n"
                    "sentinel failover-timeout %s 10000\n"
                    "sentinel parallel-syncs %s 1\n"
                    % (self.port, self.dir,
                       os.path.join(self.dir, "sentinel.log"),
                       MASTER, master_port, MASTER, MASTER, MASTER))
        self.proc = subprocess.Popen([REDIS, self.conf, "--sentinel"],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def client(self):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def master(self):
        try:
            addr = self.client().execute_command(
                "SENTINEL", "get-master-addr-by-name", MASTER)
        except Exception:
            return None
        return int(addr[1]) if addr else None

    def replicas(self):
        try:
            return len(self.client().execute_command(
                "SENTINEL", "replicas", MASTER))
        except Exception:
            return 0

    def others(self):
        try:
            return len(self.client().execute_command(
                "SENTINEL", "sentinels", MASTER))
        except Exception:
            return 0

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def sentinel_set(workdir):
    master = Redis(os.path.join(workdir, "master")).start()
    replicas = [Redis(os.path.join(workdir, "replica%d" % i),
                      args=["--replicaof", "127.0.0.1",
                            str(master.port)]).start()
                for i in range(2)]
    sentinels = [Sentinel(os.path.join(workdir, "sentinel%d" % i),
                          master.port) for i in range(3)]
    try:
        for s in sentinels:
            wait_for(lambda: s.master() == master.port and s.replicas() == 2
                     and s.others() == 2, timeout=30,
                     what="the sentinels to see the set")
        yield master, replicas, sentinels
    finally:
        for s in sentinels:
            s.kill()
        for r in [master] + replicas:
            r.kill()


def test_failover_is_followed(sentinel_set, make_nginx):
    master, replicas, sentinels = sentinel_set
    n = make_nginx(
        workers=2,
        redis_addr="",
        http="loom_redis_sentinel %s master=%s; "
             "loom_redis_timeout 1s; loom_redis_ping_interval 500ms;"
             % (" ".join("127.0.0.1:%d" % s.port for s in sentinels),
                MASTER),
        allowed_log=r"no reply for|connect\(\) failed|connection closed"
                    r"|recv\(\) failed|master moved|not the master|"
                    r"READONLY|storage")
    assert n.status()["redis"]["address"] == "sentinel master " + MASTER

    pub = n.client()
    sub = n.client()
    register(pub, "ha", {"v": None})
    subscribe(sub, "ha")
    pub.send_json({"id": "1", "action": "publish", "topic": "ha",
                   "data": {"v": 1}, "requireAck": True})
    assert pub.recv_json()["code"] == 200
    assert sub.recv_json()["data"] == {"v": 1}

    # the replicas have everything before the master goes
    assert master.client().execute_command("WAIT", 2, 5000) == 2
    old = master.port
    master.kill()

    wait_for(lambda: sentinels[0].master() not in (None, old), timeout=60,
             what="the sentinels to promote a replica")
    new = sentinels[0].master()
    wait_for(n.redis_up, timeout=30, what="the workers to follow")
    assert "moved master \"%s\" to 127.0.0.1:%d" % (MASTER, new) in n.log()

    # the same connections, no reconnect: publishing and delivery go on
    def published():
        pub.send_json({"id": "2", "action": "publish", "topic": "ha",
                       "data": {"v": 2}, "requireAck": True})
        return pub.recv_json()["code"] == 200

    wait_for(published, timeout=10, what="a publish on the new master")
    d = sub.recv_json(timeout=10)
    assert d["data"] == {"v": 2}
    r = pub.request({"id": "3", "action": "get", "topic": "ha"})
    assert r["data"] == {"v": 2}
    pub.close()
    sub.close()
