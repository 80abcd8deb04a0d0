#!/bin/sh
# source-tree.sh DEST - copy the source tree of mtasts-milter to DEST for a
# package build (build-deb.sh, build-rpm.sh): the files git knows plus new
# files it does not ignore, so that an in-tree build (configure output,
# objects, _build/) never leaks into a package; without git, the tree
# minus the build products that .gitignore names.
set -eu
[ $# -eq 1 ] || { echo "usage: source-tree.sh DEST" >&2; exit 64; }
top=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # ls-files lists deleted but uncommitted files too: keep those that exist.
    (cd "$top" && git ls-files -z --cached --others --exclude-standard |
        xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\n" "$f"; done' sh |
        tar -cf - --no-recursion -T -) | tar -xf - -C "$1"
else
    (cd "$top" && tar -cf - --exclude=.git --exclude='./_build*' --exclude=./state \
        --exclude=./autom4te.cache --exclude=./configure --exclude=./config.status \
        --exclude=./config.log --exclude=./aclocal.m4 --exclude=./buildconf.h \
        --exclude=./m4 --exclude=./build-aux --exclude=Makefile --exclude=Makefile.in \
        --exclude='*.o' --exclude='*.a' --exclude=.deps --exclude=.dirstamp \
        --exclude='./mtasts-milter-*.tar.gz' .) | tar -xf - -C "$1"
fi
