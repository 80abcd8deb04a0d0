#!/bin/sh
# check-cmocka.sh - every cmocka group runs exactly the tests it filled
# (CONVENTIONS.md "Tests").
#
# cmocka_run_group_tests() and cmocka_run_group_tests_name() take their
# array's sizeof: given an array with spare slots they run the unfilled
# ones, which hold whatever the stack held (test_rlog once crashed under
# ASan this way, and passed elsewhere by luck).  So in tests/unit/*.c:
#   - those two macros may only be given an array written out in full,
#     declared "struct CMUnitTest NAME[] = {" in the same file;
#   - a table filled at run time goes through UNIT_RUN()/unit_run() of
#     tests/unit/unit_run.h, which refuses a table whose capacity differs
#     from what main() filled;
#   - _cmocka_run_group_tests() is called only from unit_run.h.
# Prints each offending file:line and exits 1, or prints
# "cmocka groups ok in N files" and exits 0.

top_srcdir=${top_srcdir:-$(dirname "$0")/..}
bad=0
n=0
for path in "$top_srcdir"/tests/unit/*.c "$top_srcdir"/tests/unit/*.h; do
    [ -f "$path" ] || continue
    f=${path#"$top_srcdir"/}
    n=$((n + 1))
    if [ "$f" != tests/unit/unit_run.h ]; then
        hits=$(grep -n '_cmocka_run_group_tests[[:space:]]*(' "$path")
        if [ -n "$hits" ]; then
            printf '%s\n' "$hits" | sed "s|^|$f:|; s|\$|   <- use unit_run() from unit_run.h|"
            bad=1
        fi
    fi
    # Each "cmocka_run_group_tests[_name](...)" call: the array is the
    # first argument (second with _name); it must be a full initialiser.
    [ "$f" != tests/unit/unit_run.h ] || continue
    calls=$(grep -n -E '(^|[^_A-Za-z0-9])cmocka_run_group_tests(_name)?[[:space:]]*\(' "$path")
    [ -n "$calls" ] || continue
    printf '%s\n' "$calls" | while IFS= read -r line; do
        lineno=${line%%:*}
        arr=$(printf '%s\n' "$line" | sed -E \
            -e 's/.*cmocka_run_group_tests_name[[:space:]]*\([^,]*,[[:space:]]*([A-Za-z_][A-Za-z0-9_]*).*/\1/' \
            -e 's/.*cmocka_run_group_tests[[:space:]]*\([[:space:]]*([A-Za-z_][A-Za-z0-9_]*).*/\1/')
        if ! grep -q -E "struct CMUnitTest[[:space:]]+$arr[[:space:]]*\[[[:space:]]*\][[:space:]]*=[[:space:]]*\{" "$path"; then
            echo "$f:$lineno: cmocka group over '$arr', which is not a fully written array: use UNIT_RUN()"
            exit 1
        fi
    done || bad=1
done
if [ $n -lt 10 ]; then
    echo "check-cmocka: only $n files under tests/unit: wrong top_srcdir?" >&2
    exit 1
fi
[ $bad -eq 0 ] || exit 1
echo "cmocka groups ok in $n files"
