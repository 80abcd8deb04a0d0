"""What the bench scripts (bench_fixtures.py, bench_postfix.py,
bench_socketmap.py) share: plain output lines, the machine's load and a
process's CPU time, the order of configurations over rounds, and the
median/ratio/format helpers of their summary tables.  Stdlib only."""

import os
import resource
import statistics


def note(text=""):
    """One line (or several) of the bench's output, flushed at once."""
    print(text, flush=True)


def loadavg():
    """The 1, 5 and 15 minute load averages as text ("?" if unknown)."""
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return "?"


def proc_cpu(pid):
    """CPU seconds (user + system, the process and its threads) used so far
    by process pid; None when it cannot be read (the process is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / float(os.sysconf("SC_CLK_TCK"))
    except (OSError, IndexError, ValueError):
        return None


def children_cpu():
    """CPU seconds (user + system) of this process's reaped children."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def rotation(items, rounds):
    """Round r runs the items starting at the r-th (mod their number): each
    takes every place in the order equally often."""
    out = []
    for r in range(rounds):
        k = r % len(items)
        out.append(list(items[k:]) + list(items[:k]))
    return out


def med(xs):
    """Median of the known values (None ignored); None if there are none."""
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fr(v, spec="%.0f"):
    """v formatted with spec, "-" for an unknown value."""
    return "-" if v is None else spec % v


def ratio(a, b):
    """a / b, None when either is unknown or b is 0."""
    return a / b if a is not None and b else None

