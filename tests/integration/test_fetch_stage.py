#!/usr/bin/python3
"""MaxPolicyFetches: slow policy hosts hold fetch slots, not discoveries.

A discovery is a TXT lookup, then (only when there is a v=STSv1 record)
the policy fetch.  With MaxPolicyFetches 2 and four policy hosts that take
seconds to answer, two fetch and two wait parked in the discovery module;
lookups of domains without a TXT record are meanwhile answered at once,
and the parked discoveries learn their policies when slots free.  Stopping
the engine with parked discoveries answers every waiting lookup once.
With PolicyFetchSlotTime short, the slow fetches give their slots up and
a domain with a quick policy host, asked behind them, learns its policy
within its budget.

Real DNS and HTTPS fixtures on loopback; the engine is driven by
tests/engine/engine_driver (see test_engine.py).
"""

import os
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_engine import DRIVER, World, driver_case, want  # noqa: E402

SLOW_MS = 5000   # each slow policy host waits this long before answering
SLOTS = 2        # MaxPolicyFetches


def slow_hosts(prefix):
    return ["%s%d.test" % (prefix, i) for i in range(2 * SLOTS)]


def fetch_counts(w, doms):
    return {d: w.fetches(d) for d in doms}


def run_tests(report, w, conf, lend_conf):
    def with_driver(fn, *opts):
        return driver_case(conf, fn, *opts)

    def no_txt_answered_beside_slow_fetches(drv):
        slow = slow_hosts("slow")
        now = drv.cmd("asyncs slow %d 30000" % len(slow))
        want(now, parked=len(slow), failed=0)
        st = drv.cmd("wait-stat parked %d" % SLOTS)
        assert st["reached"], "never %d parked: %s" % (SLOTS, st)
        want(st, fetching=SLOTS, parked=SLOTS, inflight=len(slow))
        # The fixture sees the two running fetches; nothing of the parked.
        harness.wait_for(lambda: sum(fetch_counts(w, slow).values()) == SLOTS, timeout=10,
                         msg="the running fetches to reach the policy hosts")
        # Domains without a TXT record: one DNS query each, while the slow
        # fetches hold every fetch slot.
        for i in range(5):
            a = drv.lookup("plain%d.test" % i, 5000)
            want(a, result="none", pending=False, from_cache=False)
        # ... answered before the slow fetches ended: the four are still
        # fetching or parked.
        st = drv.cmd("stats")
        want(st, fetching=SLOTS, parked=SLOTS)
        counts = fetch_counts(w, slow)
        assert sum(counts.values()) == SLOTS and max(counts.values()) == 1, counts
        # Every parked discovery gets its slot and learns its policy.
        got = drv.cmd("async-wait")
        want(got, called=len(slow), policy=len(slow), twice=0)
        st = drv.cmd("wait-idle")
        want(st, fetching=0, parked=0, inflight=0, queued=0)
        assert fetch_counts(w, slow) == {d: 1 for d in slow}, fetch_counts(w, slow)
        for d in slow:
            want(drv.lookup(d, 0), result="policy", mode="enforce", from_cache=True)
    report.run("MaxPolicyFetches 2: domains without TXT are answered beside slow fetches; "
               "parked discoveries complete", with_driver(no_txt_answered_beside_slow_fetches))

    def stop_with_parked(drv):
        slow = slow_hosts("stop")
        want(drv.cmd("asyncs stop %d 30000" % len(slow)), parked=len(slow), failed=0)
        st = drv.cmd("wait-stat parked %d" % SLOTS)
        assert st["reached"], "never %d parked: %s" % (SLOTS, st)
        want(st, fetching=SLOTS, parked=SLOTS)
        # Stopping the engine ends the running fetches and the parked
        # discoveries: each lookup is called back once, with temperror.
        want(drv.cmd("restart"), restarted=True)
        got = drv.cmd("async-wait")
        want(got, called=len(slow), temperror=len(slow), twice=0)
        # The new engine starts clean and still limits fetches.
        want(drv.cmd("stats"), fetching=0, parked=0, inflight=0)
    report.run("stopping with parked discoveries calls every lookup back once",
               with_driver(stop_with_parked))

    def slow_fetches_lend_their_slots(drv):
        # PolicyFetchSlotTime 300ms: the four slow fetches give up their
        # slots while others wait, so a domain with a quick policy host
        # asked behind them learns its policy within its budget, not after
        # the slow hosts' 5 s.
        slow = slow_hosts("lend")
        want(drv.cmd("asyncs lend %d 30000" % len(slow)), parked=len(slow), failed=0)
        st = drv.cmd("wait-stat parked %d" % SLOTS)
        assert st["reached"], "never %d parked: %s" % (SLOTS, st)
        a = drv.lookup("quick.test", 3000)
        want(a, result="policy", mode="enforce", pending=False, from_cache=False)
        # the slow ones still run (beside it), each fetched once, and end well
        st = drv.cmd("wait-stat fetching %d" % len(slow))
        assert st["reached"] and st["parked"] == 0, st
        got = drv.cmd("async-wait")
        want(got, called=len(slow), policy=len(slow), twice=0)
        assert fetch_counts(w, slow + ["quick.test"]) == {d: 1 for d in slow + ["quick.test"]}, \
            fetch_counts(w, slow + ["quick.test"])
    report.run("PolicyFetchSlotTime: slow fetches give their slots to a quick one waiting "
               "behind them", driver_case(lend_conf, slow_fetches_lend_their_slots))


def main():
    if not os.access(DRIVER, os.X_OK):
        print("engine_driver not built at %s" % DRIVER)
        return 99
    report = harness.TestReport("fetch-stage")
    with tempfile.TemporaryDirectory(prefix="mtasts-fetch-stage-test.") as work:
        fx = harness.Fixtures(work)
        try:
            w = World(fx)
            for d in slow_hosts("slow") + slow_hosts("stop") + slow_hosts("lend"):
                w.add(d, delay_ms=SLOW_MS)
            w.add("quick.test")
            w.start()   # plain*.test: no TXT record (NXDOMAIN)
            confs = []
            # The first cases see parked discoveries stay parked: no slot
            # is lent within their run.  The last lends after 300 ms.
            for name, slot in (("fetch-stage.conf", "60s"), ("lend.conf", "300ms")):
                conf = os.path.join(work, name)
                with open(conf, "w") as f:
                    f.write("DNSServers 127.0.0.1:%d\nDNSTimeout 1000ms\nDNSTries 2\n"
                            "CAFile %s\nPolicyPort %d\nHTTPSTimeout 30s\n"
                            "AllowInternalAddresses yes\nMaxPolicyFetches %d\n"
                            "PolicyFetchSlotTime %s\n"
                            % (w.dns_port, fx.ca_file, w.https_port, SLOTS, slot))
                confs.append(conf)
            run_tests(report, w, *confs)
        finally:
            fx.stop()
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
