#!/usr/bin/python3
"""Idle connections must not lock the MTA out of the socketmap (issue 15).

Floods of idle connections, more than the cap: at the default cap (4096)
and at a small one (SocketmapMaxConnections 64); after each, a lookup on a
new connection is answered, by a plain netstring client and by Postfix's
own client (postmap -q, skipped without Postfix).  At the cap the
longest-idle connection makes room, never one with a request in progress:
with the table full of half-sent requests a newcomer is refused, and the
half-sent requests are still served.  A connection is closed after
SocketmapIdleTimeout without a request, one with a half-sent request only
after SocketmapRequestTimeout.  SocketmapMaxPerPeer: a second user (uid
65534, as root) flooding a UNIX socket, and loopback TCP (the peer's uid
from the kernel's socket table), evicts only its own connections, never
those of another user (skipped when not root).  The "socketmap-limit"
warning tells the operator; every daemon exits cleanly (status 0, no
sanitizer report).
"""

import os
import resource
import socket
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon  # noqa: E402
import harness  # noqa: E402
from test_socketmap import ENFORCE, Client, ns, postmap_q, raise_fd_limit  # noqa: E402
from test_socketmap_cold import clean_exit  # noqa: E402

DEFAULT_CAP = 4096
NOBODY = 65534
HALF = b"20:postfix enf"           # the first 14 bytes of ns("postfix enforce.test")


def connect(addr):
    """A non-blocking socket connected to addr (a TCP port on 127.0.0.1 or
    a UNIX socket path)."""
    if isinstance(addr, str):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(addr)
    else:
        s = socket.create_connection(("127.0.0.1", addr))
        s.settimeout(None)
    s.setblocking(False)
    return s


def is_closed(s):
    """True once the daemon has closed s (EOF or reset), without waiting."""
    try:
        return s.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def flood(addr, n, first=b""):
    """n connections to addr, each sending first (nothing: idle)."""
    socks = []
    for _ in range(n):
        s = connect(addr)
        if first:
            s.sendall(first)
        socks.append(s)
    return socks


def close_all(socks):
    for s in socks:
        s.close()


def lookup_ok(addr, what):
    """A new connection is answered enforce.test's policy."""
    try:
        c = Client(addr)
        got = c.ask("postfix", "enforce.test")
        c.close()
    except (AssertionError, OSError) as e:
        raise AssertionError("%s: a new client got no answer (%s: %s)"
                             % (what, type(e).__name__, e))
    assert got == ENFORCE, "%s: got %r, want %r" % (what, got, ENFORCE)


def postmap_ok(addr, what):
    got = postmap_q("enforce.test", "postfix", addr)
    if got is None:
        raise harness.Skip("postfix not installed (the netstring lookup passed)")
    assert got[:2] == (0, ENFORCE[3:]), "%s: postmap -q got %r" % (what, got)


def log_of(dmn):
    with open(dmn.errfile) as f:
        return f.read()


def limit_lines(dmn, reason):
    return [ln for ln in log_of(dmn).splitlines()
            if "socketmap-limit" in ln and "reason=" + reason in ln]


def open_mask(socks):
    return "".join("." if is_closed(s) else "o" for s in socks)


def suffix_open(socks, n_open, what):
    """Wait until exactly the last n_open of socks are open: the longest
    idle went first."""
    want = "." * (len(socks) - n_open) + "o" * n_open
    harness.wait_for(lambda: open_mask(socks) == want, timeout=10,
                     msg="%s: the oldest %d closed, the newest %d open (now %s)"
                     % (what, len(socks) - n_open, n_open, open_mask(socks)))


def refuse(why):
    raise AssertionError(why)


def run_daemon(report, title, extra, cases, unix=False):
    """One daemon (fresh fixtures) for cases [(name, fn)], fn(dmn, addr);
    then its clean exit."""
    with tempfile.TemporaryDirectory(prefix="mtasts-smap-limits.") as work:
        os.chmod(work, 0o755)      # the UNIX socket, for a second user
        fx = harness.Fixtures(work)
        dmn = None
        try:
            sock = "unix:" + os.path.join(work, "smap.sock") if unix else None
            try:
                dmn = daemon.Daemon(fx, work, extra, smap_socket=sock)
            except AssertionError as e:
                for name, _ in cases:
                    report.run(name, refuse, "the daemon did not start: %s" % e)
                return
            addr = dmn.smap_path if dmn.smap_path is not None else dmn.smap_port
            for name, fn in cases:
                report.run(name, fn, dmn, addr)
        finally:
            if dmn is not None:
                dmn.stop()
            fx.stop()
        if dmn is not None:
            report.run("%s: the daemon exits cleanly" % title, clean_exit, dmn)


# ------------------------------------------------------------ the floods

def default_flood(dmn, addr):
    n = DEFAULT_CAP + 100
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n + 200:
        raise harness.Skip("open file limit %d is below the %d this needs" % (soft, n + 200))
    socks = flood(addr, n)
    try:
        t0 = time.monotonic()
        lookup_ok(addr, "after %d idle connections (default limits)" % n)
        postmap_ok(addr, "after %d idle connections (default limits)" % n)
        harness.note("flood of %d answered after %.2f s" % (n, time.monotonic() - t0))
        assert not is_closed(socks[-1]), "the newest idle connection was closed"
        assert is_closed(socks[0]), "the oldest idle connection is still open"
        harness.wait_for(lambda: limit_lines(dmn, "full") or limit_lines(dmn, "peer"),
                         msg="a socketmap-limit warning in the log")
    finally:
        close_all(socks)


def small_cap_flood(dmn, addr):
    cap, n = 64, 200
    socks = flood(addr, n)
    try:
        lookup_ok(addr, "after %d idle connections, cap %d" % (n, cap))
        # The lookup's connection took the place of one more of them.
        suffix_open(socks, cap - 1, "flood of %d, cap %d" % (n, cap))
        postmap_ok(addr, "postmap -q after the flood")
        lines = harness.wait_for(lambda: limit_lines(dmn, "full"),
                                 msg="socketmap-limit reason=full in the log")
        assert "limit=%d" % cap in lines[0] and "evicted=" in lines[0], \
            "the warning says what happened: %r" % lines[0]
        assert len(lines) <= 3, "the warning is rate-limited, got %d lines" % len(lines)
    finally:
        close_all(socks)


def half_sent_at_cap(dmn, addr):
    cap = 64
    socks = flood(addr, cap, first=HALF)
    try:
        time.sleep(0.3)                # let the workers read the halves
        late = connect(addr)
        harness.wait_for(lambda: is_closed(late), msg="the newcomer refused at the cap")
        late.close()
        assert open_mask(socks) == "o" * cap, \
            "a connection with a request in progress was closed: %s" % open_mask(socks)
        # Past the idle timeout (1 s): half a request is not idle.
        time.sleep(1.5)
        assert open_mask(socks) == "o" * cap, \
            "closed as idle with half a request: %s" % open_mask(socks)
        s = socks[0]
        s.setblocking(True)
        s.settimeout(10)
        s.sendall(ns("postfix enforce.test")[len(HALF):])
        got = s.recv(4096)
        assert got == ns(ENFORCE), "the completed request: got %r" % got
        lines = harness.wait_for(lambda: limit_lines(dmn, "full"),
                                 msg="socketmap-limit reason=full in the log")
        assert any("refused=" in ln and "refused=0" not in ln for ln in lines), \
            "the warning counts the refused: %r" % lines
        # The stalled ones go after the request timeout (4 s from their start).
        t0 = time.monotonic()
        harness.wait_for(lambda: open_mask(socks[1:]) == "." * (cap - 1), timeout=10,
                         msg="half-sent requests closed after SocketmapRequestTimeout")
        harness.note("stalled requests closed %.1f s after the completed one"
                     % (time.monotonic() - t0))
        lookup_ok(addr, "after the stalled requests timed out")
    finally:
        close_all(socks)


def idle_timeout(dmn, addr):
    used = Client(addr)
    assert used.ask("postfix", "enforce.test") == ENFORCE
    t0 = time.monotonic()
    quiet = connect(addr)
    harness.wait_for(lambda: used.closed() and is_closed(quiet), timeout=5,
                     msg="idle connections closed after SocketmapIdleTimeout (1 s)")
    took = time.monotonic() - t0
    assert took >= 0.8, "closed after %.2f s, before the idle timeout of 1 s" % took
    used.close()
    quiet.close()


# ------------------------------------------------------------ per peer

def as_other_user(addr, n):
    """n idle connections to addr made by a child process running as uid
    65534, handed back to us (SCM_RIGHTS): the daemon saw that user
    connect, and the sockets stay that user's in the kernel's table."""
    here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:                       # the child: nothing but these calls
        code = 1
        try:
            here.close()
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            socks = flood(addr, n)
            socket.send_fds(there, [b"x"], [s.fileno() for s in socks])
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    there.close()
    try:
        _, fds, _, _ = socket.recv_fds(here, 1, n)
        _, status = os.waitpid(pid, 0)
        assert status == 0 and len(fds) == n, \
            "uid %d child: status %d, %d of %d sockets" % (NOBODY, status, len(fds), n)
    finally:
        here.close()
    socks = [socket.socket(fileno=fd) for fd in fds]
    for s in socks:
        s.setblocking(False)
    return socks


def per_peer(dmn, addr, kind):
    if os.geteuid() != 0:
        raise harness.Skip("needs root to run a client as a second user (uid %d)" % NOBODY)
    limit, n = 8, 40
    # Connections of earlier steps (the start-up probe, closed clients) leave
    # the daemon's table when a worker reads their EOF; on a busy machine
    # that can lag, and a leftover root connection would make root's own
    # flood evict one of its own.  Let them go first.
    time.sleep(1.0)
    mine = flood(addr, limit)            # the MTA's user: at its limit, idle
    try:
        other = as_other_user(addr, n)
        try:
            suffix_open(other, limit, "uid %d's own connections" % NOBODY)
            log = log_of(dmn)
            if kind == "tcp" and "socketmap-peer-unknown" in log:
                raise harness.Skip("the kernel does not tell loopback peers apart here "
                                   "(sock_diag): %s" % [ln for ln in log.splitlines()
                                                        if "socketmap-peer-unknown" in ln][0])
            assert open_mask(mine) == "o" * limit, \
                "another user's flood closed root's connections: %s" % open_mask(mine)
            named = "peer=uid:%d" % NOBODY
            harness.wait_for(lambda: any(named in ln for ln in limit_lines(dmn, "peer")),
                             msg="socketmap-limit reason=peer %s in the log" % named)
            # Root's next connection evicts root's own longest idle.
            lookup_ok(addr, "root after uid %d's flood" % NOBODY)
            suffix_open(mine, limit - 1, "root's own connections")
            if kind == "tcp":
                postmap_ok(addr, "postmap -q after uid %d's flood" % NOBODY)
        finally:
            close_all(other)
    finally:
        close_all(mine)


def main():
    if not os.access(daemon.MILTER, os.X_OK):
        return harness.skipped("socketmap connection limits", "socketmap limits",
                               "%s not built" % daemon.MILTER)
    raise_fd_limit()
    report = harness.TestReport("socketmap connection limits")
    run_daemon(report, "default limits", "", [
        ("%d idle connections (more than the default cap): a new client and postmap -q "
         "are answered" % (DEFAULT_CAP + 100), default_flood)])
    run_daemon(report, "cap 64", "SocketmapMaxConnections 64\nSocketmapMaxPerPeer 0\n", [
        ("200 idle connections, cap 64: the longest idle make room, lookups answered, "
         "one rate-limited warning", small_cap_flood)])
    run_daemon(report, "timeouts",
               "SocketmapMaxConnections 64\nSocketmapMaxPerPeer 0\n"
               "SocketmapIdleTimeout 1s\nSocketmapRequestTimeout 4s\n", [
                   ("idle connections closed after SocketmapIdleTimeout", idle_timeout),
                   ("cap full of half-sent requests: a newcomer refused, none closed as idle, "
                    "closed after SocketmapRequestTimeout", half_sent_at_cap)])
    per_uid = "SocketmapMaxConnections 64\nSocketmapMaxPerPeer 8\n"
    # SocketMode 0666: the second user is in no group of the socket.
    run_daemon(report, "per peer, UNIX", per_uid + "SocketMode 0666\n", [
        ("UNIX socket, SocketmapMaxPerPeer 8: a second user's flood closes only its own",
         lambda dmn, addr: per_peer(dmn, addr, "unix"))], unix=True)
    run_daemon(report, "per peer, TCP", per_uid, [
        ("loopback TCP, SocketmapMaxPerPeer 8: a second user's flood closes only its own",
         lambda dmn, addr: per_peer(dmn, addr, "tcp"))])
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
