"""The Debian package (`make deb`): built from the tree, checked with
dpkg-deb, extracted into an empty root, and its module loaded by nginx
from there.

The package is checked with dpkg-deb, not installed: its maintainer
scripts are dh_nginx's, and nothing here writes to the system's nginx.
"""

import gzip
import os
import re
import subprocess

import pytest

from conftest import ROOT, port_open, wait_for
from debroot import DOC, STOCK_NGINX_CONF, FakeRoot, doc_block, \
    redis_links_up
from loomsmoke import protocol_smoke

PKG = "libnginx-mod-http-loom"
HEADER = os.path.join(ROOT, "ngx_loom_module", "ngx_http_loom_module.h")
ABI_VARS = "/usr/share/nginx/src/debian/libnginx-mod.abisubstvars"
EXAMPLE = os.path.join(ROOT, "debian", "examples", "loom.conf")

MODULE_SO = "/usr/lib/nginx/modules/ngx_http_loom_module.so"
SNIPPET = "/usr/share/nginx/modules-available/mod-http-loom.conf"
DOCDIR = "/usr/share/doc/%s/" % PKG


def module_version():
    with open(HEADER) as f:
        m = re.search(r'#define NGX_HTTP_LOOM_VERSION\s+"([^"]+)"', f.read())
    return m.group(1)


def nginx_abi():
    with open(ABI_VARS) as f:
        return re.search(r"^nginx:abi=(\S+)$", f.read(), re.M).group(1)


@pytest.fixture(scope="module")
def deb():
    """Builds the package once for this file's tests."""
    r = subprocess.run([os.path.join(ROOT, "scripts", "deb.sh")],
                       cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    path = os.path.join(ROOT, "build", "deb", "%s_%s_amd64.deb"
                        % (PKG, module_version()))
    assert os.path.isfile(path), r.stdout + r.stderr
    return path


def dpkg_deb(*args):
    r = subprocess.run(["dpkg-deb"] + list(args), capture_output=True,
                       text=True, check=True)
    return r.stdout


def control_fields(deb):
    fields = {}
    for line in dpkg_deb("-f", deb).splitlines():
        if line and not line.startswith(" "):
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return fields


def test_control_fields(deb):
    f = control_fields(deb)
    assert f["Package"] == PKG
    assert f["Version"] == module_version()
    assert f["Architecture"] == "amd64"
    assert f["Section"] == "httpd"
    depends = [d.strip().split(" ")[0] for d in f["Depends"].split(",")]
    # the nginx ABI the module was built for, and jansson; hiredis is
    # linked in, so it is named where static code is declared
    assert depends[0] == nginx_abi(), f["Depends"]
    assert "libjansson4" in depends
    assert not [d for d in depends if "hiredis" in d], f["Depends"]
    assert f["Static-Built-Using"].startswith("hiredis (= "), f


def test_files(deb):
    listing = dpkg_deb("-c", deb)
    files = {line.split()[-1][1:] for line in listing.splitlines()
             if not line.startswith("d")}
    wanted = {MODULE_SO, SNIPPET, DOCDIR + "copyright",
              DOCDIR + "examples/loom.conf"}
    assert wanted <= files, sorted(files)
    docs = {os.path.basename(p) for p in files if p.startswith(DOCDIR)}
    for name in ("README.md", "getting-started.md", "operations.md",
                 "protocol.md", "directives.md"):
        assert name in docs or name + ".gz" in docs, sorted(docs)
    stray = [p for p in files if not p.startswith(
        ("/usr/lib/nginx/modules/", "/usr/share/nginx/modules-available/",
         DOCDIR))]
    assert stray == []
    mode = [line.split()[0] for line in listing.splitlines()
            if line.endswith("." + MODULE_SO)]
    assert mode == ["-rw-r--r--"]


def test_maintainer_scripts_enable_the_module(deb, workdir):
    control = os.path.join(workdir, "control")
    dpkg_deb("-e", deb, control)
    with open(os.path.join(control, "postinst")) as f:
        postinst = f.read()
    # dh_nginx's link in modules-enabled, then a reload trigger
    assert "mod-http-loom.conf:50-mod-http-loom.conf" in postinst
    assert "/etc/nginx/modules-enabled/$to" in postinst
    assert "dpkg-trigger --no-await nginx-reload" in postinst
    with open(os.path.join(control, "prerm")) as f:
        assert "mod-http-loom.conf:50-mod-http-loom.conf" in f.read()


def test_lintian_has_no_errors(deb):
    report = os.path.join(ROOT, "build", "deb", "lintian.txt")
    if not os.path.exists(report):
        pytest.skip("lintian is not installed (scripts/deps.sh deb)")
    with open(report) as f:
        errors = [l for l in f.read().splitlines() if l.startswith("E: ")]
    assert errors == []


def test_example_is_the_documented_configuration():
    with open(DOC) as f:
        documented = doc_block(f.read(), "`/etc/nginx/conf.d/loom.conf`")
    with open(EXAMPLE) as f:
        example = f.read()
    body = re.sub(r"\A(#.*\n)*\n", "", example)
    assert body == documented


def test_nginx_loads_the_packaged_module(deb, workdir, redis_server):
    root = FakeRoot(os.path.join(workdir, "root"), redis_server.port)
    dpkg_deb("-x", deb, root.path)

    with open(root.at(SNIPPET)) as f:
        assert f.read() == "load_module modules/ngx_http_loom_module.so;\n"
    # the packaged module is built like the tested one: it exports only
    # what nginx's loader looks up (see test_neighbours.py)
    nm = subprocess.run(["nm", "-D", "--defined-only", root.at(MODULE_SO)],
                        capture_output=True, text=True, check=True)
    assert {l.split()[-1] for l in nm.stdout.splitlines() if l.strip()} \
        == {"ngx_modules", "ngx_module_names", "ngx_module_order"}
    # what the postinst does, in the fake root
    os.symlink(root.at(SNIPPET),
               root.at("/etc/nginx/modules-enabled/50-mod-http-loom.conf"))
    root.write("/etc/nginx/nginx.conf", STOCK_NGINX_CONF)
    root.write("/etc/nginx/mime.types", "types { text/html html; }\n")

    example = root.at(DOCDIR + "examples/loom.conf")
    if not os.path.exists(example):
        example += ".gz"
    with (gzip.open if example.endswith(".gz") else open)(
            example, "rt") as f:
        conf = f.read()
    conf = conf.replace("127.0.0.1:6379;",
                        "127.0.0.1:%d;" % redis_server.port)
    conf = conf.replace("listen 443 ssl;",
                        "listen 127.0.0.1:%d ssl;" % root.tls_port)
    root.write("/etc/nginx/conf.d/loom.conf", conf)
    r = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-days", "1", "-subj", "/CN=your.host",
         "-keyout", root.at("/etc/ssl/private/loom.key"),
         "-out", root.at("/etc/ssl/certs/loom.pem")],
        capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

    r = root.sh("nginx -t")
    assert r.returncode == 0, r.stderr
    assert "test is successful" in r.stderr

    root.start()
    try:
        wait_for(lambda: port_open(root.tls_port), what="the wss port")
        wait_for(lambda: redis_links_up(root.tls_port), timeout=15,
                 what="loom redis links")
        # the module mapped into nginx is the extracted one
        with open("/proc/%d/maps" % root.pid()) as f:
            assert root.at(MODULE_SO) in f.read()
        key = re.search(r'loom_api_key "([^"]+)";', conf).group(1)
        protocol_smoke("127.0.0.1", root.tls_port, tls=True,
                       headers={"Authorization": key})
    finally:
        root.stop()
        assert root.bad_log_lines() == []
