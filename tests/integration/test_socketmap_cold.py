#!/usr/bin/python3
"""Cache hits are served while cold domains are being discovered.

A cold domain parks its socketmap connection on an asynchronous engine
lookup and the worker moves on (milter/socketmap.c), so no number of cold
domains holds the workers.  This pins the outcome: while ten connections
wait for two slow policy hosts (2.5 s, tests/integration/daemon.py), and
again while a hundred connections wait for a hundred slow policy hosts
(3.5 s each), every one of a hundred cache hits on other connections (and
on a connection opened meanwhile) is answered before any of the cold
lookups completes, and the cold lookups then get their policy.  (An
ordering, not a timing: the margin is the fixtures' delay.)  Also:
requests pipelined behind a cold one are answered in order, replies made
before it are sent before it completes; peers that close (FIN, RST,
half-close) while their lookup is pending; SIGTERM while lookups are
pending: answered per on_fail, a clean exit.  Each daemon's log must be
free of sanitizer reports and its exit status 0 (the clang sanitizer
build runs this too).
"""

import concurrent.futures
import os
import signal
import socket
import struct
import sys
import tempfile
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon  # noqa: E402
import harness  # noqa: E402
from test_socketmap import Client, ns  # noqa: E402

COLD = 10
HOT_CONNS = 5
HOT_ASKS = 100
MANY = 100          # cold domains at once: many more than the workers
# Policy host delays; term's are answered by the stop, never by the host.
SLOW_MS = {"cold": 3500, "pipe": 3500, "close": 3500, "term": 20000}
# Long resolver and fetch timeouts: on a loaded machine (sanitizers) a DNS
# answer can take longer than the usual 300 ms, and a discovery failing
# early would look like a cold lookup ending first.
TIMEOUTS = {"dns_timeout": "10s", "https_timeout": "60s"}
# A generous budget: under sanitizers 100 TLS handshakes take a while, and
# these tests want the discovered policy, not the fail-open answer.
PROFILES = ("SocketmapProfile cold budget=30s\n"
            "SocketmapProfile coldtemp budget=30s on_fail=temp\n")
SLOW_DOMAINS = (["cold%d.test" % i for i in range(MANY)] + ["pipe%d.test" % i for i in range(3)] +
                ["close%d.test" % i for i in range(12)] + ["term%d.test" % i for i in range(20)])


def slow_world(names, hosts):
    """coldN.test (N < MANY), pipeN.test, closeN.test, termN.test: enforce
    policies whose hosts answer after SLOW_MS."""
    for d in SLOW_DOMAINS:
        delay = SLOW_MS[d.split(".")[0].rstrip("0123456789")]
        names["_mta-sts." + d] = {"TXT": [["v=STSv1; id=cold1;"]]}
        names["mta-sts." + d] = {"A": ["127.0.0.1"]}
        names[d] = {"MX": [[10, "mx1." + d], [20, "b.mx." + d]]}
        hosts["mta-sts." + d] = {"body": daemon.POLICY % ("enforce", d, d), "delay_ms": delay}


def premake_certs(fx):
    """The policy hosts' certificates, made before httpsd starts (it makes
    what it does not find, named as in httpsd.py CertStore.spec, and 135
    of them one by one would outlast its start-up timeout)."""
    fx.ca_file  # the CA first, once
    hosts = ["mta-sts." + d for d in SLOW_DOMAINS]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda h: fx.make_cert("good--" + h, "good", h), hosts))


def clean_exit(dmn):
    """After dmn.stop(): exit status 0 and no sanitizer report in its log."""
    with open(dmn.errfile) as f:
        log = f.read()
    for bad in ("Sanitizer", "runtime error:"):
        assert bad not in log, "daemon log has %r:\n%s" % (bad, log[-3000:])
    assert dmn.proc.returncode == 0, "daemon exit status %s" % dmn.proc.returncode


def policy_reply(d):
    return "OK secure match=mx1.%s:b.mx.%s servername=hostname" % (d, d)


def main():
    report = harness.TestReport("socketmap: hits served while cold domains wait")
    if not os.access(daemon.MILTER, os.X_OK):
        report.skip("hits during discoveries", "%s not built" % daemon.MILTER)
        return report.finish()
    with tempfile.TemporaryDirectory(prefix="mtasts-smap-cold.") as work:
        fx = harness.Fixtures(work)
        dmn = None
        try:
            premake_certs(fx)
            dmn = daemon.Daemon(fx, work, PROFILES, world=slow_world, **TIMEOUTS)
            report.run("%d cache hits answered while %d lookups wait for discovery"
                       % (HOT_ASKS, COLD), hits_during_discovery, dmn.smap_port, fx)
            report.run("%d cold domains at once: %d cache hits on other connections, old and "
                       "new, all answered first" % (MANY, HOT_ASKS), many_cold, dmn.smap_port, fx)
            report.run("requests pipelined around cold ones: replies in order, earlier ones "
                       "sent at once", pipelined_behind_cold, dmn.smap_port, fx)
            report.run("peers closing (FIN, RST, half-close) with a lookup pending",
                       close_while_pending, dmn.smap_port, fx)
        finally:
            if dmn is not None:
                dmn.stop()
            fx.stop()
        if dmn is not None:
            report.run("the daemon exits cleanly after all of this (status 0, no sanitizer "
                       "report)", clean_exit, dmn)
    with tempfile.TemporaryDirectory(prefix="mtasts-smap-term.") as work:
        fx = harness.Fixtures(work)
        try:
            premake_certs(fx)
            report.run("SIGTERM with 20 lookups pending: answered per on_fail, closed, clean exit",
                       sigterm_while_pending, fx, work)
        finally:
            fx.stop()
    return report.finish()


def hits_during_discovery(port, fx):
    hot = [Client(port) for _ in range(HOT_CONNS)]
    for c in hot:                       # warm: enforce.test is in the cache after this
        got = c.ask("postfix", "enforce.test")
        assert got == policy_reply("enforce.test"), "warm-up: got %r" % got
    cold_done = threading.Event()
    results, errors = {}, []
    lock = threading.Lock()

    def cold(i):
        d = "slow.test" if i % 2 == 0 else "slow2.test"
        try:
            c = Client(port)
            c.send(ns("postfix " + d))
            started.release()
            r = c.reply()
            c.close()
            with lock:
                results[i] = (d, r)
        except Exception as e:  # reported below
            errors.append("%s: %r" % (d, e))
        finally:
            cold_done.set()

    started = threading.Semaphore(0)
    threads = [threading.Thread(target=cold, args=(i,)) for i in range(COLD)]
    for t in threads:
        t.start()
    for _ in range(COLD):
        started.acquire(timeout=10)
    # Both discoveries are at their policy hosts: the cold lookups wait.
    harness.wait_for(lambda: fx.https_connections("mta-sts.slow.test") > 0 and
                     fx.https_connections("mta-sts.slow2.test") > 0,
                     timeout=10, msg="both slow policy fetches started")
    hot_answers = 0
    for k in range(HOT_ASKS):
        got = hot[k % HOT_CONNS].ask("postfix", "enforce.test")
        assert got == policy_reply("enforce.test"), "hit %d: got %r" % (k, got)
        hot_answers += 1
    early = cold_done.is_set()
    for t in threads:
        t.join(30)
    for c in hot:
        c.close()
    assert not errors, "cold lookups failed: %s" % errors
    assert not early, ("a cold lookup completed before the %d hits were all answered: "
                       "hits waited behind discoveries" % HOT_ASKS)
    assert len(results) == COLD, "%d of %d cold lookups answered" % (len(results), COLD)
    for i, (d, r) in sorted(results.items()):
        assert r == policy_reply(d), "cold lookup %d of %s: got %r" % (i, d, r)



def wait_fetches(fx, doms, what):
    """Until the policy host fixture has a connection for each domain: the
    lookups are parked on discoveries that wait for their slow host."""
    harness.wait_for(lambda: all(fx.https_connections("mta-sts." + d) > 0 for d in doms),
                     timeout=60, msg=what)


def wait_started(fx, doms, what):
    """Until each domain's discovery has sent its TXT query, which it does
    right after the request parked: all of them start within moments, so
    none can end sooner than the policy host's delay after the last."""
    harness.wait_for(lambda: all(fx.dns_queries("_mta-sts." + d, "TXT") > 0 for d in doms),
                     timeout=60, msg=what)


def many_cold(port, fx):
    doms = ["cold%d.test" % i for i in range(MANY)]
    hot = [Client(port) for _ in range(HOT_CONNS)]
    for c in hot:
        got = c.ask("postfix", "enforce.test")
        assert got == policy_reply("enforce.test"), "warm-up: got %r" % got
    cold_conns = [Client(port) for _ in doms]
    results, errors = {}, []
    first_done = threading.Event()
    lock = threading.Lock()

    def reader(i):
        try:
            r = cold_conns[i].reply()
            with lock:
                results[i] = r
        except Exception as e:  # reported below
            errors.append("%s: %r" % (doms[i], e))
        finally:
            first_done.set()

    for c, d in zip(cold_conns, doms):
        c.send(ns("cold " + d))
    threads = [threading.Thread(target=reader, args=(i,)) for i in range(MANY)]
    for t in threads:
        t.start()
    wait_started(fx, doms, "all %d discoveries started" % MANY)
    late = Client(port)     # accepted and served while every cold lookup waits
    hot.append(late)
    for k in range(HOT_ASKS):
        got = hot[k % len(hot)].ask("postfix", "enforce.test")
        assert got == policy_reply("enforce.test"), "hit %d: got %r" % (k, got)
    early = first_done.is_set()
    for t in threads:
        t.join(60)
    for c in hot + cold_conns:
        c.close()
    assert not early, ("a cold lookup completed before the %d hits were all answered: "
                       "hits waited behind discoveries" % HOT_ASKS)
    assert not errors, "cold lookups failed: %s" % errors[:5]
    assert len(results) == MANY, "%d of %d cold lookups answered" % (len(results), MANY)
    for i, r in sorted(results.items()):
        assert r == policy_reply(doms[i]), "cold lookup of %s: got %r" % (doms[i], r)


def pipelined_behind_cold(port, fx):
    # Cold, hit, none, cold, hit in one write: five replies in that order.
    c = Client(port)
    c.send(ns("cold pipe0.test") + ns("postfix enforce.test") + ns("postfix nothing.test") +
           ns("cold pipe1.test") + ns("postfix enforce2.test"))
    want = [policy_reply("pipe0.test"), policy_reply("enforce.test"), "NOTFOUND ",
            policy_reply("pipe1.test"), policy_reply("enforce2.test")]
    c.s.settimeout(60)
    got = [c.reply() for _ in want]
    assert got == want, "got %r, want %r" % (got, want)
    # Hit, cold, hit: the first reply is sent before the cold lookup ends
    # (the client has it while the rest is not there yet).
    c.send(ns("postfix enforce.test") + ns("cold pipe2.test") + ns("postfix enforce.test"))
    first = c.reply()
    assert first == policy_reply("enforce.test"), "got %r" % first
    assert c.buf == b"", "more than the first reply arrived with it: %r" % c.buf
    c.s.setblocking(False)      # with a timeout set, recv() would wait for data
    try:
        more = c.s.recv(65536)
    except BlockingIOError:
        more = b""
    c.s.settimeout(60)
    assert more == b"", ("a reply came before the cold lookup could end: %r" % more)
    rest = [c.reply(), c.reply()]
    assert rest == [policy_reply("pipe2.test"), policy_reply("enforce.test")], "got %r" % rest
    c.close()


def close_while_pending(port, fx):
    doms = ["close%d.test" % i for i in range(12)]
    conns = [Client(port) for _ in doms]
    for i, (c, d) in enumerate(zip(conns, doms)):
        # Some with more requests queued behind the parked one.
        c.send(ns("cold " + d) + (ns("postfix enforce.test") * 3 if i % 2 else b""))
    wait_fetches(fx, doms, "the slow policy fetches started")
    half = []
    for i, c in enumerate(conns):
        if i % 3 == 0:          # RST
            c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        elif i % 3 == 1:        # FIN
            c.close()
        else:                   # half-close: the replies must still come
            c.s.shutdown(socket.SHUT_WR)
            half.append((i, c))
    for i, c in half:
        c.s.settimeout(60)
        got = c.reply()
        assert got == policy_reply(doms[i]), "half-closed %s: got %r" % (doms[i], got)
        if i % 2:
            for _ in range(3):
                got = c.reply()
                assert got == policy_reply("enforce.test"), "behind %s: got %r" % (doms[i], got)
        assert c.closed(), "connection not closed after its replies at EOF"
        c.close()
    # The closed ones' lookups completed too (their callbacks ran first,
    # in the order they came): the policies are cached, the server is fine.
    c = Client(port)
    for d in doms:
        got = c.ask("postfix", d)
        assert got == policy_reply(d), "%s after the closes: got %r" % (d, got)
    c.close()


def sigterm_while_pending(fx, work):
    """The parked requests are answered as failed lookups (on_fail, as for
    a budget run out), the ones behind them not, and the connections are
    closed."""
    doms = ["term%d.test" % i for i in range(20)]
    dmn = daemon.Daemon(fx, work, PROFILES, world=slow_world, **TIMEOUTS)
    conns = []
    try:
        conns = [Client(dmn.smap_port) for _ in doms]
        for i, (c, d) in enumerate(zip(conns, doms)):
            c.send(ns("%s %s" % ("coldtemp" if i % 2 else "cold", d)) + ns("postfix enforce.test"))
        wait_started(fx, doms, "the discoveries started")
        dmn.proc.send_signal(signal.SIGTERM)
        dmn.proc.wait(timeout=30)
        for i, c in enumerate(conns):
            c.s.settimeout(10)
            got = c.reply()
            if i % 2:
                assert got == "TEMP socketmap stopping", "on_fail=temp: got %r" % got
            else:
                assert got == "NOTFOUND ", "on_fail=notfound: got %r" % got
            assert c.buf == b"" and c.closed(), "more than one reply, or not closed: %r" % c.buf
    finally:
        for c in conns:
            c.close()
        dmn.stop()
    clean_exit(dmn)

if __name__ == "__main__":
    sys.exit(main())
