#!/usr/bin/python3
"""Cache hits are served while cold domains are being discovered.

The socketmap lets only a few workers wait in epoll at a time, each taking
a batch of ready connections (milter/socketmap.c); a worker that has to
wait for a discovery first hands the rest of its batch back and its event
slot to a sleeping worker.  This pins the outcome: while ten connections
wait for two slow policy hosts (2.5 s, tests/integration/daemon.py), every
one of a hundred cache hits on five other connections is answered, all of
them before any of the cold lookups completes, and the cold lookups then
get their policy.  (An ordering, not a timing: the margin is the fixture's
2.5 s.)
"""

import os
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


def policy_reply(d):
    return "OK secure match=mx1.%s:.mx.%s servername=hostname" % (d, d)


def main():
    report = harness.TestReport("socketmap: hits served while cold domains wait")
    if not os.access(daemon.MILTER, os.X_OK):
        report.skip("hits during discoveries", "%s not built" % daemon.MILTER)
        return report.finish()
    with tempfile.TemporaryDirectory(prefix="mtasts-smap-cold.") as work:
        fx = harness.Fixtures(work)
        dmn = None
        try:
            dmn = daemon.Daemon(fx, work)
            report.run("%d cache hits answered while %d lookups wait for discovery"
                       % (HOT_ASKS, COLD), hits_during_discovery, dmn.smap_port, fx)
        finally:
            if dmn is not None:
                dmn.stop()
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


if __name__ == "__main__":
    sys.exit(main())
