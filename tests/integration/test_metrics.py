#!/usr/bin/python3
"""The metrics page (MetricsSocket, issue 13): Prometheus text at GET /metrics.

One daemon with MetricsSocket on a free loopback port, the DNS and HTTPS
fixtures behind it:

- the page answers 200 with the exposition format's content type, every
  series is named mtasts_*, every line parses (HELP, TYPE, or
  name{labels} value);
- the values change with traffic: socketmap lookups of an enforce domain,
  a domain without MTA-STS, one whose _mta-sts TXT answers SERVFAIL and a
  map that is no profile raise mtasts_socketmap_requests_total by profile
  and reply, mtasts_discoveries_total by result and failure kind, the
  reply-time histogram, the cache counters; a miltertest transaction
  raises mtasts_milter_decisions_total;
- other paths answer 404, other methods 405, garbage 400; HEAD has no
  body; a client that sends nothing is closed after the timeout and does
  not keep the page from others; a unix: MetricsSocket is mode 0660;
- the daemon exits cleanly (no sanitizer report).
"""

import os
import re
import socket
import stat
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon  # noqa: E402
import harness  # noqa: E402
from test_milter import MILTERTEST, Script, run_script  # noqa: E402
from test_socketmap import Client  # noqa: E402
from test_socketmap_cold import clean_exit  # noqa: E402

LINE = re.compile(r'^(mtasts_[a-z_]+)(\{[a-z_]+="[^"\\]*"(,[a-z_]+="[^"\\]*")*\})? '
                  r'([0-9]+(\.[0-9]+)?)$')


def http(addr, request, timeout=10, head=False):
    """Send request bytes, read until the server closes: (status, headers, body)."""
    if isinstance(addr, str):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(addr)
    else:
        s = socket.create_connection(("127.0.0.1", addr), timeout=timeout)
    try:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(l.split(": ", 1) for l in lines[1:])
    # HEAD: the length the page would have, and no body.
    assert head or int(headers["Content-Length"]) == len(body), \
        "Content-Length %s, body %d bytes" % (headers["Content-Length"], len(body))
    return status, headers, body.decode()


def page(addr):
    st, hdr, body = http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert st == 200, "status %d: %s" % (st, body)
    assert hdr["Content-Type"].startswith("text/plain; version=0.0.4"), hdr
    return body


def samples(body):
    """{'name{labels}': value} of every sample; every line checked."""
    out = {}
    for line in body.splitlines():
        if line.startswith("# HELP mtasts_") or line.startswith("# TYPE mtasts_"):
            continue
        m = LINE.match(line)
        assert m, "line does not parse as a sample of an mtasts_ series: %r" % line
        out[line.rsplit(" ", 1)[0]] = float(m.group(4))
    return out


def val(s, key):
    return s.get(key, 0.0)


def main():
    title = "metrics page"
    if not os.access(daemon.MILTER, os.X_OK):
        return harness.skipped(title, "all", "%s not built" % daemon.MILTER)
    report = harness.TestReport(title)
    with tempfile.TemporaryDirectory(prefix="mtasts-metrics.") as work:
        fx = harness.Fixtures(work)
        port = harness.free_port()
        upath = os.path.join(work, "metrics.sock")
        dmn = None
        try:
            dmn = daemon.Daemon(fx, work, "MetricsSocket inet:%d@127.0.0.1\n" % port)
            harness.wait_for(lambda: _up(port), timeout=10, msg="metrics port")

            def format_ok():
                s = samples(page(port))
                for k in ("mtasts_lookups_total", "mtasts_cache_entries",
                          "mtasts_discoveries_running", "mtasts_discoveries_queued",
                          "mtasts_policy_fetches_running", "mtasts_policy_fetches_parked",
                          "mtasts_store_errors_total"):
                    assert k in s, "no %s on the page" % k
            report.run("GET /metrics: 200, exposition format, every series mtasts_*",
                       format_ok)

            def traffic():
                before = samples(page(port))
                c = Client(dmn.smap_port)
                got = [c.ask("postfix", d) for d in ("enforce.test", "nx.test", "broken.test")]
                got.append(c.ask("nosuchmap", "enforce.test"))
                got.append(c.ask("postfix", "enforce.test"))       # a cache hit
                assert got[0].startswith("OK secure") and got[1].startswith("NOTFOUND") and \
                    got[3].startswith("PERM"), got
                s = samples(page(port))
                for key, n in (
                        ('mtasts_socketmap_requests_total{profile="postfix",reply="secure"}', 2),
                        ('mtasts_socketmap_requests_total{profile="unknown",reply="PERM"}', 1),
                        ('mtasts_socketmap_reply_seconds_count{profile="postfix"}', 4),
                        ('mtasts_discoveries_total{result="policy",failure="none"}', 1),
                        ('mtasts_discoveries_total{result="none",failure="no-policy"}', 1),
                        ('mtasts_discoveries_total{result="temperror",failure="dns-txt"}', 1),
                        ('mtasts_discovery_seconds_count{result="policy"}', 1),
                        ("mtasts_cache_hits_total", 1),
                        ("mtasts_lookups_total", 4)):
                    d = val(s, key) - val(before, key)
                    assert d >= n, "%s rose by %g, want at least %d" % (key, d, n)
                inf = val(s, 'mtasts_socketmap_reply_seconds_bucket{profile="postfix",le="+Inf"}')
                assert inf == val(s, 'mtasts_socketmap_reply_seconds_count{profile="postfix"}'), \
                    "the +Inf bucket is not the count"
                assert val(s, "mtasts_cache_entries") >= 3, s.get("mtasts_cache_entries")
            report.run("socketmap lookups raise requests by profile and reply, discoveries by "
                       "result and failure, the reply histogram and the cache counters", traffic)

            def decisions():
                if not os.access(MILTERTEST, os.X_OK):
                    raise harness.Skip("miltertest not installed")
                before = samples(page(port))
                sc = Script(dmn.sock).mail("<a@example.net>")
                sc.rcpt("<bob@enforce.test>").headers(("Subject", "hi"))
                run_script(work, "metrics", sc)
                s = samples(page(port))
                key = 'mtasts_milter_decisions_total{action="route-enforce"}'
                assert val(s, key) - val(before, key) == 1, "%s: %g -> %g" % (
                    key, val(before, key), val(s, key))
            report.run("a milter transaction raises mtasts_milter_decisions_total", decisions)

            def other_requests():
                st, _, _ = http(port, b"GET / HTTP/1.1\r\n\r\n")
                assert st == 404, st
                st, _, _ = http(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
                assert st == 405, st
                st, _, _ = http(port, b"\x16\x03\x01garbage\r\n\r\n")
                assert st == 400, st
                st, hdr, body = http(port, b"HEAD /metrics HTTP/1.0\r\n\r\n", head=True)
                assert st == 200 and body == "" and hdr["Content-Type"].startswith(
                    "text/plain; version=0.0.4"), (st, hdr, body)
            report.run("other paths 404, other methods 405, garbage 400, HEAD without body",
                       other_requests)

            def silent_client():
                idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
                try:
                    time.sleep(0.5)
                    samples(page(port))                     # served despite them
                    t0 = time.monotonic()
                    idle[0].settimeout(15)
                    assert idle[0].recv(1) == b"", "a silent client got data"
                    took = time.monotonic() - t0
                    assert took < 12, "a silent client was kept %.1f s" % took
                finally:
                    for s in idle:
                        s.close()
            report.run("20 silent clients (limit 16): the page is still served, the oldest "
                       "silent ones make room, the rest are closed after the timeout",
                       silent_client)
        finally:
            if dmn is not None:
                dmn.stop()
            fx.stop()
        if dmn is not None:
            report.run("the daemon exits cleanly", clean_exit, dmn)

        fx = harness.Fixtures(work)
        dmn = None
        try:
            dmn = daemon.Daemon(fx, work, "MetricsSocket unix:%s\n" % upath)
            harness.wait_for(lambda: os.path.exists(upath), timeout=10, msg="metrics socket")

            def unix_socket():
                mode = stat.S_IMODE(os.lstat(upath).st_mode)
                assert mode == 0o660, "mode %o, want 660" % mode
                assert "mtasts_lookups_total" in page(upath)
            report.run("unix: MetricsSocket serves the page, mode 0660", unix_socket)
        finally:
            if dmn is not None:
                dmn.stop()
            fx.stop()
        report.run("unix: the socket file is removed at exit",
                   lambda: _assert(not os.path.exists(upath), "%s left behind" % upath))
    return report.finish()


def _assert(cond, msg):
    assert cond, msg


def _up(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
