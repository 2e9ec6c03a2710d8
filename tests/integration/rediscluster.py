"""A local Redis Cluster for the tests: masters and replicas on free ports.

    c = Cluster(workdir, masters=3, replicas=1).start()
    c.seeds()                   # "127.0.0.1:p1 127.0.0.1:p2 ..."
    c.master_of(key)            # the node that owns the key's slot now
    c.kill(node)                # SIGKILL, as a crash
    c.wait_ok()                 # every live node says cluster_state:ok
    c.stop()

Each node runs in its own directory with --cluster-enabled yes and a short
--cluster-node-timeout, so that a replica takes over within seconds.
"""

import os
import random
import shutil
import socket
import subprocess
import tempfile

from conftest import REDIS, wait_for

REDIS_CLI = os.environ.get("LOOM_REDIS_CLI", "/usr/bin/redis-cli")


def free_cluster_port():
    """A free port p with p + 10000 free too (the cluster bus), at most
    55535 as Redis requires."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randint(20000, 45000)
        socks = []
        try:
            for p in (port, port + 10000):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free port pair for a cluster node")


class Node:
    def __init__(self, workdir, port, node_timeout):
        self.dir = workdir
        self.port = port
        os.makedirs(self.dir, exist_ok=True)
        self.args = [REDIS, "--port", str(port), "--bind", "127.0.0.1",
                     "--dir", self.dir, "--save", "", "--appendonly", "no",
                     "--cluster-enabled", "yes",
                     "--cluster-config-file",
                     os.path.join(self.dir, "nodes.conf"),
                     "--cluster-node-timeout", str(node_timeout),
                     # a replica may always take over, however busy the
                     # machine was
                     "--cluster-replica-validity-factor", "0",
                     "--logfile", os.path.join(self.dir, "redis.log")]
        self.proc = None

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def client(self):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port,
                           socket_timeout=5)

    def ping(self):
        try:
            return self.client().ping()
        except Exception:
            return False

    def info(self, section):
        return self.client().info(section)

    def cluster_ok(self):
        try:
            text = self.client().execute_command("CLUSTER", "INFO")
        except Exception:
            return False
        if isinstance(text, bytes):
            text = text.decode()
        return "cluster_state:ok" in text

    def role(self):
        try:
            return self.client().execute_command("ROLE")[0].decode()
        except Exception:
            return None

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()


class Cluster:
    def __init__(self, workdir=None, masters=3, replicas=1,
                 node_timeout=1000):
        self.own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="loom-cluster-")
        self.nodes = [Node(os.path.join(self.dir, "node%d" % i),
                           free_cluster_port(), node_timeout)
                      for i in range(masters * (1 + replicas))]
        self.masters = masters
        self.replicas = replicas

    def start(self):
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            wait_for(n.ping, what="redis cluster node %s" % n.addr)
        r = subprocess.run(
            [REDIS_CLI, "--cluster", "create"]
            + [n.addr for n in self.nodes]
            + ["--cluster-replicas", str(self.replicas), "--cluster-yes"],
            capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        self.wait_ok()
        # every replica has its master's link up: a failover can happen
        wait_for(lambda: all(
            n.info("replication").get("master_link_status") == "up"
            for n in self.nodes if n.role() == "slave"),
            timeout=30, what="replicas in sync")
        return self

    def live(self):
        return [n for n in self.nodes if n.alive()]

    def wait_ok(self, timeout=30):
        wait_for(lambda: all(n.cluster_ok() for n in self.live())
                 and self.slots_covered(), timeout=timeout,
                 what="cluster_state:ok on every node")

    def slots_covered(self):
        try:
            slots = self.live()[0].client().execute_command(
                "CLUSTER", "SLOTS")
        except Exception:
            return False
        covered = sum(int(r[1]) - int(r[0]) + 1 for r in slots)
        return covered == 16384 and all(
            any(n.port == int(r[2][1]) and n.alive() for n in self.nodes)
            for r in slots)

    def seeds(self):
        return " ".join(n.addr for n in self.nodes)

    def keyslot(self, key):
        return int(self.live()[0].client().execute_command(
            "CLUSTER", "KEYSLOT", key))

    def owner_port(self, slot):
        for r in self.live()[0].client().execute_command("CLUSTER", "SLOTS"):
            if int(r[0]) <= slot <= int(r[1]):
                return int(r[2][1])
        return None

    def node(self, port):
        return [n for n in self.nodes if n.port == port][0]

    def master_of(self, key):
        return self.node(self.owner_port(self.keyslot(key)))

    def node_id(self, node):
        return node.client().execute_command("CLUSTER", "MYID").decode()

    def has_replica(self, node):
        """The node is a master with a replica online."""
        try:
            info = node.info("replication")
        except Exception:
            return False
        return info.get("role") == "master" and any(
            isinstance(v, dict) and v.get("state") == "online"
            for k, v in info.items() if k.startswith("slave"))

    def master_nodes(self):
        return [n for n in self.live() if n.role() == "master"]

    def kill(self, node):
        node.kill()

    def stop(self):
        for n in self.nodes:
            n.kill()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
