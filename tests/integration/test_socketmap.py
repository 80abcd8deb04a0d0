#!/usr/bin/python3
"""The daemon's socketmap (Postfix socketmap_table(5), Sendmail socket
maps) over TCP with a netstring client: replies per policy, key forms,
pipelining, partial writes, malformed and oversized requests, early
disconnects, many concurrent connections, and Postfix's own postmap.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon  # noqa: E402
import harness  # noqa: E402

ENFORCE = "OK secure match=mx1.enforce.test:.mx.enforce.test servername=hostname"


def ns(payload):
    b = payload.encode() if isinstance(payload, str) else payload
    return b"%d:%s," % (len(b), b)


class Client:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def reply(self):
        while True:
            if b":" in self.buf:
                n, rest = self.buf.split(b":", 1)
                n = int(n)
                if len(rest) >= n + 1:
                    assert rest[n:n + 1] == b",", "reply not terminated by ','"
                    self.buf = rest[n + 1:]
                    return rest[:n].decode()
            chunk = self.s.recv(65536)
            if not chunk:
                raise AssertionError("connection closed, buffer %r" % self.buf)
            self.buf += chunk

    def ask(self, name, key):
        self.send(ns("%s %s" % (name, key)))
        return self.reply()

    def closed(self):
        try:
            return self.s.recv(1) == b""
        except OSError:
            return True

    def close(self):
        self.s.close()


def main():
    report = harness.TestReport("socketmap")
    if not os.access(daemon.MILTER, os.X_OK):
        report.skip("socketmap", "%s not built" % daemon.MILTER)
        return report.finish()
    with tempfile.TemporaryDirectory(prefix="mtasts-smap-test.") as work:
        fx = harness.Fixtures(work)
        dmn = None
        try:
            dmn = daemon.Daemon(fx, work)
            run_tests(report, dmn.smap_port, dmn)
        finally:
            if dmn is not None:
                dmn.stop()
            fx.stop()
    return report.finish()


def run_tests(report, port, dmn):
    def eq(got, want, what):
        assert got == want, "%s: got %r, want %r" % (what, got, want)

    def replies():
        c = Client(port)
        eq(c.ask("postfix", "enforce.test"), ENFORCE, "enforce")
        eq(c.ask("postfix", "testing.test"), "NOTFOUND ", "testing")
        eq(c.ask("postfix", "nopolicy.test"), "NOTFOUND ", "no policy")
        eq(c.ask("postfix", "broken.test"), "NOTFOUND ", "DNS failure (fail open)")
        eq(c.ask("sts", "enforce.test"), ENFORCE, "Sendmail map name")
        c.close()
    report.run("replies: enforce secure, testing/none/failure NOTFOUND", replies)

    def key_forms():
        c = Client(port)
        for key in ("enforce.test.", "ENFORCE.Test", "[enforce.test]", "[enforce.test]:25",
                    "enforce.test:587"):
            eq(c.ask("postfix", key), ENFORCE, key)
        for key in (".enforce.test", "192.0.2.1", "[192.0.2.1]", "[IPv6:2001:db8::1]",
                    "[2001:db8::1]:25"):
            eq(c.ask("postfix", key), "NOTFOUND ", key)
        r = c.ask("postfix", "bad_domain!.test")
        assert r.startswith("PERM "), "bad key: got %r" % r
        c.close()
    report.run("keys as Postfix and Sendmail send them; parent probes and IPs NOTFOUND",
               key_forms)

    def pipelining():
        c = Client(port)
        c.send(ns("postfix enforce.test") + ns("postfix testing.test") + ns("sts enforce.test"))
        eq([c.reply(), c.reply(), c.reply()], [ENFORCE, "NOTFOUND ", ENFORCE], "in order")
        c.close()
    report.run("pipelined requests are answered in order", pipelining)

    def long_pipeline():
        # Far more than the input buffer and the output buffer hold: requests
        # are answered as they arrive and reading waits for the client.
        n = 2000
        c = Client(port)
        reqs = b"".join(ns("postfix %s" % ("enforce.test" if i % 2 == 0 else "nopolicy.test"))
                        for i in range(n))
        t = threading.Thread(target=c.send, args=(reqs,))
        t.start()
        got = [c.reply() for _ in range(n)]
        t.join(30)
        for i, r in enumerate(got):
            eq(r, ENFORCE if i % 2 == 0 else "NOTFOUND ", "pipelined reply %d" % i)
        c.close()
    report.run("2000 pipelined requests in one write (60 KiB) are all answered", long_pipeline)

    def partial_writes():
        c = Client(port)
        for byte in ns("postfix enforce.test"):
            c.send(bytes([byte]))
        eq(c.reply(), ENFORCE, "byte by byte")
        c.close()
    report.run("a request written one byte at a time", partial_writes)

    def malformed():
        for bad, what in ((b"abc", "no length"), (b"5x", "no colon"), (b"3:abcX", "no comma"),
                          (b"99999:", "oversized"), (b"12345678:", "too many digits")):
            c = Client(port)
            c.send(bad)
            r = c.reply()
            assert r.startswith("PERM "), "%s: got %r" % (what, r)
            assert c.closed(), "%s: connection left open" % what
            c.close()
        c = Client(port)
        c.send(ns("postfix"))
        assert c.reply().startswith("PERM "), "request without a key"
        c.close()
    report.run("malformed, oversized or keyless requests get PERM and a close", malformed)

    def early_disconnects():
        for data in (b"", b"20:postfix enf", ns("postfix slow.test")):
            c = Client(port)
            if data:
                c.send(data)
            c.close()
        c = Client(port)
        eq(c.ask("postfix", "enforce.test"), ENFORCE, "still serving")
        c.close()
        assert dmn.proc.poll() is None, "daemon died"
    report.run("early disconnects, mid-request and mid-lookup, harm nothing", early_disconnects)

    def concurrent():
        n = 500
        results, errors = [None] * n, []

        def one(i):
            try:
                c = Client(port)
                results[i] = c.ask("postfix", "enforce.test" if i % 2 == 0 else "nopolicy.test")
                c.close()
            except Exception as e:  # reported below
                errors.append(repr(e))
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, "%d errors, first %s" % (len(errors), errors[0])
        for i, r in enumerate(results):
            eq(r, ENFORCE if i % 2 == 0 else "NOTFOUND ", "connection %d" % i)
    report.run("500 concurrent connections", concurrent)

    def cold_domain_waits():
        c = Client(port)
        eq(c.ask("postfix", "enforce2.test"), ENFORCE.replace("enforce.test", "enforce2.test"),
           "cold domain answered after discovery")
        c.close()
    report.run("a cold domain is discovered within the budget", cold_domain_waits)

    postmap = shutil.which("postmap") or ("/usr/sbin/postmap" if os.path.exists("/usr/sbin/postmap")
                                          else None)
    if postmap is None:
        report.skip("postmap -q", "postfix not installed")
    else:
        def with_postmap():
            # A private config directory: the host's Postfix may not be set up.
            cfg = tempfile.mkdtemp(prefix="postmap-cfg.")
            with open(os.path.join(cfg, "main.cf"), "w") as f:
                f.write("compatibility_level = 3.6\n")
            base = [postmap, "-c", cfg, "-q"]
            p = subprocess.run(base + ["enforce.test", "socketmap:inet:127.0.0.1:%d:postfix" % port],
                               capture_output=True, text=True, timeout=30)
            eq(p.stdout.strip(), ENFORCE[3:], "postmap -q (%s)" % p.stderr.strip())
            p = subprocess.run(base + ["nopolicy.test", "socketmap:inet:127.0.0.1:%d:postfix" % port],
                               capture_output=True, text=True, timeout=30)
            shutil.rmtree(cfg, ignore_errors=True)
            eq((p.returncode, p.stdout), (1, ""), "postmap -q of a domain without policy")
        report.run("postmap -q through Postfix's socketmap client", with_postmap)


if __name__ == "__main__":
    sys.exit(main())
