#!/usr/bin/python3
"""Socketmap lookups per second and latency: this daemon, the peer, the ceiling.

Part of `make bench` (tests/bench/run-bench.sh --only socketmap runs it
alone; its arguments then go here): figures, measured, never asserted.
Three servers answer the same TLS-policy lookups in the same run:

    mtasts    milter/mtasts-milter, its socketmap face (SocketmapSocket on a
              loopback port, CacheStore none, no decision log), its cache
              warmed first with one lookup per domain
    peer      postfix-mta-sts-resolver (Debian package, mta-sts-daemon,
              log level warn, internal cache, uvloop when python3-uvloop is
              installed as the package recommends; cache_grace raised to a
              day so that every timed lookup is a cache hit), warmed alike
    ceiling   tests/bench/smap_const: an epoll server that answers every
              request with the same constant reply and does no lookup at
              all (the most a socketmap server gets on this machine)

All three serve the bench domains b0..b<N-1>.bench.test (enforce policies
from the DNS/HTTPS fixtures of tests/integration/harness.py).  The load
generator, tests/bench/smap_load (C, one thread, epoll), keeps --conns
connections (default 1 and 50), each sending one request ("postfix
bK.bench.test", the domains in turn), waiting for its reply and sending
the next, for --seconds after --warmup seconds; it checks every reply
(TEMP/PERM or a changed answer is counted and printed).  Servers and
connection counts are alternated, in rotating order, for --rounds rounds:
the machine is noisy, so every run is printed, then the medians, and the
ratios mtasts/ceiling and mtasts/peer next to the goal (>= 90 % of the
ceiling at both points, p99 < 1 ms at 50 connections).  CPU microseconds
per request of each server come from /proc.

The peer has no settings for its resolver or the policy port: it asks
/etc/resolv.conf's servers on port 53 and fetches from port 443.  So, as
root with the package installed, this script runs itself again in a
private network namespace (tests/integration/peerd.py,
tests/mta/netns.py) where the fixtures listen on 127.0.0.1:53 and :443.
Without root or the package the peer is left out, saying why, and the
other two are measured.

Ends with one machine-readable line:
    BENCH socketmap c1_mtasts=R c1_peer=R c1_ceiling=R c1_ratio_ceiling=X
        c1_ratio_peer=X c1_mtasts_p99_us=X ... c50_... seconds=S rounds=N
Skips (exit 0, saying why) without python3 dnslib or the built programs;
exit 1 only when a run could not complete.

Environment: top_srcdir, top_builddir (set by make), MTASTS_MILTER,
BENCH_SMAP_LOAD, BENCH_SMAP_CONST (default $top_builddir/tests/bench/...),
MTASTS_KEEP_WORKDIR=1 keeps the work dir.
"""

import argparse
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "mta"))
import harness  # noqa: E402
import mtautil  # noqa: E402
import netns  # noqa: E402
import peerd  # noqa: E402
from benchutil import fr, loadavg, med, note, proc_cpu, ratio, rotation  # noqa: E402
from milterd import MilterDaemon  # noqa: E402
from test_socketmap import Client  # noqa: E402

SERVERS = ("mtasts", "peer", "ceiling")
GOAL_RATIO = 0.90
GOAL_P99_US = 1000.0


def tool(env, name):
    return os.environ.get(env) or os.path.join(harness.builddir(), "tests", "bench", name)


def domains(n):
    return ["b%d.bench.test" % i for i in range(n)]


def world(names_list):
    names, hosts = {}, {}
    for d in names_list:
        names["_mta-sts." + d] = {"TXT": [["v=STSv1; id=bench1;"]]}
        names["mta-sts." + d] = {"A": ["127.0.0.1"]}
        names[d] = {"MX": [[10, "mx1." + d]]}
        hosts["mta-sts." + d] = {"body": "version: STSv1\r\nmode: enforce\r\nmx: mx1.%s\r\n"
                                         "mx: *.mx.%s\r\nmax_age: 604800\r\n" % (d, d)}
    return {"names": names, "default": "NXDOMAIN"}, {"hosts": hosts, "default_cert": "good"}


def expected(d):
    return "OK secure match=mx1.%s:.mx.%s servername=hostname" % (d, d)


def same_policy(a, b):
    """Replies equal but for the order of the match= list (the peer keeps
    the patterns in a Python set)."""
    def norm(r):
        out = []
        for w in r.split(" "):
            if w.startswith("match="):
                w = "match=" + ":".join(sorted(w[6:].split(":")))
            out.append(w)
        return out
    return norm(a) == norm(b)


class Const:
    """tests/bench/smap_const on a port of its choosing."""

    def __init__(self, work, reply, threads):
        self.portfile = os.path.join(work, "smap_const.port")
        self.log = os.path.join(work, "smap_const.log")
        with open(self.log, "ab") as fh:
            self.popen = mtautil.spawn([tool("BENCH_SMAP_CONST", "smap_const"), "-P",
                                        self.portfile, "-t", str(threads), "-r", reply],
                                       stdout=fh, stderr=fh, cwd=work)
        self.port = harness.wait_for(self._port, timeout=10, msg="smap_const listening")

    def _port(self):
        if self.popen.poll() is not None:
            raise AssertionError("smap_const exited:\n" + mtautil.tail(self.log))
        try:
            with open(self.portfile) as fh:
                return int(fh.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    @property
    def pid(self):
        return self.popen.pid

    def stop(self):
        mtautil.stop_group(self.popen, timeout=5)


class Bench:
    def __init__(self, args, work, peer_why):
        self.args = args
        self.work = work
        self.peer_why = peer_why
        self.domains = domains(args.domains)
        self.fx = self.daemon = self.peer = self.const = None
        self.servers = {}       # name -> (port, pid)

    def start(self):
        self.fx = harness.Fixtures(os.path.join(self.work, "fixtures"))
        zone, hosts = world(self.domains)
        inside = netns.inside()
        dns_port = self.fx.start_dns(zone, port=peerd.DNS_PORT if inside else 0)
        https_port = self.fx.start_https(hosts, port=peerd.HTTPS_PORT if inside else 0)
        self.daemon = MilterDaemon(os.path.join(self.work, "daemon"), dns_port, https_port,
                                   self.fx.ca_file,
                                   # The peer's answer shape (match=.mx.D), so both
                                   # serve the same reply; the default is exact.
                                   settings={"DecisionLog": None, "CacheStore": "none",
                                             "SocketmapProfile": "postfix match=wildcard"})
        self.daemon.start()
        mtautil.wait_port(self.daemon.socketmap_port, 20, alive=self.daemon.running,
                          what="mtasts-milter socketmap")
        self.servers["mtasts"] = (self.daemon.socketmap_port, self.daemon.popen.pid)
        if self.peer_why is None:
            self.peer = peerd.Peer(os.path.join(self.work, "peer"), self.fx.ca_file,
                                   verbosity="warn", cache_grace=86400)
            self.peer.start()
            self.servers["peer"] = (self.peer.port, self.peer.pid)
        self.warm()
        self.const = Const(self.work, expected(self.domains[0]), self.args.const_threads)
        self.servers["ceiling"] = (self.const.port, self.const.pid)

    def warm(self):
        t0 = time.monotonic()
        for name in ("mtasts", "peer"):
            if name not in self.servers:
                continue
            c = Client(self.servers[name][0])
            for d in self.domains:
                r = c.ask("postfix", d)
                if not same_policy(r, expected(d)):
                    raise RuntimeError("warming %s with %s: got %r, want %r\n%s" % (
                        name, d, r, expected(d),
                        (self.daemon if name == "mtasts" else self.peer).diagnostics()))
                r2 = c.ask("postfix", d)
                if r2 != r:
                    raise RuntimeError("%s answered %s differently from its cache: %r then %r"
                                       % (name, d, r, r2))
            c.close()
        note("warm-up: %d domains looked up on %s in %.1f s; every reply as expected"
             % (len(self.domains), " and ".join(s for s in ("mtasts", "peer")
                                                  if s in self.servers),
                time.monotonic() - t0))

    def run(self, name, conns):
        port, pid = self.servers[name]
        argv = [tool("BENCH_SMAP_LOAD", "smap_load"), "-p", str(port), "-c", str(conns),
                "-d", str(self.args.seconds), "-w", str(self.args.warmup)]
        argv += ["postfix " + d for d in self.domains]
        cpu0 = proc_cpu(pid)
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=self.args.seconds + self.args.warmup + 60)
        cpu1 = proc_cpu(pid)
        line = next((l for l in r.stdout.splitlines() if l.startswith("SMAP_LOAD ")), None)
        if r.returncode != 0 or line is None:
            raise RuntimeError("smap_load against %s (%d connections) failed (exit %d):\n%s"
                               % (name, conns, r.returncode, r.stdout.strip()))
        f = dict(kv.split("=", 1) for kv in line.split()[1:])
        out = {k: float(v) for k, v in f.items()}
        span = self.args.seconds + self.args.warmup
        if cpu0 is not None and cpu1 is not None and out["requests"]:
            # CPU over warm-up + window, per request answered in that span.
            out["cpu_us"] = (cpu1 - cpu0) * 1e6 / (out["rps"] * span)
        else:
            out["cpu_us"] = None
        return out

    def stop(self):
        for x in (self.const, self.peer, self.daemon):
            if x is not None:
                try:
                    x.stop()
                except Exception as e:  # keep stopping the others
                    note("stopping: %s" % e)
        if self.fx is not None:
            self.fx.cleanup()


def report(bench, runs, args, load_start):
    W = 112
    names = [s for s in SERVERS if s in bench.servers]
    lines = ["", "=" * W,
             "Socketmap lookups, cache hits: mtasts-milter / postfix-mta-sts-resolver / "
             "constant-reply ceiling (figures, not assertions)",
             "%d CPUs; load average at start %s, at end %s; %d s measured per run after %d s "
             "warm-up; %d rounds" % (os.cpu_count() or 0, load_start, loadavg(), args.seconds,
                                     args.warmup, args.rounds),
             "load generator: tests/bench/smap_load, one thread, one request at a time per "
             "connection, %d domains in turn" % len(bench.domains),
             "peer: %s" % ("%s %s, %s, log level warn, internal cache" % (
                 peerd.PEER_PACKAGE, peerd.peer_version() or "?",
                 "uvloop" if peerd.uvloop_available() else "asyncio (no python3-uvloop)")
                 if "peer" in names else "not measured: " + bench.peer_why),
             "ceiling: tests/bench/smap_const, %d epoll thread(s)" % args.const_threads,
             "=" * W]
    summary = {}
    for conns in args.conns:
        lines.append("%d connection%s" % (conns, "" if conns == 1 else "s"))
        lines.append("  %-8s %-22s %7s %7s %6s %6s %7s %8s %7s %6s %6s" % (
            "server", "each run (lookups/s)", "median", "best", "p50 us", "p99 us",
            "CPU us", "/ceiling", "best/c", "/peer", "errors"))
        meds = {}
        for s in names:
            rs = runs[(s, conns)]
            meds[s] = {k: med([r[k] for r in rs]) for k in ("rps", "p50_us", "p99_us",
                                                             "cpu_us")}
            meds[s]["best"] = max(r["rps"] for r in rs) if rs else None
            meds[s]["errors"] = sum(r["errors"] + r["mismatches"] for r in rs)
        for s in names:
            m = meds[s]
            lines.append("  %-8s %-22s %7s %7s %6s %6s %7s %8s %7s %6s %6d" % (
                s, " ".join("%6s" % fr(r["rps"]) for r in runs[(s, conns)]), fr(m["rps"]),
                fr(m["best"]), fr(m["p50_us"], "%.0f"), fr(m["p99_us"], "%.0f"),
                fr(m["cpu_us"], "%.1f"),
                fr(ratio(m["rps"], meds.get("ceiling", {}).get("rps")), "%.3f"),
                fr(ratio(m["best"], meds.get("ceiling", {}).get("best")), "%.3f"),
                fr(ratio(m["rps"], meds.get("peer", {}).get("rps")), "%.2f"),
                m["errors"]))
        summary[conns] = meds
        lines.append("")
    lines.append("median, best: of the runs; CPU us: the server's CPU time per lookup (median); "
                 "/ceiling, best/c, /peer: the row's lookups/s over the ceiling's (median, best) "
                 "and the peer's (median)")
    goal = []
    for conns in args.conns:
        m = summary[conns]
        rc = ratio(m["mtasts"]["rps"], m.get("ceiling", {}).get("rps"))
        rb = ratio(m["mtasts"]["best"], m.get("ceiling", {}).get("best"))
        goal.append("%d conn: mtasts/ceiling %s median, %s best (goal >= %.2f: %s)" % (
            conns, fr(rc, "%.3f"), fr(rb, "%.3f"), GOAL_RATIO,
            "-" if rc is None else ("met" if rc >= GOAL_RATIO else "MISSED")))
        if conns == 50:
            p99 = m["mtasts"]["p99_us"]
            goal.append("50 conn: mtasts p99 %s us, ceiling's %s us (goal < %.0f: %s)" % (
                fr(p99, "%.0f"), fr(m.get("ceiling", {}).get("p99_us"), "%.0f"),
                GOAL_P99_US,
                "-" if p99 is None else ("met" if p99 < GOAL_P99_US else "MISSED")))
    lines.append("goal: " + ";\n      ".join(goal))
    lines.append("=" * W)
    kv = []
    for conns in args.conns:
        m = summary[conns]
        for s in SERVERS:
            kv.append("c%d_%s=%s" % (conns, s, fr(m.get(s, {}).get("rps"), "%.0f")))
        kv.append("c%d_ratio_ceiling=%s" % (conns, fr(ratio(m["mtasts"]["rps"],
                                                            m.get("ceiling", {}).get("rps")),
                                                      "%.3f")))
        kv.append("c%d_ratio_ceiling_best=%s" % (conns, fr(ratio(
            m["mtasts"]["best"], m.get("ceiling", {}).get("best")), "%.3f")))
        kv.append("c%d_ratio_peer=%s" % (conns, fr(ratio(m["mtasts"]["rps"],
                                                         m.get("peer", {}).get("rps")), "%.2f")))
        for s in SERVERS:
            kv.append("c%d_%s_p99_us=%s" % (conns, s, fr(m.get(s, {}).get("p99_us"), "%.0f")))
    lines.append("BENCH socketmap %s seconds=%d rounds=%d" % (" ".join(kv), args.seconds,
                                                            args.rounds))
    note("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=5, help="measured seconds per run")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured seconds before each run")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of every server and count")
    ap.add_argument("--conns", default="1,50", help="comma list of connection counts")
    ap.add_argument("--domains", type=int, default=10, help="bench domains (all cache hits)")
    ap.add_argument("--const-threads", type=int, default=1,
                    help="event loop threads of the ceiling server")
    ap.add_argument("--no-peer", action="store_true", help="leave the peer out")
    args = ap.parse_args()
    try:
        args.conns = [int(x) for x in args.conns.split(",") if x]
    except ValueError:
        ap.error("--conns: a comma list of numbers")
    if not args.conns or min(args.conns) < 1 or args.domains < 1:
        ap.error("--conns and --domains must be positive")

    why = MilterDaemon.available()
    if why:
        note("\nSKIP bench socketmap: " + why)
        return 0
    for env, name in (("BENCH_SMAP_LOAD", "smap_load"), ("BENCH_SMAP_CONST", "smap_const")):
        if not os.access(tool(env, name), os.X_OK):
            note("\nSKIP bench socketmap: %s not built (%s; `make bench` builds it)"
                 % (name, tool(env, name)))
            return 0
    if not harness.have_dnslib():
        note("\nSKIP bench socketmap: python3-dnslib missing (DNS fixture)")
        return 0

    peer_why = "--no-peer" if args.no_peer else peerd.why_unavailable()
    if peer_why is None and not netns.inside():
        note("\n=== socketmap bench: running again in a private network namespace "
             "(the peer needs DNS on :53 and HTTPS on :443)")
        return netns.run_inside("bench-socketmap")
    load_start = loadavg()
    with harness.workdir("mtasts-bench-smap.", say=note) as work:
        return run(args, Bench(args, work, peer_why), peer_why, load_start)


def run(args, bench, peer_why, load_start):
    """Every round, then the table; 1 if a run failed.  Stops bench."""
    failed = False
    try:
        note("\n=== socketmap lookups: %s; %d rounds of %s connections, %d s each"
             % (" / ".join(s for s in SERVERS if s != "peer" or peer_why is None),
                args.rounds, "/".join(map(str, args.conns)), args.seconds))
        if peer_why is not None:
            note("peer left out: " + peer_why)
        bench.start()
        names = [s for s in SERVERS if s in bench.servers]
        runs = {(s, c): [] for s in names for c in args.conns}
        for rnd, order in enumerate(rotation(names, args.rounds)):
            for conns in (args.conns if rnd % 2 == 0 else list(reversed(args.conns))):
                for s in order:
                    r = bench.run(s, conns)
                    runs[(s, conns)].append(r)
                    note("round %d %-8s %2d conn %7.0f lookups/s  p50 %6.0f us  p99 %6.0f us  "
                         "p99.9 %6.0f us  server CPU %s us/req  client CPU %.1f s%s"
                         % (rnd + 1, s, conns, r["rps"], r["p50_us"], r["p99_us"],
                            r["p999_us"], fr(r["cpu_us"], "%.1f"), r["client_cpu_s"],
                            "" if not (r["errors"] or r["mismatches"]) else
                            "  ERRORS %d MISMATCHES %d" % (r["errors"], r["mismatches"])))
                    if r["errors"] or r["mismatches"]:
                        failed = True
        report(bench, runs, args, load_start)
    except (RuntimeError, OSError, AssertionError, harness.FixtureError,
            subprocess.SubprocessError) as e:
        note("!!! socketmap bench could not run: %s" % e)
        failed = True
    finally:
        bench.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
