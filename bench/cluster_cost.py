#!/usr/bin/python3
"""What a cluster run of scripts/bench.sh measured, per master and per
workload, next to a single-Redis run of the same workloads:

    bench/cluster_cost.py docs/bench/cluster [SINGLE_JSON_DIR]

For each workload: publishes/s and deliveries/s of both runs and their
ratio; the Redis CPU (INFO cpu, user + sys) each master spent, and the
script calls (EVALSHA: with group commits one call stores a group of a
topic's publishes) and SPUBLISH calls it ran (one per stored publish);
from them the Redis CPU per stored publish (its share of the script call,
its SPUBLISH and the copies of it Redis writes to the subscribed nginx
workers' links), and the nginx CPU per client delivery.
"""

import json
import os
import sys


def load(d, name):
    p = os.path.join(d, name + ".json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def masters(j):
    before = {m["port"]: m for m in j.get("redis_masters_before") or []}
    out = []
    for m in j.get("redis_masters_after") or []:
        b = before.get(m["port"], {"cpu_s": 0, "calls": {}})
        calls = {k: v - b["calls"].get(k, 0) for k, v in m["calls"].items()}
        out.append((m["port"], m["cpu_s"] - b["cpu_s"], calls))
    return out


def main():
    cdir = sys.argv[1]
    sdir = sys.argv[2] if len(sys.argv) > 2 else None
    names = sorted(f[:-5] for f in os.listdir(cdir) if f.endswith(".json"))
    print("| workload | single pub/s | cluster pub/s | ratio "
          "| single deliv/s | cluster deliv/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        c = load(cdir, name)
        s = load(sdir, name) if sdir else None
        if c.get("mode") != "pubsub":
            continue

        def cell(j, k):
            return "%.0f" % j[k] if j and j.get(k) is not None else "-"

        def ratio(k):
            if not s or not s.get(k) or c.get(k) is None:
                return "-"
            return "%.2f" % (c[k] / s[k])

        print("| %s | %s | %s | %s | %s | %s | %s |" % (
            name, cell(s, "publishes_per_s"), cell(c, "publishes_per_s"),
            ratio("publishes_per_s"), cell(s, "deliveries_per_s"),
            cell(c, "deliveries_per_s"), ratio("deliveries_per_s")))
    print()
    print("| workload | master | Redis CPU s | script calls "
          "| SPUBLISH (stored publishes) | publishes per call "
          "| us per stored publish |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        c = load(cdir, name)
        if c.get("mode") != "pubsub":
            continue
        for port, cpu, calls in masters(c):
            ev = calls.get("evalsha", 0)
            sp = calls.get("spublish", 0)
            print("| %s | %d | %.2f | %d | %d | %s | %s |" % (
                name, port, cpu, ev, sp,
                "%.1f" % (sp / ev) if ev else "-",
                "%.1f" % (cpu * 1e6 / sp) if sp else "-"))
    print()
    print("| workload | nginx CPU s | client deliveries "
          "| nginx us per delivery |")
    print("|---|---|---|---|")
    for name in names:
        c = load(cdir, name)
        if c.get("mode") != "pubsub" or not c.get("delivered"):
            continue
        print("| %s | %.2f | %d | %.2f |" % (
            name, c["server_cpu_s"], c["delivered"],
            c["server_cpu_s"] * 1e6 / c["delivered"]))


if __name__ == "__main__":
    main()
