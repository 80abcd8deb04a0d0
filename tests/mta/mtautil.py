"""Small helpers shared by the real-MTA test modules (stdlib only).

Process hygiene: every long-running child is started with spawn(): it
leads a process group of its own, gets PR_SET_PDEATHSIG, and is watched by
a tiny guard process that holds the read end of a pipe whose write end only
the test process has; when the test process dies (even by SIGKILL) the pipe
reads EOF and the guard TERMs, then KILLs, that process group.  The guard
is needed because PDEATHSIG is cleared when a process changes credentials,
which Postfix's master, Sendmail and the milter all do.  stop_group() stops
the group with a deadline, SIGKILLs what is left and retires the guard.
Nothing here kills by name.
"""

import ctypes
import ctypes.util
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

__all__ = ["parent_death_preexec", "spawn", "stop_group", "group_members",
           "free_tcp_port", "wait_port", "port_answers", "tail",
           "make_traversable", "run", "children"]

_PR_SET_PDEATHSIG = 1
_libc = None


def _prctl_pdeathsig(sig):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def parent_death_preexec(sig=signal.SIGTERM, new_group=True):
    """A preexec_fn for subprocess.Popen: the child gets sig when the thread
    that started it exits (start children from the main thread), and leads
    a process group of its own so stop_group() can sweep up its children."""
    parent = os.getpid()

    def preexec():
        if new_group:
            os.setpgid(0, 0)
        _prctl_pdeathsig(sig)
        if os.getppid() != parent:      # parent died before prctl took effect
            os.kill(os.getpid(), sig)
    return preexec


def _guard_main(pgid):
    """The guard process: wait for EOF on stdin, then TERM and KILL pgid."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    import sys
    sys.stdin.buffer.read()            # EOF: the test process is gone
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        end = time.monotonic() + wait
        while time.monotonic() < end and group_members(pgid):
            time.sleep(0.1)
        if not group_members(pgid):
            return


def spawn(argv, stdout=None, stderr=None, cwd=None, env=None, sig=signal.SIGTERM):
    """Popen(argv) as a guarded process group leader (see the module doc).
    stdin is /dev/null.  Stop it with stop_group()."""
    import sys
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                         cwd=cwd, env=env, preexec_fn=parent_death_preexec(sig))
    try:
        guard = subprocess.Popen([sys.executable, "-B", os.path.abspath(__file__), "guard",
                                  str(p.pid)],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 start_new_session=True)
    except BaseException:
        stop_group(p)
        raise
    p.mtas_guard = guard
    return p


def _stat_fields(pid):
    """(state, ppid, pgrp) of a process, or None."""
    try:
        with open("/proc/%s/stat" % pid) as fh:
            stat = fh.read()
    except OSError:
        return None
    rest = stat.rsplit(")", 1)[-1].split()
    return rest[0], int(rest[1]), int(rest[2])


def children(pid):
    """PIDs of the live children of pid (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            f = _stat_fields(d)
            if f and f[1] == pid and f[0] != "Z":
                out.append(int(d))
    return out


def group_members(pgid):
    """PIDs whose process group is pgid (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as fh:
                stat = fh.read()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp ...
        rest = stat.rsplit(")", 1)[-1].split()
        if len(rest) > 2 and int(rest[2]) == pgid and rest[0] != "Z":
            out.append(int(d))
    return out


def stop_group(popen, sig=signal.SIGTERM, timeout=10.0):
    """Send sig to popen's process, wait up to timeout for it and for the
    rest of its process group (pgid == its pid) to go, then SIGKILL the
    remainder.  Returns the list of PIDs that had to be killed."""
    if popen is None:
        return []
    try:
        return _stop_group(popen, sig, timeout)
    finally:
        guard = getattr(popen, "mtas_guard", None)
        if guard is not None:
            guard.kill()
            guard.wait()
            guard.stdin.close()
            popen.mtas_guard = None


def _stop_group(popen, sig, timeout):
    pgid = popen.pid
    if popen.poll() is None:
        try:
            popen.send_signal(sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None and not group_members(pgid):
            return []
        time.sleep(0.05)
    killed = []
    for pid in group_members(pgid):
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    if popen.poll() is None:
        try:
            popen.kill()
        except ProcessLookupError:
            pass
    try:
        popen.wait(5)
    except subprocess.TimeoutExpired:
        pass
    return killed


def free_tcp_port(host="127.0.0.1"):
    """A TCP port that was free on host just now (a service that can bind
    port 0 and report it is better; Postfix and Sendmail cannot)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_answers(port, host="127.0.0.1", timeout=0.5):
    """True if a TCP connect to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(port, timeout, host="127.0.0.1", alive=None, what="port"):
    """Wait until host:port accepts connections.  alive(): optional
    callable that returns False when the server is known dead (stop early).
    Raises AssertionError on timeout or death."""
    deadline = time.monotonic() + timeout
    while True:
        if port_answers(port, host):
            return
        if alive is not None and not alive():
            raise AssertionError("%s died before listening on %s:%d" % (what, host, port))
        if time.monotonic() > deadline:
            raise AssertionError("%s not listening on %s:%d after %.0f s"
                                 % (what, host, port, timeout))
        time.sleep(0.05)


def tail(path, lines=60):
    """The last lines of a text file, or a note that it is missing."""
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError as e:
        return "(cannot read %s: %s)\n" % (path, e)


def make_traversable(path):
    """Make path and its ancestors searchable by other users (daemons that
    drop to their own uid must reach files under a mkdtemp() directory).
    Only directories under the temp dir are changed; anything else that
    blocks the way is an error."""
    path = os.path.abspath(path)
    top = os.path.realpath(tempfile.gettempdir())
    cur = path
    while True:
        st = os.stat(cur)
        if (st.st_mode & 0o001) == 0:
            if os.path.realpath(cur).startswith(top + os.sep) or os.path.realpath(cur) == top:
                os.chmod(cur, (st.st_mode & 0o7777) | 0o011)
            else:
                raise RuntimeError("%s is not searchable by other users; "
                                   "use a work dir under %s" % (cur, top))
        parent = os.path.dirname(cur)
        if parent == cur:
            return
        cur = parent


def run(argv, timeout=60, env=None, input=None, cwd=None):
    """subprocess.run with text output captured and a deadline; returns
    (returncode, stdout+stderr).  A timeout is an AssertionError."""
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=timeout, env=env, input=input, cwd=cwd,
                           stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        out = e.output or ""
        if isinstance(out, bytes):
            out = out.decode("utf-8", "replace")
        raise AssertionError("%s timed out after %s s:\n%s" % (argv[0], timeout, out))
    return p.returncode, p.stdout


class SubmitResult:
    """What the MTA answered to one SMTP transaction."""

    def __init__(self):
        self.mail = None          # (code, text)
        self.rcpt = {}            # address -> (code, text)
        self.data = None          # (code, text), None when DATA was not sent
        self.queue_id = None      # from the DATA reply (Postfix or Sendmail style)

    def accepted(self):
        return [r for r, (c, _) in self.rcpt.items() if 200 <= c < 300]

    def __repr__(self):
        return "SubmitResult(mail=%r, rcpt=%r, data=%r, queue_id=%r)" % (
            self.mail, self.rcpt, self.data, self.queue_id)


_QID_RES = (r"queued as ([0-9A-Za-z]+)",                   # Postfix
            r"^(?:2\.0\.0 )?([0-9A-Za-z]{8,20}) Message accepted")   # Sendmail


def smtp_submit(port, mail_from, rcpts, message, host="127.0.0.1", timeout=60.0,
                helo="client.test", raw_rcpt=False):
    """One SMTP transaction with smtplib, recipient by recipient so that
    each RCPT reply is seen (smtplib.sendmail hides partial refusals).
    message: bytes or str (CRLF or LF line ends).  DATA is sent when at
    least one recipient was accepted.  raw_rcpt: each rcpt is the RCPT TO
    argument exactly as given ("<bob@(c)example.com>"), which smtplib
    would otherwise reduce to a plain <address>.  Returns a SubmitResult."""
    import re
    import smtplib
    res = SubmitResult()
    if isinstance(message, str):
        message = message.encode("utf-8")
    with smtplib.SMTP(host, port, local_hostname=helo, timeout=timeout) as s:
        s.ehlo()
        code, text = s.mail(mail_from)
        res.mail = (code, text.decode("latin-1"))
        if code >= 300:
            return res
        for r in rcpts:
            code, text = s.docmd("RCPT", "TO:" + r) if raw_rcpt else s.rcpt(r)
            res.rcpt[r] = (code, text.decode("latin-1"))
        if res.accepted():
            code, text = s.data(message)
            text = text.decode("latin-1")
            res.data = (code, text)
            for rx in _QID_RES:
                m = re.search(rx, text)
                if m:
                    res.queue_id = m.group(1)
                    break
        else:
            s.rset()
    return res


def make_message(to, subject="mtasts test", extra_headers=(), body="test body\n",
                 mail_from="sender@client.test"):
    """A small RFC 5322 message (bytes, CRLF)."""
    import email.utils
    lines = ["From: <%s>" % mail_from,
             "To: " + ", ".join("<%s>" % t for t in to),
             "Subject: " + subject,
             "Date: " + email.utils.formatdate(localtime=False),
             "Message-ID: " + email.utils.make_msgid(domain="client.test")]
    lines += list(extra_headers)
    text = "\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")
    return text.encode("utf-8")


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 3 and sys.argv[1] == "guard":
        _guard_main(int(sys.argv[2]))


class MtaLog:
    """Reading an MTA's log file, for PostfixInstance and SendmailInstance:
    the class names its log (LOG_WHAT, e.g. "Postfix") and gives
    log_path() and diagnostics()."""

    LOG_WHAT = "MTA"

    def log_path(self):
        raise NotImplementedError

    def diagnostics(self):
        return ""

    def log_text(self):
        try:
            with open(self.log_path(), errors="replace") as fh:
                return fh.read()
        except FileNotFoundError:
            return ""

    def log_lines(self, queue_id=None, pattern=None):
        """Log lines, optionally only those with queue_id and/or matching
        the regex pattern."""
        out = []
        for line in self.log_text().splitlines():
            if queue_id and (queue_id + ":") not in line:
                continue
            if pattern and not re.search(pattern, line):
                continue
            out.append(line)
        return out

    def wait_log(self, pattern, timeout=30.0, queue_id=None):
        """Wait for a log line matching pattern; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log_lines(queue_id, pattern)
            if lines:
                return lines[0]
            if time.monotonic() > deadline:
                raise AssertionError("no %s log line matching %r%s after %.0f s\n%s"
                                     % (self.LOG_WHAT, pattern,
                                        " for " + queue_id if queue_id else "", timeout,
                                        self.diagnostics()))
            time.sleep(0.05)
