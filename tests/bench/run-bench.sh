#!/bin/sh
# run-bench.sh - `make bench`: the lookup engine's figures (measured, not
# asserted).  Starts the DNS and HTTPS fixtures on 127.0.0.1 and runs
# tests/bench/bench_engine through tests/bench/bench_fixtures.py, which
# prints every figure and a summary table.  Takes about a minute.
#
#   top_srcdir / top_builddir   set by make; default: this source tree
#   PYTHON3                     interpreter with dnslib (set by make)
#   BENCH_ENGINE                the binary; default $top_builddir/tests/bench/bench_engine
#
# Arguments are passed to bench_fixtures.py (--domains N, --only hits,rss, ...).

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

exec "$py" "$top_srcdir/tests/bench/bench_fixtures.py" "$@"
