#!/usr/bin/python3
"""Operability (issue 13): no failure of the daemon goes unseen.

- A discovery that fails (DNS, certificate) is logged at notice with its
  reason, also with LogLevel notice, where the decisions (info) are not;
  -v raises the level one step.
- mtasts-milter -n refuses a CAFile of junk naming the file, an unknown
  UserID or SocketGroup, and a socket whose host does not resolve.
- Started without -f, the daemon reports start-up errors (bad CA file,
  unknown user, port in use) on stderr with a non-zero exit status before
  it detaches; a good start exits 0 with the daemon running and the
  caller's stderr released.
- A reload of a broken file logs its file:line reason.
- Under systemd ($JOURNAL_STREAM names stderr) each line starts with its
  sd-daemon priority prefix.
- mtasts-query --cache-purge D reaches the running daemon: its next
  lookups of D discover afresh (SQLite store).
- The unix sockets get SocketMode (and, as root, SocketGroup).
"""

import grp
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon  # noqa: E402
import harness  # noqa: E402
from test_socketmap import Client  # noqa: E402

QUERY = os.path.join(daemon.TOP_BUILDDIR, "src", "mtasts-query")


def log_text(dmn):
    with open(dmn.errfile) as f:
        return f.read()


def wait_log(dmn, pattern, timeout=10, what=None):
    rx = re.compile(pattern, re.M)

    def seen():
        return rx.search(log_text(dmn)) is not None
    harness.wait_for(seen, timeout=timeout, msg=what or pattern)
    return rx.search(log_text(dmn))


def base_conf(work, name, lines):
    """A config that needs no fixture: CacheStore none, free ports."""
    path = os.path.join(work, name + ".conf")
    with open(path, "w") as f:
        f.write("Socket inet:%d@127.0.0.1\nSocketmapSocket inet:%d@127.0.0.1\n"
                "CacheStore none\nDNSServers 127.0.0.1:%d\n"
                % (harness.free_port(), harness.free_port(), harness.free_port()))
        if os.geteuid() == 0 and "UserID" not in lines:
            f.write("UserID root\n")
        f.write(lines)
    return path


def run_milter(args, timeout=30, env=None):
    return subprocess.run([daemon.MILTER] + args, capture_output=True, text=True,
                          timeout=timeout, env=env)


# ------------------------------------------------------------------ logging

def failures_logged(report, fx, work):
    """LogLevel notice: a SERVFAIL and a refused certificate each log one
    discovery-failed line with the reason; the decisions (info) do not
    show."""
    def world(names, hosts):
        names["_mta-sts.badcert.test"] = {"TXT": [["v=STSv1; id=bad1;"]]}
        names["mta-sts.badcert.test"] = {"A": ["127.0.0.1"]}
        hosts["mta-sts.badcert.test"] = {"body": daemon.POLICY % ("enforce", "b", "b"),
                                         "cert": "expired"}
    dmn = daemon.Daemon(fx, work, "LogLevel notice\n", world=world)
    try:
        c = Client(dmn.smap_port)

        def servfail():
            got = c.ask("postfix", "broken.test")
            assert got.startswith("NOTFOUND"), "broken.test: got %r" % got
            m = wait_log(dmn, r"^.*discovery-failed domain=broken\.test .*$")
            line = m.group(0)
            for want in ("result=temperror", "mta-sts=not-applied", 'reason="DNS'):
                assert want in line, "no %r in %r" % (want, line)
            assert "<5>" not in line and "notice:" in line, line

        def certificate():
            got = c.ask("postfix", "badcert.test")
            assert got.startswith("NOTFOUND"), "badcert.test: got %r" % got
            m = wait_log(dmn, r"discovery-failed domain=badcert\.test .*$")
            line = m.group(0)
            for want in ("result=invalid", "report_type=sts-webpki-invalid", "certificate"):
                assert want in line, "no %r in %r" % (want, line)

        def once_per_domain():
            # Cached failures answer without a discovery; a new flight of the
            # same domain within RetryInterval would not log again either.
            for _ in range(3):
                c.ask("postfix", "broken.test")
            time.sleep(0.3)
            n = len(re.findall(r"discovery-failed domain=broken\.test ", log_text(dmn)))
            assert n == 1, "broken.test logged %d times, want 1" % n

        def level_hides_info():
            assert c.ask("postfix", "enforce.test").startswith("OK secure")
            text = log_text(dmn)
            assert " started " in text, "the notice line 'started' is missing"
            for info in ("cache-load", "socketmap listening"):
                assert info not in text, "info line %r logged at LogLevel notice" % info
        report.run("a DNS failure (SERVFAIL) logs discovery-failed at notice with the reason",
                   servfail)
        report.run("a refused certificate logs discovery-failed with sts-webpki-invalid",
                   certificate)
        report.run("a failing domain is logged once, not per lookup", once_per_domain)
        report.run("LogLevel notice leaves out info lines", level_hides_info)
        c.close()
    finally:
        dmn.stop()


def verbose_raises(report, fx, work):
    def case():
        dmn = daemon.Daemon(fx, work, "LogLevel warning\n", args=["-v"])
        try:
            text = wait_log(dmn, r" started ", what="the started line").string
            assert "notice: - started" in text, "no notice line with -v:\n" + text[-1000:]
            assert "info:" not in text, "info lines with LogLevel warning -v:\n" + text[-1000:]
        finally:
            dmn.stop()
    report.run("-v raises LogLevel one step (warning -> notice)", case)


def journald_prefixes(report, fx, work):
    def case():
        err = os.path.join(work, "milter.err")
        open(err, "w").close()
        st = os.stat(err)
        env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
        dmn = daemon.Daemon(fx, work, "", env=env)
        try:
            Client(dmn.smap_port).ask("postfix", "broken.test")
            wait_log(dmn, r"discovery-failed")
        finally:
            dmn.stop()
        lines = [ln for ln in log_text(dmn).splitlines() if ln]
        assert lines, "no output"
        bad = [ln for ln in lines if not re.match(r"<[0-7]>\S+ \S+", ln)]
        assert not bad, "lines without an sd-daemon prefix: %r" % bad[:5]
        assert any(ln.startswith("<5>- started ") for ln in lines), lines[:5]
        assert any(ln.startswith("<5>- discovery-failed domain=broken.test") for ln in lines)
        assert not any("mtasts-milter:" in ln for ln in lines), \
            "the plain prefix is still there: %r" % lines[:3]
    report.run("under systemd ($JOURNAL_STREAM = stderr) lines carry <N> priority prefixes",
               case)


# ------------------------------------------------------------------ -n

def check_mode(report, work):
    junk = os.path.join(work, "junk-ca.pem")
    with open(junk, "w") as f:
        f.write("this is not a certificate\n")

    def refused(name, lines, *words):
        def case():
            conf = base_conf(work, name, lines)
            p = run_milter(["-n", "-c", conf])
            assert p.returncode != 0, "exit 0, want non-zero; stdout:\n" + p.stdout
            for w in words:
                assert w in p.stderr, "no %r on stderr:\n%s" % (w, p.stderr)
            assert "configuration OK" not in p.stdout
        return case
    report.run("-n refuses a CAFile of junk and names it",
               refused("junk-ca", "CAFile %s\n" % junk, "CAFile", junk, "no usable PEM"))
    report.run("-n refuses an unknown UserID",
               refused("nouser", "UserID no-such-user-13\n", "no-such-user-13",
                       "does not exist"))
    report.run("-n refuses an unknown SocketGroup",
               refused("nogroup", "SocketGroup no-such-group-13\n", "SocketGroup",
                       "no-such-group-13"))
    report.run("-n refuses a socket whose host does not resolve", refused_socket(work))

    def ok():
        conf = base_conf(work, "good", "")
        p = run_milter(["-n", "-c", conf])
        assert p.returncode == 0, "exit %d:\n%s" % (p.returncode, p.stderr)
        assert "configuration OK" in p.stdout
        assert "LogLevel info" in p.stdout and "SocketMode 0660" in p.stdout, p.stdout
    report.run("-n accepts a good configuration and prints LogLevel and SocketMode", ok)


def refused_socket(work):
    def case():
        path = os.path.join(work, "badhost.conf")
        with open(path, "w") as f:
            f.write("Socket inet:%d@no-such-host.invalid\nSocketmapSocket inet:%d@127.0.0.1\n"
                    "CacheStore none\n%s" % (harness.free_port(), harness.free_port(),
                                             "UserID root\n" if os.geteuid() == 0 else ""))
        p = run_milter(["-n", "-c", path])
        assert p.returncode != 0, "exit 0 for an unresolvable socket host"
        assert "no-such-host.invalid" in p.stderr, p.stderr
    return case


# ------------------------------------------------------------------ daemon mode

def daemon_mode(report, work):
    junk = os.path.join(work, "junk-ca2.pem")
    with open(junk, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")

    def junk_ca():
        conf = base_conf(work, "d-junk", "CAFile %s\n" % junk)
        p = run_milter(["-c", conf])
        assert p.returncode == 78, "exit %d, want 78 (EX_CONFIG):\n%s" % (p.returncode, p.stderr)
        assert junk in p.stderr, "the CA file is not named on stderr:\n" + p.stderr

    def unknown_user():
        if os.geteuid() != 0:
            raise harness.Skip("needs root (UserID is only used when started as root)")
        conf = base_conf(work, "d-user", "UserID no-such-user-13\n")
        p = run_milter(["-c", conf])
        assert p.returncode != 0, "exit 0 for an unknown UserID"
        assert "no-such-user-13" in p.stderr, "stderr:\n" + p.stderr

    def port_in_use(which):
        def case():
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            try:
                conf = base_conf(work, "d-port-" + which, "")
                with open(conf) as f:
                    text = f.read()
                key = "Socket" if which == "milter" else "SocketmapSocket"
                text = re.sub(r"^%s inet:\d+" % key, "%s inet:%d" % (key, port), text, flags=re.M)
                with open(conf, "w") as f:
                    f.write(text)
                p = run_milter(["-c", conf])
            finally:
                s.close()
            assert p.returncode == 69, "exit %d, want 69:\n%s" % (p.returncode, p.stderr)
            assert "Address already in use" in p.stderr and str(port) in p.stderr, p.stderr
        return case

    def good_start():
        pidf = os.path.join(work, "d-good.pid")
        conf = base_conf(work, "d-good", "PidFile %s\n" % pidf)
        # subprocess.run returns only when stderr is closed: the daemon must
        # let go of the caller's stderr when it detaches.
        p = run_milter(["-c", conf], timeout=30)
        assert p.returncode == 0, "exit %d:\n%s" % (p.returncode, p.stderr)
        assert "error" not in p.stderr, p.stderr
        pid = int(open(pidf).read())
        try:
            os.kill(pid, 0)
        finally:
            os.kill(pid, signal.SIGTERM)
        harness.wait_for(lambda: not os.path.exists(pidf), timeout=15, msg="daemon stopped")

    report.run("daemon mode: a CA file of junk exits 78 naming the file", junk_ca)
    report.run("daemon mode: an unknown UserID exits non-zero naming the user", unknown_user)
    report.run("daemon mode: the milter port in use exits 69 with the reason",
               port_in_use("milter"))
    report.run("daemon mode: the socketmap port in use exits 69 with the reason",
               port_in_use("socketmap"))
    report.run("daemon mode: a good start exits 0 once ready, daemon running", good_start)


def reload_reason(report, fx, work):
    def case():
        dmn = daemon.Daemon(fx, work, "")
        try:
            dmn.reload("LogLevel loud\n")
            m = wait_log(dmn, r"reload-failed .*$")
            line = m.group(0)
            assert re.search(r'reason="[^"]*milter\.conf:\d+: LogLevel: .loud. is not a log level',
                             line), line
            assert "kept the running configuration" in line, line
            assert Client(dmn.smap_port).ask("postfix", "enforce.test").startswith("OK")
            # A good file whose changes partly need a restart: each such key named.
            dmn.reload("ProbeInterval 1h\nNegativeCacheTime 10m\nLookupFailAction tempfail\n")
            line = wait_log(dmn, r"reload .*restart_needed=\S+.*$").group(0)
            assert re.search(r"restart_needed=(\S+,)?ProbeInterval(,\S+)? ", line), line
            assert re.search(r"restart_needed=(\S+,)?NegativeCacheTime(,\S+)? ", line), line
            assert "LookupFailAction" not in line, line   # a milter key: applied at once
            wait_log(dmn, r"reload config=\S+ reloaded")
            assert Client(dmn.smap_port).ask("postfix", "enforce.test").startswith("OK")
        finally:
            dmn.stop()
    report.run("a failed reload logs its file:line reason and keeps running; a good one "
               "names each key whose change needs a restart (restart_needed=)", case)


# ------------------------------------------------------------------ purge

def purge_reaches_daemon(report, fx, work):
    state = {}

    def world(names, hosts):
        state["hosts"] = hosts

    def case():
        db = os.path.join(work, "cache.db")
        dmn = daemon.Daemon(fx, work, "", world=world, cache_store="sqlite:" + db)
        try:
            c = Client(dmn.smap_port)
            first = c.ask("postfix", "enforce.test")
            assert "mx1.enforce.test" in first, first
            hosts = state["hosts"]
            hosts["mta-sts.enforce.test"]["body"] = (
                "version: STSv1\r\nmode: enforce\r\nmx: new.enforce.test\r\n"
                "max_age: 86400\r\n")
            fx.update_https({"hosts": hosts, "default_cert": "good"})
            time.sleep(1.5)
            cached = c.ask("postfix", "enforce.test")
            assert cached == first, "changed without a purge: %r" % cached
            p = subprocess.run([QUERY, "--config", dmn.conf, "--cache-purge", "enforce.test"],
                               capture_output=True, text=True, timeout=30)
            assert p.returncode == 0, "mtasts-query: %d %s" % (p.returncode, p.stderr)
            deadline = time.monotonic() + 10
            got = cached
            while time.monotonic() < deadline and "new.enforce.test" not in got:
                time.sleep(0.1)
                got = c.ask("postfix", "enforce.test")
            assert "new.enforce.test" in got, "after the purge: %r" % got
            wait_log(dmn, r"cache-purged domain=enforce\.test")
            other = c.ask("postfix", "testing.test")
            assert other.startswith("OK") or other.startswith("NOTFOUND"), other
        finally:
            dmn.stop()
    report.run("mtasts-query --cache-purge reaches the running daemon (sqlite store)", case)


# ------------------------------------------------------------------ sockets

def socket_modes(report, fx, work):
    def case():
        sub = os.path.join(work, "socks")
        os.makedirs(sub, exist_ok=True)
        os.chmod(sub, 0o755)
        extra = "SocketMode 0640\n"
        group = None
        if os.geteuid() == 0:
            group = "daemon"
            try:
                grp.getgrnam(group)
            except KeyError:
                group = None
            if group is not None:
                extra += "SocketGroup %s\n" % group
        dmn = daemon.Daemon(fx, work, extra,
                            smap_socket="unix:" + os.path.join(sub, "smap.sock"),
                            milter_socket="unix:" + os.path.join(sub, "milter.sock"))
        try:
            for name in ("milter.sock", "smap.sock"):
                st = os.stat(os.path.join(sub, name))
                assert stat.S_ISSOCK(st.st_mode), name
                assert oct(st.st_mode & 0o7777) == oct(0o640), \
                    "%s: mode %s, want 0o640" % (name, oct(st.st_mode & 0o7777))
                if group is not None:
                    assert st.st_gid == grp.getgrnam(group).gr_gid, \
                        "%s: gid %d, want %s" % (name, st.st_gid, group)
        finally:
            dmn.stop()
    report.run("unix sockets get SocketMode (and SocketGroup as root)", case)


def main():
    report = harness.TestReport("operability: logs, -n, start-up errors, purge, sockets")
    if not os.access(daemon.MILTER, os.X_OK) or not os.access(QUERY, os.X_OK):
        report.skip("all", "programs not built")
        return report.finish()
    with tempfile.TemporaryDirectory(prefix="mtasts-ops.") as work:
        os.chmod(work, 0o755)
        check_mode(report, work)
        daemon_mode(report, work)
        for fn in (failures_logged, verbose_raises, journald_prefixes, reload_reason,
                   purge_reaches_daemon, socket_modes):
            sub = tempfile.mkdtemp(dir=work)
            os.chmod(sub, 0o755)
            fx = harness.Fixtures(sub)
            try:
                fn(report, fx, sub)
            finally:
                fx.stop()
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
