"""Start the real mtasts-milter against the DNS/HTTPS fixtures, for the
tests that talk to it (milter protocol, socketmap).

The world: enforce.test, enforce2.test, badmx.test (enforce), testing.test
(testing), slow.test and slow2.test (enforce, policy host answers after 2.5 s),
broken.test (SERVFAIL), anything else: no MTA-STS.  Each policy has
"mx: mx1.D" and "mx: *.mx.D"; the MX hosts are mx1.D and b.mx.D.
wildonly.test: policy "mx: *.mx.wildonly.test" only, MX elsewhere.
DANE (all enforce; "validated" = the DNS fixture sets the AD bit):
dane.test (validated MX, usable validated TLSA for both MX hosts),
danepart.test (... for mx1 only), daneinsecure.test (TLSA validated, MX
not), daneunusable.test (validated TLSA with usage 1, PKIX-EE).
"""

import os
import signal
import subprocess

import harness

TOP_BUILDDIR = os.environ.get("top_builddir") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")
MILTER = os.path.join(TOP_BUILDDIR, "milter", "mtasts-milter")

POLICY = "version: STSv1\r\nmode: %s\r\nmx: mx1.%s\r\nmx: *.mx.%s\r\nmax_age: 86400\r\n"


def stop_process(proc):
    """SIGTERM, then SIGKILL if it has not exited after 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Daemon:
    """extra: more config lines.  smap_socket: SocketmapSocket (default a
    free TCP port, self.smap_port); a "unix:PATH" socket is self.smap_path.
    dns_servers: DNSServers instead of the DNS fixture (it still runs).
    world: world(names, hosts) adds to the fixtures' zone and policy hosts
    before they start.  milter_socket: Socket (default a free TCP port,
    self.milter_port).  dns_timeout, https_timeout: DNSTimeout, HTTPSTimeout.
    cache_store: CacheStore (default none).  args: more command-line
    arguments (e.g. -v); env: the daemon's environment."""

    def __init__(self, fx, work, extra="", smap_socket=None, dns_servers=None, world=None,
                 milter_socket=None, dns_timeout="300ms", https_timeout="5s",
                 cache_store="none", args=(), env=None):
        names, hosts = {}, {}
        for d, mode in (("enforce.test", "enforce"), ("testing.test", "testing"),
                        ("enforce2.test", "enforce"), ("slow.test", "enforce"),
                        ("badmx.test", "enforce"), ("wildonly.test", "enforce"),
                        ("slow2.test", "enforce"),
                        ("dane.test", "enforce"), ("danepart.test", "enforce"),
                        ("daneinsecure.test", "enforce"), ("daneunusable.test", "enforce")):
            names["_mta-sts." + d] = {"TXT": [["v=STSv1; id=%s1;" % mode]]}
            names["mta-sts." + d] = {"A": ["127.0.0.1"]}
            names[d] = {"MX": [[10, "mx1." + d], [20, "b.mx." + d]]}
            hosts["mta-sts." + d] = {"body": POLICY % (mode, d, d)}
        # An enforce policy that allows none of the domain's MX hosts.
        names["badmx.test"] = {"MX": [[10, "mail.elsewhere.example"]]}
        hosts["mta-sts.slow.test"]["delay_ms"] = 2500
        hosts["mta-sts.slow2.test"]["delay_ms"] = 2500
        names["_mta-sts.broken.test"] = {"rcode": "SERVFAIL"}
        names["wildonly.test"] = {"MX": [[10, "mail.elsewhere.example"]]}
        hosts["mta-sts.wildonly.test"]["body"] = ("version: STSv1\r\nmode: enforce\r\n"
                                                  "mx: *.mx.wildonly.test\r\nmax_age: 86400\r\n")
        ee = [3, 1, 1, "5c" * 32]       # DANE-EE SPKI SHA-256: usable for SMTP
        for d, ad_mx, tlsa in (("dane.test", True, {"mx1": ee, "b.mx": ee}),
                               ("danepart.test", True, {"mx1": ee}),
                               ("daneinsecure.test", False, {"mx1": ee, "b.mx": ee}),
                               ("daneunusable.test", True,
                                {"mx1": [1, 1, 1, "5c" * 32], "b.mx": [1, 1, 1, "5c" * 32]})):
            names[d]["ad"] = ad_mx
            for host, rr in tlsa.items():
                names["_25._tcp.%s.%s" % (host, d)] = {"ad": True, "TLSA": [rr]}
        if world is not None:
            world(names, hosts)
        dns_port = fx.start_dns({"names": names, "default": "NXDOMAIN"})
        https_port = fx.start_https({"hosts": hosts, "default_cert": "good"})
        self.milter_port = harness.free_port()
        self.smap_port = harness.free_port()
        self.smap_socket = smap_socket or "inet:%d@127.0.0.1" % self.smap_port
        self.smap_path = (self.smap_socket.split(":", 1)[1]
                          if self.smap_socket.startswith("unix:") else None)
        self.sock = milter_socket or "inet:%d@127.0.0.1" % self.milter_port
        self.dlog = os.path.join(work, "decisions.json")
        self.errfile = os.path.join(work, "milter.err")
        conf = self.conf = os.path.join(work, "milter.conf")
        with open(conf, "w") as f:
            f.write("Socket %s\nSocketmapSocket %s\nCacheStore %s\n"
                    "DNSServers %s\nDNSTimeout %s\nDNSTries 1\nCAFile %s\n"
                    "PolicyPort %d\nAllowInternalAddresses yes\nHTTPSTimeout %s\n"
                    "DecisionLog %s\nEnvelopeTimeout 1000ms\n"
                    % (self.sock, self.smap_socket, cache_store, dns_servers or "127.0.0.1:%d" % dns_port,
                       dns_timeout, fx.ca_file, https_port, https_timeout, self.dlog))
            if os.geteuid() == 0:
                f.write("UserID root\n")
            f.write(extra)
        self.extra = extra
        self.errlog = open(self.errfile, "w")
        self.proc = subprocess.Popen([MILTER, "-f", "-c", conf] + list(args),
                                     stdout=self.errlog, stderr=self.errlog, env=env)
        harness.wait_for(self._listening, timeout=10, msg="mtasts-milter listening")

    def _listening(self):
        import socket
        if self.proc.poll() is not None:
            raise AssertionError("mtasts-milter exited: %s" % open(self.errfile).read()[-2000:])
        ends = [self.sock[5:] if self.sock.startswith("unix:") else self.milter_port,
                self.smap_path if self.smap_path is not None else self.smap_port]
        for end in ends:
            if isinstance(end, int):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                addr = ("127.0.0.1", end)
            else:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                addr = end
            try:
                s.settimeout(0.2)
                s.connect(addr)
            except OSError:
                return False
            finally:
                s.close()
        return True

    def reload(self, extra):
        """Replace the extra config lines and SIGHUP; the caller waits for
        the effect it wants to see."""
        with open(self.conf) as f:
            text = f.read()
        base = text[:len(text) - len(self.extra)] if self.extra else text
        self.extra = extra
        with open(self.conf, "w") as f:
            f.write(base + extra)
        self.proc.send_signal(signal.SIGHUP)

    def stop(self):
        stop_process(self.proc)
        self.errlog.close()
        tail = open(self.errfile).read()[-3000:]
        print("---- mtasts-milter log (tail) ----\n" + tail)
