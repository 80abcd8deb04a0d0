#!/bin/sh
# Install what mtasts-milter needs on Debian 12 / Ubuntu 22.04 or newer.
#   install-deps.sh          build dependencies (compiler, autotools, -dev libraries)
#   install-deps.sh --test   also what the test suite needs (clang + libFuzzer,
#                            python3-dnslib for the DNS fixture, openssl for the test CA,
#                            redis-server for the shared-cache tests, which start their own,
#                            miltertest to drive the daemon through the milter protocol,
#                            postfix (unconfigured: the tests run private instances)
#                            m4 for the Sendmail test, which unpacks Sendmail itself,
#                            and postfix-mta-sts-resolver + python3-uvloop, the peer that
#                            test_peer.py and `make bench` run side by side; its system
#                            service is disabled: the tests start their own instance),
#                            iproute2 (`ip netns`) for the end-to-end delivery test,
#                            systemd-journal-remote to write the journal file that
#                            test_report.py reads back through journalctl)
# Run as root.  Safe to run again: apt-get skips what is installed.
set -eu

BUILD_PKGS="build-essential autoconf automake libtool pkg-config
 libc-ares-dev libcurl4-openssl-dev libssl-dev libsqlite3-dev libhiredis-dev
 libjansson-dev zlib1g-dev libidn2-dev libcmocka-dev libmilter-dev ca-certificates"
TEST_PKGS="clang libclang-rt-dev python3 python3-dnslib openssl redis-server miltertest
 postfix m4 postfix-mta-sts-resolver python3-uvloop iproute2 systemd-journal-remote"

pkgs=$BUILD_PKGS
for arg in "$@"; do
    case $arg in
    --test) pkgs="$pkgs $TEST_PKGS" ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$arg'" >&2; exit 64 ;;
    esac
done

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps.sh: apt-get not found; install these packages by hand:" >&2
    echo "  $pkgs" | tr '\n' ' ' >&2
    echo >&2
    exit 69
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: run as root (apt-get needs it)" >&2
    exit 77
fi

export DEBIAN_FRONTEND=noninteractive
# Postfix without a system configuration: no /etc/postfix/main.cf, no
# running system MTA; the tests start their own instances.
if command -v debconf-set-selections >/dev/null 2>&1; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
fi
# shellcheck disable=SC2086 # word splitting of the package list is intended
if ! apt-get install -y --no-install-recommends $pkgs >/dev/null 2>&1; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends $pkgs
fi
case " $* " in
*" --test "*)
    # The peer's service would hold 127.0.0.1:8461, our socketmap's default port.
    if command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now postfix-mta-sts-resolver.service >/dev/null 2>&1 || true
    fi
    # Sendmail conflicts with Postfix: its test unpacks the packages instead.
    debs=/var/cache/mtasts-test/debs
    mkdir -p "$debs"
    if ! ls "$debs"/sendmail-bin_*.deb >/dev/null 2>&1; then
        (cd "$debs" && apt-get download sendmail-bin sendmail-base sendmail-cf libwrap0 \
            >/dev/null 2>&1) || echo "install-deps.sh: Sendmail packages not fetched; its test will skip"
    fi
    ;;
esac
echo "install-deps.sh: dependencies installed"
