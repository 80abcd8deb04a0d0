"""Run the real mtasts-milter daemon for MTA tests, plus the DNS/HTTPS world
the MTA tests share.

    from milterd import MilterDaemon, milter_binary, start_world, WORLD
    dns_port, https_port = start_world(fx)          # harness.Fixtures
    d = MilterDaemon(workdir, dns_port=dns_port, https_port=https_port,
                     ca_file=fx.ca_file)
    d.start()                                       # waits for the milter port
    d.postfix_milter                                # for Postfix smtpd_milters
    d.decisions()                                   # parsed DecisionLog lines
    d.stop()

The daemon runs in the foreground (-f) as our child, in its own process
group, guarded by mtautil.spawn(); its stderr goes to WORKDIR/milter.log.
"""

import atexit
import json
import os
import signal
import socket
import time
import weakref

import mtautil

__all__ = ["MilterDaemon", "milter_binary", "start_world", "WORLD", "policy_text",
           "tag_fields", "tags_by_domain", "expect_fields"]


def milter_binary():
    """$MTASTS_MILTER, else $top_builddir/milter/mtasts-milter (path; may
    not exist)."""
    p = os.environ.get("MTASTS_MILTER")
    if p:
        return p
    top = os.environ.get("top_builddir") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..")
    return os.path.abspath(os.path.join(top, "milter", "mtasts-milter"))


def policy_text(mode, mx):
    return "version: STSv1\r\nmode: %s\r\n%smax_age: 86400\r\n" % (
        mode, "".join("mx: %s\r\n" % m for m in mx))


# The domains every MTA test uses.  id: the TXT id the tag header reports.
WORLD = {
    "enforce.test": {"mode": "enforce", "id": "enf20240101", "mx": ["mx1.enforce.test"]},
    "testing.test": {"mode": "testing", "id": "tst20240101", "mx": ["mx1.testing.test"]},
    "nopolicy.test": None,               # MX but no _mta-sts TXT: result=none
}


def start_world(fx, world=WORLD):
    """Start DNS and HTTPS fixtures serving world; returns (dns_port, https_port)."""
    names, hosts = {}, {}
    for d, p in world.items():
        names[d] = {"MX": [[10, "mx1." + d]]}
        names["mx1." + d] = {"A": ["127.0.0.1"]}
        if p is None:
            continue
        names["_mta-sts." + d] = {"TXT": [["v=STSv1; id=%s;" % p["id"]]]}
        names["mta-sts." + d] = {"A": ["127.0.0.1"]}
        hosts["mta-sts." + d] = {"body": policy_text(p["mode"], p["mx"])}
    dns_port = fx.start_dns({"names": names, "default": "NXDOMAIN"})
    https_port = fx.start_https({"hosts": hosts, "default_cert": "good"})
    return dns_port, https_port


def tag_fields(value):
    """'d; result=x; mode=y' -> ('d', {'result': 'x', 'mode': 'y'})"""
    parts = [p.strip() for p in value.split(";")]
    fields = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        fields[k.strip()] = v.strip()
    return parts[0].lower(), fields


def tags_by_domain(m, header="X-MTA-STS"):
    """{domain: fields} of a SinkMessage's tag headers (one per domain)."""
    out = {}
    for v in m.headers(header):
        d, f = tag_fields(v)
        assert d not in out, "two %s headers for %s: %r" % (header, d, m.headers(header))
        out[d] = f
    return out


def expect_fields(got, want, what):
    for k, v in want.items():
        assert got.get(k) == v, "%s: %s=%r, want %r (header fields %r)" % (
            what, k, got.get(k), v, got)


_LIVE = weakref.WeakSet()


@atexit.register
def _stop_all():
    for d in list(_LIVE):
        try:
            d.stop()
        except Exception:
            pass


class MilterDaemon:
    """mtasts-milter -f -c WORKDIR/mtasts-milter.conf.

    settings: extra or overriding config keys (dict, "Key": "value"); a
    value of None drops a default key.
    milter_socket: "unix:PATH" to listen there instead of a TCP port
      (milter_port is then None; the directory must exist)."""

    def __init__(self, workdir, dns_port, https_port, ca_file, milter_port=None,
                 socketmap_port=None, settings=None, binary=None, milter_socket=None):
        self.workdir = os.path.abspath(workdir)
        self.binary = binary or milter_binary()
        self.milter_path = milter_socket.split(":", 1)[1] if milter_socket else None
        self.milter_port = None if milter_socket else milter_port or mtautil.free_tcp_port()
        self.socketmap_port = socketmap_port or mtautil.free_tcp_port()
        self.conf = os.path.join(self.workdir, "mtasts-milter.conf")
        self.log = os.path.join(self.workdir, "milter.log")
        self.decision_log = os.path.join(self.workdir, "decisions.jsonl")
        self.settings = {
            "Socket": milter_socket or "inet:%d@127.0.0.1" % self.milter_port,
            "SocketmapSocket": "inet:%d@127.0.0.1" % self.socketmap_port,
            "DNSServers": "127.0.0.1:%d" % dns_port,
            "DNSTimeout": "1000ms",
            "DNSTries": "1",
            "CAFile": ca_file,
            "PolicyPort": str(https_port),
            "AllowInternalAddresses": "yes",   # the fixtures are on loopback
            "HTTPSConnectTimeout": "2000ms",
            "HTTPSTimeout": "3000ms",
            "CacheStore": "none",
            "DecisionLog": self.decision_log,
            "UserID": "root",
            "PidFile": os.path.join(self.workdir, "mtasts-milter.pid"),
            "TagHeader": "X-MTA-STS",
            "RouteHeader": "X-MTA-STS-Route",
            "EnvelopeTimeout": "5000ms",
            "LookupFailAction": "tempfail",
            "SplitMixed": "yes",
        }
        for k, v in (settings or {}).items():
            if v is None:
                self.settings.pop(k, None)
            else:
                self.settings[k] = v
        self.popen = None
        _LIVE.add(self)

    @property
    def postfix_milter(self):
        """The milter as Postfix's smtpd_milters spells it."""
        if self.milter_path:
            return "unix:" + self.milter_path
        return "inet:127.0.0.1:%d" % self.milter_port

    @staticmethod
    def available():
        """None if the daemon binary exists, else why not."""
        b = milter_binary()
        if not os.access(b, os.X_OK):
            return "mtasts-milter not built (%s)" % b
        return None

    def write_config(self):
        os.makedirs(self.workdir, exist_ok=True)
        with open(self.conf, "w") as fh:
            fh.write("# written by tests/mta/milterd.py\n")
            for k, v in self.settings.items():
                fh.write("%s %s\n" % (k, v))

    def check_config(self):
        """mtasts-milter -n -c CONF: (rc, output)."""
        self.write_config()
        return mtautil.run([self.binary, "-n", "-c", self.conf], timeout=30)

    def start(self, timeout=20.0):
        self.write_config()
        with open(self.log, "ab") as fh:
            self.popen = mtautil.spawn([self.binary, "-f", "-c", self.conf],
                                       stdout=fh, stderr=fh, cwd=self.workdir)
        try:
            if self.milter_path:
                self._wait_unix(timeout)
            else:
                mtautil.wait_port(self.milter_port, timeout, alive=self.running,
                                  what="mtasts-milter")
        except AssertionError as e:
            raise AssertionError("%s (exit status %s)\n--- milter log\n%s"
                                 % (e, self.popen.poll(), mtautil.tail(self.log))) from None
        return self.milter_port

    def _wait_unix(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                try:
                    s.connect(self.milter_path)
                    return
                except OSError:
                    pass
            if not self.running():
                raise AssertionError("mtasts-milter died before listening on "
                                     + self.milter_path)
            if time.monotonic() > deadline:
                raise AssertionError("mtasts-milter not listening on %s after %.0f s"
                                     % (self.milter_path, timeout))
            time.sleep(0.05)

    def running(self):
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout=15.0):
        """SIGTERM, wait (the daemon drains connections), then SIGKILL.
        Returns the exit status (None if it had to be killed)."""
        if self.popen is None:
            return None
        p = self.popen
        killed = mtautil.stop_group(p, signal.SIGTERM, timeout)
        self.popen = None
        _LIVE.discard(self)
        return None if killed else p.returncode

    def socketmap_answers(self):
        return mtautil.port_answers(self.socketmap_port)

    def log_text(self):
        return mtautil.tail(self.log, 10000)

    def decisions(self):
        """The decision log as a list of dicts (a bad line raises)."""
        try:
            with open(self.decision_log) as fh:
                lines = [l for l in fh.read().splitlines() if l.strip()]
        except FileNotFoundError:
            return []
        out = []
        for l in lines:
            try:
                d = json.loads(l)
            except ValueError as e:
                raise AssertionError("decision log line is not JSON (%s): %r" % (e, l))
            if "record" not in d:  # policy records and other kinds
                out.append(d)
        return out

    def probes(self):
        """The decision log's "probe" records (MX probes) as a list of dicts."""
        try:
            with open(self.decision_log) as fh:
                lines = [l for l in fh.read().splitlines() if l.strip()]
        except FileNotFoundError:
            return []
        return [x for x in (json.loads(l) for l in lines) if x.get("record") == "probe"]

    def wait_decisions(self, pred, timeout=10.0):
        """Wait until pred(decisions()) is true; returns the decisions."""
        deadline = time.monotonic() + timeout
        while True:
            ds = self.decisions()
            if pred(ds):
                return ds
            if time.monotonic() > deadline:
                raise AssertionError("decision log did not reach the expected state "
                                     "in %.0f s:\n%s" % (timeout, "\n".join(map(json.dumps, ds))))
            time.sleep(0.05)

    def diagnostics(self, lines=40):
        return "--- mtasts-milter log (tail) %s\n%s" % (self.log, mtautil.tail(self.log, lines))
