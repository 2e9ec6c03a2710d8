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
import ssl
import urllib.request

import pytest

from conftest import MODULE, port_open, wait_for
from debroot import (DEFAULT_SITE, DOC, STOCK_NGINX_CONF, FakeRoot,
                     doc_block, redis_links_up)
from loomsmoke import protocol_smoke
from wsclient import HandshakeError, WSClient

NCHAN = "/usr/lib/nginx/modules/ngx_nchan_module.so"
NCHAN_SNIPPET = "/usr/share/nginx/modules-available/mod-nchan.conf"


@pytest.mark.parametrize("neighbours", ["alone", "with_nchan"])
def test_getting_started_steps(workdir, redis_server, neighbours):
    if neighbours == "with_nchan" and not os.path.exists(NCHAN):
        pytest.skip("libnginx-mod-nchan is not installed")
    with open(DOC) as f:
        doc = f.read()
    root = FakeRoot(os.path.join(workdir, "root"), redis_server.port)

    # the nginx that already runs: stock configuration, one site
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

    root.start()
    try:
        wait_for(lambda: port_open(root.site_port), what="the site")
        old_workers = root.workers()

        # 1. install the module
        step = doc_block(doc, "keeps nginx modules:")
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
        root.stop()
        assert root.bad_log_lines() == []
