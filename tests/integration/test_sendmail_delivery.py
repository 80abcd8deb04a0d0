#!/usr/bin/python3
"""End to end: a real Sendmail delivers to MX hosts it finds in DNS, with
FEATURE(`sts') asking mtasts-milter's socketmap and the milter tagging
(issue 4, "Sendmail integration").

Everything runs in a private network namespace (tests/mta/netns.py; this
script re-runs itself inside one) through tests/mta/deliverylab.py without
Postfix: DNS on 127.0.0.1:53 is the only resolver, policies are served on
:443, each MX host is an SMTP sink on 127.0.0.N:25 with STARTTLS and a
certificate of a chosen kind (or without STARTTLS).  Sendmail is Debian's,
unpacked by tests/mta/sendmail.py (sendmail-bin conflicts with postfix),
with no smart host (MX lookups through the lab's DNS), CACertFile = the
test CA and packaging/sendmail/mtasts.mc.snippet verbatim: FEATURE(`sts')
on the socketmap (inet:8461) and INPUT_MAIL_FILTER on the milter (inet:8462).

Each case checks Sendmail's own log lines (captured through the private
/dev/log of tests/mta/sendmail.py; shown in the test log) and the MX sinks:
  * enforce, valid certificate (also below a *. policy pattern) ->
    "STARTTLS=client, relay=MX., ... verify=OK", Sent;
  * enforce with a wrong-name certificate or an MX not in the policy ->
    tls_rcpt rejects the recipient (450 4.7.0), deferred; the MX sees MAIL
    FROM and RSET, never RCPT or DATA;
  * enforce with a self-signed certificate or without STARTTLS -> tls_server
    (403 4.7.0), deferred; the MX never sees MAIL;
  * testing (wrong-name, self-signed) and no policy -> delivered;
  * what FEATURE(`sts') of Sendmail 8.17.1.9 does differently (see
    mtasts-milter(8) SENDMAIL INTEGRATION): a wildcard certificate never
    matches (deferred, "not listed in SANs"); through a mailertable route
    to a literal IP, STARTTLS and a
    trusted chain are still required, but the certificate's names and the
    policy's mx list are not checked; a route to a bracketed host name is
    checked against the recipient domain's mx list (not the relay's domain).
Deferred mail must be deferred again at the next queue run and still be
queued.  Then the milter's tags and decisions (recipients routed by the
mailertable are skipped: their next hop is not their domain's MX, so
MTA-STS applies at the relay, RFC 8461 3.4), `sendmail -bt` /map sts with
the daemon's cf, and a clean daemon exit.

Needs root, iproute2, unshare, m4, the sendmail .debs (downloaded once to
/var/cache/mtasts-test/debs by packaging/install-deps.sh --test) and
python3-dnslib; skips (77) otherwise.  MTASTS_KEEP_WORKDIR=1 keeps the work
dir.
"""

import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "mta"))
import harness  # noqa: E402
import mtautil  # noqa: E402
import netns  # noqa: E402
from deliverylab import DeliveryLab, MX, Sent, lab_available  # noqa: E402
from milterd import tags_by_domain, expect_fields  # noqa: E402

SENDER = "sender@client.test"
TIMEOUT = 30.0


class Scenario:
    """label; recipient domain and its policy mode; its MX host and that
    host's certificate kind; expect "sent" or "deferred"; stage of a
    deferral ("server": tls_server, before MAIL; "rcpt": tls_rcpt, after
    MAIL); log: regexes each of which must match one of the message's log
    lines; route: mailertable right-hand side (may name another MX host as
    {ip:HOST} / {host:HOST}); target: the MX host that gets the connection."""

    def __init__(self, label, domain, mode, cert, expect, log, stage=None, policy_mx=None,
                 mx_host=None, route=None, target=None, tls=True):
        self.label, self.domain, self.mode, self.cert = label, domain, mode, cert
        self.expect, self.log, self.stage = expect, log, stage
        self.policy_mx = policy_mx
        self.mx_host = mx_host or "mx1." + domain
        self.route = route
        self.target = target or self.mx_host
        self.tls = tls
        self.rcpt = "user@" + domain


def q(host):
    return re.escape(host)


def verified(host):
    return r"STARTTLS=client, relay=%s\., version=TLS\S+, verify=OK" % q(host)


def sts_features(host):
    return r"tls_clt_features=sts=secure;servername=hostname, relay=%s " % q(host)


def sent_via(host):
    return r"to=<[^>]+>, .*relay=%s\. \[127\.0\.0\.\d+\], dsn=2\.0\.0, stat=Sent" % q(host)


SCENARIOS = [
    Scenario("enforce, MX certificate valid for its name", "enforce-ok.test", "enforce",
             "good", "sent",
             [sts_features("mx1.enforce-ok.test"), verified("mx1.enforce-ok.test"),
              sent_via("mx1.enforce-ok.test")]),
    Scenario("enforce, policy pattern *.enforce-wild.test", "enforce-wild.test", "enforce",
             "good", "sent",
             [verified("mx7.enforce-wild.test"), sent_via("mx7.enforce-wild.test")],
             policy_mx=["*.enforce-wild.test"], mx_host="mx7.enforce-wild.test"),
    Scenario("enforce, MX presents a wrong-name certificate", "enforce-wrongname.test",
             "enforce", "wrongname", "deferred",
             [verified("mx1.enforce-wrongname.test"),
              r"ruleset=tls_rcpt, arg1=user@enforce-wrongname\.test, "
              r"relay=mx1\.enforce-wrongname\.test\., reject=450 4\.7\.0 .*"
              r"mx1\.enforce-wrongname\.test not listed in SANs",
              r"to=<user@enforce-wrongname\.test>, .*stat=Deferred"], stage="rcpt"),
    Scenario("enforce, MX presents a self-signed certificate", "enforce-selfsigned.test",
             "enforce", "selfsigned", "deferred",
             [r"STARTTLS=client, relay=mx1\.enforce-selfsigned\.test\., .*verify=FAIL",
              r"ruleset=tls_server, arg1=FAIL, relay=mx1\.enforce-selfsigned\.test, "
              r"reject=403 4\.7\.0 authentication failed",
              r"dsn=4\.7\.0, stat=Deferred: 403 4\.7\.0 authentication failed"], stage="server"),
    Scenario("enforce, MX does not offer STARTTLS", "enforce-nostarttls.test", "enforce",
             None, "deferred",
             [r"ruleset=tls_server, arg1=NONE, relay=mx1\.enforce-nostarttls\.test, "
              r"reject=403 4\.7\.0 other side does not support STARTTLS",
              r"stat=Deferred: 403 4\.7\.0 other side does not support STARTTLS"],
             stage="server"),
    Scenario("enforce, MX not allowed by the policy (valid certificate for its own name)",
             "enforce-mxmismatch.test", "enforce", "good", "deferred",
             [verified("mail.enforce-mxmismatch.test"),
              r"reject=450 4\.7\.0 .*mail\.enforce-mxmismatch\.test not found in "
              r"mx1\.enforce-mxmismatch\.test",
              r"stat=Deferred"], stage="rcpt", policy_mx=["mx1.enforce-mxmismatch.test"],
             mx_host="mail.enforce-mxmismatch.test"),
    Scenario("testing, MX presents a wrong-name certificate", "testing-wrongname.test",
             "testing", "wrongname", "sent",
             [r'tls_clt_features="", relay=mx1\.testing-wrongname\.test ',
              verified("mx1.testing-wrongname.test"), sent_via("mx1.testing-wrongname.test")]),
    Scenario("testing, MX presents a self-signed certificate", "testing-selfsigned.test",
             "testing", "selfsigned", "sent",
             [r"STARTTLS=client, relay=mx1\.testing-selfsigned\.test\., .*verify=FAIL",
              sent_via("mx1.testing-selfsigned.test")]),
    Scenario("no MTA-STS policy: opportunistic TLS", "nopolicy.test", None, "good", "sent",
             [r'tls_clt_features="", relay=mx1\.nopolicy\.test ',
              sent_via("mx1.nopolicy.test")]),
    # What FEATURE(`sts') of Sendmail 8.17.1.9 does differently.
    Scenario("limit: enforce, MX presents a wildcard certificate *.enforce-wildcert.test",
             "enforce-wildcert.test", "enforce", "wildcard", "deferred",
             [verified("mx1.enforce-wildcert.test"),
              r"reject=450 4\.7\.0 .*mx1\.enforce-wildcert\.test not listed in SANs",
              r"to=<user@enforce-wildcert\.test>, .*stat=Deferred"], stage="rcpt"),
    Scenario("limit: enforce domain routed to a literal IP [wrong-name MX]: names not checked",
             "lit-wrongname.test", "enforce", "good", "sent",
             [r"tls_clt_features=sts=secure;servername=hostname, relay=\[{ip}\] ",
              r"STARTTLS=client, relay=\[{ip}\], version=TLS\S+, verify=OK",
              r"to=<user@lit-wrongname\.test>, .*relay=\[{ip}\] \[{ip}\], dsn=2\.0\.0, "
              r"stat=Sent"],
             route="relay:[{ip}]", target="mx1.enforce-wrongname.test"),
    Scenario("limit: enforce domain routed to a literal IP [self-signed MX]: still deferred",
             "lit-selfsigned.test", "enforce", "good", "deferred",
             [r"ruleset=tls_server, arg1=FAIL, relay=\[{ip}\], "
              r"reject=403 4\.7\.0 authentication failed",
              r"to=<user@lit-selfsigned\.test>, .*stat=Deferred: 403 4\.7\.0"],
             stage="server", route="relay:[{ip}]", target="mx1.enforce-selfsigned.test"),
    Scenario("limit: enforce domain routed to [host name]: checked against the "
             "recipient domain's mx list", "lit-named.test", "enforce", "good", "deferred",
             [r"reject=450 4\.7\.0 .*mx1\.enforce-wrongname\.test not found in "
              r"mx1\.lit-named\.test", r"to=<user@lit-named\.test>, .*stat=Deferred"],
             stage="rcpt", route="relay:[mx1.enforce-wrongname.test]",
             target="mx1.enforce-wrongname.test"),
]


def note(text):
    for line in str(text).splitlines():
        print("#   " + line)
    sys.stdout.flush()


class Run:
    """The lab, the Sendmail instance and what was sent."""

    def __init__(self, work):
        self.work = work
        self.lab = DeliveryLab(os.path.join(work, "lab"), postfix=False)
        for sc in SCENARIOS:
            self.lab.add_domain(sc.domain, sc.mode, [MX(sc.mx_host, sc.cert)],
                                policy_mx=sc.policy_mx)
        self.sm = None
        self.sent = {}                  # domain -> Sent
        self.deadline = None
        self.mailertable = os.path.join(work, "mailertable")

    def route(self, sc):
        return sc.route.replace("{ip}", self.lab.mx(sc.target).ip)

    def regex(self, sc, rx):
        return rx.replace("{ip}", re.escape(self.lab.mx(sc.target).ip))

    def start(self):
        t0 = time.monotonic()
        self.lab.start()
        routes = ["%s %s" % (sc.domain, self.route(sc))
                  for sc in SCENARIOS if sc.route]
        with open(self.mailertable, "w") as fh:
            fh.write("\n".join(routes) + "\n")
        os.chmod(self.mailertable, 0o644)
        t1 = time.monotonic()
        self.sm = self.lab.start_sendmail(
            "sendmail",
            mc_extra="FEATURE(`mailertable', `text -k0 -v1 %s')dnl\n" % self.mailertable)
        note("lab started in %.1f s (%s), Sendmail in %.1f s (unpack, m4, start)" % (
            t1 - t0, ", ".join("%s %.1f s" % (k, v) for k, v in self.lab.timings.items()
                               if k != "start"), time.monotonic() - t1))
        note("MX hosts: " + ", ".join("%s=%s(%s)" % (m.host, m.ip, m.cert or "no TLS")
                                     for d in self.lab.domains.values() for m in d.mx))
        note("mailertable: " + "; ".join(routes))
        with open(self.sm.cf) as fh:
            cf = fh.read()
        for rx in (r"^Ksts socket -d5 -T<TMPF> inet:8461@127\.0\.0\.1$",
                   r"^O StrictTransportSecurity=true$", r"^O SetCertAltnames=true$",
                   r"^Xmtasts, S=inet:8462@127\.0\.0\.1, T=S:10s;R:30s;E:1m$",
                   r"^O CACertFile=%s$" % re.escape(self.lab.ca_copy)):
            m = re.search(rx, cf, re.M)
            assert m, "generated sendmail.cf lacks %r" % rx
            note("sendmail.cf: " + m.group(0))

    def send(self, sc):
        msg = mtautil.make_message([sc.rcpt], subject="to " + sc.rcpt, mail_from=SENDER)
        msgid = re.search(rb"^Message-ID: (\S+)\r$", msg, re.M | re.I).group(1).decode()
        r = self.sm.submit(SENDER, [sc.rcpt], msg)
        if not (r.data and r.data[0] == 250 and r.queue_id):
            raise AssertionError("message to %s not queued: %r\n%s"
                                 % (sc.rcpt, r, self.sm.diagnostics()))
        s = Sent([sc.rcpt], msgid, r.queue_id, self.sm, sc.label, result=r)
        self.sent[sc.domain] = s
        return s

    def excerpt(self, s):
        """The message's log lines, each preceded by the connection lines
        (tls_clt_features, STARTTLS, tls_server: they carry no queue id) that
        the same Sendmail process logged since its previous queue-id line."""
        out, pending = [], {}
        for l in self.sm.log_lines():
            m = re.search(r"sendmail\[(\d+)\]: (?:([0-9A-Za-z]{14}): )?", l)
            if not m:
                continue
            pid, qid = m.group(1), m.group(2)
            if qid is None:
                if re.search(r"STARTTLS=client, relay=|tls_clt_features=|ruleset=tls_", l):
                    pending.setdefault(pid, []).append(l)
                continue
            if qid == s.queue_id:
                out += pending.get(pid, [])
                out.append(l)
            pending.pop(pid, None)
        return out

    def diagnostics(self, sc=None):
        out = [self.sm.diagnostics() if self.sm else ""]
        if self.lab.daemon:
            out.append(self.lab.daemon.diagnostics(20))
        hosts = [sc.target] if sc else list(self.lab.sinks)
        for h in hosts:
            out.append(self.lab.sink(h).describe(tail=12))
        return "\n".join(out)


def check_outcome(run, sc, s):
    deadline = run.deadline
    want = "stat=Sent" if sc.expect == "sent" else "stat=Deferred"
    while True:
        got = run.lab.delivered(s)
        done = run.sm.log_lines(s.queue_id, want)
        if done and (sc.expect != "sent" or got):
            break
        if time.monotonic() > deadline:
            raise AssertionError("%s: no %s after %.0f s (delivered: %d)\n%s" % (
                s, want, TIMEOUT, len(got), run.diagnostics(sc)))
        time.sleep(0.05)
    if sc.expect == "sent":
        m = got[0]
        assert m.rcpt_to == [sc.rcpt], "envelope %r, want %r" % (m.rcpt_to, [sc.rcpt])
        assert m.meta["sink"] == sc.target, "delivered to %s, want %s" % (
            m.meta["sink"], sc.target)
        if sc.tls:
            assert m.tls and m.tls["version"].startswith("TLS"), \
                "MX %s got the message without TLS" % sc.target
    else:
        assert not got, "%s reached an MX: %r" % (s, [g.summary() for g in got])
    lines = run.excerpt(s)
    for rx in sc.log:
        rx = run.regex(sc, rx)
        assert any(re.search(rx, l) for l in lines), \
            "no Sendmail log line matching %r:\n%s" % (rx, "\n".join(lines))
    if sc.expect == "sent" and sc.mode != "enforce":
        assert not any("sts=secure" in l for l in lines), \
            "%s: a %s domain was treated as secure" % (sc.domain, sc.mode)
    if sc.route and "[{ip}]" in sc.route and sc.expect == "sent":
        assert not any("ruleset=tls_rcpt" in l for l in lines), "\n".join(lines)
    return lines


def check_still_deferred(run, sc, s, deadline):
    """Deferred again by a later queue run (-q5s), still queued, never
    delivered; at its MX no RCPT for it, and no MAIL at all when tls_server
    refused the connection."""
    while len(run.sm.log_lines(s.queue_id, r"stat=Deferred")) < 2:
        if time.monotonic() > deadline:
            raise AssertionError("%s: no second delivery attempt (queue run every 5 s)\n%s"
                                 % (s, run.diagnostics(sc)))
        time.sleep(0.1)
    assert not run.lab.delivered(s), "%s was delivered" % s
    assert not run.sm.log_lines(s.queue_id, r"stat=Sent|dsn=5\.|DSN:"), \
        "\n".join(run.sm.log_lines(s.queue_id))
    assert "qf" + s.queue_id in run.sm.queue_files(), \
        "%s not queued: %r" % (s.queue_id, run.sm.queue_files())
    sink = run.lab.sink(sc.target)
    with sink._lock:
        trans = list(sink.transcript)
    rcpts = [l for l in trans if re.search(r"<<< RCPT To:<%s>" % re.escape(sc.rcpt), l, re.I)]
    assert not rcpts, "MX %s received RCPT for %s:\n%s" % (sc.target, sc.rcpt, "\n".join(rcpts))
    if sc.stage == "server":
        cmds = [l for l in trans if re.search(r"<<< (MAIL|RCPT|DATA)", l, re.I)]
        assert not cmds, "MX %s received envelope commands:\n%s" % (sc.target, "\n".join(cmds))
    else:
        assert any(re.search(r"<<< MAIL From:", l) for l in trans) and \
            any(re.search(r"<<< RSET", l) for l in trans), \
            "MX %s: want MAIL then RSET (tls_rcpt runs per recipient)\n%s" % (
                sc.target, "\n".join(trans))
    return len(run.sm.log_lines(s.queue_id, r"stat=Deferred"))


def run_cases(report, run):
    t0 = time.monotonic()
    for sc in SCENARIOS:
        run.send(sc)
    run.deadline = time.monotonic() + TIMEOUT     # one deadline for all first outcomes
    note("%d messages queued in %.2f s" % (len(SCENARIOS), time.monotonic() - t0))
    for sc in SCENARIOS:
        s = run.sent[sc.domain]

        def case(sc=sc, s=s):
            lines = check_outcome(run, sc, s)
            note("Sendmail log (%s, %s):" % (sc.domain, s.queue_id))
            note("\n".join(re.sub(r"^\w+ +\d+ [\d:]+ ", "", l) for l in lines))
        report.run("%s -> %s" % (sc.label, sc.expect), case)
    note("outcomes in %.2f s" % (time.monotonic() - t0))

    def still_deferred():
        counts = {}
        deadline = time.monotonic() + 20
        for sc in SCENARIOS:
            if sc.expect == "deferred":
                counts[sc.domain] = check_still_deferred(run, sc, run.sent[sc.domain],
                                                         deadline)
        note("deferral lines per message: " + ", ".join(
            "%s %d" % kv for kv in sorted(counts.items())))
        assert not run.sm.log_lines(pattern=r"dsn=5\.|return to sender|DSN:"), \
            "\n".join(run.sm.log_lines(pattern=r"dsn=5\.|return to sender|DSN:"))
    report.run("deferred mail: deferred again at the next queue run, still queued, "
               "no RCPT at its MX, nothing bounced", still_deferred)

    def milter_tags():
        for sc in SCENARIOS:
            s = run.sent[sc.domain]
            ds = run.lab.decisions(s)
            if sc.route:
                # A mailertable route: {rcpt_mailer} relay, {rcpt_host} the
                # route's host, not the domain: skipped, MTA-STS applies at
                # the relay (RFC 8461 3.4).
                hop = run.route(sc).split(":", 1)[1]
                assert len(ds) == 1 and ds[0].get("action") == "skip" and \
                    "transport relay next hop %s" % hop in ds[0].get("reason", ""), \
                    "%s: decisions %r, want a skip naming the next hop %s" % (
                        sc.domain, ds, hop)
                note("%s (%s): %s" % (sc.domain, run.route(sc), ds[0]["reason"]))
            else:
                want = "route-enforce" if sc.mode == "enforce" else "accept"
                assert len(ds) == 1 and ds[0].get("domain") == sc.domain and \
                    ds[0].get("action") == want, "%s: decisions %r, want action %s" % (
                        sc.domain, ds, want)
            if sc.expect != "sent":
                continue
            m = run.lab.delivered(s)[0]
            if sc.route:
                assert not m.headers("X-MTA-STS") and not m.headers("X-MTA-STS-Route"), \
                    "%s: a skipped recipient tagged: %r" % (sc.domain, m.summary())
                continue
            tags = tags_by_domain(m)
            assert set(tags) == {sc.domain}, "%s: X-MTA-STS %r" % (
                sc.domain, m.headers("X-MTA-STS"))
            if sc.mode:
                expect_fields(tags[sc.domain], {"result": "policy", "mode": sc.mode},
                              "X-MTA-STS")
            else:
                expect_fields(tags[sc.domain], {"result": "none"}, "X-MTA-STS")
            route = "enforce" if sc.mode == "enforce" else "none"
            assert m.headers("X-MTA-STS-Route") == [route], "%s: route %r, want %s" % (
                sc.domain, m.headers("X-MTA-STS-Route"), route)
            assert run.sm.log_lines(s.queue_id, r"Milter \(mtasts\) add: header: X-MTA-STS:"), \
                "\n".join(run.sm.log_lines(s.queue_id))
        s = run.sent["enforce-ok.test"]
        note("\n".join(run.sm.log_lines(s.queue_id, r"[Mm]ilter")))
    report.run("packaged INPUT_MAIL_FILTER: delivered mail tagged, one decision per "
               "message under Sendmail's queue id; mailertable routes skipped naming "
               "their next hop", milter_tags)

    def map_bt():
        doms = ["enforce-ok.test", "enforce-wild.test", "testing-wrongname.test",
                "nopolicy.test"]
        out = run.sm.bt("".join("/map sts %s\n" % d for d in doms), cf=run.sm.cf)
        got = {d: next((l.strip() for l in out.splitlines() if "(%s)" % d in l), "")
               for d in doms}
        for d in doms:
            note("/map sts %s -> %s" % (d, got[d]))
        assert "returns secure match=mx1.enforce-ok.test servername=hostname" in \
            got["enforce-ok.test"], got["enforce-ok.test"]
        assert "returns secure match=mx7.enforce-wild.test servername=hostname" in \
            got["enforce-wild.test"], got["enforce-wild.test"]
        for d in ("testing-wrongname.test", "nopolicy.test"):
            assert "no match" in got[d], "%s: %r, want no match" % (d, got[d])
    report.run("sendmail -bt /map sts with the daemon's cf: the answers Sendmail used",
               map_bt)

    def clean_exit():
        run.sm.stop()                  # it holds milter and socketmap connections
        rc = run.lab.daemon.stop()
        log = run.lab.daemon.log_text()
        bad = [l for l in log.splitlines()
               if re.search(r"Sanitizer|runtime error:|\bcrit\b|\balert\b|\bemerg\b", l)]
        assert rc == 0 and not bad, "daemon exit status %r, log:\n%s" % (
            rc, "\n".join(bad) or log[-3000:])
    report.run("SIGTERM: the daemon exits 0, no sanitizer report in its log", clean_exit)


def main():
    why = lab_available("sendmail")
    if why:
        report = harness.TestReport("Sendmail delivery with FEATURE(`sts')")
        report.skip("end-to-end Sendmail delivery", why)
        return report.finish()
    rc = netns.run_inside("test_sendmail_delivery")
    if rc is not None:
        return rc
    report = harness.TestReport("Sendmail delivery with FEATURE(`sts') (netns %s)"
                                % netns.inside())
    work = tempfile.mkdtemp(prefix="mtasts-sendmail-delivery.")
    keep = bool(os.environ.get("MTASTS_KEEP_WORKDIR"))
    t0 = time.monotonic()
    run = Run(work)
    try:
        if report.run("start DNS :53, HTTPS :443, MX sinks :25, mtasts-milter, Sendmail "
                      "with packaging/sendmail/mtasts.mc.snippet", run.start):
            run_cases(report, run)
        else:
            note(run.diagnostics())
    finally:
        run.lab.stop()
        note("total %.1f s" % (time.monotonic() - t0))
        if keep:
            note("work dir kept: " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
