"""The Prometheus metrics location (loom_metrics).

The text must pass `promtool check metrics` (Debian's prometheus package)
with no finding, parse with the reference parser, and count what happened:
connections, subscriptions, publishes, deliveries, rejections, links.
"""

import subprocess
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from conftest import clients_on_workers, register, subscribe, wait_for

METRICS = "location = /metrics { loom_metrics; }"


def scrape(n):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % n.port,
                                timeout=5) as r:
        assert r.headers["Content-Type"].startswith(
            "text/plain; version=0.0.4")
        return r.read().decode()


def samples(text):
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name
            if s.labels:
                key += "{%s}" % ",".join(
                    "%s=%s" % kv for kv in sorted(s.labels.items()))
            out[key] = s.value
    return out


def test_metrics_are_lint_clean(make_nginx):
    n = make_nginx(workers=2, server=METRICS)
    text = scrape(n)
    r = subprocess.run(["promtool", "check", "metrics"], input=text,
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", (
        r.stdout + r.stderr)
