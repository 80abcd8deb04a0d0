#!/bin/sh
# run-bench.sh - `make bench`: the lookup engine's figures, then Postfix's
# throughput with no milter, a no-op milter and mtasts-milter, then socketmap
# lookups per second of mtasts-milter, postfix-mta-sts-resolver and a
# constant-reply ceiling, then mtasts-report on a day of a million sessions,
# then cold bursts of distinct domains over the socketmap, mtasts-milter
# beside postfix-mta-sts-resolver (measured, not asserted).
#
#   engine   starts the DNS and HTTPS fixtures on 127.0.0.1 and runs
#            tests/bench/bench_engine through tests/bench/bench_fixtures.py,
#            which prints every figure and a summary table (about a minute);
#   postfix  tests/bench/bench_postfix.py: a private Postfix delivering by MX
#            lookup (no relayhost, in a private network namespace: DNS on
#            :53, an smtp-sink per MX host on 127.0.0.N:25) so that the
#            daemon looks up, tags and routes every recipient; smtp-source,
#            tests/bench/noop_milter and the daemon, alternated over 3 rounds
#            (about two minutes; skipped, saying why, without root, ip netns
#            or Postfix).
#   socketmap  tests/bench/bench_socketmap.py: tests/bench/smap_load against
#            the daemon's socketmap, the peer (run in a private network
#            namespace; left out, saying why, without root or the package)
#            and tests/bench/smap_const, at 1 and 50 connections, 3 rounds
#            (about two minutes).
#   report   tests/bench/bench_report.py: one generated UTC day of a million
#            sessions (decision log with MX probe records, and a mail log
#            of Postfix and Sendmail lines over 5000 domains) through
#            mtasts-report --dry-run;
#            prints the time, the peak RSS and sessions per second (about a
#            minute, most of it generating the logs; ~1 GiB in $TMPDIR).
#   burst    tests/bench/bench_burst.py: bursts of 300 and 1000 cold domains
#            asked at once over the socketmap (policies served 50 ms after
#            their request), the daemon and the peer side by side in one
#            run (peer in a private network namespace; left out, saying
#            why, without root or the package): slowest and median answer,
#            answers lost to the budget, split by when the HTTPS fixture
#            sent their policy (after the budget, within it, never
#            fetched), the CPU floor (server + fixtures CPU seconds over
#            the CPUs), TXT queries and fetches per domain at the
#            fixtures, ratio to the peer (about a minute).
#
#   top_srcdir / top_builddir   set by make; default: this source tree
#   PYTHON3                     interpreter with dnslib (set by make)
#   BENCH_ENGINE                the binary; default $top_builddir/tests/bench/bench_engine
#   BENCH_NOOP_MILTER           default $top_builddir/tests/bench/noop_milter
#   MTASTS_MILTER               default $top_builddir/milter/mtasts-milter
#   BENCH_SMAP_LOAD, BENCH_SMAP_CONST   default $top_builddir/tests/bench/smap_*
#   BENCH_POSTFIX_ARGS          arguments for bench_postfix.py when all parts run
#   BENCH_SOCKETMAP_ARGS        arguments for bench_socketmap.py when all parts run
#   BENCH_REPORT_ARGS           arguments for bench_report.py when all parts run
#   BENCH_BURST_ARGS            arguments for bench_burst.py when all parts run
#   MTASTS_REPORT               default $top_builddir/src/mtasts-report
#
# Usage: run-bench.sh [--only engine|postfix|socketmap|report|burst] [ARGS...]
# Without --only all parts run, engine first, and ARGS go to
# bench_fixtures.py (--domains N, --only hits,rss, ...); with --only the one
# part runs and ARGS go to its script (bench_postfix.py: --messages N,
# --rounds N, --socket unix, ...; bench_socketmap.py: --seconds N,
# --rounds N, --conns 1,50, ...; bench_burst.py: --sizes 300,1000,
# --rounds N, --delay-ms N, --max-discoveries N; see their --help).  The
# exit status is the first failing part's, 0 when all ran (a skip counts as
# ran).

set -eu

here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=${top_srcdir:-$(cd "$here/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
export top_srcdir top_builddir

py=${PYTHON3:-}
if [ -z "$py" ]; then
	for p in /usr/bin/python3 python3; do
		if command -v "$p" >/dev/null 2>&1; then
			py=$p
			break
		fi
	done
fi
if [ -z "$py" ]; then
	echo "run-bench.sh: no python3 found (set PYTHON3)" >&2
	exit 1
fi
PYTHONDONTWRITEBYTECODE=1
export PYTHONDONTWRITEBYTECODE

part=all
case ${1:-} in
--only)
	case ${2:-} in
	engine | postfix | socketmap | report | burst)
		part=$2
		shift 2
		;;
	esac
	;;
--only=engine | --only=postfix | --only=socketmap | --only=report | --only=burst)
	part=${1#--only=}
	shift
	;;
esac

engine=$top_srcdir/tests/bench/bench_fixtures.py
postfix=$top_srcdir/tests/bench/bench_postfix.py
socketmap=$top_srcdir/tests/bench/bench_socketmap.py
report=$top_srcdir/tests/bench/bench_report.py
burst=$top_srcdir/tests/bench/bench_burst.py

case $part in
engine)
	exec "$py" "$engine" "$@"
	;;
postfix)
	exec "$py" "$postfix" "$@"
	;;
socketmap)
	exec "$py" "$socketmap" "$@"
	;;
report)
	exec "$py" "$report" "$@"
	;;
burst)
	exec "$py" "$burst" "$@"
	;;
esac

rc=0
"$py" "$engine" "$@" || rc=$?
# BENCH_POSTFIX_ARGS is split on blanks on purpose: a list of options.
# shellcheck disable=SC2086
"$py" "$postfix" ${BENCH_POSTFIX_ARGS:-} || { st=$?; [ "$rc" -ne 0 ] || rc=$st; }
# shellcheck disable=SC2086
"$py" "$socketmap" ${BENCH_SOCKETMAP_ARGS:-} || { st=$?; [ "$rc" -ne 0 ] || rc=$st; }
# shellcheck disable=SC2086
"$py" "$report" ${BENCH_REPORT_ARGS:-} || { st=$?; [ "$rc" -ne 0 ] || rc=$st; }
# shellcheck disable=SC2086
"$py" "$burst" ${BENCH_BURST_ARGS:-} || { st=$?; [ "$rc" -ne 0 ] || rc=$st; }
exit "$rc"
