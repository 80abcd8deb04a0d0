#!/usr/bin/python3
"""End to end (issue 6, Tests, second bullet): a real Postfix delivers mail,
mtasts-report reads Postfix's log and the daemon's decision log, finds the
failures, discovers each domain's rua in DNS and delivers the RFC 8460
reports through the same Postfix (mailto) and by HTTPS POST.

Everything runs in a private network namespace through
tests/mta/deliverylab.py (DNS on 127.0.0.1:53, policies and the HTTPS
report endpoint on :443, MX sinks on 127.0.0.N:25, mtasts-milter, Postfix
with the packaged snippets, smtp_tls_loglevel 1).  The world:

  bad.test    testing, MX with a self-signed certificate: 3 messages (one
              with two recipients), delivered at TLS level "may", logged
              "Untrusted" -> 3 failed sessions, certificate-not-trusted;
              rua = mailto:tlsrpt@rua.test and https://rua-https.test/tlsrpt
  good.test   enforce, MX with a valid certificate: 2 messages, "Verified"
              -> 2 successful sessions; rua = mailto:tlsrpt-good@rua.test
  notls.test  enforce, MX without STARTTLS: 1 message, deferred ("TLS is
              required, but was not offered") and then deleted from the
              queue so the number of attempts is fixed -> one failed
              session per attempt, starttls-not-supported;
              rua = mailto:tlsrpt-notls@rua.test
  quiet.test  testing, valid certificate, no _smtp._tls record: 1 message
              -> a report, but no rua to send it to
  rua.test    no MTA-STS policy: where the report mail goes (its MX sink)

mtasts-report runs on lab.pf.maillog + the decision log with --date = today
(UTC), --dns 127.0.0.1:53, --ca-file = the test CA and --sendmail = this
Postfix's sendmail -i -t, so the report mail goes through pickup, the
milter and smtp(8) to rua.test's MX.  Checked: the stderr counts; the
--summary table; each mail (multipart/report; report-type="tlsrpt",
TLS-Report-Domain, TLS-Report-Submitter, TLS-Required: No, the RFC 5.3
subject, the RFC 5.1 file name) and its gunzipped report (RFC 8460 field
list via test_report.validate, counts, result types, receiving MX host
name and IP, sending MTA IP); the POST at the HTTPS endpoint
(application/tlsrpt+gzip, the same report); a second run sends nothing.

Needs root, iproute2, postfix and python3-dnslib; skips (77) otherwise.
MTASTS_KEEP_WORKDIR=1 keeps the work dir.
"""

import base64
import calendar
import email
import email.policy
import gzip
import json
import os
import re
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "mta"))
import harness  # noqa: E402
from harness import note  # noqa: E402
from deliverylab import DeliveryLab, MX, run_report_lab  # noqa: E402
from test_report import validate  # noqa: E402  (RFC 8460 section 4 field list)

REPORT = os.environ.get("MTASTS_REPORT") or os.path.join(
    harness.builddir(), "src", "mtasts-report")
TIMEOUT = 30.0
SUBMITTER = "sender.test"         # the domain of CONTACT (RFC 8460 5.3)
HOSTID = "mta.sender.test"
ORG = "Sender Test Org"
CONTACT = "tlsrpt-contact@sender.test"
FROM = "tlsrpt-noreply@sender.test"
SENDING_IP = "127.0.0.1"          # Postfix's source address on lo (checked below)
RUA_HTTPS = "rua-https.test"

CONFIG = """\
ReportOrganization {org}
ReportContact {contact}
ReportFrom {sender}
ReportSubmitter {submitter}
ReportHostID {hostid}
ReportSendingIP {ip}
ReportSpool {spool}
# the lab's report endpoints are on loopback
AllowInternalAddresses yes
"""

BAD, GOOD, NOTLS, QUIET, RUA = "bad.test", "good.test", "notls.test", "quiet.test", "rua.test"


def eq(what, got, want):
    assert got == want, "%s: got %r, want %r" % (what, got, want)


def tlsrpt(*ruas):
    return {"TXT": [["v=TLSRPTv1; rua=" + ",".join(ruas)]]}


def build_lab(work):
    lab = DeliveryLab(os.path.join(work, "lab"))
    lab.add_domain(BAD, "testing", [MX("mx1." + BAD, "selfsigned")], names={
        "_smtp._tls." + BAD: tlsrpt("mailto:tlsrpt@" + RUA,
                                    "https://%s/tlsrpt" % RUA_HTTPS)})
    lab.add_domain(GOOD, "enforce", [MX("mx1." + GOOD, "good")], names={
        "_smtp._tls." + GOOD: tlsrpt("mailto:tlsrpt-good@" + RUA)})
    lab.add_domain(NOTLS, "enforce", [MX("mx1." + NOTLS, None)], names={
        "_smtp._tls." + NOTLS: tlsrpt("mailto:tlsrpt-notls@" + RUA)})
    lab.add_domain(QUIET, "testing", [MX("mx1." + QUIET, "good")])
    lab.add_domain(RUA, None, [MX("mx." + RUA, "good")])
    lab.add_https_host(RUA_HTTPS, {"post": True, "status": 200, "body": "ok\n"})
    lab.add_names({RUA_HTTPS: {"A": ["127.0.0.1"]}})
    return lab


def utc_day(t=None):
    return time.strftime("%Y-%m-%d", time.gmtime(t))


class Run:
    def __init__(self, lab, work):
        self.lab, self.work = lab, work
        self.spool = os.path.join(work, "spool")
        self.config = os.path.join(work, "report.conf")
        with open(self.config, "w") as fh:
            fh.write(CONFIG.format(org=ORG, contact=CONTACT, sender=FROM, submitter=SUBMITTER, hostid=HOSTID,
                                   ip=SENDING_IP, spool=self.spool))
        self.day = None

    def argv(self, *extra):
        return [REPORT, "--config", self.config, "--date", self.day,
                "--dns", "127.0.0.1:53", "--ca-file", self.lab.ca_file,
                "--sendmail", " ".join(shlex.quote(a) for a in self.lab.sendmail_argv())] + \
            list(extra) + [self.lab.pf.maillog, self.lab.daemon.decision_log]

    def run(self, *extra):
        t0 = time.monotonic()
        p = subprocess.run(self.argv(*extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120)
        so, se = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        note("mtasts-report %s: exit %d in %.2f s" % (" ".join(extra), p.returncode,
                                                       time.monotonic() - t0))
        note("stdout:\n" + so)
        note("stderr:\n" + se)
        bad = [l for l in se.splitlines() if re.search(r"Sanitizer|runtime error:", l)]
        assert not bad, "sanitizer report:\n" + "\n".join(bad)
        return p.returncode, so, se


def report_mails(lab):
    """{TLS-Report-Domain: [parsed message]} from rua.test's MX sink."""
    out = {}
    for m in lab.sink("mx." + RUA).messages():
        msg = email.message_from_bytes(m.data, policy=email.policy.default)
        d = str(msg.get("TLS-Report-Domain", ""))
        if d:
            out.setdefault(d, []).append((m, msg))
    return out


def posts(lab):
    return [e for e in lab.fx.https_stats()["log"]
            if e["sni"] == RUA_HTTPS and e["method"] == "POST"]


def fname(domain, day):
    begin = calendar.timegm(time.strptime(day, "%Y-%m-%d"))
    return "%s!%s!%d!%d.json.gz" % (SUBMITTER, domain, begin, begin + 86399)


def check_mail(msg, domain, to, day):
    """The RFC 8460 5.3 message as it came out of Postfix; returns the
    gunzipped report bytes."""
    eq("To", str(msg["To"]), to)
    eq("From", str(msg["From"]), FROM)
    eq("TLS-Report-Domain", str(msg["TLS-Report-Domain"]), domain)
    eq("TLS-Report-Submitter", str(msg["TLS-Report-Submitter"]), SUBMITTER)
    eq("TLS-Required", str(msg["TLS-Required"]), "No")
    rid = "%s_%s_%s@%s" % (day, domain, HOSTID, SUBMITTER)
    eq("Subject", " ".join(str(msg["Subject"]).split()),
       "Report Domain: %s Submitter: %s Report-ID: <%s>" % (domain, SUBMITTER, rid))
    eq("content type", msg.get_content_type(), "multipart/report")
    eq("report-type", msg.get_param("report-type"), "tlsrpt")
    att = [p for p in msg.walk() if p.get_content_type() == "application/tlsrpt+gzip"]
    eq("tlsrpt+gzip parts", len(att), 1)
    eq("disposition", att[0].get_content_disposition(), "attachment")
    eq("file name (RFC 8460 5.1)", att[0].get_filename(), fname(domain, day))
    raw = att[0].get_payload(decode=True)
    assert raw[:2] == b"\x1f\x8b", "attachment is not gzip: %r" % raw[:16]
    return gzip.decompress(raw)


def check_policy(r, domain, mode, mx, day):
    """Top level and the single sts policy entry of report r; returns it."""
    validate(r, domain)
    eq("organization-name", r["organization-name"], ORG)
    eq("contact-info", r["contact-info"], CONTACT)
    eq("report-id", r["report-id"], "%s_%s_%s@%s" % (day, domain, HOSTID, SUBMITTER))
    eq("date-range", r["date-range"], {"start-datetime": day + "T00:00:00Z",
                                       "end-datetime": day + "T23:59:59Z"})
    eq("policies", len(r["policies"]), 1)
    p = r["policies"][0]
    eq("policy", p["policy"], {
        "policy-type": "sts",
        "policy-string": ["version: STSv1", "mode: " + mode] + ["mx: " + m for m in mx] +
                         ["max_age: 86400"],
        "policy-domain": domain, "mx-host": list(mx)})
    return p


def check_failures(p, ok, bad, result_type, mx):
    eq("summary", p["summary"], {"total-successful-session-count": ok,
                                 "total-failure-session-count": bad})
    fd = p.get("failure-details", [])
    eq("failure-details", len(fd), 1)
    d = dict(fd[0])
    reason = d.pop("failure-reason-code", None)
    eq("failure-details[0]", d, {"result-type": result_type, "sending-mta-ip": SENDING_IP,
                                 "receiving-mx-hostname": mx.host,
                                 "receiving-ip": mx.ip, "failed-session-count": bad})
    return reason


def main():
    return run_report_lab("test_report_e2e", "mtasts-report end to end through Postfix",
                          "end-to-end report delivery", REPORT,
                          lambda report, work: run_lab(report, build_lab(work), work))


def run_lab(report, lab, work):
    """Start the lab and run the cases; the lab is stopped however it ends."""
    st = {}
    try:
        def start():
            lab.start()
            note("lab started in %.1f s; MX hosts: %s" % (lab.timings["start"], ", ".join(
                "%s=%s(%s)" % (m.host, m.ip, m.cert or "no TLS")
                for d in lab.domains.values() for m in d.mx)))
        if not report.run("start DNS, HTTPS (policies + report endpoint), MX sinks, "
                          "mtasts-milter, Postfix", start):
            note(lab.diagnostics())
            return
        if not report.run("deliver: 3 x testing/self-signed, 2 x enforce/valid, "
                          "1 x enforce/no STARTTLS, 1 x testing/no rua", deliver, lab, st):
            return
        run = Run(lab, work)
        run.day = utc_day()
        report.run("first mtasts-report run: 4 reports queued, 4 rua deliveries, "
                   "1 report without rua", first_run, run, st)
        report.run("--summary: one line per domain with its counts", summary, st)
        report.run("%s (testing, self-signed MX): report mail through Postfix to the "
                   "mailto rua, 3 x certificate-not-trusted" % BAD, bad_mail, run, st)
        report.run("%s: the same report POSTed to the https rua as application/tlsrpt+gzip"
                   % BAD, bad_post, run, st)
        report.run("%s (enforce, valid certificate): 2 successful sessions, no failures"
                   % GOOD, good_mail, run, st)
        report.run("%s (enforce, no STARTTLS): starttls-not-supported, one per attempt"
                   % NOTLS, notls_mail, run, st)
        report.run("the report mail itself went out through Postfix with TLS, "
                   "no report for the policy-less rua domain", report_mail_delivery, run, st)
        report.run("second run for the same day: all duplicates, nothing sent again",
                   second_run, run, st)
    finally:
        lab.stop()


# ------------------------------------------------------------------ cases

def deliver(lab, st):
    sents = {
        BAD: [lab.send("u1@" + BAD), lab.send("u2@" + BAD),
              lab.send(["u3@" + BAD, "u4@" + BAD])],
        GOOD: [lab.send("u1@" + GOOD), lab.send("u2@" + GOOD)],
        NOTLS: [lab.send("u1@" + NOTLS)],
        QUIET: [lab.send("u1@" + QUIET)],
    }
    st["sents"] = sents
    for d in (BAD, GOOD, QUIET):
        for s in sents[d]:
            m = lab.wait_delivered(s, TIMEOUT)
            assert m.tls, "%s delivered without TLS" % s
    nt = sents[NOTLS][0]
    lab.wait_deferred(nt, TIMEOUT)
    # Fix the number of attempts: delete the deferred message, wait until
    # Postfix has removed it (an attempt in flight ends first).
    rc, out = subprocess.getstatusoutput("/usr/sbin/postsuper -c %s -d %s"
                                         % (shlex.quote(lab.pf.etc), nt.queue_id))
    assert rc == 0, "postsuper -d: %s" % out
    harness.wait_for(lambda: lab.pf.log_lines(nt.queue_id, r"\bremoved\b"), timeout=TIMEOUT,
                     msg="%s removed from the queue" % nt.queue_id)
    harness.wait_for(lambda: not any(nt.queue_id in q for q in lab.pf.queue_files().values()),
                     timeout=TIMEOUT, msg="%s gone from the queue files" % nt.queue_id)
    # An attempt in flight may log its status after qmgr logged "removed"
    # (seen in a distcheck run: one line counted, two reported): count
    # until the number has not changed for 3 s.
    def attempts():
        return len(lab.pf.log_lines(
            nt.queue_id, r"relay=mx1\.notls\.test\[.*status=deferred \(TLS is required, "
                         r"but was not offered"))
    seen = {"n": attempts(), "since": time.monotonic()}

    def settled():
        n = attempts()
        if n != seen["n"]:
            seen["n"], seen["since"] = n, time.monotonic()
        return time.monotonic() - seen["since"] >= 3
    harness.wait_for(settled, timeout=TIMEOUT, msg="the attempts on %s settled" % NOTLS)
    st["notls_attempts"] = seen["n"]
    assert st["notls_attempts"] >= 1
    untrusted = lab.pf.log_lines(pattern=r"Untrusted TLS connection established to "
                                         r"mx1\.bad\.test\[")
    eq("Untrusted TLS lines for mx1.bad.test", len(untrusted), 3)
    verified = lab.pf.log_lines(pattern=r"Verified TLS connection established to "
                                        r"mx1\.good\.test\[")
    eq("Verified TLS lines for mx1.good.test", len(verified), 2)
    # Postfix's source address, the report's sending-mta-ip.
    peers = {m.meta["peer"].rsplit(":", 1)[0] for m in lab.sink("mx1." + BAD).messages()}
    eq("peer addresses seen by mx1.bad.test", peers, {SENDING_IP})
    note("Postfix TLS lines:\n" + "\n".join(
        l for l in lab.pf.log_lines(pattern=r"TLS connection established")))
    for d, ss in sents.items():
        for s in ss:
            note("%s: %s" % (s, " | ".join(l.split(": ", 1)[-1] for l in
                                           lab.pf.log_lines(s.queue_id, r"status="))))
    note("%s: %d attempts before deletion" % (NOTLS, st["notls_attempts"]))
    note("decision log:\n" + "\n".join(json.dumps(d) for d in lab.decisions()))


def first_run(run, st):
    before = len(run.lab.pf.log_lines(pattern=r"postfix/pickup\["))
    rc, so, se = run.run("--summary")
    st["first"] = (rc, so, se)
    eq("exit status", rc, 0)
    assert "queued 4, duplicates 0, delivered 4, deferred 0, given up 0, no rua 1" in se, se
    assert "reports 4" in se, se
    assert "warning" not in se, "warnings on a clean log:\n" + se
    # Three mails handed to Postfix's sendmail: picked up, delivered.
    harness.wait_for(lambda: len(run.lab.pf.log_lines(pattern=r"postfix/pickup\[")) >= before + 3,
                     timeout=TIMEOUT, msg="pickup of 3 report mails")
    harness.wait_for(lambda: sum(len(v) for v in report_mails(run.lab).values()) >= 3,
                     timeout=TIMEOUT, msg="3 report mails at mx.%s" % RUA)
    harness.wait_for(lambda: len(posts(run.lab)) >= 1, timeout=TIMEOUT, msg="the POST")


def summary(st):
    if "first" not in st:
        raise harness.Skip("no first run")
    lines = st["first"][1].strip().split("\n")
    assert lines[0].split()[:5] == ["DOMAIN", "MODE", "SESSIONS", "SUCCESSES", "FAILURES"], \
        lines[0]
    rows = {l.split()[0]: l.split()[1:] for l in lines[1:-1]}
    n = st["notls_attempts"]
    want = {BAD: ["testing", "3", "0", "3", "certificate-not-trusted=3"],
            GOOD: ["enforce", "2", "2", "0", "-"],
            NOTLS: ["enforce", str(n), "0", str(n), "starttls-not-supported=%d" % n],
            QUIET: ["testing", "1", "1", "0", "-"]}
    eq("summary rows", rows, want)
    assert lines[-1].startswith("4 reports"), lines[-1]


def one_mail(run, domain):
    got = report_mails(run.lab).get(domain, [])
    eq("report mails for %s" % domain, len(got), 1)
    return got[0]


def bad_mail(run, st):
    m, msg = one_mail(run, BAD)
    eq("envelope recipient", m.rcpt_to, ["tlsrpt@" + RUA])
    raw = check_mail(msg, BAD, "tlsrpt@" + RUA, run.day)
    st["bad_raw"] = raw
    r = json.loads(raw)
    note("report for %s (mailto):\n%s" % (BAD, json.dumps(r, indent=1)))
    p = check_policy(r, BAD, "testing", ["mx1." + BAD], run.day)
    reason = check_failures(p, 0, 3, "certificate-not-trusted", run.lab.mx("mx1." + BAD))
    note("failure-reason-code: %r" % reason)


def bad_post(run, st):
    ps = posts(run.lab)
    eq("POSTs at %s" % RUA_HTTPS, len(ps), 1)
    hdrs = {k.lower(): v for k, v in ps[0]["headers"]}
    eq("path", ps[0]["path"], "/tlsrpt")
    eq("Content-Type", hdrs.get("content-type"), "application/tlsrpt+gzip")
    body = base64.b64decode(ps[0]["body_b64"])
    assert body[:2] == b"\x1f\x8b", "POST body is not gzip"
    raw = gzip.decompress(body)
    r = json.loads(raw)
    p = check_policy(r, BAD, "testing", ["mx1." + BAD], run.day)
    check_failures(p, 0, 3, "certificate-not-trusted", run.lab.mx("mx1." + BAD))
    if "bad_raw" in st:
        eq("posted report == mailed report", raw, st["bad_raw"])


def good_mail(run, st):
    m, msg = one_mail(run, GOOD)
    r = json.loads(check_mail(msg, GOOD, "tlsrpt-good@" + RUA, run.day))
    note("report for %s:\n%s" % (GOOD, json.dumps(r, indent=1)))
    p = check_policy(r, GOOD, "enforce", ["mx1." + GOOD], run.day)
    eq("summary", p["summary"], {"total-successful-session-count": 2,
                                 "total-failure-session-count": 0})
    assert "failure-details" not in p, p


def notls_mail(run, st):
    m, msg = one_mail(run, NOTLS)
    r = json.loads(check_mail(msg, NOTLS, "tlsrpt-notls@" + RUA, run.day))
    note("report for %s:\n%s" % (NOTLS, json.dumps(r, indent=1)))
    p = check_policy(r, NOTLS, "enforce", ["mx1." + NOTLS], run.day)
    n = st["notls_attempts"]
    reason = check_failures(p, 0, n, "starttls-not-supported", run.lab.mx("mx1." + NOTLS))
    note("failure-reason-code: %r" % reason)


def report_mail_delivery(run, st):
    lab = run.lab
    for d, to in ((BAD, "tlsrpt@"), (GOOD, "tlsrpt-good@"), (NOTLS, "tlsrpt-notls@")):
        m, msg = one_mail(run, d)
        assert m.tls, "report mail for %s reached mx.%s without TLS" % (d, RUA)
        eq("envelope recipient", m.rcpt_to, [to + RUA])
        qid = re.search(r"\bid ([0-9A-Za-z]+)\b", m.headers("Received")[0])
        assert qid, m.headers("Received")
        lines = lab.pf.log_lines(qid.group(1))
        assert any("postfix/pickup[" in l for l in lines), "\n".join(lines)
        assert any("status=sent" in l and "relay=mx.rua.test[" in l for l in lines), \
            "\n".join(lines)
    ds = [d for d in lab.decisions() if d.get("domain") == RUA]
    eq("decision lines for %s (non_smtpd_milters)" % RUA, len(ds), 3)
    assert all(d.get("result") == "none" for d in ds), ds
    eq("mails at quiet.test's MX", [m for m in lab.sink("mx1." + QUIET).messages()
                                    if "TLS-Report-Domain" in m.msg], [])


def second_run(run, st):
    lab = run.lab
    mails = sum(len(v) for v in report_mails(lab).values())
    pickups = len(lab.pf.log_lines(pattern=r"postfix/pickup\["))
    rc, so, se = run.run()
    eq("exit status", rc, 0)
    assert "queued 0, duplicates 4, delivered 0, deferred 0, given up 0, no rua 0" in se, se
    time.sleep(1.0)               # a mail handed over now would be picked up by now
    eq("pickups after the second run", len(lab.pf.log_lines(pattern=r"postfix/pickup\[")),
       pickups)
    eq("report mails after the second run", sum(len(v) for v in report_mails(lab).values()),
       mails)
    eq("POSTs after the second run", len(posts(lab)), 1)


if __name__ == "__main__":
    sys.exit(main())
