/*
 * account.c - resolve UserID and switch to it (see account.h).  Only the
 * order of the calls and the final check matter here: supplementary
 * groups first (setgroups needs root), then the group, then the user
 * (after setuid nothing else can be changed), and a failed setuid(0)
 * afterwards is the proof that the drop held.
 */
#include "base/account.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

sts_status sts_account_resolve(const char *spec, sts_account *a, sts_why *why)
{
    const char *colon;
    const struct passwd *pw;
    const struct group *gr;
    size_t ulen;

    memset(a, 0, sizeof(*a));
    a->id.uid = geteuid();
    a->id.gid = getegid();
    if (spec == NULL || spec[0] == '\0') {
        sts_why_set(why, "UserID is empty");
        return STS_PERMFAIL;
    }
    colon = strchr(spec, ':');
    ulen = colon != NULL ? (size_t)(colon - spec) : strlen(spec);
    if (ulen == 0 || ulen > STS_ACCOUNT_NAME_MAX ||
        (colon != NULL && (colon[1] == '\0' || strlen(colon + 1) > STS_ACCOUNT_NAME_MAX))) {
        sts_why_set(why, "UserID '%.80s' is not user or user:group (at most %d bytes each)",
                    spec, STS_ACCOUNT_NAME_MAX);
        return STS_PERMFAIL;
    }
    memcpy(a->name, spec, ulen);
    a->name[ulen] = '\0';
    if (geteuid() != 0)
        return STS_OK;
    errno = 0;
    if ((pw = getpwnam(a->name)) == NULL) {
        sts_why_set(why, "UserID: user %s unknown%s%s", a->name, errno != 0 ? ": " : "",
                    errno != 0 ? strerror(errno) : "");
        return STS_PERMFAIL;
    }
    a->id.uid = pw->pw_uid;
    a->id.gid = pw->pw_gid;
    if (colon != NULL) {
        errno = 0;
        if ((gr = getgrnam(colon + 1)) == NULL) {
            sts_why_set(why, "UserID: group %s unknown%s%s", colon + 1, errno != 0 ? ": " : "",
                        errno != 0 ? strerror(errno) : "");
            return STS_PERMFAIL;
        }
        a->id.gid = gr->gr_gid;
    }
    if (a->id.uid == 0) {
        sts_why_set(why, "UserID %s is root: not dropping privileges", a->name);
        return STS_OK;
    }
    a->drop = true;
    return STS_OK;
}

sts_status sts_account_become(const sts_account *a, bool for_good, sts_why *why)
{
    if (!a->drop)
        return STS_OK;
    if (setgroups(1, &a->id.gid) != 0 ||
        (for_good ? setgid(a->id.gid) : setegid(a->id.gid)) != 0 ||
        (for_good ? setuid(a->id.uid) : seteuid(a->id.uid)) != 0) {
        sts_why_set(why, "cannot switch to user %s (uid %u gid %u): %s", a->name,
                    (unsigned)a->id.uid, (unsigned)a->id.gid, strerror(errno));
        return STS_PERMFAIL;
    }
    if (for_good && (setuid(0) == 0 || geteuid() == 0 || getegid() == 0 || getgid() == 0)) {
        sts_why_set(why, "root could be regained after switching to user %s", a->name);
        return STS_PERMFAIL;
    }
    return STS_OK;
}

sts_status sts_account_back_to_root(const sts_account *a, sts_why *why)
{
    if (a->drop && (seteuid(0) != 0 || setegid(0) != 0)) {
        sts_why_set(why, "cannot return to root: %s", strerror(errno));
        return STS_PERMFAIL;
    }
    return STS_OK;
}
