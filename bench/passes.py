#!/usr/bin/python3
"""Times the event-loop passes of a server's workers.

    bench/passes.py DIR/NAME.passes.data

Reads the epoll_wait() entries and exits that scripts/bench.sh records
with LOOM_BENCH_PROFILE=DIR.  A pass is the time from one epoll_wait()
returning to the next one being entered: the work done on what the kernel
reported (reads, handlers, the writes they queued).  Prints, per worker,
the passes, how many returned events, their lengths (p50, p90, p99, max,
in ms) and the share of the time spent in passes rather than waiting.
"""

import subprocess
import sys


def quantile(values, q):
    return values[min(len(values) - 1, int(q * len(values)))]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)

    out = subprocess.run(['perf', 'script', '-i', sys.argv[1],
                          '-F', 'pid,time,event,trace'],
                         capture_output=True, text=True, check=True).stdout

    returned, first, last, lengths, busy = {}, {}, {}, {}, {}

    for line in out.splitlines():
        f = line.split()
        if len(f) < 3:
            continue
        pid, t = f[0], float(f[1].rstrip(':'))
        first.setdefault(pid, t)
        last[pid] = t
        if 'sys_exit_epoll_wait' in f[2]:
            ret = int(f[-1], 0)
            returned[pid] = t
            busy[pid] = busy.get(pid, 0) + (ret > 0)
        elif 'sys_enter_epoll_wait' in f[2] and pid in returned:
            lengths.setdefault(pid, []).append((t - returned[pid]) * 1000)

    for pid in sorted(lengths):
        v = sorted(lengths[pid])
        span = (last[pid] - first[pid]) * 1000
        print('worker %s: %d passes (%d with events) in %.0f ms; pass ms'
              ' p50 %.2f p90 %.2f p99 %.2f max %.2f; %.0f%% of the time'
              ' in passes' % (pid, len(v), busy.get(pid, 0), span,
                              quantile(v, .5), quantile(v, .9),
                              quantile(v, .99), v[-1],
                              100 * sum(v) / span if span else 0))


main()
