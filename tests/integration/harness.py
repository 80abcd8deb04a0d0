"""Shared helpers for the mtasts-milter integration tests (stdlib only).

    from harness import Fixtures, TestReport, Skip, wait_for

    fx = Fixtures()                       # fresh temp work dir
    dns = fx.start_dns({"names": {...}})  # -> port (UDP and TCP)
    web = fx.start_https({"hosts": {...}})
    ...                                   # point the C code at them
    assert fx.https_requests("mta-sts.good.test") == 1
    fx.cleanup()                          # or use `with Fixtures() as fx:`

Fixtures are the real servers in tests/fixtures (dnsd.py, httpsd.py,
mkcerts.sh) started as child processes on 127.0.0.1.  Children are stopped
by stop()/cleanup(), by the context manager, at interpreter exit (atexit),
and on their own within ~1 s if this process dies (--exit-with-parent).

TestReport prints "ok - NAME" / "not ok - NAME: message" per case and a
final "N passed, N failed[, N skipped]"; finish() returns the exit status
automake expects (0 pass, 1 fail, 77 skip).  note() adds diagnostic lines
to the log; `with workdir(prefix) as work:` gives a test run its temporary
directory (kept with MTASTS_KEEP_WORKDIR=1).
"""

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import weakref

__all__ = ["Fixtures", "FixtureError", "TestReport", "Skip", "free_port",
           "wait_for", "srcdir", "builddir", "fixtures_dir", "python3",
           "have_dnslib", "note", "workdir", "skipped"]

# How long a fixture may take to start: a wait, not a performance check.
# The HTTPS fixture first makes its certificates with openssl, which took
# over 10 s for the larger scenarios on a busy 2-core machine.
READY_TIMEOUT = 60.0


class FixtureError(Exception):
    """A fixture failed to start, reload or answer; carries its log."""


class Skip(Exception):
    """Raise inside a test case to report it as skipped."""


# ------------------------------------------------------------------ paths

def srcdir():
    """Top of the source tree: $top_srcdir (set by automake) or relative
    to this file (tests/integration/harness.py)."""
    d = os.environ.get("top_srcdir")
    if d:
        return os.path.abspath(d)
    return os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def builddir():
    """Top of the build tree: $top_builddir, else the source tree."""
    d = os.environ.get("top_builddir")
    return os.path.abspath(d) if d else srcdir()


def fixtures_dir():
    return os.path.join(srcdir(), "tests", "fixtures")


def _can_import_dnslib(py):
    try:
        return subprocess.run([py, "-c", "import dnslib"],
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL,
                              timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


_PY = None


def python3():
    """Interpreter for the fixtures: one that can import dnslib.  A pyenv
    or venv python on PATH usually cannot see Debian's python3-dnslib, so
    $PYTHON3 (from configure), then /usr/bin/python3, then ourselves."""
    global _PY
    if _PY is None:
        cands = [os.environ.get("PYTHON3"), "/usr/bin/python3",
                 sys.executable]
        cands = [c for c in cands if c and shutil.which(c)]
        _PY = next((c for c in cands if _can_import_dnslib(c)),
                   cands[0] if cands else sys.executable)
    return _PY


def have_dnslib():
    return _can_import_dnslib(python3())


def free_port():
    """A port that was free on 127.0.0.1 for both TCP and UDP just now.
    Prefer passing port 0 to the fixtures (they report what they bound):
    another process may grab this one before it is used."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise FixtureError("no free port found")


def wait_for(pred, timeout=5.0, interval=0.02, msg="condition"):
    """Poll pred() until it returns something truthy (returned), or raise
    AssertionError naming msg after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s"
                                 % (timeout, msg))
        time.sleep(interval)


# --------------------------------------------------------------- fixtures

_LIVE = weakref.WeakSet()


@atexit.register
def _stop_all():
    for fx in list(_LIVE):
        try:
            fx.cleanup()
        except Exception:
            pass


class _Proc:
    def __init__(self, kind, name, popen, port, files):
        self.kind, self.name, self.popen, self.port = kind, name, popen, port
        self.files = files      # dict: config, portfile, stats, log


class Fixtures:
    """Owns a work dir and the fixture processes started in it.

    workdir: directory for configs, stats, logs and certificates; created
    (and removed again by cleanup()) under $TMPDIR when omitted.  Several
    servers of one kind can run at once under different names."""

    def __init__(self, workdir=None, keep=False):
        self._own_workdir = workdir is None
        if workdir is None:
            workdir = tempfile.mkdtemp(prefix="mtasts-fixtures-")
        os.makedirs(workdir, exist_ok=True)
        self.workdir = os.path.abspath(workdir)
        self.certdir = os.path.join(self.workdir, "certs")
        self.keep = keep or bool(os.environ.get("MTASTS_KEEP_FIXTURES"))
        self.procs = {}         # name -> _Proc
        _LIVE.add(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    # ---------------------------------------------------------- certs
    @property
    def ca_file(self):
        """Path of the test CA (created on first use): the trust anchor
        to give the code under test."""
        path = os.path.join(self.certdir, "ca.pem")
        if not os.path.exists(path):
            self._mkcerts()
        return path

    def make_cert(self, name, kind, *sans):
        """Extra certificate via mkcerts.sh: returns (pem, key) paths."""
        self._mkcerts("--leaf", name, kind, *sans)
        return (os.path.join(self.certdir, name + ".pem"),
                os.path.join(self.certdir, name + ".key"))

    def _mkcerts(self, *args):
        r = subprocess.run(["/bin/sh", os.path.join(fixtures_dir(),
                                                    "mkcerts.sh"),
                            self.certdir] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        if r.returncode != 0:
            raise FixtureError("mkcerts.sh failed:\n" + r.stdout)

    # ---------------------------------------------------------- start
    def start_dns(self, zone, latency_ms=0, name="dns", port=0,
                  verbose=False):
        """Start dnsd.py serving zone (a dict, see dnsd.py); returns the
        port, the same for UDP and TCP."""
        return self._start("dns", name, "dnsd.py", "--zone", zone,
                           latency_ms, port, verbose, [])

    def start_https(self, scenarios, latency_ms=0, name="https", port=0,
                    verbose=False):
        """Start httpsd.py with scenarios (a dict, see httpsd.py); returns
        the port.  Certificates go to self.certdir, trust self.ca_file."""
        return self._start("https", name, "httpsd.py", "--scenarios",
                           scenarios, latency_ms, port, verbose,
                           ["--certdir", self.certdir])

    def _start(self, kind, name, script, cfgopt, cfg, latency_ms, port,
               verbose, extra):
        if name in self.procs:
            raise FixtureError("fixture %r already running" % name)
        f = {k: os.path.join(self.workdir, "%s.%s" % (name, k))
             for k in ("json", "port", "stats", "log")}
        for k in ("port", "stats"):
            if os.path.exists(f[k]):
                os.unlink(f[k])
        self._write_json(f["json"], cfg)
        argv = [python3(), os.path.join(fixtures_dir(), script),
                cfgopt, f["json"], "--port", str(port),
                "--portfile", f["port"], "--stats", f["stats"],
                "--log", f["log"], "--latency-ms", str(int(latency_ms)),
                "--exit-with-parent"] + extra
        if verbose:
            argv.append("--verbose")
        with open(f["log"], "a") as logf:
            # stderr to the log too: tracebacks land next to the messages.
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=logf,
                                     cwd=self.workdir)
        proc = _Proc(kind, name, popen, None, f)
        self.procs[name] = proc
        try:
            proc.port = self._wait_ready(proc)
        except BaseException:
            self.stop(name)
            raise
        return proc.port

    def _wait_ready(self, proc):
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with open(proc.files["port"]) as fh:
                    text = fh.read().strip()
                if text:
                    return int(text)
            except FileNotFoundError:
                pass
            if proc.popen.poll() is not None:
                raise FixtureError("%s fixture %r exited with status %s:\n%s"
                                   % (proc.kind, proc.name,
                                      proc.popen.returncode,
                                      self.log_text(proc.name)))
            time.sleep(0.02)
        raise FixtureError("%s fixture %r not ready after %.0f s:\n%s"
                           % (proc.kind, proc.name, READY_TIMEOUT,
                              self.log_text(proc.name)))

    @staticmethod
    def _write_json(path, obj):
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=1)
        os.rename(tmp, path)

    def port(self, name):
        return self._proc(name).port

    def _proc(self, name):
        try:
            return self.procs[name]
        except KeyError:
            raise FixtureError("no fixture named %r" % name) from None

    # --------------------------------------------------------- reload
    def update_dns(self, zone, name="dns"):
        """Replace the zone of a running DNS fixture (SIGHUP) and wait
        until it is in effect."""
        self._reload(name, zone)

    def update_https(self, scenarios, name="https"):
        """Replace the scenarios of a running HTTPS fixture (SIGHUP; new
        certificates are made as needed) and wait until in effect."""
        self._reload(name, scenarios)

    def _reload(self, name, cfg):
        proc = self._proc(name)
        before = self._stats(name)
        self._write_json(proc.files["json"], cfg)
        proc.popen.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            st = self._stats(name)
            if st.get("reloads", 0) > before.get("reloads", 0):
                return
            if st.get("reload_errors", 0) > before.get("reload_errors", 0):
                raise FixtureError("fixture %r rejected the new config:\n%s"
                                   % (name, self.log_text(name)))
            if proc.popen.poll() is not None:
                break
            time.sleep(0.02)
        raise FixtureError("fixture %r did not reload:\n%s"
                           % (name, self.log_text(name)))

    # ---------------------------------------------------------- stats
    def _stats(self, name):
        path = self._proc(name).files["stats"]
        # The fixture renames a complete file into place, but retry a
        # little in case we raced its very first write.
        for _ in range(50):
            try:
                with open(path) as fh:
                    return json.load(fh)
            except (FileNotFoundError, ValueError):
                time.sleep(0.02)
        raise FixtureError("no stats from fixture %r:\n%s"
                           % (name, self.log_text(name)))

    def dns_stats(self, name="dns"):
        """{"queries": {"name/TYPE": n}, "total", "udp", "tcp", ...}"""
        return self._stats(name)

    def https_stats(self, name="https"):
        """{"requests": {sni: n}, "connections": {sni: n},
        "aborted": {sni: n}, "log": [...], ...}"""
        return self._stats(name)

    def dns_queries(self, qname, qtype, name="dns"):
        """Queries received for qname/qtype (any case, trailing dot ok)."""
        key = "%s/%s" % (qname.rstrip(".").lower(), qtype.upper())
        return self.dns_stats(name)["queries"].get(key, 0)

    def https_requests(self, host, name="https"):
        """Complete HTTP requests received with SNI host."""
        return self.https_stats(name)["requests"].get(host.lower(), 0)

    def https_connections(self, host, name="https"):
        """TLS connections that announced SNI host (whatever happened
        afterwards)."""
        return self.https_stats(name)["connections"].get(host.lower(), 0)

    def log_text(self, name, tail=8000):
        try:
            with open(self._proc(name).files["log"], errors="replace") as fh:
                return fh.read()[-tail:]
        except OSError as e:
            return "(no log: %s)" % e

    # ----------------------------------------------------------- stop
    def stop(self, name=None):
        """Stop one fixture, or all of them."""
        names = [name] if name else list(self.procs)
        for n in names:
            proc = self.procs.pop(n, None)
            if proc is None or proc.popen.poll() is not None:
                continue
            proc.popen.terminate()
            try:
                proc.popen.wait(5)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()

    def cleanup(self):
        """Stop everything and remove the work dir if we created it."""
        self.stop()
        _LIVE.discard(self)
        if self._own_workdir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


# ------------------------------------------------------------ reporting

class TestReport:
    """Runs named test cases and reports them automake-style.

        r = TestReport("mtasts-query")          # name: optional "# name" line
        r.run("txt multi-string", test_txt)     # any callable
        sys.exit(r.finish())

    AssertionError fails a case; Skip skips it; any other exception fails
    it too (with a traceback on stderr) so one broken case does not hide
    the others."""

    def __init__(self, name=None, out=None):
        self.name = name
        self.out = out or sys.stdout
        self.passed = self.failed = self.skipped = 0
        self.failures = []
        if name:
            self._say("# %s" % name)

    def _say(self, line):
        self.out.write(line + "\n")
        self.out.flush()

    def run(self, name, fn, *args, **kwargs):
        """Run fn(*args, **kwargs) as case NAME; returns True if it passed
        (a skipped case returns None)."""
        try:
            fn(*args, **kwargs)
        except Skip as e:
            self.skip(name, str(e))
            return None
        except AssertionError as e:
            msg = str(e) or "assertion failed"
            # Bare asserts carry no message: point at the failing line.
            if not str(e):
                tb = traceback.extract_tb(sys.exc_info()[2])[-1]
                msg = "assertion failed at %s:%d: %s" % (
                    os.path.basename(tb.filename), tb.lineno, tb.line)
            self._fail(name, msg)
            return False
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            self._fail(name, "%s: %s" % (type(e).__name__, e))
            return False
        self.passed += 1
        self._say("ok - %s" % name)
        return True

    def _fail(self, name, msg):
        self.failed += 1
        self.failures.append(name)
        self._say("not ok - %s: %s" % (name, msg.replace("\n", "\n#   ")))

    def skip(self, name, reason=""):
        self.skipped += 1
        self._say("skip - %s%s" % (name, ": " + reason if reason else ""))

    def finish(self):
        """Print the summary line and return the exit status."""
        line = "%d passed, %d failed" % (self.passed, self.failed)
        if self.skipped:
            line += ", %d skipped" % self.skipped
        self._say(line)
        if self.failed:
            return 1
        if self.skipped and not self.passed:
            return 77
        return 0


def skipped(title, case, why):
    """The whole report of a test that cannot run here: "# title", case
    skipped for why; returns the exit status (77)."""
    report = TestReport(title)
    report.skip(case, why)
    return report.finish()


def note(text):
    """Diagnostic text into the test log, one "#   " line each."""
    for line in str(text).splitlines():
        print("#   " + line)
    sys.stdout.flush()


@contextlib.contextmanager
def workdir(prefix, say=note):
    """A fresh temporary directory for one test run, yielded as its path.
    On the way out, however the run ended, the total time is said (say:
    note, or a bench's plain printer) and the directory removed, or kept
    (and its path said) when $MTASTS_KEEP_WORKDIR is set."""
    work = tempfile.mkdtemp(prefix=prefix)
    t0 = time.monotonic()
    try:
        yield work
    finally:
        say("total %.1f s" % (time.monotonic() - t0))
        if os.environ.get("MTASTS_KEEP_WORKDIR"):
            say("work dir kept: " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
