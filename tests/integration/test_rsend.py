#!/usr/bin/python3
"""RFC 8460 report delivery (src/rsend.c) end to end, one named test each.

Real DNS (the _smtp._tls TXT records, the https hosts' addresses) and HTTPS
(a report endpoint with the test CA, on a non-443 port given in the rua URI)
fixtures on loopback.  The spool is driven by tests/report/rsend_driver with
an injected clock, so "after the backoff" and "after ReportRetryTime" cost
nothing.  ReportSendmail is a script that stores each message in a file;
the messages are parsed with Python's email package, the attachment is
gunzipped and compared with the report that was queued.
"""

import base64
import email
import email.policy
import email.utils
import glob
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

TOP_BUILDDIR = os.environ.get("top_builddir") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")
DRIVER = os.path.join(TOP_BUILDDIR, "tests", "report", "rsend_driver")

SUBMITTER = "sender.test"
FROM = "tlsrpt@sender.test"
T0 = 1714640000                    # 2024-05-02 08:53:20 UTC, the injected "now"
BEGIN, END = 1714521600, 1714607999  # 2024-05-01, the report's day

SINK = """#!/bin/sh
# ReportSendmail stand-in: one file per message, arguments logged; runs
# $dir/hook if there is one; exits with the status in $dir/rc (default 0).
dir=%(dir)s
n=$(date +%%s%%N)-$$
cat > "$dir/mail-$n.eml"
echo "$*" >> "$dir/args"
[ -f "$dir/hook" ] && sh "$dir/hook"
[ -f "$dir/rc" ] && exit "$(cat "$dir/rc")"
exit 0
"""


def report_json(domain, rid):
    """A small RFC 8460 section 4 report; its bytes must come back intact."""
    return json.dumps({
        "organization-name": "Sender Test",
        "date-range": {"start-datetime": "2024-05-01T00:00:00Z",
                       "end-datetime": "2024-05-01T23:59:59Z"},
        "contact-info": "postmaster@sender.test",
        "report-id": rid,
        "policies": [{
            "policy": {"policy-type": "sts",
                       "policy-string": ["version: STSv1", "mode: testing",
                                         "mx: mx.%s" % domain, "max_age: 86400"],
                       "policy-domain": domain,
                       "mx-host": ["mx.%s" % domain]},
            "summary": {"total-successful-session-count": 5,
                        "total-failure-session-count": 1},
            "failure-details": [{"result-type": "certificate-expired",
                                 "receiving-mx-hostname": "mx.%s" % domain,
                                 "failed-session-count": 1}]}]}, indent=1)


class World:
    def __init__(self, fx, work):
        self.fx, self.work = fx, work
        self.names = {}
        self.hosts = {}
        self.dns_port = self.https_port = None
        self.mail = os.path.join(work, "mail")
        os.makedirs(self.mail)
        self.sink = os.path.join(work, "sink.sh")
        with open(self.sink, "w") as f:
            f.write(SINK % {"dir": self.mail})

    def start(self):
        # HTTPS first: the rua URIs in the zone carry its port.
        self.https_port = self.fx.start_https({"hosts": self.hosts})
        self.dns_port = self.fx.start_dns({"names": self.names, "default": "NXDOMAIN"})

    def push(self):
        self.fx.update_dns({"names": self.names, "default": "NXDOMAIN"})
        self.fx.update_https({"hosts": self.hosts})

    def url(self, host, path="/v1/tlsrpt"):
        return "https://%s:%d%s" % (host, self.https_port, path)

    def endpoint(self, host, status=200, **kw):
        self.names[host] = {"A": ["127.0.0.1"]}
        self.hosts[host] = dict({"post": True, "status": status, "body": "ok\n"}, **kw)

    def connections(self, host):
        return self.fx.https_stats().get("connections", {}).get(host, 0)

    def posts(self, host):
        return [e for e in self.fx.https_stats()["log"]
                if e["sni"] == host and e["method"] == "POST"]

    def mails(self):
        return sorted(glob.glob(os.path.join(self.mail, "mail-*.eml")))


class Case:
    """One domain with its own spool.  allow_internal=False: the driver runs
    with AllowInternalAddresses off (the default), and so refuses the
    endpoints here, all on loopback."""

    def __init__(self, w, name, retry=86400, allow_internal=True, spool=None, ca_file=None):
        self.w = w
        self.allow_internal = allow_internal
        self.ca_file = ca_file or w.fx.ca_file
        self.domain = name + ".test"
        self.rid = "2024-05-01_%s_%s" % (self.domain, SUBMITTER)
        self.spool = os.path.join(w.work, "spool-" + (spool or name))
        self.retry = retry
        self.json = report_json(self.domain, self.rid)
        self.jfile = os.path.join(w.work, name + ".json")
        with open(self.jfile, "w") as f:
            f.write(self.json)

    def txt(self, *records):
        self.w.names["_smtp._tls." + self.domain] = {"TXT": [[r] for r in records]}

    def argv(self, *args):
        w = self.w
        return [DRIVER, "--spool", self.spool, "--sendmail", "/bin/sh %s -i -t" % w.sink,
                "--from", FROM, "--submitter", SUBMITTER,
                "--dns", "127.0.0.1:%d" % w.dns_port, "--dns-timeout", "500",
                "--dns-tries", "2", "--ca-file", self.ca_file, "--https-timeout", "5000",
                "--retry-time", str(self.retry)] + \
            (["--allow-internal", "yes"] if self.allow_internal else []) + list(args)

    def drive(self, *args):
        p = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, "rsend_driver %s: exit %d: %s" % (args, p.returncode, p.stderr)
        return json.loads(p.stdout), p.stderr

    def enqueue(self):
        return self.drive("enqueue", self.domain, self.rid, str(BEGIN), str(END), self.jfile)[0]

    def run(self, now):
        return self.drive("run", str(now))

    def runs(self, now, *then):
        """One process running the spool at now, then again for each
        (ca_file, time) pair with that CA file: the counters of each run."""
        args = [str(now)] + [str(a) for pair in then for a in pair]
        p = subprocess.run(self.argv("run", *args), capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, "rsend_driver run %s: exit %d: %s" % (
            args, p.returncode, p.stderr)
        return [json.loads(line) for line in p.stdout.splitlines()], p.stderr

    def spooled(self):
        return sorted(glob.glob(os.path.join(self.spool, "r-*.json")))


def stats(**kw):
    base = {"queued": 0, "duplicates": 0, "delivered": 0, "deferred": 0, "given_up": 0,
            "no_rua": 0}
    base.update(kw)
    return base


def eq(what, got, want):
    assert got == want, "%s: got %r, want %r" % (what, got, want)


def check_mail(path, c, to, date=T0):
    """The RFC 8460 5.3 message, parsed by a real MIME parser."""
    if isinstance(path, bytes):
        raw = path
    else:
        with open(path, "rb") as f:
            raw = f.read()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    eq("From", str(msg["From"]), FROM)
    eq("To", str(msg["To"]), to)
    eq("Subject", str(msg["Subject"]), "Report Domain: %s Submitter: %s Report-ID: <%s@%s>"
       % (c.domain, SUBMITTER, c.rid, SUBMITTER))
    eq("TLS-Report-Domain", str(msg["TLS-Report-Domain"]), c.domain)
    eq("TLS-Report-Submitter", str(msg["TLS-Report-Submitter"]), SUBMITTER)
    eq("TLS-Required", str(msg["TLS-Required"]), "No")
    eq("MIME-Version", str(msg["MIME-Version"]), "1.0")
    assert msg["Message-ID"] and str(msg["Message-ID"]).endswith("@%s>" % SUBMITTER), \
        msg["Message-ID"]
    eq("Date", email.utils.parsedate_to_datetime(str(msg["Date"])).timestamp(), float(date))
    eq("content type", msg.get_content_type(), "multipart/report")
    eq("report-type", msg.get_param("report-type"), "tlsrpt")
    parts = list(msg.iter_parts())
    eq("parts", [p.get_content_type() for p in parts],
       ["text/plain", "application/tlsrpt+gzip"])
    assert c.domain in parts[0].get_content() and c.rid in parts[0].get_content(), \
        parts[0].get_content()
    att = parts[1]
    eq("disposition", att.get_content_disposition(), "attachment")
    eq("file name (RFC 8460 5.1)", att.get_filename(),
       "%s!%s!%d!%d.json.gz" % (SUBMITTER, c.domain, BEGIN, END))
    eq("transfer encoding", att["Content-Transfer-Encoding"], "base64")
    eq("report", gzip.decompress(att.get_payload(decode=True)).decode(), c.json)
    assert msg.defects == [] and all(p.defects == [] for p in parts), \
        (msg.defects, [p.defects for p in parts])


def check_post(entry, c, path="/v1/tlsrpt"):
    hdrs = {k.lower(): v for k, v in entry["headers"]}
    eq("path", entry["path"], path)
    eq("Content-Type", hdrs.get("content-type"), "application/tlsrpt+gzip")
    eq("report", gzip.decompress(base64.b64decode(entry["body_b64"])).decode(), c.json)


def main():
    if not os.access(DRIVER, os.X_OK):
        print("rsend_driver not built at %s" % DRIVER)
        return 99
    if not harness.have_dnslib():
        print("1..0 # SKIP python3-dnslib missing (the DNS fixture needs it)")
        return 77
    report = harness.TestReport("rsend")
    with tempfile.TemporaryDirectory(prefix="mtasts-rsend-test.") as work:
        fx = harness.Fixtures(work)
        try:
            w = World(fx, work)
            # Host names first (certificates are made at start-up).
            for h in ("rpt.https-ok.test", "rpt.https-retry.test", "rpt.https-gone.test",
                      "rpt.both.test", "rpt.crash.test", "rpt.webpki.test",
                      "rpt.concurrent.test", "rpt.internal.test", "rpt.internal-mixed.test",
                      "rpt.ca-first.test", "rpt.ca-second.test", "rpt.ca-good.test",
                      "rpt.ca-other.test"):
                w.endpoint(h)
            w.hosts["rpt.webpki.test"]["cert"] = "untrusted"
            w.hosts["rpt.ca-other.test"]["cert"] = "untrusted"
            w.hosts["rpt.ca-good.test"]["status"] = 500
            w.start()
            run_tests(report, w)
        finally:
            fx.stop()
    return report.finish()


def run_tests(report, w):
    cases = {}

    def case(name, retry=86400, allow_internal=True, **kw):
        cases[name] = Case(w, name, retry, allow_internal, **kw)
        return cases[name]

    # Zone and endpoints of every scenario, pushed once.
    c = case("mailto")
    c.txt("v=TLSRPTv1; rua=mailto:tlsrpt@mailto.test")
    c = case("https-ok")
    c.txt("v=TLSRPTv1; rua=%s" % w.url("rpt.https-ok.test"))
    c = case("https-retry")
    c.txt("v=TLSRPTv1; rua=%s" % w.url("rpt.https-retry.test"))
    w.hosts["rpt.https-retry.test"]["status"] = 500
    c = case("https-gone", retry=3600)
    c.txt("v=TLSRPTv1; rua=%s" % w.url("rpt.https-gone.test"))
    w.hosts["rpt.https-gone.test"]["status"] = 404
    c = case("both")
    c.txt("v=spf1 -all",
          "v=TLSRPTv1; rua=mailto:tlsrpt@both.test, %s; ext=1" % w.url("rpt.both.test"))
    w.hosts["rpt.both.test"]["status"] = 500
    c = case("crash")
    c.txt("v=TLSRPTv1; rua=mailto:tlsrpt@crash.test,%s" % w.url("rpt.crash.test"))
    w.hosts["rpt.crash.test"]["delay_ms"] = 4000
    c = case("two-records")
    c.txt("v=TLSRPTv1; rua=mailto:a@two-records.test", "v=TLSRPTv1; rua=mailto:b@two-records.test")
    c = case("many-txt")
    c.txt(*(["site-verification=%03d-%s" % (i, "x" * 20) for i in range(300)]
            + ["v=TLSRPTv1; rua=mailto:tlsrpt@many-txt.test"]))
    c = case("no-record")
    c = case("unusable")
    c.txt("v=TLSRPTv1; rua=http://rpt.unusable.test/x,mailto:a@unusable.test!10m")
    c = case("webpki")
    c.txt("v=TLSRPTv1; rua=%s" % w.url("rpt.webpki.test"))
    c = case("dup")
    c.txt("v=TLSRPTv1; rua=mailto:tlsrpt@dup.test")
    c = case("concurrent")
    c.txt("v=TLSRPTv1; rua=%s" % w.url("rpt.concurrent.test"))
    w.hosts["rpt.concurrent.test"]["delay_ms"] = 1500
    c = case("internal", allow_internal=False)
    c.txt("v=TLSRPTv1; rua=%s" % w.url("rpt.internal.test"))
    c = case("internal-mixed", allow_internal=False)
    c.txt("v=TLSRPTv1; rua=mailto:tlsrpt@internal-mixed.test,%s" % w.url("rpt.internal-mixed.test"))
    ca_copy = os.path.join(w.work, "ca-once.pem")
    shutil.copyfile(w.fx.ca_file, ca_copy)
    c = case("ca-once", ca_file=ca_copy)
    c.txt("v=TLSRPTv1; rua=%s,mailto:tlsrpt@ca-once.test,%s"
          % (w.url("rpt.ca-first.test"), w.url("rpt.ca-second.test")))
    c = case("ca-good", spool="ca-switch")
    c.txt("v=TLSRPTv1; rua=%s" % w.url("rpt.ca-good.test"))
    c = case("ca-other", spool="ca-switch")
    c.txt("v=TLSRPTv1; rua=%s" % w.url("rpt.ca-other.test"))
    w.push()

    def mailto():
        c = cases["mailto"]
        eq("enqueue", c.enqueue(), stats(queued=1))
        before = len(w.mails())
        eq("run", c.run(T0)[0], stats(delivered=1))
        new = w.mails()[before:]
        eq("messages", len(new), 1)
        check_mail(new[0], c, "tlsrpt@mailto.test")
        with open(os.path.join(w.mail, "args")) as f:
            assert "-i -t" in f.read(), "ReportSendmail arguments lost"
        eq("spool after delivery", c.spooled(), [])
        eq("second run", c.run(T0 + 3600)[0], stats())
        eq("messages after second run", len(w.mails()), before + 1)
        eq("enqueue again (same day re-run)", c.enqueue(), stats(duplicates=1))
    report.run("mailto rua: multipart/report tlsrpt message with gzip attachment, sent once",
               mailto)

    def https_ok():
        c = cases["https-ok"]
        c.enqueue()
        eq("run", c.run(T0)[0], stats(delivered=1))
        posts = w.posts("rpt.https-ok.test")
        eq("POSTs", len(posts), 1)
        check_post(posts[0], c)
        eq("spool", c.spooled(), [])
    report.run("https rua on a non-443 port: POST application/tlsrpt+gzip, 200 delivers",
               https_ok)

    def https_retry():
        c = cases["https-retry"]
        c.enqueue()
        out, err = c.run(T0)
        eq("first run (500)", out, stats(deferred=1))
        assert "HTTP status 500" in err, err
        eq("spool keeps it", len(c.spooled()), 1)
        with open(c.spooled()[0]) as f:
            env = json.load(f)
        eq("next attempt", env["next_attempt"], T0 + 300)
        eq("before the backoff", c.run(T0 + 299)[0], stats())
        eq("POSTs so far", len(w.posts("rpt.https-retry.test")), 1)
        w.hosts["rpt.https-retry.test"]["status"] = 200
        w.push()
        eq("after the backoff", c.run(T0 + 300)[0], stats(delivered=1))
        posts = w.posts("rpt.https-retry.test")
        eq("POSTs", len(posts), 2)
        check_post(posts[1], c)
        eq("spool", c.spooled(), [])
    report.run("https 500: deferred, kept in the spool, delivered after the backoff",
               https_retry)

    def https_gone():
        c = cases["https-gone"]
        c.enqueue()
        eq("first run (404)", c.run(T0)[0], stats(deferred=1))
        eq("second run (404)", c.run(T0 + 300)[0], stats(deferred=1))
        with open(c.spooled()[0]) as f:
            env = json.load(f)
        eq("backoff doubled", env["next_attempt"], T0 + 300 + 600)
        out, err = c.run(T0 + 3600)
        eq("after ReportRetryTime", out, stats(given_up=1))
        assert "report-giveup" in err, err
        eq("spool", c.spooled(), [])
        eq("enqueue again", c.enqueue(), stats(duplicates=1))
        eq("POSTs", len(w.posts("rpt.https-gone.test")), 3)
    report.run("https 404 until ReportRetryTime: given up with a log line, not requeued",
               https_gone)

    def both():
        c = cases["both"]
        c.enqueue()
        before = len(w.mails())
        eq("first run", c.run(T0)[0], stats(delivered=1, deferred=1))
        eq("mails", len(w.mails()), before + 1)
        check_mail(w.mails()[-1], c, "tlsrpt@both.test")
        with open(c.spooled()[0]) as f:
            env = json.load(f)
        mail_state = env["rua"]["mailto:tlsrpt@both.test"]
        https_state = env["rua"][w.url("rpt.both.test")]
        eq("mailto recorded", mail_state["delivered"], T0)
        eq("https not delivered", https_state["delivered"], 0)
        assert "HTTP status 500" in https_state["last_error"], https_state
        w.hosts["rpt.both.test"]["status"] = 202
        w.push()
        eq("second run", c.run(T0 + 300)[0], stats(delivered=1))
        eq("mailto not resent", len(w.mails()), before + 1)
        eq("POSTs", len(w.posts("rpt.both.test")), 2)
        eq("spool", c.spooled(), [])
    report.run("two ruas, https failing: mailto delivered once, https after the backoff",
               both)

    def crash():
        c = cases["crash"]
        c.enqueue()
        before = len(w.mails())
        p = subprocess.Popen(c.argv("run", str(T0)), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            # The mail goes first, then the POST hangs for 4 s: kill -9 then.
            harness.wait_for(lambda: len(w.mails()) > before, timeout=20, msg="the report mail")
            harness.wait_for(lambda: len(w.posts("rpt.crash.test")) > 0, timeout=20,
                             msg="the POST")
        finally:
            p.kill()
            p.communicate()
        eq("spool file survives", len(c.spooled()), 1)
        w.hosts["rpt.crash.test"]["delay_ms"] = 0
        w.push()
        eq("run after the crash", c.run(T0 + 1)[0], stats(delivered=1))
        eq("mailto not resent", len(w.mails()), before + 1)
        eq("spool", c.spooled(), [])
    report.run("killed between rua 1 and rua 2: rua 1 is not sent again", crash)

    def two_records():
        c = cases["two-records"]
        c.enqueue()
        before = len(w.mails())
        out, err = c.run(T0)
        eq("run", out, stats(no_rua=1))
        assert "found 2 v\\x3dTLSRPTv1 records" in err, err
        eq("mails", len(w.mails()), before)
        eq("spool", c.spooled(), [])
    report.run("two v=TLSRPTv1 records: no rua, counted, nothing sent", two_records)

    def many_txt():
        c = cases["many-txt"]
        eq("enqueue", c.enqueue(), stats(queued=1))
        before = len(w.mails())
        out, err = c.run(T0)
        eq("run (%s)" % err.strip()[-300:], out, stats(delivered=1))
        new = w.mails()[before:]
        eq("messages", len(new), 1)
        check_mail(new[0], c, "tlsrpt@many-txt.test")
    report.run("300 unrelated TXT records and one v=TLSRPTv1 (RFC 8460 3: discard, then "
               "count): the report is sent", many_txt)

    def no_record():
        c = cases["no-record"]
        c.enqueue()
        out, err = c.run(T0)
        eq("run", out, stats(no_rua=1))
        assert "NXDOMAIN" in err, err
    report.run("no _smtp._tls record (NXDOMAIN): nothing to send, not an error", no_record)

    def unusable():
        c = cases["unusable"]
        c.enqueue()
        out, err = c.run(T0)
        eq("run", out, stats(no_rua=1))
        assert "not supported" in err, err
    report.run("only http: and a '!size' mailto: no usable rua", unusable)

    def webpki():
        c = cases["webpki"]
        c.enqueue()
        out, err = c.run(T0)
        eq("run", out, stats(deferred=1))
        eq("no request reached the endpoint", len(w.posts("rpt.webpki.test")), 0)
        assert "certificate" in err.lower(), err
    report.run("https endpoint with an untrusted certificate: not delivered, deferred", webpki)

    def dup():
        c = cases["dup"]
        eq("first", c.enqueue(), stats(queued=1))
        eq("second", c.enqueue(), stats(duplicates=1))
        eq("spool files", len(c.spooled()), 1)
        before = len(w.mails())
        eq("run", c.run(T0)[0], stats(delivered=1))
        eq("one message", len(w.mails()), before + 1)
    report.run("the same report id queued twice: one spool file, one message", dup)

    def concurrent():
        c = cases["concurrent"]
        c.enqueue()
        ps = [subprocess.Popen(c.argv("run", str(T0)), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [json.loads(p.communicate(timeout=60)[0]) for p in ps]
        eq("exit codes", [p.returncode for p in ps], [0, 0])
        eq("delivered in all", sum(o["delivered"] for o in outs), 1)
        eq("POSTs", len(w.posts("rpt.concurrent.test")), 1)
    report.run("two concurrent runs (spool lock): delivered exactly once", concurrent)

    def internal():
        c = cases["internal"]
        c.enqueue()
        out, err = c.run(T0)
        eq("run", out, stats(given_up=1))
        assert "refused to connect to 127.0.0.1 (Loopback" in err, err
        assert "permanent=yes" in err, err
        eq("connections to the endpoint", w.connections("rpt.internal.test"), 0)
        eq("POSTs", len(w.posts("rpt.internal.test")), 0)
        eq("spool (finished, not retried)", c.spooled(), [])
        eq("enqueue again", c.enqueue(), stats(duplicates=1))
    report.run("https rua resolving to 127.0.0.1: refused without a connection, given up",
               internal)

    def internal_mixed():
        c = cases["internal-mixed"]
        c.enqueue()
        rc = os.path.join(w.mail, "rc")
        with open(rc, "w") as f:
            f.write("75\n")
        try:
            out, err = c.run(T0)
        finally:
            os.unlink(rc)
        eq("first run (mail fails, https refused)", out, stats(deferred=1, given_up=1))
        with open(c.spooled()[0]) as f:
            env = json.load(f)
        https_state = env["rua"][w.url("rpt.internal-mixed.test")]
        eq("https rua given up", https_state.get("given_up"), T0)
        assert "refused to connect" in https_state["last_error"], https_state
        out, err = c.run(T0 + 300)
        eq("second run: the mail only", out, stats(delivered=1))
        assert "report-failed" not in err, "the refused rua was tried again:\n" + err
        eq("connections to the endpoint", w.connections("rpt.internal-mixed.test"), 0)
        eq("spool", c.spooled(), [])
    report.run("refused https rua is not retried while the report waits for another rua",
               internal_mixed)

    def ca_once():
        # One report, three ruas in record order: a POST, a mail whose
        # ReportSendmail garbles the CA file, a POST.  The CAs are parsed
        # once per process (src/sts/fetch.c), so the second POST is
        # verified with those read for the first, not with the garbage.
        c = cases["ca-once"]
        c.enqueue()
        hook = os.path.join(w.mail, "hook")
        with open(hook, "w") as f:
            f.write("printf 'no certificates here\\n' > %s\n" % c.ca_file)
        try:
            out, err = c.run(T0)
        finally:
            os.unlink(hook)
        with open(c.ca_file) as f:
            eq("CA file after the mail", f.read(), "no certificates here\n")
        eq("run (%s)" % err.strip()[-300:], out, stats(delivered=3))
        eq("POSTs before the mail", len(w.posts("rpt.ca-first.test")), 1)
        eq("POSTs after the mail", len(w.posts("rpt.ca-second.test")), 1)
        check_post(w.posts("rpt.ca-second.test")[0], c)
        eq("spool", c.spooled(), [])
    report.run("CA file garbled between two uploads of one run: the second is verified "
               "with the CAs parsed for the first", ca_once)

    def ca_switch():
        # One process, two runs of one spool: the first with the test CA
        # (it parses that store), the second with a file holding only the
        # other CA: that file is parsed, and it alone is trusted.
        good, other = cases["ca-good"], cases["ca-other"]
        good.enqueue()
        other.enqueue()
        other_ca = os.path.join(w.fx.certdir, "untrusted-ca.pem")
        assert os.path.exists(other_ca), "the fixture made no untrusted-ca.pem"
        outs, err = good.runs(T0, (other_ca, T0 + 300))
        eq("runs (%s)" % err.strip()[-600:], outs,
           [stats(deferred=2), stats(delivered=1, deferred=1)])
        eq("POSTs to the other CA's host (refused, then trusted)",
           len(w.posts("rpt.ca-other.test")), 1)
        check_post(w.posts("rpt.ca-other.test")[0], other)
        eq("POSTs to the test CA's host (answered 500, then refused)",
           len(w.posts("rpt.ca-good.test")), 1)
        assert "certificate" in err.lower(), err
        eq("left in the spool (the test CA's report)", len(good.spooled()), 1)
    report.run("another CA file in the same process: parsed, its CAs alone trusted",
               ca_switch)

    def mime_driver():
        c = cases["mailto"]
        p = subprocess.run(c.argv("mail", "x@%s" % c.domain, c.domain, c.rid, str(BEGIN),
                                  str(END), c.jfile), capture_output=True, timeout=30)
        eq("exit", p.returncode, 0)
        check_mail(p.stdout, c, "x@%s" % c.domain, date=END + 3600)
    report.run("sts_rmail_build output parses as RFC 8460 5.3 mail", mime_driver)


if __name__ == "__main__":
    sys.exit(main())
