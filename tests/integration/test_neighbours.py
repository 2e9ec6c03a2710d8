"""The module next to another module that bundles its own hiredis.

Debian's libnginx-mod-nchan links a private copy of hiredis and exports
its symbols; nginx opens modules with RTLD_GLOBAL.  A module that leaves
its hiredis (or jansson) calls to the dynamic linker gets whichever copy
was loaded first, and a copy whose structures differ crashes the worker.
These tests load both modules into one nginx, in both orders, with nchan
itself talking to the same Redis, and run the protocol smoke.
"""

import os
import re
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import MODULE, Nginx, wait_for
from loomsmoke import protocol_smoke

NCHAN = "/usr/lib/nginx/modules/ngx_nchan_module.so"

CRASH = re.compile(r"signal 11|exited on signal|core dumped")

# what nginx's ngx_load_module() looks up with dlsym(); nothing else
LOADER_SYMBOLS = {"ngx_modules", "ngx_module_names", "ngx_module_order"}

needs_nchan = pytest.mark.skipif(
    not os.path.exists(NCHAN),
    reason="libnginx-mod-nchan is not installed (scripts/deps.sh test)")


def dynamic_symbols(path, *flags):
    """Names in the dynamic symbol table, with their @version if any."""
    r = subprocess.run(["nm", "-D"] + list(flags) + [path],
                       capture_output=True, text=True, check=True)
    return {line.split()[-1] for line in r.stdout.splitlines()
            if line.strip()}


def bare(names):
    return {n.split("@")[0] for n in names}


def test_module_exports_only_what_the_loader_needs():
    assert bare(dynamic_symbols(MODULE, "--defined-only")) == LOADER_SYMBOLS


def test_hiredis_is_linked_into_the_module():
    undefined = bare(dynamic_symbols(MODULE, "--undefined-only"))
    assert sorted(s for s in undefined
                  if s.startswith(("redis", "sds", "hi_", "__redis"))) == []
    r = subprocess.run(["readelf", "-d", MODULE], capture_output=True,
                       text=True, check=True)
    needed = re.findall(r"\(NEEDED\).*\[(.*)\]", r.stdout)
    assert [n for n in needed if "hiredis" in n] == [], needed


def test_jansson_calls_are_bound_to_its_version():
    # Debian's libjansson.a is not position-independent, so jansson stays
    # shared; a call that is left undefined must carry jansson's symbol
    # version, which only libjansson.so.4 defines
    undefined = dynamic_symbols(MODULE, "--undefined-only")
    jansson = [s for s in undefined if s.startswith("json_")]
    assert [s for s in jansson if not s.endswith("@libjansson.so.4")] == []


NCHAN_HTTP = """
    nchan_redis_url "redis://127.0.0.1:{redis_port}";
"""

NCHAN_SERVER = """
        location = /nchan/pub {
            nchan_publisher;
            nchan_channel_id smoke;
            nchan_use_redis on;
        }
"""


def nchan_publish(port):
    req = urllib.request.Request("http://127.0.0.1:%d/nchan/pub" % port,
                                 data=b"hello", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@needs_nchan
@pytest.mark.parametrize("order", ["nchan_first", "loom_first"])
def test_protocol_with_nchan_loaded(workdir, redis_server, order):
    n = Nginx(os.path.join(workdir, "nginx"), redis_server.port, workers=2,
              http=NCHAN_HTTP.format(redis_port=redis_server.port),
              server=NCHAN_SERVER)
    with open(n.conf) as f:
        conf = f.read()
    nchan = "load_module %s;\n" % NCHAN
    if order == "nchan_first":
        conf = nchan + conf
    else:
        first = conf.index("\n", conf.index("load_module")) + 1
        conf = conf[:first] + nchan + conf[first:]
    with open(n.conf, "w") as f:
        f.write(conf)

    try:
        n.start(wait_redis=False)
        wait_for(n.redis_up, timeout=15, what="loom redis links")

        protocol_smoke("127.0.0.1", n.port)

        # nchan, in the same workers, publishes through its own hiredis;
        # it answers 503 until its own Redis link is up
        status, body = wait_for(lambda: (lambda a: a if a[0] != 503
                                         else None)(nchan_publish(n.port)),
                                timeout=15, what="nchan's redis link")
        assert status in (201, 202), (status, body)
        assert "queued messages: 1" in body, body

        # every worker that started is still the same one
        assert len(n.worker_pids()) == 2
    finally:
        n.stop()
        log = n.log()
        crashes = [l for l in log.splitlines() if CRASH.search(l)]
        assert crashes == [], "\n".join(crashes[:10])
        assert n.bad_log_lines() == []
