/*
 * safefile.c - open a file the daemon writes while it may be root (see
 * safefile.h for the rules).
 *
 * The path is resolved by hand, one component at a time with
 * openat(O_PATH | O_NOFOLLOW), so that every directory the lookup passes
 * through is checked on a descriptor before anything is looked up in it,
 * and the file is then opened relative to the checked directory: a name
 * swapped after the check changes nothing.  A symbolic link on the way is
 * read with readlinkat on its own descriptor and its target resolved the
 * same way.
 */
#include "buildconf.h" /* _GNU_SOURCE: O_PATH, getpwent_r */

#include "base/safefile.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SF_PATH_MAX 4096
#define SF_MAX_LINKS 40         /* as the kernel's ELOOP limit */
#define SF_NSS_BUF_MAX (1 << 20) /* account database buffers grow up to this */
#define SF_MAX_GROUPS 1024

typedef struct walk {
    const sts_safefile_owner *own;
    gid_t groups[SF_MAX_GROUPS]; /* the owner's groups */
    int ngroups;
    char shown[SF_PATH_MAX]; /* the directory reached, for messages */
} walk;

/* ------------------------------------------------------------ account databases */

/* A buffer for the get*_r lookups, grown while they say ERANGE. */
typedef struct nssbuf {
    char *p;
    size_t sz;
} nssbuf;

/* Call before each try with the last try's result (ERANGE before the
 * first): true when (another) try is due with the grown buffer. */
static bool nss_try(nssbuf *b, int rc)
{
    size_t sz = b->sz == 0 ? 4096 : b->sz * 2;
    char *p;

    if (rc != ERANGE || sz > SF_NSS_BUF_MAX || (p = realloc(b->p, sz)) == NULL)
        return false;
    b->p = p;
    b->sz = sz;
    return true;
}

/* The owner's groups: those the account database gives its name, its
 * primary group, and the group it runs with. */
static void owner_groups(walk *w)
{
    struct passwd pw, *res = NULL;
    nssbuf b = { NULL, 0 };
    int n = SF_MAX_GROUPS - 1, rc = ERANGE;

    w->ngroups = 0;
    while (nss_try(&b, rc))
        rc = getpwuid_r(w->own->uid, &pw, b.p, b.sz, &res);
    if (res != NULL && getgrouplist(pw.pw_name, pw.pw_gid, w->groups, &n) >= 0)
        w->ngroups = n;
    free(b.p);
    w->groups[w->ngroups++] = w->own->gid;
}

static bool owner_in_group(const walk *w, gid_t gid)
{
    for (int i = 0; i < w->ngroups; i++)
        if (w->groups[i] == gid)
            return true;
    return false;
}

static bool trusted_uid(const walk *w, uid_t uid)
{
    return uid == 0 || uid == w->own->uid;
}

/* Is the account named name root or the owner? */
static bool trusted_name(const walk *w, const char *name)
{
    struct passwd pw, *res = NULL;
    nssbuf b = { NULL, 0 };
    int rc = ERANGE;
    bool ok;

    while (nss_try(&b, rc))
        rc = getpwnam_r(name, &pw, b.p, b.sz, &res);
    ok = res != NULL && trusted_uid(w, pw.pw_uid);
    free(b.p);
    return ok;
}

/* Someone other than root and the owner in group gid (listed in the
 * group, or having it as primary group): their name into who, else
 * who[0] = '\0'.  False if the group cannot be read. */
static bool other_member(const walk *w, gid_t gid, char *who, size_t whosz)
{
    struct group gr, *gres = NULL;
    struct passwd pw, *pres;
    nssbuf gb = { NULL, 0 };
    int rc = ERANGE;

    who[0] = '\0';
    while (nss_try(&gb, rc))
        rc = getgrgid_r(gid, &gr, gb.p, gb.sz, &gres);
    if (gres == NULL) {
        free(gb.p);
        return false;
    }
    for (char **m = gr.gr_mem; *m != NULL && who[0] == '\0'; m++)
        if (!trusted_name(w, *m))
            (void)snprintf(who, whosz, "%s", *m);
    free(gb.p);
    setpwent();
    while (who[0] == '\0') {
        nssbuf pb = { NULL, 0 };

        pres = NULL;
        rc = ERANGE;
        while (nss_try(&pb, rc))
            rc = getpwent_r(&pw, pb.p, pb.sz, &pres);
        if (pres != NULL && pw.pw_gid == gid && !trusted_uid(w, pw.pw_uid))
            (void)snprintf(who, whosz, "%s", pw.pw_name);
        free(pb.p);
        if (pres == NULL)
            break;
    }
    endpwent();
    return true;
}

static void group_name(gid_t gid, char *out, size_t outsz)
{
    struct group gr, *res = NULL;
    nssbuf b = { NULL, 0 };
    int rc = ERANGE;

    while (nss_try(&b, rc))
        rc = getgrgid_r(gid, &gr, b.p, b.sz, &res);
    if (res != NULL)
        (void)snprintf(out, outsz, "%s", gr.gr_name);
    else
        (void)snprintf(out, outsz, "%u", (unsigned)gid);
    free(b.p);
}

/* ------------------------------------------------------------ the rules */

/* A directory the lookup goes through: root's, and the owner cannot change
 * what its names point to. */
static sts_status check_above(const walk *w, int dfd, sts_why *why)
{
    struct stat sb;
    char gname[64];

    if (fstat(dfd, &sb) != 0) {
        sts_why_set(why, "directory %s: %s", w->shown, strerror(errno));
        return STS_PERMFAIL;
    }
    if (sb.st_uid != 0) {
        sts_why_set(why, "directory %s above it belongs to %s (uid %u), not root: it could "
                    "point the path elsewhere", w->shown,
                    sb.st_uid == w->own->uid ? "UserID" : "another user", (unsigned)sb.st_uid);
        return STS_PERMFAIL;
    }
    if ((sb.st_mode & S_IWOTH) != 0 && (sb.st_mode & S_ISVTX) == 0) {
        sts_why_set(why, "directory %s above it is writable by everyone (mode %04o)", w->shown,
                    (unsigned)(sb.st_mode & 07777));
        return STS_PERMFAIL;
    }
    if (w->own->uid != 0 && (sb.st_mode & S_IWGRP) != 0 && owner_in_group(w, sb.st_gid)) {
        group_name(sb.st_gid, gname, sizeof(gname));
        sts_why_set(why, "directory %s above it is writable by group %s of UserID", w->shown,
                    gname);
        return STS_PERMFAIL;
    }
    return STS_OK;
}

/* The file's own directory: root's or the owner's, and nobody else may
 * create, rename or remove names in it. */
static sts_status check_parent(const walk *w, int dfd, sts_why *why)
{
    struct stat sb;
    char gname[64], who[64];

    if (fstat(dfd, &sb) != 0) {
        sts_why_set(why, "directory %s: %s", w->shown, strerror(errno));
        return STS_PERMFAIL;
    }
    if (!trusted_uid(w, sb.st_uid)) {
        sts_why_set(why, "directory %s belongs to uid %u, neither root nor UserID", w->shown,
                    (unsigned)sb.st_uid);
        return STS_PERMFAIL;
    }
    /* The sticky bit keeps others from replacing our file, not from taking
     * its name while it does not exist (first start, after logrotate). */
    if ((sb.st_mode & S_IWOTH) != 0) {
        sts_why_set(why, "directory %s is writable by everyone (mode %04o)", w->shown,
                    (unsigned)(sb.st_mode & 07777));
        return STS_PERMFAIL;
    }
    if ((sb.st_mode & S_IWGRP) != 0) {
        group_name(sb.st_gid, gname, sizeof(gname));
        if (!other_member(w, sb.st_gid, who, sizeof(who))) {
            sts_why_set(why, "directory %s is writable by group %s, whose members cannot be read",
                        w->shown, gname);
            return STS_PERMFAIL;
        }
        if (who[0] != '\0') {
            sts_why_set(why, "directory %s is writable by group %s, which has other members (%s)",
                        w->shown, gname, who);
            return STS_PERMFAIL;
        }
    }
    return STS_OK;
}

/* ------------------------------------------------------------ the walk */

/* shown += "/" name, or drop its last component for "..". */
static void shown_step(walk *w, const char *name)
{
    size_t n = strlen(w->shown);

    if (strcmp(name, "..") == 0) {
        char *slash = strrchr(w->shown, '/');

        if (slash != NULL && slash != w->shown)
            *slash = '\0';
        else
            (void)snprintf(w->shown, sizeof(w->shown), "/");
        return;
    }
    (void)snprintf(w->shown + n, sizeof(w->shown) - n, "%s%s", n > 1 ? "/" : "", name);
}

/* The name comp in the directory reached, for messages (cut if long). */
static const char *shown_child(const walk *w, const char *comp, char *out, size_t outsz)
{
    int n = snprintf(out, outsz, "%s%s%s", w->shown, strcmp(w->shown, "/") == 0 ? "" : "/",
                     comp);

    if (n < 0)
        out[0] = '\0';
    return out;
}

/* Take the next component of the path in unwalked (from *pos) into comp (as
 * large as unwalked); false when none is left.  Empty and "." components are
 * skipped. */
static bool next_component(const char *unwalked, size_t *pos, char *comp)
{
    for (;;) {
        size_t start, len;

        while (unwalked[*pos] == '/')
            (*pos)++;
        if (unwalked[*pos] == '\0')
            return false;
        start = *pos;
        while (unwalked[*pos] != '/' && unwalked[*pos] != '\0')
            (*pos)++;
        len = *pos - start;
        if (len == 1 && unwalked[start] == '.')
            continue;
        memcpy(comp, unwalked + start, len);
        comp[len] = '\0';
        return true;
    }
}

static int reopen_root(walk *w)
{
    (void)snprintf(w->shown, sizeof(w->shown), "/");
    return open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* Follow the symbolic link lfd (named comp, in the checked directory):
 * unwalked becomes its target followed by what was left of unwalked. */
static sts_status follow_link(walk *w, int lfd, const char *comp, char *unwalked, size_t *pos,
                              int *dfd, sts_why *why)
{
    char target[SF_PATH_MAX], rest[SF_PATH_MAX * 2], name[SF_PATH_MAX];
    struct stat sb;
    ssize_t n;

    shown_child(w, comp, name, sizeof(name));
    if (fstat(lfd, &sb) != 0) {
        sts_why_set(why, "symbolic link %s: %s", name, strerror(errno));
        return STS_PERMFAIL;
    }
    /* Root's links only: nobody else can have made or can change them. */
    if (sb.st_uid != 0) {
        sts_why_set(why, "%s is a symbolic link of uid %u, not root's", name,
                    (unsigned)sb.st_uid);
        return STS_PERMFAIL;
    }
    n = readlinkat(lfd, "", target, sizeof(target) - 1);
    if (n <= 0 || (size_t)n >= sizeof(target) - 1) {
        sts_why_set(why, "cannot read the symbolic link %s", name);
        return STS_PERMFAIL;
    }
    target[n] = '\0';
    n = snprintf(rest, sizeof(rest), "%s/%s", target, unwalked + *pos);
    if (n < 0 || (size_t)n >= sizeof(rest)) {
        sts_why_set(why, "path too long after following %s", name);
        return STS_PERMFAIL;
    }
    memcpy(unwalked, rest, (size_t)n + 1);
    *pos = 0;
    if (target[0] == '/') {
        int root = reopen_root(w);

        if (root < 0) {
            sts_why_set(why, "cannot open /: %s", strerror(errno));
            return STS_PERMFAIL;
        }
        (void)close(*dfd);
        *dfd = root;
    }
    return STS_OK;
}

/* Resolve the directory dir (absolute), checking each directory looked up
 * in and the last one: *dfd (O_PATH) on success. */
static sts_status walk_dirs(walk *w, const char *dir, int *dfd, sts_why *why)
{
    char unwalked[SF_PATH_MAX * 2], comp[SF_PATH_MAX * 2], name[SF_PATH_MAX];
    size_t pos = 0;
    int links = 0, fd;
    sts_status st;
    struct stat sb;

    (void)snprintf(unwalked, sizeof(unwalked), "%s", dir);
    if ((*dfd = reopen_root(w)) < 0) {
        sts_why_set(why, "cannot open /: %s", strerror(errno));
        return STS_PERMFAIL;
    }
    while (next_component(unwalked, &pos, comp)) {
        if ((st = check_above(w, *dfd, why)) != STS_OK)
            return st;
        fd = openat(*dfd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &sb) != 0) {
            sts_why_set(why, "directory %s: %s", shown_child(w, comp, name, sizeof(name)),
                        strerror(errno));
            if (fd >= 0)
                (void)close(fd);
            return STS_PERMFAIL;
        }
        if (S_ISLNK(sb.st_mode)) {
            if (++links > SF_MAX_LINKS) {
                sts_why_set(why, "too many symbolic links in %s", dir);
                st = STS_PERMFAIL;
            } else {
                st = follow_link(w, fd, comp, unwalked, &pos, dfd, why);
            }
            (void)close(fd);
            if (st != STS_OK)
                return st;
            continue;
        }
        shown_step(w, comp);
        (void)close(*dfd);
        *dfd = fd;
        if (!S_ISDIR(sb.st_mode)) {
            sts_why_set(why, "%s is not a directory", w->shown);
            return STS_PERMFAIL;
        }
    }
    return check_parent(w, *dfd, why);
}

/* ------------------------------------------------------------ the file */

static sts_status open_in(int dfd, const char *base, const char *path, sts_safefile_how how,
                          mode_t mode, const sts_safefile_owner *own, int *out, sts_why *why)
{
    int flags = O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
                (how == STS_SAFEFILE_APPEND ? O_APPEND : 0);
    bool created = false, root = geteuid() == 0;
    struct stat sb;
    int fd = -1;

    /* O_EXCL tells a file made now from one that was there; the retry
     * covers a file removed in between. */
    for (int i = 0; i < 3 && fd < 0; i++) {
        fd = openat(dfd, base, flags | O_CREAT | O_EXCL, mode);
        if (fd >= 0) {
            created = true;
            break;
        }
        if (errno != EEXIST)
            break;
        /* O_NONBLOCK: a FIFO planted there must not hang the start. */
        fd = openat(dfd, base, flags | O_NONBLOCK);
        if (fd >= 0 || errno != ENOENT)
            break;
    }
    if (fd < 0) {
        sts_why_set(why, "%s: %s", path, errno == ELOOP   ? "is a symbolic link"
                                         : errno == ENXIO ? "is not a regular file"
                                                          : strerror(errno));
        return STS_PERMFAIL;
    }
    if (fstat(fd, &sb) != 0) {
        sts_why_set(why, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        sts_why_set(why, "%s: is not a regular file", path);
        goto fail;
    }
    /* Another name of the same file could be anything (/etc/shadow). */
    if (sb.st_nlink != 1) {
        sts_why_set(why, "%s: has %lu hard links", path, (unsigned long)sb.st_nlink);
        goto fail;
    }
    if (!created && sb.st_uid != 0 && sb.st_uid != own->uid && sb.st_uid != geteuid()) {
        sts_why_set(why, "%s: belongs to uid %u, neither root nor UserID", path,
                    (unsigned)sb.st_uid);
        goto fail;
    }
    /* Only what was made now is handed over: an existing root file keeps
     * its owner whatever name it is reached by. */
    if (created && root && (own->uid != 0 || own->gid != 0) &&
        fchown(fd, own->uid, own->gid) != 0) {
        sts_why_set(why, "%s: cannot hand it to uid %u: %s", path, (unsigned)own->uid,
                    strerror(errno));
        goto fail;
    }
    if ((created && fchmod(fd, mode) != 0) ||
        fcntl(fd, F_SETFL, how == STS_SAFEFILE_APPEND ? O_APPEND : 0) != 0 ||
        (how == STS_SAFEFILE_REPLACE && ftruncate(fd, 0) != 0)) {
        sts_why_set(why, "%s: %s", path, strerror(errno));
        goto fail;
    }
    *out = fd;
    return STS_OK;
fail:
    (void)close(fd);
    if (created)
        (void)unlinkat(dfd, base, 0);
    return STS_PERMFAIL;
}

bool sts_safefile_abspath(const char *path, char *out, size_t outsz)
{
    char cwd[SF_PATH_MAX];
    int n;

    if (path[0] == '/')
        n = snprintf(out, outsz, "%s", path);
    else if (getcwd(cwd, sizeof(cwd)) != NULL)
        n = snprintf(out, outsz, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", path);
    else
        n = -1;
    return n > 0 && (size_t)n < outsz;
}

sts_status sts_safefile_open(const char *path, sts_safefile_how how, mode_t mode,
                             const sts_safefile_owner *owner, int *fd, sts_why *why)
{
    char full[SF_PATH_MAX], dir[SF_PATH_MAX];
    const char *base = "", *slash = NULL;
    walk *w = NULL;
    int dfd = -1;
    sts_status st = STS_PERMFAIL;

    *fd = -1;
    if (sts_safefile_abspath(path, full, sizeof(full)) && (slash = strrchr(full, '/')) != NULL)
        base = slash + 1;
    if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        sts_why_set(why, "%s: not a file name", path);
        return STS_PERMFAIL;
    }
    (void)snprintf(dir, sizeof(dir), "%.*s", slash == full ? 1 : (int)(slash - full), full);
    if (geteuid() != 0) {
        /* Nothing to hand over: the kernel's checks are the whole story. */
        dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
            sts_why_set(why, "directory %s: %s", dir, strerror(errno));
        else
            st = STS_OK;
    } else if ((w = calloc(1, sizeof(*w))) == NULL) {
        sts_why_set(why, "out of memory");
        return STS_NOMEM;
    } else {
        w->own = owner;
        owner_groups(w);
        st = walk_dirs(w, dir, &dfd, why);
    }
    if (st == STS_OK)
        st = open_in(dfd, base, path, how, mode, owner, fd, why);
    if (dfd >= 0)
        (void)close(dfd);
    free(w);
    return st;
}
