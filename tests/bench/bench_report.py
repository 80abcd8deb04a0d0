#!/usr/bin/env python3
"""bench_report.py - `make bench` part "report": mtasts-report on a big day.

Generates one UTC day of logs as a busy relay writes them - the daemon's
decision log (a policy record per domain, one decision per message, MX probe
records of the testing-mode domains' MX hosts every 6 hours) and one
mail log with Postfix smtp(8) and Sendmail lines mixed (TLS line, then the
delivery line; successes, untrusted certificates, STARTTLS missing) - over
several thousand recipient domains, then runs mtasts-report --dry-run on it
and prints the wall time, the peak resident memory (ru_maxrss of the child)
and sessions per second.  Measured, not asserted (the issue's goal: a
million sessions in <= 200 MiB and >= 100,000 sessions/s).

  --sessions N   sessions of the day (default 1000000)
  --domains N    recipient domains (default 5000)
  --no-probes    no MX probe records (as the decision logs of main before
                 the probes)
  --keep DIR     write the logs to DIR and keep them (default: a temporary
                 directory, removed at the end)
"""
import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time

DAY = "2026-11-27"
BEGIN = 1795737600  # 2026-11-27T00:00:00Z
TLS_TAIL = (": TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 "
            "server-signature ECDSA (P-256) server-digest SHA256")
MONTH = "Nov"


def stamp_bsd(t):
    tm = time.gmtime(t)
    return "%s %2d %02d:%02d:%02d" % (MONTH, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)


def stamp_iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def probe_records(doms, modes, rnd):
    """(time, line) of the MX probes of the testing-mode domains, as the
    daemon writes them at its default ProbeInterval (6 h): four a day per
    MX host, most finding nothing wrong, some a name mismatch (which turns
    the Trusted sessions of that MX host into failures, also those logged
    before the probe), a few unreachable."""
    out = []
    for k, dom in enumerate(doms):
        if modes[k] != "testing":
            continue
        for m in (1, 2):
            off = rnd.randrange(21600)
            if k % 10 == 1 and m == 2:
                rt, why = "certificate-host-mismatch", "certificate not valid for mx2.%s" % dom
            else:
                rt, why = "success", "STARTTLS with a valid certificate for mx%d.%s" % (m, dom)
            for j in range(4):
                t = BEGIN + off + j * 21600
                r = rt if k % 50 != 7 or j != 0 else "unreachable"
                out.append((t, '{"time":"%s","record":"probe","domain":"%s","policy_id":"p%d",'
                               '"mode":"testing","mx":"mx%d.%s","in_policy":true,'
                               '"ip":"10.%d.%d.%d","result_type":"%s","reason":"%s"}\n' % (
                                   stamp_iso(t), dom, k, m, dom, k >> 8 & 255, k & 255, m,
                                   r, why if r != "unreachable" else "connection timed out")))
    out.sort()
    return out


def generate(d, sessions, domains, probes=True, seed=11):
    rnd = random.Random(seed)
    doms = ["d%05d.bench.example" % i for i in range(domains)]
    modes = ["enforce" if i % 3 == 0 else "testing" for i in range(domains)]
    dec_path = os.path.join(d, "decisions.json")
    mail_path = os.path.join(d, "mail.log")
    with open(dec_path, "w") as dec, open(mail_path, "w") as mail:
        for i, dom in enumerate(doms):
            pol = "version: STSv1\\nmode: %s\\nmx: mx1.%s\\nmx: mx2.%s\\nmax_age: 604800\\n" % (
                modes[i], dom, dom)
            dec.write('{"time":"%s","record":"policy","domain":"%s","policy_id":"p%d",'
                      '"policy":"%s"}\n' % (stamp_iso(BEGIN), dom, i, pol))
        step = 86400.0 / sessions
        dw, mw = dec.write, mail.write
        pr = probe_records(doms, modes, random.Random(seed + 1)) if probes else []
        pi = 0
        for n in range(sessions):
            t = BEGIN + int(n * step)
            while pi < len(pr) and pr[pi][0] <= t:
                dw(pr[pi][1])
                pi += 1
            # a few large domains and a long tail, as real traffic has
            k = int(rnd.paretovariate(1.2)) % domains
            dom, mode = doms[k], modes[k]
            sendmail = n % 5 == 4
            qid = ("%012X" % (0x3A0000000000 + n)) if not sendmail else ("6AR%07dX%04d" % (n, k % 10000))
            dw('{"time":"%s","queue_id":"%s","domain":"%s","result":"policy","mode":"%s",'
               '"policy_id":"p%d","action":"%s","reason":"%s policy","mx":"mx1.%s,mx2.%s",'
               '"max_age":604800,"from_cache":true}\n' % (
                   stamp_iso(t), qid, dom, mode, k,
                   "route-enforce" if mode == "enforce" else "accept", mode, dom, dom))
            mx = "mx%d.%s" % (1 + n % 2, dom)
            ip = "10.%d.%d.%d" % (k >> 8 & 255, k & 255, 1 + n % 2)
            ts = stamp_bsd(t + 1)
            r = rnd.random()
            if not sendmail:
                pid = 20000 + n % 200
                tag = "postfix/smtp" if mode == "testing" else "postfix/mtasts-enforce/smtp"
                if r < 0.90:
                    mw("%s mail %s[%d]: %s TLS connection established to %s[%s]:25%s\n" % (
                        ts, tag, pid, "Verified" if mode == "enforce" else "Trusted", mx, ip,
                        TLS_TAIL))
                    mw("%s mail %s[%d]: %s: to=<u%d@%s>, relay=%s[%s]:25, delay=0.5, "
                       "delays=0.01/0.01/0.2/0.28, dsn=2.0.0, status=sent (250 2.0.0 Ok: "
                       "queued as X%d)\n" % (ts, tag, pid, qid, n % 97, dom, mx, ip, n))
                elif r < 0.97:
                    mw("%s mail %s[%d]: Untrusted TLS connection established to %s[%s]:25%s\n" % (
                        ts, tag, pid, mx, ip, TLS_TAIL))
                    mw("%s mail %s[%d]: %s: to=<u%d@%s>, relay=%s[%s]:25, delay=0.5, "
                       "delays=0.01/0.01/0.2/0.28, dsn=2.0.0, status=sent (250 ok)\n" % (
                           ts, tag, pid, qid, n % 97, dom, mx, ip))
                else:
                    mw("%s mail %s[%d]: %s: to=<u%d@%s>, relay=%s[%s]:25, delay=0.5, "
                       "delays=0.01/0.01/0.2/0.28, dsn=4.7.4, status=deferred (TLS is required, "
                       "but was not offered by host %s[%s])\n" % (
                           ts, tag, pid, qid, n % 97, dom, mx, ip, mx, ip))
            else:
                pid = 30000 + n % 100
                verify = "OK" if r < 0.93 else "FAIL"
                mw("%s mail sm-mta[%d]: STARTTLS=client, relay=%s., version=TLSv1.3, verify=%s, "
                   "cipher=TLS_AES_256_GCM_SHA384, bits=256/256\n" % (ts, pid, mx, verify))
                mw("%s mail sm-mta[%d]: %s: to=<u%d@%s>, delay=00:00:01, xdelay=00:00:01, "
                   "mailer=esmtp, pri=30000, relay=%s. [%s], dsn=2.0.0, stat=Sent (ok)\n" % (
                       ts, pid, qid, n % 97, dom, mx, ip))
        for _, line in pr[pi:]:
            dw(line)
    return dec_path, mail_path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=1000000)
    ap.add_argument("--domains", type=int, default=5000)
    ap.add_argument("--keep", default=None)
    ap.add_argument("--no-probes", action="store_true")
    args = ap.parse_args()
    top = os.environ.get("top_builddir", os.path.join(os.path.dirname(__file__), "..", ".."))
    report = os.environ.get("MTASTS_REPORT") or os.path.join(top, "src", "mtasts-report")
    if not os.access(report, os.X_OK):
        print("bench_report: %s not built: skipped" % report)
        return 0
    d = args.keep or tempfile.mkdtemp(prefix="mtasts-bench-report-")
    os.makedirs(d, exist_ok=True)
    try:
        t0 = time.monotonic()
        dec, mail = generate(d, args.sessions, args.domains, probes=not args.no_probes)
        gen = time.monotonic() - t0
        size = (os.path.getsize(dec) + os.path.getsize(mail)) / 1048576.0
        conf = os.path.join(d, "report.conf")
        with open(conf, "w") as fh:
            fh.write("ReportContact tlsrpt@sender.example\nReportHostID bench\n"
                     "ReportSendingIP 192.0.2.10\nReportSpool %s\n" % os.path.join(d, "spool"))
        out = os.path.join(d, "out")
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.monotonic()
        p = subprocess.Popen([report, "--config", conf, "--date", DAY, "--dry-run", out,
                              dec, mail], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env=dict(os.environ, TZ="UTC"))
        err = p.stderr.read().decode(errors="replace")
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        rc = os.waitstatus_to_exitcode(status)
        rss = ru.ru_maxrss / 1024.0
        stats = [l for l in err.splitlines() if l.startswith("mtasts-report: %s:" % DAY)]
        print("bench_report: %d sessions, %d domains, %.0f MiB of logs (generated in %.0f s)" % (
            args.sessions, args.domains, size, gen))
        print("bench_report: exit %d, %.1f s, max RSS %.1f MiB, %.0f sessions/s, %d reports" % (
            rc, wall, rss, args.sessions / wall if wall > 0 else 0,
            len([n for n in os.listdir(out) if n.endswith(".json.gz")]) if os.path.isdir(out) else 0))
        print("bench_report: user %.1f s, system %.1f s" % (ru.ru_utime, ru.ru_stime))
        for l in stats:
            print("bench_report: " + l)
        if rc != 0:
            sys.stderr.write(err[-4000:])
        return rc
    finally:
        if args.keep is None:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
