#!/usr/bin/python3
"""mtasts-milter in a real Sendmail: tagging through the milter, and the
socketmap as Sendmail's FEATURE(`sts') map.

Sendmail cannot be installed next to Postfix, so tests/mta/sendmail.py
unpacks Debian's sendmail-bin/-base/-cf and libwrap0 (.debs cached in
$MTASTS_SENDMAIL_DEBS or /var/cache/mtasts-test/debs, fetched once with
`apt-get download`) and runs it in its own UTS, mount and PID namespaces
(own host name, a private /dev with /dev/log to the test's log listener).
All mail is relayed to one SMTP sink on loopback.  DNS and HTTPS fixtures
serve enforce.test (enforce), testing.test (testing), nopolicy.test.

The socketmap case asks `sendmail -bt` for `/map sts DOMAIN` with a cf made
with FEATURE(`sts') pointing at the daemon's SocketmapSocket; it is skipped
when that port does not answer.  Needs root; skips (77) without it, without
unshare/m4, or when the .debs cannot be had.  MTASTS_KEEP_WORKDIR=1 keeps
the work dir.
"""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "mta"))
import harness  # noqa: E402
import mtautil  # noqa: E402
from harness import note  # noqa: E402
from milterd import (MilterDaemon, start_world, WORLD, tag_fields, tags_by_domain,  # noqa: E402
                     expect_fields)
from sendmail import SendmailInstance, sendmail_available  # noqa: E402
from smtpsink import SmtpSink  # noqa: E402

SENDER = "sender@client.test"
DELIVERY_TIMEOUT = 30.0
ENF = WORLD["enforce.test"]


class Env:
    def __init__(self, work):
        self.work = work
        self.fx = harness.Fixtures(os.path.join(work, "fixtures"))
        self.sink = None
        self.milter = None
        self.sm = None
        self.queue_ids = []

    def start(self):
        dns_port, https_port = start_world(self.fx)
        self.sink = SmtpSink(os.path.join(self.work, "sink"), name="A")
        self.sink.start()
        self.milter = MilterDaemon(os.path.join(self.work, "daemon"), dns_port, https_port,
                                   self.fx.ca_file)
        self.milter.start()
        self.sm = SendmailInstance(os.path.join(self.work, "sendmail"), relay_port=self.sink.port,
                                   milter="inet:%d@127.0.0.1" % self.milter.milter_port)
        t0 = time.monotonic()
        self.sm.start()
        note("sendmail listening after %.1f s (unpack, m4, start)" % (time.monotonic() - t0))

    def submit(self, rcpts, extra_headers=(), label=None):
        msg = mtautil.make_message(rcpts, subject="to " + ", ".join(rcpts),
                                   extra_headers=extra_headers, mail_from=SENDER)
        r = self.sm.submit(SENDER, rcpts, msg)
        if r.queue_id:
            self.queue_ids.append((label or rcpts[0], r.queue_id))
        return r

    def delivered(self, before, count=1):
        try:
            return self.sink.wait_for(before + count, DELIVERY_TIMEOUT)[before:]
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.diagnostics())) from None

    def diagnostics(self):
        out = []
        if self.sm:
            out.append(self.sm.diagnostics())
        if self.milter:
            out.append(self.milter.diagnostics())
        if self.sink:
            out.append(self.sink.describe(tail=15))
        return "\n".join(out)

    def cleanup(self):
        # Sendmail first: it holds milter connections.
        if self.sm:
            self.sm.stop()
        if self.milter:
            self.milter.stop()
        if self.sink:
            self.sink.stop()
        self.fx.cleanup()


def run_cases(report, env):
    state = {}

    def enforce_tagged():
        n = len(env.sink.messages())
        r = env.submit(["alice@enforce.test"], label="enforce")
        assert r.rcpt["alice@enforce.test"][0] == 250 and r.queue_id, \
            "%r\n%s" % (r, env.diagnostics())
        state["enforce"] = r
        m = env.delivered(n)[0]
        tags = tags_by_domain(m)
        assert set(tags) == {"enforce.test"}, "tag headers: %r\n%s" % (
            m.headers("X-MTA-STS"), env.diagnostics())
        expect_fields(tags["enforce.test"], {"result": "policy", "mode": "enforce",
                                             "id": ENF["id"]}, "X-MTA-STS")
        assert m.header("X-MTA-STS-Route") == "enforce", m.headers("X-MTA-STS-Route")
        env.sm.wait_log(r"Milter", queue_id=r.queue_id, timeout=5)
        note("delivered: " + m.summary())
    report.run("enforce.test through Sendmail: X-MTA-STS policy/enforce and route header",
               enforce_tagged)

    def forged_replaced():
        n = len(env.sink.messages())
        forged = ["X-MTA-STS: nopolicy.test; result=policy; mode=enforce; id=forged",
                  "X-MTA-STS-Route: enforce"]
        r = env.submit(["erin@nopolicy.test"], extra_headers=forged, label="forged")
        assert r.queue_id, r
        m = env.delivered(n)[0]
        vals = m.headers("X-MTA-STS")
        assert len(vals) == 1 and "forged" not in vals[0], \
            "want only the milter's X-MTA-STS header, got %r" % vals
        d, f = tag_fields(vals[0])
        assert d == "nopolicy.test" and f.get("result") == "none", vals
        assert m.headers("X-MTA-STS-Route") == ["none"], m.headers("X-MTA-STS-Route")
    report.run("forged tag and route headers are replaced (Sendmail header indexes)",
               forged_replaced)

    def mixed_452():
        n = len(env.sink.messages())
        rcpts = ["frank@enforce.test", "gina@testing.test"]
        r = env.submit(rcpts, label="mixed")
        code, text = r.rcpt["gina@testing.test"]
        assert code == 452 and "4.5.3" in text, \
            "second recipient: got %d %r, want 452 4.5.3" % (code, text)
        assert r.rcpt["frank@enforce.test"][0] == 250 and r.queue_id, r
        m = env.delivered(n)[0]
        assert m.rcpt_to == ["frank@enforce.test"], m.rcpt_to
        note("RCPT reply for the second recipient: %d %s" % (code, text))
    report.run("mixed enforce/testing recipients: 452 4.5.3 for the second", mixed_452)

    def decisions():
        r = state.get("enforce")
        if r is None:
            raise harness.Skip("the enforce message was not accepted")
        ds = env.milter.wait_decisions(
            lambda ds: any(d.get("queue_id") == r.queue_id for d in ds), timeout=10)
        mine = [d for d in ds if d.get("queue_id") == r.queue_id]
        note("decision log:\n" + "\n".join(json.dumps(d, sort_keys=True) for d in ds))
        assert len(mine) == 1 and mine[0].get("domain") == "enforce.test", \
            "want one enforce.test line with Sendmail queue id %s, got %r" % (r.queue_id, mine)
        assert env.sm.log_lines(r.queue_id), "queue id %s not in the Sendmail log" % r.queue_id
    report.run("decision log carries Sendmail's queue id", decisions)

    def log_dump():
        for label, qid in env.queue_ids:
            note("--- %s (queue id %s)" % (label, qid))
            note("\n".join(env.sm.log_lines(qid)) or "(no log lines)")
    report.run("Sendmail log lines of every message (shown above)", log_dump)

    def socketmap_bt():
        if not env.milter.socketmap_answers():
            raise harness.Skip("socketmap port %d does not answer (SocketmapSocket not "
                               "served yet)" % env.milter.socketmap_port)
        cf = env.sm.make_cf("sts", daemon=False, milter=False,
                            sts_socketmap=env.milter.socketmap_port)
        doms = ["enforce.test", "testing.test", "nopolicy.test"]
        out = env.sm.bt("".join("/map sts %s\n" % d for d in doms), cf=cf)
        note(out)
        lines = {d: next((l for l in out.splitlines() if "(%s)" % d in l), "")
                 for d in doms}
        assert "returns secure" in lines["enforce.test"] and \
            "mx1.enforce.test" in lines["enforce.test"], \
            "enforce.test: %r, want 'returns secure match=...mx1.enforce.test'" % \
            lines["enforce.test"]
        assert "no match" in lines["nopolicy.test"], \
            "nopolicy.test: %r, want no match" % lines["nopolicy.test"]
        assert "secure" not in lines["testing.test"], \
            "testing.test must not be enforced: %r" % lines["testing.test"]
    report.run("FEATURE(`sts') map: sendmail -bt /map sts <domain> against the socketmap",
               socketmap_bt)


def case_plumbing(work):
    """No milter: Sendmail unpacks, starts, logs, and relays to the sink."""
    sink = SmtpSink(os.path.join(work, "sink"), name="A")
    sink.start()
    sm = SendmailInstance(os.path.join(work, "sendmail"), relay_port=sink.port)
    try:
        t0 = time.monotonic()
        sm.start()
        note("sendmail listening after %.1f s (unpack, m4, start)" % (time.monotonic() - t0))
        msg = mtautil.make_message(["u@nopolicy.test"], mail_from=SENDER)
        r = sm.submit(SENDER, ["u@nopolicy.test"], msg)
        assert r.queue_id, "%r\n%s" % (r, sm.diagnostics())
        try:
            m = sink.wait_for(1, DELIVERY_TIMEOUT)[0]
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, sm.diagnostics())) from None
        assert m.rcpt_to == ["u@nopolicy.test"], m.rcpt_to
        line = sm.wait_log(r"stat=Sent", queue_id=r.queue_id, timeout=5)
        note(line)
    finally:
        sm.stop()
        sink.stop()


def main():
    report = harness.TestReport("sendmail + mtasts-milter")
    why = sendmail_available()
    if why:
        report.skip("sendmail tests", why)
        return report.finish()
    if not harness.have_dnslib():
        report.skip("sendmail tests", "python3-dnslib missing (DNS fixture)")
        return report.finish()
    with harness.workdir("mtasts-sendmail-test.") as work:
        report.run("plumbing without milter: unpacked Sendmail relays to the sink",
                   case_plumbing, os.path.join(work, "plumbing"))
        why = MilterDaemon.available()
        if why:
            report.skip("cases with the daemon", why)
        else:
            env = Env(os.path.join(work, "milter"))
            try:
                if report.run("start mtasts-milter and sendmail", env.start):
                    run_cases(report, env)
                else:
                    note(env.diagnostics())
            finally:
                env.cleanup()
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
