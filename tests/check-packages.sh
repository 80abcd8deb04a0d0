#!/bin/sh
# check-packages.sh OUTDIR - the packaging stage of tests/run-all.sh.
#
# Builds the Debian packages (packaging/build-deb.sh, lintian must find
# no error) and the RPMs (packaging/build-rpm.sh) into OUTDIR, checks
# what they hold (dpkg-deb -c, conffiles, maintainer scripts; rpm -qlp,
# config files, scriptlets), and installs the .deb with apt-get into a
# throwaway root: an overlay of / on a tmpfs in a private mount
# namespace, so the host's packages, users and /etc stay untouched.
# There it checks the user, the directories and their owner, that
# "mtasts-milter -n" accepts the installed config, and that purge
# removes the directories.  The unit tests are not run again inside the
# package builds (DEB_BUILD_OPTIONS=nocheck, NOCHECK=1: the gcc and clang
# stages run them), and no -dbgsym package is made (noautodbgsym).
#
# Prints one "ok - ..." / "not ok - ..." / "skip - ..." line per check and
# the time taken (per step and in all); exit 1 if any check failed.  Needs root on Debian
# (build-deb.sh installs its build dependencies); elsewhere every check
# is a skip.  JOBS is passed on (default 2).
set -u

[ $# -eq 1 ] || { echo "usage: check-packages.sh OUTDIR" >&2; exit 64; }
top=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
rc=0
t0=$(date +%s)

lap=$t0
took() { now=$(date +%s); echo "    ($((now - lap)) s)"; lap=$now; }
ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; rc=1; }
skip() { echo "skip - $*"; }
show() { sed 's/^/    /' "$@" | tail -40; }

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    for c in build-deb.sh deb-contents deb-install build-rpm.sh rpm-contents; do
        skip "$c: needs root on Debian"
    done
    exit 0
fi

# ------------------------------------------------------------------ .deb
rm -rf "$out/deb" "$out/rpm"
deb_ok=0
if DEB_BUILD_OPTIONS="nocheck noautodbgsym" JOBS=${JOBS:-2} sh "$top/packaging/build-deb.sh" "$out/deb" \
        >"$out/build-deb.out" 2>&1; then
    warnings=$(grep -c '^lintian: W:' "$out/build-deb.out")
    ok "build-deb.sh: packages built, lintian: no errors, $warnings warnings"
    grep '^lintian: ' "$out/build-deb.out" | sed 's/^/    /'
    deb_ok=1
    took
else
    show "$out/build-deb.out"
    notok "build-deb.sh: build or lintian failed"
fi

deb=$(ls "$out"/deb/mtasts-milter_*.deb 2>/dev/null | head -1)
if [ "$deb_ok" = 1 ] && [ -n "$deb" ]; then
    missing=""
    dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|/$||' >"$out/deb.list"
    for f in /usr/sbin/mtasts-milter /usr/bin/mtasts-query /usr/bin/mtasts-report \
        /etc/mtasts-milter.conf /etc/logrotate.d/mtasts-milter \
        /lib/systemd/system/mtasts-milter.service /lib/systemd/system/mtasts-report.service \
        /lib/systemd/system/mtasts-report.timer /lib/systemd/system/mtasts-report-retry.service \
        /lib/systemd/system/mtasts-report-retry.timer \
        /lib/systemd/system/mtasts-report-journal.service \
        /lib/systemd/system/mtasts-report-journal.timer /usr/lib/sysusers.d/mtasts-milter.conf \
        /usr/share/man/man8/mtasts-milter.8.gz /usr/share/man/man5/mtasts-milter.conf.5.gz \
        /usr/share/man/man1/mtasts-query.1.gz /usr/share/man/man1/mtasts-report.1.gz \
        /usr/share/doc/mtasts-milter/copyright \
        /usr/share/doc/mtasts-milter/examples/postfix/main.cf.snippet \
        /usr/share/doc/mtasts-milter/examples/sendmail/mtasts.mc.snippet \
        /var/lib/mtasts-milter /var/log/mtasts-milter; do
        grep -qx "$f" "$out/deb.list" || missing="$missing $f"
    done
    ctl=$out/deb.control
    rm -rf "$ctl" && dpkg-deb -e "$deb" "$ctl"
    for f in /etc/mtasts-milter.conf /etc/logrotate.d/mtasts-milter; do
        grep -qx "$f" "$ctl/conffiles" 2>/dev/null || missing="$missing conffile:$f"
    done
    grep -q 'adduser .*--system' "$ctl/postinst" || missing="$missing postinst:adduser"
    grep -q "deb-systemd-helper enable 'mtasts-milter.service'" "$ctl/postinst" ||
        missing="$missing postinst:enable-mtasts-milter.service"
    if [ -z "$missing" ]; then
        ok "deb-contents: $(wc -l <"$out/deb.list") paths, programs, units, man pages, conffiles, postinst"
    else
        notok "deb-contents: missing or wrong:$missing"
    fi
else
    skip "deb-contents: no package built"
fi

# Install into an overlay of / (private mount namespace): apt-get resolves
# the dependencies from what the host has installed, the maintainer
# scripts run for real, and all of it vanishes with the namespace.
cat >"$out/deb-install.sh" <<'OVL'
set -eu
w=$1; out=$2
# Exit 77 (a skip) when this host cannot make the throwaway root (a
# container without the right to mount, no overlayfs on this /).
{ mount --make-rprivate / && mount -t tmpfs tmpfs "$w" &&
  mkdir "$w/upper" "$w/work" "$w/root" &&
  mount -t overlay overlay -o "lowerdir=/,upperdir=$w/upper,workdir=$w/work" "$w/root"
} || { echo "cannot mount an overlay of / here"; exit 77; }
root=$w/root
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/run"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
rm -rf "$root/tmp/debs" && mkdir -p "$root/tmp/debs"
cp "$out"/deb/*.deb "$root/tmp/debs/"
chroot "$root" /bin/sh -eu -c '
    export DEBIAN_FRONTEND=noninteractive
    # A fresh system: no user mtasts, no earlier install or config.
    dpkg --purge mtasts-milter mtasts-milter-dbgsym >/dev/null 2>&1 || true
    if getent passwd mtasts >/dev/null; then userdel mtasts; fi
    if getent group mtasts >/dev/null; then groupdel mtasts; fi
    rm -rf /etc/mtasts-milter.conf /var/lib/mtasts-milter /var/log/mtasts-milter
    apt-get install -y -q /tmp/debs/mtasts-milter_*.deb >/tmp/apt.out 2>&1 ||
        { cat /tmp/apt.out; echo "FAIL apt-get install"; exit 1; }
    echo "installed: $(dpkg-query -W -f "\${Package} \${Version} \${Status}" mtasts-milter)"
    getent passwd mtasts >/dev/null || { echo "FAIL no user mtasts"; exit 1; }
    echo "user: $(getent passwd mtasts)"
    for d in /var/lib/mtasts-milter /var/log/mtasts-milter; do
        s=$(stat -c "%U:%G %a" "$d")
        echo "dir: $d $s"
        [ "$s" = "mtasts:mtasts 750" ] || { echo "FAIL $d is $s"; exit 1; }
    done
    /usr/sbin/mtasts-milter -n -c /etc/mtasts-milter.conf >/tmp/n.out 2>&1 ||
        { cat /tmp/n.out; echo "FAIL mtasts-milter -n"; exit 1; }
    head -1 /tmp/n.out
    /usr/sbin/mtasts-milter -h 2>&1 | grep -q "default /etc/mtasts-milter.conf" ||
        { echo "FAIL -h does not name /etc/mtasts-milter.conf"; exit 1; }
    [ -L /etc/systemd/system/multi-user.target.wants/mtasts-milter.service ] ||
        { echo "FAIL mtasts-milter.service not enabled"; exit 1; }
    for t in mtasts-report.timer mtasts-report-retry.timer; do
        [ ! -e /etc/systemd/system/timers.target.wants/$t ] ||
            { echo "FAIL $t enabled by the installation"; exit 1; }
    done
    echo "enabled: mtasts-milter.service; not enabled: the report timers"
    dpkg --purge mtasts-milter >/tmp/purge.out 2>&1 || { cat /tmp/purge.out; exit 1; }
    for p in /var/lib/mtasts-milter /var/log/mtasts-milter /etc/mtasts-milter.conf; do
        [ ! -e "$p" ] || { echo "FAIL $p left after purge"; exit 1; }
    done
    echo "purged: directories and conffiles gone, user kept: $(getent passwd mtasts | cut -d: -f1)"
'
OVL

if [ "$deb_ok" = 1 ] && grep -q overlay /proc/filesystems && command -v unshare >/dev/null; then
    w=$(mktemp -d /tmp/mtasts-ovl.XXXXXX)
    irc=0
    unshare --mount --fork /bin/sh "$out/deb-install.sh" "$w" "$out" \
        >"$out/deb-install.out" 2>&1 || irc=$?
    if [ "$irc" -eq 0 ]; then
        ok "deb-install: apt-get install in a throwaway root: user, directories, -n, purge"
        sed 's/^/    /' "$out/deb-install.out"
        took
    elif [ "$irc" -eq 77 ] || ! unshare --mount true 2>/dev/null; then
        skip "deb-install: no private mount namespace or overlay here: $(tail -1 "$out/deb-install.out")"
    else
        show "$out/deb-install.out"
        notok "deb-install: installing into a throwaway root failed"
    fi
    rmdir "$w" 2>/dev/null || true
else
    skip "deb-install: no package built, or no overlayfs/unshare"
fi

# ------------------------------------------------------------------ RPM
if NOCHECK=1 JOBS=${JOBS:-2} sh "$top/packaging/build-rpm.sh" "$out/rpm" \
        >"$out/build-rpm.out" 2>&1; then
    ok "build-rpm.sh: $(cd "$out/rpm" && ls -- *.rpm | tr '\n' ' ')"
    took
    rpmf=$(ls "$out"/rpm/mtasts-milter-[0-9]*.rpm | head -1)
    missing=""
    rpm -qlp "$rpmf" >"$out/rpm.list" 2>/dev/null
    for f in /usr/sbin/mtasts-milter /usr/bin/mtasts-query /usr/bin/mtasts-report \
        /etc/mtasts-milter.conf /etc/logrotate.d/mtasts-milter \
        /usr/lib/systemd/system/mtasts-milter.service /usr/lib/systemd/system/mtasts-report.timer \
        /usr/lib/sysusers.d/mtasts-milter.conf /var/lib/mtasts-milter /var/log/mtasts-milter; do
        grep -qx "$f" "$out/rpm.list" || missing="$missing $f"
    done
    grep -q '^/usr/share/man/man8/mtasts-milter.8' "$out/rpm.list" || missing="$missing man8"
    grep -q '^/usr/share/licenses/mtasts-milter/LICENSE' "$out/rpm.list" ||
        grep -q 'LICENSE$' "$out/rpm.list" || missing="$missing LICENSE"
    rpm -qcp "$rpmf" 2>/dev/null | grep -qx /etc/mtasts-milter.conf || missing="$missing config:/etc/mtasts-milter.conf"
    rpm -qp --scripts "$rpmf" >"$out/rpm.scripts" 2>/dev/null
    grep -q 'systemd-sysusers' "$out/rpm.scripts" || missing="$missing pre:sysusers"
    grep -q 'systemctl.*preset.*mtasts-milter.service' "$out/rpm.scripts" || missing="$missing post:preset"
    if [ -z "$missing" ]; then
        ok "rpm-contents: $(wc -l <"$out/rpm.list") paths, config files, sysusers and systemd scriptlets"
    else
        notok "rpm-contents: missing or wrong:$missing"
    fi
else
    show "$out/build-rpm.out"
    notok "build-rpm.sh: rpmbuild failed"
    skip "rpm-contents: no package built"
fi

echo "check-packages: $(( $(date +%s) - t0 )) s"
exit $rc
