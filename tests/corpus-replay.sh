#!/bin/sh
# Replay every seed and crash input under tests/corpus/<target>/ through the
# fuzz targets' code (linked with a plain main, no libFuzzer needed), so a
# fixed crash stays fixed.  Run by make check with top_srcdir/top_builddir.
set -u
src=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
build=${top_builddir:-.}
passed=0
failed=0
for t in txt policy domain config store_codec netstring tlsrpt_txt rlog rcpt smap_reply site smtp_reply; do
    prog="$build/tests/fuzz/replay_$t"
    dir="$src/tests/corpus/$t"
    if [ ! -x "$prog" ]; then
        echo "not ok - replay_$t: $prog is not built"
        failed=$((failed + 1))
        continue
    fi
    n=$(find "$dir" -type f | wc -l)
    if [ "$n" -lt 5 ]; then
        echo "not ok - replay_$t: only $n inputs in $dir (corpus missing?)"
        failed=$((failed + 1))
    elif out=$("$prog" "$dir" 2>&1); then
        echo "ok - replay_$t: $out"
        passed=$((passed + 1))
    else
        echo "not ok - replay_$t:"
        echo "$out" | tail -40
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
