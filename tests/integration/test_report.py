#!/usr/bin/python3
"""mtasts-report on fixed logs: a decision log and a Postfix log excerpt
(tests/golden/report/cli/decisions.log, mail.log) of 2026-11-27 make
exactly the reports written by hand from RFC 8460 section 4 in
tests/golden/report/cli/<domain>.json.

Checked: --dry-run file names (RFC 8460 5.1) and contents (the gzip'd
report and the readable copy, compared with the golden files as JSON, the
order of policies and failure-details ignored, every report validated
against the RFC's field list); --summary; the counts on stderr; logs from
standard input, gzip'd and split across a rotation (also one that cuts a
connection, with the files given newest first) give the same reports;
warnings for an MTA log without TLS lines and for a missing decision log;
another day; malformed lines warned (rate-limited), counted, never fatal;
usage (64), unreadable log (66) and configuration (78) errors; and, end to
end, delivery to a mailto: rua through --sendmail and to an https: rua at
the HTTPS fixture, found through the DNS fixture's TLSRPT record, with a
second run detected as a duplicate.
"""

import base64
import calendar
import email
import email.policy
import glob
import gzip
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
import harness  # noqa: E402

REPORT = os.environ.get("MTASTS_REPORT") or os.path.join(
    harness.builddir(), "src", "mtasts-report")
GOLD = os.path.join(harness.srcdir(), "tests", "golden", "report", "cli")
DECISIONS = os.path.join(GOLD, "decisions.log")
MAILLOG = os.path.join(GOLD, "mail.log")

DAY = "2026-11-27"
BEGIN = 1795737600          # 2026-11-27T00:00:00Z
END = BEGIN + 86399         # 2026-11-27T23:59:59Z
SUBMITTER = "sender.example"
HOSTID = "mta1.sender.example"
DOMAINS = ["change.example", "enforce.example", "fetcherr.example",
           "mismatch.example", "none.example", "testing.example"]

CONFIG = """\
ReportOrganization Sender Example Org
ReportContact tlsrpt@sender.example
ReportSubmitter sender.example
ReportHostID mta1.sender.example
ReportSendingIP 192.0.2.10, 2001:db8::10
ReportSpool {spool}
# the report endpoints of the tests are on loopback
AllowInternalAddresses yes
"""

# RFC 8460 section 4 (and 4.4 for the result types).
RESULT_TYPES = {
    "starttls-not-supported", "certificate-host-mismatch",
    "certificate-expired", "certificate-not-trusted", "validation-failure",
    "tlsa-invalid", "dnssec-invalid", "dane-required",
    "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid"}
TOP_KEYS = {"organization-name", "date-range", "contact-info", "report-id",
            "policies"}
POLICY_KEYS = {"policy-type", "policy-string", "policy-domain", "mx-host"}
SUMMARY_KEYS = {"total-successful-session-count",
                "total-failure-session-count"}
DETAIL_KEYS = {"result-type", "sending-mta-ip", "receiving-mx-hostname",
               "receiving-mx-helo", "receiving-ip", "failed-session-count",
               "additional-information", "failure-reason-code"}
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def validate(r, where="report"):
    """Raise AssertionError unless r follows RFC 8460 section 4."""
    def keys(obj, allowed, required, what):
        assert isinstance(obj, dict), "%s %s: not an object" % (where, what)
        unknown = set(obj) - allowed
        assert not unknown, "%s %s: unknown keys %s" % (where, what, sorted(unknown))
        missing = required - set(obj)
        assert not missing, "%s %s: missing %s" % (where, what, sorted(missing))

    def nonempty_str(v, what):
        assert isinstance(v, str) and v, "%s %s: want a non-empty string, got %r" % (where, what, v)

    def count(v, what, minimum):
        assert isinstance(v, int) and not isinstance(v, bool) and v >= minimum, \
            "%s %s: want an integer >= %d, got %r" % (where, what, minimum, v)
        return v

    keys(r, TOP_KEYS, TOP_KEYS, "top level")
    for k in ("organization-name", "contact-info", "report-id"):
        nonempty_str(r[k], k)
    keys(r["date-range"], {"start-datetime", "end-datetime"},
         {"start-datetime", "end-datetime"}, "date-range")
    for k, v in r["date-range"].items():
        assert isinstance(v, str) and RFC3339_UTC.match(v), \
            "%s %s: %r is not an RFC 3339 UTC date-time" % (where, k, v)
    assert isinstance(r["policies"], list) and r["policies"], \
        "%s: policies must be a non-empty array" % where
    for p in r["policies"]:
        keys(p, {"policy", "summary", "failure-details"}, {"policy", "summary"}, "policies[]")
        pol = p["policy"]
        keys(pol, POLICY_KEYS, {"policy-type", "policy-domain"}, "policy")
        assert pol["policy-type"] in ("tlsa", "sts", "no-policy-found"), pol
        nonempty_str(pol["policy-domain"], "policy-domain")
        if pol["policy-type"] == "sts":
            for k in ("policy-string", "mx-host"):
                assert isinstance(pol.get(k), list) and all(
                    isinstance(s, str) and s for s in pol[k]), \
                    "%s %s: want an array of strings, got %r" % (where, k, pol.get(k))
        else:
            assert "policy-string" not in pol and "mx-host" not in pol, pol
        keys(p["summary"], SUMMARY_KEYS, SUMMARY_KEYS, "summary")
        count(p["summary"]["total-successful-session-count"], "successes", 0)
        failed = count(p["summary"]["total-failure-session-count"], "failures", 0)
        details = p.get("failure-details", [])
        assert isinstance(details, list), "failure-details: not an array"
        assert "failure-details" not in p or details, "empty failure-details"
        total = 0
        for d in details:
            keys(d, DETAIL_KEYS, {"result-type", "failed-session-count"}, "failure-details[]")
            assert d["result-type"] in RESULT_TYPES, d
            total += count(d["failed-session-count"], "failed-session-count", 1)
            for k, v in d.items():
                if k != "failed-session-count":
                    nonempty_str(v, k)
                if k in ("sending-mta-ip", "receiving-ip"):
                    ipaddress.ip_address(v)
        assert total == failed, "%s: failure-details add up to %d, summary says %d" % (
            where, total, failed)


def canonical(r):
    """RFC 8460 gives policies and failure-details no order."""
    r = json.loads(json.dumps(r))
    for p in r["policies"]:
        if "failure-details" in p:
            p["failure-details"].sort(key=lambda d: json.dumps(d, sort_keys=True))
    r["policies"].sort(key=lambda p: json.dumps(p, sort_keys=True))
    return r


def golden(domain):
    with open(os.path.join(GOLD, domain + ".json")) as fh:
        return json.load(fh)


def expect_equal(got, want, what):
    validate(got, what)
    if canonical(got) != canonical(want):
        raise AssertionError("%s: got\n%s\nwant\n%s" % (
            what, json.dumps(got, indent=1, sort_keys=True),
            json.dumps(want, indent=1, sort_keys=True)))


def fname(domain, begin=BEGIN, end=END):
    return "%s!%s!%d!%d.json.gz" % (SUBMITTER, domain, begin, end)


class Env:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mtasts-report-test-")
        self.spool = os.path.join(self.dir, "spool")
        self.config = os.path.join(self.dir, "report.conf")
        with open(self.config, "w") as fh:
            fh.write(CONFIG.format(spool=self.spool))
        self.n = 0

    def path(self, name):
        return os.path.join(self.dir, name)

    def newdir(self):
        self.n += 1
        return os.path.join(self.dir, "out%d" % self.n)

    def run(self, args, stdin=None, config=True, timeout=60):
        env = dict(os.environ, TZ="UTC")
        argv = [REPORT] + (["--config", self.config] if config else []) + args
        p = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, timeout=timeout)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def dry(self, logs, date=DAY, extra=(), stdin=None):
        out = self.newdir()
        rc, so, se = self.run(["--date", date, "--dry-run", out] + list(extra) + logs, stdin=stdin)
        assert rc == 0, "exit %d, stderr:\n%s" % (rc, se)
        return out, so, se

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def reports_in(out):
    """{domain: report} from a --dry-run directory, checking that every
    .json.gz has its readable .json twin with the same content."""
    got = {}
    names = sorted(os.listdir(out))
    gz = [n for n in names if n.endswith(".json.gz")]
    plain = [n for n in names if n.endswith(".json")]
    assert len(gz) + len(plain) == len(names), "stray files: %s" % names
    assert sorted(n + ".gz" for n in plain) == gz, "gz/json pairs: %s" % names
    for n in gz:
        with open(os.path.join(out, n), "rb") as fh:
            raw = fh.read()
        assert raw[:2] == b"\x1f\x8b", "%s is not gzip" % n
        report = json.loads(gzip.decompress(raw))
        with open(os.path.join(out, n[:-3])) as fh:
            assert json.load(fh) == report, "%s and its .json differ" % n
        domain = n.split("!")[1]
        got[domain] = (n, report)
    return got


def expect_golden_set(out):
    got = reports_in(out)
    assert sorted(got) == DOMAINS, "reports for %s, want %s" % (sorted(got), DOMAINS)
    for d in DOMAINS:
        n, report = got[d]
        assert n == fname(d), "file name %r, want %r (RFC 8460 5.1)" % (n, fname(d))
        expect_equal(report, golden(d), d)


def main():
    report = harness.TestReport("mtasts-report")
    if not os.access(REPORT, os.X_OK):
        report.skip("all", "%s not built" % REPORT)
        return report.finish()
    env = Env()
    try:
        cases(report, env)
    finally:
        env.cleanup()
    return report.finish()


def cases(report, env):
    runs = {}

    def golden_reports():
        out, so, se = env.dry([DECISIONS, MAILLOG], extra=["--summary"])
        runs["main"] = (out, so, se)
        expect_golden_set(out)
        assert "nothing sent" in se, se
        assert not os.path.exists(env.spool), "dry run touched the spool"
    report.run("dry run: exactly the golden reports, RFC 5.1 names, valid RFC 8460 JSON",
               golden_reports)

    def summary_table():
        if "main" not in runs:
            raise harness.Skip("no main run")
        so = runs["main"][1]
        lines = so.strip().split("\n")
        assert lines[0].split()[:5] == ["DOMAIN", "MODE", "SESSIONS", "SUCCESSES", "FAILURES"], lines[0]
        want = {
            "change.example": ("testing,enforce", 4, 3, 1, "certificate-not-trusted=1"),
            # + a refresh failure under the cached policy (RFC 8461 6), and a
            # server answering STARTTLS with Postfix's words (its attempt
            # counts); our own report mail and a forged recipient do not.
            "enforce.example": ("enforce", 8, 5, 3,
                                "starttls-not-supported=2 sts-policy-fetch-error=1"),
            "fetcherr.example": ("no-policy-found", 2, 0, 2, "sts-policy-fetch-error=2"),
            "mismatch.example": ("enforce", 2, 0, 2, "certificate-host-mismatch=2"),
            # ReportNoPolicy (default yes): no-policy-found
            "none.example": ("no-policy-found", 1, 0, 1, "certificate-not-trusted=1"),
            "testing.example": ("testing", 4, 1, 3, "certificate-not-trusted=3"),
        }
        end = [i for i, l in enumerate(lines) if " reports; " in l][0]
        rows = {l.split()[0]: l.split() for l in lines[1:end]}
        assert sorted(rows) == sorted(want), "rows %s" % sorted(rows)
        for d, (mode, n, ok, bad, types) in want.items():
            got = rows[d]
            assert got[1:5] == [mode, str(n), str(ok), str(bad)] and got[5:] == types.split(), \
                "%s: got %s, want %s" % (d, got, [mode, n, ok, bad, types])
        assert lines[end:] == [
            "6 reports; 0 other domains without an MTA-STS policy (0 sessions): no report",
            "1 session under policies in mode none: not reported (RFC 8461 5)",
            "1 session in domains without any decision line: policy unknown, not reported"], \
            lines[end:]
    report.run("--summary: one line per domain with mode, counts, failures by type",
               summary_table)

    def stderr_counts():
        if "main" not in runs:
            raise harness.Skip("no main run")
        se = runs["main"][2]
        warns = [l for l in se.split("\n") if "warning:" in l]
        assert len(warns) == 2, "warnings: %s" % warns
        assert "decisions.log:19:" in warns[0] and "decisions.log:20:" in warns[1], warns
        stats = [l for l in se.split("\n") if l.startswith("mtasts-report: %s:" % DAY)]
        assert len(stats) == 1, se
        for part in ("lines 83 ", "malformed 2)", "unjoined 2,", "folded into engine failures 2)",
                     "unjoined decisions 0;", "engine failures 3;", "under mode none 1,",
                     "our own report mail 1;", "reports 6"):
            assert part in stats[0], "%r not in %r" % (part, stats[0])
    report.run("stderr: malformed lines warned with file:line, one line of counts",
               stderr_counts)

    def from_stdin():
        with open(MAILLOG, "rb") as fh:
            data = fh.read()
        out, _, _ = env.dry([DECISIONS, "-"], stdin=data)
        expect_golden_set(out)
    report.run("the MTA log on standard input (-)", from_stdin)

    def journal():
        """The mail log as the journal has it on a system without rsyslog:
        the golden syslog lines written into a real journal file by
        systemd-journal-remote (as journald would store them: identifier,
        pid, host, facility mail), read back with journalctl in the two
        formats mtasts-report(1) documents, from a file and from stdin."""
        remote = next((p for p in ("/lib/systemd/systemd-journal-remote",
                                    "/usr/lib/systemd/systemd-journal-remote")
                       if os.access(p, os.X_OK)), None)
        if remote is None or shutil.which("journalctl") is None:
            raise harness.Skip("journalctl or systemd-journal-remote not installed "
                               "(apt-get install systemd-journal-remote)")
        hdr = re.compile(r"^(\w{3} [ \d]\d \d\d:\d\d:\d\d) (\S+) ([^\[\s]+)\[(\d+)\]: (.*)$")
        export = env.path("mail.export")
        with open(MAILLOG) as fi, open(export, "w") as fo:
            for n, line in enumerate(fi):
                m = hdr.match(line.rstrip("\n"))
                assert m, "golden mail.log line %d: %r" % (n + 1, line)
                t = calendar.timegm(time.strptime("2026 " + m.group(1), "%Y %b %d %H:%M:%S"))
                for k, v in (("__REALTIME_TIMESTAMP", "%d" % (t * 1000000 + n)),
                             ("__MONOTONIC_TIMESTAMP", "%d" % (n + 1)),
                             ("_BOOT_ID", "6a2f0b8c1d3e4f5a6b7c8d9e0f1a2b3c"),
                             ("_TRANSPORT", "syslog"), ("PRIORITY", "6"),
                             ("SYSLOG_FACILITY", "2"), ("_HOSTNAME", m.group(2)),
                             ("SYSLOG_IDENTIFIER", m.group(3)), ("SYSLOG_PID", m.group(4)),
                             ("_PID", m.group(4)), ("_COMM", "smtp"),
                             ("MESSAGE", m.group(5))):
                    fo.write("%s=%s\n" % (k, v))
                fo.write("\n")
        jfile = env.path("mail.journal")
        p = subprocess.run([remote, "--output=" + jfile, export], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        assert p.returncode == 0, p.stdout.decode(errors="replace")
        for fmt in ("json", "short-iso"):
            p = subprocess.run(["journalctl", "--file=" + jfile, "-o", fmt, "SYSLOG_FACILITY=2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                               env=dict(os.environ, TZ="Europe/Berlin"))
            assert p.returncode == 0 and p.stdout, p.stderr.decode(errors="replace")
            path = env.path("mail." + fmt)
            with open(path, "wb") as fh:
                fh.write(p.stdout)
            out, _, se = env.dry([DECISIONS, path])
            expect_golden_set(out)
            # Only the decision log's two broken lines are warned about.
            warns = [l for l in se.split("\n") if "warning:" in l]
            assert len(warns) == 2 and all("decisions.log:" in w for w in warns), se
            out, _, _ = env.dry([DECISIONS, "-"], stdin=p.stdout)
            expect_golden_set(out)
    report.run("journalctl -o json and -o short-iso (file and stdin): the golden reports",
               journal)

    def gzipped():
        a, b = env.path("decisions.1"), env.path("mail.log.2.gz")
        for src, dst in ((DECISIONS, a), (MAILLOG, b)):
            with open(src, "rb") as fi, gzip.open(dst, "wb") as fo:
                fo.write(fi.read())
        out, _, _ = env.dry([a, b])
        expect_golden_set(out)
        with open(a, "rb") as fh:   # recognised by content: piped gzip on stdin too
            out, _, _ = env.dry(["-", MAILLOG], stdin=fh.read())
        expect_golden_set(out)
    report.run("gzip'd logs, recognised by content (file and stdin)", gzipped)

    def rotated():
        with open(MAILLOG) as fh:
            lines = fh.readlines()
        cut = next(i for i, l in enumerate(lines) if l.startswith("Nov 27 11:05:01"))
        old, cur = env.path("mail.log.1"), env.path("mail.log")
        with open(old, "w") as fh:
            fh.writelines(lines[:cut])
        with open(cur, "w") as fh:
            fh.writelines(lines[cut:])
        out, _, _ = env.dry([DECISIONS, old, cur])
        expect_golden_set(out)
    report.run("a log split across a rotation gives the same reports", rotated)

    def rotation_cuts_a_connection():
        # The TLS line of a connection ends mail.log.1, its delivery line
        # starts mail.log: given newest first (as a shell glob lists them),
        # the files are still read oldest first (by their first time stamp),
        # so the connection is whole and no false starttls-not-supported
        # appears.
        with open(MAILLOG) as fh:
            lines = fh.readlines()
        cut = next(i for i, l in enumerate(lines)
                   if l.startswith("Nov 27 11:05:01") and "7D4E5F6A71: to=" in l)
        assert "TLS connection established" in lines[cut - 1], lines[cut - 1]
        old, cur = env.path("cut.log.1.gz"), env.path("cut.log")
        with gzip.open(old, "wt") as fh:
            fh.writelines(lines[:cut])
        with open(cur, "w") as fh:
            fh.writelines(lines[cut:])
        out, _, se = env.dry([cur, DECISIONS, old])
        expect_golden_set(out)
        assert "without TLS information 0," in se and "dropped 0;" in se and "unfinished connections 0," in se, se
    report.run("a rotation that cuts a connection, logs given newest first: same reports",
               rotation_cuts_a_connection)

    def useless_inputs_warned():
        notls = env.path("notls.log")
        with open(MAILLOG) as fi, open(notls, "w") as fo:
            fo.writelines(l for l in fi if "TLS connection established" not in l)
        out, so, se = env.dry([DECISIONS, notls])
        assert "smtp_tls_loglevel" in se and "LogLevel >= 9" in se, se
        assert " TLS 0," in se, se
        out, so, se = env.dry([MAILLOG], extra=["--summary"])
        assert "warning: no decision log line read" in se, se
        assert os.listdir(out) == [], os.listdir(out)
        assert re.match(r"\d+ sessions in domains without any decision line",
                        so.strip().split("\n")[-1]), so
        assert "0 other domains without an MTA-STS policy" in so, so
    report.run("MTA log without TLS lines, or no decision log: a warning that says why",
               useless_inputs_warned)

    def deterministic():
        a, _, _ = env.dry([DECISIONS, MAILLOG])
        b, _, _ = env.dry([MAILLOG, DECISIONS])
        for n in sorted(os.listdir(a)):
            with open(os.path.join(a, n), "rb") as fa, open(os.path.join(b, n), "rb") as fb:
                assert fa.read() == fb.read(), "%s differs between runs" % n
    report.run("same logs, any order: byte-identical report files", deterministic)

    def other_day():
        out, so, se = env.dry([DECISIONS, MAILLOG], date="2026-11-28", extra=["--summary"])
        got = reports_in(out)
        assert sorted(got) == ["enforce.example"], sorted(got)
        n, r = got["enforce.example"]
        assert n == fname("enforce.example", BEGIN + 86400, END + 86400), n
        validate(r)
        assert r["report-id"] == "2026-11-28_enforce.example_mta1.sender.example@sender.example", r["report-id"]
        assert r["date-range"] == {"start-datetime": "2026-11-28T00:00:00Z",
                                   "end-datetime": "2026-11-28T23:59:59Z"}, r["date-range"]
        p = r["policies"][0]
        assert len(r["policies"]) == 1 and p["summary"] == {
            "total-successful-session-count": 0, "total-failure-session-count": 1}, r
        assert [d["result-type"] for d in p["failure-details"]] == ["starttls-not-supported"], p
        out, so, se = env.dry([DECISIONS, MAILLOG], date="2026-11-20")
        assert os.listdir(out) == [], os.listdir(out)
        assert "reports 0" in se, se
    report.run("--date picks the day; sessions of other days are not counted", other_day)

    def malformed_never_fatal():
        junk = env.path("junk.log")
        with open(junk, "wb") as fh:
            fh.write(b"\x00\x01\x02 binary garbage \xff\xfe\n")
            fh.write(b"{" + b"x" * 20000 + b"\n")
            for i in range(200):
                fh.write(b'{"time":"2026-11-27T10:00:00Z","queue_id":"Q%d"\n' % i)
            fh.write(b"Nov 27 10:00:00 mail postfix/smtp[1]: 4F1A2B3C4D: to=<a@enforce.example>, relay=\n")
            fh.write(b"no newline at the end")
        out, so, se = env.dry([DECISIONS, junk, MAILLOG])
        expect_golden_set(out)
        warns = [l for l in se.split("\n") if "warning:" in l]
        assert 2 < len(warns) <= 60, "%d warning lines: not rate-limited?" % len(warns)
        m = re.search(r"malformed (\d+)\)", se)
        assert m and int(m.group(1)) >= 203, se
    report.run("malformed lines: warned (rate-limited), counted, never fatal",
               malformed_never_fatal)

    def usage_errors():
        out = env.newdir()
        for args, needle in (
                ([], "no LOG"),
                (["--date", "2026-02-30", DECISIONS], "calendar"),
                (["--date", "yesterday", DECISIONS], "YYYY-MM-DD"),
                (["--bogus", DECISIONS], ""),
                (["--retry", DECISIONS], "--retry"),
                (["--dns", "not a server", DECISIONS], "DNSServers"),
                (["--dry-run"], "")):
            rc, so, se = env.run(args)
            assert rc == 64, "%s: exit %d, want 64 (stderr %r)" % (args, rc, se)
            assert se.strip() and needle in se, "%s: message %r lacks %r" % (args, se, needle)
        assert not os.path.exists(out)
    report.run("bad usage: exit 64 with a message", usage_errors)

    def unreadable_log():
        out = env.newdir()
        rc, so, se = env.run(["--date", DAY, "--dry-run", out, DECISIONS,
                              env.path("no-such.log")])
        assert rc == 66, "exit %d, want 66: %s" % (rc, se)
        assert "no-such.log" in se, se
        assert os.listdir(out) == [], "reports written from part of the logs"
        bad = env.path("broken.gz")
        with open(MAILLOG, "rb") as fh:
            data = gzip.compress(fh.read())
        with open(bad, "wb") as fh:
            fh.write(data[:len(data) // 2])
        rc, so, se = env.run(["--date", DAY, "--dry-run", out, DECISIONS, bad])
        assert rc == 66, "damaged gzip: exit %d, want 66: %s" % (rc, se)
    report.run("a missing log or a damaged gzip stream: exit 66, no report", unreadable_log)

    def config_errors():
        bad = env.path("bad.conf")
        with open(bad, "w") as fh:
            fh.write(CONFIG.format(spool=env.spool).replace("192.0.2.10,", "banana,"))
        p = subprocess.run([REPORT, "--config", bad, "--date", DAY, "--dry-run",
                            env.newdir(), DECISIONS], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=dict(os.environ, TZ="UTC"))
        assert p.returncode == 78 and b"banana" in p.stderr, (p.returncode, p.stderr)
        rc, so, se = env.run(["--config", env.path("missing.conf"), DECISIONS], config=False)
        assert rc == 78, "missing config: exit %d" % rc
    report.run("configuration errors: exit 78", config_errors)

    def help_version():
        rc, so, se = env.run(["-V"], config=False)
        assert rc == 0 and so.startswith("mtasts-report "), (rc, so)
        rc, so, se = env.run(["--help"], config=False)
        assert rc == 0 and "--dry-run DIR" in so and "LOG..." in so, (rc, so)
    report.run("-V and --help", help_version)

    report.run("end to end: mailto via --sendmail and https rua, then a duplicate run",
               end_to_end, env)


def end_to_end(env):
    if not harness.have_dnslib():
        raise harness.Skip("python3-dnslib missing")
    with harness.Fixtures() as fx:
        https_port = fx.start_https({"hosts": {
            "reports.enforce.example": {"post": True, "status": 201}}})
        dns_port = fx.start_dns({"names": {
            "_smtp._tls.enforce.example": {"TXT": [[
                "v=TLSRPTv1; rua=mailto:tlsrpt@enforce.example,"
                "https://reports.enforce.example:%d/tlsrpt" % https_port]]},
            "reports.enforce.example": {"A": ["127.0.0.1"]},
            "_smtp._tls.testing.example": {"TXT": [["v=spf1 -all"]]},
        }})
        mails = env.path("mail")
        os.makedirs(mails)
        capture = env.path("capture.sh")
        with open(capture, "w") as fh:
            fh.write('#!/bin/sh\nprintf "%%s\\n" "$*" > "%s/args.$$"\ncat > "%s/msg.$$"\n'
                     % (mails, mails))
        os.chmod(capture, 0o755)
        args = ["--date", DAY, "--sendmail", capture + " -i -t",
                "--dns", "127.0.0.1:%d" % dns_port, "--ca-file", fx.ca_file,
                DECISIONS, MAILLOG]
        rc, so, se = env.run(args)
        assert rc == 0, "exit %d:\n%s" % (rc, se)
        assert "queued 6, duplicates 0, delivered 2, deferred 0, given up 0, no rua 5" in se, se

        msgs = sorted(glob.glob(os.path.join(mails, "msg.*")))
        assert len(msgs) == 1, "mails: %s" % msgs
        with open(msgs[0], "rb") as fh:
            m = email.message_from_bytes(fh.read(), policy=email.policy.default)
        assert m["To"] == "tlsrpt@enforce.example", m["To"]
        assert m["TLS-Report-Domain"] == "enforce.example", m["TLS-Report-Domain"]
        assert m["TLS-Report-Submitter"] == SUBMITTER, m["TLS-Report-Submitter"]
        assert m["TLS-Required"] == "No", m["TLS-Required"]
        assert m.get_content_type() == "multipart/report" and \
            m.get_param("report-type") == "tlsrpt", m["Content-Type"]
        subj = " ".join(str(m["Subject"]).split())
        assert subj.startswith("Report Domain: enforce.example Submitter: %s Report-ID: <" % SUBMITTER) \
            and "<2026-11-27_enforce.example_mta1.sender.example@sender.example>" in subj, subj
        att = [p for p in m.walk() if p.get_content_type() == "application/tlsrpt+gzip"]
        assert len(att) == 1, [p.get_content_type() for p in m.walk()]
        assert att[0].get_filename() == fname("enforce.example"), att[0].get_filename()
        expect_equal(json.loads(gzip.decompress(att[0].get_content())),
                     golden("enforce.example"), "mailed report")

        posts = [e for e in fx.https_stats()["log"] if e["method"] == "POST"]
        assert len(posts) == 1, posts
        hdrs = {k.lower(): v for k, v in posts[0]["headers"]}
        assert hdrs.get("content-type") == "application/tlsrpt+gzip", hdrs
        assert posts[0]["path"] == "/tlsrpt", posts[0]["path"]
        expect_equal(json.loads(gzip.decompress(base64.b64decode(posts[0]["body_b64"]))),
                     golden("enforce.example"), "posted report")
        for d in DOMAINS:
            assert fx.dns_queries("_smtp._tls." + d, "TXT") >= 1, "no TLSRPT lookup for " + d

        # The same day again: every report is a duplicate, nothing is sent.
        rc, so, se = env.run(args)
        assert rc == 0, "second run: exit %d:\n%s" % (rc, se)
        assert "queued 0, duplicates 6, delivered 0" in se, se
        assert len(glob.glob(os.path.join(mails, "msg.*"))) == 1, "mailed twice"
        posts = [e for e in fx.https_stats()["log"] if e["method"] == "POST"]
        assert len(posts) == 1, "posted twice"
        rc, so, se = env.run(["--retry", "--dns", "127.0.0.1:%d" % dns_port])
        assert rc == 0 and "delivered 0" in se, (rc, se)


if __name__ == "__main__":
    sys.exit(main())
