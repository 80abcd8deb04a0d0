"""Start the real mtasts-milter against the DNS/HTTPS fixtures, for the
tests that talk to it (milter protocol, socketmap).

The world: enforce.test, enforce2.test, badmx.test (enforce), testing.test
(testing), slow.test (enforce, policy host answers after 2.5 s),
broken.test (SERVFAIL), anything else: no MTA-STS.
"""

import os
import signal
import subprocess

import harness

TOP_BUILDDIR = os.environ.get("top_builddir") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")
MILTER = os.path.join(TOP_BUILDDIR, "milter", "mtasts-milter")

POLICY = "version: STSv1\r\nmode: %s\r\nmx: mx1.%s\r\nmx: *.mx.%s\r\nmax_age: 86400\r\n"


class Daemon:
    def __init__(self, fx, work, extra=""):
        names, hosts = {}, {}
        for d, mode in (("enforce.test", "enforce"), ("testing.test", "testing"),
                        ("enforce2.test", "enforce"), ("slow.test", "enforce"),
                        ("badmx.test", "enforce")):
            names["_mta-sts." + d] = {"TXT": [["v=STSv1; id=%s1;" % mode]]}
            names["mta-sts." + d] = {"A": ["127.0.0.1"]}
            names[d] = {"MX": [[10, "mx1." + d], [20, "b.mx." + d]]}
            hosts["mta-sts." + d] = {"body": POLICY % (mode, d, d)}
        # An enforce policy that allows none of the domain's MX hosts.
        names["badmx.test"] = {"MX": [[10, "mail.elsewhere.example"]]}
        hosts["mta-sts.slow.test"]["delay_ms"] = 2500
        names["_mta-sts.broken.test"] = {"rcode": "SERVFAIL"}
        dns_port = fx.start_dns({"names": names, "default": "NXDOMAIN"})
        https_port = fx.start_https({"hosts": hosts, "default_cert": "good"})
        self.milter_port = harness.free_port()
        self.smap_port = harness.free_port()
        self.sock = "inet:%d@127.0.0.1" % self.milter_port
        self.dlog = os.path.join(work, "decisions.json")
        self.errfile = os.path.join(work, "milter.err")
        conf = self.conf = os.path.join(work, "milter.conf")
        with open(conf, "w") as f:
            f.write("Socket %s\nSocketmapSocket inet:%d@127.0.0.1\nCacheStore none\n"
                    "DNSServers 127.0.0.1:%d\nDNSTimeout 300ms\nDNSTries 1\nCAFile %s\n"
                    "PolicyPort %d\nHTTPSTimeout 5s\nDecisionLog %s\nEnvelopeTimeout 1000ms\n"
                    % (self.sock, self.smap_port, dns_port, fx.ca_file, https_port, self.dlog))
            if os.geteuid() == 0:
                f.write("UserID root\n")
            f.write(extra)
        self.errlog = open(self.errfile, "w")
        self.proc = subprocess.Popen([MILTER, "-f", "-c", conf], stdout=self.errlog,
                                     stderr=self.errlog)
        harness.wait_for(self._listening, timeout=10, msg="mtasts-milter listening")

    def _listening(self):
        import socket
        if self.proc.poll() is not None:
            raise AssertionError("mtasts-milter exited: %s" % open(self.errfile).read()[-2000:])
        for port in (self.milter_port, self.smap_port):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            except OSError:
                return False
        return True

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errlog.close()
        tail = open(self.errfile).read()[-3000:]
        print("---- mtasts-milter log (tail) ----\n" + tail)
