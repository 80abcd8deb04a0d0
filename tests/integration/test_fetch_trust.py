#!/usr/bin/python3
"""The CAs trusted for policy fetches: read once, shared, still strict,
read again on SIGHUP.

The daemon parses CAFile once into one trust store that every policy
fetch shares (src/sts/fetch.c), instead of once per fetch.  This pins what
that must not change and what it adds, through the socketmap with the real
daemon and the HTTPS fixture (each step asks a domain not asked before):

  - a policy host with a certificate from the trusted test CA: a policy;
  - a certificate from another CA (the fixture's "untrusted" kind): no
    policy, and the fixture saw the TLS connection but never an HTTP
    request (refused in the handshake), also on a second fetch;
  - CAFile overwritten with garbage, no signal: fetches go on with the CAs
    read at start (read once, not per fetch);
  - SIGHUP with CAFile = test CA + the other CA: that host is trusted now;
  - SIGHUP with CAFile unreadable as PEM: reload-failed is logged and the
    CAs read before stay (both hosts still fetched as before);
  - SIGHUP with CAFile = test CA only: the other CA is refused again;
  - SIGHUP with CAFile naming another file: that file's CAs are used;
  - the daemon then exits with status 0 and no sanitizer report in its log
    (the clang sanitizer build runs this too).
"""

import os
import shutil
import signal
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "mta"))
import harness  # noqa: E402
import mtautil  # noqa: E402
from milterd import MilterDaemon  # noqa: E402
from test_socketmap import Client  # noqa: E402

POLICY = "version: STSv1\r\nmode: enforce\r\nmx: mx1.%s\r\nmax_age: 86400\r\n"
GOOD = ["good%d.test" % i for i in range(6)]
OTHER = ["other%d.test" % i for i in range(6)]


def world():
    names, hosts = {}, {}
    for d in GOOD + OTHER:
        names["_mta-sts." + d] = {"TXT": [["v=STSv1; id=t1;"]]}
        names["mta-sts." + d] = {"A": ["127.0.0.1"]}
        names[d] = {"MX": [[10, "mx1." + d]]}
        hosts["mta-sts." + d] = {"body": POLICY % d,
                                 "cert": "good" if d in GOOD else "untrusted"}
    return {"names": names, "default": "NXDOMAIN"}, {"hosts": hosts, "default_cert": "good"}


class Trust:
    def __init__(self, fx, work):
        self.fx = fx
        self.work = work
        self.ca = os.path.join(work, "trusted.pem")
        shutil.copyfile(fx.ca_file, self.ca)
        zone, hosts = world()
        dns_port = fx.start_dns(zone)
        https_port = fx.start_https(hosts)
        self.other_ca = os.path.join(fx.certdir, "untrusted-ca.pem")
        assert os.path.exists(self.other_ca), "the fixture made no untrusted-ca.pem"
        self.d = MilterDaemon(os.path.join(work, "daemon"), dns_port, https_port, self.ca,
                              settings={"DecisionLog": None, "CacheStore": "none"})
        self.d.start()
        mtautil.wait_port(self.d.socketmap_port, 20, alive=self.d.running,
                          what="mtasts-milter socketmap")
        self.c = Client(self.d.socketmap_port)
        self.used = set()

    def ask(self, d):
        assert d not in self.used, "%s asked twice: the second answer would be cached" % d
        self.used.add(d)
        return self.c.ask("postfix", d)

    def policy(self, d):
        got = self.ask(d)
        assert got.startswith("OK secure"), "%s: got %r, want a policy\n%s" % (
            d, got, self.d.diagnostics())
        assert self.fx.https_requests("mta-sts." + d) == 1, "%s: %d requests, want 1" % (
            d, self.fx.https_requests("mta-sts." + d))

    def refused(self, d):
        got = self.ask(d)
        assert not got.startswith("OK"), "%s: got %r, want no policy (untrusted CA)" % (d, got)
        conns = self.fx.https_connections("mta-sts." + d)
        reqs = self.fx.https_requests("mta-sts." + d)
        assert conns >= 1 and reqs == 0, (
            "%s: %d TLS connections, %d HTTP requests; want >= 1 and 0 (refused in the "
            "handshake)" % (d, conns, reqs))

    def write_ca(self, *files, path=None):
        data = b"".join(open(f, "rb").read() for f in files)
        tmp = (path or self.ca) + ".new"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path or self.ca)

    def hup(self, settings=None, word="reloaded"):
        """SIGHUP (after rewriting the config with settings) and wait until
        word (the reload, or its failure) is logged once more."""
        if settings:
            self.d.settings.update(settings)
            self.d.write_config()
        before = self.d.log_text().count(word)
        self.d.popen.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: self.d.log_text().count(word) > before, timeout=10,
                         msg="%s logged" % word)

    def stop(self):
        """The daemon's exit status (None if it had to be killed)."""
        self.c.close()
        return self.d.stop()


def run(report, t):
    report.run("a certificate from the trusted CA: a policy", t.policy, GOOD[0])
    report.run("a certificate from another CA: refused in the handshake, twice",
               lambda: (t.refused(OTHER[0]), t.refused(OTHER[1])))

    def read_once():
        with open(t.ca, "wb") as fh:
            fh.write(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        t.policy(GOOD[1])
        t.refused(OTHER[2])
    report.run("CAFile overwritten without a signal: the CAs read at start still apply",
               read_once)

    def hup_adds():
        t.write_ca(t.fx.ca_file, t.other_ca)
        t.hup()
        t.policy(OTHER[3])
        t.policy(GOOD[2])
    report.run("SIGHUP with the other CA added to CAFile: its host is trusted now", hup_adds)

    def hup_garbage():
        with open(t.ca, "wb") as fh:
            fh.write(b"no certificates here\n")
        t.hup(word="reload-failed")
        t.policy(OTHER[4])
        t.policy(GOOD[3])
    report.run("SIGHUP with an unreadable CAFile: reload-failed, the CAs before stay",
               hup_garbage)

    def hup_removes():
        t.write_ca(t.fx.ca_file)
        t.hup()
        t.refused(OTHER[5])
        t.policy(GOOD[4])
    report.run("SIGHUP with the other CA removed again: its host is refused", hup_removes)

    def hup_other_file():
        other = os.path.join(t.work, "other-only.pem")
        t.write_ca(t.other_ca, path=other)
        restarts = t.d.log_text().count("at the next restart")
        t.hup({"CAFile": other})
        got = t.ask(GOOD[5])
        assert not got.startswith("OK"), (
            "%s: got %r, want no policy (CAFile now names a file without its CA)" % (GOOD[5], got))
        assert t.d.log_text().count("at the next restart") == restarts, \
            "a CAFile change was logged as needing a restart"
    report.run("SIGHUP with CAFile naming another file: that file's CAs apply", hup_other_file)


def main():
    report = harness.TestReport("policy fetches: trusted CAs read once, strict, reloaded")
    why = MilterDaemon.available()
    if why:
        report.skip("trusted CAs", why)
        return report.finish()
    with tempfile.TemporaryDirectory(prefix="mtasts-trust.") as work:
        fx = harness.Fixtures(os.path.join(work, "fx"))
        t = None
        try:
            fx.make_cert("untrusted--probe", "untrusted", "probe.invalid")  # makes the other CA
            t = Trust(fx, work)
            run(report, t)
        finally:
            status = t.stop() if t is not None else None
            fx.cleanup()
        if t is not None:
            def clean_exit():
                log = open(t.d.log).read()
                assert status == 0, "exit status %r, want 0\n%s" % (status, log[-3000:])
                assert "Sanitizer" not in log and "runtime error" not in log, \
                    "sanitizer report in the daemon's log:\n" + log[-3000:]
            report.run("the daemon exits with status 0, no sanitizer report", clean_exit)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
