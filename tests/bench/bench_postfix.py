#!/usr/bin/python3
"""Postfix throughput with no milter, a no-op milter and mtasts-milter,
Postfix delivering by MX lookup as deployed, so that mtasts-milter does
its real work on every recipient: policy lookup (a cache hit once warm),
tag header, route header.

Part of `make bench` (tests/bench/run-bench.sh --only postfix runs it
alone; its arguments then go here): figures, measured, never asserted.

Why a network namespace: the milter reads Postfix's {rcpt_mailer} and
{rcpt_host} at RCPT and skips (no lookup, no tag, action "skip") every
recipient that Postfix does not deliver by SMTP to the recipient domain's
own MX, e.g. all of them when there is a relayhost.  So Postfix here has no
relayhost: it looks the MX hosts up in DNS and delivers to port 25, which
only a private network namespace (tests/mta/netns.py; this script re-runs
itself inside one, like tests/mta/deliverylab.py's users) gives without
touching the host.  Inside it, all on loopback:

  * DNS: the fixture tests/fixtures/dnsd.py on 127.0.0.1:53, the only
    resolver (for Postfix's MX lookups and the daemon's TXT lookups);
  * HTTPS: tests/fixtures/httpsd.py on 127.0.0.1:443 serving the policies;
  * MX hosts: each recipient domain D has "D MX 10 mx1.D", mx1.D A
    127.0.0.N (N = 10, 11, ...), and there one Postfix smtp-sink on port
    25, which counts and discards;
  * one private Postfix (tests/mta/postfix.py, no relayhost,
    smtp_host_lookup = dns) on a free 127.0.0.1 port; Postfix's
    smtp-source pushes the messages.

Three configurations of smtpd_milters, switched with `postconf -e` and
`postfix reload` before every run, the rest of the Postfix config, the
messages and the recipients being the same for all:

    none     no milter
    noop     tests/bench/noop_milter: every callback registered, each
             answers CONTINUE, nothing negotiated away (a typical site
             milter that does nothing)
    mtasts   the real daemon (mtasts-milter -f -c CONF, CacheStore none,
             decision log on), its policy cache warmed first with one
             message per recipient domain

and, only when named with --only, for telling the cost of the protocol
apart from the daemon's own work:

    noop-as-mtasts  the no-op milter negotiating the protocol steps
             mtasts-milter negotiates (noop_milter -S mtasts) and adding
             two headers at end of message (-H 2), as mtasts-milter does
             for a message with one recipient domain (tag + route header)

Each run sends --messages messages (one recipient each) to --domains
recipient domains in rotation (a third with an enforce policy, a third
testing, the rest without a _mta-sts record), over --sessions parallel
SMTP sessions, one message per session unless --reuse.  The configurations
are alternated, in rotating order, for --rounds rounds: the machines this
runs on are noisy, so every run and the median are printed.

Two rates per run:
    accepted   messages / time until the last smtp-source exited (every
               message answered 250 by smtpd, which waits for the milter)
    delivered  messages / time until the smtp-sinks had counted them all
               (end to end through cleanup, qmgr, the MX lookup and smtp)
and the CPU seconds per message of Postfix (master and every daemon it
ran), of the milter process, and of smtp-source + the smtp-sinks.  After
the rounds, one single SMTP session per configuration sends
--latency-messages messages one after another: milliseconds per message,
where a protocol stall (e.g. a TCP delayed ACK) shows up whatever the
concurrency.

What mtasts-milter did is checked, not assumed: after every mtasts run the
new lines of its decision log are counted by action and printed (with
three enforce domains of ten: 30 % route-enforce, 70 % accept, all from
the cache).  A run in which it skipped a recipient ("skip": the MTA's
routing said the recipient is not its business) or wrote fewer decisions
than messages counts as failed: its figure would not measure the lookup.
The DNS queries of each run are printed for every configuration too
(Postfix's MX and A lookups; the daemon adds none with a warm cache).

--socket unix puts both milters on unix-domain sockets instead of
127.0.0.1 TCP ports (Postfix is not chrooted here).

Mail the milter routes as enforce ("X-MTA-STS-Route: enforce") goes, as in
production, through milter_header_checks FILTER with an empty next hop
(the recipient domain's MX, as packaging/postfix/mtasts_header_checks) to
a transport of its own, here "bench-enforce": the smtp client without the
socketmap and its TLS demand (smtp-sink speaks no STARTTLS), so the
delivery path differs between the configurations only by that transport,
not by TLS.

Ends with one machine-readable line (medians of the delivered rate; the
accepted rate with accept_ keys):
    BENCH postfix none=R noop=R mtasts=R ratio_noop=X ratio_none=X ...
Skips (exit 0, saying why) without root, ip netns (iproute2), Postfix,
smtp-source/smtp-sink, python3 dnslib, or a built daemon / noop milter;
exit 1 only when a run could not complete or did not measure lookups.

Environment: top_srcdir, top_builddir (set by make), MTASTS_MILTER (the
daemon; default $top_builddir/milter/mtasts-milter), BENCH_NOOP_MILTER
(default $top_builddir/tests/bench/noop_milter), MTASTS_KEEP_WORKDIR=1
keeps the work dir.
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "mta"))
import harness  # noqa: E402
import mtautil  # noqa: E402
import netns  # noqa: E402
from benchutil import (children_cpu, fr, loadavg, med, note, proc_cpu, ratio,  # noqa: E402
                       rotation)
from milterd import MilterDaemon, policy_text  # noqa: E402
from postfix import POSTCONF, PostfixInstance, postfix_available  # noqa: E402

SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
SENDER = "sender@client.test"
CONFIGS = ("none", "noop", "mtasts")
EXTRA_CONFIGS = ("noop-as-mtasts",)
NOOP_ARGS = {"noop": [], "noop-as-mtasts": ["-S", "mtasts", "-H", "2"]}
ROUTE_HEADER = "X-MTA-STS-Route"
DNS_PORT, HTTPS_PORT, SMTP_PORT = 53, 443, 25     # inside the namespace
MX_FIRST_IP = 10        # mx1.D of the i-th domain: 127.0.0.(10 + i)
LOOKUP_ACTIONS = ("route-enforce", "accept")      # what a looked-up recipient gets
SETTLE_S = 0.5          # after a reload: let the machine go quiet


def noop_binary():
    p = os.environ.get("BENCH_NOOP_MILTER")
    if p:
        return p
    return os.path.join(harness.builddir(), "tests", "bench", "noop_milter")


def why_skip(configs):
    """None if the benchmark of configs can run, else the reason it cannot."""
    why = postfix_available() or netns.available()
    if why:
        return why
    for tool in (SMTP_SOURCE, SMTP_SINK):
        if not os.access(tool, os.X_OK):
            return "%s missing (it is in the postfix package)" % tool
    if not harness.have_dnslib():
        return "python3-dnslib missing (DNS fixture)"
    why = MilterDaemon.available() if "mtasts" in configs else None
    if why:
        return why
    if any(c.startswith("noop") for c in configs) and not os.access(noop_binary(), os.X_OK):
        return "noop milter not built (%s; `make bench` builds it)" % noop_binary()
    return None


# ------------------------------------------------------------ the world

def bench_world(n):
    """n recipient domains: a third enforce, a third testing, the rest
    with an MX but no _mta-sts record.  Returns {domain: spec|None}; the
    domain's one MX host is mx1.DOMAIN."""
    world = {}
    n_enf = max(1, n // 3)
    n_tst = max(1, n // 3) if n > 1 else 0
    for i in range(n):
        if i < n_enf:
            d, mode = "e%d.bench.test" % i, "enforce"
        elif i < n_enf + n_tst:
            d, mode = "t%d.bench.test" % i, "testing"
        else:
            d, mode = "n%d.bench.test" % i, None
        world[d] = ({"mode": mode, "id": "bench%d" % i, "mx": ["mx1." + d]}
                    if mode else None)
    return world


def mx_addresses(world):
    """{domain: the address of its MX host mx1.DOMAIN}, 127.0.0.10 up."""
    if len(world) > 250 - MX_FIRST_IP:
        raise RuntimeError("at most %d recipient domains" % (250 - MX_FIRST_IP))
    return {d: "127.0.0.%d" % (MX_FIRST_IP + i) for i, d in enumerate(world)}


def world_fixtures(world, mx_ip):
    """The DNS zone and HTTPS scenarios of world (tests/fixtures/dnsd.py,
    httpsd.py): D MX 10 mx1.D, mx1.D A its address; with a policy also
    _mta-sts.D TXT and mta-sts.D A 127.0.0.1 (the HTTPS fixture)."""
    names, hosts = {}, {}
    for d, p in world.items():
        names[d] = {"MX": [[10, "mx1." + d]]}
        names["mx1." + d] = {"A": [mx_ip[d]]}
        if p is None:
            continue
        names["_mta-sts." + d] = {"TXT": [["v=STSv1; id=%s;" % p["id"]]]}
        names["mta-sts." + d] = {"A": ["127.0.0.1"]}
        hosts["mta-sts." + d] = {"body": policy_text(p["mode"], p["mx"])}
    return ({"names": names, "default": "NXDOMAIN", "ttl": 3600},
            {"hosts": hosts, "default_cert": "good"})


def write_message(path, headers, body_bytes):
    """A message for smtp-source -F: `headers` header lines (the usual ones
    first, then X-Bench-N filler) and a body of about body_bytes.  Returns
    its size in bytes as sent (CRLF)."""
    hdrs = ["From: Sender <%s>" % SENDER,
            "To: Recipient <rcpt@bench.test>",
            "Subject: mtasts-milter postfix benchmark",
            "Date: Mon, 1 Jan 2024 00:00:00 +0000",
            "Message-ID: <bench.0@client.test>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=us-ascii",
            "Content-Transfer-Encoding: 7bit"][:headers]
    i = 0
    while len(hdrs) < headers:
        hdrs.append("X-Bench-%d: filler header %d of a typical message" % (i, i))
        i += 1
    line = "The quick brown fox jumps over the lazy dog, again and again. 0123456789"
    body = []
    size = 0
    while size < body_bytes:
        body.append(line)
        size += len(line) + 2
    with open(path, "w") as fh:
        fh.write("\n".join(hdrs) + "\n\n" + "\n".join(body) + "\n")
    return sum(len(h) + 2 for h in hdrs) + 2 + size


# ------------------------------------------------------------ processes

def wait_unix_socket(path, timeout, alive, what):
    """Wait until a unix-domain socket at path accepts connections, then
    open it to the Postfix daemons (they run as the postfix user)."""
    deadline = time.monotonic() + timeout
    while True:
        if os.path.exists(path):
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.connect(path)
                os.chmod(path, 0o666)
                return
            except OSError:
                pass
        if not alive():
            raise RuntimeError("%s died before listening on %s" % (what, path))
        if time.monotonic() > deadline:
            raise RuntimeError("%s not listening on %s after %.0f s" % (what, path, timeout))
        time.sleep(0.05)


class Listen:
    """Where a milter listens: its libmilter spelling and Postfix's."""

    def __init__(self, kind, sockdir, name):
        if kind == "unix":
            self.path = os.path.join(sockdir, name + ".sock")
            self.libmilter = self.postfix = "unix:" + self.path
            self.port = None
        else:
            self.path = None
            self.port = mtautil.free_tcp_port()
            self.libmilter = "inet:%d@127.0.0.1" % self.port
            self.postfix = "inet:127.0.0.1:%d" % self.port

    def wait(self, alive, what):
        if self.path:
            wait_unix_socket(self.path, 20, alive, what)
        else:
            try:
                mtautil.wait_port(self.port, 20, alive=alive, what=what)
            except AssertionError as e:
                raise RuntimeError(str(e)) from None


class NoopMilter:
    """tests/bench/noop_milter -p SOCKET [args]."""

    def __init__(self, work, name, listen, args):
        self.listen = listen
        self.log = os.path.join(work, name + ".log")
        with open(self.log, "ab") as fh:
            self.popen = mtautil.spawn([noop_binary(), "-p", listen.libmilter] + args,
                                       stdout=fh, stderr=fh, cwd=work)
        try:
            listen.wait(lambda: self.popen.poll() is None, name)
        except RuntimeError as e:
            raise RuntimeError("%s\n%s" % (e, mtautil.tail(self.log))) from None

    @property
    def pid(self):
        return self.popen.pid

    def stop(self):
        mtautil.stop_group(self.popen, signal.SIGTERM, 5)


class MtastsMilter(MilterDaemon):
    """The real daemon as the MTA tests run it, CacheStore none, on a TCP
    port or (listen.path) a unix-domain socket."""

    def __init__(self, work, listen, dns_port, https_port, ca_file):
        settings = {"CacheStore": "none"}
        if listen.path:
            settings["Socket"] = listen.libmilter
        super().__init__(os.path.join(work, "daemon"), dns_port, https_port, ca_file,
                         milter_port=listen.port, settings=settings)
        self.listen = listen

    def start(self, timeout=20.0):
        self.write_config()
        with open(self.log, "ab") as fh:
            self.popen = mtautil.spawn([self.binary, "-f", "-c", self.conf],
                                       stdout=fh, stderr=fh, cwd=self.workdir)
        try:
            self.listen.wait(self.running, "mtasts-milter")
        except RuntimeError as e:
            raise RuntimeError("%s\n%s" % (e, self.diagnostics())) from None

    @property
    def pid(self):
        return self.popen.pid


class Sinks:
    """Postfix's smtp-sink, one process per MX address (ADDR:25); counts
    the messages of all from their -c output ("sess=N quit=N mesg=N\\r"
    on every change) and notes when the total last changed."""

    def __init__(self, workdir, addresses):
        self.counts = {}
        self.count = 0
        self.last_change = time.monotonic()
        self.cv = threading.Condition()
        self.errlog = os.path.join(workdir, "smtp-sink.err")
        self.popens = []
        with open(self.errlog, "ab") as err:
            for addr in addresses:
                p = mtautil.spawn([SMTP_SINK, "-c", "-u", "postfix",
                                   "%s:%d" % (addr, SMTP_PORT), "1024"],
                                  stdout=subprocess.PIPE, stderr=err)
                self.popens.append(p)
                self.counts[p.pid] = 0
                threading.Thread(target=self._read, args=(p,), daemon=True).start()
        for addr, p in zip(addresses, self.popens):
            try:
                mtautil.wait_port(SMTP_PORT, 10, host=addr, alive=lambda: p.poll() is None,
                                  what="smtp-sink on %s" % addr)
            except AssertionError as e:
                raise RuntimeError("%s\n%s" % (e, mtautil.tail(self.errlog))) from None

    def _read(self, popen):
        rx = re.compile(rb"mesg=(\d+)")
        buf = b""
        fd = popen.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            parts = buf.split(b"\r")
            buf = parts.pop()
            n = None
            for part in parts:
                m = rx.search(part)
                if m:
                    n = int(m.group(1))
            if n is not None:
                with self.cv:
                    if n != self.counts[popen.pid]:
                        self.count += n - self.counts[popen.pid]
                        self.counts[popen.pid] = n
                        self.last_change = time.monotonic()
                        self.cv.notify_all()

    def wait_count(self, n, timeout):
        """Wait until n messages were counted; returns the time the count
        reached n (time.monotonic), or None on timeout."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while self.count < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cv.wait(left)
            return self.last_change

    def cpu(self):
        return sum(group_cpu(p.pid) for p in self.popens)

    def stop(self):
        for p in self.popens:
            mtautil.stop_group(p, signal.SIGTERM, 5)


# ------------------------------------------------------------ CPU

def group_cpu(pgid):
    """CPU seconds of a process group: every live member (user + system)
    plus, for each, its reaped children (cutime + cstime), so that Postfix
    daemons that exited are still counted, in master's cutime."""
    tck = float(os.sysconf("SC_CLK_TCK"))
    total = 0
    for pid in mtautil.group_members(pgid):
        try:
            with open("/proc/%d/stat" % pid) as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
        except (OSError, IndexError, ValueError):
            pass
    return total / tck


# ------------------------------------------------------------ the bench

class Bench:
    def __init__(self, args, work, configs):
        self.args = args
        self.work = work
        self.configs = configs
        self.fx = None
        self.sink = None
        self.pf = None
        self.milters = {}            # config -> NoopMilter / MtastsMilter
        self.world = bench_world(args.domains)
        self.domains = list(self.world)
        self.mx_ip = mx_addresses(self.world)
        self.msgfile = os.path.join(work, "message.txt")
        self.msg_size = write_message(self.msgfile, args.headers, args.body_bytes)
        self.current = None

    # -------------------------------------------------------- set-up
    def start(self):
        t0 = time.monotonic()
        if not netns.inside():
            raise RuntimeError("must run inside netns.run_inside() (ports 25, 53, 443)")
        self.fx = harness.Fixtures(os.path.join(self.work, "fixtures"))
        zone, https = world_fixtures(self.world, self.mx_ip)
        dns_port = self.fx.start_dns(zone, port=DNS_PORT)
        https_port = self.fx.start_https(https, port=HTTPS_PORT)
        self.sink = Sinks(self.work, [self.mx_ip[d] for d in self.domains])
        sockdir = os.path.join(self.work, "sockets")
        os.makedirs(sockdir, exist_ok=True)
        os.chmod(sockdir, 0o755)
        for c in self.configs:
            if c == "none":
                continue
            listen = Listen(self.args.socket, sockdir, c)
            if c == "mtasts":
                m = MtastsMilter(self.work, listen, dns_port, https_port, self.fx.ca_file)
                m.start()
            else:
                m = NoopMilter(self.work, c, listen, NOOP_ARGS[c])
            self.milters[c] = m

        # Enforce-routed mail: a transport of its own, FILTER with an empty
        # next hop (the recipient domain's MX, as in production), to the
        # same sinks (see the module doc: no TLS there).  No relayhost and
        # no default_filter_nexthop: every recipient is delivered by MX
        # lookup, so mtasts-milter does not skip it.
        hc = os.path.join(self.work, "bench_header_checks")
        with open(hc, "w") as fh:
            fh.write("/^%s: enforce$/ FILTER bench-enforce:\n" % re.escape(ROUTE_HEADER))
        extra = ("bench-enforce unix -   -       n       -       -       smtp\n"
                 "  -o syslog_name=postfix/bench-enforce\n")
        self.pf = PostfixInstance(os.path.join(self.work, "postfix"),
                                  relay_port=None, enforce_port=None,
                                  milter=None, header_checks_file=hc, master_extra=extra,
                                  route_header=ROUTE_HEADER, lifetime=1200)
        try:
            self.pf.start()
        except Exception as e:
            raise RuntimeError("postfix did not start: %s" % e) from None
        note("set-up (netns %s): Postfix %s on 127.0.0.1:%d (no relayhost, MX lookups), "
             "%d smtp-sinks on %s-%s:%d, milters %s, DNS 127.0.0.1:%d, HTTPS :%d (%.1f s)"
             % (netns.inside(), _mail_version(), self.pf.smtpd_port, len(self.domains),
                self.mx_ip[self.domains[0]], self.mx_ip[self.domains[-1]], SMTP_PORT,
                ", ".join("%s %s" % (c, m.listen.postfix) for c, m in self.milters.items()),
                dns_port, https_port, time.monotonic() - t0))

    def stop(self):
        if self.pf is not None:
            try:
                self.pf.stop()
            except Exception as e:  # keep tearing down
                note("(stopping postfix: %s)" % e)
        for m in self.milters.values():
            try:
                m.stop()
            except Exception as e:
                note("(stopping a milter: %s)" % e)
        if self.sink is not None:
            self.sink.stop()
        if self.fx is not None:
            self.fx.cleanup()

    # -------------------------------------------------------- config
    def configure(self, config):
        """smtpd_milters for config, then `postfix reload`, before every
        run: each starts with fresh smtpd and cleanup processes."""
        value = self.milters[config].listen.postfix if config != "none" else ""
        rc, out = mtautil.run([POSTCONF, "-c", self.pf.etc, "-e",
                               "smtpd_milters=" + value], timeout=30)
        if rc != 0:
            raise RuntimeError("postconf -e smtpd_milters=%s: %s" % (value, out))
        before = len(self.pf.log_lines(pattern=r"reload -- version"))
        rc, out = self.pf.postfix("reload", timeout=60)
        if rc != 0:
            raise RuntimeError("postfix reload: %s\n%s" % (out, self.pf.diagnostics()))
        deadline = time.monotonic() + 20
        while len(self.pf.log_lines(pattern=r"reload -- version")) <= before:
            if time.monotonic() > deadline:
                raise RuntimeError("postfix reload not logged\n" + self.pf.diagnostics())
            time.sleep(0.05)
        self.current = config
        time.sleep(SETTLE_S)

    # -------------------------------------------------------- traffic
    def push(self, n, sessions, domains=None, timeout=None):
        """Send n messages, domains in rotation (one smtp-source per
        domain, n and the sessions split evenly among them), wait until the
        sink counted them all and the queue is empty.  Returns a dict."""
        domains = domains or self.domains
        timeout = timeout or self.args.timeout
        k = len(domains)
        counts = [n // k + (1 if i < n % k else 0) for i in range(k)]
        sess = [max(1, sessions // k + (1 if i < sessions % k else 0)) for i in range(k)]
        base = self.sink.count
        pf_pgid = self.pf.popen.pid
        milter = self.milters.get(self.current)

        def cpu_now():
            return {"postfix": group_cpu(pf_pgid),
                    "milter": group_cpu(milter.pid) if milter else 0.0,
                    "sink": self.sink.cpu(),
                    "source": children_cpu(),
                    "fixtures": sum(proc_cpu(p.popen.pid) or 0.0
                                    for p in self.fx.procs.values())}
        is_mtasts = self.current == "mtasts"
        dec0 = len(milter.decisions()) if is_mtasts else None
        cpu0 = cpu_now()
        dns0 = self.fx.dns_stats().get("total")
        procs = []
        t0 = time.monotonic()
        for d, c, ns in zip(domains, counts, sess):
            if c == 0:
                continue
            argv = [SMTP_SOURCE, "-s", str(min(ns, c)), "-m", str(c), "-f", SENDER,
                    "-t", "rcpt@" + d, "-M", "client.test", "-F", self.msgfile]
            if self.args.reuse:
                argv.append("-d")
            argv.append("127.0.0.1:%d" % self.pf.smtpd_port)
            procs.append((d, subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                              stdout=subprocess.PIPE,
                                              stderr=subprocess.STDOUT)))
        errors = []
        for d, p in procs:
            try:
                out, _ = p.communicate(timeout=max(1.0, t0 + timeout - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
                errors.append("smtp-source to %s timed out" % d)
                continue
            if p.returncode != 0:
                errors.append("smtp-source to %s: exit %d: %s"
                              % (d, p.returncode,
                                 out.decode("latin-1", "replace").strip()[-300:]))
        t_accept = time.monotonic()
        t_done = None
        if not errors:
            t_done = self.sink.wait_count(base + n, max(1.0, t0 + timeout - time.monotonic()))
            if t_done is None:
                errors.append("the sink counted %d of %d messages in %d s"
                              % (self.sink.count - base, n, timeout))
        # Everything delivered: the queue must be empty (nothing deferred).
        deadline = time.monotonic() + 10
        while not errors and self.pf.queue_files():
            if time.monotonic() > deadline:
                errors.append("queue not empty after delivery: %r"
                              % {q: len(v) for q, v in self.pf.queue_files().items()})
            time.sleep(0.05)
        cpu1 = cpu_now()
        dns1 = self.fx.dns_stats().get("total")
        actions = cached = None
        if is_mtasts and not errors:
            actions, cached = self.count_decisions(milter, dec0, n, errors)
        ok = not errors
        return {
            "n": n,
            "errors": errors,
            "accept_s": t_accept - t0,
            "done_s": (t_done - t0) if t_done else None,
            "accept_rate": n / (t_accept - t0) if ok else None,
            "rate": n / (t_done - t0) if ok and t_done else None,
            "cpu": {k: cpu1[k] - cpu0[k] for k in cpu0},
            "dns": (dns1 - dns0) if dns0 is not None and dns1 is not None else None,
            "actions": actions,
            "from_cache": cached,
        }

    @staticmethod
    def count_decisions(milter, before, n, errors):
        """The decision log lines of mtasts-milter after the first before:
        ({action: count}, how many from the cache).  Appends to errors when
        they are not n lookups (one per message) -- a skip, or a missing
        line, would make the run's figure measure something else."""
        try:
            ds = milter.wait_decisions(lambda x: len(x) >= before + n, timeout=10)
        except AssertionError:
            ds = milter.decisions()
        new = ds[before:]
        actions = {}
        for x in new:
            actions[x.get("action")] = actions.get(x.get("action"), 0) + 1
        cached = sum(1 for x in new if x.get("from_cache"))
        looked_up = sum(actions.get(a, 0) for a in LOOKUP_ACTIONS)
        if len(new) != n or looked_up != n:
            skips = [x for x in new if x.get("action") == "skip"]
            errors.append("mtasts-milter wrote %d decisions for %d messages, %d of them "
                          "lookups (%s); actions %s%s"
                          % (len(new), n, looked_up, "/".join(LOOKUP_ACTIONS),
                             fmt_actions(actions),
                             "; a skip: %s" % skips[0].get("reason") if skips else ""))
        return actions, cached

    def warm_mtasts(self):
        """One message per domain through mtasts-milter, one after another:
        every policy (and every no-policy answer) is in its cache after."""
        m = self.milters["mtasts"]
        self.configure("mtasts")
        t0 = time.monotonic()
        for d in self.domains:
            r = self.push(1, 1, domains=[d], timeout=30)
            if r["errors"]:
                raise RuntimeError("warming %s: %s\n%s\n%s" % (
                    d, "; ".join(r["errors"]), self.pf.diagnostics(), m.diagnostics()))
        try:
            ds = m.wait_decisions(lambda x: len(x) >= len(self.domains), timeout=10)
        except AssertionError as e:
            raise RuntimeError(str(e)) from None
        got = {x.get("domain"): x for x in ds}
        note("warm-up: one message per domain through mtasts-milter in %.1f s; result/action: %s"
             % (time.monotonic() - t0,
                ", ".join("%s=%s/%s" % (d, got.get(d, {}).get("result"),
                                        got.get(d, {}).get("action")) for d in self.domains)))
        skipped = [x for x in ds if x.get("action") not in LOOKUP_ACTIONS]
        if skipped:
            raise RuntimeError("mtasts-milter did not look up every domain (the bench would "
                               "not measure lookups): %s" % skipped[0])

    def decision_summary(self):
        """(decisions, from the cache, {action: n}) of the timed runs."""
        timed = self.milters["mtasts"].decisions()[len(self.domains):]
        hits = sum(1 for x in timed if x.get("from_cache"))
        by_action = {}
        for x in timed:
            by_action[x.get("action")] = by_action.get(x.get("action"), 0) + 1
        return len(timed), hits, by_action


def fmt_actions(actions):
    """{action: n} as "route-enforce 600, accept 1400" (lookups first)."""
    if not actions:
        return "-"
    keys = [a for a in LOOKUP_ACTIONS if a in actions] + \
        sorted(a for a in actions if a not in LOOKUP_ACTIONS)
    return ", ".join("%s %d" % (a, actions[a]) for a in keys)


def _mail_version():
    rc, out = mtautil.run([POSTCONF, "-d", "-h", "mail_version"], timeout=20)
    return out.strip() if rc == 0 else "?"


# ------------------------------------------------------------ report

def report(runs, latency, args, bench, load_start):
    W = 110
    configs = bench.configs
    modes = {}
    for v in bench.world.values():
        k = v["mode"] if v else "no policy"
        modes[k] = modes.get(k, 0) + 1
    lines = ["", "=" * W,
             "Postfix throughput: no milter / no-op milter / mtasts-milter (figures, not "
             "assertions)",
             "Postfix delivers by MX lookup (no relayhost) in a private network namespace: "
             "DNS fixture on 127.0.0.1:53,",
             "policies on :443, each domain's MX an smtp-sink on 127.0.0.N:25; so "
             "mtasts-milter looks up every recipient",
             "(cache hits once warm), tags it and routes enforce mail (FILTER to a "
             "transport of its own, no TLS: smtp-sink has none)",
             "%d CPUs; load average at start %s, at end %s" % (
                 os.cpu_count() or 0, load_start, loadavg()),
             "per run: %d messages, 1 recipient each, %d recipient domains in rotation (%s); "
             "%d parallel SMTP sessions, %s"
             % (args.messages, len(bench.domains),
                ", ".join("%d %s" % (n, m) for m, n in sorted(modes.items())),
                args.sessions,
                "all of a session's messages on one connection (-d)" if args.reuse
                else "one message per connection"),
             "message %d bytes with %d header lines; milters on %s sockets; mtasts-milter: "
             "CacheStore none, cache warm (one message per domain first), decision log on"
             % (bench.msg_size, args.headers,
                "unix-domain" if args.socket == "unix" else "127.0.0.1 TCP"),
             "order: " + " | ".join(" ".join(r) for r in rotation(configs, args.rounds)),
             "=" * W]
    med_rate = {c: med([r["rate"] for r in runs[c]]) for c in configs}
    med_acc = {c: med([r["accept_rate"] for r in runs[c]]) for c in configs}

    def table(title, key, meds):
        lines.append(title)
        lines.append("  %-15s %-30s %8s %8s %8s" % ("config", "each run (msgs/s)", "median",
                                                  "vs noop", "vs none"))
        for c in configs:
            each = " ".join("%6s" % fr(r[key]) for r in runs[c])
            lines.append("  %-15s %-30s %8s %8s %8s" % (
                c, each, fr(meds[c]), fr(ratio(meds[c], meds.get("noop")), "%.3f"),
                fr(ratio(meds[c], meds.get("none")), "%.3f")))
        lines.append("")

    table("delivered: smtp-source start -> last message counted by smtp-sink", "rate", med_rate)
    table("accepted: smtp-source start -> last smtp-source done (smtpd said 250 to all)",
          "accept_rate", med_acc)
    lines.append("CPU ms per message (median of runs): Postfix = master and every daemon; "
                 "load generator = smtp-source + smtp-sinks; fixtures = DNS + HTTPS")
    for c in configs:
        def per(f):
            return fr(med([f(r["cpu"]) * 1000.0 / r["n"] for r in runs[c]]), "%.3f")
        lines.append("  %-15s Postfix %6s  milter %6s  together %6s  load generator %6s  "
                     "fixtures %6s"
                     % (c, per(lambda u: u["postfix"]), per(lambda u: u["milter"]),
                        per(lambda u: u["postfix"] + u["milter"]),
                        per(lambda u: u["source"] + u["sink"]), per(lambda u: u["fixtures"])))
    if latency:
        lines.append("")
        lines.append("one SMTP session, %d messages one after another (ms per message, "
                     "whole SMTP transaction)" % args.latency_messages)
        lines.append("  " + "  ".join("%s %s" % (c, fr(latency.get(c), "%.1f"))
                                      for c in configs))
    lines.append("")
    lines.append("DNS queries per run (Postfix's MX and A lookups; mtasts-milter's own on top)")
    for c in configs:
        lines.append("  %-15s %s" % (c, " ".join("%6s" % fr(r["dns"], "%d") for r in runs[c])))
    if "mtasts" in configs:
        lines.append("")
        lines.append("mtasts-milter decision log, per run (each recipient looked up: "
                     "route-enforce or accept, never skip)")
        for i, r in enumerate(runs["mtasts"]):
            lines.append("  run %d  %s  (%s of %d from the cache)"
                         % (i + 1, fmt_actions(r["actions"]), fr(r["from_cache"], "%d"), r["n"]))
        n, hits, actions = bench.decision_summary()
        lines.append("  after warm-up, all runs and latency: %d decisions, %d from the cache, "
                     "actions %s" % (n, hits, fmt_actions(actions)))
    lines.append("=" * W)

    def g(d, k):
        return d.get(k)
    lines.append("BENCH postfix none=%s noop=%s mtasts=%s ratio_noop=%s ratio_none=%s "
                 "accept_none=%s accept_noop=%s accept_mtasts=%s accept_ratio_noop=%s "
                 "accept_ratio_none=%s lat_none_ms=%s lat_noop_ms=%s lat_mtasts_ms=%s "
                 "messages=%d rounds=%d sessions=%d socket=%s"
                 % (fr(g(med_rate, "none"), "%.1f"), fr(g(med_rate, "noop"), "%.1f"),
                    fr(g(med_rate, "mtasts"), "%.1f"),
                    fr(ratio(g(med_rate, "mtasts"), g(med_rate, "noop")), "%.3f"),
                    fr(ratio(g(med_rate, "mtasts"), g(med_rate, "none")), "%.3f"),
                    fr(g(med_acc, "none"), "%.1f"), fr(g(med_acc, "noop"), "%.1f"),
                    fr(g(med_acc, "mtasts"), "%.1f"),
                    fr(ratio(g(med_acc, "mtasts"), g(med_acc, "noop")), "%.3f"),
                    fr(ratio(g(med_acc, "mtasts"), g(med_acc, "none")), "%.3f"),
                    fr(latency.get("none"), "%.1f"), fr(latency.get("noop"), "%.1f"),
                    fr(latency.get("mtasts"), "%.1f"),
                    args.messages, args.rounds, args.sessions, args.socket))
    note("\n".join(lines))


# ------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=2000, help="messages per run")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the configurations")
    ap.add_argument("--domains", type=int, default=10, help="recipient domains")
    ap.add_argument("--sessions", type=int, default=20, help="parallel SMTP sessions")
    ap.add_argument("--reuse", action="store_true",
                    help="all messages of a session over one connection (smtp-source -d)")
    ap.add_argument("--headers", type=int, default=12, help="header lines per message")
    ap.add_argument("--body-bytes", type=int, default=2000, help="body size")
    ap.add_argument("--socket", choices=("inet", "unix"), default="inet",
                    help="milter sockets: 127.0.0.1 TCP (default) or unix-domain")
    ap.add_argument("--warmup", type=int, default=300,
                    help="untimed messages through Postfix first, without a milter")
    ap.add_argument("--latency-messages", type=int, default=20,
                    help="single-session messages per configuration (0: skip)")
    ap.add_argument("--timeout", type=int, default=120, help="seconds per run at most")
    ap.add_argument("--only", default=",".join(CONFIGS),
                    help="comma list of configurations, in this order: none, noop, mtasts "
                         "(default) and noop-as-mtasts")
    args = ap.parse_args()
    load_start = loadavg()
    wanted = args.only.split(",")
    unknown = [c for c in wanted if c not in CONFIGS + EXTRA_CONFIGS]
    if unknown or not wanted:
        ap.error("--only: unknown configuration %s" % ",".join(unknown))
    configs = [c for c in CONFIGS + EXTRA_CONFIGS if c in wanted]

    why = why_skip(configs)
    if why:
        note("\nSKIP bench postfix: " + why)
        return 0
    if not netns.inside():
        note("\n=== Postfix bench: running again in a private network namespace "
             "(Postfix delivers by MX lookup: DNS on :53, MX hosts on :25)")
        return netns.run_inside("bench-postfix")

    with harness.workdir("mtasts-bench-postfix.", say=note) as work:
        return run(args, Bench(args, work, configs), configs, load_start)


def run(args, bench, configs, load_start):
    """Warm-up, every round, latency, then the table; 1 if a run failed.
    Stops bench."""
    failed = False
    try:
        note("\n=== Postfix throughput: %s; %d rounds of %d messages"
             % (" / ".join(configs), args.rounds, args.messages))
        bench.start()
        if args.warmup:
            bench.configure("none")
            r = bench.push(args.warmup, args.sessions)
            if r["errors"]:
                raise RuntimeError("warm-up: " + "; ".join(r["errors"]))
            note("warm-up: %d messages without a milter, %.0f msgs/s delivered"
                 % (args.warmup, r["rate"]))
        if "mtasts" in configs:
            bench.warm_mtasts()
        runs = {c: [] for c in configs}
        for rnd, order in enumerate(rotation(configs, args.rounds)):
            for c in order:
                bench.configure(c)
                r = bench.push(args.messages, args.sessions)
                runs[c].append(r)
                if r["errors"]:
                    failed = True
                    note("round %d %-14s FAILED: %s" % (rnd + 1, c, "; ".join(r["errors"])))
                    note(bench.pf.diagnostics())
                    if c == "mtasts":
                        note(bench.milters[c].diagnostics())
                    continue
                note("round %d %-14s accepted %5.0f msgs/s (%5.2f s), delivered %5.0f msgs/s "
                     "(%5.2f s); CPU s: Postfix %.2f, milter %.2f, load generator %.2f, "
                     "fixtures %.2f; DNS queries %s%s"
                     % (rnd + 1, c, r["accept_rate"], r["accept_s"], r["rate"], r["done_s"],
                        r["cpu"]["postfix"], r["cpu"]["milter"],
                        r["cpu"]["source"] + r["cpu"]["sink"], r["cpu"]["fixtures"],
                        fr(r["dns"], "%d"),
                        "" if r["actions"] is None else
                        "; decisions: %s (%d from the cache)"
                        % (fmt_actions(r["actions"]), r["from_cache"])))
        latency = {}
        if args.latency_messages > 0:
            for c in configs:
                bench.configure(c)
                r = bench.push(args.latency_messages, 1, domains=bench.domains[:1])
                if r["errors"]:
                    failed = True
                    note("latency %s FAILED: %s" % (c, "; ".join(r["errors"])))
                    continue
                latency[c] = r["accept_s"] * 1000.0 / args.latency_messages
                note("latency %-14s %.1f ms per message (one session, %d messages to %s)"
                     % (c, latency[c], args.latency_messages, bench.domains[0]))
        report(runs, latency, args, bench, load_start)
    except (RuntimeError, OSError, harness.FixtureError) as e:
        note("!!! postfix bench could not run: %s" % e)
        failed = True
    finally:
        bench.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
