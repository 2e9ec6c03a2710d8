"""Fixtures: a real redis-server and a real nginx loading the module.

Each runs in its own temporary directory on free ports.  At teardown nginx
is stopped and its error log must hold no [alert], [crit] or [emerg] line
(a test that provokes one on purpose says which), and every process the
test started is gone.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

from wsclient import WSClient

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODULE = os.environ.get(
    "LOOM_MODULE",
    os.path.join(ROOT, "build", "default", "ngx_http_loom_module.so"))
NGINX = os.environ.get("LOOM_NGINX", "/usr/sbin/nginx")
REDIS = os.environ.get("LOOM_REDIS_SERVER", "/usr/bin/redis-server")

# extra environment for nginx, e.g. LD_PRELOAD of a sanitizer runtime
NGINX_ENV = json.loads(os.environ.get("LOOM_NGINX_ENV", "{}"))

BAD_LOG = re.compile(r"\[(alert|crit|emerg)\]|AddressSanitizer|"
                     r"runtime error:|LeakSanitizer")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: starts a Redis Cluster (several seconds)")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(predicate, timeout=10.0, what="condition"):
    """Polls predicate until it is true: waiting on an event, with a bound."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def port_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child counts as gone
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


class Redis:
    def __init__(self, workdir, password=None, appendonly=True, args=(),
                 host="127.0.0.1"):
        self.dir = workdir
        self.host = host
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.password = password
        self.appendonly = appendonly
        self.args = list(args)
        self.proc = None

    def start(self):
        args = [REDIS, "--port", str(self.port), "--bind", self.host,
                "--dir", self.dir, "--save", "",
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "always",
                "--logfile", os.path.join(self.dir, "redis.log")]
        if self.password:
            args += ["--requirepass", self.password]
        args += self.args
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for(lambda: self.ping(), what="redis to start")
        return self

    def ping(self):
        try:
            return self.client().ping()
        except Exception:
            return False

    def client(self):
        import redis
        return redis.Redis(host=self.host, port=self.port,
                           password=self.password, socket_timeout=5)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def restart(self):
        self.stop()
        return self.start()


NGINX_CONF = """
load_module {module};
worker_processes {workers};
error_log {prefix}/error.log {log_level};
pid {prefix}/nginx.pid;
{main}
events {{
    worker_connections {connections};
}}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    {redis_directive}
    {http}
    server {{
        listen 127.0.0.1:{port}{reuseport};
        {listen_tls}
        {server}
        location = /ws {{
            loom;
            {location}
        }}
        location = /status {{
            loom_status;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, workdir, redis_port, workers=1, http="", server="",
                 location="", main="", tls=False, log_level="info",
                 connections=1024, allowed_log=None, reuseport=False,
                 redis_addr=None):
        self.prefix = workdir
        os.makedirs(os.path.join(self.prefix, "tmp"), exist_ok=True)
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.redis_port = redis_port
        self.workers = workers
        self.allowed_log = allowed_log
        listen_tls = ""
        if tls:
            cert, key = make_cert(self.prefix)
            listen_tls = ("listen 127.0.0.1:%d ssl;\n"
                          "        ssl_certificate %s;\n"
                          "        ssl_certificate_key %s;"
                          % (self.tls_port, cert, key))
        # a binary upgrade starts nginx anew with only the "env" variables
        for var in NGINX_ENV:
            main += "\nenv %s;" % var
        self.conf = os.path.join(self.prefix, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(NGINX_CONF.format(
                module=MODULE, workers=workers, prefix=self.prefix,
                log_level=log_level, main=main, connections=connections,
                redis_directive=(
                    "" if redis_addr == "" else "loom_redis %s;"
                    % (redis_addr or "127.0.0.1:%d" % redis_port)),
                http=http, port=self.port,
                listen_tls=listen_tls, server=server, location=location,
                reuseport=" reuseport" if reuseport else ""))
        self.master = None
        self.log_checked = 0

    def cmd(self, *args):
        env = dict(os.environ)
        env.update(NGINX_ENV)
        if "-s" in args and "ASAN_OPTIONS" in env:
            # nginx itself does not free everything in a signal process
            env["ASAN_OPTIONS"] += ":detect_leaks=0"
        return subprocess.run([NGINX, "-p", self.prefix, "-c", self.conf,
                               "-e", os.path.join(self.prefix, "error.log")]
                              + list(args), env=env, capture_output=True,
                              text=True)

    def start(self, wait_redis=True):
        r = self.cmd()
        assert r.returncode == 0, r.stderr
        self.master = wait_for(self.read_pid, what="nginx pid file")
        wait_for(lambda: port_open(self.port), what="nginx to listen")
        wait_for(lambda: len(self.worker_pids()) == self.workers,
                 what="nginx workers")
        if wait_redis:
            wait_for(self.redis_up, what="loom redis links")
        return self

    def read_pid(self):
        try:
            with open(os.path.join(self.prefix, "nginx.pid")) as f:
                return int(f.read())
        except (OSError, ValueError):
            return None

    def worker_pids(self):
        return self.worker_pids_of(self.master)

    def worker_pids_of(self, master):
        if not master:
            return []
        r = subprocess.run(["ps", "-o", "pid=,stat=", "--ppid",
                            str(master)], capture_output=True,
                           text=True)
        pids = []
        for line in r.stdout.split("\n"):
            if line.strip():
                pid, stat = line.split()
                if not stat.startswith("Z"):
                    pids.append(int(pid))
        return sorted(pids)

    def status(self):
        with urllib.request.urlopen(
                "http://127.0.0.1:%d/status" % self.port, timeout=5) as r:
            return json.loads(r.read())

    def redis_up(self):
        try:
            st = self.status()
        except OSError:
            return False
        ws = st["redis"]["workers"]
        return len(ws) >= self.workers and all(
            w["redis_command"] == "up" and w["redis_subscriber"] == "up"
            for w in ws)

    def client(self, headers=None, tls=False, **kw):
        port = self.tls_port if tls else self.port
        return WSClient("127.0.0.1", port, headers=headers, tls=tls, **kw)

    def reload(self):
        old = set(self.worker_pids())
        r = self.cmd("-s", "reload")
        assert r.returncode == 0, r.stderr
        wait_for(lambda: len(set(self.worker_pids()) - old) == self.workers,
                 what="new workers after reload")

    def stop(self, timeout=20):
        if not self.master or not pid_alive(self.master):
            return
        os.kill(self.master, signal.SIGQUIT)
        wait_for(lambda: not pid_alive(self.master), timeout=timeout,
                 what="nginx to quit")

    def kill(self):
        if self.master and pid_alive(self.master):
            pids = self.worker_pids()
            os.kill(self.master, signal.SIGKILL)
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def log(self):
        with open(os.path.join(self.prefix, "error.log"),
                  errors="replace") as f:
            return f.read()

    def bad_log_lines(self):
        bad = []
        for line in self.log().splitlines():
            if BAD_LOG.search(line):
                if self.allowed_log and re.search(self.allowed_log, line):
                    continue
                bad.append(line)
        return bad


def make_cert(prefix):
    cert = os.path.join(prefix, "cert.pem")
    key = os.path.join(prefix, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                        "-subj", "/CN=localhost"], check=True,
                       capture_output=True)
    return cert, key


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="loom-test-")
    yield d
    if os.environ.get("LOOM_KEEP_TEMP"):
        print("kept", d)
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def redis_server(workdir):
    r = Redis(os.path.join(workdir, "redis")).start()
    yield r
    r.kill()


def stop_all(made):
    """Stops every nginx a factory made; any that would not stop, or whose
    error log has a bad line, fails the test."""
    failures = []
    for n in made:
        try:
            n.stop()
        except AssertionError as e:
            failures.append(str(e))
            n.kill()
        bad = n.bad_log_lines()
        if bad:
            failures.append("%s: %s" % (n.prefix, "\n".join(bad[:20])))
    assert not failures, "\n".join(failures)


@pytest.fixture
def make_nginx(workdir, redis_server):
    """nginx factory: make_nginx(workers=2, location="...")."""
    made = []

    def make(redis_port=None, name=None, **kw):
        d = os.path.join(workdir, name or "nginx%d" % len(made))
        n = Nginx(d, redis_port or redis_server.port, **kw)
        made.append(n)
        return n.start()

    yield make
    stop_all(made)


@pytest.fixture
def nginx(make_nginx):
    return make_nginx()


def register(c, topic, schema, rid="reg"):
    r = c.request({"id": rid, "action": "registerTopic", "topic": topic,
                   "data": schema, "requireAck": True})
    assert r["code"] == 200, r
    return r


def subscribe(c, topic, rid="sub"):
    r = c.request({"id": rid, "action": "subscribe", "topic": topic,
                   "requireAck": True})
    assert r["code"] == 200, r
    return r


def answer(rid, action, code=200, message=None, **members):
    """A response as the server sends it; data=... adds "data"."""
    r = {"id": rid, "action": action, "code": code, "type": "response"}
    if message is not None:
        r["message"] = message
    r.update(members)
    return r


def worker_connections(n):
    return {w["pid"]: w["connections"]
            for w in n.status()["redis"]["workers"]}


def clients_on_workers(n, per_worker=1, headers=None, keep_all=False):
    """Opens clients one by one until each worker holds per_worker of them.

    The worker a client landed on is the one whose connection count on the
    status page went up.  Returns {pid: [clients]}; clients beyond
    per_worker are closed, or, with keep_all, kept in the lists too.
    headers, if given, makes the headers of the i-th client.
    """
    pids = n.worker_pids()
    assert len(pids) == n.workers
    got = {pid: [] for pid in pids}
    spare = []
    for i in range(200):
        if all(len(v) >= per_worker for v in got.values()):
            break
        before = worker_connections(n)
        c = n.client(headers=headers(i) if headers else None)
        after = wait_for(lambda: (lambda a: a if sum(a.values())
                                  == sum(before.values()) + 1 else None)(
            worker_connections(n)), what="the connection to be counted")
        pid = [p for p in after if after[p] == before.get(p, 0) + 1]
        assert len(pid) == 1, (before, after)
        if len(got[pid[0]]) < per_worker or keep_all:
            got[pid[0]].append(c)
        else:
            spare.append(c)
    else:
        raise AssertionError("no clients on every worker: %r"
                             % {p: len(v) for p, v in got.items()})
    for c in spare:
        c.close()
    return got
