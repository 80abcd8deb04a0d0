"""DeliveryLab: real Postfix delivering to MX hosts found in DNS, with
mtasts-milter answering its TLS policy socketmap, all inside a private
network namespace (tests/mta/netns.py).  Reusable by any end-to-end test
that needs mail to really leave Postfix for an MTA-STS domain.

    import netns
    from deliverylab import DeliveryLab, MX, lab_available

    def main():
        why = lab_available()              # root, ip netns, postfix, daemon
        if why: ...skip...
        rc = netns.run_inside("my-test")   # re-runs this script inside a
        if rc is not None:                 # fresh namespace, cleans up,
            return rc                      # returns its exit status
        lab = DeliveryLab(workdir)
        lab.add_domain("good.test", "enforce", [MX("mx1.good.test", "good")])
        lab.add_domain("bad.test", "testing", [MX("mx1.bad.test", "wrongname")],
                       names={"_smtp._tls.bad.test":
                              {"TXT": [["v=TLSRPTv1; rua=mailto:r@rua.test"]]}})
        lab.add_domain("rua.test", None, [MX("mx.rua.test", "good")])
        lab.start()
        s = lab.send("user@bad.test")              # SMTP to Postfix's smtpd
        m = lab.wait_delivered(s)                  # SinkMessage at bad.test's MX
        lab.log_excerpt(s)                         # its Postfix log lines
        lab.sink("mx.rua.test").messages()         # what that MX received
        lab.stop()                                 # also at exit

The world, all on loopback inside the namespace (so fixed ports are ours):
  * DNS: tests/fixtures/dnsd.py on 127.0.0.1:53, the namespace's only
    resolver (/etc/netns/NAME/resolv.conf), for Postfix and the daemon.
    Per domain D: MX -> the given hosts; each MX host: A 127.0.0.N (N from
    10 up, one address per MX host); with a mode: _mta-sts.D TXT
    "v=STSv1; id=..." and mta-sts.D A 127.0.0.1.  names= adds raw records.
  * HTTPS: tests/fixtures/httpsd.py on 127.0.0.1:443 serving each
    policy (mx: lines = the MX host names unless policy_mx= says otherwise)
    with a test-CA certificate; add_https_host() adds raw scenarios.
  * MX hosts: one tests/mta/smtpsink.py sink per MX host on 127.0.0.N:25,
    with STARTTLS and a certificate of the chosen kind (CERT_KINDS), or
    none (cert=None: STARTTLS not offered).
  * mtasts-milter: the build's binary, with the packaged defaults where they
    matter: milter on inet:8462@127.0.0.1, socketmap on inet:8461@127.0.0.1,
    DNS from resolv.conf, policies from port 443; CAFile = the test CA.
    Test settings from tests/mta/milterd.py otherwise (no cache store,
    decision log in the work dir, EnvelopeTimeout 5 s, and
    AllowInternalAddresses yes: every policy host is on loopback).
  * Postfix (tests/mta/postfix.py, no relayhost, MX lookups in DNS),
    configured with the shipped packaging/postfix files: main.cf.snippet
    (milters, milter_default_action, mtasts_tls_policy_maps),
    master.cf.snippet (the mtasts-enforce transport, whose
    smtp_tls_policy_maps is the socketmap) and mtasts_header_checks; plus
    smtp_tls_security_level = may and smtp_tls_CAfile = the test CA.
    global_map=True also uncomments the snippet's stricter option
    (smtp_tls_policy_maps = $mtasts_tls_policy_maps for every delivery);
    milter=False leaves the milters out, so only the map decides.

Handy for a test of what happens after delivery (e.g. mtasts-report):
lab.pf.maillog is Postfix's log, lab.daemon.decision_log the daemon's
decision log, lab.ca_file the test CA, 127.0.0.1:53 the DNS (also the
system resolver inside the namespace), lab.sendmail_argv() Postfix's
sendmail(1) -i -t for this instance and lab.send_local() submits through
it; start_postfix() adds instances of other shapes (extra main.cf and
master.cf settings), and start_daemon() replaces a stopped daemon by one
with other settings (e.g. a unix milter socket and another UserID, which
instances started afterwards then use).  Postfix checks
certificate names only at levels verify/secure: a testing-mode or
no-policy MX with a wrong-name test-CA certificate logs "Trusted TLS
connection established"; self-signed, expired or untrusted ones log
"Untrusted TLS connection established".

Sendmail instead of (or beside) Postfix: DeliveryLab(..., postfix=False)
and lab.start_sendmail() run Debian's Sendmail unpacked by
tests/mta/sendmail.py, without a smart host (MX lookups through the lab's
DNS, port 25), with packaging/sendmail/mtasts.mc.snippet verbatim
(FEATURE(`sts') on the socketmap, INPUT_MAIL_FILTER on the milter) and
CACertFile = the test CA; lab_available("sendmail") checks for it.

Must run inside netns.run_inside() (start() refuses otherwise: ports 25,
53 and 443 of the host are not ours).
"""

import atexit
import json
import os
import re
import shutil
import time
import weakref

import mtautil
import netns
from milterd import MilterDaemon, policy_text
from postfix import PostfixInstance, postfix_available
from smtpsink import SmtpSink

__all__ = ["DeliveryLab", "MX", "Sent", "lab_available", "CERT_KINDS",
           "packaged_postfix_main", "packaged_enforce_service", "MILTER_PORT",
           "SOCKETMAP_PORT", "packaged_sendmail_mc"]

CERT_KINDS = ("good", "wildcard", "wrongname", "expired", "notyetvalid",
              "selfsigned", "untrusted")
MILTER_PORT = 8462           # packaging defaults (Socket, SocketmapSocket)
SOCKETMAP_PORT = 8461
SENDER = "sender@client.test"


def _srcdir():
    d = os.environ.get("top_srcdir")
    if d:
        return os.path.abspath(d)
    return os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _harness():
    import sys
    d = os.path.join(_srcdir(), "tests", "integration")
    if d not in sys.path:
        sys.path.insert(0, d)
    import harness
    return harness


def lab_available(mta="postfix"):
    """None if a DeliveryLab can run here, else the reason it cannot.
    mta="sendmail": with an unpacked Sendmail instead of Postfix."""
    if mta == "sendmail":
        from sendmail import sendmail_available
        why = sendmail_available() or netns.available() or MilterDaemon.available()
        if not why and not _harness().have_dnslib():
            why = "python3-dnslib missing (DNS fixture)"
        if not why and not os.path.exists(os.path.join(_srcdir(), "packaging", "sendmail",
                                                       "mtasts.mc.snippet")):
            why = "packaging/sendmail/mtasts.mc.snippet missing"
        return why
    why = postfix_available() or netns.available() or MilterDaemon.available()
    if why:
        return why
    if not _harness().have_dnslib():
        return "python3-dnslib missing (DNS fixture)"
    for f in ("main.cf.snippet", "master.cf.snippet", "mtasts_header_checks"):
        if not os.path.exists(os.path.join(_srcdir(), "packaging", "postfix", f)):
            return "packaging/postfix/%s missing" % f
    return None


# ------------------------------------------------- the packaged Postfix config

def run_report_lab(script, title, what, report_tool, body, margin_s=120):
    """main() of a delivery-lab test whose checks end in mtasts-report.
    The report tool must be built (exit 99 otherwise) and the lab able to
    run (a skip saying why otherwise); the script runs itself again inside
    a network namespace (netns.run_inside(script)) and there calls
    body(report, work) in a fresh work dir, starting at least margin_s
    seconds before midnight UTC (the logs and the report's --date must be
    of one day).  Returns the exit status."""
    harness = _harness()
    if not os.access(report_tool, os.X_OK):
        print("mtasts-report not built at %s" % report_tool)
        return 99
    why = lab_available()
    if why:
        return harness.skipped(title, what, why)
    rc = netns.run_inside(script)
    if rc is not None:
        return rc
    report = harness.TestReport("%s (netns %s)" % (title, netns.inside()))
    with harness.workdir(script.replace("test_", "mtasts-", 1).replace("_", "-") + ".") as work:
        left = 86400 - int(time.time()) % 86400
        if left < margin_s:
            harness.note("%d s to midnight UTC: waiting for the next day" % left)
            time.sleep(left + 2)
        body(report, work)
    return report.finish()


def _snippet(name):
    with open(os.path.join(_srcdir(), "packaging", "postfix", name)) as fh:
        return fh.read()


def packaged_postfix_main(global_map=False):
    """main.cf.snippet as an ordered dict of its settings.  global_map:
    also its commented-out stricter option (#smtp_tls_policy_maps = ...)."""
    out, key = {}, None
    for line in _snippet("main.cf.snippet").splitlines():
        if global_map and re.match(r"^#\s*smtp_tls_policy_maps\s*=", line):
            line = line.lstrip("#").lstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            key = None                         # ends a logical line
            continue
        if line[0].isspace() and key:          # continuation line
            out[key] += " " + line.strip()
            continue
        k, sep, v = line.partition("=")
        if not sep:
            raise ValueError("main.cf.snippet: unparsable line %r" % line)
        key = k.strip()
        out[key] = v.strip()
    if global_map and "smtp_tls_policy_maps" not in out:
        raise ValueError("main.cf.snippet lacks the #smtp_tls_policy_maps option")
    return out


def packaged_sendmail_mc():
    """packaging/sendmail/mtasts.mc.snippet, verbatim."""
    with open(os.path.join(_srcdir(), "packaging", "sendmail", "mtasts.mc.snippet")) as fh:
        text = fh.read()
    return text if text.endswith("\n") else text + "\n"


def packaged_enforce_service():
    """master.cf.snippet: the mtasts-enforce service entry, verbatim."""
    text = _snippet("master.cf.snippet")
    if not re.search(r"^mtasts-enforce\s+unix\s", text, re.M):
        raise ValueError("master.cf.snippet has no mtasts-enforce service")
    return text if text.endswith("\n") else text + "\n"


# ------------------------------------------------------------------ pieces

class MX:
    """One MX host: name, certificate kind (CERT_KINDS, or None for no
    STARTTLS) and preference."""

    def __init__(self, host, cert="good", pref=10):
        if cert is not None and cert not in CERT_KINDS:
            raise ValueError("unknown cert kind %r" % cert)
        self.host = host.lower().rstrip(".")
        self.cert, self.pref = cert, pref
        self.ip = None
        self.sink = None

    def __repr__(self):
        return "MX(%s, %s, %s)" % (self.host, self.cert, self.ip)


class Sent:
    """One message handed to Postfix: queue_id, msgid, rcpts, domain,
    the Postfix instance and, for SMTP, its mtautil.SubmitResult."""

    def __init__(self, rcpts, msgid, queue_id, pf, label, result=None):
        self.rcpts, self.msgid, self.result, self.pf = rcpts, msgid, result, pf
        self.queue_id = queue_id
        self.domain = rcpts[0].rsplit("@", 1)[1].lower()
        self.label = label

    def __repr__(self):
        return "<Sent %s %s to %s>" % (self.label, self.queue_id, self.rcpts)


class _Domain:
    def __init__(self, name, mode, mx, policy_mx, policy_id, policy_body, cert):
        self.name, self.mode, self.mx = name, mode, list(mx)
        self.policy_mx = policy_mx
        self.policy_id = policy_id
        self.policy_body = policy_body
        self.policy_cert = cert


_LIVE = weakref.WeakSet()


@atexit.register
def _stop_all():
    for lab in list(_LIVE):
        try:
            lab.stop()
        except Exception:
            pass


class DeliveryLab:
    """See the module doc.  workdir: created if needed (not removed)."""

    def __init__(self, workdir, milter=True, global_map=False, daemon_settings=None,
                 postfix_main=None, postfix=True, postfix_lifetime=1800):
        self.workdir = os.path.abspath(workdir)
        # Postfix's master exits after this many seconds (master -e), so a
        # lab left behind by a killed test does not live on.
        self.postfix_lifetime = postfix_lifetime
        self.postfix = postfix           # False: start() starts no Postfix
        self.sendmails = []              # from start_sendmail()
        self.milter = milter
        self.global_map = global_map
        self.daemon_settings = dict(daemon_settings or {})
        self.postfix_main = dict(postfix_main or {})
        self.domains = {}
        self.names = {}
        self.https_hosts = {}
        self.fx = None
        self.daemon = None
        self.daemons = []            # every daemon started; lab.daemon is the last
        self.pf = None
        self.instances = []
        self.sinks = {}              # MX host -> SmtpSink
        self.sent = []
        self._next_ip = 10
        _LIVE.add(self)

    # ------------------------------------------------------------ world
    def add_domain(self, name, mode, mx, policy_mx=None, policy_id=None, names=None,
                   policy_body=None, policy_cert="good"):
        """A recipient domain.  mode: "enforce", "testing", "none" (a
        policy with that mode) or None (no _mta-sts record).  mx: list of
        MX.  policy_mx: the policy's mx patterns (default: the MX host
        names).  policy_body: the whole policy text instead.  names: raw
        dnsd records to add (e.g. _smtp._tls.D TXT).  policy_cert: the
        policy host's certificate kind."""
        name = name.lower().rstrip(".")
        if mode not in (None, "enforce", "testing", "none"):
            raise ValueError("mode %r" % mode)
        self.domains[name] = _Domain(name, mode, mx, policy_mx,
                                     policy_id or "%s%d" % (mode or "x", len(self.domains) + 1),
                                     policy_body, policy_cert)
        self.add_names(names or {})
        return self.domains[name]

    def add_names(self, names):
        """Raw dnsd zone entries (see tests/fixtures/dnsd.py), merged per name."""
        for k, v in names.items():
            self.names.setdefault(k.lower().rstrip("."), {}).update(v)

    def add_https_host(self, host, scenario):
        """A raw httpsd scenario (see tests/fixtures/httpsd.py) on :443;
        give host an A record (add_names) pointing at 127.0.0.1."""
        self.https_hosts[host.lower()] = scenario

    def mx(self, host):
        for d in self.domains.values():
            for m in d.mx:
                if m.host == host.lower():
                    return m
        raise KeyError(host)

    def sink(self, host):
        """The SmtpSink of MX host."""
        return self.sinks[host.lower()]

    @property
    def ca_file(self):
        return self.fx.ca_file

    def _zone(self):
        names = {}
        for d in self.domains.values():
            names.setdefault(d.name, {})["MX"] = [[m.pref, m.host] for m in d.mx]
            for m in d.mx:
                names.setdefault(m.host, {})["A"] = [m.ip]
            if d.mode is not None:
                names["_mta-sts." + d.name] = {"TXT": [["v=STSv1; id=%s;" % d.policy_id]]}
                names["mta-sts." + d.name] = {"A": ["127.0.0.1"]}
        for k, v in self.names.items():
            names.setdefault(k, {}).update(v)
        return {"names": names, "default": "NXDOMAIN", "ttl": 60}

    def _https(self):
        hosts = {}
        for d in self.domains.values():
            if d.mode is None:
                continue
            body = d.policy_body or policy_text(
                d.mode, d.policy_mx if d.policy_mx is not None else [m.host for m in d.mx])
            hosts["mta-sts." + d.name] = {"body": body, "cert": d.policy_cert}
        hosts.update(self.https_hosts)
        return {"hosts": hosts, "default_cert": "good"}

    def _mx_cert(self, m):
        if m.cert is None:
            return None, None
        if m.cert == "wildcard":
            parent = m.host.split(".", 1)[1]
            return self.fx.make_cert("mx-wildcard--" + parent, "good", "*." + parent)
        if m.cert == "wrongname":
            return self.fx.make_cert("mx-wrongname", "good", "wrong.invalid")
        return self.fx.make_cert("mx-%s--%s" % (m.cert, m.host), m.cert, m.host)

    # ------------------------------------------------------------ start
    def start(self):
        """Start DNS, HTTPS, the MX sinks, the daemon and Postfix."""
        if not netns.inside():
            raise RuntimeError("DeliveryLab must run inside netns.run_inside() "
                               "(it binds ports 25, 53 and 443)")
        harness = _harness()
        os.makedirs(self.workdir, exist_ok=True)
        mtautil.make_traversable(self.workdir)
        t0 = time.monotonic()
        self.timings = {}
        self.fx = harness.Fixtures(os.path.join(self.workdir, "fixtures"))
        for d in self.domains.values():
            for m in d.mx:
                if m.ip is None:
                    m.ip = "127.0.0.%d" % self._next_ip
                    self._next_ip += 1
        self.fx.start_dns(self._zone(), port=53)
        self.fx.start_https(self._https(), port=443)
        for d in self.domains.values():
            for m in d.mx:
                cert, key = self._mx_cert(m)
                s = SmtpSink(os.path.join(self.workdir, "mx", m.host), port=25, host=m.ip,
                             name=m.host, hostname=m.host, tls_cert=cert, tls_key=key)
                s.start()
                m.sink = self.sinks[m.host] = s
        self.timings["fixtures"] = time.monotonic() - t0
        # The CA must be readable by Postfix's unprivileged smtp processes.
        ca = os.path.join(self.workdir, "test-ca.pem")
        shutil.copyfile(self.fx.ca_file, ca)
        os.chmod(ca, 0o644)
        self.ca_copy = ca

        t1 = time.monotonic()
        self.start_daemon()
        self.timings["daemon"] = time.monotonic() - t1

        if self.postfix:
            t1 = time.monotonic()
            self.pf = self.start_postfix("postfix", self.milter, self.global_map,
                                         self.postfix_main)
            self.timings["postfix"] = time.monotonic() - t1
        self.timings["start"] = time.monotonic() - t0
        return self

    def start_daemon(self, name="daemon", settings=None, milter_socket=None):
        """Start mtasts-milter in WORKDIR/NAME with the lab's settings
        (module doc, daemon_settings, then settings); it becomes lab.daemon.
        start() calls this once; call it again only after lab.daemon.stop()
        (the socketmap port is the same).  milter_socket: "unix:PATH" (its
        directory must exist) instead of the packaged inet:8462; Postfix
        instances started afterwards call the milter there."""
        if self.daemon is not None and self.daemon.running():
            raise RuntimeError("lab.daemon still runs: stop it first")
        s = {"DNSServers": None, "PolicyPort": None, "DNSTimeout": None,
             "DNSTries": None, "HTTPSConnectTimeout": None, "HTTPSTimeout": "10000ms",
             "LookupFailAction": None}
        s.update(self.daemon_settings)
        s.update(settings or {})
        d = MilterDaemon(os.path.join(self.workdir, name), 53, 443, self.fx.ca_file,
                         milter_port=None if milter_socket else MILTER_PORT,
                         socketmap_port=SOCKETMAP_PORT, settings=s,
                         milter_socket=milter_socket)
        self.daemon = d
        self.daemons.append(d)
        d.start()
        mtautil.wait_port(SOCKETMAP_PORT, 10, alive=d.running, what="mtasts-milter socketmap")
        return d

    def start_postfix(self, name, milter=True, global_map=False, main_extra=None,
                      master_extra=""):
        """Start one more Postfix instance (own smtpd port, queue and
        WORKDIR/NAME/maillog) delivering into the same world; returns the
        PostfixInstance (pass it to send(pf=...)).  lab.pf is the first.
        milter: the packaged smtpd_milters/non_smtpd_milters, or, when
        lab.daemon listens on a unix socket, that socket (the instance is
        not chrooted: the full path for both).  main_extra: main.cf
        settings on top (milter_default_action included); master_extra:
        master.cf text appended (e.g. a virtual service)."""
        main = packaged_postfix_main(global_map)
        main.pop("milter_header_checks", None)     # the instance's copy of the same file
        milters = main.pop("smtpd_milters", "")
        nsmilters = main.pop("non_smtpd_milters", "")
        if milter and self.daemon is not None and self.daemon.milter_path:
            milters = nsmilters = self.daemon.postfix_milter
        if not milter:
            milters = nsmilters = ""
        main["non_smtpd_milters"] = nsmilters
        main.update({"smtp_tls_security_level": "may", "smtp_tls_CAfile": self.ca_copy})
        main.update(main_extra or {})
        pf = PostfixInstance(
            os.path.join(self.workdir, name), relay_port=None, milter=milters,
            milter_default_action=main.pop("milter_default_action", "tempfail"),
            header_checks_file=os.path.join(_srcdir(), "packaging", "postfix",
                                            "mtasts_header_checks"),
            enforce_service=packaged_enforce_service(), main=main, master_extra=master_extra,
            lifetime=self.postfix_lifetime)
        pf.lab_shape = "%s%s" % ("milter" if milter else "no milter",
                                 ", global smtp_tls_policy_maps" if global_map else "")
        self.instances.append(pf)
        pf.start()
        return pf

    def start_sendmail(self, name="sendmail", mc_extra=""):
        """Start an unpacked Sendmail (tests/mta/sendmail.py) delivering
        into this world: no smart host, MX hosts from the lab's DNS on port
        25, packaging/sendmail/mtasts.mc.snippet verbatim (its ports are
        the lab's MILTER_PORT and SOCKETMAP_PORT), CACertFile = the test CA,
        plus mc_extra.  Returns the SendmailInstance (log: .log_lines())."""
        from sendmail import SendmailInstance
        # The CA (and any map file of mc_extra) lies under /tmp: without
        # TrustStickyBit Sendmail calls that path unsafe.
        sm = SendmailInstance(os.path.join(self.workdir, name), relay_port=None,
                              mc_extra=packaged_sendmail_mc() +
                              "define(`confDONT_BLAME_SENDMAIL', `TrustStickyBit')dnl\n" +
                              mc_extra, ca_file=self.ca_copy)
        self.sendmails.append(sm)
        sm.start()
        return sm

    def stop(self):
        """Stop Postfix, the daemon, the sinks and the fixtures."""
        for sm in self.sendmails:        # they hold milter and socketmap connections
            sm.stop()
        self.sendmails = []
        for pf in self.instances:
            pf.stop()
        self.instances = []
        self.pf = None
        for d in self.daemons:
            d.stop()
        for s in self.sinks.values():
            s.stop()
        if self.fx:
            self.fx.stop()
        _LIVE.discard(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # ------------------------------------------------------------- mail
    def send(self, rcpts, subject=None, extra_headers=(), body="test body\n",
             sender=SENDER, label=None, pf=None):
        """Submit one message over SMTP to Postfix's smtpd (pf: another
        instance from start_postfix()); returns Sent.  rcpts: address or
        list.  AssertionError unless it was queued."""
        pf = pf or self.pf
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        msg = mtautil.make_message(rcpts, subject=subject or "to " + ", ".join(rcpts),
                                   extra_headers=extra_headers, body=body, mail_from=sender)
        msgid = re.search(rb"^Message-ID: (\S+)\r$", msg, re.M | re.I).group(1).decode()
        r = pf.submit(sender, rcpts, msg)
        s = Sent(rcpts, msgid, r.queue_id, pf, label or rcpts[0], result=r)
        if not (r.data and r.data[0] == 250 and r.queue_id):
            raise AssertionError("message to %s not queued: %r\n%s"
                                 % (rcpts, r, self.diagnostics(pf=pf)))
        self.sent.append(s)
        return s

    def send_local(self, rcpts, subject=None, extra_headers=(), body="test body\n",
                   sender=SENDER, label=None, pf=None, timeout=20.0):
        """Submit one message with Postfix's sendmail(1) -i -t (pickup and
        non_smtpd_milters, the way mtasts-report hands over its reports);
        returns Sent, its queue id taken from cleanup's message-id line."""
        pf = pf or self.pf
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        msg = mtautil.make_message(rcpts, subject=subject or "local to " + ", ".join(rcpts),
                                   extra_headers=extra_headers, body=body, mail_from=sender)
        msgid = re.search(rb"^Message-ID: (\S+)\r$", msg, re.M | re.I).group(1).decode()
        rc, out = mtautil.run(self.sendmail_argv(pf), input=msg.decode("utf-8"), timeout=60)
        if rc != 0:
            raise AssertionError("sendmail -t failed (%d): %s\n%s"
                                 % (rc, out, self.diagnostics(pf=pf)))
        line = pf.wait_log(r"message-id=%s" % re.escape(msgid), timeout=timeout)
        qid = re.search(r" ([0-9A-Za-z]+): message-id=", line).group(1)
        s = Sent(rcpts, msgid, qid, pf, label or "local " + rcpts[0])
        self.sent.append(s)
        return s

    def sendmail_argv(self, pf=None):
        """Postfix's sendmail(1) for an instance (local submission, the
        non_smtpd_milters path), e.g. for mtasts-report --sendmail."""
        return ["/usr/sbin/sendmail", "-C", (pf or self.pf).etc, "-i", "-t"]

    def delivered(self, sent):
        """SinkMessages carrying sent's Message-ID, from every MX sink."""
        out = []
        for s in self.sinks.values():
            out += [m for m in s.messages()
                    if m.msg.get("Message-ID", "").strip() == sent.msgid]
        return out

    def wait_delivered(self, sent, timeout=30.0):
        """Wait for Postfix's status=sent line and the message at an MX
        sink; returns the SinkMessage.  A status=deferred/bounced line does
        not end the wait (Postfix retries), the timeout does."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.delivered(sent)
            if got and sent.pf.log_lines(sent.queue_id, r"status=sent"):
                return got[0]
            if time.monotonic() > deadline:
                raise AssertionError("%s: not delivered after %.0f s\n%s"
                                     % (sent, timeout, self.diagnostics(sent)))
            time.sleep(0.05)

    def wait_deferred(self, sent, timeout=30.0):
        """Wait for Postfix's first status=deferred line of sent; returns it."""
        try:
            return sent.pf.wait_log(r"status=deferred", queue_id=sent.queue_id,
                                    timeout=timeout)
        except AssertionError as e:
            raise AssertionError("%s: %s\n%s" % (sent, e, self.diagnostics(sent))) from None

    def mx_hosts(self, domain):
        return [m.host for m in self.domains[domain].mx]

    def log_excerpt(self, sent):
        """Postfix log lines about sent: its queue id's lines and the TLS
        lines about its domain's MX hosts (Postfix logs those without a
        queue id), in log order."""
        hosts = [re.escape(h) for h in self.mx_hosts(sent.domain)] if \
            sent.domain in self.domains else []
        tls = re.compile(r"(TLS connection established|certificate|TLS is required|"
                         r"TLS policy|TLS library).*\b(%s)\[" % "|".join(hosts or ["$^"]))
        return [l for l in sent.pf.log_lines()
                if (sent.queue_id + ":") in l or tls.search(l)]

    def decisions(self, sent=None):
        """The daemon's decision log (all, or the lines of sent's queue id)."""
        ds = self.daemon.decisions()
        return ds if sent is None else [d for d in ds if d.get("queue_id") == sent.queue_id]

    # ------------------------------------------------------------ diags
    def diagnostics(self, sent=None, pf=None):
        out = []
        pf = pf or (sent.pf if sent is not None else self.pf)
        if sent is not None:
            out.append("--- log lines of %s\n%s" % (sent, "\n".join(self.log_excerpt(sent))))
        if pf:
            out.append(pf.diagnostics(40))
        if self.daemon:
            out.append(self.daemon.diagnostics(30))
            out.append("--- decisions\n" + "\n".join(json.dumps(d) for d in
                                                      self.daemon.decisions()[-10:]))
        hosts = self.mx_hosts(sent.domain) if sent is not None and \
            sent.domain in self.domains else list(self.sinks)
        for h in hosts:
            out.append(self.sinks[h].describe(tail=10))
        return "\n".join(out)
