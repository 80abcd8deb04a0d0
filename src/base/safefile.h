/*
 * safefile.h - open a file the daemon writes (decision log, pid file)
 * so that being root at the time hands nothing to anyone (CONVENTIONS.md
 * "State and threads"; after Postfix safe_open).
 *
 * The rules, for a caller that is root (mtasts-milter(8), FILES):
 *  - the file's directory belongs to root or to the owner (the service
 *    user) and nobody else can change it: not world-writable (even with
 *    the sticky bit), group-writable only by a group whose members are
 *    all root or the owner;
 *  - every directory above it belongs to root and the owner cannot
 *    change it (world-writable only with the sticky bit, not
 *    group-writable by one of the owner's groups); a symbolic link on
 *    the way is followed only if root owns it.  So the owner, who may
 *    write the file's own directory, cannot point the path elsewhere;
 *  - the file itself is opened without following a symbolic link and
 *    must be a regular file with one hard link, owned by root or the
 *    owner if it exists;
 *  - only a file this call created is handed to the owner (fchown on the
 *    descriptor), with exactly the mode asked for (fchmod).
 * A caller that is not root can hand nothing over: the directory rules
 * are skipped, the file rules kept.
 */
#ifndef STS_SAFEFILE_H
#define STS_SAFEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/status.h"

/* The account the file is for: the one the daemon runs as (UserID). */
typedef struct sts_safefile_owner {
    uid_t uid;
    gid_t gid; /* the group it runs with; a created file gets it */
} sts_safefile_owner;

typedef enum sts_safefile_how {
    STS_SAFEFILE_APPEND, /* writes go to the end */
    STS_SAFEFILE_REPLACE /* emptied once the checks passed */
} sts_safefile_how;

/* Open path for writing (O_CLOEXEC), creating it with mode if absent; a
 * relative path is taken from the working directory.  STS_OK and *fd, or
 * STS_PERMFAIL with the reason in why (naming the file, or the directory
 * at fault).  As root it reads the account databases (group members) and
 * the password file's list: not from two threads at once. */
sts_status sts_safefile_open(const char *path, sts_safefile_how how, mode_t mode,
                             const sts_safefile_owner *owner, int *fd,
                             sts_why *why) STS_MUST_CHECK;

/* path made absolute from the working directory, into out; false if it
 * does not fit (or the working directory cannot be read). */
bool sts_safefile_abspath(const char *path, char *out, size_t outsz);

#endif
