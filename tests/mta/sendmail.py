"""A private Sendmail for tests, unpacked from Debian 12's packages.

sendmail-bin conflicts with postfix, so it is never installed: the .debs
are fetched once with `apt-get download` into a cache directory
($MTASTS_SENDMAIL_DEBS, default /var/cache/mtasts-test/debs) and unpacked
with `dpkg -x` into the test's work dir (see /work/shared/SENDMAIL-TESTING.md
in the project notes for the facts this relies on).

    from sendmail import SendmailInstance, sendmail_available
    why = sendmail_available()                 # None, or why it cannot run
    sm = SendmailInstance(workdir, relay_port=SINK,
                          milter="inet:%d@127.0.0.1" % MILTER_PORT)
    sm.start()                                 # sendmail -bD, waits for the port
    r = sm.submit("a@client.test", ["u@enforce.test"], msg)
    sm.bt("/map sts enforce.test", cf=sm.make_cf("sts", sts_socketmap=PORT))
    sm.stop()

How it runs:
  * `unshare -u -m -p -f --kill-child --mount-proc`: its own host name
    (mta.sendmail.test, so it does not sleep 60 s over an unqualified name),
    its own mounts and its own PID namespace: when the test process or the
    unshare process goes, the kernel kills every Sendmail process with it.
    The host's name, mounts and processes are untouched; the network is
    shared (loopback to the milter and the sink).
  * Logging: inside that mount namespace /dev is a small tmpfs with null,
    zero, random, urandom, fd and a /dev/log symlink to a datagram socket
    in the work dir, served by a thread here that writes WORKDIR/sendmail.log.
    (No syslog daemon is needed, and the host's /dev is not touched.)
  * The .cf is generated from a small .mc with the unpacked m4 macros;
    with relay_port all mail goes to SMART_HOST relay:[127.0.0.1] on that
    port (a sink) and host names are resolved from a private hosts file
    only (service switch "hosts files"), so no DNS is used; with
    relay_port=None it delivers to MX hosts through DNS (a DeliveryLab).
  * local_domains= puts domains in class w (LOCAL_DOMAIN): their mail goes
    to the local mailer, here a small script that stores each message in
    WORKDIR/local/ (local_messages() reads them), instead of procmail.
  * The binary is copied without its set-gid bit, and LD_LIBRARY_PATH
    points at the unpacked libwrap0.
Needs root (namespaces, mount, mknod), unshare and m4.
"""

import atexit
import email
import email.policy
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import weakref

import mtautil

__all__ = ["SendmailInstance", "sendmail_available", "debs_dir", "ensure_debs", "DEB_PACKAGES"]

DEB_PACKAGES = ("sendmail-bin", "sendmail-base", "sendmail-cf", "libwrap0")
HOSTNAME = "mta.sendmail.test"


def debs_dir():
    return os.environ.get("MTASTS_SENDMAIL_DEBS") or "/var/cache/mtasts-test/debs"


def _have_debs(d):
    return all(glob.glob(os.path.join(d, "%s_*.deb" % p)) for p in DEB_PACKAGES)


def ensure_debs(timeout=180):
    """(directory, None) with the four .debs present (downloaded with
    `apt-get download` if missing), or (None, reason)."""
    d = debs_dir()
    if _have_debs(d):
        return d, None
    try:
        os.makedirs(d, exist_ok=True)
    except OSError as e:
        return None, "cannot create %s: %s" % (d, e)
    if not shutil.which("apt-get"):
        return None, "no apt-get to download %s" % " ".join(DEB_PACKAGES)
    missing = [p for p in DEB_PACKAGES if not glob.glob(os.path.join(d, "%s_*.deb" % p))]
    try:
        rc, out = mtautil.run(["apt-get", "download", "-q"] + missing, timeout=timeout,
                              env=dict(os.environ, LC_ALL="C"), cwd=d)
    except AssertionError as e:
        return None, "apt-get download timed out: %s" % e
    if rc != 0 or not _have_debs(d):
        tail = "\n".join(out.strip().splitlines()[-3:])
        return None, "apt-get download %s failed in %s (no network?): %s" % (
            " ".join(missing), d, tail)
    return d, None


def sendmail_available():
    """None if an unpacked Sendmail can run here, else the reason."""
    if os.geteuid() != 0:
        return "Sendmail tests need root (unshare, mount, mknod)"
    for tool in ("unshare", "m4", "dpkg", "mount", "mknod", "hostname"):
        if not shutil.which(tool):
            return "%s not found" % tool
    _, why = ensure_debs()
    return why


_LIVE = weakref.WeakSet()


@atexit.register
def _stop_all():
    for sm in list(_LIVE):
        try:
            sm.stop()
        except Exception:
            pass


class _SyslogSink:
    """A datagram listener at path that appends each message to logfile."""

    def __init__(self, path, logfile):
        self.path, self.logfile = path, logfile
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="sendmail-syslog", daemon=True)
        self.thread.start()

    def _run(self):
        with open(self.logfile, "a", errors="replace") as fh:
            while not self.stopping:
                try:
                    data = self.sock.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                # "<PRI>Mon DD HH:MM:SS tag[pid]: text": drop the priority.
                text = re.sub(r"^<\d+>", "", data.decode("utf-8", "replace")).rstrip("\n")
                fh.write(text + "\n")
                fh.flush()

    def stop(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


# The shell run as PID 1 of the namespaces; "$@" is the sendmail command.
_NS_SCRIPT = r"""
set -e
hostname "$MTASTS_HOSTNAME"
mount -t tmpfs -o size=1m,mode=755 mtasts-dev /dev
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/random c 1 8
mknod -m 666 /dev/urandom c 1 9
ln -s /proc/self/fd /dev/fd
ln -s "$MTASTS_LOGSOCK" /dev/log
exec "$@"
"""


# The local mailer of local_domains (P=, A=local-mailer.sh $u; F=f puts
# "-f SENDER" first, so the user is the last argument): one file per
# delivery, renamed into place when complete.
_LOCAL_MAILER = r"""#!/bin/sh
umask 022
for u; do :; done
f="%s/$u.$(/bin/date +%%s%%N).$$"
/bin/cat > "$f.tmp" && /bin/mv "$f.tmp" "$f.eml"
"""


class SendmailInstance(mtautil.MtaLog):
    """One unpacked Sendmail under workdir.

    relay_port: sink all mail is relayed to (SMART_HOST relay:[127.0.0.1]).
    milter: the INPUT_MAIL_FILTER socket ("inet:PORT@127.0.0.1"), or None.
    milter_flags: the F=/T= part of INPUT_MAIL_FILTER after S=...
    sts_socketmap: port of the MTA-STS socketmap; adds FEATURE(`sts') to the
      daemon's cf (delivery then follows the map's answers).
    mc_extra: more .mc lines (text), before the MAILER lines.
    relay_port=None: no SMART_HOST; mail goes to the MX hosts of each
      recipient domain on port 25, host names resolved with "hosts files dns"
      (the resolver of /etc/resolv.conf, e.g. a DeliveryLab's DNS).
    ca_file: CACertFile (and CACertPath = its directory) for verifying
      the certificates of the servers it delivers to.
    canonify: leave out FEATURE(`nocanonify'), as a default install does:
      host names canonified through DNS.  (Seen either way: the next hop
      of an SMTP recipient, {rcpt_host}, ends in a dot, "example.com.".)
    local_domains: domains Sendmail delivers itself (class w, mailer
      local), with the local mailer storing messages in WORKDIR/local/."""

    def __init__(self, workdir, relay_port, milter=None,
                 milter_flags="T=S:10s;R:30s;E:1m", smtp_port=None, sts_socketmap=None,
                 mc_extra="", hostname=HOSTNAME, ca_file=None, canonify=False,
                 local_domains=()):
        self.workdir = os.path.abspath(workdir)
        self.root = os.path.join(self.workdir, "root")
        self.relay_port = relay_port
        self.milter = milter
        self.milter_flags = milter_flags
        self.smtp_port = smtp_port or mtautil.free_tcp_port()
        self.sts_socketmap = sts_socketmap
        self.mc_extra = mc_extra
        self.hostname = hostname
        self.ca_file = ca_file
        self.canonify = canonify
        self.local_domains = list(local_domains)
        self.local_dir = os.path.join(self.workdir, "local")
        self.local_mailer = os.path.join(self.workdir, "local-mailer.sh")
        self.log = os.path.join(self.workdir, "sendmail.log")
        self.logsock = os.path.join(self.workdir, "log.sock")
        self.out = os.path.join(self.workdir, "sendmail.out")
        self.queue = os.path.join(self.workdir, "mqueue")
        self.binary = os.path.join(self.root, "usr", "libexec", "sendmail", "sendmail")
        self.cf = None
        self.popen = None
        self.syslog = None
        _LIVE.add(self)

    # ---------------------------------------------------------- unpack
    def unpack(self):
        """dpkg -x the cached .debs into root (once) and make the binary usable."""
        if os.path.exists(self.binary):
            return
        d, why = ensure_debs()
        if why:
            raise RuntimeError(why)
        os.makedirs(self.root, exist_ok=True)
        for p in DEB_PACKAGES:
            deb = sorted(glob.glob(os.path.join(d, "%s_*.deb" % p)))[-1]
            rc, out = mtautil.run(["dpkg", "-x", deb, self.root], timeout=120)
            if rc != 0:
                raise RuntimeError("dpkg -x %s failed: %s" % (deb, out))
        # Set-gid makes the loader ignore LD_LIBRARY_PATH, even for root.
        os.chmod(self.binary, 0o755)

    def env(self):
        e = dict(os.environ)
        e["LD_LIBRARY_PATH"] = os.path.join(self.root, "usr", "lib", "x86_64-linux-gnu")
        e["MTASTS_HOSTNAME"] = self.hostname
        e["MTASTS_LOGSOCK"] = self.logsock
        e["LC_ALL"] = "C"
        return e

    # ---------------------------------------------------------- config
    def mc_text(self, daemon=True, milter=True, sts_socketmap=None):
        w = self.workdir
        lines = [
            "divert(-1)",
            "# Generated by tests/mta/sendmail.py",
            "divert(0)dnl",
            "VERSIONID(`mtasts-milter test')dnl",
            "OSTYPE(`linux')dnl",
            "define(`QUEUE_DIR', `%s')dnl" % self.queue,
            "define(`STATUS_FILE', `%s/statistics')dnl" % w,
            "define(`ALIAS_FILE', `text:%s/aliases')dnl" % w,
            "define(`HELP_FILE', `%s/helpfile')dnl" % w,
            "define(`confPID_FILE', `%s/sendmail.pid')dnl" % w,
            "define(`confCW_FILE', `-o %s/local-host-names')dnl" % w,
            "define(`confHOSTS_FILE', `%s/hosts')dnl" % w,
            "define(`confSERVICE_SWITCH_FILE', `%s/service.switch')dnl" % w,
            "define(`confHOST_STATUS_DIRECTORY', `')dnl",
            "define(`confDOMAIN_NAME', `%s')dnl" % self.hostname,
            "define(`confDONT_PROBE_INTERFACES', `True')dnl",
            "define(`confLOG_LEVEL', `14')dnl",
            "define(`confMILTER_LOG_LEVEL', `14')dnl",
            "define(`confTO_CONNECT', `5s')dnl",
            "define(`confTO_ICONNECT', `5s')dnl",
            "define(`confMIN_QUEUE_AGE', `0')dnl",
            "define(`confDELIVERY_MODE', `background')dnl",
            "FEATURE(`no_default_msa')dnl",
            "FEATURE(`accept_unresolvable_domains')dnl",
            "FEATURE(`promiscuous_relay')dnl",
        ]
        if not self.canonify:
            lines.append("FEATURE(`nocanonify')dnl")
        if self.local_domains:
            # After OSTYPE's FEATURE(local_procmail), before MAILER(`local').
            lines += ["LOCAL_DOMAIN(`%s')dnl" % d for d in self.local_domains]
            lines += ["define(`LOCAL_MAILER_PATH', `%s')dnl" % self.local_mailer,
                      "define(`LOCAL_MAILER_ARGS', `local-mailer.sh $u')dnl"]
        if self.relay_port is not None:
            lines += ["define(`SMART_HOST', `relay:[127.0.0.1]')dnl",
                      "define(`RELAY_MAILER_ARGS', `TCP $h %d')dnl" % self.relay_port,
                      "define(`ESMTP_MAILER_ARGS', `TCP $h %d')dnl" % self.relay_port]
        if self.ca_file:
            lines += ["define(`confCACERT_PATH', `%s')dnl" % os.path.dirname(self.ca_file),
                      "define(`confCACERT', `%s')dnl" % self.ca_file]
        if daemon:
            lines.append("DAEMON_OPTIONS(`Port=%d, Addr=127.0.0.1, Name=MTA')dnl" % self.smtp_port)
        if sts_socketmap:
            lines.append("FEATURE(`sts', `socket -d5 -T<TMPF> inet:%d@127.0.0.1')dnl"
                         % sts_socketmap)
        if milter and self.milter:
            lines.append("INPUT_MAIL_FILTER(`mtasts', `S=%s%s')dnl"
                         % (self.milter, ", " + self.milter_flags if self.milter_flags else ""))
        lines.append(self.mc_extra.rstrip("\n"))
        lines += ["MAILER(`local')dnl", "MAILER(`smtp')dnl", ""]
        return "\n".join(lines)

    def write_support_files(self):
        os.makedirs(self.workdir, exist_ok=True)
        mtautil.make_traversable(self.workdir)
        os.chmod(self.workdir, 0o755)
        os.makedirs(self.queue, exist_ok=True)
        os.chmod(self.queue, 0o700)
        files = {
            "hosts": "127.0.0.1\t%s %s localhost\n" % (self.hostname,
                                                       self.hostname.split(".")[0]),
            "service.switch": "hosts\tfiles%s\naliases\tfiles\n"
                              % ("" if self.relay_port is not None else " dns"),
            "local-host-names": "",
            "aliases": "postmaster: root\n",
            "helpfile": "",
            "statistics": "",
        }
        for name, text in files.items():
            path = os.path.join(self.workdir, name)
            if not os.path.exists(path):
                with open(path, "w") as fh:
                    fh.write(text)
                os.chmod(path, 0o644)
        if self.local_domains:
            os.makedirs(self.local_dir, exist_ok=True)
            os.chmod(self.local_dir, 0o1777)
            with open(self.local_mailer, "w") as fh:
                fh.write(_LOCAL_MAILER % self.local_dir)
            os.chmod(self.local_mailer, 0o755)

    def make_cf(self, name, daemon=True, milter=True, sts_socketmap=None):
        """Write NAME.mc and generate NAME.cf; returns the .cf path."""
        self.unpack()
        self.write_support_files()
        mc = os.path.join(self.workdir, name + ".mc")
        cf = os.path.join(self.workdir, name + ".cf")
        with open(mc, "w") as fh:
            fh.write(self.mc_text(daemon, milter, sts_socketmap))
        cfdir = os.path.join(self.root, "usr", "share", "sendmail", "cf")
        with open(cf, "w") as fh:
            p = subprocess.run(["m4", "-D_CF_DIR_=%s/" % cfdir,
                                os.path.join(cfdir, "m4", "cf.m4"), mc],
                               stdout=fh, stderr=subprocess.PIPE, text=True, timeout=60)
        if p.returncode != 0 or "ERROR" in p.stderr:
            raise RuntimeError("m4 failed for %s:\n%s" % (mc, p.stderr[-3000:]))
        return cf

    # ------------------------------------------------------------ run
    def _ns_argv(self, sm_args):
        return ["unshare", "-u", "-m", "-p", "-f", "--kill-child=SIGTERM", "--mount-proc",
                "/bin/sh", "-c", _NS_SCRIPT, "mtasts-sendmail-ns", self.binary] + sm_args

    def _sendmail_cmd(self, sm_args, timeout=30, input=None, check=True):
        """Run sendmail once (in its own namespaces); (rc, output)."""
        self._ensure_syslog()
        rc, out = mtautil.run(self._ns_argv(sm_args), timeout=timeout, env=self.env(),
                              input=input)
        if check and rc != 0:
            raise RuntimeError("sendmail %s failed (%d):\n%s" % (" ".join(sm_args), rc, out))
        return rc, out

    def _ensure_syslog(self):
        if self.syslog is None:
            os.makedirs(self.workdir, exist_ok=True)
            self.syslog = _SyslogSink(self.logsock, self.log)

    def bt(self, commands, cf=None, timeout=30):
        """Address-test mode: feed commands (str) to sendmail -bt; output."""
        rc, out = self._sendmail_cmd(["-C", cf or self.cf, "-bt"], timeout=timeout,
                                     input=commands if commands.endswith("\n")
                                     else commands + "\n", check=False)
        return out

    def start(self, timeout=40.0):
        """Generate the daemon cf and run sendmail -bD; wait for its port."""
        self.cf = self.make_cf("sendmail", daemon=True, milter=True,
                               sts_socketmap=self.sts_socketmap)
        self._ensure_syslog()
        with open(self.out, "ab") as fh:
            self.popen = mtautil.spawn(self._ns_argv(["-C", self.cf, "-bD", "-q5s"]),
                                       stdout=fh, stderr=fh, cwd=self.workdir,
                                       env=self.env())
        try:
            mtautil.wait_port(self.smtp_port, timeout, alive=self.running, what="sendmail")
        except AssertionError as e:
            diag = self.diagnostics()
            self.stop()
            raise RuntimeError("%s\n%s" % (e, diag)) from None
        return self.smtp_port

    def running(self):
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout=15.0):
        killed = []
        if self.popen is not None:
            # SIGTERM to Sendmail itself, PID 1 of its namespace (the child of
            # unshare): when it exits the kernel kills the rest of the
            # namespace and unshare returns.  (--kill-child alone is not
            # enough: Sendmail changes uid, which clears PDEATHSIG.)
            for pid in mtautil.children(self.popen.pid):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                self.popen.wait(timeout)
            except Exception:
                pass
            killed = mtautil.stop_group(self.popen, signal.SIGTERM, 5.0)
            self.popen = None
        if self.syslog is not None:
            self.syslog.stop()
            self.syslog = None
        _LIVE.discard(self)
        return killed

    # ------------------------------------------------------------ mail
    def submit(self, mail_from, rcpts, message, timeout=60.0):
        return mtautil.smtp_submit(self.smtp_port, mail_from, rcpts, message, timeout=timeout)

    LOG_WHAT = "Sendmail"

    def log_path(self):
        return self.log

    def local_messages(self):
        """What the local mailer stored, oldest first: (user, message) with
        message an email.message.Message."""
        out = []
        try:
            names = [n for n in os.listdir(self.local_dir) if n.endswith(".eml")]
        except OSError:
            return out
        paths = sorted((os.path.join(self.local_dir, n) for n in names), key=os.path.getmtime)
        for path in paths:
            with open(path, "rb") as fh:
                msg = email.message_from_binary_file(fh, policy=email.policy.compat32)
            out.append((os.path.basename(path).split(".", 1)[0], msg))
        return out

    def queue_files(self):
        try:
            return sorted(os.listdir(self.queue))
        except OSError:
            return []

    def diagnostics(self, lines=60):
        return ("--- Sendmail log (tail) %s\n%s--- sendmail stdout/stderr\n%s--- queue: %r\n"
                % (self.log, mtautil.tail(self.log, lines), mtautil.tail(self.out, 20),
                   self.queue_files()))
