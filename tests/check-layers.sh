#!/bin/sh
# check-layers.sh - the source tree keeps the shape doc/HACKING.md draws.
#
#  1. Each folder of src/ includes only its own headers and those of the
#     folders it may depend on (the table below: lower layers only); no
#     file in src/ includes anything from milter/.
#  2. No C file in src/ or milter/ is longer than 1000 lines.
#  3. The modules of milter/ call each other without a cycle (read from
#     the built objects under top_builddir with nm; skipped, and said so,
#     before a build).
#  4. Every .c/.h of src/ sits in one of the folders below.
# Prints each offence and exits 1, or prints one "ok" line and exits 0.

top_srcdir=${top_srcdir:-$(dirname "$0")/..}
cd "$top_srcdir" || exit 1
max_lines=1000

# folder: the folders its files may include from (besides itself)
allowed() {
    case $1 in
    base) echo "" ;;
    sts) echo "base" ;;
    engine) echo "base sts" ;;
    smap) echo "base sts engine" ;;
    decision) echo "base sts engine" ;;
    tlsrpt) echo "base sts" ;;
    conf) echo "base sts engine smap decision tlsrpt" ;;
    cmd) echo "base sts engine smap decision tlsrpt conf" ;;
    *) echo "?" ;;
    esac
}

bad=0
nfiles=0
for f in $(find src milter -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort); do
    nfiles=$((nfiles + 1))
    lines=$(wc -l <"$f")
    if [ "$lines" -gt $max_lines ] && [ "${f%.c}" != "$f" ]; then
        echo "$f: $lines lines (at most $max_lines: split it along a seam)"
        bad=1
    fi
    case $f in
    milter/*) continue ;;
    esac
    dir=${f#src/}
    dir=${dir%%/*}
    ok=$(allowed "$dir")
    if [ "$ok" = "?" ] || [ "src/$dir/${f##*/}" != "$f" ]; then
        echo "$f: not in a known folder of src/ (see doc/HACKING.md and check-layers.sh)"
        bad=1
        continue
    fi
    grep -n '^#[[:space:]]*include[[:space:]]*"' "$f" | while IFS= read -r line; do
        inc=$(printf '%s\n' "$line" | sed -E 's/^[0-9]+:#[[:space:]]*include[[:space:]]*"([^"]*)".*/\1/')
        case $inc in
        buildconf.h) continue ;;
        */*) to=${inc%%/*} ;;
        *) echo "$f:${line%%:*}: \"$inc\": name the folder (\"$dir/$inc\")"; exit 1 ;;
        esac
        [ "$to" = "$dir" ] && continue
        case " $ok " in
        *" $to "*) ;;
        *) echo "$f:${line%%:*}: $dir/ must not include $inc ($dir/ may use: ${ok:-nothing else})"
           exit 1 ;;
        esac
    done || bad=1
done

# milter/: which of its modules calls which, read from the objects (a
# header shared by all says nothing about who defines what): module A
# depends on B when A's object uses a symbol B's object defines.  Any
# cycle in that graph is an offence.
objs=$(ls "${top_builddir:-.}"/milter/*.o 2>/dev/null)
if [ -n "$objs" ] && command -v nm >/dev/null 2>&1; then
    cycle=$(for o in $objs; do
        m=${o##*/}; m=${m%.o}; m=${m##*-}
        nm -g --defined-only "$o" | awk -v m="$m" 'NF >= 3 { print "D", m, $3 }'
        nm -u "$o" | awk -v m="$m" '{ print "U", m, $NF }'
    done | awk '
        $1 == "D" { def[$3] = $2 }
        $1 == "U" { use[++n] = $2 " " $3 }
        END {
            for (i = 1; i <= n; i++) {
                split(use[i], p, " ")
                if ((p[2] in def) && def[p[2]] != p[1] && !((p[1] SUBSEP def[p[2]]) in seen)) {
                    seen[p[1], def[p[2]]] = 1
                    adj[p[1]] = adj[p[1]] " " def[p[2]]
                    nodes[p[1]]
                }
            }
            for (a in nodes) {
                k = split(adj[a], t, " ")
                for (j = 1; j <= k; j++) {
                    b = t[j]
                    if (b in nodes) {
                        kk = split(adj[b], tt, " ")
                        for (jj = 1; jj <= kk; jj++) if (tt[jj] == a) { print a " <-> " b; exit }
                    }
                }
            }
            # longer cycles: repeated relaxation of reachability
            for (a in nodes) reach[a, a] = 0
            changed = 1
            while (changed) {
                changed = 0
                for (a in nodes) {
                    k = split(adj[a], t, " ")
                    for (j = 1; j <= k; j++) if (!((a, t[j]) in r)) { r[a, t[j]] = 1; changed = 1 }
                    for (b in nodes) if ((a, b) in r) {
                        kk = split(adj[b], tt, " ")
                        for (jj = 1; jj <= kk; jj++) if (!((a, tt[jj]) in r)) { r[a, tt[jj]] = 1; changed = 1 }
                    }
                }
            }
            for (a in nodes) if ((a, a) in r) { print a " reaches itself"; exit }
        }')
    if [ -n "$cycle" ]; then
        echo "milter/: modules depend on each other in a cycle: $cycle"
        bad=1
    fi
    milter_note="no cycle among milter/ modules ($(echo $objs | wc -w) objects)"
else
    milter_note="milter/ objects not built: module cycle check skipped"
fi

if [ $nfiles -lt 40 ]; then
    echo "check-layers: only $nfiles files found: wrong top_srcdir?" >&2
    exit 1
fi
[ $bad -eq 0 ] || exit 1
echo "layers ok: $nfiles files in src/ and milter/, no upward include, none over $max_lines lines, $milter_note"
