#!/usr/bin/python3
"""The daemon's socketmap (Postfix socketmap_table(5), Sendmail socket
maps) over TCP and UNIX sockets with a netstring client: replies per
policy, key forms, pipelining, partial writes, malformed and oversized
requests, early disconnects, 1,000 concurrent connections, and Postfix's
own postmap.  Profiles from the config file (SocketmapProfile): servername,
strict_testing, on_fail with a short budget and with an unreachable DNS
server, match=exact, tlsrpt, dane / dane-only, a transport map, unknown
map names, LocalDomains, and a reload that changes a profile.  Policies
whose mx lines are words Postfix reads as match= keywords (hostname,
nexthop, dot-nexthop): left out of the answer, logged once.
"""

import os
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon  # noqa: E402
import harness  # noqa: E402

# The built-in profiles answer RFC 8461 4.1 exactly: "*.mx.enforce.test"
# becomes the MX host it matches (b.mx.enforce.test).
ENFORCE = "OK secure match=mx1.enforce.test:b.mx.enforce.test servername=hostname"
WILD_ENFORCE = "OK secure match=mx1.enforce.test:.mx.enforce.test servername=hostname"

PROFILES = """LocalDomains local.test
SocketmapProfile nosni servername=no
SocketmapProfile strict strict_testing=yes
SocketmapProfile exact match=exact
SocketmapProfile wild match=wildcard
SocketmapProfile rpt tlsrpt=yes servername=no
SocketmapProfile route kind=transport enforce=mtasts-enforce: testing= none=
SocketmapProfile short on_fail=temp budget=200ms
SocketmapProfile dane dane=dane
SocketmapProfile daneonly dane=dane-only
"""


def ns(payload):
    b = payload.encode() if isinstance(payload, str) else payload
    return b"%d:%s," % (len(b), b)


class Client:
    """port: a TCP port on 127.0.0.1, or the path of a UNIX socket."""

    def __init__(self, port):
        if isinstance(port, str):
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(10)
            self.s.connect(port)
        else:
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
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="mtasts-smap-test.") as work:
        fx = harness.Fixtures(work)
        dmn = None
        try:
            dmn = daemon.Daemon(fx, work, PROFILES, world=keyword_world)
            run_tests(report, dmn.smap_port, dmn)
            run_keyword_tests(report, dmn.smap_port, dmn)
            run_profile_tests(report, dmn.smap_port, dmn, fx)
            run_thousand(report, dmn.smap_port, dmn)
        finally:
            if dmn is not None:
                dmn.stop()
            fx.stop()
    with tempfile.TemporaryDirectory(prefix="mtasts-smap-unix.") as work:
        fx = harness.Fixtures(work)
        dmn = None
        try:
            # A DNS server that is not there: every lookup fails at once.
            dmn = daemon.Daemon(fx, work,
                                "SocketmapProfile postfix on_fail=temp budget=2s\n"
                                "SocketmapProfile open budget=2s\n",
                                smap_socket="unix:" + os.path.join(work, "smap.sock"),
                                dns_servers="127.0.0.1:%d" % harness.free_port())
            run_unix_tests(report, dmn.smap_path, dmn)
        finally:
            if dmn is not None:
                dmn.stop()
            fx.stop()
    return report.finish()


def raise_fd_limit():
    """1,000 client sockets plus the harness: lift the soft limit to the
    hard one (the daemon lifts its own at start)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def postmap_q(key, mapname, port):
    """(exit status, stdout) of postmap -q KEY socketmap:...:MAP, or None
    when Postfix is not installed."""
    postmap = shutil.which("postmap") or ("/usr/sbin/postmap"
                                          if os.path.exists("/usr/sbin/postmap") else None)
    if postmap is None:
        return None
    # A private config directory: the host's Postfix may not be set up.
    cfg = tempfile.mkdtemp(prefix="postmap-cfg.")
    try:
        with open(os.path.join(cfg, "main.cf"), "w") as f:
            f.write("compatibility_level = 3.6\n")
        p = subprocess.run([postmap, "-c", cfg, "-q", key,
                            "socketmap:inet:127.0.0.1:%d:%s" % (port, mapname)],
                           capture_output=True, text=True, timeout=30)
    finally:
        shutil.rmtree(cfg, ignore_errors=True)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def eq(got, want, what):
    assert got == want, "%s: got %r, want %r" % (what, got, want)


def run_profile_tests(report, port, dmn, fx):
    def sts(d, pre="mx1.%s:b.mx.%s", sni=" servername=hostname"):
        return "OK secure match=" + (pre % (d, d)) + sni

    def from_config():
        c = Client(port)
        eq(c.ask("nosni", "enforce.test"), sts("enforce.test", sni=""), "servername=no")
        eq(c.ask("strict", "testing.test"), sts("testing.test"), "strict_testing=yes")
        eq(c.ask("postfix", "testing.test"), "NOTFOUND ", "built-in postfix: testing")
        eq(c.ask("strict", "nopolicy.test"), "NOTFOUND ", "strict: no policy")
        eq(c.ask("nosuchmap", "enforce.test"), "PERM unknown map 'nosuchmap'", "unknown map")
        eq(c.ask("Postfix", "enforce.test"), "PERM unknown map 'Postfix'", "names are exact")
        eq(c.ask("sts", "enforce.test"), ENFORCE, "connection still usable after PERM")
        c.close()
    report.run("profiles from the config: servername=no, strict_testing, unknown map PERM",
               from_config)

    def exact():
        c = Client(port)
        # *.mx.enforce.test expands to the one MX host it matches, b.mx.
        eq(c.ask("exact", "enforce.test"), sts("enforce.test", "mx1.%s:b.mx.%s"), "exact")
        # MX mail.elsewhere.example: the literal mx1 stays, the wildcard
        # matches nothing and goes.
        eq(c.ask("exact", "badmx.test"), sts("badmx.test", "mx1.%s%.0s"), "exact, literal left")
        r = c.ask("exact", "wildonly.test")
        eq(r, "TEMP the MTA-STS policy of wildonly.test allows none of its MX hosts",
           "exact, nothing left: defer")
        eq(c.ask("postfix", "wildonly.test"), r, "built-in postfix: exact by default")
        eq(c.ask("wild", "wildonly.test"), "OK secure match=.mx.wildonly.test "
           "servername=hostname", "same domain, match=wildcard")
        eq(c.ask("wild", "enforce.test"), WILD_ENFORCE, "match=wildcard: any depth")
        eq(c.ask("postfix", "badmx.test"), sts("badmx.test", "mx1.%s%.0s"), "postfix, badmx")
        c.close()
    report.run("match=exact expands *. patterns into the current MX hosts; none left: TEMP",
               exact)

    def tlsrpt():
        c = Client(port)
        eq(c.ask("rpt", "enforce.test"),
           "OK secure match=mx1.enforce.test:b.mx.enforce.test policy_type=sts "
           "policy_domain=enforce.test mx_host_pattern=mx1.enforce.test "
           "mx_host_pattern=*.mx.enforce.test { policy_string = version: STSv1 } "
           "{ policy_string = mode: enforce } { policy_string = mx: mx1.enforce.test } "
           "{ policy_string = mx: *.mx.enforce.test } { policy_string = max_age: 86400 }",
           "tlsrpt=yes")
        eq(c.ask("rpt", "testing.test"), "NOTFOUND ", "tlsrpt, testing")
        c.close()
    report.run("tlsrpt=yes adds Postfix 3.10 TLSRPT attributes", tlsrpt)

    def on_fail_budget():
        c = Client(port)
        t0 = time.monotonic()
        r = c.ask("short", "slow2.test")  # asked by nobody else: not cached
        took = time.monotonic() - t0
        eq(r, "TEMP policy discovery still running after 200 ms", "budget 200ms, slow policy")
        assert took < 1.5, "budget 200 ms: answered after %.2f s" % took
        r = c.ask("short", "broken.test")
        assert r.startswith("TEMP DNS: "), "SERVFAIL with on_fail=temp: got %r" % r
        eq(c.ask("postfix", "broken.test"), "NOTFOUND ", "SERVFAIL, fail open")
        c.close()
    report.run("on_fail=temp with a 200 ms budget: TEMP for a slow and a failing domain",
               on_fail_budget)

    def dane():
        c = Client(port)
        eq(c.ask("dane", "dane.test"), "OK dane", "validated TLSA on every MX")
        eq(c.ask("postfix", "dane.test"), sts("dane.test"), "profile without dane")
        eq(c.ask("dane", "danepart.test"), sts("danepart.test"), "dane, one MX uncovered")
        eq(c.ask("daneonly", "danepart.test"), "OK dane-only", "dane-only, one MX covered")
        eq(c.ask("daneonly", "daneinsecure.test"), sts("daneinsecure.test"),
           "MX RRset not validated")
        eq(c.ask("daneonly", "daneunusable.test"), sts("daneunusable.test"),
           "TLSA usage 1 is not for SMTP")
        eq(c.ask("dane", "enforce.test"), ENFORCE, "no TLSA at all")
        c.close()
        assert fx.dns_queries("_25._tcp.mx1.dane.test", "TLSA") >= 1, "no TLSA query seen"
        assert fx.dns_queries("_25._tcp.mx1.daneinsecure.test", "TLSA") == 0, \
            "TLSA looked up below an MX RRset that was not validated"
    report.run("dane / dane-only from validated TLSA (AD bit) of the MX hosts", dane)

    def transport():
        c = Client(port)
        eq(c.ask("route", "user@enforce.test"), "OK mtasts-enforce:", "address key")
        eq(c.ask("route", "user+ext@ENFORCE.test"), "OK mtasts-enforce:", "extension")
        eq(c.ask("route", "enforce.test"), "OK mtasts-enforce:", "domain key")
        eq(c.ask("route", ".enforce.test"), "NOTFOUND ", "parent form")
        eq(c.ask("route", "*"), "NOTFOUND ", "wildcard")
        eq(c.ask("route", "user@testing.test"), "NOTFOUND ", "testing: empty transport")
        eq(c.ask("route", "user@nopolicy.test"), "NOTFOUND ", "no policy")
        eq(c.ask("route", "user@local.test"), "NOTFOUND ", "LocalDomains")
        c.close()
        assert fx.dns_queries("_mta-sts.local.test", "TXT") == 0, "a local domain was looked up"
        got = postmap_q("user@enforce.test", "route", port)
        if got is None:
            raise harness.Skip("postfix not installed (the netstring checks passed)")
        eq(got[:2], (0, "mtasts-enforce:"), "postmap -q user@enforce.test (%s)" % got[2])
        eq(postmap_q("enforce.test", "route", port)[:2], (0, "mtasts-enforce:"), "postmap domain")
        eq(postmap_q("user@testing.test", "route", port)[:2], (1, ""), "postmap testing")
    report.run("transport profile: address, domain, parent and * keys; postmap -q", transport)

    def reload_profile():
        before = Client(port)  # Postfix keeps its socketmap connections open
        eq(before.ask("nosni", "enforce.test"), sts("enforce.test", sni=""), "before reload")
        dmn.reload(PROFILES.replace("nosni servername=no", "nosni servername=yes strict_testing=yes"))

        def changed():
            return Client(port).ask("nosni", "testing.test") == sts("testing.test")
        harness.wait_for(changed, timeout=10, msg="the reloaded profile")
        eq(before.ask("nosni", "enforce.test"), sts("enforce.test"), "open connection, reloaded")
        eq(before.ask("nosni", "testing.test"), sts("testing.test"), "strict_testing now")
        # A broken profile: the reload is refused and the running one stays.
        dmn.reload(PROFILES + "SocketmapProfile nosni dane=maybe\n")
        harness.wait_for(lambda: "reload-failed" in open(dmn.errfile).read(), timeout=10,
                         msg="reload-failed in the log")
        eq(before.ask("nosni", "testing.test"), sts("testing.test"), "kept after a bad reload")
        dmn.reload(PROFILES)
        harness.wait_for(lambda: Client(port).ask("nosni", "enforce.test")
                         == sts("enforce.test", sni=""), timeout=10, msg="profiles restored")
        before.close()
    report.run("SIGHUP applies a changed profile, also on open connections; a bad one is refused",
               reload_profile)


KEYWORDS = ("hostname", "nexthop", "dot-nexthop")


def keyword_world(names, hosts):
    """Policies with mx lines that are valid single-label host names and
    Postfix match= keywords: alone (enforce and testing) and mixed with
    the usual mx1.D and *.mx.D patterns (the MX hosts are mx1.D, b.mx.D)."""
    for d, mode, mx in (("kwonly.test", "enforce", KEYWORDS),
                        ("kwmix.test", "enforce", ("hostname", "mx1.kwmix.test", "nexthop",
                                                   "*.mx.kwmix.test", "Dot-Nexthop")),
                        ("kwtesting.test", "testing", ("hostname",))):
        names["_mta-sts." + d] = {"TXT": [["v=STSv1; id=kw%s1;" % mode]]}
        names["mta-sts." + d] = {"A": ["127.0.0.1"]}
        names[d] = {"MX": [[10, "mx1." + d], [20, "b.mx." + d]]}
        hosts["mta-sts." + d] = {"body": "version: STSv1\r\nmode: %s\r\n%smax_age: 86400\r\n"
                                         % (mode, "".join("mx: %s\r\n" % m for m in mx))}
    # Enforce policies whose domain's MX lookup fails (SERVFAIL): with and
    # without a literal mx pattern beside the "*." one.
    for d, mx in (("mxfail.test", ("mx1.mxfail.test", "*.mx.mxfail.test")),
                  ("mxfailwild.test", ("*.mx.mxfailwild.test",))):
        names["_mta-sts." + d] = {"TXT": [["v=STSv1; id=mxf1;"]]}
        names["mta-sts." + d] = {"A": ["127.0.0.1"]}
        names[d] = {"rcode_by_type": {"MX": "SERVFAIL"}}
        hosts["mta-sts." + d] = {"body": "version: STSv1\r\nmode: enforce\r\n%smax_age: 86400\r\n"
                                         % "".join("mx: %s\r\n" % m for m in mx)}


def run_keyword_tests(report, port, dmn):
    nothing_left = ("TEMP the MTA-STS policy of kwonly.test allows none of its MX hosts "
                    "(left out, read by Postfix as keywords: hostname, nexthop, dot-nexthop)")

    def dropped_lines():
        with open(dmn.errfile, errors="replace") as f:
            return [ln for ln in f if "socketmap-mx-dropped" in ln]

    def replies():
        c = Client(port)
        for _ in range(3):
            eq(c.ask("wild", "kwmix.test"),
               "OK secure match=mx1.kwmix.test:.mx.kwmix.test servername=hostname", "mixed")
            eq(c.ask("sts", "kwmix.test"),
               "OK secure match=mx1.kwmix.test:b.mx.kwmix.test servername=hostname",
               "mixed, Sendmail map")
            eq(c.ask("exact", "kwmix.test"),
               "OK secure match=mx1.kwmix.test:b.mx.kwmix.test servername=hostname",
               "mixed, match=exact")
            eq(c.ask("postfix", "kwonly.test"), nothing_left, "keywords only, enforce: defer")
            eq(c.ask("sts", "kwonly.test"), nothing_left, "keywords only, Sendmail map")
            eq(c.ask("rpt", "kwonly.test"), nothing_left, "keywords only, tlsrpt=yes")
            eq(c.ask("postfix", "kwtesting.test"), "NOTFOUND ", "keywords only, testing")
            eq(c.ask("strict", "kwtesting.test"),
               nothing_left.replace("kwonly", "kwtesting").replace(", nexthop, dot-nexthop", ""),
               "keywords only, testing under strict_testing")
            eq(c.ask("route", "kwonly.test"), "OK mtasts-enforce:", "transport profile")
        c.close()
    report.run("mx hostname / nexthop / dot-nexthop never reach match=; none left: TEMP",
               replies)

    def logged_once():
        def both():
            ln = dropped_lines()
            return (any("domain=kwonly.test" in x for x in ln)
                    and any("domain=kwmix.test" in x for x in ln))
        harness.wait_for(both, timeout=5, msg="socketmap-mx-dropped lines")
        lines = dropped_lines()
        only = [x for x in lines if "domain=kwonly.test" in x]
        mix = [x for x in lines if "domain=kwmix.test" in x]
        eq(len(only), 1, "kwonly.test lines (once per domain and policy id): %r" % only)
        eq(len(mix), 1, "kwmix.test lines: %r" % mix)
        for want in ("id=kwenforce1", "dropped=hostname,nexthop,dot-nexthop", "left=0",
                     "reason=\"Postfix reads these mx patterns as match= keywords, "
                     "not host names: no MX host is left, mail is deferred\""):
            assert want in only[0], "kwonly.test line %r lacks %r" % (only[0], want)
        for want in ("id=kwenforce1", "dropped=hostname,nexthop,dot-nexthop", "left=2",
                     "reason=\"Postfix reads these mx patterns as match= keywords, "
                     "not host names\""):
            assert want in mix[0], "kwmix.test line %r lacks %r" % (mix[0], want)
        kwt = [x for x in lines if "domain=kwtesting.test" in x]
        eq(len(kwt), 1, "kwtesting.test lines (strict_testing built a match= list)")
    report.run("what was dropped is logged once per domain and policy id, with why",
               logged_once)

    def postmap():
        got = postmap_q("kwmix.test", "postfix", port)
        if got is None:
            raise harness.Skip("postfix not installed (the netstring checks passed)")
        eq(got[:2], (0, "secure match=mx1.kwmix.test:b.mx.kwmix.test servername=hostname"),
           "postmap -q kwmix.test (%s)" % got[2])
        rc, out, err = postmap_q("kwonly.test", "postfix", port)
        assert rc != 0 and out == "", "postmap -q kwonly.test: got %r, want a failed lookup" % (
            (rc, out, err),)
        assert "allows none of its MX hosts" in err, "postmap's error: %r" % err
    report.run("postmap -q through Postfix's socketmap client: mixed policy sane, "
               "keywords only a lookup failure", postmap)

    def mx_lookup_failed():
        c = Client(port)
        for _ in range(2):
            eq(c.ask("postfix", "mxfail.test"), "OK secure match=mx1.mxfail.test "
               "servername=hostname", "MX lookup failed: the literal name only")
            eq(c.ask("postfix", "mxfailwild.test"),
               "TEMP MX hosts of mxfailwild.test not known (their lookup failed): no host "
               "allowed by its MTA-STS policy can be named", "MX lookup failed, *. only")
            eq(c.ask("wild", "mxfailwild.test"), "OK secure match=.mx.mxfailwild.test "
               "servername=hostname", "match=wildcard needs no MX hosts")
        c.close()

        def lines():
            with open(dmn.errfile, errors="replace") as f:
                return [ln for ln in f if "socketmap-mx-unknown" in ln]
        harness.wait_for(lambda: len(lines()) >= 2, timeout=5, msg="socketmap-mx-unknown lines")
        got = lines()
        one = [x for x in got if "domain=mxfail.test" in x]
        wild = [x for x in got if "domain=mxfailwild.test" in x]
        eq((len(one), len(wild)), (1, 1), "lines once per domain and policy id: %r" % got)
        for want in ("id=mxf1", "unexpanded=1", "left=1",
                     "only the policy's literal mx names are allowed meanwhile"):
            assert want in one[0], "%r lacks %r" % (one[0], want)
        for want in ("unexpanded=1", "left=0", "mail is deferred until they are known"):
            assert want in wild[0], "%r lacks %r" % (wild[0], want)
    report.run("match=exact, MX lookup failed: literal names only, none left: TEMP; "
               "logged once with why", mx_lookup_failed)

    def not_allowed_logged():
        c = Client(port)
        c.ask("postfix", "wildonly.test")
        c.close()

        def lines():
            with open(dmn.errfile, errors="replace") as f:
                return [ln for ln in f if "socketmap-mx-not-allowed" in ln and
                        "domain=wildonly.test" in ln]
        harness.wait_for(lambda: lines(), timeout=5, msg="socketmap-mx-not-allowed line")
        ln = lines()
        eq(len(ln), 1, "wildonly.test lines: %r" % ln)
        assert "mx_hosts=1" in ln[0] and "mail is deferred" in ln[0], ln[0]
    report.run("match=exact, no MX host allowed by the policy: TEMP, logged once with why",
               not_allowed_logged)


def run_thousand(report, port, dmn):
    def thousand():
        n = 1000
        sel = selectors.DefaultSelector()
        socks, want, got, bufs = [], {}, {}, {}
        try:
            for i in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                socks.append(s)
            # All 1000 stay open until the end; each sends once connected.
            for i, s in enumerate(socks):
                dom = ("enforce.test", "nopolicy.test", "testing.test")[i % 3]
                want[i] = {"enforce.test": ENFORCE}.get(dom, "NOTFOUND ")
                bufs[i] = b""
                sel.register(s, selectors.EVENT_WRITE, (i, ns("postfix " + dom)))
            pending = set(range(n))
            deadline = time.monotonic() + 60
            while pending and time.monotonic() < deadline:
                for key, ev in sel.select(timeout=1):
                    i, out = key.data
                    s = key.fileobj
                    if ev & selectors.EVENT_WRITE:
                        try:
                            sent = s.send(out)
                        except BlockingIOError:
                            continue
                        out = out[sent:]
                        sel.modify(s, selectors.EVENT_READ if not out else selectors.EVENT_WRITE,
                                   (i, out))
                        continue
                    chunk = s.recv(4096)
                    if not chunk:
                        raise AssertionError("connection %d closed with %r" % (i, bufs[i]))
                    bufs[i] += chunk
                    if bufs[i].endswith(b","):
                        got[i] = bufs[i].split(b":", 1)[1][:-1].decode()
                        pending.discard(i)
                        sel.unregister(s)
            assert not pending, "%d of %d connections unanswered after 60 s" % (len(pending), n)
            for i in range(n):
                eq(got[i], want[i], "connection %d" % i)
            assert dmn.proc.poll() is None, "daemon died"
        finally:
            sel.close()
            for s in socks:
                s.close()
    report.run("1000 concurrent connections, all open at once, each answered", thousand)


def run_unix_tests(report, path, dmn):
    def basics():
        c = Client(path)
        r = c.ask("postfix", "enforce.test")
        assert r.startswith("TEMP "), "unreachable DNS, on_fail=temp: got %r" % r
        eq(c.ask("open", "enforce.test"), "NOTFOUND ", "unreachable DNS, fail open")
        eq(c.ask("open", "192.0.2.1"), "NOTFOUND ", "IP literal over UNIX")
        c.close()
    report.run("UNIX socket; unreachable DNS server: on_fail=temp TEMP, default NOTFOUND",
               basics)

    def partial_and_bad():
        c = Client(path)
        for byte in ns("open enforce.test"):
            c.send(bytes([byte]))
        eq(c.reply(), "NOTFOUND ", "byte by byte over UNIX")
        c.close()
        for bad in (b"99999:", b"3:abcd,", b"x:"):
            c = Client(path)
            c.send(bad)
            r = c.reply()
            assert r.startswith("PERM "), "%r: got %r" % (bad, r)
            assert c.closed(), "%r: connection left open" % bad
            c.close()
        for data in (b"", b"30:open enf", ns("postfix enforce2.test")):
            c = Client(path)
            if data:
                c.send(data)
            c.close()
        c = Client(path)
        eq(c.ask("open", "testing.test"), "NOTFOUND ", "still serving")
        c.close()
        assert dmn.proc.poll() is None, "daemon died"
    report.run("UNIX socket: partial writes, bad lengths, early disconnects", partial_and_bad)


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
        # Not a domain name: no policy can exist, deliver as usual (not PERM,
        # which would make Postfix defer the mail).
        for key in ("bad_domain!.test", "under_score.test"):
            eq(c.ask("postfix", key), "NOTFOUND ", key)
        c.close()
    report.run("keys as Postfix and Sendmail send them; parent probes, IPs, non-domains NOTFOUND",
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
