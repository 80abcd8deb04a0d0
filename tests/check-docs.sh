#!/bin/sh
# check-docs.sh - every key of the config table is documented.
#
# Reads the STS_KEY("Name", TYPE, default, ...) lines of src/conf/config_keys.c
# (no compiling) and checks that doc/mtasts-milter.conf.5 has, for each key, an
# entry headed ".TP" + ".B Name" or ".BI "Name " ...", whose text states the default
# (or says "unset" for a key without one), and that the sample config
# packaging/mtasts-milter.conf, which says it lists every key, has a line
# "Key ..." or "#Key ..." for each.  Fails if fewer than 10 keys are
# found, which means the table format changed and this grep broke.
# Run by `make check` with top_srcdir set; also runs by hand from anywhere.

top_srcdir=${top_srcdir:-$(dirname "$0")/..}
src=$top_srcdir/src/conf/config_keys.c
man=$top_srcdir/doc/mtasts-milter.conf.5
sample=$top_srcdir/packaging/mtasts-milter.conf
min_keys=10

for f in "$src" "$man" "$sample"; do
    if [ ! -r "$f" ]; then
        echo "check-docs: cannot read $f" >&2
        exit 1
    fi
done

tab=$(printf '\t')
keys=$(awk '
    /^[ \t]*STS_KEY\("/ {
        line = $0
        sub(/^[ \t]*STS_KEY\("/, "", line)
        name = line; sub(/".*/, "", name)
        rest = line; sub(/^[^"]*",[ \t]*[A-Z_]+,[ \t]*/, "", rest)
        if (rest ~ /^NULL/) def = ""
        else if (rest ~ /^"/) { def = substr(rest, 2); sub(/".*/, "", def) }
        else { print "BROKEN " name; next }
        print name "\t" def
    }' "$src")

case $keys in
*BROKEN*)
    echo "check-docs: cannot read the default of: $(echo "$keys" | sed -n 's/^BROKEN //p')" >&2
    echo "check-docs: keep name, type and default on the STS_KEY line in $src" >&2
    exit 1 ;;
esac

count=$(printf '%s\n' "$keys" | grep -c .)
if [ "$count" -lt "$min_keys" ]; then
    echo "check-docs: found only $count STS_KEY lines in $src (want at least $min_keys);" \
        "did the table format change?" >&2
    exit 1
fi
names=$(printf '%s\n' "$keys" | cut -f1)

# The text of one key's entry: from its heading to the next key's heading
# or section, with font escapes and roff specials reduced to plain text.
entry() {
    raw=$(awk -v key="$1" -v all="$names" '
        BEGIN { n = split(all, k, "\n") }
        function heading(line,   i) {
            for (i = 1; i <= n; i++)
                if (line ~ ("^\\.BI?[ \t]+\"?" k[i] "([ \t\"]|$)"))
                    return k[i]
            return ""
        }
        /^\.SH/ { inside = 0 }
        { h = prev ~ /^\.TP/ ? heading($0) : ""; prev = $0 }
        h != "" { inside = (h == key); if (inside) found = 1 }
        inside { print }
        END { if (!found) exit 1 }' "$man") || return 1
    printf '%s\n' "$raw" |
        sed -e 's/\\f[BIRP]//g' -e 's/\\-/-/g' -e 's/\\[&%]//g' -e 's/\\~/ /g' \
            -e 's/^\.[A-Za-z]*[[:space:]]*//' -e 's/"//g'
}

fail=0
checked=0
while IFS=$tab read -r name def; do
    [ -n "$name" ] || continue
    checked=$((checked + 1))
    if ! text=$(entry "$name"); then
        echo "FAIL $name: no entry (.TP then .B $name or .BI \"$name \" ...) in $man"
        fail=1
        continue
    fi
    if [ -n "$def" ]; then
        if ! printf '%s\n' "$text" | grep -q 'Default:' ||
           ! printf '%s\n' "$text" | grep -F -q -- "$def"; then
            echo "FAIL $name: entry does not state \"Default:\" with $def"
            fail=1
            continue
        fi
        echo "ok   $name (default $def)"
    else
        if ! printf '%s\n' "$text" | grep -q 'Default: unset'; then
            echo "FAIL $name: key has no default; entry should say \"Default: unset\""
            fail=1
            continue
        fi
        echo "ok   $name (default unset)"
    fi
    if ! grep -q -i "^#\{0,1\}$name[ $tab]" "$sample"; then
        echo "FAIL $name: no line \"$name ...\" or \"#$name ...\" in $sample"
        fail=1
    fi
done <<EOF
$keys
EOF

if [ "$fail" -ne 0 ]; then
    echo "check-docs: undocumented keys; see above" >&2
    exit 1
fi
echo "check-docs: all $checked keys of $src documented in $man and listed in $sample"
exit 0
