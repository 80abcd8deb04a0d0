#!/usr/bin/python3
"""What a root-started mtasts-milter makes for its service user (issue 15).

Started as root, the daemon creates its decision log (DecisionLog), its
pid file (PidFile) and its unix sockets before it drops to UserID.  The
service user may write the directories they live in, so it can plant a
symbolic link or a hard link there, between two runs or during a start.
Each case starts the real daemon as root with UserID nobody in a fresh
temporary directory and checks:

- a decision log or pid file that is a symbolic link or a hard link to a
  root-owned 0600 file is refused (exit status, a message naming the
  path and the reason), and the root file keeps its owner, mode and
  content -- the daemon used to chown it to nobody by path;
- a directory writable by others (world-writable, with or without the
  sticky bit; group-writable by a group with another member; owned by
  another user) is refused, and so is a path through a directory the
  service user owns or a symbolic link it made;
- in a good set-up the files are created owned by nobody:nogroup with
  their modes (decision log 0640, pid file 0644), and the unix sockets
  have their final owner and mode (milter 0660, socketmap 0666) from the
  first moment they exist: a thread stats them from before the start;
- the decision log reopened on SIGUSR1 (after logrotate moved it) refuses
  a symbolic link planted meanwhile, keeps writing to the old file, and
  creates a fresh file once the link is gone;
- a regular file where the socketmap socket should be is not removed;
- mtasts-query run as root opens the cache store as UserID: a new store
  file belongs to the service user, a link the service user planted at
  the store's path is not followed with root's rights, and an unknown
  UserID refuses the cache command.

Needs root (skips with 77 otherwise) and the accounts nobody, daemon.
"""

import grp
import os
import pwd
import signal
import stat
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon  # noqa: E402
import harness  # noqa: E402
from harness import note  # noqa: E402

USER, GROUP = "nobody", "nogroup"
OTHER = "daemon"            # another account, and a group that is its primary group
SECRET = b"root:secret-hash:19000:0:99999:7:::\n"
EXIT_WAIT = 20              # seconds for a refused start to exit (sanitizer builds)


def ids():
    return pwd.getpwnam(USER).pw_uid, grp.getgrnam(GROUP).gr_gid


def make_dir(path, owner=None, group=None, mode=0o755):
    """owner/group: names (default root)."""
    os.makedirs(path, exist_ok=True)
    uid = pwd.getpwnam(owner).pw_uid if owner else 0
    gid = grp.getgrnam(group).gr_gid if group else 0
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


def make_victim(path):
    """A root-owned 0600 file standing for /etc/shadow."""
    with open(path, "wb") as fh:
        fh.write(SECRET)
    os.chown(path, 0, 0)
    os.chmod(path, 0o600)
    return path


def plant_symlink(target, link):
    """A symbolic link made by the service user."""
    os.symlink(target, link)
    os.lchown(link, *ids())


def assert_untouched(victim):
    assert os.path.lexists(victim), "victim %s was removed" % victim
    st = os.stat(victim)
    with open(victim, "rb") as fh:
        body = fh.read()
    got = (st.st_uid, st.st_gid, oct(st.st_mode & 0o7777), body)
    want = (0, 0, oct(0o600), SECRET)
    assert got == want, "victim %s (uid, gid, mode, content) is %r, want %r" % (victim, got, want)


class Run:
    """One mtasts-milter -f -c CONF started as root in directory work.
    settings: config keys that differ from the defaults below."""

    def __init__(self, work, name, settings):
        self.work = work
        self.run_dir = make_dir(os.path.join(work, name + "-run"), USER, GROUP, 0o750)
        self.settings = {
            "Socket": "unix:" + os.path.join(self.run_dir, "milter.sock"),
            "SocketmapSocket": "unix:" + os.path.join(self.run_dir, "smap.sock"),
            "CacheStore": "none",
            "DNSServers": "127.0.0.1:%d" % harness.free_port(),
            "UserID": USER,
            "SyslogFacility": "mail",
        }
        self.settings.update(settings)
        self.conf = os.path.join(work, name + ".conf")
        with open(self.conf, "w") as fh:
            for k, v in self.settings.items():
                if v is not None:
                    fh.write("%s %s\n" % (k, v))
        self.outfile = os.path.join(work, name + ".out")
        self.out = open(self.outfile, "w")
        self.proc = subprocess.Popen([daemon.MILTER, "-f", "-c", self.conf], stdout=self.out,
                                     stderr=self.out)

    def text(self):
        with open(self.outfile) as fh:
            return fh.read()

    def started(self):
        return " started " in self.text()

    def outcome(self, timeout=EXIT_WAIT):
        """"exited" (the exit status in self.rc) or "started"."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.rc = self.proc.returncode
                return "exited"
            if self.started():
                return "started"
            time.sleep(0.02)
        raise AssertionError("mtasts-milter neither started nor exited in %d s:\n%s"
                             % (timeout, self.text()[-2000:]))

    def stop(self):
        daemon.stop_process(self.proc)
        self.out.close()
        note("---- mtasts-milter output ----\n" + self.text()[-2000:])


def refusal(work, name, settings, *words):
    """Start the daemon; it must exit non-zero with every word in its
    output.  Returns None if it did, else what went wrong."""
    r = Run(work, name, settings)
    try:
        if r.outcome() != "exited":
            return "the daemon started; want a refusal naming %r" % (words,)
        text = r.text()
        if r.rc == 0:
            return "exit status 0, want non-zero:\n%s" % text
        for w in words:
            if w not in text:
                return "no %r in the daemon's output:\n%s" % (w, text[-2000:])
        if "Sanitizer" in text:
            return "a sanitizer report in the daemon's output:\n%s" % text[-3000:]
        return None
    finally:
        r.stop()


def expect_refused(work, name, settings, *words):
    err = refusal(work, name, settings, *words)
    assert err is None, err


def expect_refused_untouched(victim, work, name, settings, *words):
    """The victim is checked first: what the daemon did to it matters most."""
    err = refusal(work, name, settings, *words)
    assert_untouched(victim)
    assert err is None, err


# ------------------------------------------------------------------- cases

def link_case(key, fname, kind):
    """key (DecisionLog, PidFile) at a kind ("symbolic", "hard") link to a
    root file, in a directory of the service user."""
    words = {"symbolic": "symbolic link", "hard": "hard link"}

    def case(work):
        name = "%s-%s" % (key, kind)
        d = make_dir(os.path.join(work, name), USER, GROUP)
        victim = make_victim(os.path.join(work, "shadow-" + name))
        path = os.path.join(d, fname)
        if kind == "symbolic":
            plant_symlink(victim, path)
        else:
            os.link(victim, path)       # as with fs.protected_hardlinks = 0
        expect_refused_untouched(victim, work, name, {key: path}, path, words[kind])
    return case


def dir_case(name, mode, owner=None, group=None, words=()):
    def case(work):
        d = make_dir(os.path.join(work, name), owner, group, mode)
        path = os.path.join(d, "decisions.json")
        expect_refused(work, name, {"DecisionLog": path}, d, *words)
        assert not os.path.lexists(path), "%s was created" % path
    return case


def through_service_dir(work):
    """A directory of the service user above the log's: it could swap the
    log's directory for a link to anywhere (/etc)."""
    top = make_dir(os.path.join(work, "svc-top"), USER, GROUP)
    sub = make_dir(os.path.join(top, "logs"), USER, GROUP)
    expect_refused(work, "svc-top", {"DecisionLog": os.path.join(sub, "decisions.json")},
                   top, "UserID")


def through_user_symlink(work):
    """A symbolic link of the service user in the path (in a root
    directory): it could point it anywhere."""
    real = make_dir(os.path.join(work, "real-logs"), USER, GROUP)
    link = os.path.join(work, "link-logs")
    plant_symlink(real, link)
    expect_refused(work, "user-link", {"DecisionLog": os.path.join(link, "decisions.json")},
                   link, "symbolic link")


def stat_sock(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.S_ISSOCK(st.st_mode), oct(st.st_mode & 0o7777), st.st_uid, st.st_gid)


def good_setup(work):
    """The right set-up starts; files and sockets get their owner and mode
    at once.  Returns nothing; leaves the daemon to reopen_refuses_link."""
    uid, gid = ids()
    logdir = make_dir(os.path.join(work, "good-log"), USER, GROUP, 0o750)
    piddir = make_dir(os.path.join(work, "good-pid"), USER, GROUP, 0o750)
    dlog = os.path.join(logdir, "decisions.json")
    pidf = os.path.join(piddir, "mtasts-milter.pid")
    run_dir = os.path.join(work, "good-run")
    socks = {os.path.join(run_dir, "milter.sock"): (True, oct(0o660), uid, gid),
             os.path.join(run_dir, "smap.sock"): (True, oct(0o660), uid, gid)}
    first = {}
    stop = threading.Event()

    def watch():
        # From before the start: the first state each socket is seen in.
        while not stop.is_set() and len(first) < len(socks):
            for p in socks:
                if p not in first:
                    s = stat_sock(p)
                    if s is not None:
                        first[p] = s
    make_dir(run_dir, USER, GROUP, 0o750)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    r = Run(work, "good", {"DecisionLog": dlog, "PidFile": pidf})
    try:
        how = r.outcome()
        stop.set()
        t.join()
        assert how == "started", "the daemon exited (%s):\n%s" % (r.rc, r.text()[-2000:])
        for p, want in socks.items():
            got_first, got = first.get(p), stat_sock(p)
            note("%s: first seen %r, now %r" % (p, got_first, got))
            assert got == want, "socket %s (is socket, mode, uid, gid) %r, want %r" % (
                p, got, want)
            assert got_first == want, "socket %s was first seen as %r, want %r from the start" % (
                p, got_first, want)
        st = os.stat(dlog)
        got = (stat.S_ISREG(st.st_mode), oct(st.st_mode & 0o7777), st.st_uid, st.st_gid)
        assert got == (True, oct(0o640), uid, gid), "decision log %r" % (got,)
        st = os.stat(pidf)
        got = (stat.S_ISREG(st.st_mode), oct(st.st_mode & 0o7777), st.st_uid, st.st_gid)
        assert got == (True, oct(0o644), uid, gid), "pid file %r" % (got,)
        with open(pidf) as fh:
            assert fh.read() == "%d\n" % r.proc.pid, "pid file does not hold %d" % r.proc.pid
        with open("/proc/%d/status" % r.proc.pid) as fh:
            uids = [l.split()[1:] for l in fh if l.startswith("Uid:")][0]
        assert uids == [str(uid)] * 4, "daemon uids %r, want %d" % (uids, uid)
        reopen_refuses_link(r, logdir, dlog)
    finally:
        stop.set()
        r.stop()
    assert r.proc.returncode == 0, "exit status %s" % r.proc.returncode
    assert "Sanitizer" not in r.text(), "a sanitizer report in the daemon's output"


def wait_output(r, word, after):
    harness.wait_for(lambda: word in r.text()[after:], timeout=10,
                     msg="%r in the daemon's output" % word)


def reopen_refuses_link(r, logdir, dlog):
    """logrotate moved the log; the service user planted a link before the
    SIGUSR1.  The reopen refuses it and keeps the old file; once the link
    is gone the next SIGUSR1 creates a fresh log."""
    uid, gid = ids()
    other = os.path.join(logdir, "elsewhere")
    with open(other, "w") as fh:
        fh.write("not a log\n")
    os.chown(other, uid, gid)
    os.rename(dlog, dlog + ".1")
    plant_symlink(other, dlog)
    mark = len(r.text())
    r.proc.send_signal(signal.SIGUSR1)
    wait_output(r, "decision-log", mark)
    text = r.text()[mark:]
    assert "symbolic link" in text and dlog in text, "reopen did not refuse the link:\n" + text
    assert r.proc.poll() is None, "the daemon exited on a refused reopen"
    os.unlink(dlog)
    mark = len(r.text())
    r.proc.send_signal(signal.SIGUSR1)
    wait_output(r, "reopened", mark)
    st = os.lstat(dlog)
    got = (stat.S_ISREG(st.st_mode), oct(st.st_mode & 0o7777), st.st_uid, st.st_gid)
    assert got == (True, oct(0o640), uid, gid), "reopened decision log %r" % (got,)
    with open(other) as fh:
        assert fh.read() == "not a log\n", "the link's target was written"


def smap_keeps_file(work):
    """A regular file where the socketmap socket should be: refused, not
    removed (the daemon used to unlink whatever was there, as root)."""
    d = make_dir(os.path.join(work, "smap-file"), mode=0o755)
    victim = make_victim(os.path.join(d, "smap.sock"))
    expect_refused_untouched(victim, work, "smap-file",
                             {"UserID": "root", "SocketmapSocket": "unix:" + victim}, victim)


QUERY = os.path.join(daemon.TOP_BUILDDIR, "src", "mtasts-query")


def query_as_root(work, name, user, *args):
    """mtasts-query --config C ARGS as root, with the cache store in a
    directory of the service user: (exit status, stderr, store dir)."""
    d = make_dir(os.path.join(work, name + "-state"), USER, GROUP, 0o750)
    conf = os.path.join(work, name + "-query.conf")
    with open(conf, "w") as fh:
        fh.write("CacheStore sqlite:%s\nUserID %s\n" % (os.path.join(d, "cache.db"), user))
    p = subprocess.run([QUERY, "--config", conf] + list(args), capture_output=True, text=True,
                       timeout=30)
    return p.returncode, p.stderr, d


def root_owned(d):
    return sorted(n for n in os.listdir(d) if os.lstat(os.path.join(d, n)).st_uid == 0)


def query_store_belongs_to_user(work):
    """A store file mtasts-query creates as root belongs to UserID, so the
    daemon can still write it (it used to be root's, 0600)."""
    rc, err, d = query_as_root(work, "q-new", USER, "--cache-purge-all")
    assert rc == 0, "exit %d: %s" % (rc, err)
    db = os.path.join(d, "cache.db")
    st = os.lstat(db)
    assert (st.st_uid, st.st_gid) == ids(), "cache.db owned by %d:%d, want %d:%d" % (
        (st.st_uid, st.st_gid) + ids())
    assert root_owned(d) == [], "root-owned files in the store directory: %s" % root_owned(d)


def query_store_link_not_followed(work):
    """The service user links the store's path to a root file: root's
    mtasts-query must not read, move or recreate through it as root."""
    d = make_dir(os.path.join(work, "q-link-state"), USER, GROUP, 0o750)
    victim = make_victim(os.path.join(work, "q-link-victim"))
    plant_symlink(victim, os.path.join(d, "cache.db"))
    rc, err, _ = query_as_root(work, "q-link", USER, "--cache-purge-all")
    assert rc != 0, "exit 0 through a link to a root file: %s" % err
    assert_untouched(victim)
    assert root_owned(d) == [], "root-owned files in the store directory: %s" % root_owned(d)


def query_unknown_user_refused(work):
    rc, err, d = query_as_root(work, "q-nouser", "no-such-user-mtasts", "--cache-list")
    assert rc == 67, "exit %d, want 67 (EX_NOUSER): %s" % (rc, err)
    assert "no-such-user-mtasts unknown" in err and "UserID" in err, err
    assert os.listdir(d) == [], "the store was created: %s" % os.listdir(d)


CASES = [
    ("decision log: a symbolic link to a root file is refused, the file untouched",
     link_case("DecisionLog", "decisions.json", "symbolic")),
    ("decision log: a hard link to a root file is refused, the file untouched",
     link_case("DecisionLog", "decisions.json", "hard")),
    ("pid file: a symbolic link to a root file is refused, the file untouched",
     link_case("PidFile", "mtasts-milter.pid", "symbolic")),
    ("pid file: a hard link to a root file is refused, the file untouched",
     link_case("PidFile", "mtasts-milter.pid", "hard")),
    ("a world-writable log directory is refused",
     dir_case("ww", 0o777, words=("writable by everyone",))),
    ("a world-writable log directory with the sticky bit is refused",
     dir_case("ww-sticky", 0o1777, words=("writable by everyone",))),
    ("a log directory group-writable by a group with other members is refused",
     dir_case("gw", 0o770, None, OTHER, words=(OTHER,))),
    ("a log directory owned by another user is refused",
     dir_case("other-owner", 0o755, OTHER, None, words=("belongs to",))),
    ("a path through a directory of the service user is refused", through_service_dir),
    ("a path through a symbolic link of the service user is refused", through_user_symlink),
    ("good set-up: files and sockets owned by the service user with their modes from the "
     "start; a link planted before SIGUSR1 is refused", good_setup),
    ("a regular file at the socketmap socket path is kept", smap_keeps_file),
    ("mtasts-query as root: a new cache store belongs to UserID", query_store_belongs_to_user),
    ("mtasts-query as root: a link planted at the store path is not followed as root",
     query_store_link_not_followed),
    ("mtasts-query as root: an unknown UserID refuses a cache command",
     query_unknown_user_refused),
]


def main():
    title = "root-started daemon: decision log, pid file, sockets (issue 15)"
    if os.geteuid() != 0:
        return harness.skipped(title, "all", "needs root (files and sockets made as root)")
    if not os.access(daemon.MILTER, os.X_OK):
        return harness.skipped(title, "all", "%s not built" % daemon.MILTER)
    for acct in (USER, OTHER):
        try:
            pwd.getpwnam(acct)
        except KeyError:
            return harness.skipped(title, "all", "no account %s" % acct)
    report = harness.TestReport(title)
    with harness.workdir("mtasts-rootfiles.") as work:
        os.chmod(work, 0o755)   # the service user must reach its directories
        for name, fn in CASES:
            report.run(name, fn, work)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
