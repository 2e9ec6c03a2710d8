"""Debian's nginx layout in a temporary directory, for the tests that
follow the documents into a stock installation: a fake root with
etc/nginx (modules-enabled/, conf.d/, sites-enabled/), usr/share/nginx as
nginx's prefix with its modules link to usr/lib/nginx/modules, and paths of
the documents mapped into it.  Nothing outside the fake root is written."""

import json
import os
import re
import shlex
import signal
import ssl
import subprocess
import textwrap
import urllib.request

from conftest import (BAD_LOG, NGINX, NGINX_ENV, ROOT, free_port, pid_alive,
                      wait_for)

DOC = os.path.join(ROOT, "docs", "getting-started.md")

# conftest's bad lines (sanitizer reports included), and any crash
BAD = re.compile(BAD_LOG.pattern + r"|signal 11|exited on signal")

# Debian 12's /etc/nginx/nginx.conf without its comments; the temp paths
# are the only addition, so that nothing is written to /var/lib/nginx
STOCK_NGINX_CONF = """\
user www-data;
worker_processes auto;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log;
include /etc/nginx/modules-enabled/*.conf;

events {
\tworker_connections 768;
}

http {
\tsendfile on;
\ttcp_nopush on;
\ttypes_hash_max_size 2048;

\tinclude /etc/nginx/mime.types;
\tdefault_type application/octet-stream;

\tssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
\tssl_prefer_server_ciphers on;

\taccess_log /var/log/nginx/access.log;

\tgzip on;

\tclient_body_temp_path /var/lib/nginx/body;
\tproxy_temp_path /var/lib/nginx/proxy;
\tfastcgi_temp_path /var/lib/nginx/fastcgi;
\tuwsgi_temp_path /var/lib/nginx/uwsgi;
\tscgi_temp_path /var/lib/nginx/scgi;

\tinclude /etc/nginx/conf.d/*.conf;
\tinclude /etc/nginx/sites-enabled/*;
}
"""

DEFAULT_SITE = """\
server {
\tlisten 127.0.0.1:%d default_server;
\tlocation / {
\t\treturn 200 "existing site\\n";
\t}
}
"""


def doc_block(doc, marker):
    """The first indented code block after the line holding marker."""
    lines = doc[doc.index(marker):].split("\n")[1:]
    i = 0
    while not lines[i].startswith("       "):
        assert not lines[i].startswith(("## ", "1.", "2.", "3.", "4.",
                                        "5.")), "no block after " + marker
        i += 1
    block = []
    for line in lines[i:]:
        if line.strip() and not line.startswith("       "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block)).strip("\n") + "\n"


class FakeRoot:
    """Debian's nginx layout under a temporary directory."""

    def __init__(self, path, redis_port):
        self.path = path
        self.redis_port = redis_port
        self.site_port = free_port()
        self.tls_port = free_port()
        for d in ("etc/nginx/modules-enabled", "etc/nginx/conf.d",
                  "etc/nginx/sites-enabled", "usr/share/nginx",
                  "usr/share/nginx/modules-available",
                  "usr/lib/nginx/modules", "etc/ssl/certs",
                  "etc/ssl/private", "var/log/nginx", "var/lib/nginx",
                  "run"):
            os.makedirs(self.at("/" + d), exist_ok=True)
        os.symlink("../../lib/nginx/modules",
                   self.at("/usr/share/nginx/modules"))
        self.conf = self.at("/etc/nginx/nginx.conf")
        self.error_log = self.at("/var/log/nginx/error.log")

    def at(self, path):
        return self.path + path

    def map(self, text):
        """The text with absolute paths moved into the fake root."""
        text = re.sub(r"(?<![\w.])/(etc|usr|var|run)/",
                      lambda m: self.path + m.group(0), text)
        return text

    def write(self, path, text):
        with open(self.at(path), "w") as f:
            f.write(self.map(text))

    def nginx_args(self):
        return [NGINX, "-p", self.at("/usr/share/nginx/"), "-c", self.conf,
                "-e", self.error_log]

    def sh(self, script):
        """Runs the document's shell text with nginx and paths mapped."""
        # only nginx gets NGINX_ENV (a sanitizer's LD_PRELOAD); nginx
        # does not free everything in `nginx -t` or `-s`, as in conftest,
        # nor, with this stock configuration, in the processes its master
        # spawns (the reports name only nginx's own frames): the module's
        # own leaks are checked by every other test
        quick = dict(NGINX_ENV)
        if "ASAN_OPTIONS" in quick:
            quick["ASAN_OPTIONS"] += ":detect_leaks=0"
        run = self.env_args(quick)
        prelude = ("nginx() {\n"
                   "    if [ $# = 0 ]; then %s; else %s \"$@\"; fi\n"
                   "}\nset -e\n" % (run, self.env_args(quick)))
        return subprocess.run(["bash", "-c", prelude + script], cwd=ROOT,
                              capture_output=True, text=True)

    def env_args(self, env):
        args = ["env"] + ["%s=%s" % kv for kv in env.items()] \
            + self.nginx_args()
        return " ".join(shlex.quote(a) for a in args)

    def pid(self):
        try:
            with open(self.at("/run/nginx.pid")) as f:
                return int(f.read())
        except (OSError, ValueError):
            return None

    def workers(self):
        r = subprocess.run(["ps", "-o", "pid=,stat=", "--ppid",
                            str(self.pid())], capture_output=True, text=True)
        return {int(l.split()[0]) for l in r.stdout.splitlines()
                if l.strip() and not l.split()[1].startswith("Z")}

    def start(self):
        r = self.sh("nginx")
        assert r.returncode == 0, r.stderr
        wait_for(self.pid, what="nginx pid file")

    def stop(self):
        master = self.pid()
        if master and pid_alive(master):
            os.kill(master, signal.SIGQUIT)
            wait_for(lambda: not pid_alive(master), timeout=20,
                     what="nginx to quit")

    def log(self):
        try:
            with open(self.error_log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def bad_log_lines(self):
        return [l for l in self.log().splitlines() if BAD.search(l)][:20]


def https_get(port, path):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen("https://127.0.0.1:%d%s" % (port, path),
                                context=ctx, timeout=5) as r:
        return r.status, r.read()


def redis_links_up(port):
    try:
        status, body = https_get(port, "/loom/status")
    except OSError:
        return False
    workers = json.loads(body)["redis"]["workers"]
    return workers and all(w["redis_command"] == "up"
                           and w["redis_subscriber"] == "up"
                           for w in workers)
