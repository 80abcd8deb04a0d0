#!/usr/bin/python3
"""End to end: a real Postfix delivers to MX hosts it finds in DNS and asks
mtasts-milter's socketmap for the TLS policy (issue 5, "Compatibility and
tests").

Everything runs in a private network namespace (tests/mta/netns.py; this
script re-runs itself inside one) through tests/mta/deliverylab.py: DNS on
127.0.0.1:53 is the only resolver, policies are served on :443, and each MX
host is an SMTP sink on 127.0.0.N:25 with STARTTLS and a certificate of a
chosen kind (or without STARTTLS).  Postfix is configured with the shipped
packaging/postfix snippets, without relayhost.

Two Postfix instances get the same messages, one per scenario domain:
  * "map only": no milter; smtp_tls_policy_maps = the socketmap for every
    delivery (the snippet's stricter option).  Runs first, so the
    socketmap sees cold domains and answers after discovery.
  * "packaged": the default shipped shape: the milter tags and routes
    enforce-domain mail (X-MTA-STS-Route + mtasts_header_checks) to the
    mtasts-enforce transport, whose smtp_tls_policy_maps is the socketmap.
Each case checks Postfix's own log lines (shown in the test log) and the
MX sink: enforce with a valid certificate -> "Verified TLS connection",
delivered; wrong-name certificate / no STARTTLS / MX not in the policy ->
deferred and no MAIL command ever reaches that MX; testing mode with the
same faults and no policy -> delivered.  Then a local submission through
sendmail(1) (non_smtpd_milters) and postmap -q on the socketmap.

Needs root, iproute2, postfix and python3-dnslib; skips (77) otherwise.
MTASTS_KEEP_WORKDIR=1 keeps the work dir.
"""

import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "mta"))
import harness  # noqa: E402
import mtautil  # noqa: E402
import netns  # noqa: E402
from harness import note  # noqa: E402
from deliverylab import DeliveryLab, MX, lab_available, SOCKETMAP_PORT  # noqa: E402

TIMEOUT = 30.0
VERIFIED = r"Verified TLS connection established to %s\["
OPPORTUNISTIC = r"(Trusted|Untrusted|Anonymous) TLS connection established to %s\["


class Scenario:
    def __init__(self, label, domain, mode, mx_host, cert, expect, log, policy_mx=None,
                 tls=None, other_mx=()):
        self.label, self.domain, self.mode = label, domain, mode
        self.mx_host, self.cert, self.expect = mx_host, cert, expect
        self.log = log                 # regexes each of which must match a line
        self.policy_mx = policy_mx
        self.tls = tls                 # True/False: the sink must (not) have seen TLS
        self.other_mx = list(other_mx)  # more MX (preferred or not): never given the mail


def mx(d, name="mx1"):
    return "%s.%s" % (name, d)


SCENARIOS = [
    Scenario("enforce, MX certificate valid for its name", "enforce-ok.test", "enforce",
             mx("enforce-ok.test"), "good", "sent",
             [VERIFIED % re.escape(mx("enforce-ok.test")),
              r"relay=%s\[.*status=sent" % re.escape(mx("enforce-ok.test"))], tls=True),
    Scenario("enforce, policy pattern *.enforce-wild.test", "enforce-wild.test", "enforce",
             mx("enforce-wild.test", "mx7"), "good", "sent",
             [VERIFIED % re.escape(mx("enforce-wild.test", "mx7")), r"status=sent"],
             policy_mx=["*.enforce-wild.test"], tls=True),
    Scenario("enforce, MX presents a wrong-name certificate", "enforce-wrongname.test",
             "enforce", mx("enforce-wrongname.test"), "wrongname", "deferred",
             [r"server certificate verification failed for %s\[.*hostname mismatch"
              % re.escape(mx("enforce-wrongname.test")),
              r"dsn=4\.7\.5, status=deferred \(Server certificate not verified\)"]),
    Scenario("enforce, MX does not offer STARTTLS", "enforce-nostarttls.test", "enforce",
             mx("enforce-nostarttls.test"), None, "deferred",
             [r"status=deferred \(TLS is required, but was not offered by host %s\["
              % re.escape(mx("enforce-nostarttls.test"))]),
    Scenario("enforce, MX not allowed by the policy (valid certificate for its own name)",
             "enforce-mxmismatch.test", "enforce", mx("enforce-mxmismatch.test", "mail"),
             "good", "deferred",
             [r"server certificate verification failed for %s\["
              % re.escape(mx("enforce-mxmismatch.test", "mail")),
              r"status=deferred \(Server certificate not verified\)"],
             policy_mx=["mx1.enforce-mxmismatch.test"]),
    Scenario("testing, MX presents a wrong-name certificate", "testing-wrongname.test",
             "testing", mx("testing-wrongname.test"), "wrongname", "sent",
             [OPPORTUNISTIC % re.escape(mx("testing-wrongname.test")), r"status=sent"],
             tls=True),
    Scenario("testing, MX does not offer STARTTLS", "testing-nostarttls.test", "testing",
             mx("testing-nostarttls.test"), None, "sent", [r"status=sent"], tls=False),
    Scenario("no MTA-STS policy: opportunistic TLS", "nopolicy.test", None,
             mx("nopolicy.test"), "good", "sent",
             [OPPORTUNISTIC % re.escape(mx("nopolicy.test")), r"status=sent"], tls=True),
    # RFC 8461 4.1: *.d.test is one label.  The preferred MX a.b.d.test has
    # a valid certificate for its own name, but the policy does not allow
    # it: with the default profile (match=exact) the mail goes to mx1.d.test.
    Scenario("enforce, policy *.d.test, preferred MX a.b.d.test (valid cert), second MX "
             "mx1.d.test", "d.test", "enforce", "mx1.d.test", "good", "sent",
             [r"server certificate verification failed for a\.b\.d\.test\[",
              VERIFIED % re.escape("mx1.d.test"), r"relay=mx1\.d\.test\[.*status=sent"],
             policy_mx=["*.d.test"], tls=True, other_mx=[MX("a.b.d.test", "good", pref=5)]),
    # No policy, but listed by the site (built-in SiteTLSPolicyFile for the
    # socketmap, the same line in a Postfix hash: table for the packaged
    # instance): its MX without STARTTLS must not get the mail in clear.
    Scenario("no policy, site requires encrypt, MX does not offer STARTTLS", "site-notls.test",
             None, mx("site-notls.test"), None, "deferred",
             [r"status=deferred \(TLS is required, but was not offered by host %s\["
              % re.escape(mx("site-notls.test"))]),
]

SITE_POLICY = "# site-enforced TLS (test_delivery)\nsite-notls.test encrypt\n"


def build_lab(work):
    os.makedirs(work, exist_ok=True)
    site = os.path.join(work, "site-tls-policy")
    with open(site, "w") as fh:
        fh.write(SITE_POLICY)
    os.chmod(site, 0o644)
    # The packaged instance: the Postfix-native way, a hash: table in main.cf
    # (the mtasts-enforce transport overrides it with the socketmap).
    lab = DeliveryLab(os.path.join(work, "lab"), daemon_settings={"SiteTLSPolicyFile": site},
                      postfix_main={"smtp_tls_policy_maps": "hash:" + site})
    lab.site_file = site
    for sc in SCENARIOS:
        lab.add_domain(sc.domain, sc.mode, [MX(sc.mx_host, sc.cert, pref=10)] + sc.other_mx,
                       policy_mx=sc.policy_mx)
    return lab


def check_outcome(lab, sc, sent):
    """Wait for sent's first outcome and check it against sc."""
    if sc.expect == "sent":
        m = lab.wait_delivered(sent, TIMEOUT)
        assert m.rcpt_to == sent.rcpts, "envelope %r, want %r" % (m.rcpt_to, sent.rcpts)
        assert m.meta["sink"] == sc.mx_host, "delivered to %s, want %s" % (
            m.meta["sink"], sc.mx_host)
        if sc.tls is True:
            assert m.tls and m.tls["version"].startswith("TLS"), \
                "MX %s got the message without TLS" % sc.mx_host
        elif sc.tls is False:
            assert m.tls is None, "MX without STARTTLS reports TLS %r" % m.tls
        if sc.mode != "enforce":
            assert not sent.pf.log_lines(pattern=VERIFIED % re.escape(sc.mx_host)), \
                "%s: a %s domain was delivered with verification" % (sc.domain, sc.mode)
    else:
        lab.wait_deferred(sent, TIMEOUT)
    for other in sc.other_mx:
        sink = lab.sink(other.host)
        with sink._lock:
            cmds = [l for l in sink.transcript if re.search(r"<<< (MAIL|RCPT|DATA)", l, re.I)]
        assert not cmds, "MX %s (not allowed) received envelope commands:\n%s" % (
            other.host, "\n".join(cmds))
    lines = lab.log_excerpt(sent)
    for rx in sc.log:
        assert any(re.search(rx, l) for l in lines), \
            "no Postfix log line matching %r:\n%s" % (rx, "\n".join(lines))
    return lines


def check_never_delivered(lab, sc, sents):
    """A deferred message is still queued and no MAIL command ever reached
    its MX (so nothing went there in clear either)."""
    for s in sents:
        assert not lab.delivered(s), "%s reached %s" % (s, sc.mx_host)
        q = s.pf.queue_files()
        assert s.queue_id in q.get("deferred", []) + q.get("active", []) + \
            q.get("incoming", []), "%s not in the queue any more: %r" % (s, q)
        assert not s.pf.log_lines(s.queue_id, r"status=(sent|bounced)"), \
            "\n".join(s.pf.log_lines(s.queue_id))
    sink = lab.sink(sc.mx_host)
    with sink._lock:
        cmds = [l for l in sink.transcript if re.search(r"<<< (MAIL|RCPT|DATA)", l, re.I)]
    assert not cmds, "MX %s received envelope commands:\n%s" % (sc.mx_host, "\n".join(cmds))


def run_round(report, lab, pf, tag, state):
    """Send one message per scenario through pf at once, then check each."""
    sents = {}
    t0 = time.monotonic()
    for sc in SCENARIOS:
        sents[sc.domain] = lab.send("user@" + sc.domain, pf=pf, label="%s %s" % (tag, sc.domain))
    note("%s: %d messages queued in %.2f s" % (tag, len(sents), time.monotonic() - t0))
    for sc in SCENARIOS:
        s = sents[sc.domain]
        state.setdefault(sc.domain, []).append(s)

        def case(sc=sc, s=s):
            lines = check_outcome(lab, sc, s)
            note("Postfix log (%s, %s):" % (tag, s.queue_id))
            note("\n".join(lines))
        report.run("%s: %s -> %s" % (tag, sc.label, sc.expect), case)
    note("%s: outcomes in %.2f s" % (tag, time.monotonic() - t0))
    return sents


def main():
    why = lab_available()
    if why:
        return harness.skipped("Postfix delivery through the socketmap", "end-to-end delivery",
                               why)
    rc = netns.run_inside("test_delivery")
    if rc is not None:
        return rc
    report = harness.TestReport("Postfix delivery through the socketmap (netns %s)"
                                % netns.inside())
    with harness.workdir("mtasts-delivery-test.") as work:
        run_lab(report, build_lab(work))
    return report.finish()


def run_lab(report, lab):
    """Start the lab and run the cases; the lab is stopped however it ends."""
    state = {}
    try:
        def start():
            # postmap before Postfix starts: its smtp processes open the table.
            cfg = os.path.join(os.path.dirname(lab.site_file), "postmap-cf")
            os.makedirs(cfg, exist_ok=True)
            with open(os.path.join(cfg, "main.cf"), "w") as fh:
                fh.write("compatibility_level = 3.6\n")
            rc, out = mtautil.run(["/usr/sbin/postmap", "-c", cfg, "hash:" + lab.site_file],
                                  timeout=30)
            assert rc == 0, "postmap %s: %s" % (lab.site_file, out)
            os.chmod(lab.site_file + ".db", 0o644)
            lab.start()
            note("lab started in %.1f s: %s" % (lab.timings["start"], ", ".join(
                "%s %.1f s" % (k, v) for k, v in lab.timings.items() if k != "start")))
            lab.maponly = lab.start_postfix("postfix-maponly", milter=False, global_map=True)
            note("MX hosts: " + ", ".join("%s=%s(%s)" % (m.host, m.ip, m.cert or "no TLS")
                                         for d in lab.domains.values() for m in d.mx))
            note("packaged main.cf settings: " + ", ".join(
                "%s = %s" % (k, v) for k, v in sorted(lab.pf.main_cf().items())
                if "milter" in k or "tls" in k or k == "relayhost"))
        if not report.run("start DNS :53, HTTPS :443, MX sinks :25, mtasts-milter, "
                          "2 x Postfix", start):
            note(lab.diagnostics())
            return

        run_round(report, lab, lab.maponly, "map only", state)
        sents = run_round(report, lab, lab.pf, "packaged", state)

        def decisions():
            for sc in SCENARIOS:
                ds = lab.decisions(sents[sc.domain])
                assert len(ds) == 1, "%s: decision lines %r" % (sc.domain, ds)
                d = ds[0]
                want = {"enforce": ("enforce", "route-enforce"), "testing": ("testing", "accept"),
                        None: (None, "accept")}[sc.mode]
                assert d.get("domain") == sc.domain and d.get("action") == want[1], \
                    "%s: %r, want action %s" % (sc.domain, d, want[1])
                if want[0]:
                    assert d.get("mode") == want[0], "%s: %r" % (sc.domain, d)
            note("decision log lines of the packaged round: %d" % len(SCENARIOS))
        report.run("packaged: the milter's decisions (route-enforce for enforce domains)",
                   decisions)

        def maponly_untagged():
            for sc in SCENARIOS:
                if sc.expect != "sent":
                    continue
                s = state[sc.domain][0]
                m = lab.delivered(s)[0]
                assert not m.headers("X-MTA-STS") and not m.headers("X-MTA-STS-Route"), \
                    "map-only delivery carries milter headers: %r" % m.summary()
                assert not lab.decisions(s), "map-only message in the decision log"
        report.run("map only: no milter was involved (no tags, no decisions)", maponly_untagged)

        def local_submission():
            s = lab.send_local("local@enforce-wrongname.test")
            lab.wait_deferred(s, TIMEOUT)
            ok = lab.send_local("local@enforce-ok.test")
            lab.wait_delivered(ok, TIMEOUT)
            lines = lab.log_excerpt(s)
            assert any("Server certificate not verified" in l for l in lines), "\n".join(lines)
            assert any(re.search(VERIFIED % re.escape(mx("enforce-ok.test")), l)
                       for l in lab.log_excerpt(ok)), "\n".join(lab.log_excerpt(ok))
            state["enforce-wrongname.test"].append(s)
            note("\n".join(l for l in lines if s.queue_id in l)[:2000])
        report.run("sendmail(1) submission (non_smtpd_milters): enforced the same way",
                   local_submission)

        def never_delivered():
            time.sleep(1.0)            # at least one more retry of the deferred mail
            for sc in SCENARIOS:
                if sc.expect == "deferred":
                    check_never_delivered(lab, sc, state[sc.domain])
            for pf in lab.instances:
                n = len(pf.log_lines(pattern=r"status=deferred"))
                note("%s: %d deferral lines so far, nothing bounced" % (pf.lab_shape, n))
                assert not pf.log_lines(pattern=r"status=bounced"), \
                    "\n".join(pf.log_lines(pattern=r"status=bounced"))
        report.run("deferred mail: still queued, never bounced, no MAIL/RCPT/DATA at its MX",
                   never_delivered)

        def postmap():
            want = {"enforce-ok.test": "secure match=mx1.enforce-ok.test servername=hostname",
                    "enforce-wild.test": "secure match=mx7.enforce-wild.test servername=hostname",
                    "d.test": "secure match=mx1.d.test servername=hostname",
                    "site-notls.test": "encrypt",
                    "testing-wrongname.test": None, "nopolicy.test": None}
            for d, line in want.items():
                rc, out = mtautil.run(["/usr/sbin/postmap", "-c", lab.pf.etc, "-q", d,
                                       "socketmap:inet:127.0.0.1:%d:postfix" % SOCKETMAP_PORT],
                                      timeout=20)
                note("postmap -q %s -> rc %d %s" % (d, rc, out.strip()))
                if line is None:
                    assert rc == 1 and not out.strip(), "%s: rc %d %r, want not found" % (
                        d, rc, out)
                else:
                    assert rc == 0 and out.strip() == line, "%s: rc %d %r, want %r" % (
                        d, rc, out, line)
        report.run("postmap -q on the socketmap: the lines Postfix used", postmap)

        def daemon_clean_exit():
            for pf in lab.instances:       # they hold milter and socketmap connections
                pf.stop()
            rc = lab.daemon.stop()
            log = lab.daemon.log_text()
            bad = [l for l in log.splitlines()
                   if re.search(r"Sanitizer|runtime error:|\bcrit\b|\balert\b|\bemerg\b", l)]
            assert rc == 0 and not bad, "daemon exit status %r, log:\n%s" % (
                rc, "\n".join(bad) or log[-3000:])
        report.run("SIGTERM: the daemon exits 0, no sanitizer report in its log",
                   daemon_clean_exit)
    finally:
        lab.stop()


if __name__ == "__main__":
    sys.exit(main())
