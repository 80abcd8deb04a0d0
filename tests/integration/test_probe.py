#!/usr/bin/python3
"""The MX probe (src/sts/probe.c) against real SMTP servers on loopback,
and the daemon's probe scheduling (src/engine/prober.c) end to end.

Probe cases (tests/probe/probe_driver): an SMTP sink (tests/mta/smtpsink.py)
offering STARTTLS with a certificate from the test CA (mkcerts.sh) that is
good, for another name, expired, from another CA, self-signed, a wildcard,
a partial wildcard; a sink without STARTTLS; small hand-made servers that
greet with 554, never greet, or slip a command in after the STARTTLS
reply.  Each must come out as its RFC 8460 result type.

Daemon cases: the socketmap is asked about testing-mode domains whose MX
hosts are such sinks (ProbePort, AllowInternalAddresses); the decision log
must get one "probe" record per domain and MX with the right result type,
an MX outside the policy must be a validation-failure without a connection,
and asking again within ProbeInterval must not probe again.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "mta"))
import harness  # noqa: E402
import daemon  # noqa: E402
from smtpsink import SmtpSink  # noqa: E402

TOP_BUILDDIR = os.environ.get("top_builddir") or os.path.join(HERE, "..", "..")
DRIVER = os.path.join(TOP_BUILDDIR, "tests", "probe", "probe_driver")
MX = "mx.probe.test"


def probe(port, mx=MX, ca=None, extra=(), addrs=("127.0.0.1",), timeout=30):
    args = [DRIVER] + (["--ca-file", ca] if ca else []) + ["--port", str(port)] + list(extra)
    t0 = time.monotonic()
    r = subprocess.run(args + [mx] + list(addrs), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=timeout)
    assert r.returncode == 0, "probe_driver exit %d: %s" % (r.returncode, r.stderr)
    result, ip, detail = (r.stdout.strip().split(" ", 2) + ["", ""])[:3]
    return result, ip, detail, time.monotonic() - t0


def expect(got, want):
    assert got[0] == want, "got %s (%s), want %s" % (got[0], got[2], want)


class Sinks:
    """SMTP sinks by certificate kind, started on first use."""

    def __init__(self, fx, work):
        self.fx, self.work, self.ports, self.sinks = fx, work, {}, []

    def port(self, name, kind=None, *sans):
        if name not in self.ports:
            cert = key = None
            if kind is not None:
                cert, key = self.fx.make_cert(name, kind, *sans)
            s = SmtpSink(os.path.join(self.work, name), name=name, tls_cert=cert, tls_key=key)
            self.ports[name] = s.start()
            self.sinks.append(s)
        return self.ports[name]

    def stop(self):
        for s in self.sinks:
            s.stop()


def scripted_server(greeting, after_starttls=None, silent=False):
    """A one-connection-at-a-time server with a fixed script: greeting
    (None: never greets), EHLO offers STARTTLS, STARTTLS answered 220 and
    after_starttls bytes in the same packet.  Returns (port, stop)."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    stop = threading.Event()

    def serve():
        ls.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = ls.accept()
            except OSError:
                continue
            c.settimeout(5)
            try:
                if silent:
                    stop.wait(10)
                    continue
                c.sendall(greeting)
                buf = b""
                while not stop.is_set():
                    data = c.recv(4096)
                    if not data:
                        break
                    buf += data
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        verb = line.strip().upper()
                        if verb.startswith(b"EHLO"):
                            c.sendall(b"250-scripted\r\n250 STARTTLS\r\n")
                        elif verb == b"STARTTLS":
                            c.sendall(b"220 go ahead\r\n" + (after_starttls or b""))
                        else:
                            c.sendall(b"221 bye\r\n")
            except OSError:
                pass
            finally:
                c.close()
        ls.close()

    threading.Thread(target=serve, daemon=True).start()
    return ls.getsockname()[1], stop.set


def probe_cases(report, fx, sinks):
    ca = fx.ca_file

    report.run("good certificate is success",
               lambda: expect(probe(sinks.port("good", "good", MX), ca=ca), "success"))
    report.run("certificate for another name is certificate-host-mismatch",
               lambda: expect(probe(sinks.port("othername", "good", "other.test"), ca=ca),
                              "certificate-host-mismatch"))
    report.run("expired certificate is certificate-expired",
               lambda: expect(probe(sinks.port("expired", "expired", MX), ca=ca),
                              "certificate-expired"))
    report.run("certificate of another CA is certificate-not-trusted",
               lambda: expect(probe(sinks.port("untrusted", "untrusted", MX), ca=ca),
                              "certificate-not-trusted"))
    report.run("self-signed certificate is certificate-not-trusted",
               lambda: expect(probe(sinks.port("selfsigned", "selfsigned", MX), ca=ca),
                              "certificate-not-trusted"))
    report.run("test CA not in the system store is certificate-not-trusted",
               lambda: expect(probe(sinks.port("good", "good", MX)), "certificate-not-trusted"))
    report.run("no STARTTLS offered is starttls-not-supported",
               lambda: expect(probe(sinks.port("plain"), ca=ca), "starttls-not-supported"))
    report.run("wildcard covers one label",
               lambda: expect(probe(sinks.port("wild", "good", "*.probe.test"), ca=ca),
                              "success"))
    report.run("wildcard does not cover two labels",
               lambda: expect(probe(sinks.port("wild", "good", "*.probe.test"), ca=ca,
                                    mx="a.mx.probe.test"), "certificate-host-mismatch"))
    report.run("partial wildcard matches nothing",
               lambda: expect(probe(sinks.port("partial", "good", "m*.probe.test"), ca=ca),
                              "certificate-host-mismatch"))

    def greeting_554():
        port, stop = scripted_server(b"554 5.3.2 not now\r\n")
        try:
            got = probe(port, ca=ca)
            expect(got, "unreachable")
            assert "554" in got[2], got
        finally:
            stop()
    report.run("554 greeting is unreachable (no verdict)", greeting_554)

    def never_greets():
        port, stop = scripted_server(None, silent=True)
        try:
            got = probe(port, ca=ca, extra=["--timeout", "1500", "--io-timeout", "700"])
            expect(got, "unreachable")
            assert got[3] < 5, "took %.1f s" % got[3]
        finally:
            stop()
    report.run("silent server is unreachable within the timeout", never_greets)

    def injection():
        port, stop = scripted_server(b"220 scripted\r\n", after_starttls=b"250 injected\r\n")
        try:
            got = probe(port, ca=ca)
            expect(got, "validation-failure")
            assert "before the handshake" in got[2], got
        finally:
            stop()
    report.run("data after the STARTTLS reply is refused", injection)

    def closed_port():
        port = harness.free_port()
        expect(probe(port, ca=ca), "unreachable")
    report.run("closed port is unreachable", closed_port)

    def next_address():
        # The first address refuses the connection; the second is the MX.
        got = probe(sinks.port("good", "good", MX), ca=ca, addrs=("127.0.0.2", "127.0.0.1"))
        expect(got, "success")
        assert got[1] == "127.0.0.1", got
    report.run("next address tried after a refused one", next_address)

    report.run("loopback refused without AllowInternalAddresses",
               lambda: expect(probe(sinks.port("good", "good", MX), ca=ca,
                                    extra=["--no-internal"]), "refused"))


def probe_records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    return [r for r in recs if r.get("record") == "probe"]


def daemon_cases(report, fx, sinks, work):
    # One sink serves every MX (ProbePort is one port): its certificate is
    # valid for mx.good.test only, so the other testing domains' MX hosts
    # get a certificate for another name.
    port = sinks.port("daemon-mx", "good", "mx.good.test")

    def world(names, hosts):
        for d, mx, pol_mx in (("good.test", "mx.good.test", "mx.good.test"),
                              ("wrongname.test", "mx.wrongname.test", "mx.wrongname.test"),
                              ("outside.test", "mail.elsewhere.test", "mx.outside.test"),
                              ("enf.test", "mx.enf.test", "mx.enf.test")):
            mode = "enforce" if d == "enf.test" else "testing"
            names["_mta-sts." + d] = {"TXT": [["v=STSv1; id=p%s1;" % mode]]}
            names["mta-sts." + d] = {"A": ["127.0.0.1"]}
            names[d] = {"MX": [[10, mx]]}
            names[mx] = {"A": ["127.0.0.1"]}
            hosts["mta-sts." + d] = {"body": "version: STSv1\r\nmode: %s\r\nmx: %s\r\n"
                                             "max_age: 86400\r\n" % (mode, pol_mx)}

    dmn = daemon.Daemon(fx, work, world=world,
                        extra="ProbePort %d\nProbeInterval 3600s\nProbeTimeout 10000ms\n" % port)
    try:
        sys.path.insert(0, HERE)
        from test_socketmap import Client
        c = Client(dmn.smap_port)
        for d in ("good.test", "wrongname.test", "outside.test", "enf.test"):
            c.ask("postfix", d)

        def records():
            return {(r["domain"], r["mx"]): r for r in probe_records(dmn.dlog)}

        def all_three():
            harness.wait_for(lambda: len(records()) >= 3, timeout=20,
                             msg="three probe records in %s" % dmn.dlog)
            recs = records()
            got = {k: recs[k]["result_type"] for k in recs}
            want = {("good.test", "mx.good.test"): "success",
                    ("wrongname.test", "mx.wrongname.test"): "certificate-host-mismatch",
                    ("outside.test", "mail.elsewhere.test"): "validation-failure"}
            assert got == want, "got %s, want %s" % (got, want)
            r = recs[("wrongname.test", "mx.wrongname.test")]
            assert r["mode"] == "testing" and r["policy_id"] == "ptesting1", r
            assert r["ip"] == "127.0.0.1" and r["in_policy"] is True, r
            o = recs[("outside.test", "mail.elsewhere.test")]
            assert o["ip"] is None and o["in_policy"] is False, o
        report.run("daemon probes testing-mode MX hosts into the decision log", all_three)

        def once_per_interval():
            before = len(probe_records(dmn.dlog))
            for d in ("good.test", "wrongname.test", "outside.test"):
                c.ask("postfix", d)
            time.sleep(1.0)
            after = len(probe_records(dmn.dlog))
            assert after == before, "got %d records after asking again, want %d" % (after,
                                                                                     before)
        report.run("asking again within ProbeInterval probes nothing", once_per_interval)

        def enforce_not_probed():
            assert not [r for r in probe_records(dmn.dlog) if r["domain"] == "enf.test"]
        report.run("enforce domains not probed by default", enforce_not_probed)

        def decisions_unchanged():
            # A decision reader that ignores unknown record kinds sees only
            # the socketmap's lookups (no decision lines) and no breakage.
            with open(dmn.dlog) as f:
                for line in f:
                    rec = json.loads(line)
                    assert rec.get("record") == "probe" or "queue_id" in rec, rec
                    assert rec.get("record") != "probe" or "queue_id" not in rec, rec
        report.run("probe records carry no decision fields", decisions_unchanged)
        c.close()
    finally:
        dmn.stop()


def main():
    report = harness.TestReport("MX probe")
    if not os.access(DRIVER, os.X_OK):
        report.skip("probe", "tests/probe/probe_driver not built")
        return report.finish()
    with harness.workdir("probe") as work, harness.Fixtures(work) as fx:
        sinks = Sinks(fx, work)
        try:
            probe_cases(report, fx, sinks)
            if harness.have_dnslib():
                os.makedirs(os.path.join(work, "daemon"))
                daemon_cases(report, fx, sinks, os.path.join(work, "daemon"))
            else:
                report.skip("daemon probes", "python3-dnslib not installed (DNS fixture)")
        finally:
            sinks.stop()
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
