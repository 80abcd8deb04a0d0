#!/usr/bin/python3
"""mtasts-milter through the milter protocol, driven by miltertest.

The real daemon runs against the DNS and HTTPS fixtures; each scenario is a
miltertest Lua script that plays one SMTP transaction and checks the replies
and the end-of-message header changes; the decision log is checked after.
"""

import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon  # noqa: E402
import harness  # noqa: E402

MILTER = daemon.MILTER
MILTERTEST = "/usr/bin/miltertest"


def lua_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Script:
    """Build a miltertest Lua script step by step."""

    def __init__(self, sock):
        self.lines = [
            "local conn = mt.connect(%s, 40, 0.25)" % lua_str(sock),
            'if conn == nil then error("cannot connect to the milter") end',
        ]

    def add(self, line):
        self.lines.append(line)
        return self

    def mail(self, sender, qid="QID1", mta=None):
        """mta: the macro v the MTA sends ("Postfix 3.7.11", Sendmail "8.17.1.9")."""
        macros = [lua_str("i"), lua_str(qid)]
        if mta is not None:
            macros += [lua_str("v"), lua_str(mta)]
        return self.add('mt.macro(conn, SMFIC_MAIL, %s)' % ", ".join(macros)).add(
            'if mt.mailfrom(conn, %s) ~= nil then error("mailfrom") end' % lua_str(sender)).add(
            'if mt.getreply(conn) ~= SMFIR_CONTINUE then error("MAIL not accepted") end')

    def rcpt(self, rcpt, want="SMFIR_CONTINUE", qid="QID1", route=None, addr=None):
        """route: (transport, nexthop) sent as {rcpt_mailer} and {rcpt_host},
        as Postfix and Sendmail do; None sends neither (an MTA set up not to).
        addr: the address the MTA parsed, sent as {rcpt_addr} (Postfix: the
        resolved address, local part RFC 821-quoted); None: not sent."""
        macros = [lua_str("i"), lua_str(qid)]
        if route is not None:
            macros += [lua_str("{rcpt_mailer}"), lua_str(route[0]),
                       lua_str("{rcpt_host}"), lua_str(route[1])]
        if addr is not None:
            macros += [lua_str("{rcpt_addr}"), lua_str(addr)]
        return self.add('mt.macro(conn, SMFIC_RCPT, %s)' % ", ".join(macros)).add(
            'if mt.rcptto(conn, %s) ~= nil then error("rcptto") end' % lua_str(rcpt)).add(
            'if mt.getreply(conn) ~= %s then error(%s .. '
            'tostring(mt.getreply(conn)) .. ", want %s") end'
            % (want, lua_str("RCPT %s: reply " % rcpt), want))

    def headers(self, *pairs):
        for name, value in pairs:
            self.add('if mt.header(conn, %s, %s) ~= nil then error("header") end'
                     % (lua_str(name), lua_str(value)))
        # Steps the milter negotiated away are not sent, as an MTA would not.
        return self.add('if not mt.test_option(conn, SMFIP_NOEOH) and mt.eoh(conn) ~= nil '
                        'then error("eoh") end').add(
            'if not mt.test_option(conn, SMFIP_NOBODY) and '
            'mt.bodystring(conn, "hello\\r\\n") ~= nil then error("body") end').add(
            'if mt.eom(conn) ~= nil then error("eom") end').add(
            'if mt.getreply(conn) ~= SMFIR_ACCEPT and mt.getreply(conn) ~= SMFIR_CONTINUE '
            'then error("EOM reply " .. tostring(mt.getreply(conn))) end')

    def added(self, name, value=None):
        if value is None:
            return self.add('if not mt.eom_check(conn, MT_HDRADD, %s) then error("no %s added") end'
                            % (lua_str(name), name))
        return self.add('if not mt.eom_check(conn, MT_HDRADD, %s, %s) then error("%s: " .. '
                        'tostring(mt.getheader(conn, %s, 0)) .. " want " .. %s) end'
                        % (lua_str(name), lua_str(value), name, lua_str(name), lua_str(value)))

    def not_added(self, name):
        return self.add('if mt.eom_check(conn, MT_HDRADD, %s) then error("%s added") end'
                        % (lua_str(name), name))

    def deleted(self, name):
        return self.add('if not mt.eom_check(conn, MT_HDRCHANGE, %s) and '
                        'not mt.eom_check(conn, MT_HDRDELETE, %s) then error("%s not removed") end'
                        % (lua_str(name), lua_str(name), name))

    def text(self):
        return "\n".join(self.lines + ["mt.disconnect(conn)", ""])


def main():
    report = harness.TestReport("milter")
    for need in (MILTER, MILTERTEST):
        if not os.access(need, os.X_OK):
            report.skip("milter tests", "%s not available (install miltertest)" % need)
            return report.finish()
    with tempfile.TemporaryDirectory(prefix="mtasts-milter-test.") as work:
        # Over TCP, then over a unix-domain socket, where the milter also
        # negotiates MAIL without a reply and no DATA step.
        for kind in ("inet", "unix"):
            sub = os.path.join(work, kind)
            os.mkdir(sub)
            fx = harness.Fixtures(sub)
            dmn = None
            sock = "unix:" + os.path.join(sub, "milter.sock") if kind == "unix" else None
            try:
                dmn = daemon.Daemon(fx, sub, "LocalDomains local.example\nEarlyTempfail yes\n",
                                    milter_socket=sock)
                run_tests(SocketLabel(report, kind), sub, dmn.sock, dmn.dlog, dmn.proc, dmn.conf,
                          dmn.errfile)
            finally:
                if dmn is not None:
                    dmn.stop()
                fx.stop()
        sub = os.path.join(work, "lost")
        os.mkdir(sub)
        fx = harness.Fixtures(sub)
        dmn = None
        try:
            dmn = daemon.Daemon(fx, sub)
            report.run("a milter stopped by libmilter's own signal thread stops the daemon "
                       "visibly (log line, exit status 70), never silently", milter_lost, dmn)
        finally:
            if dmn is not None:
                dmn.stop()
            fx.stop()
    return report.finish()


def milter_lost(dmn):
    """SIGHUP sent to each thread but the main one (thread-directed, so the
    main thread cannot take it): libmilter's signal thread takes it and
    stops the milter, as it would a process signal it won the race for."""
    libc = ctypes.CDLL(None, use_errno=True)
    pid = dmn.proc.pid
    harness.wait_for(lambda: "started" in open(dmn.errfile).read(), timeout=30,
                     msg="the daemon's threads started")

    def sigwaiting():
        """libmilter's signal thread exists: a thread in rt_sigtimedwait
        (syscall 128 on x86_64).  "started" is logged before smfi_main has
        spawned it; a SIGHUP sent to the threads before then stays pending
        on one of them for ever (a slow sanitizer build lost that race)."""
        for t in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/syscall" % (pid, t)) as f:
                    if f.read().split(" ", 1)[0] == "128":
                        return True
            except OSError:
                pass
        return False
    harness.wait_for(sigwaiting, timeout=30, msg="libmilter's signal thread waiting")
    tids = [int(t) for t in os.listdir("/proc/%d/task" % pid) if int(t) != pid]
    assert tids, "no threads besides the main one"
    for tid in tids:
        libc.syscall(234, pid, tid, signal.SIGHUP)    # tgkill (x86_64)
    rc = dmn.proc.wait(timeout=30)
    with open(dmn.errfile) as f:
        log = f.read()
    assert "milter-stopped" in log, "no milter-stopped line:\n" + log[-2000:]
    assert rc == 70, "exit status %d, want 70 (EX_SOFTWARE)" % rc


class SocketLabel:
    """The report, with the socket kind added to every case name."""

    def __init__(self, report, kind):
        self.report, self.kind = report, kind

    def run(self, name, fn, *args, **kwargs):
        return self.report.run("%s [%s socket]" % (name, self.kind), fn, *args, **kwargs)

    def __getattr__(self, attr):
        return getattr(self.report, attr)


def run_script(work, name, script):
    path = os.path.join(work, name + ".lua")
    with open(path, "w") as f:
        f.write(script.text())
    p = subprocess.run([MILTERTEST, "-s", path], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("miltertest %s failed (exit %d): %s %s"
                             % (name, p.returncode, p.stdout.strip(), p.stderr.strip()))


def records(dlog):
    if not os.path.exists(dlog):
        return []
    with open(dlog) as f:
        # Every line: decisions, and records of other kinds ("policy",
        # "probe"), which carry a "record" field.
        return [json.loads(line) for line in f if line.strip()]


def decisions(dlog):
    """The decision lines (lines of other kinds carry a "record" field)."""
    return [x for x in records(dlog) if "record" not in x]


def run_tests(report, work, sock, dlog, proc, conf, errfile):
    TAG_ENF = ("enforce.test; result=policy; mode=enforce; id=enforce1; "
               "mx=mx1.enforce.test,*.mx.enforce.test")

    def enforce():
        s = Script(sock).mail("<a@example.net>").rcpt("<bob@enforce.test>").headers(
            ("Subject", "hi")).added("X-MTA-STS", TAG_ENF).added("X-MTA-STS-Route", "enforce")
        run_script(work, "enforce", s)
        d = [x for x in decisions(dlog) if x["domain"] == "enforce.test"][-1]
        # The policy as fetched, once, for the report's policy-string.
        pols = [x for x in records(dlog) if x.get("record") == "policy" and
                x["domain"] == "enforce.test"]
        assert len(pols) == 1 and pols[0]["policy_id"] == "enforce1" and \
            pols[0]["policy"].startswith("version: STSv1") and "mode: enforce" in pols[0]["policy"], pols
        want = {"queue_id": "QID1", "result": "policy", "mode": "enforce",
                "policy_id": "enforce1", "action": "route-enforce"}
        for k, v in want.items():
            assert d.get(k) == v, "decision log %s: got %r, want %r (%s)" % (k, d.get(k), v, d)
        assert d["time"].endswith("Z") and "reason" in d, d
    report.run("enforce domain: tagged, routed to the enforce transport, logged", enforce)

    def testing():
        s = Script(sock).mail("<a@example.net>", "QID2").rcpt("<c@testing.test>", qid="QID2").headers(
            ("Subject", "hi")).added(
            "X-MTA-STS", "testing.test; result=policy; mode=testing; id=testing1; "
            "mx=mx1.testing.test,*.mx.testing.test").added("X-MTA-STS-Route", "none")
        run_script(work, "testing", s)
        d = [x for x in decisions(dlog) if x["domain"] == "testing.test"][-1]
        assert d["action"] == "accept" and d["mode"] == "testing", d
    report.run("testing domain: tagged, delivered as usual", testing)

    def no_policy():
        s = Script(sock).mail("<a@example.net>").rcpt("<x@nopolicy.test>").headers(
            ("Subject", "hi")).added("X-MTA-STS", "nopolicy.test; result=none").added(
            "X-MTA-STS-Route", "none")
        run_script(work, "nopolicy", s)
    report.run("domain without MTA-STS: result=none, no routing", no_policy)

    def temperror():
        s = Script(sock).mail("<a@example.net>").rcpt("<x@broken.test>").headers(
            ("Subject", "hi")).added("X-MTA-STS", "broken.test; result=temperror").added(
            "X-MTA-STS-Route", "none")
        run_script(work, "temperror", s)
        d = [x for x in decisions(dlog) if x["domain"] == "broken.test"][-1]
        assert d["action"] == "accept" and d["result"] == "temperror", d
    report.run("DNS failure: accepted as without MTA-STS (LookupFailAction accept)", temperror)

    def pending():
        t0 = time.monotonic()
        s = Script(sock).mail("<a@example.net>").rcpt("<x@slow.test>").headers(
            ("Subject", "hi")).added("X-MTA-STS", "slow.test; result=temperror; pending=yes")
        run_script(work, "pending", s)
        took = time.monotonic() - t0
        assert took < 2.4, "RCPT waited %.1f s, the budget is 1 s" % took
        time.sleep(2.5)     # the discovery goes on and fills the cache
        s = Script(sock).mail("<a@example.net>").rcpt("<x@slow.test>").headers(
            ("Subject", "hi")).added("X-MTA-STS-Route", "enforce")
        run_script(work, "pending-later", s)
    report.run("slow policy host: pending within the budget, cached for the next message",
               pending)

    def forged():
        s = Script(sock).mail("<a@example.net>").rcpt("<bob@enforce.test>").headers(
            ("X-MTA-STS", "enforce.test; result=none"), ("Subject", "hi"),
            ("X-MTA-STS-Route", "none")).deleted("X-MTA-STS").deleted(
            "X-MTA-STS-Route").added("X-MTA-STS", TAG_ENF)
        run_script(work, "forged", s)
    report.run("forged tag and route headers are removed", forged)

    SMTP = lambda d: ("smtp", d)  # noqa: E731 - Postfix: smtp to the domain's own MX

    def mixed_outbound():
        s = Script(sock).mail("<a@example.net>", "QIDM").rcpt(
            "<bob@enforce.test>", qid="QIDM", route=SMTP("enforce.test")).rcpt(
            "<c@testing.test>", qid="QIDM", route=SMTP("testing.test")).rcpt(
            "<x@nopolicy.test>", qid="QIDM", route=SMTP("nopolicy.test")).headers(
            ("Subject", "hi")).added("X-MTA-STS-Route", "enforce")
        run_script(work, "mixed-outbound", s)
        acts = {x["domain"]: x["action"] for x in decisions(dlog) if x["queue_id"] == "QIDM"}
        want = {"enforce.test": "route-enforce", "testing.test": "accept",
                "nopolicy.test": "accept"}
        assert acts == want, "got %r, want %r" % (acts, want)
    report.run("submission to an enforce and ordinary domains: no 452, all through the "
               "enforce transport (it answers the others as usual)", mixed_outbound)

    def hosted_enforce_domain():
        # virtual_mailbox_domains, mydestination, lmtp: the MTA delivers it.
        for n, route in enumerate((("virtual", "enforce.test"), ("local", "mx.example.net"),
                                   ("lmtp", "unix:private/dovecot-lmtp"))):
            qid = "QIDV%d" % n
            s = Script(sock).mail("<a@example.net>", qid).rcpt(
                "<u@enforce.test>", qid=qid, route=route).headers(("Subject", "hi")).not_added(
                "X-MTA-STS").not_added("X-MTA-STS-Route")
            run_script(work, "hosted-%s" % route[0], s)
            d = [x for x in decisions(dlog) if x["queue_id"] == qid]
            assert len(d) == 1 and d[0]["action"] == "skip", d
            assert "transport %s is not outbound SMTP" % route[0] in d[0]["reason"], d
    report.run("a domain this server hosts (virtual, local, lmtp) is skipped, never routed, "
               "even with an enforce policy", hosted_enforce_domain)

    def relayed():
        for n, hop in enumerate(("[relay.example.net]:587", "[10.0.0.5]", "internal.example")):
            qid = "QIDR%d" % n
            s = Script(sock).mail("<a@example.net>", qid).rcpt(
                "<bob@enforce.test>", qid=qid, route=("smtp", hop)).headers(
                ("Subject", "hi")).not_added("X-MTA-STS-Route")
            run_script(work, "relayed-%d" % n, s)
            d = [x for x in decisions(dlog) if x["queue_id"] == qid]
            assert len(d) == 1 and d[0]["action"] == "skip", d
            assert "MTA-STS applies at the relay" in d[0]["reason"] and hop in d[0]["reason"], d
    report.run("relayhost, smart host and transport map to an internal host: skipped with "
               "the next hop named", relayed)

    def mixed_keep():
        # Enforce first: a recipient the MTA delivers itself cannot share
        # FILTER mtasts-enforce (it would leave for the domain's MX).
        s = Script(sock).mail("<a@example.net>", "QIDK1").rcpt(
            "<bob@enforce.test>", qid="QIDK1", route=SMTP("enforce.test")).rcpt(
            "<v@hosted.example>", "SMFIR_REPLYCODE", qid="QIDK1",
            route=("virtual", "hosted.example")).rcpt(
            "<c@testing.test>", qid="QIDK1", route=SMTP("testing.test")).headers(
            ("Subject", "hi")).added("X-MTA-STS-Route", "enforce")
        run_script(work, "mixed-keep-1", s)
        d = {x["domain"]: x for x in decisions(dlog) if x["queue_id"] == "QIDK1"}
        assert d["hosted.example"]["action"] == "split", d
        assert "virtual" in d["hosted.example"]["reason"], d
        assert d["enforce.test"]["action"] == "route-enforce", d
        # The local recipient first: the enforce one is deferred.
        s = Script(sock).mail("<a@example.net>", "QIDK2").rcpt(
            "<y@local.example>", qid="QIDK2", route=SMTP("local.example")).rcpt(
            "<bob@enforce.test>", "SMFIR_REPLYCODE", qid="QIDK2",
            route=SMTP("enforce.test")).headers(("Subject", "hi")).not_added(
            "X-MTA-STS-Route")
        run_script(work, "mixed-keep-2", s)
        d = {x["domain"]: x for x in decisions(dlog) if x["queue_id"] == "QIDK2"}
        assert d["enforce.test"]["action"] == "split", d
        assert d["local.example"]["action"] == "skip", d
    report.run("enforce with a recipient the MTA delivers itself: the later one gets "
               "452 4.5.3, whichever came first", mixed_keep)

    def sendmail_never_splits():
        # Sendmail (v is its bare version) enforces with FEATURE(`sts') at
        # every delivery and ignores the route header: no 452 needed.
        s = Script(sock).mail("<a@example.net>", "QIDS", mta="8.17.1.9").rcpt(
            "<bob@enforce.test>", qid="QIDS", route=("esmtp", "enforce.test.")).rcpt(
            "<root@hosted.example>", qid="QIDS", route=("local", "")).headers(
            ("Subject", "hi")).added("X-MTA-STS", TAG_ENF)
        run_script(work, "sendmail-mixed", s)
        d = {x["domain"]: x["action"] for x in decisions(dlog) if x["queue_id"] == "QIDS"}
        assert d == {"enforce.test": "route-enforce", "hosted.example": "skip"}, d
        # Postfix named in v: the split stays.
        s = Script(sock).mail("<a@example.net>", "QIDP", mta="Postfix 3.7.11").rcpt(
            "<bob@enforce.test>", qid="QIDP", route=SMTP("enforce.test")).rcpt(
            "<root@hosted.example>", "SMFIR_REPLYCODE", qid="QIDP",
            route=("virtual", "hosted.example")).headers(("Subject", "hi"))
        run_script(work, "postfix-mixed", s)
    report.run("Sendmail (macro v a bare version) never gets a 452 for mixed recipients; "
               "Postfix does", sendmail_never_splits)

    def no_macros():
        # Every other case of this file that sends no route macros counts
        # on the old behaviour; the daemon says once that it misses them.
        with open(errfile) as f:
            n = f.read().count("rcpt-macros-missing")
        assert n == 1, "rcpt-macros-missing logged %d times, want once" % n
    report.run("an MTA that sends no {rcpt_mailer}: recipients taken as outbound SMTP, "
               "said once in the log", no_macros)

    def literal_local_null():
        s = Script(sock).mail("<a@example.net>").rcpt("<x@[192.0.2.1]>").rcpt(
            "<y@local.example>").headers(("Subject", "hi")).not_added("X-MTA-STS")
        run_script(work, "literal", s)
        acts = {(x["domain"], x["action"]) for x in decisions(dlog)}
        assert ("[192.0.2.1]", "skip") in acts and ("local.example", "skip") in acts, acts
        s = Script(sock).mail("<>").rcpt("<bob@enforce.test>").headers(
            ("Subject", "bounce")).not_added("X-MTA-STS")
        run_script(work, "null-sender", s)
        d = [x for x in decisions(dlog) if x["domain"] == "enforce.test"][-1]
        assert d["action"] == "skip" and "null sender" in d["reason"], d
    report.run("address literals, local domains and the null sender are skipped and logged",
               literal_local_null)

    def rcpt_syntax():
        # RFC 5321 forms a naive split gets wrong; the MTA routes each to
        # enforce.test, so the milter must decide for enforce.test.
        for n, rcpt in enumerate(('<"a>b"@enforce.test>', "<bob@(c)enforce.test>",
                                  "<bob@enforce.test >", '<"x\\"@>y"@enforce.test>',
                                  "<@relay.example,@[192.0.2.9]:bob@enforce.test>")):
            qid = "QIDQ%d" % n
            s = Script(sock).mail("<a@example.net>", qid).rcpt(
                rcpt, qid=qid, route=SMTP("enforce.test")).headers(("Subject", "hi")).added(
                "X-MTA-STS", TAG_ENF).added("X-MTA-STS-Route", "enforce")
            run_script(work, "rcpt-syntax-%d" % n, s)
            d = [x for x in decisions(dlog) if x["queue_id"] == qid]
            assert [(x["domain"], x["action"]) for x in d] == [
                ("enforce.test", "route-enforce")], "%s: got %r" % (rcpt, d)
        # Not one address: skipped, never looked up, the reason logged.
        s = Script(sock).mail("<a@example.net>", "QIDQX").rcpt(
            '<"bob@enforce.test>', qid="QIDQX", route=SMTP("enforce.test")).headers(
            ("Subject", "hi")).not_added("X-MTA-STS").not_added("X-MTA-STS-Route")
        run_script(work, "rcpt-syntax-bad", s)
        d = [x for x in decisions(dlog) if x["queue_id"] == "QIDQX"]
        assert len(d) == 1 and d[0]["action"] == "skip", d
        assert "not understood: unclosed quoted string" in d[0]["reason"], d
    report.run("quoted local parts, comments, trailing space, source routes: the domain "
               "the MTA routes to", rcpt_syntax)

    def rcpt_addr_macro():
        # {rcpt_addr} is the address the MTA resolved: it wins over the
        # RCPT argument (Postfix's percent hack for a local domain routes
        # bob%enforce.test@local.example to enforce.test by SMTP).
        s = Script(sock).mail("<a@example.net>", "QIDA1").rcpt(
            "<bob%enforce.test@local.example>", qid="QIDA1", route=SMTP("enforce.test"),
            addr="bob@enforce.test").rcpt(
            '<"a>b"@enforce.test>', qid="QIDA1", route=SMTP("enforce.test"),
            addr='"a>b"@enforce.test').headers(("Subject", "hi")).added(
            "X-MTA-STS", TAG_ENF).added("X-MTA-STS-Route", "enforce")
        run_script(work, "rcpt-addr", s)
        d = [(x["domain"], x["action"]) for x in decisions(dlog) if x["queue_id"] == "QIDA1"]
        assert d == [("enforce.test", "route-enforce")] * 2, d
        # Sendmail's {rcpt_addr} of a local recipient has no domain: the
        # RCPT argument still names it in the log.
        s = Script(sock).mail("<a@example.net>", "QIDA2", mta="8.17.1.9").rcpt(
            "<root@hosted.example>", qid="QIDA2", route=("local", ""), addr="root").headers(
            ("Subject", "hi")).not_added("X-MTA-STS")
        run_script(work, "rcpt-addr-local", s)
        d = [(x["domain"], x["action"]) for x in decisions(dlog) if x["queue_id"] == "QIDA2"]
        assert d == [("hosted.example", "skip")], d
    report.run("{rcpt_addr}, the address the MTA parsed, decides the domain", rcpt_addr_macro)

    def domain_cap():
        # 256 recipient domains fill the message's table; the 257th gets
        # 452 4.5.3 and is never logged as routed.  A domain already in the
        # table still joins.
        s = Script(sock).mail("<a@example.net>", "QIDC1").rcpt(
            "<c@testing.test>", qid="QIDC1", route=SMTP("testing.test"))
        for i in range(1, 256):
            s.rcpt("<x@n%d.test>" % i, qid="QIDC1", route=SMTP("n%d.test" % i))
        s.rcpt("<bob@enforce.test>", "SMFIR_REPLYCODE", qid="QIDC1",
               route=SMTP("enforce.test")).rcpt(
            "<c2@testing.test>", qid="QIDC1", route=SMTP("testing.test")).headers(
            ("Subject", "hi")).added(
            "X-MTA-STS", "testing.test; result=policy; mode=testing; id=testing1; "
            "mx=mx1.testing.test,*.mx.testing.test").added(
            "X-MTA-STS", "n255.test; result=none").added("X-MTA-STS-Route", "none")
        run_script(work, "domain-cap", s)
        d = [x for x in decisions(dlog) if x["queue_id"] == "QIDC1"]
        enf = [x for x in d if x["domain"] == "enforce.test"]
        assert len(enf) == 1 and enf[0]["action"] == "split", enf
        assert "too many recipient domains" in enf[0]["reason"], enf
        assert not any(x["action"] == "route-enforce" for x in d), d
        assert [x["action"] for x in d if x["domain"] == "testing.test"] == ["accept"] * 2, d
        assert len([x for x in d if x["action"] == "accept"]) == 257, len(d)
        # Skipped recipients take entries too (Sendmail, where nothing is
        # split for the route): past 256, a new one gets 452 as well.
        s = Script(sock).mail("<a@example.net>", "QIDC2", mta="8.17.1.9")
        for i in range(256):
            s.rcpt("<x@[10.0.%d.%d]>" % (i // 200, i % 200), qid="QIDC2")
        s.rcpt("<bob@enforce.test>", "SMFIR_REPLYCODE", qid="QIDC2").rcpt(
            "<y@[10.0.1.56]>", "SMFIR_REPLYCODE", qid="QIDC2").rcpt(
            "<z@[10.0.0.7]>", qid="QIDC2").headers(("Subject", "hi")).not_added("X-MTA-STS")
        run_script(work, "domain-cap-skipped", s)
        d = [x for x in decisions(dlog) if x["queue_id"] == "QIDC2"]
        split = sorted(x["domain"] for x in d if x["action"] == "split")
        assert split == ["[10.0.1.56]", "enforce.test"], split
        assert not any(x["action"] == "route-enforce" for x in d), d
        assert len([x for x in d if x["action"] == "skip"]) == 257, len(d)
    report.run("past 256 recipient domains a new one gets 452 4.5.3, logged as split, "
               "never as routed", domain_cap)

    def early_tempfail():
        s = Script(sock).mail("<a@example.net>").rcpt("<x@badmx.test>", "SMFIR_REPLYCODE").rcpt(
            "<bob@enforce.test>").headers(("Subject", "hi")).added("X-MTA-STS", TAG_ENF)
        run_script(work, "early-tempfail", s)
        d = [x for x in decisions(dlog) if x["domain"] == "badmx.test"][-1]
        assert d["action"] == "tempfail-no-mx" and d["mode"] == "enforce", d
    report.run("EarlyTempfail: enforce policy matching none of the MX hosts gets 451 4.7.5",
               early_tempfail)

    def tls_required_no():
        s = Script(sock).mail("<tlsrpt@example.net>").rcpt("<rua@enforce.test>").headers(
            ("TLS-Required", "No"), ("Subject", "Report Domain: x")).added(
            "X-MTA-STS-Route", "none")
        run_script(work, "tls-required-no", s)
    report.run("TLS-Required: No (RFC 8689) is never routed to the enforce transport",
               tls_required_no)

    def reload_and_reopen():
        os.rename(dlog, dlog + ".1")
        proc.send_signal(signal.SIGUSR1)
        harness.wait_for(lambda: os.path.exists(dlog), timeout=5, msg="decision log reopened")
        with open(conf, "a") as f:
            f.write("TagHeader X-STS-Reloaded\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert proc.poll() is None, "milter exited on SIGHUP"
        s = Script(sock).mail("<a@example.net>").rcpt("<bob@enforce.test>").headers(
            ("Subject", "hi")).added("X-STS-Reloaded", TAG_ENF).not_added("X-MTA-STS")
        run_script(work, "after-hup", s)
        assert any(x["domain"] == "enforce.test" for x in decisions(dlog)), "no line after reopen"
    report.run("SIGUSR1 reopens the decision log; SIGHUP reloads (new TagHeader) without "
               "stopping", reload_and_reopen)

    def negotiation():
        s = Script(sock).add('if not mt.test_option(conn, SMFIP_NOBODY) then '
                             'error("body not negotiated away") end').add(
            'if not mt.test_option(conn, SMFIP_NR_HDR) then error("header replies kept") end').add(
            'if not mt.test_action(conn, SMFIF_ADDHDRS) then error("no ADDHDRS") end')
        # MAIL without a reply and no DATA step only where no Nagle/delayed
        # ACK can hold the next packet: unix-domain sockets.
        local = sock.startswith("unix:")
        for opt in ("SMFIP_NR_MAIL", "SMFIP_NODATA"):
            s.add('if %smt.test_option(conn, %s) then error("%s %s on a %s socket") end'
                  % ("not " if local else "", opt, opt, "missing" if local else "set",
                     "unix" if local else "TCP"))
        run_script(work, "negotiation", s)
    report.run("unneeded protocol steps are negotiated away", negotiation)

    def hup_burst():
        # libmilter's signal thread stops the milter on a SIGHUP it gets; the
        # daemon must take every one itself, even one that comes while it is
        # still reloading (a burst of 1500 HUPs stopped the milter before).
        with open(errfile) as f:
            before = f.read().count("reloaded")
        for _ in range(1500):
            proc.send_signal(signal.SIGHUP)
            t = time.perf_counter()
            while time.perf_counter() - t < 0.0002:
                pass
        time.sleep(1.0)
        assert proc.poll() is None, "daemon exited during the SIGHUP burst"
        s = Script(sock).mail("<a@example.net>", "QIDH").rcpt("<bob@enforce.test>", qid="QIDH").headers(
            ("Subject", "hi")).added("X-MTA-STS-Route", "enforce")
        try:
            run_script(work, "after-hup-burst", s)
        except AssertionError as e:
            with open(errfile) as f:
                tail = [l for l in f.read().splitlines() if "reload" not in l][-15:]
            raise AssertionError("%s\ndaemon log (reload lines left out):\n%s"
                                 % (e, "\n".join(tail))) from None
        with open(errfile) as f:
            after = f.read().count("reloaded")
        harness.note("reloads logged during the burst: %d (HUPs that come while one is pending "
             "merge into it)" % (after - before))
        assert after > before, "no reload logged"
    report.run("a burst of SIGHUPs: the daemon takes each, the milter keeps answering",
               hup_burst)

    def sigterm():
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=15)
        assert rc == 0, "exit status %d after SIGTERM" % rc
    report.run("SIGTERM stops the daemon cleanly (exit 0)", sigterm)


if __name__ == "__main__":
    sys.exit(main())
