#!/bin/sh
# build-rpm.sh OUTDIR - build the binary RPMs of mtasts-milter with
# rpmbuild from packaging/rpm/mtasts-milter.spec into OUTDIR.
#
# On an RPM-based host (Fedora, RHEL and rebuilds) the spec's
# BuildRequires are checked as usual: install them first (dnf builddep).
# On any other host (Debian: the package "rpm" gives rpmbuild, installed
# here if missing and run as root) the build dependencies have Debian
# names that rpmbuild cannot see, so it runs with --nodeps, and
# packaging/rpm/macros.non-rpm-host supplies the systemd and sysusers
# macros that systemd-rpm-macros provides on Fedora.  The RPMs built there
# are for checking the spec; build release RPMs on the target system.
#
# Environment: JOBS (default 2) parallel make jobs; NOCHECK=1 skips %check
# (the unit tests); KEEP_BUILD=1 keeps the rpmbuild tree.  Exit 0 built,
# 1 failed, 64 usage, 69 no rpmbuild.
set -eu

usage() { echo "usage: sh packaging/build-rpm.sh OUTDIR" >&2; exit 64; }
[ $# -eq 1 ] || usage
case $1 in -h|--help) sed -n '2,17p' "$0"; exit 0 ;; -*) usage ;; esac

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
spec=$here/rpm/mtasts-milter.spec

if ! command -v rpmbuild >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rpm >/dev/null 2>&1 ||
            { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rpm; }
    fi
    command -v rpmbuild >/dev/null 2>&1 ||
        { echo "build-rpm.sh: rpmbuild not found (Debian: apt-get install rpm)" >&2; exit 69; }
fi

# One version everywhere: configure.ac, the spec, debian/changelog.
version=$(sed -n 's/^Version: *//p' "$spec")
ac_version=$(sed -n 's/^AC_INIT(\[mtasts-milter\], \[\([^]]*\)\].*/\1/p' "$top/configure.ac")
if [ "$version" != "$ac_version" ]; then
    echo "build-rpm.sh: spec Version $version but configure.ac says $ac_version" >&2
    exit 1
fi

tmp=$(mktemp -d /tmp/mtasts-rpm.XXXXXX)
cleanup() { [ "${KEEP_BUILD:-0}" = 1 ] && echo "build-rpm.sh: kept $tmp" || rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
mkdir -p "$tmp/SOURCES" "$tmp/SPECS" "$tmp/BUILD" "$tmp/RPMS" "$tmp/SRPMS"

name=mtasts-milter-$version
sh "$here/source-tree.sh" "$tmp/src/$name"
tar -czf "$tmp/SOURCES/$name.tar.gz" -C "$tmp/src" "$name"
cp "$top/packaging/sysusers.d/mtasts-milter.conf" "$tmp/SOURCES/mtasts-milter.sysusers"
cp "$spec" "$tmp/SPECS/"

set -- -bb --define "_topdir $tmp" --define "_smp_mflags -j${JOBS:-2}"
[ "${NOCHECK:-0}" = 1 ] && set -- "$@" --without check
# An RPM-based host owns its /bin/sh in the rpm database.
if rpm -qf /bin/sh >/dev/null 2>&1; then
    echo "build-rpm.sh: RPM-based host: BuildRequires are checked"
else
    echo "build-rpm.sh: not an RPM-based host: rpmbuild --nodeps (BuildRequires not checked)," \
        "systemd macros from packaging/rpm/macros.non-rpm-host"
    set -- "$@" --nodeps --load "$here/rpm/macros.non-rpm-host"
fi

echo "build-rpm.sh: building $name in $tmp"
if ! rpmbuild "$@" "$tmp/SPECS/mtasts-milter.spec" >"$tmp/build.log" 2>&1; then
    tail -60 "$tmp/build.log"
    echo "build-rpm.sh: rpmbuild failed (log above)" >&2
    exit 1
fi
find "$tmp/RPMS" -name '*.rpm' -exec cp {} "$out/" \;
echo "build-rpm.sh: packages in $out:"
(cd "$out" && ls -l -- *.rpm)
