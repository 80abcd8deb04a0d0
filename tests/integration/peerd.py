"""The peer: postfix-mta-sts-resolver (Debian package, `mta-sts-daemon`),
run on our fixtures, for tests/integration/test_peer.py (answers side by
side) and tests/bench/bench_socketmap.py (lookups per second).

    import peerd, netns
    why = peerd.why_unavailable()             # None, or why it cannot run
    rc = netns.run_inside("peer")             # this script again, inside
    if rc is not None: return rc              # (outer process)
    fx.start_dns(zone, port=peerd.DNS_PORT)   # 53: the resolver it uses
    fx.start_https(hosts, port=peerd.HTTPS_PORT)
    p = peerd.Peer(work, fx.ca_file); p.start(); ...; p.stop()

The peer has no settings for its resolver or the policy port: it asks the
servers of /etc/resolv.conf (c-ares through aiodns) on port 53 and
fetches policies from port 443.  So the test or bench runs itself again in
a private network namespace (tests/mta/netns.py: only loopback, and
`ip netns exec` binds our resolv.conf, "nameserver 127.0.0.1", over
/etc/resolv.conf), where the fixtures listen on 127.0.0.1:53 and :443.
Its HTTPS client (aiohttp) verifies with Python's default SSL context,
which honours SSL_CERT_FILE: set to the test CA.  Needs root.
"""

import os
import subprocess
import sys

import harness
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "mta"))
import mtautil  # noqa: E402
import netns  # noqa: E402

PEER_DAEMON = "/usr/bin/mta-sts-daemon"
PEER_PACKAGE = "postfix-mta-sts-resolver"
DNS_PORT = 53
HTTPS_PORT = 443


def peer_version():
    """The installed package version, or None."""
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", PEER_PACKAGE],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None


def uvloop_available():
    """Whether the peer runs on uvloop (python3-uvloop, which the package
    recommends; it uses it when importable)."""
    try:
        return subprocess.run(["/usr/bin/python3", "-c", "import uvloop"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def why_unavailable():
    """None if the peer can run here, else the reason it cannot."""
    if not os.access(PEER_DAEMON, os.X_OK):
        return ("%s not installed (%s; packaging/install-deps.sh --test installs it)"
                % (PEER_PACKAGE, PEER_DAEMON))
    if os.geteuid() != 0:
        return "not root (the peer runs in a private network namespace on ports 53 and 443)"
    why = netns.available()
    if why:
        return "no private network namespace: " + why
    return None


class Peer:
    """mta-sts-daemon -c WORKDIR/mta-sts-daemon.yml on a free loopback port,
    internal cache, log level warn (the bench's setting) unless told.

    cache_grace: seconds a cached policy is served before the peer checks
    the TXT record again on the next request (its default 60; the bench
    raises it so that its runs measure cache hits only)."""

    def __init__(self, workdir, ca_file, port=None, verbosity="warn", cache_grace=None,
                 strict_testing=False, timeout=4):
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.ca_file = ca_file
        self.port = port or mtautil.free_tcp_port()
        self.verbosity = verbosity
        self.cache_grace = cache_grace
        self.strict_testing = strict_testing
        self.timeout = timeout
        self.conf = os.path.join(self.workdir, "mta-sts-daemon.yml")
        self.log = os.path.join(self.workdir, "mta-sts-daemon.log")
        self.popen = None

    def write_config(self):
        lines = ["# written by tests/integration/peerd.py",
                 "host: 127.0.0.1",
                 "port: %d" % self.port,
                 "reuse_port: true",  # false crashes 1.1.2 (responder.py: opts unset)
                 "shutdown_timeout: 2",
                 "cache:",
                 "  type: internal",
                 "  options:",
                 "    cache_size: 10000",
                 "default_zone:",
                 "  strict_testing: %s" % ("true" if self.strict_testing else "false"),
                 "  timeout: %d" % self.timeout]
        if self.cache_grace is not None:
            lines.append("cache_grace: %d" % self.cache_grace)
        with open(self.conf, "w") as fh:
            fh.write("\n".join(lines) + "\n")

    def start(self, timeout=20.0):
        self.write_config()
        env = dict(os.environ)
        env["SSL_CERT_FILE"] = self.ca_file     # aiohttp: ssl.create_default_context()
        for k in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
            env.pop(k, None)
        with open(self.log, "ab") as fh:
            self.popen = mtautil.spawn([PEER_DAEMON, "-c", self.conf, "-v", self.verbosity],
                                       stdout=fh, stderr=fh, cwd=self.workdir, env=env)
        try:
            mtautil.wait_port(self.port, timeout, alive=self.running, what="mta-sts-daemon")
        except AssertionError as e:
            raise harness.FixtureError("%s\n--- mta-sts-daemon log\n%s"
                                       % (e, mtautil.tail(self.log))) from None
        return self.port

    def running(self):
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self):
        return self.popen.pid

    def stop(self):
        if self.popen is not None:
            mtautil.stop_group(self.popen, timeout=10)
            self.popen = None

    def diagnostics(self, lines=30):
        return "--- mta-sts-daemon log (tail) %s\n%s" % (self.log, mtautil.tail(self.log, lines))
