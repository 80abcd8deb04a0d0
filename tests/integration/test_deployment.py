#!/usr/bin/python3
"""End to end: real Postfix set up the way admins set up real mail servers,
with mtasts-milter from the shipped packaging/postfix snippets (issue 10).

The milter reads {rcpt_mailer} and {rcpt_host} at RCPT and routes only
recipients that Postfix delivers by SMTP to their own domain's MX: mail
for an MTA-STS enforce domain that this server hosts, or sends through a
smart host or a transport map, must stay on Postfix's own route (decision
"skip", reason naming the transport or next hop), and an enforce recipient
cannot share a message with such a recipient (452 4.5.3, "split").

Everything runs in a private network namespace through
tests/mta/deliverylab.py (DNS on 127.0.0.1:53, policies on :443, one SMTP
sink per MX host on 127.0.0.N:25 with STARTTLS and a test-CA certificate;
every enforce domain here also has a public MX, so mail that leaves by
mistake is seen there).  Four Postfix instances, each main.cf.snippet,
master.cf.snippet and mtasts_header_checks verbatim plus its own shape:

  * "mailserver": virtual_mailbox_domains = hosted.example (virtual(8),
    maildir under the work dir), mydestination = local.example (local(8):
    an alias to a file and a user's mailbox file), transport_maps sending
    internal.example to an internal host smtp:[127.0.0.1]:2526, and a
    submission smtpd on 127.0.0.1:587 (no SASL, permit_mynetworks);
  * "lmtp": virtual_transport = lmtp:inet:127.0.0.1:24, an LMTP sink
    (tests/mta/lmtpsink.py) standing in for Dovecot;
  * "relayhost": relayhost = [127.0.0.1]:2525, a smart host sink;
  * "filter": content_filter = scan:[127.0.0.1]:10024, the scan transport
    as content-filter.snippet documents it, and its re-injection smtpd
    127.0.0.1:10025 verbatim; the milter only there.  The filter is
    tests/mta/filterd.py: it adds "X-Scanned-By: test-filter (scan N)" and
    passes MAIL/RCPT/DATA on to :10025 one by one, so per-recipient 4xx
    replies come back to Postfix unchanged.

Each case checks Postfix's log (delivery agent, relay, status), where the
mail landed (mailbox, LMTP sink, smart host, internal host, MX sinks) and
the daemon's decision log.  Nothing may bounce.

Needs root, iproute2, postfix and python3-dnslib; skips (77) otherwise.
MTASTS_KEEP_WORKDIR=1 keeps the work dir.
"""

import mailbox
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
from deliverylab import (DeliveryLab, MX, Sent, lab_available, packaged_postfix_main,  # noqa: E402
                         packaged_enforce_service)
from postfix import PostfixInstance  # noqa: E402
from smtpsink import SmtpSink  # noqa: E402
from lmtpsink import LmtpSink  # noqa: E402
from filterd import ContentFilter, HEADER as SCAN_HEADER  # noqa: E402

TIMEOUT = 40.0
NOBODY = 65534                     # virtual(8) mailbox owner, default_privs

SMARTHOST_PORT = 2525              # relayhost = [127.0.0.1]:2525
INTERNAL_PORT = 2526               # transport map: smtp:[127.0.0.1]:2526
LMTP_PORT = 24                     # lmtp:inet:127.0.0.1:24 (Dovecot's usual)
FILTER_PORT = 10024                # content_filter = scan:[127.0.0.1]:10024
REINJECT_PORT = 10025              # content-filter.snippet
SUBMISSION_PORT = 587

ENF = "enforce.example"            # enforce, delivered to its own MX
TST = "testing.example"
PLAIN = "plain.example"            # no MTA-STS policy
HOSTED = "hosted.example"          # enforce; virtual_mailbox_domains of "mailserver"
LOCAL = "local.example"            # enforce; mydestination of "mailserver"
STORE = "mailstore.example"        # enforce; virtual_mailbox_domains of "lmtp" (LMTP)
INTERNAL = "internal.example"      # enforce; transport map to the internal host
SCAN_MX = "scan-mx.example"        # enforce; preferred MX not in the policy
SCAN_CERT = "scan-cert.example"    # enforce; preferred MX with a wrong-name certificate

VERIFIED = "Verified TLS connection established"


def build_lab(work):
    lab = DeliveryLab(os.path.join(work, "lab"), postfix=False)
    lab.add_domain(ENF, "enforce", [MX("mx1." + ENF)])
    lab.add_domain(TST, "testing", [MX("mx1." + TST)])
    lab.add_domain(PLAIN, None, [MX("mx1." + PLAIN)])
    for d in (HOSTED, LOCAL, STORE, INTERNAL):
        lab.add_domain(d, "enforce", [MX("mx." + d)])
    lab.add_domain(SCAN_MX, "enforce", [MX("mx0." + SCAN_MX, "good", 10),
                                        MX("mx1." + SCAN_MX, "good", 20)],
                   policy_mx=["mx1." + SCAN_MX])
    lab.add_domain(SCAN_CERT, "enforce", [MX("mx0." + SCAN_CERT, "wrongname", 10),
                                          MX("mx1." + SCAN_CERT, "good", 20)])
    return lab


# --------------------------------------------------------------- Postfix

def snippet(name):
    with open(os.path.join(harness.srcdir(), "packaging", "postfix", name)) as fh:
        text = fh.read()
    return text if text.endswith("\n") else text + "\n"


def documented_scan_service():
    """The scan transport as content-filter.snippet documents it (its
    commented example), uncommented."""
    lines, on = [], False
    for l in snippet("content-filter.snippet").splitlines():
        m = re.match(r"^#\s+(scan\s+unix\s.*)$", l)
        if m:
            on = True
            lines.append(m.group(1))
            continue
        if on:
            m = re.match(r"^#\s+(-o\s.*)$", l)
            if not m:
                break
            lines.append("  " + m.group(1))
    if not lines:
        raise AssertionError("content-filter.snippet documents no scan transport")
    return "\n".join(lines) + "\n"


def postmap(pf, kind, path, text):
    """Write a lookup table source and build it (postmap, or postalias)."""
    with open(path, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o644)
    tool = "/usr/sbin/postalias" if kind == "alias" else "/usr/sbin/postmap"
    rc, out = mtautil.run([tool, "-c", pf.etc, "hash:" + path], timeout=60)
    assert rc == 0, "%s %s: %s" % (tool, path, out)
    return "hash:" + path


def start_instance(lab, name, main_extra, master_extra="", milter=True, tables=None):
    """One more Postfix of the lab, shaped like deliverylab.start_postfix()
    (main.cf.snippet, master.cf.snippet and mtasts_header_checks verbatim,
    smtp_tls_security_level = may with the test CA, no relayhost), plus
    main_extra / master_extra.  milter=False: no milter in smtpd_milters
    and non_smtpd_milters (the content filter shape).  tables(pf): builds
    lookup tables once the config directory exists."""
    main = packaged_postfix_main()
    main.pop("milter_header_checks", None)     # the instance's copy of the same file
    milters = main.pop("smtpd_milters", "")
    nsmilters = main.pop("non_smtpd_milters", "")
    if not milter:
        milters = nsmilters = ""
    main["non_smtpd_milters"] = nsmilters
    main.update({"smtp_tls_security_level": "may", "smtp_tls_CAfile": lab.ca_copy})
    main.update(main_extra)
    pf = PostfixInstance(
        os.path.join(lab.workdir, name), relay_port=None, milter=milters,
        milter_default_action=main.pop("milter_default_action", "tempfail"),
        header_checks_file=os.path.join(harness.srcdir(), "packaging", "postfix",
                                        "mtasts_header_checks"),
        enforce_service=packaged_enforce_service(), main=main, master_extra=master_extra)
    pf.lab_shape = name
    lab.instances.append(pf)           # lab.stop() stops it
    pf.write_config()
    if tables:
        tables(pf)
    pf.start()
    return pf


VIRTUAL_SERVICE = "virtual   unix  -       n       n       -       -       virtual\n"

# Debian's commented submission entry, without SASL and TLS (no server
# certificate here): clients of mynetworks may send.
SUBMISSION_SERVICE = """\
127.0.0.1:%d inet n       -       n       -       -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=none
  -o smtpd_sasl_auth_enable=no
  -o smtpd_reject_unlisted_recipient=no
  -o smtpd_client_restrictions=permit_mynetworks,reject
  -o smtpd_recipient_restrictions=
  -o smtpd_relay_restrictions=permit_mynetworks,reject
  -o milter_macro_daemon_name=ORIGINATING
""" % SUBMISSION_PORT


class World:
    """Everything the cases share."""

    def __init__(self, lab, work):
        self.lab, self.work = lab, work
        self.store = os.path.join(work, "mailstore")
        self.vmail = os.path.join(self.store, "vmail")
        self.files = os.path.join(self.store, "files")
        self.spool = os.path.join(self.store, "spool-mail")
        self.extra_sinks = []
        self.filter = None
        self.mailserver = self.lmtp = self.relay = self.cf = None
        self.filter_sent = []          # messages sent through the filter instance
        self.split_sent = []           # ... of which some recipient was deferred (452)

    def start(self):
        lab = self.lab
        lab.start()
        os.makedirs(self.vmail, exist_ok=True)
        os.chown(self.vmail, NOBODY, NOBODY)
        for d in (self.files, self.spool):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o1777)
        mtautil.make_traversable(self.store)
        os.chmod(self.store, 0o755)

        self.smarthost = self.sink(SmtpSink, "smarthost", SMARTHOST_PORT)
        self.internal = self.sink(SmtpSink, "internal", INTERNAL_PORT)
        self.lmtp_sink = self.sink(LmtpSink, "lmtp", LMTP_PORT)
        self.filter = ContentFilter(FILTER_PORT, REINJECT_PORT)
        self.filter.start()

        self.alias_file = os.path.join(self.files, "u.mbox")
        a = os.path.join(self.store, "aliases")

        def mailserver_tables(pf):
            postmap(pf, "alias", a, "postmaster: nobody\nu: %s\n" % self.alias_file)
            postmap(pf, "map", os.path.join(self.store, "vmailbox"),
                    "u@%s %s/u/\n" % (HOSTED, HOSTED))
            postmap(pf, "map", os.path.join(self.store, "transport"),
                    "%s smtp:[127.0.0.1]:%d\n" % (INTERNAL, INTERNAL_PORT))
        self.mailserver = start_instance(lab, "mailserver", {
            "mydestination": "$myhostname, localhost, " + LOCAL,
            "alias_maps": "hash:" + a,
            "alias_database": "hash:" + a,
            "local_recipient_maps": "proxy:unix:passwd.byname $alias_maps",
            "mail_spool_directory": self.spool,
            "virtual_mailbox_domains": HOSTED,
            "virtual_transport": "virtual",
            "virtual_mailbox_maps": "hash:" + os.path.join(self.store, "vmailbox"),
            "virtual_mailbox_base": self.vmail,
            "virtual_uid_maps": "static:%d" % NOBODY,
            "virtual_gid_maps": "static:%d" % NOBODY,
            "transport_maps": "hash:" + os.path.join(self.store, "transport"),
        }, master_extra=VIRTUAL_SERVICE + SUBMISSION_SERVICE, tables=mailserver_tables)

        lmap = os.path.join(self.store, "lmtp-vmailbox")
        self.lmtp = start_instance(lab, "lmtp", {
            "virtual_mailbox_domains": STORE,
            "virtual_mailbox_maps": "hash:" + lmap,
            "virtual_transport": "lmtp:inet:127.0.0.1:%d" % LMTP_PORT,
        }, tables=lambda pf: postmap(pf, "map", lmap, "u@%s OK\n" % STORE))

        self.relay = start_instance(lab, "relayhost", {
            "relayhost": "[127.0.0.1]:%d" % SMARTHOST_PORT})

        self.scan_service = documented_scan_service()
        cmap = os.path.join(self.store, "cf-transport")
        self.cf = start_instance(lab, "filter", {
            "content_filter": "scan:[127.0.0.1]:%d" % FILTER_PORT,
            "transport_maps": "hash:" + cmap,
        }, master_extra=self.scan_service + snippet("content-filter.snippet"), milter=False,
            tables=lambda pf: postmap(pf, "map", cmap, "%s smtp:[127.0.0.1]:%d\n"
                                      % (INTERNAL, INTERNAL_PORT)))
        mtautil.wait_port(REINJECT_PORT, 20, what="re-injection smtpd 127.0.0.1:%d"
                          % REINJECT_PORT)
        mtautil.wait_port(SUBMISSION_PORT, 20, what="submission smtpd 127.0.0.1:%d"
                          % SUBMISSION_PORT)

    def sink(self, cls, name, port):
        s = cls(os.path.join(self.work, "sinks", name), port=port, host="127.0.0.1",
                name=name, hostname="%s.internal.test" % name)
        s.start()
        self.extra_sinks.append(s)
        return s

    def stop(self):
        if self.filter:
            self.filter.stop()
        self.lab.stop()
        for s in self.extra_sinks:
            s.stop()


# --------------------------------------------------------------- helpers

def submit(pf, port, rcpts, label, subject=None):
    """SMTP to another smtpd of pf (port); returns Sent (queue_id None if
    nothing was accepted)."""
    msg = mtautil.make_message(rcpts, subject=subject or label)
    msgid = re.search(rb"^Message-ID: (\S+)\r$", msg, re.M | re.I).group(1).decode()
    r = mtautil.smtp_submit(port, "sender@client.test", rcpts, msg)
    return Sent(rcpts, msgid, r.queue_id, pf, label, result=r)


def send(w, pf, rcpts, label):
    s = w.lab.send(rcpts, pf=pf, label=label)
    if pf is w.cf:
        w.filter_sent.append(s)
    return s


def diag(w, s, extra=()):
    out = [w.lab.diagnostics(s)]
    out += [x.describe(tail=15) for x in extra]
    return "\n".join(out)


LINE_RE = re.compile(r" (postfix(?:/[\w.-]+)*)/([\w.-]+)\[(\d+)\]: ([0-9A-Za-z]+): (.*)$")


def delivery_lines(pf, qid, rcpt=None):
    """Postfix's delivery status lines of qid (for rcpt): dicts with
    service (syslog name), program, pid, to, relay, status, text, line."""
    out = []
    for l in pf.log_lines(qid, r"status="):
        m = LINE_RE.search(l)
        if not m:
            continue
        rest = m.group(5)
        to = re.search(r"\bto=<([^>]*)>", rest)
        if rcpt is not None and (not to or to.group(1).lower() != rcpt.lower()):
            continue
        relay = re.search(r"\brelay=([^,]+)", rest)
        st = re.search(r"\bstatus=(\w+)(.*)$", rest)
        out.append({"service": m.group(1), "program": m.group(2), "pid": m.group(3),
                    "to": to.group(1) if to else None,
                    "relay": relay.group(1) if relay else None,
                    "status": st.group(1) if st else None,
                    "text": st.group(2).strip() if st else "", "line": l})
    return out


def wait_sent(w, s, rcpt, timeout=TIMEOUT, pf=None, qid=None):
    """Wait for Postfix's status=sent line of rcpt; returns its dict.
    A deferral does not end the wait, a bounce does."""
    pf = pf or s.pf
    qid = qid or s.queue_id
    deadline = time.monotonic() + timeout
    while True:
        lines = delivery_lines(pf, qid, rcpt)
        sent = [d for d in lines if d["status"] == "sent"]
        if sent:
            return sent[0]
        bounced = [d for d in lines if d["status"] == "bounced"]
        if bounced or time.monotonic() > deadline:
            raise AssertionError("%s -> %s: %s\n%s" % (
                qid, rcpt, bounced[0]["line"] if bounced else
                "no status=sent after %.0f s" % timeout, diag(w, s)))
        time.sleep(0.1)


def tls_line(pf, d):
    """The TLS line that the delivery process of d logged before it (same
    pid), or None (no TLS)."""
    lines = pf.log_lines()
    try:
        i = lines.index(d["line"])
    except ValueError:
        return None
    tag = "[%s]: " % d["pid"]
    for l in reversed(lines[:i]):
        if tag in l and "TLS connection established" in l:
            return l
    return None


def at_sink(sink, s, rcpt=None):
    """The messages carrying s's Message-ID that sink received (for rcpt)."""
    return [m for m in sink.messages()
            if m.msg.get("Message-ID", "").strip() == s.msgid and
            (rcpt is None or rcpt in m.rcpt_to)]


def wait_at_sink(w, sink, s, rcpt=None, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        got = at_sink(sink, s, rcpt)
        if got:
            return got[0]
        if time.monotonic() > deadline:
            raise AssertionError("%s not at %s after %.0f s\n%s" % (
                s, sink.name, timeout, diag(w, s, [sink])))
        time.sleep(0.1)


def nowhere_else(w, s, but=()):
    """s reached no sink of the lab or of the test but those in but."""
    sinks = list(w.lab.sinks.values()) + w.extra_sinks
    wrong = [x.name for x in sinks if x not in but and at_sink(x, s)]
    assert not wrong, "%s also reached %s\n%s" % (s, wrong, diag(w, s))


def untouched(sink):
    """No envelope command ever reached sink (no mail left for it)."""
    with sink._lock:
        cmds = [l for l in sink.transcript if re.search(r"<<< (MAIL|RCPT|DATA)", l, re.I)]
    assert not cmds, "%s received envelope commands:\n%s" % (sink.name, "\n".join(cmds))


def decisions(w, qid, n=None, timeout=15.0):
    """The decision log lines of qid as {domain: line}, waiting for n
    lines (one per recipient: recipients of one domain share a decision)."""
    want = n or 1
    ds = w.lab.daemon.wait_decisions(
        lambda ds: len([d for d in ds if d.get("queue_id") == qid]) >= want, timeout)
    mine = [d for d in ds if d.get("queue_id") == qid]
    out = {}
    for d in mine:
        o = out.setdefault(d["domain"], d)
        assert (o["action"], o["reason"]) == (d["action"], d["reason"]), \
            "recipients of %s decided differently: %r" % (d["domain"], mine)
    if n is not None:
        assert len(mine) == n, "%s: %d decision lines, want %d: %r" % (qid, len(mine), n, mine)
    return out


def expect_skip(d, *needles):
    assert d["action"] == "skip" and d["result"] == "skipped", "not skipped: %r" % d
    for n in needles:
        assert n in d["reason"], "reason lacks %r: %r" % (n, d)


def no_sts_headers(msg, what):
    """No X-MTA-STS tag and no X-MTA-STS-Route of the milter on msg."""
    tags = msg.get_all("X-MTA-STS") or []
    route = msg.get_all("X-MTA-STS-Route") or []
    assert not tags and not route, "%s carries X-MTA-STS %r / X-MTA-STS-Route %r" % (
        what, tags, route)


def header_values(msg, name):
    return [" ".join(str(v).split()) for v in (msg.get_all(name) or [])]


def no_enforce_lines(pf, qid):
    bad = pf.log_lines(qid, r"postfix/mtasts-enforce/")
    assert not bad, "routed to mtasts-enforce:\n" + "\n".join(bad)


def no_bounces(pf):
    bad = pf.log_lines(pattern=r"status=bounced|: sender non-delivery notification")
    assert not bad, "%s bounced:\n%s" % (pf.lab_shape, "\n".join(bad))


def maildir_message(path, msgid, timeout=TIMEOUT):
    """The message with msgid in the maildir at path (waits)."""
    deadline = time.monotonic() + timeout
    while True:
        if os.path.isdir(os.path.join(path, "new")):
            for _, m in mailbox.Maildir(path, factory=None, create=False).items():
                if (m.get("Message-ID") or "").strip() == msgid:
                    return m
        if time.monotonic() > deadline:
            raise AssertionError("%s not in maildir %s after %.0f s" % (msgid, path, timeout))
        time.sleep(0.1)


def mbox_message(path, msgid, timeout=TIMEOUT):
    """The message with msgid in the mbox file at path (waits)."""
    deadline = time.monotonic() + timeout
    while True:
        if os.path.exists(path):
            box = mailbox.mbox(path, create=False)
            try:
                for m in box:
                    if (m.get("Message-ID") or "").strip() == msgid:
                        return m
            finally:
                box.close()
        if time.monotonic() > deadline:
            raise AssertionError("%s not in mbox %s after %.0f s" % (msgid, path, timeout))
        time.sleep(0.1)


def show(s, lines):
    note("Postfix log (%s, %s):" % (s.label, s.queue_id))
    note("\n".join(lines))


# ----------------------------------------------------------------- cases

def case_virtual(w):
    lab, pf = w.lab, w.mailserver
    rcpt = "u@" + HOSTED
    s = send(w, pf, rcpt, "virtual " + HOSTED)
    d = wait_sent(w, s, rcpt)
    assert d["program"] == "virtual" and d["relay"] == "virtual", d["line"]
    m = maildir_message(os.path.join(w.vmail, HOSTED, "u"), s.msgid)
    no_sts_headers(m, "the mailbox copy")
    no_enforce_lines(pf, s.queue_id)
    nowhere_else(w, s)
    untouched(lab.sink("mx." + HOSTED))
    ds = decisions(w, s.queue_id, 1)
    expect_skip(ds[HOSTED], "transport virtual is not outbound SMTP")
    show(s, lab.log_excerpt(s))
    note("decision: %s: %s" % (ds[HOSTED]["action"], ds[HOSTED]["reason"]))


def case_local(w):
    lab, pf = w.lab, w.mailserver
    s = send(w, pf, ["u@" + LOCAL, "nobody@" + LOCAL], "local " + LOCAL)
    assert all(c == 250 for c, _ in s.result.rcpt.values()), s.result
    d1 = wait_sent(w, s, "u@" + LOCAL)
    d2 = wait_sent(w, s, "nobody@" + LOCAL)
    for d, where in ((d1, "delivered to file"), (d2, "delivered to mailbox")):
        assert d["program"] == "local" and d["relay"] == "local" and where in d["text"], \
            d["line"]
    for path, what in ((w.alias_file, "the alias's file"),
                       (os.path.join(w.spool, "nobody"), "nobody's mailbox")):
        no_sts_headers(mbox_message(path, s.msgid), what)
    no_enforce_lines(pf, s.queue_id)
    nowhere_else(w, s)
    untouched(lab.sink("mx." + LOCAL))
    ds = decisions(w, s.queue_id, 2)
    expect_skip(ds[LOCAL], "transport local is not outbound SMTP")
    show(s, lab.log_excerpt(s))
    note("decision: %s: %s" % (ds[LOCAL]["action"], ds[LOCAL]["reason"]))


def case_lmtp(w):
    lab, pf = w.lab, w.lmtp
    rcpt = "u@" + STORE
    s = send(w, pf, rcpt, "lmtp " + STORE)
    d = wait_sent(w, s, rcpt)
    assert d["program"] == "lmtp" and d["relay"].startswith("127.0.0.1[127.0.0.1]:%d"
                                                            % LMTP_PORT), d["line"]
    m = wait_at_sink(w, w.lmtp_sink, s, rcpt)
    assert m.rcpt_to == [rcpt], m.rcpt_to
    assert m.helo, "no LHLO seen"
    no_sts_headers(m.msg, "the LMTP copy")
    no_enforce_lines(pf, s.queue_id)
    nowhere_else(w, s, but=[w.lmtp_sink])
    untouched(lab.sink("mx." + STORE))
    ds = decisions(w, s.queue_id, 1)
    expect_skip(ds[STORE], "transport lmtp is not outbound SMTP")
    show(s, lab.log_excerpt(s))
    note("decision: %s: %s" % (ds[STORE]["action"], ds[STORE]["reason"]))


def case_relayhost(w):
    lab, pf = w.lab, w.relay
    hop = "[127.0.0.1]:%d" % SMARTHOST_PORT
    one = send(w, pf, "r1@" + ENF, "relayhost " + ENF)
    both = send(w, pf, ["r2@" + ENF, "r2@" + TST], "relayhost %s+%s" % (ENF, TST))
    assert all(c == 250 for c, _ in both.result.rcpt.values()), \
        "all recipients go to the smart host, none may get a 4xx: %r" % both.result
    for s in (one, both):
        for rcpt in s.rcpts:
            d = wait_sent(w, s, rcpt)
            assert d["service"] == "postfix" and d["program"] == "smtp" and \
                d["relay"] == "127.0.0.1[127.0.0.1]:%d" % SMARTHOST_PORT, d["line"]
        m = wait_at_sink(w, w.smarthost, s)
        assert sorted(m.rcpt_to) == sorted(s.rcpts), m.rcpt_to
        no_sts_headers(m.msg, "the smart host's copy")
        no_enforce_lines(pf, s.queue_id)
        nowhere_else(w, s, but=[w.smarthost])
    ds = decisions(w, one.queue_id, 1)
    expect_skip(ds[ENF], "next hop " + hop, "not the domain's MX")
    ds2 = decisions(w, both.queue_id, 2)
    for dom in (ENF, TST):
        expect_skip(ds2[dom], "next hop " + hop)
    show(one, lab.log_excerpt(one))
    note("decision: %s: %s" % (ds[ENF]["action"], ds[ENF]["reason"]))


def case_transport_map(w):
    lab, pf = w.lab, w.mailserver
    rcpt = "t@" + INTERNAL
    s = send(w, pf, rcpt, "transport map " + INTERNAL)
    d = wait_sent(w, s, rcpt)
    assert d["service"] == "postfix" and d["program"] == "smtp" and \
        d["relay"] == "127.0.0.1[127.0.0.1]:%d" % INTERNAL_PORT, d["line"]
    m = wait_at_sink(w, w.internal, s, rcpt)
    no_sts_headers(m.msg, "the internal host's copy")
    no_enforce_lines(pf, s.queue_id)
    nowhere_else(w, s, but=[w.internal])
    ds = decisions(w, s.queue_id, 1)
    expect_skip(ds[INTERNAL], "next hop [127.0.0.1]:%d" % INTERNAL_PORT)
    show(s, lab.log_excerpt(s))
    note("decision: %s: %s" % (ds[INTERNAL]["action"], ds[INTERNAL]["reason"]))


def check_enforce_delivery(w, s, rcpt, mx_host, pf=None, qid=None):
    """rcpt of s left through mtasts-enforce over verified TLS to mx_host."""
    pf = pf or s.pf
    d = wait_sent(w, s, rcpt, pf=pf, qid=qid)
    assert d["service"] == "postfix/mtasts-enforce" and d["program"] == "smtp" and \
        d["relay"].startswith(mx_host + "["), d["line"]
    t = tls_line(pf, d)
    assert t and VERIFIED in t and (" to %s[" % mx_host) in t, \
        "delivery without verified TLS to %s: %r\n%s" % (mx_host, t, d["line"])
    m = wait_at_sink(w, w.lab.sink(mx_host), s, rcpt)
    assert m.tls and m.tls["version"].startswith("TLS"), "no TLS at %s" % mx_host
    assert header_values(m.msg, "X-MTA-STS-Route") == ["enforce"], m.summary()
    return d, m


def case_mixed_split(w):
    lab, pf = w.lab, w.mailserver
    u, v = "u@" + ENF, "v@" + INTERNAL
    s = send(w, pf, [u, v], "mixed %s+%s" % (ENF, INTERNAL))
    r = s.result
    note("SMTP client saw: RCPT %s -> %r; RCPT %s -> %r" % (u, r.rcpt[u], v, r.rcpt[v]))
    assert r.rcpt[u][0] == 250, r
    assert r.rcpt[v][0] == 452 and r.rcpt[v][1].startswith("4.5.3"), \
        "RCPT %s: %r, want 452 4.5.3" % (v, r.rcpt[v])
    check_enforce_delivery(w, s, u, "mx1." + ENF)
    assert not delivery_lines(pf, s.queue_id, v), "refused recipient in the queue:\n%s" % (
        "\n".join(d["line"] for d in delivery_lines(pf, s.queue_id, v)))
    rej = pf.log_lines(pattern=r"milter-reject: RCPT from .*452 4\.5\.3 .*to=<%s>"
                       % re.escape(v))
    assert rej, "no milter-reject line for %s\n%s" % (v, diag(w, s))
    nowhere_else(w, s, but=[lab.sink("mx1." + ENF)])
    ds = decisions(w, s.queue_id, 2)
    assert ds[ENF]["action"] == "route-enforce", ds
    assert ds[INTERNAL]["action"] == "split" and "452 4.5.3" in ds[INTERNAL]["reason"] and \
        "[127.0.0.1]:%d" % INTERNAL_PORT in ds[INTERNAL]["reason"], ds
    no_bounces(pf)
    show(s, lab.log_excerpt(s))
    note("decisions: " + "; ".join("%s %s" % (k, x["action"]) for k, x in ds.items()))


def case_mixed_retry(w):
    lab, pf = w.lab, w.mailserver
    v = "v@" + INTERNAL               # refused in case_mixed_split
    s = send(w, pf, v, "retry " + v)
    assert s.result.rcpt[v][0] == 250, s.result
    d = wait_sent(w, s, v)
    assert d["program"] == "smtp" and d["service"] == "postfix" and \
        d["relay"] == "127.0.0.1[127.0.0.1]:%d" % INTERNAL_PORT, d["line"]
    wait_at_sink(w, w.internal, s, v)
    nowhere_else(w, s, but=[w.internal])
    untouched(lab.sink("mx." + INTERNAL))
    ds = decisions(w, s.queue_id, 1)
    expect_skip(ds[INTERNAL], "next hop [127.0.0.1]:%d" % INTERNAL_PORT)
    no_bounces(pf)
    show(s, lab.log_excerpt(s))


def case_mixed_reverse(w):
    lab, pf = w.lab, w.mailserver
    v, u = "v2@" + INTERNAL, "u2@" + ENF
    s = send(w, pf, [v, u], "mixed %s+%s" % (INTERNAL, ENF))
    r = s.result
    note("SMTP client saw: RCPT %s -> %r; RCPT %s -> %r" % (v, r.rcpt[v], u, r.rcpt[u]))
    assert r.rcpt[v][0] == 250, r
    assert r.rcpt[u][0] == 452 and r.rcpt[u][1].startswith("4.5.3"), \
        "RCPT %s: %r, want 452 4.5.3" % (u, r.rcpt[u])
    wait_sent(w, s, v)
    wait_at_sink(w, w.internal, s, v)
    ds = decisions(w, s.queue_id, 2)
    assert ds[ENF]["action"] == "split" and ds[INTERNAL]["action"] == "skip", ds
    again = send(w, pf, u, "retry " + u)
    check_enforce_delivery(w, again, u, "mx1." + ENF)
    ds = decisions(w, again.queue_id, 1)
    assert ds[ENF]["action"] == "route-enforce", ds
    for x in (s, again):
        nowhere_else(w, x, but=[w.internal, lab.sink("mx1." + ENF)])
    no_bounces(pf)
    show(s, lab.log_excerpt(s))


def case_submission(w):
    lab, pf = w.lab, w.mailserver
    rcpts = ["a@" + ENF, "b@" + PLAIN, "c@" + TST]
    s = submit(pf, SUBMISSION_PORT, rcpts, "submission %s+%s+%s" % (ENF, PLAIN, TST))
    note("SMTP client saw: %r" % s.result)
    assert all(s.result.rcpt[x][0] == 250 for x in rcpts), \
        "a recipient of the submission was refused: %r" % s.result
    assert s.result.data and s.result.data[0] == 250 and s.queue_id, s.result
    smtpd = pf.log_lines(s.queue_id, r"postfix/submission/smtpd\[")
    assert smtpd, "not received by the submission smtpd"
    check_enforce_delivery(w, s, rcpts[0], "mx1." + ENF)
    for rcpt, dom in ((rcpts[1], PLAIN), (rcpts[2], TST)):
        d = wait_sent(w, s, rcpt)
        mx_host = "mx1." + dom
        assert d["service"] == "postfix/mtasts-enforce" and d["relay"].startswith(mx_host + "["), \
            d["line"]
        t = tls_line(pf, d)
        assert t and VERIFIED not in t, "%s: %r (ordinary TLS wanted)" % (dom, t)
        m = wait_at_sink(w, lab.sink(mx_host), s, rcpt)
        assert m.rcpt_to == [rcpt], m.rcpt_to
    nowhere_else(w, s, but=[lab.sink("mx1." + d) for d in (ENF, PLAIN, TST)])
    ds = decisions(w, s.queue_id, 3)
    want = {ENF: "route-enforce", PLAIN: "accept", TST: "accept"}
    assert {k: x["action"] for k, x in ds.items()} == want, ds
    no_bounces(pf)
    show(s, pf.log_lines(s.queue_id) + [tls_line(pf, d) or "(no TLS line)"
                                        for d in delivery_lines(pf, s.queue_id)])


# -------------------------------------------------------- content filter

def follow_scan(w, s, rcpt, timeout=TIMEOUT):
    """The scan delivery of rcpt (to the filter) and the queue id the
    re-injection smtpd gave it; returns (line dict, new queue id)."""
    d = wait_sent(w, s, rcpt, timeout=timeout)
    assert d["program"] == "smtp" and d["relay"] == "127.0.0.1[127.0.0.1]:%d" % FILTER_PORT, \
        "not handed to the content filter: %s" % d["line"]
    m = re.search(r"queued as ([0-9A-Za-z]+)", d["text"])
    assert m, d["line"]
    return d, m.group(1)


def scanned_once(w, s, m, rcpt):
    vals = header_values(m.msg, SCAN_HEADER)
    assert len(vals) == 1 and vals[0].startswith("test-filter (scan "), \
        "%s: %s headers %r, want one" % (rcpt, SCAN_HEADER, vals)
    scans = [x for x in w.filter.scans_of(s.msgid) if rcpt in x.rcpts]
    assert len(scans) == 1, "%s scanned %d times: %r" % (rcpt, len(scans), scans)
    assert vals[0] == "test-filter (scan %d)" % scans[0].seq, (vals, scans)
    return scans[0]


def case_filter_enforce(w, dom, bad_mx, why):
    lab, pf = w.lab, w.cf
    rcpt = "f@" + dom
    s = send(w, pf, rcpt, "filter " + dom)
    d0, qid2 = follow_scan(w, s, rcpt)
    d, m = check_enforce_delivery(w, s, rcpt, "mx1." + dom, qid=qid2)
    scan = scanned_once(w, s, m, rcpt)
    assert scan.queue_id == qid2, (scan, qid2)
    untouched(lab.sink(bad_mx))
    nowhere_else(w, s, but=[lab.sink("mx1." + dom)])
    fail = pf.log_lines(pattern=r"(certificate verification failed|not verified).*%s\["
                        % re.escape(bad_mx))
    assert fail, "no log line of %s being refused (%s)" % (bad_mx, why)
    assert not lab.decisions(s), "the receiving smtpd ran the milter: %r" % lab.decisions(s)
    ds = decisions(w, qid2, 1)
    assert ds[dom]["action"] == "route-enforce", ds
    show(s, pf.log_lines(s.queue_id) + pf.log_lines(qid2) + fail[:2])


def case_filter_ordinary(w):
    lab, pf = w.lab, w.cf
    for dom in (TST, PLAIN):
        rcpt = "o@" + dom
        s = send(w, pf, rcpt, "filter " + dom)
        _, qid2 = follow_scan(w, s, rcpt)
        d = wait_sent(w, s, rcpt, qid=qid2)
        assert d["service"] == "postfix" and d["program"] == "smtp" and \
            d["relay"].startswith("mx1.%s[" % dom), "not delivered as usual: %s" % d["line"]
        m = wait_at_sink(w, lab.sink("mx1." + dom), s, rcpt)
        scanned_once(w, s, m, rcpt)
        assert header_values(m.msg, "X-MTA-STS-Route") == ["none"], m.summary()
        nowhere_else(w, s, but=[lab.sink("mx1." + dom)])
        assert not lab.decisions(s), "the receiving smtpd ran the milter"
        ds = decisions(w, qid2, 1)
        assert ds[dom]["action"] == "accept", ds
        show(s, pf.log_lines(s.queue_id) + pf.log_lines(qid2))


def case_filter_split(w):
    lab, pf = w.lab, w.cf
    u, v = "fu@" + ENF, "fv@" + INTERNAL
    s = send(w, pf, [u, v], "filter %s+%s" % (ENF, INTERNAL))
    w.split_sent.append(s)
    assert all(c == 250 for c, _ in s.result.rcpt.values()), \
        "the receiving smtpd has no milter; it must take both: %r" % s.result
    deferred = pf.wait_log(r"status=deferred .*452 4\.5\.3", queue_id=s.queue_id,
                           timeout=TIMEOUT)
    note("first pass: " + deferred)
    dests = {u: lab.sink("mx1." + ENF), v: w.internal}
    for rcpt in (u, v):
        _, qid2 = follow_scan(w, s, rcpt, timeout=TIMEOUT * 2)
        if rcpt == u:
            _, m = check_enforce_delivery(w, s, u, "mx1." + ENF, qid=qid2)
        else:
            d = wait_sent(w, s, v, qid=qid2)
            assert d["relay"] == "127.0.0.1[127.0.0.1]:%d" % INTERNAL_PORT, d["line"]
            m = wait_at_sink(w, w.internal, s, v)
        assert m.rcpt_to == [rcpt], m.rcpt_to
        scanned_once(w, s, m, rcpt)
    scans = w.filter.scans_of(s.msgid)
    assert len(scans) == 2 and not set(scans[0].rcpts) & set(scans[1].rcpts), scans
    refused = [r for x in scans for r, (c, t) in x.refused.items()]
    assert len(refused) == 1 and all(x.refused[r][0] == 452 for x in scans for r in x.refused), \
        scans
    nowhere_else(w, s, but=list(dests.values()))
    no_bounces(pf)
    show(s, pf.log_lines(s.queue_id))


def case_filter_count(w):
    pf = w.cf
    singles = [s for s in w.filter_sent if s not in w.split_sent]
    for s in singles:
        n = len(w.filter.scans_of(s.msgid))
        assert n == 1, "%s scanned %d times" % (s, n)
    want = len(singles) + 2 * len(w.split_sent)
    assert w.filter.count == want, "filter passed on %d messages, want %d\n%s" % (
        w.filter.count, want, w.filter.describe())
    rx = r"postfix/smtpd\[\d+\]: [0-9A-Za-z]+: client=.*\[127\.0\.0\.1\]"
    note("filter: %d messages sent, %d split, %d scans" % (
        len(w.filter_sent), len(w.split_sent), w.filter.count))
    assert pf.log_lines(pattern=rx), "no re-injection smtpd line"
    no_bounces(pf)


def case_postfix_check(w):
    """postfix check of every instance: no warning about the snippets'
    parameters."""
    for pf in w.lab.instances:
        out = getattr(pf, "_check_output", "")
        if out.strip():
            note("%s: postfix check said:\n%s" % (pf.lab_shape, out))
        bad = [l for l in out.splitlines() if re.search(r"warning|fatal|error", l, re.I)]
        assert not bad, "%s: postfix check: %s" % (pf.lab_shape, "\n".join(bad))
    for pf in w.lab.instances:
        bad = pf.log_lines(pattern=r"(warning|fatal|panic|error): .*(unused parameter|"
                           r"deprecated|will be removed|milter|header_checks|mtasts)")
        assert not bad, "%s:\n%s" % (pf.lab_shape, "\n".join(bad[:20]))


def case_no_bounces(w):
    time.sleep(1.5)                 # one more queue run for anything deferred
    for pf in w.lab.instances:
        no_bounces(pf)
        q = pf.queue_files()
        note("%s: queue %r, %d deferral lines" % (
            pf.lab_shape, q, len(pf.log_lines(pattern=r"status=deferred"))))
        assert not q.get("deferred") and not q.get("hold") and not q.get("corrupt"), \
            "%s: mail left in the queue: %r\n%s" % (pf.lab_shape, q, pf.diagnostics(40))


# ------------------------------------------------------------------ main

def main():
    why = lab_available()
    if not why and not os.path.exists(os.path.join(harness.srcdir(), "packaging", "postfix",
                                                   "content-filter.snippet")):
        why = "packaging/postfix/content-filter.snippet missing"
    if why:
        return harness.skipped("Postfix deployments (hosted domains, relays, content filter)",
                               "real deployments", why)
    rc = netns.run_inside("test_deployment")
    if rc is not None:
        return rc
    report = harness.TestReport("Postfix deployments: hosted domains, smart host, "
                                "transport map, content filter, submission (netns %s)"
                                % netns.inside())
    with harness.workdir("mtasts-deployment-test.") as work:
        w = World(build_lab(work), work)
        try:
            run(report, w)
        finally:
            w.stop()
    return report.finish()


def run(report, w):
    def start():
        t0 = time.monotonic()
        w.start()
        note("started in %.1f s: lab %s; Postfix instances %s" % (
            time.monotonic() - t0, ", ".join("%s %.1f s" % kv for kv in w.lab.timings.items()),
            ", ".join("%s :%d" % (pf.lab_shape, pf.smtpd_port) for pf in w.lab.instances)))
        note("MX hosts: " + ", ".join("%s=%s(%s)" % (m.host, m.ip, m.cert or "no TLS")
                                     for d in w.lab.domains.values() for m in d.mx))
        note("scan transport (from content-filter.snippet):\n" + w.scan_service)
    if not report.run("start DNS, HTTPS, MX sinks, smart host, internal host, LMTP sink, "
                      "content filter, mtasts-milter and 4 Postfix instances", start):
        note(w.lab.diagnostics() if w.lab.daemon else "")
        return
    cases = [
        ("postfix check: the shipped snippets and these shapes raise no warning",
         case_postfix_check),
        ("virtual_mailbox_domains: an enforce domain hosted here lands in its maildir, "
         "never at its public MX; skipped naming transport virtual", case_virtual),
        ("mydestination: local(8) delivers an enforce domain (alias to a file, user mailbox); "
         "skipped naming transport local", case_local),
        ("virtual_transport = lmtp: an enforce domain goes to the LMTP sink only; "
         "skipped naming transport lmtp", case_lmtp),
        ("relayhost: mail to enforce and testing domains arrives at the smart host, "
         "no 452, not routed; skipped naming the next hop", case_relayhost),
        ("transport_maps to an internal host: an enforce domain arrives there, not at its "
         "MX; skipped naming the next hop", case_transport_map),
        ("enforce + transport-map recipient in one transaction: the second gets 452 4.5.3, "
         "the first leaves through mtasts-enforce, nothing bounces", case_mixed_split),
        ("the refused recipient sent again alone is delivered to the internal host",
         case_mixed_retry),
        ("transport-map recipient first: the enforce one gets 452 4.5.3, and sent again "
         "alone leaves through mtasts-enforce", case_mixed_reverse),
        ("submission (127.0.0.1:587) to enforce, no-policy and testing domains: all 250, "
         "each at its own MX through mtasts-enforce, verified TLS for the enforce one only",
         case_submission),
        ("content filter: preferred MX not in the policy: scanned once, leaves through "
         "mtasts-enforce over verified TLS to the allowed MX, never the forbidden one",
         lambda w: case_filter_enforce(w, SCAN_MX, "mx0." + SCAN_MX, "not in the policy")),
        ("content filter: preferred MX with a wrong-name certificate: scanned once, "
         "delivered to the next MX over verified TLS",
         lambda w: case_filter_enforce(w, SCAN_CERT, "mx0." + SCAN_CERT,
                                       "wrong-name certificate")),
        ("content filter: testing and no-policy domains scanned once, delivered as usual "
         "(postfix/smtp)", case_filter_ordinary),
        ("content filter: enforce + transport-map recipient: the 452 4.5.3 of the "
         "re-injection smtpd passes back through the filter, each recipient scanned once "
         "and delivered on its own route", case_filter_split),
        ("content filter: every message scanned exactly once (filter count = messages "
         "sent), the milter only behind the filter", case_filter_count),
        ("nothing bounced, nothing left in any queue", case_no_bounces),
    ]
    for name, fn in cases:
        report.run(name, fn, w)

    def daemon_clean_exit():
        for pf in w.lab.instances:
            pf.stop()
        rc = w.lab.daemon.stop()
        log = w.lab.daemon.log_text()
        bad = [l for l in log.splitlines()
               if re.search(r"Sanitizer|runtime error:|\bcrit\b|\balert\b|\bemerg\b", l)]
        assert rc == 0 and not bad, "daemon exit status %r, log:\n%s" % (
            rc, "\n".join(bad) or log[-3000:])
    report.run("SIGTERM: the daemon exits 0, no sanitizer report in its log", daemon_clean_exit)


if __name__ == "__main__":
    sys.exit(main())
