#!/usr/bin/python3
"""Side by side with the real peer: the daemon's socketmap and
postfix-mta-sts-resolver (Debian package, mta-sts-daemon) answer the same
requests on the same fixtures (DNS on 127.0.0.1:53, HTTPS on :443 with the
test CA, inside a private network namespace: tests/integration/peerd.py).

Every scenario (policy modes, discovery and WebPKI failures, TXT record
shapes, key forms, map names, malformed requests) is asked of both; a table
scenario | request | ours | peer | verdict is printed.  Each case asserts that
our answer is our expected answer.  Where the two are meant to agree, the
peer's answer must equal ours (match= lists compared as sets: the peer keeps
them in a Python set); where they differ, the case carries the documented
reason (RFC 8461 section, or the socketmap protocol) and asserts the peer's
recorded answer, so a change on either side shows.  The table and the
reasons are in doc/compat-postfix-mta-sts-resolver.md; --markdown prints
the table in that form.

Skips (exit 77) when not root, without the peer package, without a network
namespace, dnslib or a built daemon.
"""

import os
import socket
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "mta"))
import harness  # noqa: E402
import netns  # noqa: E402
import peerd  # noqa: E402
from milterd import MilterDaemon  # noqa: E402

CLOSED = "(connection closed, no reply)"
SILENT = "(no reply, connection left open)"
REPLY_WAIT_S = 15


def policy(mode, mx=(), max_age="86400", extra=()):
    lines = ["version: STSv1", "mode: %s" % mode]
    lines += ["mx: %s" % m for m in mx]
    if max_age is not None:
        lines.append("max_age: %s" % max_age)
    lines += list(extra)
    return "\r\n".join(lines) + "\r\n"


def ok(*mx):
    return "OK secure match=%s servername=hostname" % ":".join(
        m[1:] if m.startswith("*") else m for m in mx)


NF = "NOTFOUND "

# domain -> {"txt": [records] | None, "cname_txt": target, "https": {...} | None, "rcode": ...}
WORLD = {}


def domain(name, txt="v=STSv1; id=%(id)s;", body=None, mx=None, **https):
    d = {"txt": None if txt is None else ([txt] if isinstance(txt, str) else list(txt)),
         "https": None, "mx": mx or ["mx1." + name]}
    if d["txt"] is not None:
        tid = "".join(ch for ch in name.split(".")[0] if ch.isalnum()) + "1"
        d["txt"] = [t % {"id": tid} for t in d["txt"]]
    if body is not None or https:
        h = dict(https)
        if body is not None:
            h["body"] = body
        d["https"] = h
    WORLD[name] = d
    return name


# ------------------------------------------------------------ scenarios
# Each: (name, request payload, our expected answer, peer) where peer is
# None (must equal ours) or (recorded peer answer, reason it differs).
# "PERM" alone: any PERM reply (its text is ours to word).
domain("xn--bcher-kva.test", body=policy("enforce", ["mx1.xn--bcher-kva.test"]))
ENF = domain("enforce.test", body=policy("enforce", ["mx1.enforce.test"]))
ENF_OK = ok("mx1.enforce.test")

SCENARIOS = [
    ("enforce, literal MX", "postfix " + ENF, ENF_OK, None),
    ("enforce, wildcard MX (default profile: exact)",
     "postfix " + domain("wild.test", body=policy("enforce", ["mx1.wild.test", "*.mx.wild.test"]),
                         mx=["mx1.wild.test", "a.mx.wild.test", "b.c.mx.wild.test"]),
     ok("mx1.wild.test", "a.mx.wild.test"),
     (ok("mx1.wild.test", "*.mx.wild.test"),
      "RFC 8461 4.1: *.mx.wild.test matches exactly one label; the built-in profiles answer "
      "the MX hosts it matches (a.mx.wild.test, not b.c.mx.wild.test), where Postfix reads "
      ".mx.wild.test at any depth, as the peer answers; match=wildcard gives the peer's "
      "answer (next row)")),
    ("enforce, wildcard MX, a profile with match=wildcard", "wild wild.test",
     ok("mx1.wild.test", "*.mx.wild.test"), None),
    ("testing", "postfix " + domain("testing.test", body=policy("testing", ["mx1.testing.test"])),
     NF, None),
    ("mode none", "postfix " + domain("none.test", body=policy("none")), NF, None),
    ("no TXT record", "postfix " + domain("notxt.test", txt=None), NF, None),
    ("TXT, policy file 404",
     "postfix " + domain("nofile.test", body="not here\n", status=404), NF, None),
    ("bad policy: unknown mode value",
     "postfix " + domain("badmode.test", body=policy("enforcing", ["mx1.badmode.test"])),
     NF, None),
    ("bad policy: enforce without mx",
     "postfix " + domain("nomx.test", body=policy("enforce")), NF, None),
    ("bad policy: no version line",
     "postfix " + domain("noversion.test",
                         body="mode: enforce\r\nmx: mx1.noversion.test\r\nmax_age: 86400\r\n"),
     NF, None),
    ("bad policy: 'Mode:' (keys are case-sensitive)",
     "postfix " + domain("casekey.test", body="version: STSv1\r\nMode: enforce\r\n"
                         "mx: mx1.casekey.test\r\nmax_age: 86400\r\n"), NF, None),
    ("bad policy: max_age with a sign (+86400)",
     "postfix " + domain("signage.test", body=policy("enforce", ["mx1.signage.test"],
                                                     max_age="+86400")),
     NF, (ok("mx1.signage.test"),
          "RFC 8461 3.2: max_age is 1*10DIGIT; the peer parses it with Python int(), "
          "which accepts a sign, and applies a policy that does not parse")),
    ("policy: max_age 31557601 (above the stated maximum)",
     "postfix " + domain("bigage.test", body=policy("enforce", ["mx1.bigage.test"],
                                                    max_age="31557601")),
     ok("mx1.bigage.test"),
     (NF, "RFC 8461 3.2: the ABNF allows 1*10DIGIT and the text gives 31557600 as the "
          "maximum without saying to reject more; we clamp (src/sts/policy.c), the peer "
          "discards the whole policy and the domain goes unprotected")),
    ("policy: mode given twice (testing, then enforce)",
     "postfix " + domain("dupmode.test", body=policy("testing", ["mx1.dupmode.test"],
                                                     extra=["mode: enforce"])),
     NF, (ok("mx1.dupmode.test"),
          "a repeated key other than mx: the first occurrence counts (our reading of "
          "RFC 8461 3.2, src/sts/policy.c), so ours is testing; the peer's dict keeps the last "
          "one and enforces")),
    ("policy served as text/html",
     "postfix " + domain("html.test", body=policy("enforce", ["mx1.html.test"]),
                         content_type="text/html"), NF, None),
    ("WebPKI: certificate for the wrong name",
     "postfix " + domain("wrongname.test", body=policy("enforce", ["mx1.wrongname.test"]),
                         cert="wrongname"), NF, None),
    ("WebPKI: expired certificate",
     "postfix " + domain("expired.test", body=policy("enforce", ["mx1.expired.test"]),
                         cert="expired"), NF, None),
    ("WebPKI: untrusted CA",
     "postfix " + domain("untrusted.test", body=policy("enforce", ["mx1.untrusted.test"]),
                         cert="untrusted"), NF, None),
    ("redirect (301) to a valid policy",
     "postfix " + domain("redirect.test", body="moved\n", status=301,
                         location="https://mta-sts.enforce.test/.well-known/mta-sts.txt"),
     NF, None),
    ("oversized policy (> 64 KiB)",
     "postfix " + domain("oversized.test", body=policy("enforce", ["mx1.oversized.test"],
                                                       extra=["x-pad: %s" % ("p" * 900)] * 80)),
     NF, None),
    ("two v=STSv1 TXT records",
     "postfix " + domain("multitxt.test", txt=["v=STSv1; id=a1;", "v=STSv1; id=b2;"],
                         body=policy("enforce", ["mx1.multitxt.test"])), NF, None),
    ("v=STSv1 TXT plus an unrelated TXT",
     "postfix " + domain("othertxt.test", txt=["v=STSv1; id=o1;", "google-site-verification=x"],
                         body=policy("enforce", ["mx1.othertxt.test"])),
     ok("mx1.othertxt.test"), None),
    ("300 unrelated TXT records and one v=STSv1",
     "postfix " + domain("manytxt.test",
                         txt=["site-verification=%03d-%s" % (i, "x" * 20) for i in range(300)]
                         + ["v=STSv1; id=%(id)s;"],
                         body=policy("enforce", ["mx1.manytxt.test"])),
     ok("mx1.manytxt.test"), None),
    ("policy: mx lines that are Postfix match= keywords, beside a host name",
     "postfix " + domain("kwmix.test", body=policy("enforce", ["hostname", "mx1.kwmix.test",
                                                               "nexthop", "dot-nexthop"])),
     ok("mx1.kwmix.test"),
     (ok("hostname", "mx1.kwmix.test", "nexthop", "dot-nexthop"),
      "Postfix reads hostname, nexthop and dot-nexthop in match= as keywords (the MX host "
      "reached, the recipient domain, any name below it; tls_client.c), not as the "
      "single-label host names RFC 8461 3.2 allows: we leave them out (and log it), the "
      "peer passes them on and widens the policy")),
    ("policy: only Postfix match= keywords as mx",
     "postfix " + domain("kwonly.test", body=policy("enforce", ["hostname", "nexthop",
                                                                "dot-nexthop"])),
     "TEMP the MTA-STS policy of kwonly.test allows none of its MX hosts (left out, read by "
     "Postfix as keywords: hostname, nexthop, dot-nexthop)",
     (ok("hostname", "nexthop", "dot-nexthop"),
      "with the keywords left out no name is left: no MX host can match the policy, so "
      "the enforce domain's mail is deferred (RFC 8461 4.1, 5); the peer's answer lets "
      "Postfix accept any MX host whose certificate names itself or the domain")),
    ("TXT v=STSv10 (not STSv1)",
     "postfix " + domain("stsv10.test", txt="v=STSv10; id=s1;",
                         body=policy("enforce", ["mx1.stsv10.test"])), NF, None),
    ("TXT with extra fields",
     "postfix " + domain("extra.test", txt="v=STSv1; id=e1; ext-a=1; foo=bar",
                         body=policy("enforce", ["mx1.extra.test"])),
     ok("mx1.extra.test"), None),
    ("TXT id not 1-32 letters/digits",
     "postfix " + domain("badid.test", txt="v=STSv1; id=not_valid!;",
                         body=policy("enforce", ["mx1.badid.test"])),
     NF, (ok("mx1.badid.test"),
          "RFC 8461 3.1: id = 1*32(ALPHA / DIGIT) and a record that does not parse "
          "means no policy; the peer takes any id")),
    ("max_age 0",
     "postfix " + domain("maxage0.test", body=policy("enforce", ["mx1.maxage0.test"],
                                                     max_age="0")),
     ok("mx1.maxage0.test"), None),
    ("CNAME'd _mta-sts TXT (policy hosted elsewhere)",
     "postfix " + domain("cname.test", txt=None, body=policy("enforce", ["mx1.cname.test"])),
     ok("mx1.cname.test"), None),
    ("DNS SERVFAIL for the TXT", "postfix " + domain("servfail.test", txt=None), NF, None),
    # key forms, all of enforce.test
    ("key: trailing dot", "postfix enforce.test.", ENF_OK, None),
    ("key: [domain]", "postfix [enforce.test]", ENF_OK, None),
    ("key: [domain]:25", "postfix [enforce.test]:25", ENF_OK, None),
    ("key: upper case", "postfix ENFORCE.Test", ENF_OK, None),
    ("key: transport-style domain:port", "postfix enforce.test:587", ENF_OK, None),
    ("key: .parent (parent-domain probe)", "postfix .enforce.test", NF, None),
    ("key: IPv4 literal", "postfix 192.0.2.1", NF, None),
    ("key: [IPv4] literal", "postfix [192.0.2.1]", NF, None),
    ("key: [IPv6:...] literal", "postfix [IPv6:2001:db8::1]", NF, None),
    ("key: underscore in a label",
     "postfix " + domain("under_score.test", body=policy("enforce", ["mx1.under-score.test"])),
     NF, (ok("mx1.under-score.test"),
          "a name with '_' cannot have a usable policy (mta-sts.D needs a WebPKI "
          "certificate, RFC 8461 3.3, and public CAs issue none for '_' since CA/B Forum "
          "ballot SC12): no policy, deliver as usual; the peer gets a policy only because "
          "our test CA signs the name.")),
    ("key: IDN as UTF-8 (U-label)",
     "postfix b\u00fccher.test",
     ok("mx1.xn--bcher-kva.test"),
     (CLOSED, "IDNA (RFC 5890/5891): a U-label names the same domain as its A-label, "
              "which we look up (xn--bcher-kva.test); the peer decodes requests as ASCII "
              "and drops the connection")),
    ("key: not a domain name (bad!name.test)", "postfix bad!name.test", NF, None),
    # map names
    ("map name sts (Sendmail FEATURE(`sts'))", "sts " + ENF, ENF_OK, None),
    ("unknown map name", "nosuchmap " + ENF, "PERM",
     (ENF_OK, "deliberate: a map name that no profile has is refused (PERM, a table "
              "lookup error, so a typo in main.cf defers mail visibly); the peer answers "
              "unknown names with its default zone")),
    ("request without a key", "postfix", "PERM",
     (NF, "socketmap_table(5): a request is \"name key\"; the peer looks up the empty "
          "name and answers NOTFOUND")),
]

# Raw bytes (not a netstring): (name, bytes, our expected answer, peer)
MALFORMED = [
    ("malformed netstring: no length", b"abc,", "PERM", (CLOSED, "protocol (issue 5, "
     "socketmap_table(5) framing): a malformed request gets PERM, then the close; the peer "
     "closes without a reply (Postfix then logs a lost connection and retries)")),
    ("malformed netstring: length over the limit", b"99999:",
     "PERM", (CLOSED, "as above: the peer closes without a reply")),
]


def build_world():
    names, hosts = {}, {}
    for d, spec in WORLD.items():
        names[d] = {"MX": [[10 * (i + 1), h] for i, h in enumerate(spec["mx"])]}
        if spec["txt"] is not None:
            names["_mta-sts." + d] = {"TXT": [[t] for t in spec["txt"]]}
        if spec["https"] is not None:
            names["mta-sts." + d] = {"A": ["127.0.0.1"]}
            hosts["mta-sts." + d] = spec["https"]
    # The policy of cname.test is announced by a provider's record.
    names["_mta-sts.cname.test"] = {"CNAME": "_mta-sts.provider.test"}
    names["_mta-sts.provider.test"] = {"TXT": [["v=STSv1; id=prov1;"]]}
    names["_mta-sts.servfail.test"] = {"rcode": "SERVFAIL"}
    return ({"names": names, "default": "NXDOMAIN"},
            {"hosts": hosts, "default_cert": "good"})


# ------------------------------------------------------------ netstrings

def ns(payload):
    b = payload.encode() if isinstance(payload, str) else payload
    return b"%d:%s," % (len(b), b)


def ask(port, raw):
    """Send raw bytes on a new connection; the first reply's payload, or
    CLOSED / SILENT."""
    s = socket.create_connection(("127.0.0.1", port), timeout=REPLY_WAIT_S)
    buf = b""
    try:
        s.sendall(raw)
        while True:
            if b":" in buf:
                n, rest = buf.split(b":", 1)
                if n.isdigit() and len(rest) >= int(n) + 1:
                    assert rest[int(n):int(n) + 1] == b",", "reply not terminated: %r" % buf
                    return rest[:int(n)].decode("utf-8", "replace")
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return SILENT
            except ConnectionResetError:
                return CLOSED
            if not chunk:
                return CLOSED if not buf else "(closed after %r)" % buf
            buf += chunk
    finally:
        s.close()


def norm(reply):
    """Compare replies with the match= list as a set."""
    out = []
    for w in reply.split(" "):
        if w.startswith("match="):
            w = "match=" + ":".join(sorted(set(w[6:].split(":"))))
        out.append(w)
    return " ".join(out)


# ------------------------------------------------------------ the test

def main():
    report = harness.TestReport("side by side with postfix-mta-sts-resolver")
    markdown = "--markdown" in sys.argv[1:]
    why = MilterDaemon.available() or peerd.why_unavailable()
    if why is None and not harness.have_dnslib():
        why = "python3-dnslib missing (DNS fixture)"
    if why:
        report.skip("side by side with the peer", why)
        return report.finish()
    rc = netns.run_inside("test_peer")
    if rc is not None:
        return rc
    rows = []
    with tempfile.TemporaryDirectory(prefix="mtasts-peer-test.") as work:
        fx = harness.Fixtures(os.path.join(work, "fixtures"))
        ours = peer = None
        try:
            zone, hosts = build_world()
            fx.start_dns(zone, port=peerd.DNS_PORT)
            fx.start_https(hosts, port=peerd.HTTPS_PORT)
            ours = MilterDaemon(os.path.join(work, "daemon"), peerd.DNS_PORT, peerd.HTTPS_PORT,
                                fx.ca_file, settings={"DecisionLog": None,
                                                      "SocketmapProfile": "wild match=wildcard"})
            ours.start()
            harness.wait_for(ours.socketmap_answers, timeout=20, msg="socketmap listening")
            peer = peerd.Peer(os.path.join(work, "peer"), fx.ca_file, verbosity="info")
            peer.start()
            report._say("# peer: %s %s%s" % (peerd.PEER_PACKAGE, peerd.peer_version() or "?",
                                            ", uvloop" if peerd.uvloop_available() else ""))
            cases = [(n, ns(p), p, want, pr) for n, p, want, pr in SCENARIOS]
            cases += [(n, raw, repr(raw)[2:-1], want, pr) for n, raw, want, pr in MALFORMED]
            for name, raw, request, want, pr in cases:
                report.run(name, one_case, ours, peer, name, raw, request, want, pr, rows)
            report.run("max_age 0, asked again (not cached by us; the peer re-checks)",
                       one_case, ours, peer, "max_age 0, again", ns("postfix maxage0.test"),
                       "postfix maxage0.test", ok("mx1.maxage0.test"), None, rows)
            report.run("both servers still answer after all that", lambda: (
                _eq(ask(ours.socketmap_port, ns("postfix " + ENF)), ENF_OK, "ours"),
                _eq(norm(ask(peer.port, ns("postfix " + ENF))), norm(ENF_OK), "peer")))
        except (harness.FixtureError, AssertionError, OSError) as e:
            report.run("fixtures, daemon and peer start", _raise, e)
        finally:
            print_table(report, rows, markdown)
            for x in (peer, ours):
                if x is not None:
                    if report.failed:
                        report._say("# " + x.diagnostics().replace("\n", "\n# "))
                    x.stop()
            fx.cleanup()
    return report.finish()


def _raise(e):
    raise AssertionError(str(e))


def _eq(got, want, what):
    assert got == want, "%s: got %r, want %r" % (what, got, want)


def one_case(ours, peer, name, raw, request, want, peer_rec, rows):
    got = ask(ours.socketmap_port, raw)
    theirs = ask(peer.port, raw)
    if peer_rec is None:
        verdict = "same" if norm(got) == norm(theirs) else "DIFFERENT (undocumented)"
        if got != theirs and norm(got) == norm(theirs):
            verdict = "same (match= order aside)"
    else:
        verdict = "different: " + peer_rec[1]
    rows.append((name, request, got, theirs, verdict))
    if want == "PERM":
        assert got.startswith("PERM "), "ours: got %r, want a PERM reply" % got
    else:
        _eq(got, want, "ours")
    if peer_rec is None:
        assert norm(theirs) == norm(got), (
            "the peer answered %r, we %r: a difference without a documented reason "
            "(a bug here, or document it)" % (theirs, got))
    else:
        _eq(norm(theirs), norm(peer_rec[0]), "peer (recorded answer; reason: %s)" % peer_rec[1])


def print_table(report, rows, markdown):
    if not rows:
        return
    if markdown:
        print("| scenario | request | ours | peer | verdict |")
        print("|---|---|---|---|---|")
        for r in rows:
            print("| %s |" % " | ".join(
                ("`%s`" % c if i in (1, 2, 3) and c else c).replace("|", "\\|")
                for i, c in enumerate(r)))
        return
    report._say("# %-44s %-28s %-40s %-40s %s" % ("scenario", "request", "ours", "peer",
                                                  "verdict"))
    for name, request, got, theirs, verdict in rows:
        report._say("# %-44s %-28s %-40s %-40s %s" % (
            name[:44], request[:28], got, theirs, verdict if len(verdict) < 60 else
            verdict[:57] + "..."))


if __name__ == "__main__":
    sys.exit(main())
