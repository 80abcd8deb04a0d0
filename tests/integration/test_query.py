#!/usr/bin/python3
"""mtasts-query --json against real DNS and HTTPS fixtures on loopback.

Every scenario gets its own domain under .test; one DNS server and one
HTTPS server (test CA made at start-up) serve them all.  For each scenario
the whole JSON object is compared with the expected one: the set of keys,
every value, and a substring of the human error text.  Exit codes are
checked too (0 policy/none, 1 invalid, 2 temperror, 64 usage, 78 config).
"""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
import harness  # noqa: E402

TOP_BUILDDIR = os.environ.get("top_builddir") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")
QUERY = os.path.join(TOP_BUILDDIR, "src", "mtasts-query")

LOCAL = "127.0.0.1"


def pol(mode="enforce", mx=("mx1.{d}", "*.mx.{d}"), max_age="86400", extra="",
        eol="\r\n", version="STSv1"):
    lines = []
    if version is not None:
        lines.append("version: " + version)
    if mode is not None:
        lines.append("mode: " + mode)
    lines += ["mx: " + m for m in mx]
    if max_age is not None:
        lines.append("max_age: " + max_age)
    body = eol.join(lines) + eol
    return body + extra


TXT_OK = [["v=STSv1; id=20240101T1;"]]

# name -> scenario.  Keys of a scenario:
#   txt: TXT records for _mta-sts.<d> (None = no such name -> NXDOMAIN)
#   dns: extra zone entries {name: entry}, "{d}" replaced by the domain
#   host_dns: zone entry for mta-sts.<d> (default A 127.0.0.1)
#   https: scenario for mta-sts.<d> (None: not served)
#   args: extra command-line MX arguments
#   want: expected JSON object (without "domain" and "source", added here);
#         "error" is a substring that must occur in the error text
#   exit: expected exit status
#   internal: False runs it with AllowInternalAddresses off (the default);
#         every other scenario needs it on, the fixtures being on loopback
SCENARIOS = {}


def sc(name, **kw):
    kw.setdefault("internal", True)
    kw.setdefault("txt", TXT_OK)
    kw.setdefault("https", {"body": pol()})
    kw.setdefault("args", [])
    kw.setdefault("exit", {"policy": 0, "none": 0, "invalid": 1,
                           "temperror": 2}[kw["want"]["result"]])
    SCENARIOS[name] = kw


def enforce_want(d, mx=None, max_age=86400, mode="enforce", id_="20240101T1", **extra):
    w = {"result": "policy", "mode": mode,
         "mx": mx if mx is not None else ["mx1." + d, "*.mx." + d],
         "max_age": max_age, "id": id_, "report_type": None}
    w.update(extra)
    return w


def fetch_error(substr, id_="20240101T1"):
    return {"result": "temperror", "id": id_, "report_type": "sts-policy-fetch-error",
            "error": substr}


def policy_invalid(substr, id_="20240101T1"):
    return {"result": "invalid", "id": id_, "report_type": "sts-policy-invalid",
            "error": substr}


def webpki(substr="certificate", id_="20240101T1"):
    return {"result": "invalid", "id": id_, "report_type": "sts-webpki-invalid",
            "error": substr}


def none(substr):
    return {"result": "none", "report_type": None, "error": substr}


D = "{d}"
# ---- modes and MX matching (RFC 8461 3.2, 4.1)
sc("enforce-basic", want=enforce_want(D))
sc("enforce-mx-match",
   args=["mx1.{d}", "a.mx.{d}", "b.a.mx.{d}", "mx.{d}", "MX1.{D}.", "other.example"],
   want=enforce_want(D, mx_match={"mx1.{d}": True, "a.mx.{d}": True, "b.a.mx.{d}": False,
                                  "mx.{d}": False, "MX1.{D}.": True,
                                  "other.example": False}))
sc("testing-mode", https={"body": pol(mode="testing")}, want=enforce_want(D, mode="testing"))
sc("none-mode", https={"body": pol(mode="none", mx=())},
   want=enforce_want(D, mode="none", mx=[]))
sc("lf-line-ends", https={"body": pol(eol="\n")}, want=enforce_want(D))
sc("no-final-newline", https={"body": pol().rstrip("\r\n")}, want=enforce_want(D))
sc("max-age-leading-zeros", https={"body": pol(max_age="0000086400")}, want=enforce_want(D))
sc("max-age-zero", https={"body": pol(max_age="0")}, want=enforce_want(D, max_age=0))
sc("max-age-clamped", https={"body": pol(max_age="9999999999")},
   want=enforce_want(D, max_age=31557600))
sc("unknown-keys-ignored", https={"body": pol(extra="foo: bar\r\nMode: none\r\n")},
   want=enforce_want(D))
sc("duplicate-mode-first-wins", https={"body": pol(mode="testing", extra="mode: enforce\r\n")},
   want=enforce_want(D, mode="testing"))
sc("whitespace-after-colon",
   https={"body": "version:   STSv1\r\nmode:\tenforce  \r\nmx: mx1.{d}\r\nmax_age: 600\r\n"},
   want=enforce_want(D, mx=["mx1.{d}"], max_age=600))
sc("content-type-charset", https={"body": pol(), "content_type": "text/plain; charset=utf-8"},
   want=enforce_want(D))
# The body is exactly 65536 bytes (no "{d}" in it, so its length is fixed).
BODY_64K_HEAD = pol(mx=("mx.example.net",))
sc("body-exactly-64k",
   https={"body": BODY_64K_HEAD + "x: " + "a" * (65536 - len(BODY_64K_HEAD) - 5) + "\r\n"},
   want=enforce_want(D, mx=["mx.example.net"]))
# ---- TXT discovery (RFC 8461 3.1)
sc("txt-nxdomain", txt=None, https=None, want=none("no MTA-STS TXT record"))
sc("txt-nodata", txt=None, dns={"_mta-sts.{d}": {"A": ["127.0.0.1"]}}, https=None,
   want=none("NODATA"))
sc("txt-not-sts", txt=[["v=spf1 -all"]], https=None, want=none("v=STSv1"))
sc("txt-v-stsv10", txt=[["v=STSv10; id=1"]], https=None, want=none("v=STSv1"))
sc("txt-discard-before-count", txt=[["v=spf1 -all"], ["v=STSv1; id=abc123"]],
   want=enforce_want(D, id_="abc123"))
# RFC 8461 3.1 discards the other records before counting: 300 unrelated
# ones (SPF, site verifications; the answer is too big for UDP and comes
# over TCP) do not hide the one v=STSv1 record, nor make two of one.
UNRELATED_300 = [["site-verification=%03d-%s" % (i, "x" * 20)] for i in range(300)]
sc("txt-300-unrelated-then-sts", txt=UNRELATED_300 + [["v=STSv1; id=among300"]],
   want=enforce_want(D, id_="among300"))
sc("txt-sts-first-then-300-unrelated", txt=[["v=STSv1; id=first301"]] + UNRELATED_300,
   want=enforce_want(D, id_="first301"))
sc("txt-300-unrelated-no-sts", txt=UNRELATED_300, https=None,
   want=none("no TXT record starts with v=STSv1"))
sc("txt-300-unrelated-two-sts", txt=[["v=STSv1; id=a1"]] + UNRELATED_300 + [["v=STSv1; id=b2"]],
   https=None, want=none("found 2 v=STSv1 records"))
sc("txt-two-sts-records", txt=[["v=STSv1; id=1"], ["v=STSv1; id=2"]], https=None,
   want=none("unusable MTA-STS TXT record"))
sc("txt-multi-string", txt=[["v=STSv1; ", "id=multi", "string1;"]],
   want=enforce_want(D, id_="multistring1"))
sc("txt-id-too-long", txt=[["v=STSv1; id=" + "a" * 33]], https=None,
   want=none("unusable MTA-STS TXT record"))
sc("txt-extension-ignored", txt=[["v=STSv1 ; id=ext1 ; foo=bar;"]],
   want=enforce_want(D, id_="ext1"))
sc("txt-servfail", txt=None, dns={"_mta-sts.{d}": {"rcode": "SERVFAIL"}}, https=None,
   want={"result": "temperror", "report_type": None, "error": "DNS"})
sc("txt-timeout", txt=None, dns={"_mta-sts.{d}": {"timeout": True}}, https=None,
   want={"result": "temperror", "report_type": None, "error": "DNS"})
sc("txt-cname-in-zone", txt=None,
   dns={"_mta-sts.{d}": {"CNAME": "_mta-sts.provider-a.example"},
        "_mta-sts.provider-a.example": {"TXT": [["v=STSv1; id=viacname1"]]}},
   want=enforce_want(D, id_="viacname1"))
sc("txt-cname-chased", txt=None,
   dns={"_mta-sts.{d}": {"CNAME": "_mta-sts.provider-b.example", "cname_only": True},
        "_mta-sts.provider-b.example": {"TXT": [["v=STSv1; id=viacname2"]]}},
   want=enforce_want(D, id_="viacname2"))
sc("txt-cname-loop", txt=None,
   dns={"_mta-sts.{d}": {"CNAME": "loop1.{d}", "cname_only": True},
        "loop1.{d}": {"CNAME": "_mta-sts.{d}", "cname_only": True}},
   https=None, want=none("CNAME"))
sc("txt-cname-to-nxdomain", txt=None,
   dns={"_mta-sts.{d}": {"CNAME": "_mta-sts.gone.example", "cname_only": True}},
   https=None, want=none("NXDOMAIN"))
# ---- policy host address
sc("host-nxdomain", host_dns=None, https=None, want=fetch_error("policy host"))
sc("host-servfail", host_dns={"rcode": "SERVFAIL"}, https=None,
   want=fetch_error("policy host"))
sc("host-aaaa-servfail-a-ok", host_dns={"A": [LOCAL], "rcode_by_type": {"AAAA": "SERVFAIL"}},
   want=enforce_want(D))
# ---- HTTPS (RFC 8461 3.3)
sc("http-404", https={"status": 404, "body": "not here"}, want=fetch_error("HTTP status 404"))
sc("http-500", https={"status": 500, "body": "oops"}, want=fetch_error("HTTP status 500"))
sc("redirect-not-followed",
   https={"status": 301, "location": "https://mta-sts.enforce-basic.test/.well-known/mta-sts.txt",
          "body": ""},
   want=fetch_error("not followed"))
sc("content-type-html", https={"body": pol(), "content_type": "text/html"},
   want=policy_invalid("Content-Type"))
sc("content-type-missing", https={"body": pol(), "content_type": None},
   want=policy_invalid("Content-Type"))
sc("body-over-64k", https={"body": pol(extra="x: " + "a" * 65536 + "\r\n")},
   want=policy_invalid("larger than 65536"))
sc("body-over-64k-no-length",
   https={"body": pol(extra="x: " + "a" * 70000 + "\r\n"), "headers": {"Content-Length": None}},
   want=policy_invalid("larger than 65536"))
sc("cert-expired", https={"body": pol(), "cert": "expired"}, want=webpki("expired"))
sc("cert-not-yet-valid", https={"body": pol(), "cert": "notyetvalid"}, want=webpki())
sc("cert-wrong-name", https={"body": pol(), "cert": "wrongname"}, want=webpki())
sc("cert-self-signed", https={"body": pol(), "cert": "selfsigned"}, want=webpki())
sc("cert-untrusted-ca", https={"body": pol(), "cert": "untrusted"}, want=webpki())
sc("cert-wildcard", https={"body": pol(), "cert": "wildcard"}, want=enforce_want(D))
sc("no-tls", https={"body": pol(), "no_tls": True}, want=fetch_error("policy fetch failed"))
sc("close-early", https={"body": pol(), "close_early": True},
   want=fetch_error("policy fetch failed"))
sc("slow-drip-timeout", https={"body": pol(), "drip_ms": 100},
   want=fetch_error("policy fetch failed"))
sc("delay-timeout", https={"body": pol(), "delay_ms": 4000},
   want=fetch_error("policy fetch failed"))
# Response headers: bounded like the body, and too many are a fetch error
# (one line over libcurl's own 100 KB limit, or many lines over ours).
sc("headers-one-300k-line", https={"body": pol(), "headers": {"X-Big": "a" * 300000}},
   want=fetch_error("response headers larger than 65536 bytes"))
sc("headers-300-lines-of-1k",
   https={"body": pol(), "headers": {"X-H%d" % i: "a" * 1000 for i in range(300)}},
   want=fetch_error("response headers larger than 65536 bytes"))
sc("headers-40-lines-of-1k",
   https={"body": pol(), "headers": {"X-H%d" % i: "a" * 1000 for i in range(40)}},
   want=enforce_want(D))
# ---- special-purpose addresses of the policy host (AllowInternalAddresses off)
sc("internal-loopback", internal=False,
   want=fetch_error("refused to connect to 127.0.0.1 (Loopback, 127.0.0.0/8, RFC 1122)"))
sc("internal-mapped", internal=False, host_dns={"AAAA": ["::ffff:7f00:1"]},
   want=fetch_error("refused to connect to ::ffff:127.0.0.1 (Loopback"))
sc("internal-private", internal=False, host_dns={"A": ["10.255.255.1"]},
   want=fetch_error("refused to connect to 10.255.255.1 (Private-Use, 10.0.0.0/8"))
sc("internal-two-addresses", internal=False, host_dns={"A": ["127.0.0.1", "192.168.7.7"]},
   want=fetch_error("and 1 more address"))
# ---- policy syntax (RFC 8461 3.2)
sc("policy-version-missing", https={"body": pol(version=None)}, want=policy_invalid("version"))
sc("policy-version-wrong", https={"body": pol(version="STSv2")}, want=policy_invalid("version"))
sc("policy-mode-case", https={"body": pol(mode="Enforce")}, want=policy_invalid("mode"))
sc("policy-mx-missing", https={"body": pol(mx=())}, want=policy_invalid("mx"))
sc("policy-mx-ip", https={"body": pol(mx=("192.0.2.1",))}, want=policy_invalid("mx"))
sc("policy-mx-star-foo", https={"body": pol(mx=("*foo.example",))}, want=policy_invalid("mx"))
sc("policy-max-age-11-digits", https={"body": pol(max_age="12345678901")},
   want=policy_invalid("max_age"))
sc("policy-max-age-negative", https={"body": pol(max_age="-1")}, want=policy_invalid("max_age"))
sc("policy-html", https={"body": "<html><body>hello</body></html>\n"},
   want=policy_invalid("invalid policy"))
sc("policy-empty", https={"body": ""}, want=policy_invalid("invalid policy"))


def fmt(v, d):
    """Fill {d} (domain) and {D} (domain upper-cased) into strings, recursively."""
    if isinstance(v, str):
        return v.replace("{d}", d).replace("{D}", d.upper())
    if isinstance(v, list):
        return [fmt(x, d) for x in v]
    if isinstance(v, dict):
        return {fmt(k, d): fmt(x, d) for k, x in v.items()}
    return v


def build(scenarios):
    names, hosts = {}, {}
    for name, s in scenarios.items():
        d = name + ".test"
        if s["txt"] is not None:
            names["_mta-sts." + d] = {"TXT": s["txt"]}
        hd = s.get("host_dns", {"A": [LOCAL]})
        if hd is not None:
            names["mta-sts." + d] = fmt(hd, d)
        names[d] = {"MX": [[10, "mx1." + d], [20, "backup.other.example"]]}
        for k, v in s.get("dns", {}).items():
            names[fmt(k, d)] = fmt(v, d)
        if s["https"] is not None:
            hosts["mta-sts." + d] = fmt(s["https"], d)
    return {"names": names, "default": "NXDOMAIN"}, {"hosts": hosts, "default_cert": "good"}


def run_query(args, timeout=30):
    p = subprocess.run([QUERY] + args, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def check_json(d, s, rc, out, err):
    want = fmt(dict(s["want"]), d)
    want["domain"] = d
    want["source"] = "network"
    assert rc == s["exit"], "exit status: got %d, want %d (stderr %r)" % (rc, s["exit"], err)
    try:
        got = json.loads(out)
    except ValueError as e:
        raise AssertionError("output is not JSON (%s): %r" % (e, out))
    substr = want.pop("error", None)
    got_err = got.pop("error", None)
    if substr is not None:
        assert got_err is not None and substr in got_err, \
            "error: got %r, want it to contain %r" % (got_err, substr)
    assert set(got) == set(want), "keys: got %s, want %s" % (sorted(got), sorted(want))
    for k in want:
        assert got[k] == want[k], "%s: got %r, want %r" % (k, got[k], want[k])


def main():
    if not os.access(QUERY, os.X_OK):
        print("mtasts-query not built at %s" % QUERY)
        return 99
    report = harness.TestReport("mtasts-query")
    with tempfile.TemporaryDirectory(prefix="mtasts-query-test.") as work:
        fx = harness.Fixtures(work)
        try:
            zone, hosts = build(SCENARIOS)
            dns_port = fx.start_dns(zone)
            https_port = fx.start_https(hosts)
            ca = fx.ca_file
            # strict: the packaged AllowInternalAddresses (off); conf, what
            # every other test has: the fixtures are on loopback.
            strict = os.path.join(work, "strict.conf")
            with open(strict, "w") as f:
                f.write("# written by test_query.py\n"
                        "DNSServers 127.0.0.1:%d\nDNSTimeout 500ms\nDNSTries 1\n"
                        "CAFile %s\nPolicyPort %d\n"
                        "HTTPSConnectTimeout 2s\nHTTPSTimeout 2s\n" % (dns_port, ca, https_port))
            conf = os.path.join(work, "mtasts.conf")
            with open(strict) as f, open(conf, "w") as g:
                g.write(f.read() + "AllowInternalAddresses yes\n")

            for name, s in SCENARIOS.items():
                d = name + ".test"
                base = ["--json", "--config", conf if s["internal"] else strict]

                def case(d=d, s=s, base=base):
                    rc, out, err = run_query(base + [d] + fmt(s["args"], d))
                    check_json(d, s, rc, out, err)
                report.run("scenario " + name, case)

            extra_cases(report, fx, work, conf, dns_port, https_port, ca)
            internal_cases(report, fx, conf, strict)
        finally:
            fx.stop()
    return report.finish()


def extra_cases(report, fx, work, conf, dns_port, https_port, ca):
    base = ["--json", "--config", conf]

    def big_txt_over_tcp():
        # 300 records do not fit the 1280-byte EDNS UDP answer: the fixture
        # sets TC and c-ares asks again over TCP (no scenario above needs
        # TCP otherwise, so the count is theirs).
        before = fx.dns_stats()["tcp"]
        rc, out, err = run_query(base + ["txt-300-unrelated-then-sts.test"])
        assert rc == 0 and json.loads(out)["id"] == "among300", (rc, out, err)
        assert fx.dns_stats()["tcp"] > before, "the 300-record TXT answer did not come over TCP"
    report.run("a TXT answer too big for UDP is asked again over TCP", big_txt_over_tcp)

    def idn_domain():
        # U-label input is queried and reported as its A-label.
        rc, out, _ = run_query(base + ["enforce-basic.test"])
        assert rc == 0, out
        rc, out, err = run_query(base + ["b\u00fccher.test"])
        got = json.loads(out)
        assert got["domain"] == "xn--bcher-kva.test", "domain: got %r" % got["domain"]
        assert got["result"] == "none", "result: got %r, want none (%s)" % (got["result"], err)
    report.run("idn domain is queried as A-label", idn_domain)

    def normalised_input():
        rc, out, err = run_query(base + ["ENFORCE-BASIC.Test."])
        got = json.loads(out)
        assert rc == 0 and got["domain"] == "enforce-basic.test" and got["result"] == "policy", \
            "got %r (rc %d, %s)" % (got, rc, err)
    report.run("upper case and trailing dot are normalised", normalised_input)

    def address_literal():
        for lit in ("[192.0.2.1]", "[IPv6:2001:db8::1]"):
            rc, out, err = run_query(base + [lit])
            assert rc == 64, "%s: exit got %d, want 64" % (lit, rc)
            assert "address literal" in err, "%s: stderr %r" % (lit, err)
            assert out == "", "%s: stdout %r, want nothing" % (lit, out)
    report.run("address literals are refused as usage errors", address_literal)

    def bad_mx_argument():
        rc, _, err = run_query(base + ["enforce-basic.test", "not a host"])
        assert rc == 64 and "MX" in err, "exit %d, stderr %r" % (rc, err)
    report.run("bad MX argument is a usage error", bad_mx_argument)

    def overrides():
        # A config without DNSServers/CAFile: the flags alone must do.
        bare = os.path.join(work, "bare.conf")
        with open(bare, "w") as f:
            f.write("PolicyPort %d\nDNSTimeout 500ms\nDNSTries 1\nAllowInternalAddresses yes\n"
                    % https_port)
        rc, out, err = run_query(["--json", "--config", bare, "--dns", "127.0.0.1:%d" % dns_port,
                                  "--ca-file", ca, "enforce-basic.test"])
        got = json.loads(out)
        assert rc == 0 and got["result"] == "policy", "got %r rc %d %s" % (got, rc, err)
    report.run("--dns and --ca-file override the config", overrides)

    def system_store_rejects_test_ca():
        bare = os.path.join(work, "nocafile.conf")
        with open(bare, "w") as f:
            f.write("DNSServers 127.0.0.1:%d\nPolicyPort %d\nDNSTimeout 500ms\n"
                    "AllowInternalAddresses yes\n" % (dns_port, https_port))
        rc, out, _ = run_query(["--json", "--config", bare, "enforce-basic.test"])
        got = json.loads(out)
        assert rc == 1 and got["report_type"] == "sts-webpki-invalid", "got %r" % got
    report.run("without CAFile the system store does not trust the test CA",
               system_store_rejects_test_ca)

    def bad_dns_flag():
        rc, _, err = run_query(["--json", "--config", conf, "--dns", "not-an-ip", "x.test"])
        assert rc == 64 and "DNSServers" in err, "exit %d stderr %r" % (rc, err)
    report.run("bad --dns value is a usage error", bad_dns_flag)

    def missing_config():
        rc, _, err = run_query(["--config", os.path.join(work, "nope.conf"), "x.test"])
        assert rc == 78 and "nope.conf" in err, "exit %d stderr %r" % (rc, err)
    report.run("missing --config file is a config error", missing_config)

    def config_unknown_key():
        p = os.path.join(work, "unknown.conf")
        with open(p, "w") as f:
            f.write("# comment\nNoSuchKey 1\n")
        rc, _, err = run_query(["--config", p, "x.test"])
        assert rc == 78 and "unknown.conf:2" in err, "exit %d stderr %r" % (rc, err)
    report.run("unknown config key names file and line", config_unknown_key)

    def usage():
        rc, _, err = run_query([])
        assert rc == 64 and "usage" in err, "exit %d stderr %r" % (rc, err)
        rc, out, _ = run_query(["--help"])
        assert rc == 0 and "usage" in out
    report.run("usage errors exit 64", usage)

    def text_output():
        rc, out, _ = run_query(["--config", conf, "enforce-basic.test", "mx1.enforce-basic.test"])
        assert rc == 0, rc
        for want in ("result:      policy", "mode:        enforce", "policy id:   20240101T1",
                     "mx pattern:  *.mx.enforce-basic.test",
                     "MX mx1.enforce-basic.test: matches the policy"):
            assert want in out, "text output lacks %r:\n%s" % (want, out)
    report.run("readable summary without --json", text_output)

    def check_mx_from_dns():
        rc, out, err = run_query(base + ["--check-mx", "enforce-basic.test"])
        got = json.loads(out)
        want = {"mx1.enforce-basic.test": True, "backup.other.example": False}
        assert got.get("mx_match") == want, "mx_match: got %r, want %r" % (got.get("mx_match"), want)
    report.run("--check-mx checks the domain's MX records", check_mx_from_dns)

    def one_fetch_with_sni():
        before = fx.https_stats().get("requests", {}).get("mta-sts.testing-mode.test", 0)
        rc, _, _ = run_query(base + ["testing-mode.test"])
        assert rc == 0
        st = fx.https_stats()
        after = st.get("requests", {}).get("mta-sts.testing-mode.test", 0)
        assert after - before == 1, "fetches: got %d, want 1" % (after - before)
        entry = [e for e in st["log"] if e["sni"] == "mta-sts.testing-mode.test"][-1]
        assert entry["path"] == "/.well-known/mta-sts.txt", entry
        assert entry["method"] == "GET", entry
        hdrs = {k.lower(): v for k, v in entry["headers"]}
        assert hdrs.get("host", "").startswith("mta-sts.testing-mode.test"), hdrs
        assert "no-cache" in hdrs.get("cache-control", ""), hdrs
    report.run("one GET with SNI mta-sts.<domain> per query, no caching", one_fetch_with_sni)

    def redirect_target_not_fetched():
        before = fx.https_stats().get("requests", {}).get("mta-sts.enforce-basic.test", 0)
        run_query(base + ["redirect-not-followed.test"])
        after = fx.https_stats().get("requests", {}).get("mta-sts.enforce-basic.test", 0)
        assert after == before, "redirect target fetched %d times" % (after - before)
    report.run("redirect target is never requested", redirect_target_not_fetched)

    def none_has_no_fetch():
        before = fx.https_stats().get("total_requests", 0)
        run_query(base + ["txt-nxdomain.test"])
        after = fx.https_stats().get("total_requests", 0)
        assert after == before, "HTTPS requests for a domain without TXT: %d" % (after - before)
    report.run("no TXT record means no HTTPS request", none_has_no_fetch)



def internal_cases(report, fx, conf, strict):
    def count(kind, host):
        return fx.https_stats().get(kind, {}).get(host, 0)

    def refused_before_connect():
        # The refusal happens where the socket would be opened: the fixture
        # behind the refused address never sees a connection.
        for d in ("internal-loopback.test", "internal-mapped.test",
                  "internal-two-addresses.test"):
            host = "mta-sts." + d
            rc, out, err = run_query(["--json", "--config", strict, d])
            got = json.loads(out)
            assert rc == 2 and got["report_type"] == "sts-policy-fetch-error", \
                "%s: exit %d, got %r (%s)" % (d, rc, got, err)
            assert "AllowInternalAddresses" in got["error"], got["error"]
            for kind in ("connections", "requests", "aborted"):
                assert count(kind, host) == 0, "%s: %s %d, want 0" % (d, kind, count(kind, host))
        # The same fixture answers once the switch is on.
        rc, out, err = run_query(["--json", "--config", conf, "internal-loopback.test"])
        got = json.loads(out)
        assert rc == 0 and got["result"] == "policy", "switch on: got %r (%s)" % (got, err)
        assert count("requests", "mta-sts.internal-loopback.test") == 1, \
            "switch on: requests %d, want 1" % count("requests", "mta-sts.internal-loopback.test")
    report.run("special-purpose addresses are refused before a connection is made",
               refused_before_connect)


if __name__ == "__main__":
    sys.exit(main())
