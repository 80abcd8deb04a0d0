#!/bin/sh
# run-bench.sh - `make bench`: the lookup engine's figures, then Postfix's
# throughput with no milter, a no-op milter and mtasts-milter (measured, not
# asserted).
#
#   engine   starts the DNS and HTTPS fixtures on 127.0.0.1 and runs
#            tests/bench/bench_engine through tests/bench/bench_fixtures.py,
#            which prints every figure and a summary table (about a minute);
#   postfix  tests/bench/bench_postfix.py: a private Postfix, smtp-source and
#            smtp-sink, tests/bench/noop_milter and the daemon, alternated over
#            3 rounds (about two minutes; skipped, saying why, without root
#            or Postfix).
#
#   top_srcdir / top_builddir   set by make; default: this source tree
#   PYTHON3                     interpreter with dnslib (set by make)
#   BENCH_ENGINE                the binary; default $top_builddir/tests/bench/bench_engine
#   BENCH_NOOP_MILTER           default $top_builddir/tests/bench/noop_milter
#   MTASTS_MILTER               default $top_builddir/milter/mtasts-milter
#   BENCH_POSTFIX_ARGS          arguments for bench_postfix.py when both parts run
#
# Usage: run-bench.sh [--only engine|postfix] [ARGS...]
# Without --only both parts run, engine first, and ARGS go to
# bench_fixtures.py (--domains N, --only hits,rss, ...); with --only the one
# part runs and ARGS go to its script (bench_postfix.py: --messages N,
# --rounds N, --socket unix, ...; see its --help).  The exit status is the
# first failing part's, 0 when all ran (a skip counts as ran).

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
	engine | postfix)
		part=$2
		shift 2
		;;
	esac
	;;
--only=engine | --only=postfix)
	part=${1#--only=}
	shift
	;;
esac

engine=$top_srcdir/tests/bench/bench_fixtures.py
postfix=$top_srcdir/tests/bench/bench_postfix.py

case $part in
engine)
	exec "$py" "$engine" "$@"
	;;
postfix)
	exec "$py" "$postfix" "$@"
	;;
esac

rc=0
"$py" "$engine" "$@" || rc=$?
# BENCH_POSTFIX_ARGS is split on blanks on purpose: a list of options.
# shellcheck disable=SC2086
"$py" "$postfix" ${BENCH_POSTFIX_ARGS:-} || { st=$?; [ "$rc" -ne 0 ] || rc=$st; }
exit "$rc"
