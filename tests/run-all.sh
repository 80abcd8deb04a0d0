#!/bin/sh
# The full test suite, as CI runs it (README "TEST" line):
#   1. gcc build with -Werror, make check
#   2. clang build with -Werror + ASan/UBSan, make check
#   3. libFuzzer targets, each run FUZZ_SECONDS (default 60) on its seed corpus
#   4. make distcheck
#   5. packages: build-deb.sh + lintian, build-rpm.sh, their contents, the
#      .deb installed with apt-get into a throwaway root (check-packages.sh)
# Ends with one line "N passed, N failed" counting every test case of every
# stage.  Environment: FUZZ_SECONDS, JOBS (default: number of cores),
# SKIP_DISTCHECK=1, SKIP_FUZZ=1, SKIP_PACKAGES=1 for quicker local runs.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
out="$top/_build"
mkdir -p "$out"
passed=0
failed=0
skipped=0
status=0

note() { printf '\n==== %s\n' "$*"; }

# Add the case counts of one make-check build directory to the totals.
# cmocka prints "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)";
# script tests print "N passed, N failed[, N skipped]".
count_logs() {
    set -- $(find "$1" -name '*.log' ! -name 'test-suite.log' ! -name 'config.log' \
        -path '*tests*' -exec cat {} + 2>/dev/null | awk '
        /^\[  PASSED  \] [0-9]+ test/ { p += $4 }
        /^\[  FAILED  \] [0-9]+ test/ { f += $4 }
        /^[0-9]+ passed, [0-9]+ failed/ { p += $1; f += $3; if ($5 != "") s += $5 }
        END { printf "%d %d %d\n", p, f, s }')
    passed=$((passed + $1)); failed=$((failed + $2)); skipped=$((skipped + $3))
}

build_and_check() { # name, configure args...
    name=$1; shift
    note "build $name: configure $*"
    rm -rf "${out:?}/$name"
    mkdir -p "$out/$name"
    (cd "$out/$name" && "$top/configure" "$@" >configure.out 2>&1) || {
        tail -30 "$out/$name/configure.out"; echo "not ok - configure ($name)"
        failed=$((failed + 1)); return 1; }
    (cd "$out/$name" && make -j"$JOBS" >make.out 2>&1) || {
        tail -60 "$out/$name/make.out"; echo "not ok - build ($name)"
        failed=$((failed + 1)); return 1; }
    note "make check ($name)"
    rc=0
    (cd "$out/$name" && make -j"$JOBS" check VERBOSE=1 >check.out 2>&1) || rc=1
    grep -E '^(PASS|FAIL|SKIP|XFAIL|XPASS|ERROR):|^# ' "$out/$name/check.out" || true
    count_logs "$out/$name"
    if [ $rc -ne 0 ]; then
        sed -n '/^FAIL:/,$p' "$out/$name/check.out" | tail -150
        echo "not ok - make check ($name)"
        failed=$((failed + 1))
    fi
    return $rc
}

./autogen.sh >"$out/autogen.out" 2>&1 || { cat "$out/autogen.out"; exit 1; }

build_and_check gcc CC=gcc --enable-werror || status=1
build_and_check clang-sanitizers CC=clang --enable-werror --enable-sanitizers || status=1

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
    note "fuzzing: each target ${FUZZ_SECONDS}s"
    rm -rf "$out/fuzz" && mkdir -p "$out/fuzz"
    if (cd "$out/fuzz" && "$top/configure" CC=clang --enable-fuzzing >configure.out 2>&1 &&
        make -j"$JOBS" fuzz-targets >make.out 2>&1); then
        for t in txt policy domain config store_codec netstring tlsrpt_txt rlog rcpt smap_reply site smtp_reply; do
            rm -rf "$out/fuzz/corpus-$t" && mkdir -p "$out/fuzz/corpus-$t"
            cp "$top/tests/corpus/$t"/* "$out/fuzz/corpus-$t/" 2>/dev/null || true
            ( cd "$out/fuzz" && ./tests/fuzz/fuzz_$t -max_total_time="$FUZZ_SECONDS" \
                -print_final_stats=1 -artifact_prefix="$out/fuzz/crash-$t-" \
                "corpus-$t" >"fuzz-$t.out" 2>&1 ) &
        done
        wait
        for t in txt policy domain config store_codec netstring tlsrpt_txt rlog rcpt smap_reply site smtp_reply; do
            runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/fuzz/fuzz-$t.out")
            if ls "$out/fuzz/crash-$t-"* >/dev/null 2>&1 || [ -z "$runs" ]; then
                echo "not ok - fuzz_$t: crash or abnormal end"; tail -40 "$out/fuzz/fuzz-$t.out"
                failed=$((failed + 1)); status=1
            else
                echo "ok - fuzz_$t: $runs inputs in ${FUZZ_SECONDS}s, no crash"
                passed=$((passed + 1))
            fi
        done
    else
        tail -40 "$out/fuzz/configure.out" "$out/fuzz/make.out"
        echo "not ok - fuzz build failed"; failed=$((failed + 1)); status=1
    fi
fi

if [ "${SKIP_DISTCHECK:-0}" != 1 ]; then
    note "make distcheck"
    if (cd "$out/gcc" && make -j"$JOBS" distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror \
        >distcheck.out 2>&1); then
        echo "ok - make distcheck"; passed=$((passed + 1))
    else
        tail -80 "$out/gcc/distcheck.out"
        echo "not ok - make distcheck"; failed=$((failed + 1)); status=1
    fi
fi

if [ "${SKIP_PACKAGES:-0}" != 1 ]; then
    note "packages: build-deb.sh + lintian, build-rpm.sh, install into a throwaway root"
    JOBS=$JOBS sh "$top/tests/check-packages.sh" "$out/packages" >"$out/packages.out" 2>&1 ||
        status=1
    cat "$out/packages.out"
    n=$(grep -c '^ok - ' "$out/packages.out" || true); passed=$((passed + n))
    n=$(grep -c '^not ok - ' "$out/packages.out" || true); failed=$((failed + n))
    n=$(grep -c '^skip - ' "$out/packages.out" || true); skipped=$((skipped + n))
fi

note "summary"
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
exit $status
