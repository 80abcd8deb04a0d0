"""A private network namespace for end-to-end mail tests (stdlib + iproute2).

Real delivery needs what a loopback-only test cannot fake: MX lookups
through the system resolver and SMTP to port 25.  A network namespace of
our own gives both without touching the host: inside it there is only
`lo`, every port is free (DNS on 53, HTTPS on 443, SMTP sinks on 25 at
127.0.0.N), and `ip netns exec NAME` bind-mounts /etc/netns/NAME/resolv.conf
over /etc/resolv.conf for what it starts, so glibc (Postfix) and c-ares
(the daemon) ask our DNS fixture on 127.0.0.1.

The simplest way to use it is to run the whole test script inside:

    import netns
    def main():
        why = netns.available()
        if why: ...skip...
        rc = netns.run_inside("delivery")   # outer process: runs this script
        if rc is not None:                  # again inside, cleans up, and
            return rc                       # returns its exit status
        ...                                 # inner process: in the namespace

Then every thread and child of the inner process (SMTP sinks, fixtures,
the daemon, Postfix's master) lives in the namespace.  The outer process
only waits: it forwards SIGINT/SIGTERM/SIGHUP to the inner one and removes
the namespace and /etc/netns/NAME whatever happens (finally + atexit).  The
inner process gets SIGTERM if the outer one dies.  Names are
"mtasts-PID-RANDOM"; reap_stale() (run by create()) removes namespaces of
this pattern whose PID is gone, so even a SIGKILLed run leaves nothing for
long.  Needs root and `ip` (Debian package iproute2).
"""

import atexit
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys

import mtautil

__all__ = ["NetNS", "available", "run_inside", "inside", "reap_stale", "ENV"]

IP = shutil.which("ip") or "/usr/sbin/ip"
ENV = "MTASTS_NETNS"                # set in the inner process: the namespace name
_NAME_RE = re.compile(r"^mtasts-(\d+)-[0-9a-f]+$")
_checked = None


def available():
    """None if a namespace can be made here, else the reason it cannot.
    (Inside run_inside()'s namespace: None.)"""
    global _checked
    if inside():
        return None
    if _checked is not None:
        return _checked or None
    if os.geteuid() != 0:
        _checked = "network namespaces need root"
    elif not os.access(IP, os.X_OK):
        _checked = "ip not found (apt-get install iproute2)"
    else:
        ns = NetNS()
        try:
            ns.create()
            rc, out = mtautil.run(ns.argv(["true"]), timeout=20)
            _checked = "" if rc == 0 else "ip netns exec fails: " + out.strip()
        except (OSError, RuntimeError, AssertionError) as e:
            _checked = "ip netns unavailable: %s" % e
        finally:
            ns.destroy()
    return _checked or None


def inside():
    """The namespace name if this process runs inside run_inside()'s
    namespace (checked against the kernel, not only the environment)."""
    name = os.environ.get(ENV)
    if not name:
        return None
    try:
        if os.stat("/proc/self/ns/net").st_ino == os.stat("/run/netns/" + name).st_ino:
            return name
    except OSError:
        pass
    return None


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale():
    """Delete namespaces named mtasts-PID-* (and /etc/netns/NAME) whose
    creating process is gone; returns their names."""
    out = []
    try:
        names = os.listdir("/run/netns")
    except OSError:
        names = []
    try:
        names += [n for n in os.listdir("/etc/netns") if n not in names]
    except OSError:
        pass
    for n in names:
        m = _NAME_RE.match(n)
        if m and not _pid_alive(int(m.group(1))):
            NetNS(n).destroy()
            out.append(n)
    return out


class NetNS:
    """One named network namespace with its own resolv.conf (and hosts)."""

    def __init__(self, name=None):
        self.name = name or "mtasts-%d-%s" % (os.getpid(), secrets.token_hex(3))
        self.etc = os.path.join("/etc/netns", self.name)
        self.created = False

    def create(self, nameservers=("127.0.0.1",), hosts=None,
               resolv_options="timeout:1 attempts:2"):
        """ip netns add NAME; lo up; /etc/netns/NAME/resolv.conf (and
        hosts, text, when given)."""
        reap_stale()
        self.created = True          # from here on destroy() has work to do
        os.makedirs(self.etc, exist_ok=True)
        with open(os.path.join(self.etc, "resolv.conf"), "w") as fh:
            for ns in nameservers:
                fh.write("nameserver %s\n" % ns)
            if resolv_options:
                fh.write("options %s\n" % resolv_options)
        hosts_text = hosts if hosts is not None else \
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        with open(os.path.join(self.etc, "hosts"), "w") as fh:
            fh.write(hosts_text)
        for argv in ([IP, "netns", "add", self.name],
                     [IP, "-n", self.name, "link", "set", "lo", "up"]):
            rc, out = mtautil.run(argv, timeout=20)
            if rc != 0:
                raise RuntimeError("%s: %s" % (" ".join(argv), out.strip()))
        return self

    def argv(self, argv):
        """argv prefixed so that it runs inside the namespace."""
        return [IP, "netns", "exec", self.name] + list(argv)

    def destroy(self):
        """Remove the namespace and /etc/netns/NAME (idempotent)."""
        if os.path.exists(os.path.join("/run/netns", self.name)):
            mtautil.run([IP, "netns", "delete", self.name], timeout=20)
        shutil.rmtree(self.etc, ignore_errors=True)
        self.created = False


def run_inside(tag="test", argv=None, nameservers=("127.0.0.1",)):
    """Run argv (default: this script with its arguments) inside a fresh
    namespace and return its exit status, after removing the namespace.
    Returns None when already inside (the caller goes on with the test).
    tag only labels diagnostics."""
    if inside():
        # The outer process forwards SIGTERM: exit through finally/atexit
        # so the fixtures, sinks, daemon and Postfix are stopped.
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
        return None
    ns = NetNS()
    atexit.register(ns.destroy)
    child = None
    forwarded = {}

    def forward(sig, _frame):
        if child is not None and child.poll() is None:
            child.send_signal(sig)

    try:
        ns.create(nameservers=nameservers)
        env = dict(os.environ, **{ENV: ns.name})
        cmd = ns.argv(argv or [sys.executable] + sys.argv)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            forwarded[sig] = signal.signal(sig, forward)
        sys.stdout.flush()
        # ip execs the command: child.pid is the inner process itself,
        # which gets SIGTERM should we die (parent_death_preexec).
        child = subprocess.Popen(cmd, env=env,
                                 preexec_fn=mtautil.parent_death_preexec(new_group=False))
        rc = child.wait()
        return rc if rc >= 0 else 128 - rc
    except (OSError, RuntimeError, AssertionError) as e:
        print("# %s: cannot run inside a network namespace: %s" % (tag, e))
        sys.stdout.flush()
        return 99                   # automake: hard error
    finally:
        for sig, old in forwarded.items():
            signal.signal(sig, old)
        ns.destroy()
