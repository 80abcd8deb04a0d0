/*
 * account.h - the account a program runs as (UserID "user[:group]"), and
 * switching to it from root: setgroups, setgid, setuid in that order,
 * then a check that root cannot be regained (CONVENTIONS.md "State and
 * threads"; mtasts-milter(8) SECURITY).
 *
 * The daemon switches for good after opening its sockets; mtasts-query
 * switches before it touches the cache store, so that a root shell never
 * creates or rewrites the store's files as root (a root-owned file the
 * daemon cannot write, or a symbolic link planted by the service user
 * followed with root's rights).
 */
#ifndef STS_ACCOUNT_H
#define STS_ACCOUNT_H

#include <stdbool.h>

#include "base/safefile.h"
#include "base/status.h"

#define STS_ACCOUNT_NAME_MAX 64

typedef struct sts_account {
    char name[STS_ACCOUNT_NAME_MAX + 1]; /* the user part of the spec */
    sts_safefile_owner id;                /* the ids to run with */
    bool drop;                            /* running as root, id is another account */
} sts_account;

/* Resolve spec ("user" or "user:group") for this process.  Not running as
 * root: id is the current effective ids, drop false (nothing to switch),
 * STS_OK.  Root: the account's uid and primary group (or the named
 * group); STS_PERMFAIL naming the unknown user or group, or a spec longer
 * than STS_ACCOUNT_NAME_MAX; an account that is root itself gives drop
 * false, STS_OK, and a note in why (the caller may warn). */
sts_status sts_account_resolve(const char *spec, sts_account *a, sts_why *why) STS_MUST_CHECK;

/* Become a->id (nothing if !a->drop).  for_good: setgroups, setgid,
 * setuid, then verify that neither uid nor gid 0 can be regained;
 * otherwise only the effective ids change (setegid, seteuid) and
 * sts_account_back_to_root undoes it.  STS_PERMFAIL with the reason. */
sts_status sts_account_become(const sts_account *a, bool for_good, sts_why *why) STS_MUST_CHECK;

/* Effective ids back to root after sts_account_become(a, false, ...). */
sts_status sts_account_back_to_root(const sts_account *a, sts_why *why) STS_MUST_CHECK;

#endif
