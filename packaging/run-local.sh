#!/bin/sh
# Run mtasts-milter in the foreground from the build tree with the built-in
# defaults (the README's RUN line): milter on inet:8462@127.0.0.1, socketmap
# on 8461, system resolver and CA store, and the SQLite cache in ./state/
# instead of /var/lib/mtasts-milter.  As root it runs as the user "mtasts"
# (created here if missing, as the Debian package would).  Ctrl-C stops it.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
state="$top/state"
mkdir -p "$state"
if [ "$(id -u)" -eq 0 ]; then
    # The same user as the packages make (debian/mtasts-milter.postinst,
    # sysusers.d/mtasts-milter.conf): system user and group, home
    # /var/lib/mtasts-milter (not created here), no login shell.
    id mtasts >/dev/null 2>&1 ||
        useradd --system --user-group --no-create-home --home-dir /var/lib/mtasts-milter \
            --shell /usr/sbin/nologin --comment "MTA-STS milter and reports" mtasts
    chown mtasts "$state"
    user=mtasts
else
    user=$(id -un)
fi
conf="$state/mtasts-milter.conf"
# Only what differs from the built-in defaults.
printf 'CacheStore sqlite:%s/cache.db\nUserID %s\n' "$state" "$user" > "$conf"
echo "run-local: mtasts-milter on inet:8462@127.0.0.1, cache in $state (Ctrl-C stops)"
exec "$top/milter/mtasts-milter" -f -c "$conf"
