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


def test_metrics_count_what_happened(make_nginx):
    n = make_nginx(workers=2, server=METRICS)
    (_, (a, b)), (_, (c, d)) = sorted(clients_on_workers(n, 2).items())
    register(a, "m", {"v": None})
    for s in (b, c, d):
        subscribe(s, "m")
    for i in range(5):
        r = a.request({"id": str(i), "action": "publish", "topic": "m",
                       "data": {"v": i}, "requireAck": True})
        assert r["code"] == 200
    bad = a.request({"id": "x", "action": "publish", "topic": "m",
                     "data": {"w": 1}})
    assert bad["code"] == 400
    for s in (b, c, d):
        for i in range(5):
            assert s.recv_json()["data"] == {"v": i}

    m = wait_for(lambda: (lambda m: m if m["loom_deliveries_total"] == 15
                          else None)(samples(scrape(n))),
                 what="the deliveries counted")
    assert m["loom_workers"] == 2
    assert m["loom_connections"] == 4
    # the placement of clients on workers opened and closed a few more
    total = m["loom_connections_total"]
    assert total >= 4 and total == n.status()["connections_total"]
    assert m["loom_subscriptions"] == 3
    assert m["loom_channels"] == 2                 # one per worker
    assert m["loom_publishes_total"] == 5
    assert m["loom_requests_rejected_total{code=400}"] == 1
    assert m["loom_requests_rejected_total{code=403}"] == 0
    assert m["loom_requests_failed_total{code=500}"] == 0
    assert m["loom_requests_waiting"] == 0
    assert m["loom_publish_ack_seconds_count"] == 5
    assert m["loom_publish_ack_seconds_bucket{le=+Inf}"] == 5
    # once per publish and worker with subscribers (b; c and d), not per
    # subscriber: 5 x 2; each within a second of its ts
    assert m["loom_publish_delivery_seconds_count"] == 10
    assert m["loom_publish_delivery_seconds_bucket{le=+Inf}"] == 10
    assert m["loom_publish_delivery_seconds_bucket{le=1.000000}"] == 10
    assert m["loom_publish_delivery_seconds_sum"] < 10
    st = n.status()
    assert st["publish_ack"]["count"] == 5
    assert st["publish_delivery"]["count"] == 10
    assert st["publish_delivery"]["le_us"]["+Inf"] == 10
    assert st["publish_delivery"]["le_us"]["1000000"] == 10
    assert st["publish_delivery"]["sum_us"] == round(
        m["loom_publish_delivery_seconds_sum"] * 1e6)

    # what is not stored has no ts: delivered, not observed
    r = a.request({"id": "w", "action": "sendWithoutSave", "topic": "m",
                   "data": {"v": 9}, "requireAck": True})
    assert r["code"] == 200
    for s in (b, c, d):
        assert s.recv_json()["data"] == {"v": 9}
    m = wait_for(lambda: (lambda m: m if m["loom_deliveries_total"] == 18
                          else None)(samples(scrape(n))),
                 what="the sends counted")
    assert m["loom_publish_delivery_seconds_count"] == 10
    ups = [v for k, v in m.items() if k.startswith("loom_redis_link_up")]
    assert ups == [1.0] * 4
    assert m["loom_info{version=%s}" % n.status()["version"]] == 1

    for s in (a, b, c, d):
        s.close()
    wait_for(lambda: samples(scrape(n))["loom_connections"] == 0,
             what="the connections gone")
    m = samples(scrape(n))
    assert m["loom_subscriptions"] == 0
    assert m["loom_channels"] == 0
    assert m["loom_connections_total"] == total
