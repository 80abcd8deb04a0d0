/*
 * startup.h - the parts of the daemon's start that can fail and must say
 * why before anyone walks away: the account it runs as (UserID,
 * SocketGroup) and the privilege switches around it, the deep check of
 * `mtasts-milter -n`, and detaching that waits for the daemon to be
 * ready.  main.c calls these in its start-up order; this module depends
 * on nothing else in milter/.
 */
#ifndef MT_STARTUP_H
#define MT_STARTUP_H

#include <stdbool.h>
#include <sys/types.h>

#include "base/account.h"
#include "base/safefile.h"
#include "conf/config.h"

/* The account the daemon runs as once started (UserID), resolved while
 * root, before the files and sockets it will own are made. */
typedef struct mt_user {
    char name[STS_ACCOUNT_NAME_MAX + 1]; /* the user part of UserID (base/account.h) */
    sts_safefile_owner id;
    gid_t sock_gid;  /* group the unix sockets are made with (SocketGroup, else id.gid) */
    bool sock_group; /* SocketGroup is set */
    bool drop;       /* started as root and UserID is not root */
} mt_user;

/* Resolve UserID ("user[:group]") and SocketGroup (may be NULL).  When
 * not started as root there is nothing to drop: the current ids are kept
 * (and SocketGroup must be one of the process's groups).  -1 after an
 * error line naming the unknown user or group. */
int mt_user_resolve(const char *spec, const char *sock_group, mt_user *u);

/* While root makes the unix sockets: the service user's effective uid
 * and the socket group as effective gid (the real and saved ids stay
 * root, so mt_user_root() comes back).  -1 after an error line. */
int mt_user_for_sockets(const mt_user *u);
int mt_user_root(const mt_user *u);

/* Drop root for good and verify it cannot be regained.  -1 after an
 * error line. */
int mt_user_drop(const mt_user *u);

/* `mtasts-milter -n` beyond the syntax the config parser checked: the
 * user and groups exist, both sockets resolve to addresses, the
 * resolver and fetcher can be built from DNSServers, CAFile and the
 * timeouts.  Prints each problem on stderr; false if there was one. */
bool mt_startup_check(const sts_config *cfg);

/* Detach the daemon (without -f), keeping the terminal until it is
 * ready: the process forks, the parent waits on a pipe and exits with 0
 * when the child says it is ready, or with the child's own exit status
 * when it exits before that, after the child printed its errors on the
 * inherited stderr.  The child starts a new session in "/".  Returns 0 in
 * the child, -1 (errno set) if the pipe or fork failed; the parent never
 * returns. */
int mt_detach_begin(void);

/* The child is ready: tell the waiting parent, point stdin, stdout and
 * stderr at /dev/null and stop logging to stderr.  No-op with -f. */
void mt_detach_ready(void);

#endif
