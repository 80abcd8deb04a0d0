#!/usr/bin/python3
"""Issue 11, Tests: TLS reports that tell the truth about testing-mode
domains, through a real Postfix in the delivery lab (tests/mta/deliverylab.py,
a private network namespace): mail to testing-mode domains is delivered as
usual (Postfix at level "may"), the daemon probes their MX hosts
(ProbeTestingMX, the default) into the decision log, and mtasts-report
joins the probes to the day's sessions.

  wrongname.test  testing, MX certificate (test CA) for another name:
                  Postfix logs "Trusted" (no name check at "may") ->
                  report: certificate-host-mismatch
  expired.test    testing, expired MX certificate: Postfix logs
                  "Untrusted" without a reason -> certificate-expired
  outside.test    testing, the MX host is not in the policy's mx list
                  (valid certificate) -> validation-failure
  fine.test       testing, valid certificate -> success (the probe agrees)
  enf.test        enforce, mx1 (preference 10) with a certificate for
                  another name, mx2 (20) valid: Postfix refuses mx1
                  (hostname mismatch) and delivers to mx2 -> report lists
                  the refused MX (certificate-host-mismatch) and the
                  success on mx2 (the MTA log alone; probes of enforce
                  domains are off by default)

Every message must be delivered; mtasts-report --dry-run writes the
reports, whose counts, result types and receiving MX hosts are checked.
Then the same four testing-mode domains through an unpacked Sendmail
(packaging/sendmail/mtasts.mc.snippet, LogLevel 14) in a fresh lab: Sendmail
says verify=OK for the wrong-name certificate (it checks no name for them),
so the probe gives certificate-host-mismatch; it logs the expiry itself.
Needs root, iproute2, postfix and python3-dnslib; skips (77) otherwise.
"""

import glob
import gzip
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "mta"))
import harness  # noqa: E402
import mtautil  # noqa: E402
from harness import note  # noqa: E402
from deliverylab import DeliveryLab, MX, Sent, lab_available, run_report_lab  # noqa: E402

REPORT = os.environ.get("MTASTS_REPORT") or os.path.join(
    harness.builddir(), "src", "mtasts-report")
TIMEOUT = 30.0
CONFIG = """\
ReportOrganization Sender Test Org
ReportContact tlsrpt@sender.test
ReportSubmitter sender.test
ReportSendingIP 127.0.0.1
ReportSpool {spool}
AllowInternalAddresses yes
"""

WRONG, EXPIRED, OUTSIDE, FINE, ENF = ("wrongname.test", "expired.test", "outside.test",
                                      "fine.test", "enf.test")
TESTING = (WRONG, EXPIRED, OUTSIDE, FINE)


def eq(what, got, want):
    assert got == want, "%s: got %r, want %r" % (what, got, want)


def build_lab(work, name="lab", postfix=True):
    lab = DeliveryLab(os.path.join(work, name), postfix=postfix)
    lab.add_domain(WRONG, "testing", [MX("mx1." + WRONG, "wrongname")])
    lab.add_domain(EXPIRED, "testing", [MX("mx1." + EXPIRED, "expired")])
    lab.add_domain(OUTSIDE, "testing", [MX("mx1." + OUTSIDE, "good")],
                   policy_mx=["mx.elsewhere.test"])
    lab.add_domain(FINE, "testing", [MX("mx1." + FINE, "good")])
    if postfix:
        lab.add_domain(ENF, "enforce", [MX("mx1." + ENF, "wrongname", 10),
                                        MX("mx2." + ENF, "good", 20)])
    return lab


def main():
    return run_report_lab("test_report_probe", "reports of testing-mode domains with MX probes",
                          "probe lab", REPORT, run_postfix, margin_s=180)


def run_postfix(report, work):
    lab = build_lab(work)
    st = {}
    try:
        if not report.run("start the lab", lab.start):
            note(lab.diagnostics())
            return
        if report.run("deliver one message to each domain; every one arrives",
                      deliver, lab, st) and \
                report.run("the daemon probed the testing-mode MX hosts", probes, lab):
            report.run("mtasts-report --dry-run", run_report, lab, work, st)
            for d, rt in ((WRONG, "certificate-host-mismatch"),
                          (EXPIRED, "certificate-expired"),
                          (OUTSIDE, "validation-failure")):
                report.run("%s: delivered, reported as %s" % (d, rt), failed_domain,
                           st, lab, d, rt)
            report.run("%s: success, the probe agrees" % FINE, fine_domain, st)
            report.run("%s: the refused MX and the success on the good one" % ENF,
                       enforce_domain, st, lab)
    finally:
        lab.stop()
    run_sendmail(report, work)


def run_sendmail(report, work):
    why = lab_available("sendmail")
    if why:
        report.skip("the same through Sendmail", why)
        return
    lab = build_lab(work, "sm-lab", postfix=False)
    st = {}
    try:
        def start():
            lab.start()
            st["sm"] = lab.start_sendmail("sendmail")
        if not report.run("Sendmail: start a fresh lab and an unpacked Sendmail", start):
            note(lab.diagnostics())
            return
        if report.run("Sendmail: one message to each testing-mode domain; every one arrives",
                      sm_deliver, lab, st) and \
                report.run("Sendmail: the daemon probed the MX hosts", probes, lab):
            report.run("Sendmail: mtasts-report --dry-run", run_report, lab,
                       os.path.join(work, "sm"), st, st["sm"].log)
            for d, rt in ((WRONG, "certificate-host-mismatch"),
                          (EXPIRED, "certificate-expired"),
                          (OUTSIDE, "validation-failure")):
                report.run("Sendmail: %s: delivered, reported as %s" % (d, rt), failed_domain,
                           st, lab, d, rt)
            report.run("Sendmail: %s: success" % FINE, fine_domain, st)
    finally:
        lab.stop()


def sm_deliver(lab, st):
    sm = st["sm"]
    sents = {}
    for d in TESTING:
        rcpt = "u1@" + d
        msg = mtautil.make_message([rcpt], subject="to " + rcpt, mail_from="sender@client.test")
        r = sm.submit("sender@client.test", [rcpt], msg)
        assert r.data and r.data[0] == 250 and r.queue_id, "not queued: %r" % (r,)
        msgid = re.search(rb"^Message-ID: (\S+)\r$", msg, re.M | re.I).group(1).decode()
        sents[d] = Sent([rcpt], msgid, r.queue_id, sm, d, result=r)
    for d, s in sents.items():
        try:
            harness.wait_for(lambda: lab.delivered(s) and sm.log_lines(s.queue_id, "stat=Sent"),
                             timeout=TIMEOUT, msg="%s delivered by Sendmail" % d)
        except AssertionError as e:
            raise AssertionError("%s\n%s\n%s" % (e, "\n".join(sm.log_lines()[-40:]),
                                                 lab.daemon.diagnostics(20))) from None
        eq("%s delivered at" % d, lab.delivered(s)[0].meta.get("sink"), "mx1." + d)
    note("Sendmail STARTTLS lines:\n" + "\n".join(sm.log_lines(pattern=r"STARTTLS=client")))
    assert sm.log_lines(pattern=r"STARTTLS=client, relay=mx1\.wrongname\.test.*verify=OK"), \
        "Sendmail did not say verify=OK for mx1.wrongname.test"


def deliver(lab, st):
    sents = {d: lab.send("u1@" + d) for d in TESTING + (ENF,)}
    st["sents"] = sents
    for d, s in sents.items():
        m = lab.wait_delivered(s, TIMEOUT)
        want_host = ("mx2." if d == ENF else "mx1.") + d
        eq("%s delivered at" % d, m.meta.get("sink") or want_host, want_host)
    for d in TESTING:
        note("%s: %s" % (d, " | ".join(lab.log_excerpt(sents[d]))))
    note("%s: %s" % (ENF, " | ".join(lab.log_excerpt(sents[ENF]))))
    trusted = lab.pf.log_lines(pattern=r"Trusted TLS connection established to "
                                       r"mx1\.wrongname\.test\[")
    assert trusted, "Postfix did not log Trusted for mx1.wrongname.test (no name check)"
    eq("messages at mx1.%s" % ENF, len(lab.sink("mx1." + ENF).messages()), 0)
    eq("messages at mx2.%s" % ENF, len(lab.sink("mx2." + ENF).messages()), 1)


def probes(lab):
    def recs():
        return {(r["domain"], r["mx"]): r for r in lab.daemon.probes()}
    harness.wait_for(lambda: len(recs()) >= 4, timeout=60,
                     msg="probe records for the 4 testing-mode domains")
    got = {k: v["result_type"] for k, v in recs().items()}
    note("probe records:\n" + "\n".join(json.dumps(r) for r in lab.daemon.probes()))
    eq("probe results", got, {
        (WRONG, "mx1." + WRONG): "certificate-host-mismatch",
        (EXPIRED, "mx1." + EXPIRED): "certificate-expired",
        (OUTSIDE, "mx1." + OUTSIDE): "validation-failure",
        (FINE, "mx1." + FINE): "success"})


def run_report(lab, work, st, mta_log=None):
    os.makedirs(work, exist_ok=True)
    spool = os.path.join(work, "spool")
    out = os.path.join(work, "reports")
    os.makedirs(out)
    conf = os.path.join(work, "report.conf")
    with open(conf, "w") as fh:
        fh.write(CONFIG.format(spool=spool))
    day = time.strftime("%Y-%m-%d", time.gmtime())
    argv = [REPORT, "--config", conf, "--date", day, "--dns", "127.0.0.1:53",
            "--ca-file", lab.ca_file, "--dry-run", out, "--summary",
            mta_log or lab.pf.maillog, lab.daemon.decision_log]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    so, se = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    note("stdout:\n" + so)
    note("stderr:\n" + se)
    eq("exit status", p.returncode, 0)
    bad = [l for l in se.splitlines() if re.search(r"Sanitizer|runtime error:", l)]
    assert not bad, "sanitizer report:\n" + "\n".join(bad)
    assert re.search(r"MX probes: records \d+", se), se
    reports = {}
    for f in glob.glob(os.path.join(out, "*.json.gz")) + glob.glob(os.path.join(out, "*.json")):
        raw = open(f, "rb").read()
        r = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        reports[r["policies"][0]["policy"]["policy-domain"]] = r
    note("reports: %s" % sorted(reports))
    st["reports"] = reports


def policy(st, domain):
    if "reports" not in st:
        raise harness.Skip("no reports")
    r = st["reports"].get(domain)
    assert r is not None, "no report for %s (have %s)" % (domain, sorted(st["reports"]))
    note(json.dumps(r, indent=1))
    eq("policies of %s" % domain, len(r["policies"]), 1)
    return r["policies"][0]


def failed_domain(st, lab, domain, rt):
    p = policy(st, domain)
    eq("summary", p["summary"], {"total-successful-session-count": 0,
                                 "total-failure-session-count": 1})
    fd = p["failure-details"]
    eq("failure-details", len(fd), 1)
    mx = lab.mx("mx1." + domain)
    eq("result-type", fd[0]["result-type"], rt)
    eq("receiving-mx-hostname", fd[0].get("receiving-mx-hostname"), mx.host)
    eq("receiving-ip", fd[0].get("receiving-ip"), mx.ip)
    eq("failed-session-count", fd[0]["failed-session-count"], 1)
    assert "failure-reason-code" in fd[0], fd[0]


def fine_domain(st):
    p = policy(st, FINE)
    eq("summary", p["summary"], {"total-successful-session-count": 1,
                                 "total-failure-session-count": 0})
    assert "failure-details" not in p, p


def enforce_domain(st, lab):
    p = policy(st, ENF)
    eq("summary", p["summary"], {"total-successful-session-count": 1,
                                 "total-failure-session-count": 1})
    fd = p["failure-details"]
    eq("failure-details", len(fd), 1)
    eq("result-type", fd[0]["result-type"], "certificate-host-mismatch")
    eq("receiving-mx-hostname", fd[0].get("receiving-mx-hostname"), "mx1." + ENF)
    eq("probe records for %s" % ENF,
       [r for r in lab.daemon.probes() if r["domain"] == ENF], [])


if __name__ == "__main__":
    sys.exit(main())
