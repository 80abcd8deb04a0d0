#!/usr/bin/python3
"""mtasts-milter in a real Postfix: tagging, routing, mixed recipients.

A private Postfix (tests/mta/postfix.py) runs from the Debian package with
its own config, queue and log under a temp dir; smtpd listens on a free
loopback port and calls the real daemon as its milter.  Mail leaves through
two SMTP sinks (tests/mta/smtpsink.py): sink A is the relayhost for
ordinary mail, sink B the destination of the mtasts-enforce transport that
milter_header_checks (the shipped packaging/postfix/mtasts_header_checks)
selects for "X-MTA-STS-Route: enforce" (sink B offers
STARTTLS with a test-CA certificate for mx1.enforce.test, and that
transport demands it: smtp_tls_security_level=secure).  So where a message
arrives shows how Postfix routed it.  DNS and HTTPS fixtures serve
enforce.test (enforce), testing.test (testing), nopolicy.test (no TXT).

The plumbing case runs first, without the milter (header_checks applies the
routing rule to a header the test writes itself): it tells a broken test
set-up apart from a broken daemon.  The milter cases then run twice: over
TCP, and over a unix-domain socket (where the daemon also negotiates MAIL
without a reply and no DATA step) with the daemon dropped to UserID
nobody:postfix.  Postfix's smtpd runs as user postfix, group postfix, so
it gets in through the socket's group bits (mode 0660) -- the documented
set-up with the primary group instead of "adduser postfix mtasts", and no
user or group to create on the test machine.  Needs root and the postfix package;
skips (77) otherwise.  MTASTS_KEEP_WORKDIR=1 keeps the work dir.
"""

import grp
import json
import os
import pwd
import stat
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
from postfix import PostfixInstance, postfix_available  # noqa: E402
from smtpsink import SmtpSink  # noqa: E402

SENDER = "sender@client.test"
DELIVERY_TIMEOUT = 30.0
ENF = WORLD["enforce.test"]
TST = WORLD["testing.test"]
UNIX_USER, UNIX_GROUP = "nobody", "postfix"      # UserID of the unix-socket phase


class Env:
    """Fixtures, sinks, daemon and Postfix of one test run."""

    def __init__(self, work):
        self.work = work
        self.fx = harness.Fixtures(os.path.join(work, "fixtures"))
        self.sinks = {}
        self.pf = None
        self.milter = None
        self.queue_ids = []          # (label, queue id), for the log dump

    def sink(self, name, tls=False):
        cert = key = None
        if tls:
            cert, key = self.fx.make_cert("mx1.enforce.test", "good", "mx1.enforce.test")
        s = SmtpSink(os.path.join(self.work, "sink-" + name), name=name,
                     tls_cert=cert, tls_key=key)
        s.start()
        self.sinks[name] = s
        return s

    def new_messages(self, sink, before, count=1, timeout=DELIVERY_TIMEOUT):
        """Wait for count messages in sink beyond the first `before`."""
        try:
            msgs = sink.wait_for(before + count, timeout)
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.diagnostics())) from None
        return msgs[before:]

    def diagnostics(self):
        out = []
        if self.pf:
            out.append(self.pf.diagnostics())
        if self.milter:
            out.append(self.milter.diagnostics())
        for s in self.sinks.values():
            out.append(s.describe(tail=15))
        return "\n".join(out)

    def cleanup(self):
        if self.pf:
            self.pf.stop()
        if self.milter:
            self.milter.stop()
        for s in self.sinks.values():
            s.stop()
        self.fx.cleanup()


def submit(env, rcpts, extra_headers=(), subject=None, label=None, sender=SENDER):
    msg = mtautil.make_message(rcpts, subject=subject or "to " + ", ".join(rcpts),
                               extra_headers=extra_headers,
                               mail_from=sender or "MAILER-DAEMON@client.test")
    r = env.pf.submit(sender, rcpts, msg)
    if r.queue_id:
        env.queue_ids.append((label or subject or rcpts[0], r.queue_id))
    return r


def assert_queued(r, env):
    assert r.data and r.data[0] == 250 and r.queue_id, \
        "message not queued: %r\n%s" % (r, env.diagnostics())


# ---------------------------------------------------------------- plumbing

def case_plumbing(work):
    """No milter: header_checks applies the routing rule to a header the
    message carries, so sinks, relayhost, the FILTER transport and its TLS
    demand are checked on their own."""
    env = Env(os.path.join(work, "plumbing"))
    try:
        a = env.sink("A")
        b = env.sink("B", tls=True)
        c = env.sink("C")                  # no STARTTLS: must never get enforce mail
        rules = os.path.join(env.work, "test_header_checks")
        os.makedirs(env.work, exist_ok=True)
        with open(rules, "w") as fh:
            fh.write("/^X-Test-Route: enforce$/ FILTER mtasts-enforce:\n"
                     "/^X-Test-Route: plain$/ FILTER mtasts-enforce:[127.0.0.1]:%d\n" % c.port)
        env.pf = PostfixInstance(os.path.join(env.work, "postfix"), relay_port=a.port,
                                 enforce_port=b.port, milter=None, enforce_ca=env.fx.ca_file,
                                 enforce_match="mx1.enforce.test",
                                 main={"header_checks": "regexp:" + rules})
        t0 = time.monotonic()
        env.pf.start()
        note("postfix started in %.1f s" % (time.monotonic() - t0))
        r1 = submit(env, ["u@nopolicy.test"], label="plumbing relay")
        r2 = submit(env, ["u@enforce.test"], extra_headers=["X-Test-Route: enforce"],
                    label="plumbing enforce")
        r3 = submit(env, ["v@enforce.test"], extra_headers=["X-Test-Route: plain"],
                    label="plumbing plaintext")
        for r in (r1, r2, r3):
            assert_queued(r, env)
        ma = env.new_messages(a, 0)[0]
        mb = env.new_messages(b, 0)[0]
        assert ma.rcpt_to == ["u@nopolicy.test"], ma.rcpt_to
        assert mb.rcpt_to == ["u@enforce.test"], mb.rcpt_to
        assert mb.tls and mb.tls["version"].startswith("TLS"), "sink B got no TLS: %r" % mb.tls
        # The plaintext-only destination: Postfix must defer, never send.
        env.pf.wait_log(r"TLS is required, but was not offered", queue_id=r3.queue_id,
                        timeout=DELIVERY_TIMEOUT)
        assert not c.messages(), "enforce transport delivered in cleartext:\n" + c.describe()
        # With 1 s backoffs qmgr may already have put it back in incoming
        # ("skipped, still being delivered"): queued is what counts.
        q = env.pf.queue_files()
        assert r3.queue_id in q.get("deferred", []) + q.get("active", []) + \
            q.get("incoming", []), q
        note("\n".join(env.pf.log_lines(r2.queue_id)))
        note("\n".join(env.pf.log_lines(r3.queue_id)))
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, env.diagnostics())) from None
    finally:
        env.cleanup()


# -------------------------------------------------------------- with milter

def shipped_header_checks():
    """packaging/postfix/mtasts_header_checks, the rule users install."""
    p = os.path.join(harness.srcdir(), "packaging", "postfix", "mtasts_header_checks")
    return p if os.path.exists(p) else None


def start_milter_env(env, unix=False):
    """unix: the daemon listens on WORK/daemon/run/milter.sock (run: owned
    by UNIX_USER:UNIX_GROUP, mode 0750, like a production socket directory)
    and drops to UserID UNIX_USER:UNIX_GROUP."""
    dns_port, https_port = start_world(env.fx)
    env.a = env.sink("A")
    env.b = env.sink("B", tls=True)
    sock, settings = None, None
    if unix:
        run = os.path.join(env.work, "daemon", "run")
        os.makedirs(run)
        os.chown(run, pwd.getpwnam(UNIX_USER).pw_uid, grp.getgrnam(UNIX_GROUP).gr_gid)
        os.chmod(run, 0o750)
        mtautil.make_traversable(os.path.dirname(run))   # smtpd must reach run/
        sock = "unix:" + os.path.join(run, "milter.sock")
        settings = {"UserID": "%s:%s" % (UNIX_USER, UNIX_GROUP),
                    "PidFile": os.path.join(run, "mtasts-milter.pid")}
    env.milter = MilterDaemon(os.path.join(env.work, "daemon"), dns_port, https_port,
                              env.fx.ca_file, milter_socket=sock, settings=settings)
    t0 = time.monotonic()
    env.milter.start()
    note("mtasts-milter listening after %.2f s" % (time.monotonic() - t0))
    env.pf = PostfixInstance(os.path.join(env.work, "postfix"), relay_port=env.a.port,
                             enforce_port=env.b.port,
                             milter=env.milter.postfix_milter,
                             milter_default_action="tempfail", enforce_ca=env.fx.ca_file,
                             enforce_match="mx1.enforce.test",
                             header_checks_file=shipped_header_checks())
    t0 = time.monotonic()
    env.pf.start()
    note("postfix started in %.1f s" % (time.monotonic() - t0))


def cases_with_milter(report, env, unix=False):
    state = {}

    def run(name, fn):
        return report.run(name + (" [unix socket]" if unix else ""), fn)

    def socket_owner_mode():
        uid, gid = pwd.getpwnam(UNIX_USER).pw_uid, grp.getgrnam(UNIX_GROUP).gr_gid
        st = os.stat(env.milter.milter_path)
        got = (stat.S_ISSOCK(st.st_mode), oct(st.st_mode & 0o7777), st.st_uid, st.st_gid)
        note("%s: socket=%s mode=%s uid=%d gid=%d" % ((env.milter.milter_path,) + got))
        assert got == (True, oct(0o660), uid, gid), \
            "socket (is socket, mode, uid, gid) %r, want %r" % (got, (True, oct(0o660), uid, gid))
        with open("/proc/%d/status" % env.milter.popen.pid) as fh:
            ids = {l.split(":")[0]: l.split(":")[1].split() for l in fh
                   if l.startswith(("Uid:", "Gid:", "Groups:"))}
        note("daemon process: %r" % ids)
        assert ids == {"Uid": [str(uid)] * 4, "Gid": [str(gid)] * 4, "Groups": [str(gid)]}, \
            "daemon ids %r, want uid %d, gid %d, groups [%d]" % (ids, uid, gid, gid)
    if unix:
        run("socket is mode 0660, owned by UserID %s:%s; the daemon runs as them"
            % (UNIX_USER, UNIX_GROUP), socket_owner_mode)

    def enforce_to_sink_b():
        na, nb = len(env.a.messages()), len(env.b.messages())
        t0 = time.monotonic()
        r = submit(env, ["alice@enforce.test"], label="enforce")
        note("SMTP transaction (cold policy lookup) took %.2f s" % (time.monotonic() - t0))
        assert r.rcpt["alice@enforce.test"][0] == 250, r
        assert_queued(r, env)
        state["enforce"] = (r, ["alice@enforce.test"])
        m = env.new_messages(env.b, nb)[0]
        assert m.rcpt_to == ["alice@enforce.test"], m.rcpt_to
        assert m.tls, "enforce mail reached sink B without TLS"
        tags = tags_by_domain(m)
        assert set(tags) == {"enforce.test"}, "tag headers: %r" % m.headers("X-MTA-STS")
        expect_fields(tags["enforce.test"], {"result": "policy", "mode": "enforce",
                                             "id": ENF["id"]}, "X-MTA-STS")
        mx = tags["enforce.test"].get("mx")
        assert mx is None or "mx1.enforce.test" in mx, "mx=%r" % mx
        assert m.header("X-MTA-STS-Route") == "enforce", m.headers("X-MTA-STS-Route")
        assert len(env.a.messages()) == na, "enforce mail also reached sink A"
        env.pf.wait_log(r"filter: header X-MTA-STS-Route: enforce", queue_id=r.queue_id)
        note("delivered: " + m.summary())
    run("enforce.test: tagged policy/enforce, routed to the enforce transport over TLS",
        enforce_to_sink_b)

    def other_to_sink_a():
        want = {"testing.test": {"result": "policy", "mode": "testing", "id": TST["id"]},
                "nopolicy.test": {"result": "none"}}
        for d, fields in want.items():
            na, nb = len(env.a.messages()), len(env.b.messages())
            rcpt = "bob@" + d
            r = submit(env, [rcpt], label=d)
            assert r.rcpt[rcpt][0] == 250, r
            assert_queued(r, env)
            state[d] = (r, [rcpt])
            m = env.new_messages(env.a, na)[0]
            assert m.rcpt_to == [rcpt], m.rcpt_to
            tags = tags_by_domain(m)
            assert set(tags) == {d}, "%s: tag headers %r" % (d, m.headers("X-MTA-STS"))
            expect_fields(tags[d], fields, "X-MTA-STS for " + d)
            assert m.header("X-MTA-STS-Route") == "none", m.headers("X-MTA-STS-Route")
            assert len(env.b.messages()) == nb, "%s mail reached the enforce sink" % d
    run("testing.test and nopolicy.test: tagged, relayed normally (route none)",
        other_to_sink_a)

    def testing_and_none_together():
        na = len(env.a.messages())
        rcpts = ["carol@testing.test", "dave@nopolicy.test"]
        r = submit(env, rcpts, label="testing+none")
        for x in rcpts:
            assert r.rcpt[x][0] == 250, "both recipients route 'none', want 250: %r" % r.rcpt
        assert_queued(r, env)
        state["testing+none"] = (r, rcpts)
        m = env.new_messages(env.a, na)[0]
        assert sorted(m.rcpt_to) == sorted(rcpts), m.rcpt_to
        tags = tags_by_domain(m)
        assert set(tags) == {"testing.test", "nopolicy.test"}, \
            "want one tag per recipient domain: %r" % m.headers("X-MTA-STS")
        assert m.header("X-MTA-STS-Route") == "none", m.headers("X-MTA-STS-Route")
    run("one message to testing.test + nopolicy.test: one tag header per domain",
        testing_and_none_together)

    def forged_headers_removed():
        na, nb = len(env.a.messages()), len(env.b.messages())
        forged = ["X-MTA-STS: nopolicy.test; result=policy; mode=enforce; id=forged",
                  "X-MTA-STS-Route: enforce",
                  "x-mta-sts: enforce.test; result=policy; mode=enforce; id=forged2"]
        r = submit(env, ["erin@nopolicy.test"], extra_headers=forged, label="forged")
        assert_queued(r, env)
        state["forged"] = (r, ["erin@nopolicy.test"])
        m = env.new_messages(env.a, na)[0]
        vals = m.headers("X-MTA-STS")
        assert len(vals) == 1 and "forged" not in vals[0], \
            "want only the milter's X-MTA-STS header, got %r" % vals
        d, f = tag_fields(vals[0])
        assert d == "nopolicy.test" and f.get("result") == "none", vals
        assert m.headers("X-MTA-STS-Route") == ["none"], \
            "route headers: %r" % m.headers("X-MTA-STS-Route")
        assert len(env.b.messages()) == nb, "a forged route header reached the enforce sink"
    run("forged X-MTA-STS / X-MTA-STS-Route headers are replaced", forged_headers_removed)

    def mixed_classes():
        # enforce first: the testing.test recipient is the other class.
        nb = len(env.b.messages())
        rcpts = ["frank@enforce.test", "gina@testing.test"]
        r = submit(env, rcpts, label="mixed enforce+testing")
        code, text = r.rcpt["gina@testing.test"]
        assert code == 452 and text.startswith("4.5.3"), \
            "second recipient: got %d %r, want 452 4.5.3" % (code, text)
        assert r.rcpt["frank@enforce.test"][0] == 250, r.rcpt
        assert_queued(r, env)
        state["mixed1"] = (r, ["frank@enforce.test"], ["gina@testing.test"])
        m = env.new_messages(env.b, nb)[0]
        assert m.rcpt_to == ["frank@enforce.test"], m.rcpt_to
        assert set(tags_by_domain(m)) == {"enforce.test"}, m.headers("X-MTA-STS")
        note("RCPT reply for the second recipient: %d %s" % (code, text))
        # and the other way round: testing first, then enforce.
        na = len(env.a.messages())
        rcpts = ["hank@testing.test", "ivy@enforce.test"]
        r = submit(env, rcpts, label="mixed testing+enforce")
        code, text = r.rcpt["ivy@enforce.test"]
        assert code == 452 and text.startswith("4.5.3"), \
            "enforce recipient after testing: got %d %r, want 452 4.5.3" % (code, text)
        assert_queued(r, env)
        state["mixed2"] = (r, ["hank@testing.test"], ["ivy@enforce.test"])
        m = env.new_messages(env.a, na)[0]
        assert m.rcpt_to == ["hank@testing.test"], m.rcpt_to
        assert m.header("X-MTA-STS-Route") == "none"
    run("mixed enforce/other recipients: later class gets 452 4.5.3", mixed_classes)

    def decision_log():
        if not state:
            raise harness.Skip("no messages were accepted by the earlier cases")
        env.milter.wait_decisions(lambda ds: len(ds) >= 1)
        # Let the daemon finish writing the last message's lines.
        time.sleep(0.3)
        ds = env.milter.decisions()
        problems = []
        for label, val in state.items():
            r, accepted = val[0], val[1]
            refused = val[2] if len(val) > 2 else []
            mine = [d for d in ds if d.get("queue_id") == r.queue_id]
            if not env.pf.log_lines(r.queue_id):
                problems.append("%s: queue id %s not in the Postfix log" % (label, r.queue_id))
            # One line per recipient: the accepted ones with the action
            # taken, the refused ones (452 4.5.3) with action "split".
            want = sorted([(x.split("@")[1], "ok") for x in accepted] +
                          [(x.split("@")[1], "split") for x in refused])
            got = sorted((d.get("domain"), "split" if d.get("action") == "split" else "ok")
                         for d in mine)
            if got != want:
                problems.append("%s: queue id %s: decision lines (domain, action) %s, want %s"
                                % (label, r.queue_id, got, want))
            for d in mine:
                missing = [k for k in ("time", "queue_id", "domain", "result", "mode",
                                       "policy_id", "action", "reason") if k not in d]
                if missing:
                    problems.append("%s: line lacks %s: %s" % (label, missing, json.dumps(d)))
                if d.get("domain") == "enforce.test" and \
                        (d.get("mode"), d.get("policy_id")) != ("enforce", ENF["id"]):
                    problems.append("%s: enforce.test line %s" % (label, json.dumps(d)))
                if d.get("domain") == "enforce.test" and d.get("action") != "split" and \
                        d.get("action") != "route-enforce":
                    problems.append("%s: enforce.test action %r, want route-enforce"
                                    % (label, d.get("action")))
        no_qid = [d for d in ds if d.get("queue_id") in (None, "", "-")]
        if no_qid:
            problems.append("%d decision line(s) without a queue id" % len(no_qid))
        note("decision log (%d lines):" % len(ds))
        note("\n".join(json.dumps(d, sort_keys=True) for d in ds))
        assert not problems, "\n".join(problems)
    run("decision log: queue ids as in the Postfix log; each recipient domain, "
        "refused (split) recipients too",
        decision_log)

    def decision_per_recipient():
        # ARCHITECTURE.md: "one JSON object per line, one line per recipient
        # decision" -- also when recipients share a domain.
        na = len(env.a.messages())
        rcpts = ["kim@testing.test", "lou@testing.test", "max@TESTING.test"]
        r = submit(env, rcpts, label="three recipients in one domain")
        assert_queued(r, env)
        env.new_messages(env.a, na)
        time.sleep(0.3)
        mine = [d for d in env.milter.decisions() if d.get("queue_id") == r.queue_id]
        note("\n".join(json.dumps(d, sort_keys=True) for d in mine))
        assert len(mine) == len(rcpts), \
            "%d decision line(s) for %d recipients of testing.test (queue id %s)" % (
                len(mine), len(rcpts), r.queue_id)
    run("decision log: one line per recipient, also for recipients in one domain",
        decision_per_recipient)

    def null_sender():
        # A bounce (MAIL FROM:<>): not looked up, every recipient accepted
        # (no split), delivered as usual; a forged route header is still
        # removed and none is added.  Over a unix socket MAIL gets no reply.
        na, nb = len(env.a.messages()), len(env.b.messages())
        before = len(env.milter.decisions())
        rcpts = ["nina@enforce.test", "olaf@testing.test"]
        r = submit(env, rcpts, sender="", extra_headers=["X-MTA-STS-Route: enforce"],
                   label="null sender")
        assert r.mail[0] == 250, "MAIL FROM:<> got %r" % (r.mail,)
        for x in rcpts:
            assert r.rcpt[x][0] == 250, "null sender: want 250 for each: %r" % r.rcpt
        assert_queued(r, env)
        m = env.new_messages(env.a, na)[0]
        assert m.mail_from == "" and sorted(m.rcpt_to) == sorted(rcpts), \
            (m.mail_from, m.rcpt_to)
        assert m.headers("X-MTA-STS") == [] and m.headers("X-MTA-STS-Route") == [], \
            "bounce: tag %r route %r, want none" % (m.headers("X-MTA-STS"),
                                                     m.headers("X-MTA-STS-Route"))
        assert len(env.b.messages()) == nb, "a bounce reached the enforce sink"
        # The only message in flight: its lines are the ones added since.
        mine = env.milter.wait_decisions(lambda ds: len(ds) >= before + len(rcpts))[before:]
        note("\n".join(json.dumps(d, sort_keys=True) for d in mine))
        got = [(d.get("domain"), d.get("action"), "null sender" in d.get("reason", ""))
               for d in mine]
        assert got == [("enforce.test", "skip", True), ("testing.test", "skip", True)], \
            "decision lines (domain, action, null-sender reason) %r" % got
        state_null["lines"] = (r.queue_id, mine)
    state_null = {}
    run("null sender: recipients skipped and logged, relayed as usual, forged route "
        "header removed", null_sender)

    def null_sender_queue_id():
        if "lines" not in state_null:
            raise harness.Skip("the null-sender message was not delivered")
        qid, lines = state_null["lines"]
        # Skip lines are written at end of message: Postfix
        # (smtpd_delay_open_until_valid_rcpt = yes) has no queue id at the
        # first RCPT, so a line written then would carry our connection id.
        bad = [d.get("queue_id") for d in lines if d.get("queue_id") != qid]
        assert not bad, "skip lines with queue id %r, want %s" % (bad, qid)
    run("null sender: every skip line carries the queue id", null_sender_queue_id)

    def log_dump():
        for label, qid in env.queue_ids:
            note("--- %s (queue id %s)" % (label, qid))
            note("\n".join(env.pf.log_lines(qid)) or "(no log lines)")
        rej = env.pf.log_lines(pattern=r"milter-reject")
        note("--- milter rejects")
        note("\n".join(rej) or "(none)")
        note("--- mtasts-milter log (tail)")
        note(mtautil.tail(env.milter.log, 30))
    run("Postfix log lines of every message (shown above)", log_dump)

    def postmap_socketmap():
        # Postfix's own socketmap client against the daemon's socketmap,
        # exactly as the mtasts-enforce transport's smtp_tls_policy_maps
        # uses it (socketmap:inet:HOST:PORT:postfix).
        if not env.milter.socketmap_answers():
            raise harness.Skip("socketmap port %d does not answer" % env.milter.socketmap_port)
        table = "socketmap:inet:127.0.0.1:%d:postfix" % env.milter.socketmap_port
        got = {}
        for d in ("enforce.test", "testing.test", "nopolicy.test"):
            rc, out = mtautil.run(["/usr/sbin/postmap", "-c", env.pf.etc, "-q", d, table],
                                  timeout=30)
            got[d] = (rc, out.strip())
            note("postmap -q %s %s -> exit %d %r" % (d, table, rc, out.strip()))
        rc, out = got["enforce.test"]
        assert rc == 0 and out.startswith("secure") and "match=mx1.enforce.test" in out, \
            "enforce.test: exit %d %r, want 'secure match=mx1.enforce.test ...'" % (rc, out)
        for d in ("testing.test", "nopolicy.test"):
            rc, out = got[d]
            assert rc == 1 and out == "", "%s: exit %d %r, want not found (exit 1)" % (d, rc, out)
    run("postmap -q through Postfix's socketmap client: enforce.test is secure",
        postmap_socketmap)

    def milter_down_tempfails():
        # Last: stops the daemon.  milter_default_action = tempfail, the
        # setting the sample config recommends.
        t0 = time.monotonic()
        rc = env.milter.stop()
        note("mtasts-milter stopped in %.2f s, exit status %s" % (time.monotonic() - t0, rc))
        assert rc == 0, "mtasts-milter exit status after SIGTERM: %r, want 0\n%s" % (
            rc, env.milter.diagnostics())
        r = submit(env, ["zed@enforce.test"], label="milter down")
        codes = [r.mail[0]] + [c for c, _ in r.rcpt.values()]
        assert any(400 <= c < 500 for c in codes) and r.data is None, \
            "with the milter down want a 4xx and no DATA, got %r" % r
        note("with the daemon stopped: %r" % r)
    run("SIGTERM stops the daemon (exit 0); then Postfix tempfails "
        "(milter_default_action=tempfail)",
        milter_down_tempfails)


def main():
    report = harness.TestReport("postfix + mtasts-milter")
    why = postfix_available()
    if why:
        report.skip("postfix tests", why)
        return report.finish()
    if not harness.have_dnslib():
        report.skip("postfix tests", "python3-dnslib missing (DNS fixture)")
        return report.finish()
    with harness.workdir("mtasts-postfix-test.") as work:
        report.run("plumbing without milter: relayhost, enforce transport, TLS demanded",
                   case_plumbing, work)
        why = MilterDaemon.available()
        if why:
            report.skip("cases with the daemon", why)
        else:
            for unix in (False, True):
                env = Env(os.path.join(work, "milter-unix" if unix else "milter"))
                try:
                    if report.run("start mtasts-milter and postfix" +
                                  (" [unix socket, UserID %s:%s]" % (UNIX_USER, UNIX_GROUP)
                                   if unix else ""), start_milter_env, env, unix):
                        cases_with_milter(report, env, unix)
                    else:
                        note(env.diagnostics())
                finally:
                    env.cleanup()
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
