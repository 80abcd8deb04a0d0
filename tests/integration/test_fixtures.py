#!/usr/bin/python3
"""Self-test of the network fixtures (dnsd.py, httpsd.py, mkcerts.sh) with
plain Python clients, so a failure in the C tests can be trusted to be the
C code's.  Run by automake with cwd = build dir; writes only to a temp dir.
"""

import http.client
import os
import shutil
import socket
import ssl
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True      # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(
    os.environ.get("top_srcdir")
    or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."),
    "tests", "integration"))

from harness import (Fixtures, FixtureError, Skip, TestReport,  # noqa: E402
                     free_port, wait_for)

try:
    from dnslib import DNSRecord, QTYPE, RCODE
except ImportError:
    DNSRecord = None

POLICY = "/.well-known/mta-sts.txt"
POLICY_BODY = ("version: STSv1\r\nmode: enforce\r\nmx: mx1.good.test\r\n"
               "max_age: 86400\r\n")

ZONE = {
    "names": {
        "signed.test": {"ad": True, "MX": [[10, "mx.signed.test"]]},
        "_25._tcp.mx.signed.test": {"ad": True, "TLSA": [[3, 1, 1, "3f2a" * 16]]},
        "_25._tcp.unsigned.test": {"TLSA": [[3, 1, 1, "3f2a" * 16]]},
        "_mta-sts.good.test": {"TXT": [["v=STSv1; ", "id=20240101;"],
                                       ["unrelated record"]]},
        "long.test": {"TXT": [["a" * 300], ["b" * 255, "c" * 255]]},
        "good.test": {"MX": [[10, "mx1.good.test"], [20, "mx2.good.test"]],
                      "A": ["127.0.0.1"]},
        "mx1.good.test": {"A": ["127.0.0.1"], "AAAA": ["::1"]},
        "alias.test": {"CNAME": "good.test"},
        "alias-only.test": {"CNAME": "good.test", "cname_only": True},
        "alias-out.test": {"CNAME": "elsewhere.example"},
        "servfail.test": {"rcode": "SERVFAIL"},
        "refused.test": {"rcode": "REFUSED"},
        "mixed.test": {"A": ["127.0.0.1"], "rcode_by_type": {"MX": "SERVFAIL"},
                       "timeout_by_type": ["AAAA"]},
        "dead.test": {"timeout": True},
        "slow.test": {"delay_ms": 300, "TXT": [["slow"]]},
        "tc.test": {"truncate": True, "TXT": [["needs tcp"]]},
        "*.wild.test": {"TXT": [["wildcard"]]},
    },
    "default": "NXDOMAIN",
}

SCENARIOS = {
    "hosts": {
        "mta-sts.good.test": {"body": POLICY_BODY,
                              "content_type": "text/plain; charset=utf-8",
                              "headers": {"Cache-Control": "max-age=60"}},
        "mta-sts.wild.test": {"cert": "wildcard", "body": POLICY_BODY},
        "mta-sts.wrongname.test": {"cert": "wrongname"},
        "mta-sts.expired.test": {"cert": "expired"},
        "mta-sts.notyet.test": {"cert": "notyetvalid"},
        "mta-sts.self.test": {"cert": "selfsigned"},
        "mta-sts.untrusted.test": {"cert": "untrusted"},
        "mta-sts.404.test": {"status": 404, "body": "gone\n"},
        "mta-sts.html.test": {"content_type": "text/html", "body": "<p>x"},
        "mta-sts.noctype.test": {"content_type": None, "body": "x"},
        "mta-sts.redirect.test": {"status": 301,
                                  "location": "https://mta-sts.good.test/"},
        "mta-sts.big.test": {"body": "0123456789abcdef",
                             "body_repeat": 4096},
        "mta-sts.short.test": {"body": "x" * 1000, "close_early": True},
        "mta-sts.drip.test": {"body": "abcdefghij", "drip_ms": 30},
        "mta-sts.delay.test": {"body": "late", "delay_ms": 300},
        "mta-sts.plain.test": {"no_tls": True},
        "mta-sts.anypath.test": {"any_path": True, "body": "any"},
    },
    "default_cert": "good",
}


# ------------------------------------------------------------------ clients

def dns_query(port, name, qtype, tcp=False, timeout=2.0):
    q = DNSRecord.question(name, qtype)
    return DNSRecord.parse(q.send("127.0.0.1", port, tcp=tcp,
                                  timeout=timeout))


def txt_rrs(reply):
    """TXT answers as lists of byte strings, one list per RR."""
    return [list(rr.rdata.data) for rr in reply.rr
            if rr.rtype == QTYPE.TXT]


class SNIConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with SNI/Host/cert check for a test host name
    (the names do not resolve, which is the point)."""

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port),
                                        self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class Env:
    def __init__(self, fx):
        self.fx = fx
        self.dns = None
        self.https = None

    def ctx(self, verify=True):
        ctx = ssl.create_default_context(cafile=self.fx.ca_file)
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def get(self, host, path=POLICY, verify=True, method="GET", port=None,
            timeout=5.0):
        """(status, headers dict lowercased, body bytes)."""
        conn = SNIConnection(host, port or self.https, context=self.ctx(verify),
                             timeout=timeout)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            body = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            return resp.status, hdrs, body
        finally:
            conn.close()


# ------------------------------------------------------------------- DNS

def t_txt_multistring(env):
    for tcp in (False, True):
        r = dns_query(env.dns, "_mta-sts.good.test", "TXT", tcp=tcp)
        assert r.header.rcode == RCODE.NOERROR, r
        rrs = txt_rrs(r)
        assert len(rrs) == 2, "want 2 TXT RRs, got %r" % rrs
        assert [b"v=STSv1; ", b"id=20240101;"] in rrs, rrs
        assert [b"unrelated record"] in rrs, rrs


def t_txt_long(env):
    r = dns_query(env.dns, "long.test", "TXT", tcp=True)
    rrs = txt_rrs(r)
    assert [b"a" * 255, b"a" * 45] in rrs, "300-byte string not split: %r" % [
        [len(s) for s in rr] for rr in rrs]
    assert [b"b" * 255, b"c" * 255] in rrs


def t_rcodes(env):
    cases = [("nope.test", "A", RCODE.NXDOMAIN),
             ("good.test", "AAAA", RCODE.NOERROR),        # NODATA
             ("servfail.test", "TXT", RCODE.SERVFAIL),
             ("refused.test", "A", RCODE.REFUSED),
             ("mixed.test", "MX", RCODE.SERVFAIL),
             ("mixed.test", "A", RCODE.NOERROR)]
    for name, qtype, rcode in cases:
        r = dns_query(env.dns, name, qtype)
        assert r.header.rcode == rcode, "%s/%s: rcode %s, want %s" % (
            name, qtype, RCODE.get(r.header.rcode), RCODE.get(rcode))
    nodata = dns_query(env.dns, "good.test", "AAAA")
    assert not nodata.rr, "NODATA must have no answers"
    assert any(a.rtype == QTYPE.SOA for a in nodata.auth), "no SOA in NODATA"
    nx = dns_query(env.dns, "nope.test", "A")
    assert any(a.rtype == QTYPE.SOA for a in nx.auth), "no SOA in NXDOMAIN"
    mx = dns_query(env.dns, "good.test", "MX")
    assert sorted((rr.rdata.preference, str(rr.rdata.label)) for rr in mx.rr) \
        == [(10, "mx1.good.test."), (20, "mx2.good.test.")], mx


def t_timeout(env):
    for name, qtype in (("dead.test", "TXT"), ("mixed.test", "AAAA")):
        for tcp in (False, True):
            t0 = time.monotonic()
            try:
                dns_query(env.dns, name, qtype, tcp=tcp, timeout=1.0)
            except socket.timeout:
                pass
            else:
                raise AssertionError("%s/%s answered (tcp=%s)" % (name, qtype,
                                                                  tcp))
            assert time.monotonic() - t0 >= 0.9


def t_cname(env):
    r = dns_query(env.dns, "alias.test", "A")
    types = [QTYPE.get(rr.rtype) for rr in r.rr]
    assert types == ["CNAME", "A"], "in-zone CNAME: %s" % types
    assert str(r.rr[1].rname) == "good.test."
    r = dns_query(env.dns, "alias-only.test", "A")
    assert [QTYPE.get(rr.rtype) for rr in r.rr] == ["CNAME"], r
    r = dns_query(env.dns, "alias-out.test", "TXT")
    assert [QTYPE.get(rr.rtype) for rr in r.rr] == ["CNAME"], r
    assert r.header.rcode == RCODE.NOERROR
    r = dns_query(env.dns, "alias.test", "CNAME")
    assert [QTYPE.get(rr.rtype) for rr in r.rr] == ["CNAME"], r


def t_ad_bit(env):
    def ask(name, qtype, ad):
        q = DNSRecord.question(name, qtype)
        q.header.ad = ad
        return DNSRecord.parse(q.send("127.0.0.1", env.dns, timeout=2.0))
    r = ask("signed.test", "MX", 1)
    assert r.header.ad == 1 and len(r.rr) == 1, "validated data, AD asked: %s" % r
    r = ask("_25._tcp.mx.signed.test", "TLSA", 0)
    assert r.header.ad == 1, "validated data, AD not asked (a validator sets it): %s" % r
    assert [QTYPE.get(rr.rtype) for rr in r.rr] == ["TLSA"], r
    for name, qtype in (("_25._tcp.unsigned.test", "TLSA"), ("good.test", "A"),
                        ("nothing-here.test", "A")):
        r = ask(name, qtype, 1)
        assert r.header.ad == 0, "%s %s: AD echoed from the query: %s" % (name, qtype, r)


def t_case_and_wildcard(env):
    r = dns_query(env.dns, "_MTA-sts.GoOd.test", "TXT")
    assert len(txt_rrs(r)) == 2, r
    assert str(r.rr[0].rname) == "_MTA-sts.GoOd.test.", "0x20 case not kept"
    r = dns_query(env.dns, "_mta-sts.x.wild.test", "TXT")
    assert txt_rrs(r) == [[b"wildcard"]], r


def t_truncation(env):
    r = dns_query(env.dns, "tc.test", "TXT")
    assert r.header.tc == 1, "no TC over UDP"
    assert not r.rr and str(r.q.qname) == "tc.test.", r
    r = dns_query(env.dns, "tc.test", "TXT", tcp=True)
    assert r.header.tc == 0 and txt_rrs(r) == [[b"needs tcp"]], r


def t_tcp_pipelining(env):
    # c-ares sends several queries on one TCP connection; a slow one must
    # not hold back a fast one.
    qs = [DNSRecord.question("slow.test", "TXT"),
          DNSRecord.question("good.test", "A")]
    with socket.create_connection(("127.0.0.1", env.dns), timeout=3) as s:
        for q in qs:
            w = q.pack()
            s.sendall(struct.pack("!H", len(w)) + w)
        got = []
        f = s.makefile("rb")
        for _ in qs:
            n = struct.unpack("!H", f.read(2))[0]
            got.append(DNSRecord.parse(f.read(n)))
    assert [r.header.id for r in got] == [qs[1].header.id, qs[0].header.id], \
        "answers not out of order: %s" % [str(r.q.qname) for r in got]


def t_dns_delay(env):
    t0 = time.monotonic()
    r = dns_query(env.dns, "slow.test", "TXT")
    dt = time.monotonic() - t0
    assert txt_rrs(r) == [[b"slow"]]
    assert dt >= 0.3, "delay_ms ignored (%.3f s)" % dt


def t_dns_stats(env):
    before = env.fx.dns_queries("good.test", "MX")
    for _ in range(3):
        dns_query(env.dns, "Good.Test", "MX")
    assert env.fx.dns_queries("good.test", "MX") == before + 3
    st = env.fx.dns_stats()
    assert st["udp"] > 0 and st["tcp"] > 0 and st["total"] == \
        sum(st["queries"].values()), st


def t_dns_reload(env):
    zone = {"names": dict(ZONE["names"]), "default": "NXDOMAIN"}
    zone["names"]["_mta-sts.good.test"] = {"TXT": [["v=STSv1; id=2;"]]}
    env.fx.update_dns(zone)
    try:
        r = dns_query(env.dns, "_mta-sts.good.test", "TXT")
        assert txt_rrs(r) == [[b"v=STSv1; id=2;"]], r
    finally:
        env.fx.update_dns(ZONE)
    try:
        env.fx.update_dns({"names": {"x.test": {"BOGUS": 1}}})
    except FixtureError:
        pass
    else:
        raise AssertionError("bad zone accepted")
    assert len(txt_rrs(dns_query(env.dns, "_mta-sts.good.test", "TXT"))) == 2


def t_dns_latency(env):
    port = env.fx.start_dns(ZONE, latency_ms=100, name="dns-slow")
    try:
        t0 = time.monotonic()
        dns_query(port, "good.test", "A")
        single = time.monotonic() - t0
        assert single >= 0.1, "latency not applied: %.3f s" % single

        n, results = 50, []

        def one(i):
            try:
                r = dns_query(port, "good.test", "A", tcp=(i % 5 == 0),
                              timeout=5)
                results.append(r.header.rcode == RCODE.NOERROR)
            except Exception as e:
                results.append(e)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        dt = time.monotonic() - t0
        assert results.count(True) == n, results
        # Serial answering would take n * 0.1 = 5 s.
        assert dt < 1.5, "%d concurrent queries took %.2f s" % (n, dt)
        print("# dns: 1 query %.0f ms, %d concurrent %.0f ms (latency 100 ms)"
              % (single * 1000, n, dt * 1000))
    finally:
        env.fx.stop("dns-slow")


# ----------------------------------------------------------------- HTTPS

def t_https_good(env):
    status, hdrs, body = env.get("mta-sts.good.test")
    assert status == 200, status
    assert body == POLICY_BODY.encode(), body
    assert hdrs["content-type"] == "text/plain; charset=utf-8", hdrs
    assert hdrs["content-length"] == str(len(body))
    assert hdrs["connection"] == "close"
    assert hdrs["cache-control"] == "max-age=60"
    status, _, body = env.get("mta-sts.wild.test")
    assert status == 200 and body == POLICY_BODY.encode()


def t_https_bad_certs(env):
    for host, why in (("mta-sts.wrongname.test", "Hostname mismatch"),
                      ("mta-sts.expired.test", "expired"),
                      ("mta-sts.notyet.test", "not yet valid"),
                      ("mta-sts.self.test", "self-signed"),
                      ("mta-sts.untrusted.test", "self-signed certificate in")):
        try:
            env.get(host)
        except ssl.SSLCertVerificationError as e:
            assert why in str(e), "%s: unexpected error %s" % (host, e)
        else:
            raise AssertionError("%s: certificate accepted" % host)
        # The server is fine otherwise: without verification it answers.
        status, _, _ = env.get(host, verify=False)
        assert status == 200, (host, status)


def t_https_unknown_sni(env):
    # Unknown names get a valid certificate for unknown.invalid and a 404.
    try:
        env.get("mta-sts.nowhere.test")
    except ssl.SSLCertVerificationError as e:
        assert "Hostname mismatch" in str(e), e
    else:
        raise AssertionError("unknown SNI: certificate matched")
    status, _, _ = env.get("unknown.invalid")
    assert status == 404, status


def t_https_status_ctype(env):
    status, _, body = env.get("mta-sts.404.test")
    assert (status, body) == (404, b"gone\n")
    status, hdrs, _ = env.get("mta-sts.html.test")
    assert hdrs["content-type"] == "text/html"
    status, hdrs, body = env.get("mta-sts.noctype.test")
    assert "content-type" not in hdrs and body == b"x", hdrs
    status, hdrs, _ = env.get("mta-sts.redirect.test")
    assert status == 301 and hdrs["location"] == "https://mta-sts.good.test/"
    status, _, _ = env.get("mta-sts.good.test", path="/")
    assert status == 404, "non-policy path must 404"
    status, _, body = env.get("mta-sts.anypath.test", path="/x")
    assert (status, body) == (200, b"any")
    status, hdrs, body = env.get("mta-sts.good.test", method="HEAD")
    assert status == 200 and body == b"" and \
        hdrs["content-length"] == str(len(POLICY_BODY))


def t_https_bodies(env):
    status, hdrs, body = env.get("mta-sts.big.test")
    assert len(body) == 16 * 4096 == int(hdrs["content-length"])
    try:
        env.get("mta-sts.short.test")
    except http.client.IncompleteRead as e:
        assert len(e.partial) == 500, len(e.partial)
    else:
        raise AssertionError("close_early: full body received")
    t0 = time.monotonic()
    _, _, body = env.get("mta-sts.drip.test")
    assert body == b"abcdefghij" and time.monotonic() - t0 >= 0.27
    t0 = time.monotonic()
    _, _, body = env.get("mta-sts.delay.test")
    assert body == b"late" and time.monotonic() - t0 >= 0.3


def t_https_no_tls(env):
    try:
        env.get("mta-sts.plain.test")
    except ssl.SSLError as e:
        assert "WRONG_VERSION_NUMBER" in str(e) or "wrong version" in str(e), e
    else:
        raise AssertionError("TLS handshake succeeded on a no_tls host")


def t_https_stats(env):
    fx = env.fx
    before = fx.https_requests("mta-sts.good.test")
    env.get("mta-sts.good.test")
    assert fx.https_requests("mta-sts.good.test") == before + 1
    last = fx.https_stats()["log"][-1]
    assert last["sni"] == "mta-sts.good.test" and last["path"] == POLICY
    assert last["host"] == "mta-sts.good.test:%d" % env.https, last
    assert last["method"] == "GET" and last["status"] == 200
    # A rejected certificate: a connection, no request, an abort.
    c0 = fx.https_connections("mta-sts.expired.test")
    r0 = fx.https_requests("mta-sts.expired.test")
    try:
        env.get("mta-sts.expired.test")
    except ssl.SSLError:
        pass
    assert fx.https_connections("mta-sts.expired.test") == c0 + 1
    assert fx.https_requests("mta-sts.expired.test") == r0
    wait_for(lambda: fx.https_stats()["aborted"].get("mta-sts.expired.test"),
             msg="abort recorded")
    # "asked", "sent": when the last request per SNI was read and its
    # response went out in full, after the scenario's delay; "sent" never
    # for close_early (half a response).
    t_req = time.time()
    _, _, body = env.get("mta-sts.delay.test")
    t_got = time.time()
    assert body == b"late"
    sent = wait_for(lambda: fx.https_stats()["sent"].get("mta-sts.delay.test", 0) >= t_req
                    and fx.https_stats()["sent"]["mta-sts.delay.test"],
                    msg="delay.test response recorded as sent")
    assert t_req + 0.3 <= sent <= t_got, (t_req, sent, t_got)
    asked = fx.https_stats()["asked"]["mta-sts.delay.test"]
    assert t_req <= asked <= sent - 0.3, (t_req, asked, sent)
    try:
        env.get("mta-sts.short.test")
    except http.client.IncompleteRead:
        pass
    # A later complete response is on disk only with everything recorded
    # before it: then close_early's absence means it was never recorded.
    t_req = time.time()
    env.get("mta-sts.good.test")
    wait_for(lambda: fx.https_stats()["sent"].get("mta-sts.good.test", 0) >= t_req,
             msg="good.test response recorded as sent")
    assert "mta-sts.short.test" not in fx.https_stats()["sent"]


def t_https_reload(env):
    sc = {"hosts": dict(SCENARIOS["hosts"])}
    sc["hosts"]["mta-sts.new.test"] = {"body": "new"}
    env.fx.update_https(sc)
    status, _, body = env.get("mta-sts.new.test")
    assert (status, body) == (200, b"new")
    env.fx.update_https(SCENARIOS)


def t_https_latency(env):
    port = env.fx.start_https(SCENARIOS, latency_ms=100, name="https-slow")
    try:
        t0 = time.monotonic()
        env.get("mta-sts.good.test", port=port)
        single = time.monotonic() - t0
        assert single >= 0.1, "latency not applied: %.3f s" % single
        n, results = 50, []

        def one():
            try:
                results.append(env.get("mta-sts.good.test", port=port)[0])
            except Exception as e:
                results.append(e)
        threads = [threading.Thread(target=one) for _ in range(n)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        dt = time.monotonic() - t0
        assert results.count(200) == n, results
        assert dt < 2.5, "%d concurrent fetches took %.2f s" % (n, dt)
        assert env.fx.https_requests("mta-sts.good.test",
                                     name="https-slow") == n + 1
        print("# https: 1 fetch %.0f ms, %d concurrent %.0f ms "
              "(latency 100 ms)" % (single * 1000, n, dt * 1000))
    finally:
        env.fx.stop("https-slow")


# --------------------------------------------------------------- harness

def t_report_and_ports(env):
    import io
    out = io.StringIO()
    r = TestReport(out=out)

    def fails():
        assert 1 == 2, "boom"

    def skips():
        raise Skip("not here")
    r.run("a", lambda: None)
    r.run("b", fails)
    r.run("c", skips)
    assert r.finish() == 1
    lines = out.getvalue().splitlines()
    assert lines == ["ok - a", "not ok - b: boom", "skip - c: not here",
                     "1 passed, 1 failed, 1 skipped"], lines
    r = TestReport(out=io.StringIO())
    r.run("s", skips)
    assert r.finish() == 77
    r = TestReport(out=io.StringIO())
    r.run("p", lambda: None)
    assert r.finish() == 0
    p = free_port()
    assert 1024 < p < 65536
    # Explicit port: UDP and TCP both bound on it.
    port = env.fx.start_dns(ZONE, name="dns-fixed", port=p)
    try:
        assert port == p
        dns_query(p, "good.test", "A")
        dns_query(p, "good.test", "A", tcp=True)
    finally:
        env.fx.stop("dns-fixed")
    try:
        env.fx.start_dns({"names": {"x.test": {"A": ["not an ip"]}}},
                         name="dns-bad")
    except FixtureError as e:
        assert "x.test" in str(e), e
    else:
        raise AssertionError("bad zone started")


def main():
    report = TestReport("fixtures self-test")
    if DNSRecord is None:
        report.skip("fixtures", "python3-dnslib not installed")
        return report.finish()
    fx = Fixtures()
    env = Env(fx)
    try:
        t0 = time.monotonic()
        env.dns = fx.start_dns(ZONE)
        print("# dnsd on port %d (%.2f s)" % (env.dns, time.monotonic() - t0))
        for name, fn in [("dns: multi-string TXT is one RR", t_txt_multistring),
                         ("dns: long TXT strings split", t_txt_long),
                         ("dns: NXDOMAIN/NODATA/SERVFAIL/REFUSED", t_rcodes),
                         ("dns: timeouts", t_timeout),
                         ("dns: CNAME", t_cname),
                         ("dns: AD bit only for \"ad\" entries", t_ad_bit),
                         ("dns: 0x20 case and wildcard", t_case_and_wildcard),
                         ("dns: UDP truncation, TCP fallback", t_truncation),
                         ("dns: TCP pipelining", t_tcp_pipelining),
                         ("dns: per-name delay", t_dns_delay),
                         ("dns: stats", t_dns_stats),
                         ("dns: reload", t_dns_reload),
                         ("dns: latency and concurrency", t_dns_latency)]:
            report.run(name, fn, env)

        if not shutil.which(os.environ.get("OPENSSL", "openssl")):
            report.skip("https", "no openssl CLI")
        else:
            t0 = time.monotonic()
            env.https = fx.start_https(SCENARIOS)
            print("# httpsd on port %d, %d certificates made in %.2f s"
                  % (env.https, len([f for f in os.listdir(fx.certdir)
                                     if f.endswith(".pem")]),
                     time.monotonic() - t0))
            for name, fn in [("https: good and wildcard certs", t_https_good),
                             ("https: bad certs rejected", t_https_bad_certs),
                             ("https: unknown SNI", t_https_unknown_sni),
                             ("https: status, type, redirect, path",
                              t_https_status_ctype),
                             ("https: big, truncated, dripped, delayed",
                              t_https_bodies),
                             ("https: plain HTTP on TLS port", t_https_no_tls),
                             ("https: stats", t_https_stats),
                             ("https: reload", t_https_reload),
                             ("https: latency and concurrency",
                              t_https_latency)]:
                report.run(name, fn, env)
        report.run("harness: report, free_port, errors", t_report_and_ports,
                   env)
    except FixtureError as e:
        msg = str(e)

        def start_failed():
            raise AssertionError(msg)
        report.run("fixtures start", start_failed)
    finally:
        fx.cleanup()
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
