#!/usr/bin/python3
"""Driver of `make bench`: the lookup engine's figures, measured, not asserted.

Starts the DNS and HTTPS fixtures (tests/fixtures, through
tests/integration/harness.py) on 127.0.0.1 with 50 ms latency on every DNS
answer and every HTTPS response, serving the bench domains bench_engine.c
asks for:

    d0..d<N-1>.bench.test   cold discovery, all at once
    single.bench.test       one cold domain alone
    s0..s<S-1>.bench.test   cold discovery, one after another
    coalesce.bench.test     many callers, one domain

each with TXT _mta-sts.D "v=STSv1; id=bench1;", mta-sts.D A 127.0.0.1 and
an enforce policy over HTTPS (certificate from the test CA).  Then it runs
the bench_engine subcommands (hits, rss, cold, coalesce), reads the
fixtures' counters for the coalescing figure, and prints a summary with
every figure and ratio side by side.

Nothing here fails on a figure: a ratio far from ideal, or a coalescing
count other than 1, is printed (loudly: MISMATCH) and the exit status stays
0.  The exit status is 1 only when a benchmark could not run at all
(missing binary, crash, timeout, no BENCH line).  Without a python3 that
has dnslib, cold and coalesce are skipped (said so in the summary).

Environment: top_srcdir, top_builddir (set by make), PYTHON3, BENCH_ENGINE
(the binary; default $top_builddir/tests/bench/bench_engine).
"""

import argparse
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402
from benchutil import children_cpu, loadavg, proc_cpu  # noqa: E402

LATENCY_MS = 50
TXT = [["v=STSv1; id=bench1;"]]
SANS_PER_CERT = 10      # mkcerts.sh fallback: one certificate for this many hosts
COLD_SMALL = 100        # the first cold run: fewer domains than max_inflight


def policy(d):
    return ("version: STSv1\r\nmode: enforce\r\nmx: mx1.%s\r\nmx: *.mx.%s\r\n"
            "max_age: 604800\r\n" % (d, d))


def bench_domains(n_cold, n_serial):
    return (["d%d.bench.test" % i for i in range(n_cold)]
            + ["s%d.bench.test" % i for i in range(n_serial)]
            + ["single.bench.test", "coalesce.bench.test"])


def build(domains):
    names, hosts = {}, {}
    for d in domains:
        names["_mta-sts." + d] = {"TXT": TXT}
        names["mta-sts." + d] = {"A": ["127.0.0.1"]}
        names[d] = {"MX": [[10, "mx1." + d]]}
        hosts["mta-sts." + d] = {"cert": "good", "body": policy(d)}
    return ({"names": names, "default": "NXDOMAIN"},
            {"hosts": hosts, "default_cert": "good"})


def prepare_certs(fx, hosts):
    """httpsd makes each host's certificate with mkcerts.sh at start-up,
    ~0.1 s apiece: minutes for a thousand hosts.  Make them here instead,
    under the names httpsd looks for (good--HOST.pem = leaf + test CA,
    good--HOST.key), which it then loads as if it had made them: one
    certificate per host, signed by the test CA, with python3-cryptography
    when it is installed (~1 ms each); otherwise with mkcerts.sh, one
    certificate for every SANS_PER_CERT hosts.  Returns what was done."""
    ca_pem = fx.ca_file                         # creates the CA
    uncovered = [h for h in hosts
                 if not os.path.exists(os.path.join(fx.certdir, "good--%s.pem" % h))]
    try:
        made = _certs_cryptography(fx.certdir, ca_pem, uncovered)
        return "one certificate per host (%d made with python3-cryptography)" % made
    except ImportError:
        pass
    for k in range(0, len(uncovered), SANS_PER_CERT):
        chunk = uncovered[k:k + SANS_PER_CERT]
        pem, key = fx.make_cert("bench-multi-%04d" % (k // SANS_PER_CERT), "good", *chunk)
        for h in chunk:
            for src, ext in ((key, ".key"), (pem, ".pem")):
                dst = os.path.join(fx.certdir, "good--%s%s" % (h, ext))
                if not os.path.exists(dst):
                    os.symlink(os.path.basename(src), dst)
    return ("one certificate per %d hosts (mkcerts.sh; python3-cryptography not installed)"
            % SANS_PER_CERT)


def _certs_cryptography(certdir, ca_pem, hosts):
    """Leaf certificates as mkcerts.sh makes them (EC P-256, valid from an
    hour ago for 30 days, serverAuth, one DNS SAN).  ImportError if
    python3-cryptography is missing."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    with open(ca_pem, "rb") as fh:
        ca_pem_bytes = fh.read()
    ca_cert = x509.load_pem_x509_certificate(ca_pem_bytes)
    with open(os.path.join(certdir, "ca.key"), "rb") as fh:
        ca_key = serialization.load_pem_private_key(fh.read(), password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    for h in hosts:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, h[:64])]))
                .issuer_name(ca_cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                             False, False), True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               False)
                .add_extension(aki, False)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(h)]), False)
                .sign(ca_key, hashes.SHA256()))
        base = os.path.join(certdir, "good--" + h)
        # The key lands first: httpsd takes NAME.pem as the sign both exist.
        with open(base + ".key", "wb") as fh:
            fh.write(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
        with open(base + ".pem", "wb") as fh:
            fh.write(cert.public_bytes(serialization.Encoding.PEM) + ca_pem_bytes)
    return len(hosts)


# ------------------------------------------------------------ running

class Result:
    def __init__(self, name):
        self.name = name
        self.fields = {}
        self.status = None      # exit status, or a text when it did not run
        self.seconds = 0.0

    @property
    def ok(self):
        return self.status == 0 and bool(self.fields)

    def get(self, key, default=None):
        return self.fields.get(key, default)

    def num(self, key, default=None):
        v = self.fields.get(key)
        try:
            return float(v)
        except (TypeError, ValueError):
            return default


def run_bench(binary, sub, argv, timeout):
    """Run one subcommand, echoing its output; parse its BENCH line."""
    res = Result(sub)
    cmd = [binary, sub] + [str(a) for a in argv]
    print("\n=== %s" % " ".join(cmd), flush=True)
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=timeout)
        out, res.status = p.stdout, p.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""
        if isinstance(out, bytes):
            out = out.decode("utf-8", "replace")
        res.status = "timed out after %d s" % timeout
    except OSError as e:
        out, res.status = "", "could not run: %s" % e
    res.seconds = time.monotonic() - t0
    sys.stdout.write(out)
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "BENCH" and parts[1] == sub:
            for kv in parts[2:]:
                k, _, v = kv.partition("=")
                res.fields[k] = v
    if res.status != 0:
        print("!!! bench_engine %s: %s" % (sub, res.status if isinstance(res.status, str)
                                            else "exit status %d" % res.status))
    elif not res.fields:
        print("!!! bench_engine %s printed no BENCH line" % sub)
    print("=== %s took %.1f s" % (sub, res.seconds), flush=True)
    return res


class CpuMeter:
    """CPU used by the fixtures and by the bench_engine child during a run,
    to tell an engine limit from a fixture limit (2 cores, and httpsd is
    one Python process)."""

    def __init__(self, fx):
        self.pids = {n: p.popen.pid for n, p in fx.procs.items()}

    def __enter__(self):
        self.before = {n: proc_cpu(pid) or 0.0 for n, pid in self.pids.items()}
        self.child_before = children_cpu()
        return self

    def __exit__(self, *exc):
        self.used = {n: (proc_cpu(pid) or 0.0) - self.before[n] for n, pid in self.pids.items()}
        self.used["bench_engine"] = children_cpu() - self.child_before
        return False

    def text(self):
        return ", ".join("%s %.1f s" % (n, v) for n, v in sorted(self.used.items()))


# ------------------------------------------------------------ summary

def fmt_rate(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return "%.2f M" % (v / 1e6)
    if v >= 1e3:
        return "%.1f k" % (v / 1e3)
    return "%.0f" % v


def fmt(v, spec="%.1f", unit=""):
    return "-" if v is None else (spec % v) + unit


def summary(hits, rss, cold, coal, fixture_figs, args):
    W = 46
    lines = []

    def row(label, *cols):
        text = "  %-*s %s" % (W, label, "  ".join("%-16s" % c for c in cols))
        lines.append(text.rstrip())

    lines.append("")
    lines.append("=" * 110)
    lines.append("mtasts-milter engine benchmark: summary (figures, not assertions)")
    lines.append("%d CPUs; load average at start %s, at end %s (other work on the machine"
                 " skews every figure)" % (os.cpu_count() or 0, args.load_start, loadavg()))
    lines.append("=" * 110)

    lines.append("cache hits, %s seeded domains, random order" % hits.get("domains", "10000")
                 if hits else "cache hits: not run")
    if hits is not None and hits.fields:
        ts = sorted({int(k[1:].split("_")[0]) for k in hits.fields
                     if k.startswith("t") and k[1:2].isdigit()})
        row("threads", *[str(t) for t in ts])
        def per_t(key, f=fmt_rate, *fa):
            return [f(hits.num(key % t), *fa) for t in ts]
        row("engine lookups/s", *per_t("t%d_engine_ops"))
        row("baseline bsearch lookups/s", *per_t("t%d_bsearch_ops"))
        row("baseline plain hash lookups/s", *per_t("t%d_hash_ops"))
        row("ratio engine / bsearch", *per_t("t%d_ratio_bsearch", fmt, "%.3f"))
        row("ratio engine / plain hash", *per_t("t%d_ratio_hash", fmt, "%.3f"))
        row("engine p50 / p99 / p99.9 (ns)",
            *["%s/%s/%s" % (hits.get("t%d_p50_ns" % t), hits.get("t%d_p99_ns" % t),
                            hits.get("t%d_p999_ns" % t)) for t in ts])
        row("bsearch p50 / p99 / p99.9 (ns)",
            *["%s/%s/%s" % (hits.get("t%d_bsearch_p50_ns" % t), hits.get("t%d_bsearch_p99_ns" % t),
                            hits.get("t%d_bsearch_p999_ns" % t)) for t in ts])
        row("hash p50 / p99 / p99.9 (ns)",
            *["%s/%s/%s" % (hits.get("t%d_hash_p50_ns" % t), hits.get("t%d_hash_p99_ns" % t),
                            hits.get("t%d_hash_p999_ns" % t)) for t in ts])
        if len(ts) > 1:
            e1 = hits.num("t%d_engine_ops" % ts[0])
            h1 = hits.num("t%d_hash_ops" % ts[0])
            row("scaling vs 1 thread: engine / hash",
                *["%.2fx / %.2fx" % (hits.num("t%d_engine_ops" % t) / e1,
                                     hits.num("t%d_hash_ops" % t) / h1)
                  if e1 and h1 else "-" for t in ts])
        row("lookups that were not cache hits", hits.get("misses", "-"))
    elif hits is not None:
        row("not measured", str(hits.status))

    lines.append("")
    lines.append("cold discovery (%d ms per DNS answer and per HTTPS response)" % args.latency_ms)
    if not cold:
        row("not run", "(no python3 with dnslib for the fixtures)")
    for r, f in cold:
        if not r.fields:
            row("not measured", str(r.status))
            continue
        n = r.get("domains")
        waves = -(-int(n) // max(1, int(r.get("max_inflight", "1024"))))
        row("%s cold domains at once" % n, fmt(r.num("total_ms"), "%.1f", " ms"),
            "(%s caller threads; one cold domain alone: %s ms)"
            % (r.get("callers"), r.get("single_ms")))
        row("  ratio total / single", fmt(r.num("ratio"), "%.2f"),
            "(ideal ~1, serial ~%s; max_inflight %s allows ~%d)"
            % (n, r.get("max_inflight"), waves))
        row("  answers", "policy %s, pending %s, other %s"
            % (r.get("policy"), r.get("pending"), r.get("other")))
        row("  per-lookup p50 / p99 / max",
            "%s / %s / %s ms" % (r.get("p50_ms"), r.get("p99_ms"), r.get("max_ms")))
        row("  TXT / A+AAAA / HTTPS per domain (fixtures)",
            "%.2f / %.2f / %.2f" % (f["txt"], f["addr"], f["https"]))
        row("  engine loop thread CPU during it", "%s ms (%s%% busy)"
            % (r.get("loop_cpu_ms"), r.get("loop_busy_pct")))
        row("  CPU s during run (whole subcommand)",
            ", ".join("%s %.1f" % (k, v) for k, v in sorted(f["cpu"].items())))
        if r.get("serial_n"):
            row("  serial baseline: %s one after another" % r.get("serial_n"),
                fmt(r.num("serial_ms"), "%.1f", " ms"),
                "= %s ms each" % r.get("serial_each_ms"))
            row("  serial extrapolated to %s" % n,
                fmt(r.num("serial_extrapolated_ms"), "%.0f", " ms"))
            row("  concurrent speedup over serial", fmt(r.num("speedup"), "%.1f", "x"))

    lines.append("")
    lines.append("coalescing: %s callers at once for one cold domain" % args.requests)
    if coal is not None and coal.fields:
        row("answers", "policy %s, pending %s, other %s"
            % (coal.get("policy"), coal.get("pending"), coal.get("other")))
        row("all answered within", fmt(coal.num("total_ms"), "%.1f", " ms"))
        f = fixture_figs.get("coalesce")
        if f:
            bad = f["txt"] != 1 or f["https"] != 1
            row("TXT queries / HTTPS fetches seen", "%d / %d" % (f["txt"], f["https"]),
                "(want 1 / 1)%s" % ("   <<< MISMATCH" if bad else ""))
            row("A+AAAA queries for the policy host", "%d" % f["addr"])
        row("engine: discoveries / joined",
            "%s / %s" % (coal.get("discoveries"), coal.get("joined")))
    elif coal is not None:
        row("not measured", str(coal.status))
    else:
        row("not run", "(no python3 with dnslib for the fixtures)")

    lines.append("")
    lines.append("memory: %s policies (2 mx patterns, ~100-byte text)" % args.policies)
    if rss is not None and rss.fields:
        row("engine RSS per policy", fmt(rss.num("bytes_per_policy"), "%.0f", " bytes"))
        row("baseline: parsed policies in a plain array",
            fmt(rss.num("plain_per_policy"), "%.0f", " bytes"))
        row("ratio engine / plain array", fmt(rss.num("engine_vs_plain"), "%.2f"))
        row("payload (domain + text + mx strings)",
            fmt(rss.num("payload_per_policy"), "%.0f", " bytes"))
        row("RSS before -> after", "%.1f -> %.1f MiB"
            % (rss.num("rss_before", 0) / 1048576.0, rss.num("rss_after", 0) / 1048576.0))
        row("seeded policies still found", rss.get("found"))
    elif rss is not None:
        row("not measured", str(rss.status))
    lines.append("=" * 110)
    print("\n".join(lines), flush=True)


# ------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--domains", type=int, default=1000, help="cold domains at once")
    ap.add_argument("--serial", type=int, default=20, help="serial baseline domains")
    ap.add_argument("--requests", type=int, default=500, help="coalescing callers")
    ap.add_argument("--policies", type=int, default=100000, help="rss: policies")
    ap.add_argument("--seconds", type=int, default=1, help="hits: seconds per run")
    ap.add_argument("--latency-ms", type=int, default=LATENCY_MS)
    ap.add_argument("--only", default="hits,rss,cold,coalesce",
                    help="comma list of subcommands to run")
    args = ap.parse_args()
    args.load_start = loadavg()
    only = set(args.only.split(","))

    binary = os.environ.get("BENCH_ENGINE") or os.path.join(
        harness.builddir(), "tests", "bench", "bench_engine")
    if not os.access(binary, os.X_OK):
        print("bench_engine not built at %s (make bench builds it)" % binary)
        return 1

    hits = rss = coal = None
    cold = []
    fixture_figs = {}
    failed = False

    if "hits" in only:
        hits = run_bench(binary, "hits", ["--seconds", args.seconds], 60 + 20 * args.seconds)
        failed |= not hits.ok
    if "rss" in only:
        rss = run_bench(binary, "rss", ["--policies", args.policies], 120)
        failed |= not rss.ok

    if only & {"cold", "coalesce"}:
        if not harness.have_dnslib():
            print("\n(no python3 with dnslib: cold and coalesce need the DNS fixture; "
                  "install python3-dnslib)")
        else:
            with harness.Fixtures() as fx:
                domains = bench_domains(args.domains, args.serial)
                zone, scen = build(domains)
                t0 = time.monotonic()
                how = prepare_certs(fx, sorted(scen["hosts"]))
                dns_port = fx.start_dns(zone, latency_ms=args.latency_ms)
                https_port = fx.start_https(scen, latency_ms=args.latency_ms)
                print("\nfixtures: %d bench domains, DNS 127.0.0.1:%d, HTTPS 127.0.0.1:%d, "
                      "%d ms latency each way, ready in %.1f s; certificates: %s"
                      % (len(domains), dns_port, https_port, args.latency_ms,
                         time.monotonic() - t0, how), flush=True)
                common = ["--dns", "127.0.0.1:%d" % dns_port, "--https-port", https_port,
                          "--ca", fx.ca_file]

                if "cold" in only:
                    # First fewer domains than max_inflight (all discovered
                    # at once, nothing queued), then all of them.
                    sizes = sorted({min(COLD_SMALL, args.domains), args.domains})
                    for n in sizes:
                        q0 = fx.dns_stats()["queries"]
                        h0 = fx.https_stats()["requests"]
                        with CpuMeter(fx) as cpu:
                            r = run_bench(binary, "cold", common + [
                                "--domains", n,
                                "--serial", args.serial if n == args.domains else 0], 150)
                        failed |= not r.ok
                        q = fx.dns_stats()["queries"]
                        h = fx.https_stats()["requests"]

                        def seen(stats, before, key):
                            return stats.get(key, 0) - before.get(key, 0)
                        figs = {
                            "txt": sum(seen(q, q0, "_mta-sts.d%d.bench.test/TXT" % i)
                                       for i in range(n)) / float(n),
                            "addr": sum(seen(q, q0, "mta-sts.d%d.bench.test/%s" % (i, t))
                                        for i in range(n) for t in ("A", "AAAA")) / float(n),
                            "https": sum(seen(h, h0, "mta-sts.d%d.bench.test" % i)
                                         for i in range(n)) / float(n),
                            "cpu": cpu.used,
                            "wall": r.seconds,
                        }
                        print("fixtures saw, per cold domain: %.2f TXT queries, %.2f A+AAAA "
                              "queries, %.2f HTTPS fetches" % (figs["txt"], figs["addr"],
                                                               figs["https"]))
                        print("CPU used during the run (%.1f s wall, 2 cores): %s"
                              % (r.seconds, cpu.text()), flush=True)
                        cold.append((r, figs))

                if "coalesce" in only:
                    coal = run_bench(binary, "coalesce", common + [
                        "--requests", args.requests], 90)
                    failed |= not coal.ok
                    d = "coalesce.bench.test"
                    f = {"txt": fx.dns_queries("_mta-sts." + d, "TXT"),
                         "addr": fx.dns_queries("mta-sts." + d, "A")
                         + fx.dns_queries("mta-sts." + d, "AAAA"),
                         "https": fx.https_requests("mta-sts." + d)}
                    fixture_figs["coalesce"] = f
                    print("fixtures saw for %s: %d TXT queries, %d A+AAAA queries, "
                          "%d HTTPS fetches" % (d, f["txt"], f["addr"], f["https"]))
                    if f["txt"] != 1 or f["https"] != 1:
                        print("!!! MISMATCH: %d callers for one cold domain caused %d TXT "
                              "queries and %d HTTPS fetches, want 1 and 1 !!!"
                              % (args.requests, f["txt"], f["https"]))

    summary(hits, rss, cold, coal, fixture_figs, args)
    if failed:
        print("some benchmarks could not run (see above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
