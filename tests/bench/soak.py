#!/usr/bin/python3
"""Soak: an hour of mixed load on mtasts-milter; RSS and descriptors over time.

`make soak` (not CI, not part of `make bench`): figures, measured, never
asserted.  A leak that a unit test cannot see -- a descriptor kept per
reload, a cache entry never evicted, a thread per failed fetch -- shows up
as a slope over an hour, so this runs everything at once for --seconds
(SOAK_SECONDS, default 3600) and prints one line every --interval seconds
(SOAK_INTERVAL, default 30):

    elapsed, the daemon's RSS (VmRSS of /proc/PID/status), open
    descriptors (/proc/PID/fd), threads, messages delivered to the MX
    sinks, decisions logged, socketmap lookups answered / failed, SIGHUPs
    sent / reloads logged, the fault in force.

The load, inside a private network namespace (tests/mta/netns.py) around
tests/mta/deliverylab.py's world (real Postfix with the shipped snippets
delivering by MX lookup; DNS fixture on :53, HTTPS fixture on :443, one
SMTP sink with STARTTLS per MX host):

  * SMTP: --senders threads each submitting one message per session to
    Postfix's smtpd, the recipient domains in turn (enforce, testing, a
    policy with mode none, no policy), so the milter looks up, tags and
    routes every recipient and the enforce mail goes through the
    mtasts-enforce transport, whose TLS policy comes from the socketmap;
  * socketmap: --smap-conns connections each asking "postfix DOMAIN"
    without pause (--smap-pause): the warm domains, and cold ones, new
    random names every minute, a tenth with an enforce policy (added to
    the DNS and HTTPS fixtures for that minute), the rest answered
    NXDOMAIN; the summary counts the replies by domain kind, reply and
    the fault in force, so it shows whether the faults reached discovery; with
    CacheSize --cache-size the cache fills and evicts;
  * signals: SIGHUP every --hup-every seconds (a reload), and SIGUSR1
    (reopen the decision log) every fifth period, half-way between two
    SIGHUPs;
  * faults: every --fault-every seconds the next fault of FAULTS holds for
    --fault-seconds, then the fixtures recover: _mta-sts TXT answered
    SERVFAIL, the policy hosts answering 500, the TXT queries timing out,
    the HTTPS fixture stopped (connection refused) and started again, the
    policy hosts answering after the daemon's HTTPS timeout.  MX and A
    records stay intact: Postfix keeps delivering (cached policies).

At the end, over the samples after --warmup seconds (default a tenth of
the run): first, last and max of RSS and descriptors, their least-squares
slope per hour, and a verdict line, "flat" or "GROWING" (RSS: growth over
the measured span above max(1 MiB, 5 % of the first sample); descriptors:
above 2), with the numbers.  The verdict never fails the run: the exit
status is 1 only if the daemon died or stopped answering the socketmap for
--dead-after seconds; 0 otherwise, and 0 with "SKIP soak: WHY" without
root, ip netns, Postfix, python3-dnslib or a built daemon.

Environment: top_srcdir, top_builddir (set by make), MTASTS_MILTER (the
daemon), SOAK_SECONDS, SOAK_INTERVAL, MTASTS_KEEP_WORKDIR=1 keeps the
work dir.
"""

import argparse
import os
import random
import signal
import socket
import string
import sys
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "mta"))
import harness  # noqa: E402
import netns  # noqa: E402
from benchutil import loadavg, note  # noqa: E402
from deliverylab import MX, SOCKETMAP_PORT, DeliveryLab, lab_available  # noqa: E402
from milterd import policy_text  # noqa: E402

FAULTS = ("dns-servfail", "https-500", "dns-timeout", "https-down", "https-slow")
SMTP_DOMAINS = (("e1.soak.test", "enforce"), ("e2.soak.test", "enforce"),
                ("t1.soak.test", "testing"), ("m1.soak.test", "none"),
                ("n1.soak.test", None))
COLD_PARENT = "cold.test"


def env_num(name, default):
    v = os.environ.get(name)
    try:
        return float(v) if v else default
    except ValueError:
        return default


# ------------------------------------------------------------ /proc

def proc_sample(pid):
    """(RSS KiB, open fds, threads) of pid, or None when it is gone."""
    try:
        rss = thr = None
        with open("/proc/%d/status" % pid) as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    thr = int(line.split()[1])
        fds = len(os.listdir("/proc/%d/fd" % pid))
        return rss, fds, thr
    except (OSError, ValueError, IndexError):
        return None


def slope_per_hour(ts, ys):
    """Least-squares slope of ys over ts (seconds), per hour; None if < 2."""
    n = len(ts)
    if n < 2:
        return None
    mt, my = sum(ts) / n, sum(ys) / n
    den = sum((t - mt) ** 2 for t in ts)
    if den == 0:
        return None
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den * 3600.0


class LineCounter:
    """Counts lines containing a word in a growing file, reading only
    what was appended since the last call."""

    def __init__(self, path, word=None):
        self.path, self.word, self.pos, self.n, self.rest = path, word, 0, 0, b""

    def count(self):
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.pos)
                data = fh.read()
        except OSError:
            return self.n
        self.pos += len(data)
        data = self.rest + data
        lines = data.split(b"\n")
        self.rest = lines.pop()
        w = self.word.encode() if self.word else None
        self.n += sum(1 for l in lines if l.strip() and (w is None or w in l))
        return self.n


def reply_kind(reply):
    """A socketmap reply's first word, or for OK the TLS level that
    follows it: secure, verify, encrypt, dane, may, none, ..."""
    words = reply.split()
    if not words:
        return "empty"
    if words[0] == b"OK" and len(words) > 1:
        return words[1].decode("ascii", "replace")
    return words[0].decode("ascii", "replace")


# ------------------------------------------------------------ the soak

class Soak:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.c = {"sent": 0, "send_err": 0, "smap_ok": 0, "smap_temp": 0, "smap_fail": 0,
                  "hup": 0, "usr1": 0, "faults": 0}
        # Socketmap replies by the kind of domain asked and the reply's
        # first word (OK secure ... counts as "secure"): the cold policy
        # domains are enforce, so a fault that reaches discovery shows as
        # their answers turning from secure to NOTFOUND or TEMP.
        self.kinds = {}
        self.last_answer = time.monotonic()
        self.fault = "-"
        self.cold = []            # this minute's cold domain names
        self.cold_policy = []     # those of them with a policy
        self.next_cold = []       # the names new_cold() made, not yet published
        self.fx_cold_policy = []  # the cold policy domains the fixtures serve
        self.errors = []
        # Postfix outlives the run (its master exits after a lifetime, 30
        # minutes by default: an hour's soak lost its SMTP load half-way).
        lab = DeliveryLab(os.path.join(work, "lab"), daemon_settings={
            "CacheSize": str(args.cache_size), "NegativeCacheTime": "60s"},
            postfix_lifetime=int(args.seconds) + 600)
        for d, mode in SMTP_DOMAINS:
            lab.add_domain(d, mode, [MX("mx1." + d, "good")])
        lab.add_names({"*." + COLD_PARENT: {"MX": [[10, "mx1.e1.soak.test"]]}})
        self.lab = lab

    def bump(self, k, n=1):
        with self.lock:
            self.c[k] += n

    # -------------------------------------------------- fixture worlds
    def zone(self, fault):
        z = self.lab._zone()
        for d in self.fx_cold_policy:
            z["names"]["_mta-sts." + d] = {"TXT": [["v=STSv1; id=cold%d;" % int(time.time())]]}
            z["names"]["mta-sts." + d] = {"A": ["127.0.0.1"]}
        if fault in ("dns-servfail", "dns-timeout"):
            for k in list(z["names"]):
                if k.startswith("_mta-sts."):
                    z["names"][k] = ({"rcode": "SERVFAIL"} if fault == "dns-servfail"
                                     else {"timeout": True})
        return z

    def https(self, fault):
        h = self.lab._https()
        for d in self.fx_cold_policy:
            h["hosts"]["mta-sts." + d] = {"body": policy_text("enforce", ["mx1.e1.soak.test"])}
        for v in h["hosts"].values():
            if fault == "https-500":
                v["status"] = 500
            elif fault == "https-slow":
                v["delay_ms"] = 12000        # the lab's HTTPSTimeout is 10 s
        return h

    def apply(self, fault):
        """HTTPS first (new policy hosts get their certificates), then DNS,
        so no _mta-sts record points at a host the HTTPS fixture lacks."""
        fx = self.lab.fx
        if fault == "https-down":
            fx.stop("https")
        elif "https" not in fx.procs:
            fx.start_https(self.https(fault), port=443)
        else:
            fx.update_https(self.https(fault))
        fx.update_dns(self.zone(fault))

    def new_cold(self):
        """This minute's cold names: withdrawn from the load threads, put
        into the fixtures by the caller's apply(), then published with
        publish_cold().  A name asked before the HTTPS fixture has its
        certificate would be learned as sts-webpki-invalid (the daemon is
        right) and counted as a lost policy the whole minute."""
        rnd = random.Random()
        names = ["%s.%s" % ("".join(rnd.choice(string.ascii_lowercase) for _ in range(10)),
                            COLD_PARENT) for _ in range(self.args.cold_per_minute)]
        with self.lock:
            self.cold, self.cold_policy = [], []
        self.next_cold = names
        self.fx_cold_policy = names[:max(1, len(names) // 10)]

    def publish_cold(self):
        with self.lock:
            self.cold, self.cold_policy = self.next_cold, self.fx_cold_policy

    # -------------------------------------------------- load threads
    def sender(self, k):
        i = k
        while not self.stop_ev.is_set():
            d = SMTP_DOMAINS[i % len(SMTP_DOMAINS)][0]
            i += 1
            try:
                self.lab.pf.submit("sender@client.test", ["u%d@%s" % (i, d)],
                                   self._msg(d, i), timeout=30)
                self.bump("sent")
            except Exception:
                self.bump("send_err")
            self.stop_ev.wait(self.args.send_pause)

    @staticmethod
    def _msg(d, i):
        return ("From: <sender@client.test>\r\nTo: <u%d@%s>\r\nSubject: soak %d\r\n"
                "Message-ID: <soak.%d.%f@client.test>\r\n\r\nsoak body\r\n"
                % (i, d, i, i, time.time())).encode()

    def smap(self, k):
        rnd = random.Random(k)
        warm = [d for d, _ in SMTP_DOMAINS]
        conn, buf = None, b""
        while not self.stop_ev.is_set():
            with self.lock:
                cold, cold_policy = self.cold, set(self.cold_policy)
            d = rnd.choice(cold) if cold and rnd.random() < 0.3 else rnd.choice(warm)
            cls = ("cold-policy" if d in cold_policy else "cold-none") if d in cold else "warm"
            try:
                if conn is None:
                    conn = socket.create_connection(("127.0.0.1", SOCKETMAP_PORT), timeout=20)
                    buf = b""
                req = ("postfix " + d).encode()
                conn.sendall(b"%d:%s," % (len(req), req))
                while True:
                    if b":" in buf:
                        n, rest = buf.split(b":", 1)
                        if len(rest) >= int(n) + 1:
                            reply, buf = rest[:int(n)], rest[int(n) + 1:]
                            break
                    chunk = conn.recv(65536)
                    if not chunk:
                        raise OSError("closed")
                    buf += chunk
                kind = reply_kind(reply)
                with self.lock:
                    self.c["smap_temp" if reply.startswith(b"TEMP") else "smap_ok"] += 1
                    key = (cls, kind, self.fault)
                    self.kinds[key] = self.kinds.get(key, 0) + 1
                    self.last_answer = time.monotonic()
            except (OSError, ValueError):
                self.bump("smap_fail")
                if conn is not None:
                    conn.close()
                conn = None
                self.stop_ev.wait(0.5)
                continue
            if self.args.smap_pause:
                self.stop_ev.wait(self.args.smap_pause)
        if conn is not None:
            conn.close()

    def chaos(self, t0):
        """Signals, cold names and faults on their schedules (one thread:
        the fixture updates never overlap)."""
        a = self.args
        next_hup = t0 + a.hup_every
        next_usr1 = t0 + a.hup_every / 2.0
        next_cold = t0 + 60
        next_fault = t0 + a.fault_every / 2.0
        fault_end = None
        k = 0
        while not self.stop_ev.wait(0.2):
            now = time.monotonic()
            pid = self.lab.daemon.popen.pid if self.lab.daemon.running() else None
            try:
                if now >= next_hup and pid:
                    os.kill(pid, signal.SIGHUP)
                    self.bump("hup")
                    next_hup += a.hup_every
                if now >= next_usr1 and pid:
                    os.kill(pid, signal.SIGUSR1)
                    self.bump("usr1")
                    next_usr1 += a.hup_every * 5
                if now >= next_cold:
                    self.new_cold()
                    # The new names enter the fixtures at once, under the
                    # fault in force if any (else they would be NXDOMAIN
                    # until it ends, and count as the fault's doing).
                    self.apply(self.fault if fault_end is not None else None)
                    self.publish_cold()
                    next_cold += 60
                if fault_end is None and now >= next_fault:
                    self.fault = FAULTS[k % len(FAULTS)]
                    k += 1
                    self.apply(self.fault)
                    self.bump("faults")
                    fault_end = now + a.fault_seconds
                    next_fault += a.fault_every
                elif fault_end is not None and now >= fault_end:
                    self.fault = "-"
                    self.apply(None)
                    fault_end = None
            except (OSError, harness.FixtureError) as e:
                self.errors.append("chaos: %s" % e)
                note("!!! chaos: %s" % str(e).splitlines()[0])

    # -------------------------------------------------- run
    def delivered(self):
        return sum(getattr(s, "_seq", 0) for s in self.lab.sinks.values())

    def run(self):
        a = self.args
        self.new_cold()
        self.lab.start()
        self.apply(None)          # this minute's cold policy domains
        self.publish_cold()
        d = self.lab.daemon
        pid = d.popen.pid
        dlog = LineCounter(d.decision_log)
        reloads = LineCounter(d.log, "reloaded")
        note("daemon pid %d; %s; load average %s" % (pid, d.conf, loadavg()))
        note("load: %d SMTP senders (pause %.2f s), %d socketmap connections (pause %.3f s), "
             "%d cold names a minute, CacheSize %d; SIGHUP every %.0f s, SIGUSR1 every %.0f s; "
             "a fault every %.0f s for %.0f s (%s)"
             % (a.senders, a.send_pause, a.smap_conns, a.smap_pause, a.cold_per_minute,
                a.cache_size, a.hup_every, a.hup_every * 5, a.fault_every, a.fault_seconds,
                ", ".join(FAULTS)))
        t0 = time.monotonic()
        threads = [threading.Thread(target=self.sender, args=(i,), daemon=True)
                   for i in range(a.senders)]
        threads += [threading.Thread(target=self.smap, args=(i,), daemon=True)
                    for i in range(a.smap_conns)]
        threads.append(threading.Thread(target=self.chaos, args=(t0,), daemon=True))
        for t in threads:
            t.start()
        hdr = ("%7s %9s %5s %5s %9s %7s %9s %9s %6s %6s %9s %9s  %s"
               % ("elapsed", "RSS_KiB", "fds", "thr", "sent", "sendErr", "delivered",
                  "decisions", "smapOK", "TEMP", "smapFail", "HUP/rld", "fault"))
        note(hdr)
        samples = []
        died = None
        nxt = t0
        while True:
            nxt += a.interval
            end = t0 + a.seconds
            self.stop_ev.wait(max(0.0, min(nxt, end) - time.monotonic()))
            el = time.monotonic() - t0
            s = proc_sample(pid)
            if s is None or not d.running():
                died = "the daemon died (exit status %s)" % (d.popen.poll() if d.popen else "?")
                break
            with self.lock:
                c = dict(self.c)
                silent = time.monotonic() - self.last_answer
            samples.append((el, s[0], s[1]))
            note("%7.0f %9d %5d %5d %9d %7d %9d %9d %6d %6d %9d %4d/%-4d  %s"
                 % (el, s[0], s[1], s[2], c["sent"], c["send_err"], self.delivered(), dlog.count(),
                    c["smap_ok"], c["smap_temp"], c["smap_fail"], c["hup"], reloads.count(),
                    self.fault))
            if silent > a.dead_after:
                died = "the socketmap answered nothing for %.0f s" % silent
                break
            if el >= a.seconds - 0.5:
                break
        self.stop_ev.set()
        for t in threads:
            t.join(35)
        if died:
            note("!!! %s\n%s" % (died, d.diagnostics(30)))
        self.summary(samples, c)
        return 1 if died else 0

    def summary(self, samples, c):
        a = self.args
        W = 100
        after = [x for x in samples if x[0] >= a.warmup] or samples[-1:]
        lines = ["", "=" * W,
                 "soak summary (figures, not assertions): %.0f s, interval %.0f s, warm-up "
                 "%.0f s, %d samples after it" % (a.seconds, a.interval, a.warmup, len(after))]
        if len(after) < 2:
            lines.append("too few samples after the warm-up for a slope")
        ts = [x[0] for x in after]
        verdict = []
        for name, idx, unit, limit in (("RSS", 1, "KiB", None), ("fds", 2, "", 2.0)):
            ys = [x[idx] for x in after]
            sl = slope_per_hour(ts, ys)
            span = (ts[-1] - ts[0]) if len(ts) > 1 else 0.0
            grow = (sl or 0.0) * span / 3600.0
            lim = limit if limit is not None else max(1024.0, 0.05 * ys[0])
            lines.append("  %-4s first %d%s  last %d%s  max %d%s  slope %s%s/h  "
                         "(growth over the span %.0f%s, limit %.0f%s)"
                         % (name, ys[0], unit, ys[-1], unit, max(ys), unit,
                            "-" if sl is None else "%+.1f" % sl, unit, grow, unit, lim, unit))
            verdict.append((name, grow > lim, sl))
        lines.append("  load: %d messages submitted (%d errors), socketmap %d answered "
                     "(%d TEMP), %d failed, %d SIGHUP, %d SIGUSR1, %d faults%s"
                     % (c["sent"], c["send_err"], c["smap_ok"] + c["smap_temp"], c["smap_temp"],
                        c["smap_fail"], c["hup"], c["usr1"], c["faults"],
                        "; %d chaos errors" % len(self.errors) if self.errors else ""))
        with self.lock:
            kinds = dict(self.kinds)
        lines.append("  socketmap replies by domain kind, reply and the fault in force "
                     "(cold-policy domains are enforce: secure when their policy was "
                     "learned, NOTFOUND/TEMP when a fault kept it from being learned):")
        for cls in ("warm", "cold-policy", "cold-none"):
            for fault in ("-",) + FAULTS:
                row = {k: n for (c2, k, f), n in kinds.items() if c2 == cls and f == fault}
                if row:
                    lines.append("    %-11s %-13s %s" % (cls, fault, "  ".join(
                        "%s=%d" % kv for kv in sorted(row.items()))))
        growing = [v for v in verdict if v[1]]
        lines.append("verdict: %s  %s" % (
            "GROWING" if growing else "flat",
            "  ".join("%s_slope_per_h=%s" % (n, "-" if s is None else "%+.1f" % s)
                      for n, _, s in verdict)))
        lines.append("=" * W)
        note("\n".join(lines))

    def stop(self):
        self.stop_ev.set()
        self.lab.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=env_num("SOAK_SECONDS", 3600))
    ap.add_argument("--interval", type=float, default=env_num("SOAK_INTERVAL", 30))
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds left out of the summary (default: a tenth of the run)")
    ap.add_argument("--senders", type=int, default=2, help="SMTP submission threads")
    ap.add_argument("--send-pause", type=float, default=0.1, help="seconds between messages")
    ap.add_argument("--smap-conns", type=int, default=2, help="socketmap connections")
    ap.add_argument("--smap-pause", type=float, default=0.005,
                    help="seconds between socketmap lookups per connection")
    ap.add_argument("--cold-per-minute", type=int, default=200,
                    help="new random cold domains a minute (a tenth with a policy)")
    ap.add_argument("--cache-size", type=int, default=500, help="the daemon's CacheSize")
    ap.add_argument("--hup-every", type=float, default=60.0)
    ap.add_argument("--fault-every", type=float, default=60.0)
    ap.add_argument("--fault-seconds", type=float, default=20.0)
    ap.add_argument("--dead-after", type=float, default=60.0,
                    help="exit 1 when the socketmap answered nothing for this long")
    args = ap.parse_args()
    if args.warmup is None:
        args.warmup = args.seconds / 10.0
    why = lab_available()
    if why:
        note("\nSKIP soak: " + why)
        return 0
    if not netns.inside():
        note("\n=== soak: %.0f s, a sample every %.0f s; running again in a private network "
             "namespace (Postfix delivers by MX lookup)" % (args.seconds, args.interval))
        return netns.run_inside("soak")
    with harness.workdir("mtasts-soak.", say=note) as work:
        soak = Soak(args, work)
        try:
            return soak.run()
        except (RuntimeError, OSError, AssertionError, harness.FixtureError) as e:
            note("!!! soak could not run: %s" % e)
            return 1
        finally:
            soak.stop()


if __name__ == "__main__":
    sys.exit(main())
