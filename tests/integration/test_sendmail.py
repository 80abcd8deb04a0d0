#!/usr/bin/python3
"""mtasts-milter in a real Sendmail set up as deployments are (issue 10):
Sendmail delivers by MX lookup, hosts a domain of its own with the local
mailer, and a second Sendmail sends everything through a SMART_HOST.

The milter skips every recipient Sendmail does not deliver by SMTP to its
own domain's MX ({rcpt_mailer} not smtp/esmtp/..., or {rcpt_host} not the
recipient domain): no lookup, no tag, a decision line "skip" with the
reason.  This test checks that against what Sendmail really sends.

Everything runs in a private network namespace (tests/mta/netns.py; this
script re-runs itself inside one) through tests/mta/deliverylab.py without
Postfix: DNS on 127.0.0.1:53 is the only resolver, policies are served on
:443, each MX host is an SMTP sink with STARTTLS on 127.0.0.N:25.  Domains:
enforce.test (enforce), testing.test (testing), nopolicy.test (no policy),
hosted.test (an enforce policy and an MX of its own, but Sendmail's own
domain: class w, LOCAL_DOMAIN) and relay.test, whose host
smarthost.relay.test is the smart host.  Sendmail is Debian's, unpacked by
tests/mta/sendmail.py (sendmail-bin conflicts with postfix), without
FEATURE(`nocanonify') (recipient hosts canonified through DNS, as in a
default install), CACertFile = the test CA, and its local mailer a small
script that stores each message (Debian's procmail is not there).

Instances and cases:
  * no milter: Sendmail delivers to the MX it finds in DNS (plumbing);
  * packaging/sendmail/mtasts.mc.snippet verbatim (FEATURE(`sts') on the
    socketmap, INPUT_MAIL_FILTER on the milter) and LOCAL_DOMAIN(hosted.test):
    enforce.test tagged policy/enforce (route header enforce) at its MX;
    one message to enforce, testing and no-policy domains: no 452, every
    MX copy tagged per recipient domain; forged tag and route headers
    replaced; root@hosted.test: mailer local, decision "skip" naming the
    transport local, no tag, delivered locally, nothing at hosted.test's
    MX; local and esmtp recipients in one transaction: both accepted (the
    milter sees Sendmail in the macro v; Sendmail ignores the route header,
    so nothing needs a split), each delivered its own way; the decision
    log under Sendmail's queue id; `sendmail -bt` /parse (the mailer and
    host Sendmail sends as {rcpt_mailer} and {rcpt_host}) and /map sts;
  * the milter line of the snippet and SMART_HOST relay:[smarthost.relay.test]
    (FEATURE(`sts') left out: Sendmail would check the relay against each
    recipient domain's policy and defer, see mtasts-milter(8)): every
    recipient skipped with a reason naming the relay next hop, forged
    headers still removed, the message reaches the smart host;
  * SIGTERM: the daemon exits 0.

Needs root, iproute2, unshare, m4, the sendmail .debs (downloaded once to
/var/cache/mtasts-test/debs by packaging/install-deps.sh --test) and
python3-dnslib; skips (77) otherwise.  MTASTS_KEEP_WORKDIR=1 keeps the work
dir.
"""

import json
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
from harness import note  # noqa: E402
from deliverylab import DeliveryLab, MX, Sent, lab_available, packaged_sendmail_mc  # noqa: E402
from milterd import tag_fields, tags_by_domain, expect_fields  # noqa: E402
from sendmail import SendmailInstance  # noqa: E402

SENDER = "sender@client.test"
TIMEOUT = 30.0
ENF_ID, TST_ID, HOSTED_ID = "enf20240101", "tst20240101", "hst20240101"
HOSTED = "hosted.test"
SMART_HOST = "smarthost.relay.test"
# The local mailer has F=w: the user must be in the passwd file.
LOCAL_USER = "root"
# Under /tmp: without TrustStickyBit Sendmail calls the CA file and the
# local mailer's directory unsafe (the same line as DeliveryLab's).
TRUST_STICKY = "define(`confDONT_BLAME_SENDMAIL', `TrustStickyBit')dnl\n"


def snippet_milter_only():
    """mtasts.mc.snippet without its FEATURE(`sts') line: the milter only."""
    text = packaged_sendmail_mc()
    lines = [l for l in text.splitlines() if l.startswith("INPUT_MAIL_FILTER(")]
    assert len(lines) == 1, "mtasts.mc.snippet: want one INPUT_MAIL_FILTER line:\n" + text
    return lines[0] + "\n"


class Run:
    """The lab, the Sendmail instances and what was sent."""

    def __init__(self, work):
        self.work = work
        self.lab = DeliveryLab(os.path.join(work, "lab"), postfix=False)
        self.lab.add_domain("enforce.test", "enforce", [MX("mx1.enforce.test")],
                            policy_id=ENF_ID)
        self.lab.add_domain("testing.test", "testing", [MX("mx1.testing.test")],
                            policy_id=TST_ID)
        self.lab.add_domain("nopolicy.test", None, [MX("mx1.nopolicy.test")])
        self.lab.add_domain(HOSTED, "enforce", [MX("mx1." + HOSTED)], policy_id=HOSTED_ID)
        self.lab.add_domain("relay.test", None, [MX(SMART_HOST)])
        self.sm = None                  # the packaged snippet, hosted.test local
        self.smart = None               # SMART_HOST
        self.sent = []                  # Sent, for the log dump
        self.state = {}

    def start_lab(self):
        t0 = time.monotonic()
        self.lab.start()
        note("lab started in %.1f s; MX hosts: %s" % (
            time.monotonic() - t0,
            ", ".join("%s=%s" % (m.host, m.ip) for d in self.lab.domains.values()
                      for m in d.mx)))

    def sendmail(self, name, mc_extra, **kw):
        """An unpacked Sendmail delivering into the lab (no smart host unless
        mc_extra sets one), canonifying through the lab's DNS; started, and
        stopped with the lab."""
        sm = SendmailInstance(os.path.join(self.lab.workdir, name), relay_port=None,
                              mc_extra=mc_extra + TRUST_STICKY, ca_file=self.lab.ca_copy,
                              canonify=True, **kw)
        self.lab.sendmails.append(sm)
        t0 = time.monotonic()
        sm.start()
        note("Sendmail %s listening after %.1f s (unpack, m4, start)"
             % (name, time.monotonic() - t0))
        return sm

    def submit(self, sm, rcpts, extra_headers=(), label=None, want_queued=True):
        msg = mtautil.make_message(rcpts, subject="to " + ", ".join(rcpts),
                                   extra_headers=extra_headers, mail_from=SENDER)
        msgid = re.search(rb"^Message-ID: (\S+)\r$", msg, re.M | re.I).group(1).decode()
        r = sm.submit(SENDER, rcpts, msg)
        s = Sent(rcpts, msgid, r.queue_id, sm, label or ", ".join(rcpts), result=r)
        if r.queue_id:
            self.sent.append(s)
        if want_queued and not (r.data and r.data[0] == 250 and r.queue_id):
            raise AssertionError("message to %s not queued: %r\n%s"
                                 % (rcpts, r, self.diagnostics(sm)))
        return s

    # ------------------------------------------------------------ waiting
    def wait(self, what, fn, sm, timeout=TIMEOUT):
        """Poll fn() until it returns something true; returns that."""
        deadline = time.monotonic() + timeout
        while True:
            got = fn()
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError("%s: not after %.0f s\n%s"
                                     % (what, timeout, self.diagnostics(sm)))
            time.sleep(0.05)

    def at_mx(self, s, rcpts):
        """Wait for Sendmail's stat=Sent for each of rcpts and for the
        message at the MX sinks; returns {rcpt: SinkMessage}."""
        def done():
            got = {}
            for m in self.lab.delivered(s):
                for r in m.rcpt_to:
                    got[r] = m
            # One line per delivery: "to=<a>,<b>, ..." for one transaction.
            sent = all(s.pf.log_lines(s.queue_id, r"to=\S*<%s>\S*, .*stat=Sent"
                                      % re.escape(r)) for r in rcpts)
            return got if sent and all(r in got for r in rcpts) else None
        return self.wait("%s at the MX of %s" % (s, rcpts), done, s.pf)

    def local(self, s, rcpt):
        """Wait for the local mailer's stat=Sent for rcpt and the stored
        message; returns (user, email.message.Message)."""
        def done():
            if not s.pf.log_lines(s.queue_id, r"to=<%s>, .*mailer=local, .*stat=Sent"
                                  % re.escape(rcpt)):
                return None
            mine = [(u, m) for u, m in s.pf.local_messages()
                    if m.get("Message-ID", "").strip() == s.msgid]
            return mine[0] if mine else None
        return self.wait("%s delivered locally to %s" % (s, rcpt), done, s.pf)

    def decisions(self, s, count):
        """Wait for count decision lines under s's queue id; returns them."""
        ds = self.lab.daemon.wait_decisions(
            lambda ds: len([d for d in ds if d.get("queue_id") == s.queue_id]) >= count,
            timeout=10)
        return [d for d in ds if d.get("queue_id") == s.queue_id]

    def diagnostics(self, sm=None):
        out = []
        if sm is not None:
            out.append(sm.diagnostics())
        if self.lab.daemon:
            out.append(self.lab.daemon.diagnostics(20))
            out.append("--- decisions\n" + "\n".join(
                json.dumps(d, sort_keys=True) for d in self.lab.daemon.decisions()[-10:]))
        for h in self.lab.sinks:
            out.append(self.lab.sink(h).describe(tail=8))
        return "\n".join(out)


def no_tags(headers_of, what):
    """headers_of(name) -> list; neither the tag nor the route header."""
    for h in ("X-MTA-STS", "X-MTA-STS-Route"):
        vals = headers_of(h)
        assert not vals, "%s carries %s: %r" % (what, h, vals)


def local_headers(msg):
    return lambda name: msg.get_all(name) or []


def expect_local_skip(d, what):
    assert d.get("action") == "skip" and d.get("domain") == HOSTED, \
        "%s: decision %r, want action skip for %s" % (what, d, HOSTED)
    assert "transport local is not outbound SMTP" in d.get("reason", ""), \
        "%s: reason %r does not name the transport local" % (what, d.get("reason"))


def case_plumbing(run):
    """No milter: Sendmail unpacks, starts, logs and delivers to the MX."""
    sm = SendmailInstance(os.path.join(run.lab.workdir, "plain"), relay_port=None,
                          mc_extra=TRUST_STICKY, ca_file=run.lab.ca_copy, canonify=True)
    run.lab.sendmails.append(sm)
    try:
        t0 = time.monotonic()
        sm.start()
        note("sendmail listening after %.1f s (unpack, m4, start)" % (time.monotonic() - t0))
        with open(sm.cf) as fh:
            assert not re.search(r"^X|^Ksts ", fh.read(), re.M), "milter or sts map in the cf"
        rcpt = "u@nopolicy.test"
        s = run.submit(sm, [rcpt], label="plumbing")
        m = run.at_mx(s, [rcpt])[rcpt]
        assert m.meta["sink"] == "mx1.nopolicy.test" and m.rcpt_to == [rcpt], m.summary()
        assert m.tls, "delivered without STARTTLS"
        no_tags(m.headers, "a message through Sendmail without the milter")
        note(sm.log_lines(s.queue_id, r"stat=Sent")[0])
    finally:
        sm.stop()
        run.lab.sendmails.remove(sm)


def start_main(run):
    run.sm = run.sendmail("sendmail", packaged_sendmail_mc(), local_domains=[HOSTED])
    with open(run.sm.cf) as fh:
        cf = fh.read()
    for rx in (r"^Ksts socket -d5 -T<TMPF> inet:8461@127\.0\.0\.1$",
               r"^Xmtasts, S=inet:8462@127\.0\.0\.1, T=S:10s;R:30s;E:1m$",
               r"^C\{w\}%s$" % re.escape(HOSTED),
               r"^Mlocal,\s+P=%s," % re.escape(run.sm.local_mailer)):
        m = re.search(rx, cf, re.M)
        assert m, "generated sendmail.cf lacks %r" % rx
        note("sendmail.cf: " + m.group(0))
    assert not re.search(r"^DS.", cf, re.M), "a smart host in the cf"


def run_main_cases(report, run):
    sm = run.sm

    def parse_bt():
        rcpts = ["alice@enforce.test", "%s@%s" % (LOCAL_USER, HOSTED)]
        out = sm.bt("".join("/parse %s\n" % r for r in rcpts))
        got = [l.strip() for l in out.splitlines() if l.startswith("mailer ")]
        note("\n".join("/parse %s -> %s" % rg for rg in zip(rcpts, got)))
        assert len(got) == 2, out[-2000:]
        assert re.match(r"mailer esmtp, host enforce\.test\.?, user alice@enforce\.test$",
                        got[0]), got[0]
        assert re.match(r"mailer local, user %s$" % LOCAL_USER, got[1]), got[1]
    report.run("sendmail -bt /parse: enforce.test by esmtp to its own name, %s by the "
               "local mailer ({rcpt_mailer}, {rcpt_host})" % HOSTED, parse_bt)

    def enforce_tagged():
        rcpt = "alice@enforce.test"
        s = run.submit(sm, [rcpt], label="enforce")
        run.state["enforce"] = s
        m = run.at_mx(s, [rcpt])[rcpt]
        assert m.meta["sink"] == "mx1.enforce.test" and m.tls, m.summary()
        tags = tags_by_domain(m)
        assert set(tags) == {"enforce.test"}, "tag headers: %r\n%s" % (
            m.headers("X-MTA-STS"), run.diagnostics(sm))
        expect_fields(tags["enforce.test"], {"result": "policy", "mode": "enforce",
                                             "id": ENF_ID}, "X-MTA-STS")
        assert m.headers("X-MTA-STS-Route") == ["enforce"], m.headers("X-MTA-STS-Route")
        assert sm.log_lines(s.queue_id, r"Milter \(mtasts\) add: header: X-MTA-STS:"), \
            "\n".join(sm.log_lines(s.queue_id))
        d = run.decisions(s, 1)
        assert len(d) == 1 and d[0].get("action") == "route-enforce", d
        note("delivered: " + m.summary())
    report.run("enforce.test by MX: X-MTA-STS policy/enforce and route header at "
               "mx1.enforce.test", enforce_tagged)

    def tags_per_domain():
        rcpts = ["carol@enforce.test", "dave@testing.test", "erin@nopolicy.test"]
        s = run.submit(sm, rcpts, label="three domains")
        bad = {r: c for r, c in s.result.rcpt.items() if c[0] != 250}
        assert not bad, "recipients refused (SMTP to their own MX: none should be): %r" % bad
        got = run.at_mx(s, rcpts)
        want = {"enforce.test": {"result": "policy", "mode": "enforce", "id": ENF_ID},
                "testing.test": {"result": "policy", "mode": "testing", "id": TST_ID},
                "nopolicy.test": {"result": "none"}}
        for r in rcpts:
            m = got[r]
            dom = r.split("@")[1]
            assert m.meta["sink"] == "mx1." + dom and m.rcpt_to == [r], m.summary()
            tags = tags_by_domain(m)
            assert set(tags) == set(want), "%s: tags %r" % (r, m.headers("X-MTA-STS"))
            for d, f in want.items():
                expect_fields(tags[d], f, "X-MTA-STS (%s copy)" % dom)
            assert m.headers("X-MTA-STS-Route") == ["enforce"], m.headers("X-MTA-STS-Route")
        acts = {d["domain"]: d["action"] for d in run.decisions(s, 3)}
        assert acts == {"enforce.test": "route-enforce", "testing.test": "accept",
                        "nopolicy.test": "accept"}, acts
        note("tags of the testing.test copy: %r" % got[rcpts[1]].headers("X-MTA-STS"))
    report.run("enforce, testing and no-policy recipients in one message: no 452, each MX "
               "copy tagged per recipient domain", tags_per_domain)

    def forged_replaced():
        forged = ["X-MTA-STS: nopolicy.test; result=policy; mode=enforce; id=forged",
                  "X-MTA-STS-Route: enforce"]
        rcpt = "frank@nopolicy.test"
        s = run.submit(sm, [rcpt], extra_headers=forged, label="forged")
        m = run.at_mx(s, [rcpt])[rcpt]
        vals = m.headers("X-MTA-STS")
        assert len(vals) == 1 and "forged" not in vals[0], \
            "want only the milter's X-MTA-STS header, got %r" % vals
        d, f = tag_fields(vals[0])
        assert d == "nopolicy.test" and f.get("result") == "none", vals
        assert m.headers("X-MTA-STS-Route") == ["none"], m.headers("X-MTA-STS-Route")
    report.run("forged tag and route headers are replaced (Sendmail header indexes)",
               forged_replaced)

    def hosted_local():
        rcpt = "%s@%s" % (LOCAL_USER, HOSTED)
        s = run.submit(sm, [rcpt], label="local")
        user, msg = run.local(s, rcpt)
        assert user == LOCAL_USER, user
        no_tags(local_headers(msg), "the locally delivered message")
        assert not sm.log_lines(s.queue_id, r"Milter \(mtasts\) add:"), \
            "\n".join(sm.log_lines(s.queue_id))
        ds = run.decisions(s, 1)
        assert len(ds) == 1, ds
        expect_local_skip(ds[0], rcpt)
        assert not run.lab.delivered(s), "%s reached an MX" % s
        note("decision: " + json.dumps(ds[0], sort_keys=True))
        note("\n".join(sm.log_lines(s.queue_id, r"to=<")))
    report.run("%s (enforce policy, Sendmail's own: class w): mailer local, skipped with "
               "the transport named, no tag, delivered locally" % HOSTED, hosted_local)

    def mixed(first, second):
        # Sendmail ignores the route header (FEATURE(`sts') checks every
        # delivery), so no route can be wrong for a recipient: the milter
        # sees Sendmail in the macro v and never answers 452 here.
        rcpts = [first, second]
        s = run.submit(sm, rcpts, label="mixed %s, %s" % tuple(rcpts))
        for r in rcpts:
            assert s.result.rcpt[r][0] == 250, "RCPT %s: got %r, want 250" % (r, s.result.rcpt[r])
        ds = {d["domain"]: d for d in run.decisions(s, 2)}
        enf = next(r for r in rcpts if r.endswith("@enforce.test"))
        assert ds["enforce.test"]["action"] == "route-enforce", ds
        expect_local_skip(ds[HOSTED], "mixed")
        m = run.at_mx(s, [enf])[enf]
        assert m.rcpt_to == [enf], m.rcpt_to
        assert set(tags_by_domain(m)) == {"enforce.test"}, m.headers("X-MTA-STS")
        user, msg = run.local(s, local_rcpt)
        assert user == LOCAL_USER, user
        # One message, one set of headers: the local copy carries the enforce
        # recipient's tag, never one for the skipped local domain.
        tags = [tag_fields(v)[0] for v in local_headers(msg)("X-MTA-STS")]
        assert set(tags) <= {"enforce.test"}, tags
        note("decisions: " + json.dumps(ds, sort_keys=True))

    local_rcpt = "%s@%s" % (LOCAL_USER, HOSTED)
    report.run("esmtp enforce recipient, then a local one in the same transaction: no 452 "
               "under Sendmail; the enforce one tagged at its MX, the local one delivered "
               "locally", mixed, "gina@enforce.test", local_rcpt)
    report.run("local recipient, then an esmtp enforce one: no 452 under Sendmail; each "
               "goes its own way", mixed, local_rcpt, "hank@enforce.test")

    def hosted_mx_untouched():
        sink = run.lab.sink("mx1." + HOSTED)
        with sink._lock:
            trans = list(sink.transcript)
        assert not sink.messages() and not any("<<< MAIL" in l for l in trans), \
            sink.describe()
        lines = sm.log_lines(pattern=r"relay=mx1\.%s" % re.escape(HOSTED))
        assert not lines, "\n".join(lines)
    report.run("mx1.%s never got mail, and Sendmail never connected to it" % HOSTED,
               hosted_mx_untouched)

    def decisions_qid():
        s = run.state.get("enforce")
        if s is None:
            raise harness.Skip("the enforce message was not accepted")
        mine = run.decisions(s, 1)
        note("decision log:\n" + "\n".join(json.dumps(d, sort_keys=True)
                                          for d in run.lab.daemon.decisions()))
        assert len(mine) == 1 and mine[0].get("domain") == "enforce.test", \
            "want one enforce.test line with Sendmail queue id %s, got %r" % (s.queue_id, mine)
        assert sm.log_lines(s.queue_id), "queue id %s not in the Sendmail log" % s.queue_id
    report.run("decision log carries Sendmail's queue id", decisions_qid)

    def map_bt():
        doms = ["enforce.test", "testing.test", "nopolicy.test", HOSTED]
        out = sm.bt("".join("/map sts %s\n" % d for d in doms), cf=sm.cf)
        got = {d: next((l.strip() for l in out.splitlines() if "(%s)" % d in l), "")
               for d in doms}
        for d in doms:
            note("/map sts %s -> %s" % (d, got[d]))
        assert "returns secure match=mx1.enforce.test" in got["enforce.test"], \
            "enforce.test: %r, want 'returns secure match=mx1.enforce.test'" % \
            got["enforce.test"]
        assert "no match" in got["nopolicy.test"], \
            "nopolicy.test: %r, want no match" % got["nopolicy.test"]
        assert "secure" not in got["testing.test"], \
            "testing.test must not be enforced: %r" % got["testing.test"]
    report.run("FEATURE(`sts') map: sendmail -bt /map sts <domain> with the daemon's cf "
               "(the map knows nothing of local delivery)", map_bt)


def run_smart_cases(report, run):
    def start_smart():
        run.smart = run.sendmail(
            "smarthost", snippet_milter_only() +
            "define(`SMART_HOST', `relay:[%s]')dnl\n" % SMART_HOST)
        with open(run.smart.cf) as fh:
            cf = fh.read()
        assert re.search(r"^DSrelay:\[%s\]$" % re.escape(SMART_HOST), cf, re.M), \
            "no SMART_HOST in the cf"
        assert re.search(r"^Xmtasts, S=inet:8462@", cf, re.M), "no milter in the cf"
    if not report.run("start Sendmail with SMART_HOST relay:[%s] and the snippet's "
                      "INPUT_MAIL_FILTER" % SMART_HOST, start_smart):
        return
    sm = run.smart

    def parse_bt():
        out = sm.bt("/parse ivan@enforce.test\n")
        got = [l.strip() for l in out.splitlines() if l.startswith("mailer ")]
        note("/parse ivan@enforce.test -> %s" % got)
        assert got == ["mailer relay, host [%s], user ivan@enforce.test" % SMART_HOST], got
    report.run("sendmail -bt /parse: every recipient by the relay mailer to [%s]"
               % SMART_HOST, parse_bt)

    def relayed():
        rcpts = ["ivan@enforce.test", "judy@testing.test", "kim@nopolicy.test"]
        forged = ["X-MTA-STS: enforce.test; result=policy; mode=enforce; id=forged",
                  "X-MTA-STS-Route: enforce"]
        s = run.submit(sm, rcpts, extra_headers=forged, label="smart host")
        bad = {r: c for r, c in s.result.rcpt.items() if c[0] != 250}
        assert not bad, "recipients refused: %r" % bad
        got = run.at_mx(s, rcpts)
        msgs = {id(m): m for m in got.values()}
        assert len(msgs) == 1, "want one transaction to the smart host, got %r" % (
            [m.summary() for m in msgs.values()])
        m = next(iter(msgs.values()))
        assert m.meta["sink"] == SMART_HOST and sorted(m.rcpt_to) == sorted(rcpts), \
            m.summary()
        assert m.tls, "the smart host got the message without STARTTLS"
        no_tags(m.headers, "the message at the smart host (forged copies included)")
        ds = run.decisions(s, 3)
        assert sorted(d["domain"] for d in ds) == sorted(r.split("@")[1] for r in rcpts), ds
        for d in ds:
            assert d.get("action") == "skip", d
            assert "transport relay next hop [%s]" % SMART_HOST in d.get("reason", "") and \
                "MTA-STS applies at the relay" in d["reason"], d
        note("decisions:\n" + "\n".join(json.dumps(d, sort_keys=True) for d in ds))
        note("\n".join(sm.log_lines(s.queue_id, r"to=<")))
        assert sm.log_lines(s.queue_id, r"relay=%s\. \[127\.0\.0\.\d+\], dsn=2\.0\.0, "
                            r"stat=Sent" % re.escape(SMART_HOST)), \
            "\n".join(sm.log_lines(s.queue_id))
        note("\n".join(sm.log_lines(s.queue_id, r"Milter")))
    report.run("enforce, testing and no-policy recipients through the smart host: all "
               "skipped naming the relay next hop, forged headers removed, nothing lost",
               relayed)


def run_cases(report, run):
    report.run("plumbing without milter: unpacked Sendmail delivers to the MX found in DNS",
               case_plumbing, run)
    if report.run("start Sendmail with packaging/sendmail/mtasts.mc.snippet and "
                  "LOCAL_DOMAIN(`%s')" % HOSTED, start_main, run):
        run_main_cases(report, run)
    run_smart_cases(report, run)

    def log_dump():
        for s in run.sent:
            note("--- %s (queue id %s)" % (s.label, s.queue_id))
            note("\n".join(re.sub(r"^\w+ +\d+ [\d:]+ ", "", l)
                           for l in s.pf.log_lines(s.queue_id)) or "(no log lines)")
    report.run("Sendmail log lines of every message (shown above)", log_dump)

    def clean_exit():
        for sm in run.lab.sendmails:    # they hold milter and socketmap connections
            sm.stop()
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
        return harness.skipped("sendmail + mtasts-milter", "sendmail tests", why)
    rc = netns.run_inside("test_sendmail")
    if rc is not None:
        return rc
    report = harness.TestReport("sendmail + mtasts-milter: MX delivery, local mailer, "
                                "SMART_HOST (netns %s)" % netns.inside())
    work = tempfile.mkdtemp(prefix="mtasts-sendmail-test.")
    keep = bool(os.environ.get("MTASTS_KEEP_WORKDIR"))
    t0 = time.monotonic()
    run = Run(work)
    try:
        if report.run("start DNS :53, HTTPS :443, MX sinks :25 and mtasts-milter",
                      run.start_lab):
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
