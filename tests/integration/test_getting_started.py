"""docs/getting-started.md, "Adding it to an nginx you already run", done
as written.

The test makes a fake root in a temporary directory with Debian's layout
(etc/nginx with modules-enabled/, conf.d/, sites-enabled/; usr/share/nginx
as nginx's prefix with its modules link to usr/lib/nginx/modules), starts
nginx there with Debian's stock nginx.conf and a default site, then takes
each step's text from the document, maps absolute paths into the fake
root, and runs it: install the module, enable it, make a self-signed
certificate, add conf.d/loom.conf, `nginx -t && nginx -s reload`.  The
protocol smoke then runs over wss with the document's API key.  The
system's nginx, /etc/nginx and its service are never touched.
"""

import os
import re
import shutil
import signal
import ssl
import subprocess
import textwrap
import urllib.request

import pytest

from conftest import (MODULE, NGINX, NGINX_ENV, ROOT, free_port, pid_alive,
                      port_open, wait_for)
from loomsmoke import protocol_smoke
from wsclient import HandshakeError, WSClient

DOC = os.path.join(ROOT, "docs", "getting-started.md")
NCHAN = "/usr/lib/nginx/modules/ngx_nchan_module.so"
NCHAN_SNIPPET = "/usr/share/nginx/modules-available/mod-nchan.conf"

BAD = re.compile(r"\[(alert|crit|emerg)\]|signal 11|exited on signal")

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
        env = dict(os.environ)
        env.update(NGINX_ENV)
        prelude = "nginx() { %s \"$@\"; }\nset -e\n" % " ".join(
            "'%s'" % a for a in self.nginx_args())
        return subprocess.run(["bash", "-c", prelude + script], cwd=ROOT,
                              env=env, capture_output=True, text=True)

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

    def log(self):
        with open(self.error_log, errors="replace") as f:
            return f.read()


def https_get(port, path):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen("https://127.0.0.1:%d%s" % (port, path),
                                context=ctx, timeout=5) as r:
        return r.status, r.read()


def redis_links_up(port):
    import json
    try:
        status, body = https_get(port, "/loom/status")
    except OSError:
        return False
    workers = json.loads(body)["redis"]["workers"]
    return workers and all(w["redis_command"] == "up"
                           and w["redis_subscriber"] == "up"
                           for w in workers)


@pytest.mark.parametrize("neighbours", ["alone", "with_nchan"])
def test_getting_started_steps(workdir, redis_server, neighbours):
    if neighbours == "with_nchan" and not os.path.exists(NCHAN):
        pytest.skip("libnginx-mod-nchan is not installed")
    with open(DOC) as f:
        doc = f.read()
    root = FakeRoot(os.path.join(workdir, "root"), redis_server.port)

    # the nginx that already runs: stock configuration, one static site
    root.write("/etc/nginx/nginx.conf", STOCK_NGINX_CONF)
    if os.path.exists("/etc/nginx/mime.types"):
        shutil.copy("/etc/nginx/mime.types", root.at("/etc/nginx/"))
    else:
        root.write("/etc/nginx/mime.types", "types { text/html html; }\n")
    root.write("/etc/nginx/sites-enabled/default",
               DEFAULT_SITE % root.site_port)
    if neighbours == "with_nchan":
        # as libnginx-mod-nchan installs itself
        os.symlink(NCHAN, root.at("/usr/lib/nginx/modules/"
                                  "ngx_nchan_module.so"))
        shutil.copy(NCHAN_SNIPPET,
                    root.at("/usr/share/nginx/modules-available/"))
        os.symlink(root.at("/usr/share/nginx/modules-available/"
                           "mod-nchan.conf"),
                   root.at("/etc/nginx/modules-enabled/50-mod-nchan.conf"))

    r = root.sh("nginx")
    assert r.returncode == 0, r.stderr
    try:
        wait_for(lambda: port_open(root.site_port), what="the site")
        old_workers = root.workers()

        # 1. install the module
        step = doc_block(doc, "copy it where Debian keeps nginx modules:")
        step = step.replace("build/default/ngx_http_loom_module.so", MODULE)
        r = root.sh(root.map(step))
        assert r.returncode == 0, r.stderr
        assert os.path.exists(root.at("/usr/lib/nginx/modules/"
                                      "ngx_http_loom_module.so"))

        # 2. enable it
        root.write("/etc/nginx/modules-enabled/50-mod-http-loom.conf",
                   doc_block(doc, "`/etc/nginx/modules-enabled/"
                                  "50-mod-http-loom.conf`:"))

        # 3. a self-signed certificate
        r = root.sh(root.map(doc_block(doc, "self-signed one does")))
        assert r.returncode == 0, r.stderr

        # 4. conf.d/loom.conf, on this test's Redis and port
        conf = doc_block(doc, "`/etc/nginx/conf.d/loom.conf`")
        assert "127.0.0.1:6379;" in conf and "listen 443 ssl;" in conf
        conf = conf.replace("127.0.0.1:6379;",
                            "127.0.0.1:%d;" % redis_server.port)
        conf = conf.replace("listen 443 ssl;",
                            "listen 127.0.0.1:%d ssl;" % root.tls_port)
        root.write("/etc/nginx/conf.d/loom.conf", conf)

        # 5. nginx -t && nginx -s reload
        step = doc_block(doc, "Check the configuration and reload")
        assert step.startswith("nginx -t"), step
        r = root.sh(step)
        assert r.returncode == 0, r.stderr
        assert "test is successful" in r.stderr, r.stderr

        wait_for(lambda: port_open(root.tls_port), what="the wss port")
        wait_for(lambda: not (root.workers() & old_workers),
                 what="the old workers to leave")
        wait_for(lambda: redis_links_up(root.tls_port), timeout=15,
                 what="loom redis links")

        # the certificate served is the one step 3 made
        served = ssl.get_server_certificate(("127.0.0.1", root.tls_port))
        with open(root.at("/etc/ssl/certs/loom.pem")) as f:
            made = f.read()
        assert ssl.PEM_cert_to_DER_cert(served) == \
            ssl.PEM_cert_to_DER_cert(made)

        # the API key of the document is required, and enough
        key = re.search(r'loom_api_key "([^"]+)";', conf).group(1)
        c = WSClient("127.0.0.1", root.tls_port, tls=True, connect=False)
        with pytest.raises(HandshakeError) as e:
            c.handshake({})
        c.abort()
        assert e.value.status == 401
        protocol_smoke("127.0.0.1", root.tls_port, tls=True,
                       headers={"Authorization": key})

        # the site that was there still answers
        with urllib.request.urlopen("http://127.0.0.1:%d/"
                                    % root.site_port, timeout=5) as resp:
            assert resp.read() == b"existing site\n"
    finally:
        master = root.pid()
        if master and pid_alive(master):
            os.kill(master, signal.SIGQUIT)
            wait_for(lambda: not pid_alive(master), timeout=20,
                     what="nginx to quit")
        bad = [l for l in root.log().splitlines() if BAD.search(l)]
        assert bad == [], "\n".join(bad[:20])
