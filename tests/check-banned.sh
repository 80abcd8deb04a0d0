#!/bin/sh
# check-banned.sh - no banned C library calls (CONVENTIONS.md "Untrusted input").
#
# Scans the C sources and headers in src/, milter/, tests/fuzz/, tests/bench/
# and tests/engine/ for
#   strcpy strcat sprintf vsprintf strncpy atoi atol strtok sscanf gets
# and, in src/ (the parsers), for <ctype.h> and its locale-dependent
# classification calls (isalpha, isdigit, ..., tolower, toupper); use the
# ASCII helpers of buf.h instead.  snprintf, vsnprintf, strtok_r and
# strtol (with an end check) are allowed.
#
# A line carrying the marker  /* banned-ok: reason */  is exempt.
# Prints each offending file:line and exits 1, or prints
# "no banned calls in N files" and exits 0.  Comments are not skipped:
# reword a comment that names a banned call as if calling it.

top_srcdir=${top_srcdir:-$(dirname "$0")/..}

calls='strcpy|strcat|sprintf|vsprintf|strncpy|atoi|atol|strtok|sscanf|gets'
ctype='isalnum|isalpha|isascii|isblank|iscntrl|isdigit|isgraph|islower|isprint|ispunct|isspace|isupper|isxdigit|tolower|toupper'
# A call: the name not preceded by an identifier character, then "(".
call_re() {
    printf '(^|[^A-Za-z0-9_])(%s)[[:space:]]*\\(' "$1"
}
exempt='/\*[[:space:]]*banned-ok:[[:space:]]*[^*[:space:]][^*]*\*/'

files=$(cd "$top_srcdir" &&
    for d in src milter tests/fuzz tests/bench tests/engine; do
        [ -d "$d" ] && find "$d" -type f \( -name '*.c' -o -name '*.h' \)
    done | LC_ALL=C sort)

n=0
bad=0
for f in $files; do
    n=$((n + 1))
    path=$top_srcdir/$f
    hits=$(grep -n -E "$(call_re "$calls")" "$path")
    case $f in
    src/*)
        hits="$hits
$(grep -n -E -e "$(call_re "$ctype")" -e '^[[:space:]]*#[[:space:]]*include[[:space:]]*<ctype\.h>' "$path")"
        ;;
    esac
    hits=$(printf '%s\n' "$hits" | grep -v -E "$exempt" | grep -v '^$' | LC_ALL=C sort -t: -k1,1n -u)
    if [ -n "$hits" ]; then
        printf '%s\n' "$hits" | sed "s|^|$f:|"
        bad=1
    fi
done

if [ "$bad" -ne 0 ]; then
    echo "check-banned: banned calls found (see CONVENTIONS.md; exempt a line with /* banned-ok: reason */)" >&2
    exit 1
fi
echo "no banned calls in $n files"
exit 0
