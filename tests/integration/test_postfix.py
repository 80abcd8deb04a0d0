#!/usr/bin/python3
"""mtasts-milter in a real Postfix set up like a deployment: tagging,
routing, mixed recipients (issue 10).

Everything runs in a private network namespace (tests/mta/netns.py; this
script re-runs itself inside one) through tests/mta/deliverylab.py: DNS on
127.0.0.1:53 is the only resolver, MTA-STS policies are served on :443,
each MX host is an SMTP sink on 127.0.0.N:25 with STARTTLS and a test-CA
certificate (or none), and the daemon listens on the packaged ports.
Postfix has no relayhost: it looks the MX hosts up in DNS.  Its config is
the shipped packaging/postfix files (main.cf.snippet, master.cf.snippet:
the mtasts-enforce transport with the socketmap as smtp_tls_policy_maps,
mtasts_header_checks: FILTER mtasts-enforce: with an empty
default_filter_nexthop, so each recipient keeps its own domain as next
hop), plus what a real server has besides:

  * hosted.test is a virtual_mailbox_domains domain (virtual(8), a
    maildir under the work dir): Postfix delivers it itself;
  * transport_maps sends internal.test (an enforce domain whose public MX
    is mx1.internal.test) to smtp:[gw.lan.test], an internal host without
    STARTTLS.

The world: enforce.test (enforce; MX mx0 preference 5 and mx1 preference
10, the policy allows only mx1, both have valid certificates for their own
names), testing.test (testing), nopolicy.test (no _mta-sts record),
internal.test and lan.test (above), notls.test (enforce, MX without
STARTTLS).  How Postfix routed a message shows in its log (the enforce
transport logs as postfix/mtasts-enforce/smtp, the ordinary one as
postfix/smtp, with relay=MX host and the TLS line of the same process) and
at the sinks: an ordinary delivery to enforce.test goes to mx0, an
enforced one to mx1 over verified TLS.

The plumbing case runs first, without the milter: header_checks applies
the routing rule to a header the test writes itself, and a static TLS
policy table stands in for the socketmap, so DNS, the sinks, the FILTER
with its empty next hop, the enforce transport's TLS demand, virtual
delivery and the transport map are checked without the daemon: it tells a
broken test set-up apart from a broken daemon.

The milter cases then run twice, each with a Postfix of its own: over TCP
(inet:127.0.0.1:8462, the packaged milter_default_action = accept), and
over a unix-domain socket (where the daemon also negotiates MAIL without a
reply and no DATA step) with the daemon dropped to UserID nobody:postfix
and milter_default_action = tempfail (the Postfix default the snippet
names as the alternative), so both behaviours with the daemon stopped are
seen.  Postfix's smtpd runs as user postfix, group postfix, so it gets in
through the socket's group bits (mode 0660) -- the documented set-up with
the primary group instead of "adduser postfix mtasts", and no user or
group to create on the test machine.

Needs root, iproute2, postfix and python3-dnslib; skips (77) otherwise.
MTASTS_KEEP_WORKDIR=1 keeps the work dir.
"""

import email
import email.policy
import grp
import json
import os
import pwd
import re
import stat
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
from deliverylab import DeliveryLab, MX, Sent, lab_available, SOCKETMAP_PORT  # noqa: E402
from milterd import tag_fields, tags_by_domain, expect_fields  # noqa: E402

SENDER = "sender@client.test"
TIMEOUT = 60.0
ENF_ID, TST_ID = "enf20240101", "tst20240101"
UNIX_USER, UNIX_GROUP = "nobody", "postfix"      # UserID of the unix-socket phase
ENFORCE = "mtasts-enforce"                       # the enforce transport (syslog name)
SMTP = "smtp"                                    # the ordinary one
VIRTUAL = "virtual"
MX0, MX1 = "mx0.enforce.test", "mx1.enforce.test"
GW = "gw.lan.test"
INTERNAL_ROUTE = "smtp:[%s]" % GW
VIRTUAL_SERVICE = "virtual   unix  -       n       n       -       -       virtual\n"


def build_lab(work):
    lab = DeliveryLab(os.path.join(work, "lab"), postfix=False)
    lab.add_domain("enforce.test", "enforce", [MX(MX0, "good", pref=5), MX(MX1, "good", pref=10)],
                   policy_mx=[MX1], policy_id=ENF_ID)
    lab.add_domain("testing.test", "testing", [MX("mx1.testing.test")], policy_id=TST_ID)
    lab.add_domain("nopolicy.test", None, [MX("mx1.nopolicy.test")])
    lab.add_domain("internal.test", "enforce", [MX("mx1.internal.test")],
                   policy_id="int20240101")
    lab.add_domain("lan.test", None, [MX(GW, None)])
    lab.add_domain("notls.test", "enforce", [MX("mx1.notls.test", None)],
                   policy_id="ntl20240101")
    return lab


def site_config(lab, name):
    """main.cf settings and master.cf text of a real server beside the
    snippets: the virtual domain hosted.test and the transport map of
    internal.test.  Returns (main, master, maildir of hosted.test)."""
    base = os.path.join(lab.workdir, "vmail-" + name)
    os.makedirs(base, exist_ok=True)
    uid, gid = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    os.chown(base, uid, gid)
    os.chmod(base, 0o755)
    transport = os.path.join(lab.workdir, "transport-" + name)
    with open(transport, "w") as fh:
        fh.write("internal.test %s\n" % INTERNAL_ROUTE)
    os.chmod(transport, 0o644)
    main = {"transport_maps": "texthash:" + transport,
            "virtual_mailbox_domains": "hosted.test",
            "virtual_mailbox_base": base,
            "virtual_mailbox_maps": "static:hosted/",
            "virtual_uid_maps": "static:%d" % uid,
            "virtual_gid_maps": "static:%d" % gid}
    return main, VIRTUAL_SERVICE, os.path.join(base, "hosted")


# ------------------------------------------------------- what Postfix did

_DELIVERY = re.compile(r" postfix/(?:(?P<svc>[\w.-]+)/)?(?P<prog>smtp|virtual)\[(?P<pid>\d+)\]: "
                       r"(?P<qid>[0-9A-Za-z]+): to=<(?P<rcpt>[^>]*)>, relay=(?P<relay>[^\s,]+),"
                       r".* status=(?P<status>\w+)")
_TLS = re.compile(r" postfix/(?:[\w.-]+/)?smtp\[(?P<pid>\d+)\]: (?P<level>\w+) TLS connection "
                  r"established to (?P<host>[^\[\s]+)\[")


class Delivery:
    """One recipient's status=sent line: transport (syslog service name:
    mtasts-enforce, smtp or virtual), MX host, TLS level of the session
    (Verified, Trusted, Untrusted, Anonymous, or None), the line."""

    def __init__(self, transport, host, tls, line):
        self.transport, self.host, self.tls, self.line = transport, host, tls, line

    def __repr__(self):
        return "(%s, %s, TLS %s)" % (self.transport, self.host, self.tls)


def deliveries(pf, qid):
    """{recipient: Delivery} of queue id qid's status=sent lines.  The TLS
    level is that of the last TLS line of the same smtp process to the
    same host before it (no TLS connection reuse: each session logs one)."""
    tls, out = {}, {}
    for line in pf.log_lines():
        t = _TLS.search(line)
        if t:
            tls[t.group("pid")] = (t.group("level"), t.group("host"))
            continue
        d = _DELIVERY.search(line)
        if not d or d.group("qid") != qid or d.group("status") != "sent":
            continue
        host = d.group("relay").split("[", 1)[0]
        level = tls.get(d.group("pid"))
        out[d.group("rcpt").lower()] = Delivery(
            d.group("svc") or d.group("prog"), host,
            level[0] if level and level[1] == host else None, line)
    return out


def expect_delivered(ph, sent, want, timeout=TIMEOUT):
    """Wait until every recipient in want ({rcpt: (transport, host)}) is
    sent, check transport and host against Postfix's log, and that the MX
    sinks got exactly those copies (a virtual delivery: the maildir).
    Returns {rcpt: SinkMessage or maildir bytes}, {rcpt: Delivery}."""
    deadline = time.monotonic() + timeout
    while True:
        got = deliveries(sent.pf, sent.queue_id)
        sink_rcpts = sorted(r.lower() for m in ph.lab.delivered(sent) for r in m.rcpt_to)
        want_sink = sorted(r for r, (t, _) in want.items() if t != VIRTUAL)
        if all(r in got for r in want) and sink_rcpts == want_sink:
            break
        if time.monotonic() > deadline:
            raise AssertionError("%s: want %s; delivered %r, at the sinks %r\n%s" % (
                sent, want, got, sink_rcpts, ph.diagnostics(sent)))
        time.sleep(0.05)
    wrong = {r: got[r] for r, (t, h) in want.items() if (got[r].transport, got[r].host) != (t, h)}
    extra = sorted(set(got) - set(want))
    assert not wrong and not extra, "%s: delivered %r, want %s\n%s" % (
        sent, got, want, "\n".join(ph.lab.log_excerpt(sent)))
    copies = {}
    for m in ph.lab.delivered(sent):
        assert m.meta["sink"] in [h for t, h in want.values()], \
            "%s reached %s: %r" % (sent, m.meta["sink"], m.rcpt_to)
        for r in m.rcpt_to:
            assert want[r.lower()][1] == m.meta["sink"], \
                "%s: %s arrived at %s, want %s" % (sent, r, m.meta["sink"], want[r.lower()][1])
            copies[r.lower()] = m
    for r, (t, _) in want.items():
        if t == VIRTUAL:
            copies[r] = ph.maildir_copy(sent)
    return copies, got


def log_transports(dl):
    return ", ".join("%s via %s to %s (TLS %s)" % (r, d.transport, d.host, d.tls)
                     for r, d in sorted(dl.items()))


# ------------------------------------------------------------ a Postfix

class Phase:
    """One Postfix instance (and, for the milter cases, the daemon it
    calls) in the lab's world."""

    def __init__(self, lab, name, unix=False):
        self.lab, self.name, self.unix = lab, name, unix
        self.pf = None
        self.daemon = None
        self.maildir = None
        self.sent = []                 # (label, Sent), for the log dump
        self.accept_on_down = True     # milter_default_action of this instance

    def start_postfix(self, milter=True, main_extra=None):
        main, master, self.maildir = site_config(self.lab, self.name)
        main.update(main_extra or {})
        t0 = time.monotonic()
        self.pf = self.lab.start_postfix(self.name, milter=milter, main_extra=main,
                                         master_extra=master)
        note("%s started in %.1f s (smtpd port %d)" % (self.name, time.monotonic() - t0,
                                                        self.pf.smtpd_port))

    def send(self, rcpts, label, **kw):
        s = self.lab.send(rcpts, pf=self.pf, label=label, **kw)
        self.sent.append((label, s))
        return s

    def submit(self, rcpts, label, sender=SENDER, extra_headers=()):
        """SMTP without the lab's "must be queued" check: SubmitResult."""
        msg = mtautil.make_message(rcpts, subject=label, extra_headers=extra_headers,
                                   mail_from=sender)
        return self.pf.submit(sender, rcpts, msg)

    def maildir_copy(self, sent, timeout=TIMEOUT):
        """The copy of sent in hosted.test's maildir (bytes)."""
        deadline = time.monotonic() + timeout
        while True:
            for sub in ("new", "cur"):
                d = os.path.join(self.maildir, sub)
                for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
                    with open(os.path.join(d, n), "rb") as fh:
                        data = fh.read()
                    if sent.msgid.encode() in data:
                        return data
            if time.monotonic() > deadline:
                raise AssertionError("%s not in %s\n%s" % (sent, self.maildir,
                                                           self.diagnostics(sent)))
            time.sleep(0.05)

    def diagnostics(self, sent=None):
        out = [self.lab.diagnostics(sent, pf=self.pf)]
        if self.daemon is not None and self.daemon is not self.lab.daemon:
            out.append(self.daemon.diagnostics(30))
        return "\n".join(out)

    def stop(self):
        if self.pf:
            self.pf.stop()
        if self.daemon:
            self.daemon.stop()


def header_values(data, name):
    """Values of header name in raw message bytes (a maildir copy)."""
    m = email.message_from_bytes(data, policy=email.policy.compat32)
    return [" ".join(str(v).split()) for v in m.get_all(name) or []]


def rcpt_code(s, rcpt):
    return s.result.rcpt[rcpt]


# ---------------------------------------------------------------- plumbing

def case_plumbing(lab):
    """No milter: header_checks applies the routing rule to a header the
    message carries, and a static TLS policy table (the socketmap's
    answers for enforce.test and notls.test) stands in for the daemon, so
    MX lookups, the sinks, the FILTER with its empty next hop, the enforce
    transport and its TLS demand, virtual delivery and the transport map
    are checked on their own."""
    ph = Phase(lab, "postfix-plumbing")
    try:
        rules = os.path.join(lab.workdir, "plumbing_header_checks")
        with open(rules, "w") as fh:
            fh.write("/^X-Test-Route: enforce$/ FILTER mtasts-enforce:\n")
        table = os.path.join(lab.workdir, "plumbing_tls_policy")
        with open(table, "w") as fh:
            fh.write("enforce.test secure match=%s servername=hostname\n"
                     "notls.test secure match=mx1.notls.test servername=hostname\n" % MX1)
        for f in (rules, table):
            os.chmod(f, 0o644)
        ph.start_postfix(milter=False, main_extra={
            "header_checks": "regexp:" + rules,
            "mtasts_tls_policy_maps": "texthash:" + table})
        route = ["X-Test-Route: enforce"]
        s_plain = ph.send(["u@nopolicy.test"], "plumbing: nopolicy.test")
        s_mx0 = ph.send(["u@enforce.test"], "plumbing: enforce.test, ordinary transport")
        s_enf = ph.send(["v@enforce.test"], "plumbing: enforce.test, enforce transport",
                        extra_headers=route)
        s_both = ph.send(["w@enforce.test", "w@testing.test"],
                         "plumbing: enforce.test + testing.test, enforce transport",
                         extra_headers=route)
        s_notls = ph.send(["x@notls.test"], "plumbing: notls.test, enforce transport",
                          extra_headers=route)
        s_virt = ph.send(["y@hosted.test"], "plumbing: hosted.test (virtual)")
        s_int = ph.send(["z@internal.test"], "plumbing: internal.test (transport map)")

        _, dl = expect_delivered(ph, s_plain, {"u@nopolicy.test": (SMTP, "mx1.nopolicy.test")})
        assert dl["u@nopolicy.test"].tls == "Trusted", log_transports(dl)
        _, dl = expect_delivered(ph, s_mx0, {"u@enforce.test": (SMTP, MX0)})
        assert dl["u@enforce.test"].tls == "Trusted", log_transports(dl)
        c, dl = expect_delivered(ph, s_enf, {"v@enforce.test": (ENFORCE, MX1)})
        assert dl["v@enforce.test"].tls == "Verified", log_transports(dl)
        assert c["v@enforce.test"].tls, "mx1.enforce.test got the message without TLS"
        assert ph.pf.log_lines(pattern=r"server certificate verification failed for %s\["
                               % re.escape(MX0)), \
            "no log line: the enforce transport refused %s (not in the policy)" % MX0
        _, dl = expect_delivered(ph, s_both, {"w@enforce.test": (ENFORCE, MX1),
                                              "w@testing.test": (ENFORCE, "mx1.testing.test")})
        assert dl["w@enforce.test"].tls == "Verified" and \
            dl["w@testing.test"].tls == "Trusted", log_transports(dl)
        c, dl = expect_delivered(ph, s_virt, {"y@hosted.test": (VIRTUAL, "virtual")})
        _, dl2 = expect_delivered(ph, s_int, {"z@internal.test": (SMTP, GW)})
        assert dl2["z@internal.test"].tls is None, log_transports(dl2)
        # The plaintext-only MX of an enforce route: Postfix must defer,
        # never send.  With 1 s backoffs qmgr may already have put it back
        # in incoming ("skipped, still being delivered"): queued is what counts.
        ph.pf.wait_log(r"TLS is required, but was not offered by host mx1\.notls\.test\[",
                       queue_id=s_notls.queue_id, timeout=TIMEOUT)
        assert not lab.delivered(s_notls), "enforce transport delivered in cleartext"
        with lab.sink("mx1.notls.test")._lock:
            cmds = [l for l in lab.sink("mx1.notls.test").transcript
                    if re.search(r"<<< (MAIL|RCPT|DATA)", l, re.I)]
        assert not cmds, "mx1.notls.test received envelope commands:\n" + "\n".join(cmds)
        q = ph.pf.queue_files()
        assert s_notls.queue_id in q.get("deferred", []) + q.get("active", []) + \
            q.get("incoming", []), q
        qids = {s.queue_id for _, s in ph.sent}
        mine = [d for d in lab.daemon.decisions() if d.get("queue_id") in qids]
        assert not mine, "the daemon saw plumbing mail: %r" % mine
        for label, s in ph.sent:
            note("--- %s (%s)" % (label, s.queue_id))
            note("\n".join(lab.log_excerpt(s)))
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, ph.diagnostics())) from None
    finally:
        ph.stop()


# -------------------------------------------------------------- with milter

def start_milter_phase(ph):
    """TCP: the lab's daemon on the packaged ports.  unix: the daemon is
    restarted on WORK/daemon-unix/run/milter.sock (run: owned by
    UNIX_USER:UNIX_GROUP, mode 0750, like a production socket directory)
    and drops to UserID UNIX_USER:UNIX_GROUP."""
    lab = ph.lab
    main = {}
    if ph.unix:
        if lab.daemon.running():
            lab.daemon.stop()
        top = os.path.join(lab.workdir, "daemon-unix")
        run = os.path.join(top, "run")
        os.makedirs(run)
        os.chown(run, pwd.getpwnam(UNIX_USER).pw_uid, grp.getgrnam(UNIX_GROUP).gr_gid)
        os.chmod(run, 0o750)
        mtautil.make_traversable(top)              # smtpd must reach run/
        t0 = time.monotonic()
        lab.start_daemon("daemon-unix", milter_socket="unix:" + os.path.join(run, "milter.sock"),
                         settings={"UserID": "%s:%s" % (UNIX_USER, UNIX_GROUP),
                                   "PidFile": os.path.join(run, "mtasts-milter.pid")})
        note("mtasts-milter listening on %s after %.2f s" % (lab.daemon.milter_path,
                                                              time.monotonic() - t0))
        main["milter_default_action"] = "tempfail"
        ph.accept_on_down = False
    ph.daemon = lab.daemon
    ph.start_postfix(milter=True, main_extra=main)
    cf = ph.pf.main_cf()
    note("Postfix milter settings: " + ", ".join(
        "%s = %s" % (k, cf[k]) for k in ("smtpd_milters", "non_smtpd_milters",
                                         "milter_default_action", "milter_header_checks",
                                         "relayhost", "default_filter_nexthop") if k in cf))
    assert not cf.get("relayhost") and not cf.get("default_filter_nexthop"), cf


def cases_with_milter(report, ph):
    state = {}                         # label -> (Sent, [(domain, action)] expected)
    daemon = ph.daemon

    def run(name, fn):
        return report.run(name + (" [unix socket]" if ph.unix else ""), fn)

    def tags_of(m, want_domains):
        tags = tags_by_domain(m)
        assert set(tags) == set(want_domains), "tag headers %r, want one for each of %s" % (
            m.headers("X-MTA-STS"), sorted(want_domains))
        return tags

    def socket_owner_mode():
        uid, gid = pwd.getpwnam(UNIX_USER).pw_uid, grp.getgrnam(UNIX_GROUP).gr_gid
        st = os.stat(daemon.milter_path)
        got = (stat.S_ISSOCK(st.st_mode), oct(st.st_mode & 0o7777), st.st_uid, st.st_gid)
        note("%s: socket=%s mode=%s uid=%d gid=%d" % ((daemon.milter_path,) + got))
        assert got == (True, oct(0o660), uid, gid), \
            "socket (is socket, mode, uid, gid) %r, want %r" % (got, (True, oct(0o660), uid, gid))
        with open("/proc/%d/status" % daemon.popen.pid) as fh:
            ids = {l.split(":")[0]: l.split(":")[1].split() for l in fh
                   if l.startswith(("Uid:", "Gid:", "Groups:"))}
        note("daemon process: %r" % ids)
        assert ids == {"Uid": [str(uid)] * 4, "Gid": [str(gid)] * 4, "Groups": [str(gid)]}, \
            "daemon ids %r, want uid %d, gid %d, groups [%d]" % (ids, uid, gid, gid)
    if ph.unix:
        run("socket is mode 0660, owned by UserID %s:%s; the daemon runs as them"
            % (UNIX_USER, UNIX_GROUP), socket_owner_mode)

    def enforce_routed():
        t0 = time.monotonic()
        s = ph.send(["alice@enforce.test"], "enforce")
        note("SMTP transaction (cold policy lookup) took %.2f s" % (time.monotonic() - t0))
        assert rcpt_code(s, "alice@enforce.test")[0] == 250, s.result
        state["enforce"] = (s, [("enforce.test", "route-enforce")])
        c, dl = expect_delivered(ph, s, {"alice@enforce.test": (ENFORCE, MX1)})
        m = c["alice@enforce.test"]
        assert dl["alice@enforce.test"].tls == "Verified", log_transports(dl)
        assert m.tls and m.tls["version"].startswith("TLS"), "%s got no TLS: %r" % (MX1, m.tls)
        tags = tags_of(m, ["enforce.test"])
        expect_fields(tags["enforce.test"], {"result": "policy", "mode": "enforce",
                                             "id": ENF_ID}, "X-MTA-STS")
        mx = tags["enforce.test"].get("mx")
        assert mx is None or MX1 in mx, "mx=%r" % mx
        assert m.header("X-MTA-STS-Route") == "enforce", m.headers("X-MTA-STS-Route")
        ph.pf.wait_log(r"filter: header X-MTA-STS-Route: enforce", queue_id=s.queue_id)
        assert ph.pf.log_lines(pattern=r"server certificate verification failed for %s\["
                               % re.escape(MX0)), \
            "no log line: the enforce transport refused %s (not in the policy)" % MX0
        note(log_transports(dl))
        note("delivered: " + m.summary())
    run("enforce.test: tagged policy/enforce, routed through mtasts-enforce to %s "
        "(the MX the policy allows) over verified TLS" % MX1, enforce_routed)

    def rcpt_spellings():
        # RFC 5321 spellings of enforce.test recipients that Postfix routes
        # to enforce.test (tok822 drops the comment and the space); the
        # milter must decide for enforce.test too (issue 15).
        spelled = {"<carol@(c)enforce.test>": "carol@enforce.test",
                   "<dave@enforce.test >": "dave@enforce.test",
                   '<"e f"@enforce.test>': '"e f"@enforce.test'}
        rcpts = list(spelled.values())
        msg = mtautil.make_message(rcpts, subject="rcpt spellings", mail_from=SENDER)
        msgid = re.search(rb"^Message-ID: (\S+)\r$", msg, re.M | re.I).group(1).decode()
        r = mtautil.smtp_submit(ph.pf.smtpd_port, SENDER, list(spelled), msg, raw_rcpt=True)
        assert r.queue_id and all(c[0] == 250 for c in r.rcpt.values()), r
        s = Sent(rcpts, msgid, r.queue_id, ph.pf, "rcpt spellings", result=r)
        ph.sent.append(("rcpt spellings", s))
        state["rcpt spellings"] = (s, [("enforce.test", "route-enforce")] * len(rcpts))
        c, dl = expect_delivered(ph, s, {x: (ENFORCE, MX1) for x in rcpts})
        m = c[rcpts[0]]
        tags = tags_of(m, ["enforce.test"])
        expect_fields(tags["enforce.test"], {"result": "policy", "mode": "enforce"}, "X-MTA-STS")
        assert m.header("X-MTA-STS-Route") == "enforce", m.headers("X-MTA-STS-Route")
        note(log_transports(dl))
    run("RCPT TO with a comment, a trailing space, a quoted local part: looked up as "
        "enforce.test, routed through mtasts-enforce to %s" % MX1, rcpt_spellings)

    def others_ordinary():
        want = {"testing.test": ({"result": "policy", "mode": "testing", "id": TST_ID},
                                 "mx1.testing.test"),
                "nopolicy.test": ({"result": "none"}, "mx1.nopolicy.test")}
        for d, (fields, host) in want.items():
            rcpt = "bob@" + d
            s = ph.send([rcpt], d)
            assert rcpt_code(s, rcpt)[0] == 250, s.result
            state[d] = (s, [(d, "accept")])
            c, dl = expect_delivered(ph, s, {rcpt: (SMTP, host)})
            m = c[rcpt]
            tags = tags_of(m, [d])
            expect_fields(tags[d], fields, "X-MTA-STS for " + d)
            assert m.header("X-MTA-STS-Route") == "none", m.headers("X-MTA-STS-Route")
            assert dl[rcpt].tls == "Trusted", "%s: %s" % (d, log_transports(dl))
            assert not ph.pf.log_lines(s.queue_id, r"filter: header"), \
                "\n".join(ph.pf.log_lines(s.queue_id))
            note(log_transports(dl))
    run("testing.test and nopolicy.test: tagged, route none, delivered by the ordinary "
        "smtp transport to their MX", others_ordinary)

    def testing_and_none_together():
        rcpts = ["carol@testing.test", "dave@nopolicy.test"]
        s = ph.send(rcpts, "testing+none")
        for x in rcpts:
            assert rcpt_code(s, x)[0] == 250, "want 250 for both: %r" % s.result.rcpt
        state["testing+none"] = (s, [("testing.test", "accept"), ("nopolicy.test", "accept")])
        c, dl = expect_delivered(ph, s, {"carol@testing.test": (SMTP, "mx1.testing.test"),
                                         "dave@nopolicy.test": (SMTP, "mx1.nopolicy.test")})
        for m in c.values():
            tags_of(m, ["testing.test", "nopolicy.test"])
            assert m.header("X-MTA-STS-Route") == "none", m.headers("X-MTA-STS-Route")
        note(log_transports(dl))
    run("one message to testing.test + nopolicy.test: one tag header per domain, each "
        "recipient at its own MX", testing_and_none_together)

    def forged_headers_removed():
        forged = ["X-MTA-STS: nopolicy.test; result=policy; mode=enforce; id=forged",
                  "X-MTA-STS-Route: enforce",
                  "x-mta-sts: enforce.test; result=policy; mode=enforce; id=forged2"]
        s = ph.send(["erin@nopolicy.test"], "forged", extra_headers=forged)
        state["forged"] = (s, [("nopolicy.test", "accept")])
        c, dl = expect_delivered(ph, s, {"erin@nopolicy.test": (SMTP, "mx1.nopolicy.test")})
        m = c["erin@nopolicy.test"]
        vals = m.headers("X-MTA-STS")
        assert len(vals) == 1 and "forged" not in vals[0], \
            "want only the milter's X-MTA-STS header, got %r" % vals
        d, f = tag_fields(vals[0])
        assert d == "nopolicy.test" and f.get("result") == "none", vals
        assert m.headers("X-MTA-STS-Route") == ["none"], \
            "route headers: %r" % m.headers("X-MTA-STS-Route")
    run("forged X-MTA-STS / X-MTA-STS-Route headers are replaced; the forged route is "
        "not acted on", forged_headers_removed)

    def tls_required_no():
        s = ph.send(["tina@enforce.test"], "TLS-Required: No", extra_headers=["TLS-Required: No"])
        state["tls-required-no"] = (s, [("enforce.test", "accept")])
        c, dl = expect_delivered(ph, s, {"tina@enforce.test": (SMTP, MX0)})
        m = c["tina@enforce.test"]
        expect_fields(tags_of(m, ["enforce.test"])["enforce.test"],
                      {"result": "policy", "mode": "enforce"}, "X-MTA-STS")
        assert m.headers("X-MTA-STS-Route") == ["none"], m.headers("X-MTA-STS-Route")
        assert m.headers("TLS-Required") == ["No"], m.headers("TLS-Required")
        note(log_transports(dl))
    run("TLS-Required: No to enforce.test: tagged, not routed (ordinary smtp to the "
        "preferred MX %s)" % MX0, tls_required_no)

    def mixed_outbound():
        for label, rcpts in (("mixed enforce+testing+none",
                              ["frank@enforce.test", "gina@testing.test", "hugo@nopolicy.test"]),
                             ("mixed testing+enforce", ["ivy@testing.test", "jack@enforce.test"])):
            s = ph.send(rcpts, label)
            for x in rcpts:
                assert rcpt_code(s, x)[0] == 250, "%s: want 250 for each: %r" % (
                    label, s.result.rcpt)
            doms = [x.split("@")[1] for x in rcpts]
            state[label] = (s, [(d, "route-enforce" if d == "enforce.test" else "accept")
                                for d in doms])
            hosts = {"enforce.test": MX1, "testing.test": "mx1.testing.test",
                     "nopolicy.test": "mx1.nopolicy.test"}
            c, dl = expect_delivered(ph, s, {x: (ENFORCE, hosts[x.split("@")[1]])
                                             for x in rcpts})
            for x, m in c.items():
                tags_of(m, doms)
                assert m.header("X-MTA-STS-Route") == "enforce", (x, m.headers("X-MTA-STS-Route"))
            for x, d in dl.items():
                want = "Verified" if x.endswith("@enforce.test") else "Trusted"
                assert d.tls == want, "%s: TLS %s, want %s: %s" % (x, d.tls, want,
                                                                    log_transports(dl))
            note("%s: %s" % (label, log_transports(dl)))
    run("enforce + testing/no-policy recipients in one transaction: no 452, all through "
        "mtasts-enforce, each at its own domain's MX (in either order)", mixed_outbound)

    def mixed_keep():
        # Enforce first, then a recipient that transport_maps sends to an
        # internal host: the later one is refused, the client retries it.
        rcpts = ["kim@enforce.test", "lea@internal.test"]
        s = ph.send(rcpts, "mixed enforce+transport map")
        code, text = rcpt_code(s, "lea@internal.test")
        assert code == 452 and text.startswith("4.5.3"), \
            "second recipient: got %d %r, want 452 4.5.3" % (code, text)
        assert rcpt_code(s, "kim@enforce.test")[0] == 250, s.result.rcpt
        note("RCPT reply for lea@internal.test: %d %s" % (code, text))
        state["mixed enforce+transport map"] = (s, [("enforce.test", "route-enforce"),
                                                    ("internal.test", "split")])
        c, dl = expect_delivered(ph, s, {"kim@enforce.test": (ENFORCE, MX1)})
        assert dl["kim@enforce.test"].tls == "Verified", log_transports(dl)
        tags_of(c["kim@enforce.test"], ["enforce.test"])
        s2 = ph.send(["lea@internal.test"], "retry internal.test alone")
        state["retry internal.test alone"] = (s2, [("internal.test", "skip")])
        c, dl = expect_delivered(ph, s2, {"lea@internal.test": (SMTP, GW)})
        m = c["lea@internal.test"]
        assert dl["lea@internal.test"].tls is None and m.tls is None, log_transports(dl)
        assert m.headers("X-MTA-STS") == [] and m.headers("X-MTA-STS-Route") == [], \
            "skipped recipient: tag %r route %r, want none" % (
                m.headers("X-MTA-STS"), m.headers("X-MTA-STS-Route"))
        note("retried alone: " + log_transports(dl))

        # The virtual domain first: the enforce recipient is refused.
        rcpts = ["mo@hosted.test", "ned@enforce.test"]
        s = ph.send(rcpts, "mixed virtual+enforce")
        code, text = rcpt_code(s, "ned@enforce.test")
        assert code == 452 and text.startswith("4.5.3"), \
            "enforce recipient after a virtual one: got %d %r, want 452 4.5.3" % (code, text)
        assert rcpt_code(s, "mo@hosted.test")[0] == 250, s.result.rcpt
        note("RCPT reply for ned@enforce.test: %d %s" % (code, text))
        state["mixed virtual+enforce"] = (s, [("hosted.test", "skip"),
                                              ("enforce.test", "split")])
        c, dl = expect_delivered(ph, s, {"mo@hosted.test": (VIRTUAL, "virtual")})
        data = c["mo@hosted.test"]
        assert header_values(data, "X-MTA-STS") == [] and \
            header_values(data, "X-MTA-STS-Route") == [], \
            "virtual delivery carries tag %r route %r, want none" % (
                header_values(data, "X-MTA-STS"), header_values(data, "X-MTA-STS-Route"))
        s2 = ph.send(["ned@enforce.test"], "retry enforce.test alone")
        state["retry enforce.test alone"] = (s2, [("enforce.test", "route-enforce")])
        c, dl = expect_delivered(ph, s2, {"ned@enforce.test": (ENFORCE, MX1)})
        assert dl["ned@enforce.test"].tls == "Verified", log_transports(dl)
    run("enforce + a recipient Postfix routes itself (transport map, virtual): the later "
        "gets 452 4.5.3, the first is delivered; each retried alone goes its own way",
        mixed_keep)

    def decision_log():
        if not state:
            raise harness.Skip("no messages were accepted by the earlier cases")
        daemon.wait_decisions(lambda ds: len(ds) >= 1)
        # Let the daemon finish writing the last message's lines.
        time.sleep(0.3)
        ds = daemon.decisions()
        problems = []
        for label, (s, want) in state.items():
            mine = [d for d in ds if d.get("queue_id") == s.queue_id]
            if not s.pf.log_lines(s.queue_id):
                problems.append("%s: queue id %s not in the Postfix log" % (label, s.queue_id))
            # One line per recipient: the accepted ones with the action
            # taken, the refused ones (452 4.5.3) with action "split".
            got = sorted((d.get("domain"), d.get("action")) for d in mine)
            if got != sorted(want):
                problems.append("%s: queue id %s: decision lines (domain, action) %s, want %s"
                                % (label, s.queue_id, got, sorted(want)))
            for d in mine:
                missing = [k for k in ("time", "queue_id", "domain", "result", "mode",
                                       "policy_id", "action", "reason") if k not in d]
                if missing:
                    problems.append("%s: line lacks %s: %s" % (label, missing, json.dumps(d)))
                if d.get("domain") == "enforce.test" and \
                        (d.get("mode"), d.get("policy_id")) != ("enforce", ENF_ID):
                    problems.append("%s: enforce.test line %s" % (label, json.dumps(d)))
                if d.get("domain") == "hosted.test" and \
                        "transport virtual is not outbound SMTP" not in d.get("reason", ""):
                    problems.append("%s: hosted.test reason %r" % (label, d.get("reason")))
                if d.get("domain") == "internal.test" and \
                        "[%s]" % GW not in d.get("reason", ""):
                    problems.append("%s: internal.test reason %r does not name the next hop"
                                    % (label, d.get("reason")))
                if label == "tls-required-no" and "TLS-Required" not in d.get("reason", ""):
                    problems.append("%s: reason %r" % (label, d.get("reason")))
        no_qid = [d for d in ds if d.get("queue_id") in (None, "", "-")]
        if no_qid:
            problems.append("%d decision line(s) without a queue id" % len(no_qid))
        note("decision log (%d lines):" % len(ds))
        note("\n".join(json.dumps(d, sort_keys=True) for d in ds))
        assert not problems, "\n".join(problems)
    run("decision log: queue ids as in the Postfix log; each recipient's action "
        "(route-enforce, accept, skip, split) and reason", decision_log)

    def decision_per_recipient():
        # ARCHITECTURE.md: "one JSON object per line, one line per recipient
        # decision" -- also when recipients share a domain.
        rcpts = ["kim@testing.test", "lou@testing.test", "max@TESTING.test"]
        s = ph.send(rcpts, "three recipients in one domain")
        expect_delivered(ph, s, {x.lower(): (SMTP, "mx1.testing.test") for x in rcpts})
        time.sleep(0.3)
        mine = [d for d in daemon.decisions() if d.get("queue_id") == s.queue_id]
        note("\n".join(json.dumps(d, sort_keys=True) for d in mine))
        assert len(mine) == len(rcpts), \
            "%d decision line(s) for %d recipients of testing.test (queue id %s)" % (
                len(mine), len(rcpts), s.queue_id)
    run("decision log: one line per recipient, also for recipients in one domain",
        decision_per_recipient)

    state_null = {}

    def null_sender():
        # A bounce (MAIL FROM:<>): not looked up, every recipient accepted
        # (no split), delivered as usual; a forged route header is still
        # removed and none is added.  Over a unix socket MAIL gets no reply.
        before = len(daemon.decisions())
        rcpts = ["nina@enforce.test", "olaf@testing.test"]
        s = ph.send(rcpts, "null sender", sender="", extra_headers=["X-MTA-STS-Route: enforce"])
        assert s.result.mail[0] == 250, "MAIL FROM:<> got %r" % (s.result.mail,)
        for x in rcpts:
            assert rcpt_code(s, x)[0] == 250, "null sender: want 250 for each: %r" % s.result.rcpt
        c, dl = expect_delivered(ph, s, {"nina@enforce.test": (SMTP, MX0),
                                         "olaf@testing.test": (SMTP, "mx1.testing.test")})
        for m in c.values():
            assert m.mail_from == "", m.mail_from
            assert m.headers("X-MTA-STS") == [] and m.headers("X-MTA-STS-Route") == [], \
                "bounce: tag %r route %r, want none" % (m.headers("X-MTA-STS"),
                                                         m.headers("X-MTA-STS-Route"))
        note(log_transports(dl))
        # The only message in flight: its lines are the ones added since.
        mine = daemon.wait_decisions(lambda ds: len(ds) >= before + len(rcpts))[before:]
        note("\n".join(json.dumps(d, sort_keys=True) for d in mine))
        got = [(d.get("domain"), d.get("action"), "null sender" in d.get("reason", ""))
               for d in mine]
        assert got == [("enforce.test", "skip", True), ("testing.test", "skip", True)], \
            "decision lines (domain, action, null-sender reason) %r" % got
        state_null["lines"] = (s.queue_id, mine)
    run("null sender: recipients skipped and logged, delivered by the ordinary transport, "
        "forged route header removed", null_sender)

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
        for label, s in ph.sent:
            note("--- %s (queue id %s)" % (label, s.queue_id))
            note("\n".join(ph.lab.log_excerpt(s)) or "(no log lines)")
        rej = ph.pf.log_lines(pattern=r"milter-reject")
        note("--- milter rejects")
        note("\n".join(rej) or "(none)")
        note("--- mtasts-milter log (tail)")
        note(mtautil.tail(daemon.log, 30))
    run("Postfix log lines of every message (shown above)", log_dump)

    def postmap_socketmap():
        # Postfix's own socketmap client against the daemon's socketmap,
        # exactly as the mtasts-enforce transport's smtp_tls_policy_maps
        # uses it (the packaged mtasts_tls_policy_maps).
        if not daemon.socketmap_answers():
            raise harness.Skip("socketmap port %d does not answer" % daemon.socketmap_port)
        table = ph.pf.main_cf().get("mtasts_tls_policy_maps")
        assert table == "socketmap:inet:127.0.0.1:%d:postfix" % SOCKETMAP_PORT, table
        got = {}
        for d in ("enforce.test", "testing.test", "nopolicy.test"):
            rc, out = mtautil.run(["/usr/sbin/postmap", "-c", ph.pf.etc, "-q", d, table],
                                  timeout=30)
            got[d] = (rc, out.strip())
            note("postmap -q %s %s -> exit %d %r" % (d, table, rc, out.strip()))
        rc, out = got["enforce.test"]
        assert rc == 0 and out == "secure match=%s servername=hostname" % MX1, \
            "enforce.test: exit %d %r, want 'secure match=%s servername=hostname'" % (
                rc, out, MX1)
        for d in ("testing.test", "nopolicy.test"):
            rc, out = got[d]
            assert rc == 1 and out == "", "%s: exit %d %r, want not found (exit 1)" % (d, rc, out)
    run("postmap -q through Postfix's socketmap client: enforce.test is secure",
        postmap_socketmap)

    def milter_down():
        # Last: stops the daemon.
        t0 = time.monotonic()
        rc = daemon.stop()
        note("mtasts-milter stopped in %.2f s, exit status %s" % (time.monotonic() - t0, rc))
        assert rc == 0, "mtasts-milter exit status after SIGTERM: %r, want 0\n%s" % (
            rc, daemon.diagnostics())
        if ph.accept_on_down:
            # milter_default_action = accept (the packaged setting): mail
            # flows untagged through the ordinary transport.
            s = ph.send(["zed@enforce.test"], "milter down")
            c, dl = expect_delivered(ph, s, {"zed@enforce.test": (SMTP, MX0)})
            m = c["zed@enforce.test"]
            assert m.headers("X-MTA-STS") == [] and m.headers("X-MTA-STS-Route") == [], \
                m.summary()
            note("with the daemon stopped: %r; %s" % (s.result, log_transports(dl)))
        else:
            r = ph.submit(["zed@enforce.test"], "milter down")
            codes = [r.mail[0]] + [c for c, _ in r.rcpt.values()]
            assert any(400 <= c < 500 for c in codes) and r.data is None, \
                "with the milter down want a 4xx and no DATA, got %r" % r
            note("with the daemon stopped: %r" % r)
    run("SIGTERM stops the daemon (exit 0); then Postfix %s"
        % ("accepts and delivers untagged by the ordinary transport "
           "(milter_default_action=accept, packaged)" if ph.accept_on_down else
           "tempfails (milter_default_action=tempfail)"), milter_down)


def main():
    why = lab_available()
    if why:
        return harness.skipped("postfix + mtasts-milter", "postfix tests", why)
    rc = netns.run_inside("test_postfix")
    if rc is not None:
        return rc
    report = harness.TestReport("postfix + mtasts-milter (netns %s)" % netns.inside())
    with harness.workdir("mtasts-postfix-test.") as work:
        lab = build_lab(work)
        try:
            def start():
                lab.start()
                note("lab started in %.1f s: %s" % (lab.timings["start"], ", ".join(
                    "%s %.1f s" % (k, v) for k, v in lab.timings.items() if k != "start")))
                note("MX hosts: " + ", ".join("%s=%s(%s, pref %d)" % (
                    m.host, m.ip, m.cert or "no TLS", m.pref)
                    for d in lab.domains.values() for m in d.mx))
            if not report.run("start DNS :53, HTTPS :443, MX sinks :25, mtasts-milter", start):
                note(lab.diagnostics())
                return report.finish()
            report.run("plumbing without milter: MX delivery, FILTER mtasts-enforce: with the "
                       "recipient's own next hop, TLS demanded, virtual, transport map",
                       case_plumbing, lab)
            for unix in (False, True):
                ph = Phase(lab, "postfix-unix" if unix else "postfix-tcp", unix)
                try:
                    if report.run("start a Postfix with the milter" +
                                  (" [unix socket, UserID %s:%s]" % (UNIX_USER, UNIX_GROUP)
                                   if unix else " [TCP]"), start_milter_phase, ph):
                        cases_with_milter(report, ph)
                    else:
                        note(ph.diagnostics())
                finally:
                    ph.stop()
        finally:
            lab.stop()
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
