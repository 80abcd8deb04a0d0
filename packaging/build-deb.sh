#!/bin/sh
# build-deb.sh OUTDIR - build the Debian binary packages of mtasts-milter
# into OUTDIR and check them with lintian.
#
# On Debian 12 (or newer), as root: installs the build dependencies that
# packaging/debian/control names (apt-get build-dep) plus debhelper,
# dpkg-dev and lintian; copies the source tree (the files git knows, or
# the tree without build products) to a temporary directory with
# packaging/debian as debian/ (source-tree.sh); runs dpkg-buildpackage -b; copies the
# .deb, .changes and .buildinfo files to OUTDIR; runs lintian on them and
# fails on any error (warnings are printed; the ones kept are explained
# in packaging/debian/mtasts-milter.lintian-overrides or packaging/README).
#
# Environment: JOBS (default 2) parallel make jobs; DEB_BUILD_OPTIONS as
# usual (nocheck skips the unit tests of the build); KEEP_BUILD=1 keeps
# the temporary tree.  Exit 0 packages built and lintian clean of errors,
# 1 build or lintian failed, 64 usage, 69 not Debian, 77 not root.
set -eu

usage() { echo "usage: sh packaging/build-deb.sh OUTDIR" >&2; exit 64; }
[ $# -eq 1 ] || usage
case $1 in -h|--help) sed -n '2,18p' "$0"; exit 0 ;; -*) usage ;; esac

top=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)

if ! command -v apt-get >/dev/null 2>&1 || [ ! -r /etc/debian_version ]; then
    echo "build-deb.sh: needs Debian (apt-get, dpkg-buildpackage)" >&2
    exit 69
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "build-deb.sh: run as root (apt-get installs the build dependencies)" >&2
    exit 77
fi

tmp=$(mktemp -d /tmp/mtasts-deb.XXXXXX)
cleanup() { [ "${KEEP_BUILD:-0}" = 1 ] && echo "build-deb.sh: kept $tmp" || rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

version=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' "$top/packaging/debian/changelog")
src="$tmp/mtasts-milter-${version%-*}"
mkdir -p "$src"

# The source: what git tracks plus new files (source-tree.sh).
sh "$top/packaging/source-tree.sh" "$src"
cp -a "$src/packaging/debian" "$src/debian"

export DEBIAN_FRONTEND=noninteractive
tools="build-essential debhelper dpkg-dev lintian"
# shellcheck disable=SC2086 # word splitting of the package list is intended
if ! apt-get install -y -q --no-install-recommends $tools >/dev/null 2>&1 ||
   ! apt-get build-dep -y -q "$src" >/dev/null 2>&1; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends $tools
    apt-get build-dep -y -q "$src"
fi

echo "build-deb.sh: building mtasts-milter $version in $tmp"
t0=$(date +%s)
jobs=${JOBS:-2}
export DEB_BUILD_OPTIONS="parallel=$jobs ${DEB_BUILD_OPTIONS:-}"
if ! (cd "$src" && dpkg-buildpackage -b -us -uc >"$tmp/build.log" 2>&1); then
    tail -60 "$tmp/build.log"
    echo "build-deb.sh: dpkg-buildpackage failed (log above)" >&2
    exit 1
fi

arch=$(dpkg --print-architecture)
changes="$tmp/mtasts-milter_${version}_$arch.changes"
for f in "$tmp"/*.deb "$tmp"/*.ddeb "$tmp"/*.buildinfo "$changes"; do
    [ -e "$f" ] && cp "$f" "$out/"
done
echo "build-deb.sh: built in $(( $(date +%s) - t0 )) s; packages in $out:"
t0=$(date +%s)
(cd "$out" && ls -l -- *.deb)

# lintian: errors fail the build; warnings and lower are shown.  As root
# lintian only warns that it runs as root.
lint_rc=0
lintian --fail-on error --display-info "$out/${changes##*/}" >"$tmp/lintian.out" 2>&1 || lint_rc=$?
grep -v '^running with root privileges' "$tmp/lintian.out" | sed 's/^/lintian: /' || true
if [ "$lint_rc" -ne 0 ]; then
    echo "build-deb.sh: lintian found errors" >&2
    exit 1
fi
echo "build-deb.sh: lintian: no errors ($(( $(date +%s) - t0 )) s)"
