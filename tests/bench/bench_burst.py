#!/usr/bin/python3
"""Cold bursts over the socketmap: this daemon and the peer, side by side.

Part of `make bench` (tests/bench/run-bench.sh --only burst runs it alone;
its arguments then go here): figures, measured, never asserted.

A burst is N distinct domains that neither server has seen, asked at once:
one socketmap connection per domain ("postfix DOMAIN"), all connections
opened and all requests sent as fast as one thread can, then every reply
awaited.  Each domain publishes an enforce policy (TXT _mta-sts.D, A of
mta-sts.D, MX of D) on the DNS and HTTPS fixtures of
tests/integration/harness.py, and the HTTPS fixture sends each policy
--delay-ms (default 50) after it read the request: a server-side delay per
request, the fixtures answering in parallel (DNS from a scheduler heap,
HTTPS one thread per connection).

    mtasts    milter/mtasts-milter, its socketmap face, with the settings
              an installation has by default (SQLite cache store in the work
              dir, DNSTimeout, DNSTries, HTTPS timeouts, MaxDiscoveries and
              MaxPolicyFetches as shipped), plus what the fixtures need
              (DNSServers, PolicyPort, CAFile, AllowInternalAddresses);
              --max-discoveries and --max-policy-fetches override those two
    mtasts-sys  the same daemon with CAFile unset, as shipped: it trusts the
              system store (libcurl's CA bundle and CA directory).  Only in
              the private network namespace, whose mount namespace is private
              too (ip netns exec): there the system bundle is bind-mounted
              over by a copy with the test CA appended, for this process and
              its children only; elsewhere left out, saying why.
    peer      postfix-mta-sts-resolver (Debian package, mta-sts-daemon,
              internal cache, log level warn; tests/integration/peerd.py)

Per server and burst size (--sizes, default 300,1000), alternating the
order over --rounds rounds, each run with a fresh set of domains:
    slowest   seconds from the first request sent to the last reply read
    median    the median of those times over the burst's domains
    lost      replies that are not a policy: NOTFOUND (the daemon's budget
              ran out, or the peer gave up), TEMP or no reply
    late/intime/nf  the lost answers attributed by when the HTTPS fixture
              sent the domain's policy (its stats "sent" time for SNI
              mta-sts.D, the last response per SNI) against t0 + the
              daemon's budget, t0 the time.time() of the burst's first
              request and the budget that of the built-in "postfix" profile
              the bench asks through (STS_SMAP_BUDGET_DEFAULT_MS in
              src/smap/smap_profile.h, 3 s):
                late    fixture late: sent after it, or a fetch reached the
                        fixture and no policy had gone out when the fetch
                        was given up (the bench waits up to SETTLE_S after
                        the burst for policies still on their way).  It
                        says when, not whose fault: a request that reached
                        the fixture late (the client's TLS handshake on a
                        busy CPU) counts here too; the round line and goal
                        say how many were asked after the budget (the
                        fixture's "asked" time: the request itself late)
                intime  sent within it: the server had the policy in time
                        and lost the answer itself (the daemon reads each
                        request at or after t0, so its own budget ends no
                        earlier: conservative)
                nf      never fetched: no fetch of the domain reached the
                        HTTPS fixture (lost before it: DNS, queueing); the
                        round line and goal say how many were not even
                        looked up (no TXT query at the DNS fixture by the
                        time the bench looked, after the burst: the server
                        had not started on them)
              The peer has no such budget; it is measured with the same
              yardstick.
    CPU s, fx CPU  the server's and the fixtures' CPU seconds for the burst
    floor     the CPU floor, (CPU s + fx CPU) / the number of CPUs: the
              machine cannot answer the burst faster than its CPUs allow,
              and the fixtures share them with the server
    /floor    slowest over the CPU floor
    TXT/dom   TXT queries for _mta-sts.D per domain at the DNS fixture
    GET/dom   policy requests per domain at the HTTPS fixture
    /peer     the daemon's slowest over the peer's (same size, same round)
After them, per server and round, the mixed burst (--mixed SLOW,QUICK,NONE,
default 200,100,700; 0 leaves it out): domains whose policy host answers
after --slow-ms (default 8000, past the budget), domains whose policy comes
after --delay-ms, and domains with no TXT record, asked at once (the slow
ones sent first, the others interleaved): what a newsletter to new domains looks like when some policy
hosts are slow or dead.  Per kind: right answers (a policy; NOTFOUND for
no TXT record), median and slowest time, and "held", answered at the budget
or later.  The goal: no quick or no-policy answer held up by the slow
hosts.  It ends with its own line, BENCH burst_mixed ....
Before the bursts, per server, one cold domain alone (the median of
three), against which the goal "1000 cold domains all answered within 3x
one domain's time" is printed.  The goal "no answer lost" is met only if
every lost answer is the fixture's doing: asked within the budget and its
policy sent after it (late, less those asked after the budget); a policy
sent in time (intime), a request that reached the fixture after the budget
and a domain never fetched all count against the server.  The goal line
prints the total lost and its attribution beside it.  Each
round's line says the same, and how many of the late ones had no policy
sent at all.  The server's CPU seconds for each burst
come from /proc, and so do the fixtures' (DNS and HTTPS, Python): they share
the machine's CPUs with the server, so the server's and their CPU seconds
together over the number of CPUs (floor) is a floor under the slowest
answer.

The peer needs DNS on :53 and HTTPS on :443 (peerd.py), so as root with
the package installed this script runs itself again in a private network
namespace (tests/mta/netns.py); without root or the package the peer is
left out, saying why, and the daemon alone is measured.

Ends with one machine-readable line:
    BENCH burst single_mtasts=S single_peer=S n300_mtasts_max=S
        n300_mtasts_median=S n300_mtasts_lost=N n300_mtasts_lost_fxlate=N
        n300_mtasts_lost_asklate=N n300_mtasts_lost_intime=N
        n300_mtasts_lost_nofetch=N n300_mtasts_lost_nolookup=N
        n300_mtasts_floor=S n300_mtasts_max_floor=X n300_mtasts_txt_max=N
        n300_mtasts_get_max=N n300_peer_max=S ...
        n300_mtasts_ratio_peer=X n1000_... rounds=N delay_ms=D
(per size and server: the median over rounds of slowest, median, floor;
lost counts summed over rounds).
Skips (exit 0, saying why) without python3 dnslib or the daemon; exit 1
only when a run could not complete.

Environment: top_srcdir, top_builddir (set by make), MTASTS_MILTER,
MTASTS_KEEP_WORKDIR=1 keeps the work dir.
"""

import argparse
import errno
import os
import re
import resource
import selectors
import socket
import subprocess
import sys
import textwrap
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "mta"))
import harness  # noqa: E402
import netns  # noqa: E402
import peerd  # noqa: E402
from bench_fixtures import prepare_certs  # noqa: E402
from benchutil import fr, loadavg, med, note, proc_cpu, ratio, rotation  # noqa: E402
from milterd import MilterDaemon  # noqa: E402
import mtautil  # noqa: E402

SERVERS = ("mtasts", "mtasts-sys", "peer")
DAEMONS = ("mtasts", "mtasts-sys")
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
SINGLE_RUNS = 3
WARM_DOMAINS = 20
GOAL_FACTOR = 3.0
MIXED_KINDS = ("slow", "quick", "none")
BURST_TIMEOUT = 30.0
# After a burst, how long to wait for the HTTPS fixture to finish (and
# record) the policies of lost domains whose fetch had reached it.
SETTLE_S = 5.0
PROFILE_H = os.path.join(HERE, "..", "..", "src", "smap", "smap_profile.h")
BUDGET_FALLBACK_MS = 3000


def policy(d):
    return ("version: STSv1\r\nmode: enforce\r\nmx: mx1.%s\r\nmx: *.mx.%s\r\n"
            "max_age: 604800\r\n" % (d, d))


def world(domains, delay_ms, slow=(), slow_ms=0):
    """The fixtures' world: every domain publishes an enforce policy, sent
    delay_ms after its request, or slow_ms for the domains in slow.
    Domains not given are NXDOMAIN (no TXT record: no policy)."""
    names, hosts = {}, {}
    slow = set(slow)
    for d in domains:
        names["_mta-sts." + d] = {"TXT": [["v=STSv1; id=burst1;"]]}
        names["mta-sts." + d] = {"A": ["127.0.0.1"]}
        names[d] = {"MX": [[10, "mx1." + d]]}
        hosts["mta-sts." + d] = {"cert": "good", "body": policy(d),
                                 "delay_ms": slow_ms if d in slow else delay_ms}
    return {"names": names, "default": "NXDOMAIN"}, {"hosts": hosts, "default_cert": "good"}


def netstring(s):
    b = s.encode()
    return b"%d:%s," % (len(b), b)


def burst(port, domains, timeout=BURST_TIMEOUT):
    """Ask every domain at once, one connection each.  Returns
    (replies {domain: text or None}, times {domain: s after the first send},
    seconds the sends took, time.time() of the first send)."""
    sel = selectors.DefaultSelector()
    conns = {}
    replies, times = {}, {}
    t0_wall = time.time()
    t0 = time.monotonic()
    for d in domains:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex(("127.0.0.1", port))
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            replies[d] = None
            continue
        conns[s] = [d, netstring("postfix " + d), b""]
        sel.register(s, selectors.EVENT_WRITE)
    sent_s = time.monotonic() - t0
    deadline = t0 + timeout
    while conns and time.monotonic() < deadline:
        for key, ev in sel.select(timeout=0.5):
            s = key.fileobj
            c = conns[s]
            try:
                if ev & selectors.EVENT_WRITE:
                    n = s.send(c[1])
                    c[1] = c[1][n:]
                    if not c[1]:
                        sel.modify(s, selectors.EVENT_READ)
                    continue
                chunk = s.recv(4096)
            except OSError:
                chunk = b""
            if chunk:
                c[2] += chunk
                head, sep, rest = c[2].partition(b":")
                if not sep or not head.isdigit() or len(rest) < int(head) + 1:
                    continue
                replies[c[0]] = rest[:int(head)].decode("utf-8", "replace")
            else:
                replies[c[0]] = None
            times[c[0]] = time.monotonic() - t0
            sel.unregister(s)
            s.close()
            del conns[s]
    for s, c in conns.items():
        replies[c[0]] = None
        sel.unregister(s)
        s.close()
    sel.close()
    return replies, times, sent_s, t0_wall


def daemon_budget():
    """(seconds, where from) the daemon waits for a cold domain: the
    budget of the built-in "postfix" profile, which the bench asks through
    (it configures no SocketmapProfile), STS_SMAP_BUDGET_DEFAULT_MS."""
    try:
        with open(PROFILE_H) as fh:
            m = re.search(r"^#define STS_SMAP_BUDGET_DEFAULT_MS (\d+)u?\s*$", fh.read(), re.M)
        if m:
            return int(m.group(1)) / 1000.0, "STS_SMAP_BUDGET_DEFAULT_MS"
    except OSError:
        pass
    return BUDGET_FALLBACK_MS / 1000.0, "assumed: STS_SMAP_BUDGET_DEFAULT_MS not read"


def attribute(lost, stats, queries, t0_wall, budget_s):
    """Split the lost domains by when the HTTPS fixture sent their policy
    (its "sent" times, SNI mta-sts.D), against the first request's
    time.time() t0_wall + budget_s.  stats: the HTTPS fixture's; queries:
    the DNS fixture's per name/TYPE.  Returns counts:
        intime   the policy went out within the budget: the server had it
                 in time and lost the answer itself
        fxlate   it went out later, or a fetch reached the fixture and no
                 policy had gone out yet ("pending" counts those);
                 "asklate" counts those whose request itself reached the
                 fixture after the budget (the "asked" time)
        nofetch  no fetch of it reached the HTTPS fixture; "nolookup"
                 counts those not even asked of the DNS fixture (TXT)"""
    sent = stats.get("sent", {})
    asked = stats.get("asked", {})
    conns = stats.get("connections", {})
    limit = t0_wall + budget_s
    out = dict.fromkeys(("fxlate", "intime", "nofetch", "pending", "asklate", "nolookup"), 0)
    for d in lost:
        sni = "mta-sts." + d
        if sni in sent and sent[sni] <= limit:
            out["intime"] += 1
        elif sni in sent or conns.get(sni, 0):
            out["fxlate"] += 1
            out["pending"] += sni not in sent
            # no request read at all (handshake unfinished) is late too
            out["asklate"] += asked.get(sni, limit + 1) > limit
        else:
            out["nofetch"] += 1
            out["nolookup"] += not queries.get("_mta-sts.%s/TXT" % d, 0)
    return out


class Bench:
    def __init__(self, args, work, peer_why):
        self.args = args
        self.work = work
        self.peer_why = peer_why
        self.fx = self.daemon = self.peer = self.sysd = None
        self.mounted = False
        self.sys_why = None if netns.inside() else (
            "not in a private network and mount namespace (root and the peer package "
            "needed), where the system CA bundle can be replaced for this run only")
        self.servers = {}
        self.sets = {}
        self.mixed = {}     # (server, round): {"slow"|"quick"|"none": [domains]}
        self.budget_s, self.budget_from = daemon_budget()

    def domain_sets(self):
        """A fresh set of domains for every run: cold for whoever asks."""
        names = [s for s in SERVERS if (s != "peer" or self.peer_why is None)
                 and (s != "mtasts-sys" or self.sys_why is None)]
        for s in names:
            self.sets[(s, "warm")] = ["w%d.%s.burst.test" % (i, s) for i in range(WARM_DOMAINS)]
            for k in range(SINGLE_RUNS):
                self.sets[(s, "single", k)] = ["one%d.%s.burst.test" % (k, s)]
            for n in self.args.sizes:
                for r in range(self.args.rounds):
                    self.sets[(s, n, r)] = ["d%d.n%dr%d.%s.burst.test" % (i, n, r, s)
                                            for i in range(n)]
            if self.args.mixed:
                for r in range(self.args.rounds):
                    self.mixed[(s, r)] = {
                        kind: ["%s%d.mixr%d.%s.burst.test" % (kind, i, r, s) for i in range(k)]
                        for kind, k in zip(MIXED_KINDS, self.args.mixed)}
        return names

    def start(self):
        names = self.domain_sets()
        every = {d for ds in self.sets.values() for d in ds}
        slow = [d for m in self.mixed.values() for d in m["slow"]]
        every.update(slow, (d for m in self.mixed.values() for d in m["quick"]))
        every = sorted(every)   # the "none" domains of the mixed bursts stay NXDOMAIN
        self.fx = harness.Fixtures(os.path.join(self.work, "fixtures"))
        zone, hosts = world(every, self.args.delay_ms, slow, self.args.slow_ms)
        t = time.monotonic()
        how = prepare_certs(self.fx, sorted(hosts["hosts"]))
        note("certificates for %d policy hosts: %s (%.1f s)" % (len(every), how,
                                                                time.monotonic() - t))
        inside = netns.inside()
        dns_port = self.fx.start_dns(zone, port=peerd.DNS_PORT if inside else 0)
        https_port = self.fx.start_https(hosts, port=peerd.HTTPS_PORT if inside else 0)
        settings = {"DecisionLog": None,
                    "CacheStore": "sqlite:" + os.path.join(self.work, "daemon", "cache.db"),
                    # as shipped: no test overrides of the timeouts
                    "DNSTimeout": None, "DNSTries": None,
                    "HTTPSConnectTimeout": None, "HTTPSTimeout": None}
        if self.args.max_discoveries:
            settings["MaxDiscoveries"] = str(self.args.max_discoveries)
        if self.args.max_policy_fetches:
            settings["MaxPolicyFetches"] = str(self.args.max_policy_fetches)
        for kv in self.args.setting:
            settings[kv.split("=", 1)[0]] = kv.split("=", 1)[1]
        # No SocketmapProfile: "postfix DOMAIN" asks the built-in profile,
        # whose budget attribute() measures lost answers against.
        assert "SocketmapProfile" not in settings
        self.daemon = MilterDaemon(os.path.join(self.work, "daemon"), dns_port, https_port,
                                   self.fx.ca_file, settings=settings)
        self.daemon.start()
        mtautil.wait_port(self.daemon.socketmap_port, 20, alive=self.daemon.running,
                          what="mtasts-milter socketmap")
        self.servers["mtasts"] = (self.daemon.socketmap_port, self.daemon.popen.pid)
        if "mtasts-sys" in names:
            self.trust_test_ca_system_wide()
            sys_settings = dict(settings, CAFile=None)
            sys_settings["CacheStore"] = "sqlite:" + os.path.join(self.work, "sysd", "cache.db")
            self.sysd = MilterDaemon(os.path.join(self.work, "sysd"), dns_port, https_port,
                                     self.fx.ca_file, settings=sys_settings)
            self.sysd.start()
            mtautil.wait_port(self.sysd.socketmap_port, 20, alive=self.sysd.running,
                              what="mtasts-milter (system store) socketmap")
            self.servers["mtasts-sys"] = (self.sysd.socketmap_port, self.sysd.popen.pid)
        if "peer" in names:
            self.peer = peerd.Peer(os.path.join(self.work, "peer"), self.fx.ca_file,
                                   verbosity="warn")
            self.peer.start()
            self.servers["peer"] = (self.peer.port, self.peer.pid)
        for s in names:
            replies, _, _, _ = burst(self.servers[s][0], self.sets[(s, "warm")])
            bad = [d for d, r in replies.items() if r is None or not r.startswith("OK ")]
            if bad:
                raise RuntimeError("warming %s: %d of %d domains got no policy, e.g. %s: %r"
                                   % (s, len(bad), WARM_DOMAINS, bad[0], replies[bad[0]]))
        note("warm-up: %d domains on %s, every reply a policy" % (WARM_DOMAINS,
                                                                 " and ".join(names)))
        return names

    def trust_test_ca_system_wide(self):
        """Bind-mount the system bundle + the test CA over the system bundle,
        in this process's private mount namespace (ip netns exec made it)."""
        bundle = os.path.join(self.work, "system-plus-test-ca.pem")
        with open(bundle, "wb") as out:
            for f in (SYSTEM_BUNDLE, self.fx.ca_file):
                with open(f, "rb") as fh:
                    out.write(fh.read().rstrip(b"\n") + b"\n")
        r = subprocess.run(["mount", "--bind", bundle, SYSTEM_BUNDLE], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError("cannot bind-mount the CA bundle: " + r.stdout.strip())
        self.mounted = True

    def counts(self, domains):
        """(TXT queries, policy requests) per domain at the fixtures:
        (mean, max) each."""
        q = self.fx.dns_stats()["queries"]
        h = self.fx.https_stats()["requests"]
        txt = [q.get("_mta-sts.%s/TXT" % d, 0) for d in domains]
        get = [h.get("mta-sts." + d, 0) for d in domains]
        return (sum(txt) / len(txt), max(txt)), (sum(get) / len(get), max(get))

    def fixtures_cpu(self):
        xs = [proc_cpu(self.fx.procs[n].popen.pid) for n in ("dns", "https")]
        return None if None in xs else sum(xs)

    def settled_https_stats(self, lost):
        """The HTTPS fixture's stats once every lost domain whose fetch
        reached it has its policy sent (or SETTLE_S has passed): a policy
        the server gave up on may still be on its way."""
        deadline = time.monotonic() + SETTLE_S
        while True:
            st = self.fx.https_stats()
            sent, conns, aborted = st.get("sent", {}), st["connections"], st["aborted"]
            waiting = [d for d in lost if "mta-sts." + d not in sent
                       and conns.get("mta-sts." + d, 0) > aborted.get("mta-sts." + d, 0)]
            if not waiting or time.monotonic() >= deadline:
                return st
            time.sleep(0.1)

    def run(self, name, domains):
        port, pid = self.servers[name]
        cpu0, fcpu0 = proc_cpu(pid), self.fixtures_cpu()
        replies, times, sent_s, t0_wall = burst(port, domains)
        cpu1, fcpu1 = proc_cpu(pid), self.fixtures_cpu()
        time.sleep(0.3)     # the fixtures' stats files catch up
        ok = sum(1 for r in replies.values() if r is not None and r.startswith("OK "))
        nf = sum(1 for r in replies.values() if r is not None and r.startswith("NOTFOUND"))
        tmp = sum(1 for r in replies.values() if r is not None and r.startswith("TEMP"))
        none = sum(1 for r in replies.values() if r is None)
        lost = [d for d, r in replies.items()
                if r is None or r.startswith("NOTFOUND") or r.startswith("TEMP")]
        why = attribute(lost, self.settled_https_stats(lost), self.fx.dns_stats()["queries"],
                        t0_wall, self.budget_s)
        t = sorted(times.values())
        txt, get = self.counts(domains)
        cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
        fx_cpu = None if fcpu0 is None or fcpu1 is None else fcpu1 - fcpu0
        ncpu = os.cpu_count() or 1
        floor = None if cpu is None or fx_cpu is None else (cpu + fx_cpu) / ncpu
        return {"max": t[-1] if t else None, "median": med(t), "ok": ok, "notfound": nf,
                "temp": tmp, "noreply": none, "other": len(domains) - ok - nf - tmp - none,
                "lost": len(lost), "fxlate": why["fxlate"], "intime": why["intime"],
                "nofetch": why["nofetch"], "pending": why["pending"],
                "asklate": why["asklate"], "nolookup": why["nolookup"],
                "txt": txt, "get": get, "sent_s": sent_s, "cpu": cpu, "fx_cpu": fx_cpu,
                "floor": floor}

    def run_mixed(self, name, r):
        """The mixed burst: slow policy hosts, quick ones and domains with
        no TXT record, asked at once (interleaved).  Slow ones may be lost
        (their host answers after the budget); the others must not be held
        up by them."""
        port, _ = self.servers[name]
        m = self.mixed[(name, r)]
        # The slow ones first (the worst order: they reach the fetch stage
        # first), then the others interleaved.
        rest = [d for pair in zip(m["quick"], m["none"]) for d in pair]
        n = min(len(m["quick"]), len(m["none"]))
        order = m["slow"] + rest + m["quick"][n:] + m["none"][n:]
        replies, times, _, _ = burst(port, order)
        out = {}
        for k in MIXED_KINDS:
            want = "NOTFOUND" if k == "none" else "OK "
            ds = m[k]
            t = sorted(times[d] for d in ds if d in times)
            out[k] = {"n": len(ds),
                      "right": sum(1 for d in ds if (replies.get(d) or "").startswith(want)),
                      "median": med(t), "max": t[-1] if t else None,
                      # answered at the budget or later: held up, whatever the answer
                      "held": sum(1 for d in ds if times.get(d, BURST_TIMEOUT)
                                  >= self.budget_s - 0.05)}
        # the slow fetches go on after the budget: let them end first
        time.sleep(self.args.slow_ms / 1000.0 + 1.0)
        return out

    def stop(self):
        for x in (self.peer, self.sysd, self.daemon):
            if x is not None:
                try:
                    x.stop()
                except Exception as e:  # keep stopping the others
                    note("stopping: %s" % e)
        if self.fx is not None:
            self.fx.cleanup()
        if self.mounted:
            subprocess.run(["umount", SYSTEM_BUNDLE], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            self.mounted = False


def report(args, names, single, runs, load_start, budget):
    W = 138
    lines = ["", "=" * W,
             "Cold bursts over the socketmap: mtasts-milter / postfix-mta-sts-resolver "
             "(figures, not assertions)",
             "%d CPUs; load average at start %s, at end %s; policies served %d ms after "
             "their request; %d round(s)" % (os.cpu_count() or 0, load_start, loadavg(),
                                             args.delay_ms, args.rounds),
             "mtasts: MaxDiscoveries %s, CAFile the test CA; mtasts-sys: %s; peer: %s" % (
                 "%s, MaxPolicyFetches %s%s" % (args.max_discoveries or "default",
                                                args.max_policy_fetches or "default",
                                                "".join(", " + kv for kv in args.setting)),
                 "CAFile unset (system bundle + test CA)" if "mtasts-sys" in names
                 else "not measured",
                 "%s %s" % (peerd.PEER_PACKAGE, peerd.peer_version() or "?")
                 if "peer" in names else "not measured"),
             "lost answers measured against the daemon's budget %.3f s (%s; the default "
             "profile \"postfix\", which the bench asks through)" % budget,
             "=" * W]
    lines.append("one cold domain alone (median of %d): %s" % (SINGLE_RUNS, ", ".join(
        "%s %s s" % (s, fr(single.get(s), "%.3f")) for s in names)))
    lines.append("  %-10s %5s %-5s %8s %8s %6s %9s %14s %5s %6s %6s %6s %6s %7s %7s %7s %7s" % (
        "server", "size", "round", "slowest", "median", "lost", "NF/TEMP/-", "late/intime/nf",
        "other", "CPU s", "fx CPU", "floor", "/floor", "TXT/dom", "GET/dom", "/peer",
        "/single"))
    kv = ["single_%s=%s" % (s, fr(single.get(s), "%.3f")) for s in names]
    goals = []
    for n in args.sizes:
        for r in range(args.rounds):
            for s in names:
                x = runs[(s, n, r)]
                p = runs.get(("peer", n, r))
                lines.append("  %-10s %5d %-5d %8s %8s %6d %9s %14s %5d %6s %6s %6s %6s "
                             "%3.2f/%-3d %3.2f/%-3d %7s %7s" % (
                                 s, n, r + 1, fr(x["max"], "%.3f"), fr(x["median"], "%.3f"),
                                 x["lost"],
                                 "%d/%d/%d" % (x["notfound"], x["temp"], x["noreply"]),
                                 "%d/%d/%d" % (x["fxlate"], x["intime"], x["nofetch"]),
                                 x["other"], fr(x["cpu"], "%.2f"), fr(x["fx_cpu"], "%.2f"),
                                 fr(x["floor"], "%.2f"),
                                 fr(ratio(x["max"], x["floor"]), "%.2f"),
                                 x["txt"][0], x["txt"][1],
                                 x["get"][0], x["get"][1],
                                 fr(ratio(x["max"], p["max"] if p else None), "%.2f")
                                 if s != "peer" else "",
                                 fr(ratio(x["max"], single.get(s)), "%.1f")))
        for s in names:
            rs = [runs[(s, n, r)] for r in range(args.rounds)]
            mx = med([x["max"] for x in rs])
            kv.append("n%d_%s_max=%s" % (n, s, fr(mx, "%.3f")))
            kv.append("n%d_%s_median=%s" % (n, s, fr(med([x["median"] for x in rs]), "%.3f")))
            kv.append("n%d_%s_lost=%d" % (n, s, sum(x["lost"] for x in rs)))
            for k in ("fxlate", "asklate", "intime", "nofetch", "nolookup"):
                kv.append("n%d_%s_lost_%s=%d" % (n, s, k, sum(x[k] for x in rs)))
            fl = med([x["floor"] for x in rs])
            kv.append("n%d_%s_floor=%s" % (n, s, fr(fl, "%.3f")))
            kv.append("n%d_%s_max_floor=%s" % (n, s, fr(ratio(mx, fl), "%.2f")))
            kv.append("n%d_%s_txt_max=%d" % (n, s, max(x["txt"][1] for x in rs)))
            kv.append("n%d_%s_get_max=%d" % (n, s, max(x["get"][1] for x in rs)))
        for dm in [x for x in DAEMONS if x in names]:
            m = med([runs[(dm, n, r)]["max"] for r in range(args.rounds)])
            if "peer" in names:
                pm = med([runs[("peer", n, r)]["max"] for r in range(args.rounds)])
                kv.append("n%d_%s_ratio_peer=%s" % (n, dm, fr(ratio(m, pm), "%.2f")))
                goals.append("%d: %s slowest %s s, peer %s s (goal: never slower: %s)" % (
                    n, dm, fr(m, "%.3f"), fr(pm, "%.3f"),
                    "-" if m is None or pm is None else ("met" if m <= pm else "MISSED")))
            rs = [runs[(dm, n, r)] for r in range(args.rounds)]
            lost, intime = sum(x["lost"] for x in rs), sum(x["intime"] for x in rs)
            fxlate, asklate = sum(x["fxlate"] for x in rs), sum(x["asklate"] for x in rs)
            # Only a policy asked in time and sent late is the fixture's
            # doing; a request sent late or never is the server's.
            ours = lost - (fxlate - asklate)
            goals.append("%d: %s answers lost %d: %d with the policy sent within the budget, "
                         "%d fixture late (%d asked after the budget), %d never fetched (%d not "
                         "looked up); %d not the fixture's doing (goal: none lost while the "
                         "fixture answered in time: %s)" % (
                             n, dm, lost, intime, fxlate, asklate,
                             sum(x["nofetch"] for x in rs), sum(x["nolookup"] for x in rs),
                             ours, "met" if ours == 0 else "MISSED"))
            one = single.get(dm)
            goals.append("%d: %s slowest %s x one domain's time (goal <= %.0f: %s)" % (
                n, dm, fr(ratio(m, one), "%.1f"), GOAL_FACTOR,
                "-" if m is None or not one else ("met" if m <= GOAL_FACTOR * one
                                                  else "MISSED")))
    lines.append(textwrap.fill(
                 "slowest, median: s from the first request sent to the reply; lost: "
                 "NOTFOUND/TEMP/no reply; late/intime/nf: the lost answers whose policy the "
                 "HTTPS fixture sent after the first request + the budget (or had not sent "
                 "when its fetch was given up: fixture late), within it (the server had it "
                 "in time and lost the answer itself), or that no fetch reached (never "
                 "fetched); the peer, which has no such budget, is measured with the same "
                 "yardstick; CPU s: the server's CPU seconds for the burst; fx CPU: the DNS "
                 "and HTTPS fixtures'; floor: (CPU s + fx CPU) / %d CPUs, the CPU floor: the "
                 "machine cannot answer faster than its CPUs allow, and the fixtures share "
                 "them with the server; /floor: slowest over that floor; TXT/dom, GET/dom: "
                 "mean/max per domain at the fixtures; /peer: slowest over the peer's; "
                 "/single: slowest over one domain alone" % (os.cpu_count() or 0), W))
    lines.append("goal: " + ";\n      ".join(goals))
    lines.append("=" * W)
    lines.append("BENCH burst %s rounds=%d delay_ms=%d" % (" ".join(kv), args.rounds,
                                                           args.delay_ms))
    note("\n".join(lines))


def report_mixed(args, names, mixed, budget_s):
    """The mixed burst's table, goal and BENCH line."""
    W = 138
    lines = ["", "mixed burst: %d domains whose policy host answers after %d ms (slow), %d whose "
             "policy comes after %d ms (quick), %d with no TXT record (none), asked at once, "
             "the slow ones first; right: a policy (slow, quick) or NOTFOUND (none); held: answered "
             "%.1f s (the budget) or more after the first request" % (
                 args.mixed[0], args.slow_ms, args.mixed[1], args.delay_ms, args.mixed[2],
                 budget_s),
             "  %-10s %-5s %-26s %-26s %-26s" % ("server", "round", "slow: right held",
                                                  "quick: right held slowest",
                                                  "none: right held median")]
    kv, goals = [], []
    for s in names:
        for r in range(args.rounds):
            x = mixed[(s, r)]
            lines.append("  %-10s %-5d %-26s %-26s %-26s" % (
                s, r + 1, "%d/%d %d" % (x["slow"]["right"], x["slow"]["n"], x["slow"]["held"]),
                "%d/%d %d %s s" % (x["quick"]["right"], x["quick"]["n"], x["quick"]["held"],
                                   fr(x["quick"]["max"], "%.3f")),
                "%d/%d %d %s s" % (x["none"]["right"], x["none"]["n"], x["none"]["held"],
                                   fr(x["none"]["median"], "%.3f"))))
        rs = [mixed[(s, r)] for r in range(args.rounds)]
        held = sum(x[k]["held"] for x in rs for k in ("quick", "none"))
        wrong = sum(x[k]["n"] - x[k]["right"] for x in rs for k in ("quick", "none"))
        kv += ["mixed_%s_quick_wrong=%d" % (s, sum(x["quick"]["n"] - x["quick"]["right"]
                                                 for x in rs)),
               "mixed_%s_quick_max=%s" % (s, fr(med([x["quick"]["max"] for x in rs]), "%.3f")),
               "mixed_%s_none_wrong=%d" % (s, sum(x["none"]["n"] - x["none"]["right"]
                                                for x in rs)),
               "mixed_%s_none_median=%s" % (s, fr(med([x["none"]["median"] for x in rs]),
                                                 "%.3f")),
               "mixed_%s_held=%d" % (s, held)]
        if s in DAEMONS:
            goals.append("mixed: %s quick and no-policy answers held up to the budget %d, "
                         "wrong %d (goal: none held up by slow policy hosts: %s)" % (
                             s, held, wrong, "met" if held == 0 and wrong == 0 else "MISSED"))
    lines.append("goal: " + ";\n      ".join(goals))
    lines.append("=" * W)
    lines.append("BENCH burst_mixed %s rounds=%d slow_ms=%d mixed=%s" % (
        " ".join(kv), args.rounds, args.slow_ms, ",".join(str(k) for k in args.mixed)))
    note("\n".join(lines))


def run(args, bench, load_start):
    failed = False
    try:
        names = bench.start()
        single = {}
        for s in names:
            ts = []
            for k in range(SINGLE_RUNS):
                x = bench.run(s, bench.sets[(s, "single", k)])
                if x["ok"] != 1:
                    raise RuntimeError("%s: one cold domain got no policy" % s)
                ts.append(x["max"])
            single[s] = med(ts)
            note("%-10s one cold domain: %s s" % (s, " ".join("%.3f" % t for t in ts)))
        runs = {}
        for r, order in enumerate(rotation(names, args.rounds)):
            for n in (args.sizes if r % 2 == 0 else list(reversed(args.sizes))):
                for s in order:
                    x = bench.run(s, bench.sets[(s, n, r)])
                    runs[(s, n, r)] = x
                    note("round %d %-10s %5d domains: slowest %s s median %s s, %d policies, "
                         "%d NOTFOUND, %d TEMP, %d no reply, %d other; lost %d: %d fixture "
                         "late (%d asked after the budget, %d not sent at all), %d policy "
                         "sent in time, %d never fetched (%d not looked up in DNS); CPU %s s, "
                         "fixtures %s s, CPU floor %s s (slowest/floor "
                         "%s); TXT/dom %.2f (max %d), GET/dom %.2f (max %d); requests sent "
                         "in %.3f s"
                         % (r + 1, s, n, fr(x["max"], "%.3f"), fr(x["median"], "%.3f"),
                            x["ok"], x["notfound"], x["temp"], x["noreply"], x["other"],
                            x["lost"], x["fxlate"], x["asklate"], x["pending"], x["intime"],
                            x["nofetch"], x["nolookup"],
                            fr(x["cpu"], "%.2f"), fr(x["fx_cpu"], "%.2f"),
                            fr(x["floor"], "%.2f"), fr(ratio(x["max"], x["floor"]), "%.2f"),
                            x["txt"][0], x["txt"][1], x["get"][0],
                            x["get"][1], x["sent_s"]))
                    time.sleep(1.0)     # let the previous burst's stragglers settle
        mixed = {}
        for r, order in enumerate(rotation(names, args.rounds) if args.mixed else []):
            for s in order:
                x = mixed[(s, r)] = bench.run_mixed(s, r)
                note("round %d %-10s mixed burst: %s" % (r + 1, s, "; ".join(
                    "%s %d/%d right, median %s s, slowest %s s, %d at the budget or later"
                    % (k, x[k]["right"], x[k]["n"], fr(x[k]["median"], "%.3f"),
                       fr(x[k]["max"], "%.3f"), x[k]["held"]) for k in MIXED_KINDS)))
        report(args, names, single, runs, load_start, (bench.budget_s, bench.budget_from))
        if mixed:
            report_mixed(args, names, mixed, bench.budget_s)
    except (RuntimeError, OSError, AssertionError, harness.FixtureError) as e:
        note("!!! burst bench could not run: %s" % e)
        failed = True
    finally:
        bench.stop()
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="300,1000", help="comma list of burst sizes")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of every server and size")
    ap.add_argument("--delay-ms", type=int, default=50,
                    help="server-side delay of every policy response")
    ap.add_argument("--max-discoveries", type=int, default=0,
                    help="the daemon's MaxDiscoveries (default: as shipped)")
    ap.add_argument("--max-policy-fetches", type=int, default=0,
                    help="the daemon's MaxPolicyFetches (default: as shipped)")
    ap.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                    help="one more daemon setting (repeatable), e.g. PolicyFetchSlotTime=2s")
    ap.add_argument("--no-peer", action="store_true", help="leave the peer out")
    ap.add_argument("--mixed", default="200,100,700",
                    help="the mixed burst: SLOW,QUICK,NONE domains (slow policy hosts, quick "
                         "ones, no TXT record); 0 leaves it out")
    ap.add_argument("--slow-ms", type=int, default=8000,
                    help="delay of the slow policy hosts of the mixed burst")
    args = ap.parse_args()
    try:
        args.sizes = [int(x) for x in args.sizes.split(",") if x]
    except ValueError:
        ap.error("--sizes: a comma list of numbers")
    if not args.sizes or min(args.sizes) < 1 or args.rounds < 1:
        ap.error("--sizes and --rounds must be positive")
    try:
        args.mixed = [int(x) for x in args.mixed.split(",")] if args.mixed != "0" else []
    except ValueError:
        ap.error("--mixed: SLOW,QUICK,NONE or 0")
    if any("=" not in kv for kv in args.setting):
        ap.error("--setting: KEY=VALUE")
    if args.mixed and (len(args.mixed) != 3 or min(args.mixed) < 0 or sum(args.mixed) == 0):
        ap.error("--mixed: three counts SLOW,QUICK,NONE, or 0")

    why = MilterDaemon.available()
    if why:
        note("\nSKIP bench burst: " + why)
        return 0
    if not harness.have_dnslib():
        note("\nSKIP bench burst: python3-dnslib missing (DNS fixture)")
        return 0
    peer_why = "--no-peer" if args.no_peer else peerd.why_unavailable()
    if peer_why is None and not netns.inside():
        note("\n=== burst bench: running again in a private network namespace "
             "(the peer needs DNS on :53 and HTTPS on :443)")
        return netns.run_inside("bench-burst")
    # One socket per domain, here and in both servers.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(args.sizes) * 2 + 256
    if soft < want and (hard == resource.RLIM_INFINITY or hard >= want):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    load_start = loadavg()
    note("\n=== cold bursts of %s domains, policies %d ms after the request; %s; %d round(s)"
         % ("/".join(map(str, args.sizes)), args.delay_ms,
            "mtasts, mtasts-sys and peer" if peer_why is None
            else "mtasts only (peer and mtasts-sys: %s)" % peer_why,
            args.rounds))
    with harness.workdir("mtasts-bench-burst.", say=note) as work:
        return run(args, Bench(args, work, peer_why), load_start)


if __name__ == "__main__":
    sys.exit(main())
