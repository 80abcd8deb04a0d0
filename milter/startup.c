/*
 * startup.c - start-up steps that can fail (see startup.h).
 *
 * No error of the start may vanish: everything up to "ready" is logged
 * (syslog, and stderr: sts_log shows warnings and errors there until the
 * daemon detaches) and ends in a non-zero exit status.  Without -f the
 * daemon used to daemon(3) in the middle of its start, so whatever failed
 * afterwards (the engine, the cache store, threads) left an exit status
 * of 0 and an empty terminal.  Now the process forks at that point but
 * the parent stays, reading a pipe: one byte means ready (exit 0); end of
 * file means the child exited, and the parent exits with the child's
 * status.  The child keeps the terminal as stderr until ready, so its
 * error lines reach the admin who started it (the way OpenSMTPD and
 * Postfix's master report start-up failures).
 *
 * Unix sockets are created under the service user's effective uid and
 * the socket group as effective gid (Postfix master's way, main.c),
 * with the mode from the umask at bind(): nothing is changed by path.
 */
#include "buildconf.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "base/account.h"
#include "base/log.h"
#include "base/sockspec.h"
#include "conf/opts.h"
#include "engine/engine.h"
#include "sts/discover.h"
#include "startup.h"

static int ready_fd = -1; /* the child's end of the pipe, until ready */

/* ------------------------------------------------------------ the user */

static int lookup_group(const char *name, gid_t *gid)
{
    struct group *gr = getgrnam(name);

    if (gr == NULL) {
        sts_log(STS_LOG_ERR, "-", "privileges", "group=%s unknown", name);
        return -1;
    }
    *gid = gr->gr_gid;
    return 0;
}

int mt_user_resolve(const char *spec, const char *sock_group, mt_user *u)
{
    sts_account a;
    sts_why why = { "" };

    memset(u, 0, sizeof(*u));
    if (sts_account_resolve(spec, &a, &why) != STS_OK) {
        sts_log(STS_LOG_ERR, "-", "privileges", "%s", why.text);
        return -1;
    }
    (void)snprintf(u->name, sizeof(u->name), "%s", a.name);
    u->id = a.id;
    u->drop = a.drop;
    if (geteuid() != 0)
        sts_log(STS_LOG_NOTICE, "-", "privileges", "not started as root: running as uid %u",
                (unsigned)geteuid());
    else if (why.text[0] != '\0')
        sts_log(STS_LOG_WARNING, "-", "privileges", "%s", why.text); /* UserID is root */
    u->sock_gid = u->id.gid;
    if (sock_group != NULL) {
        if (lookup_group(sock_group, &u->sock_gid) != 0)
            return -1;
        u->sock_group = true;
    }
    return 0;
}

static int switch_failed(const mt_user *u)
{
    sts_log(STS_LOG_ERR, "-", "privileges", "user=%s cannot switch: %s", u->name,
            strerror(errno));
    return -1;
}

int mt_user_for_sockets(const mt_user *u)
{
    if (u->drop) {
        if (setgroups(1, &u->sock_gid) != 0 || setegid(u->sock_gid) != 0 ||
            seteuid(u->id.uid) != 0)
            return switch_failed(u);
    } else if (u->sock_group && setegid(u->sock_gid) != 0) {
        /* Root keeping root, or a user that is a member of the group. */
        sts_log(STS_LOG_ERR, "-", "privileges", "SocketGroup gid=%u cannot be used: %s",
                (unsigned)u->sock_gid, strerror(errno));
        return -1;
    }
    return 0;
}

int mt_user_root(const mt_user *u)
{
    if (u->drop && (seteuid(0) != 0 || setegid(0) != 0)) {
        sts_log(STS_LOG_ERR, "-", "privileges", "cannot return to root: %s", strerror(errno));
        return -1;
    }
    if (!u->drop && u->sock_group && setegid(u->id.gid) != 0) {
        sts_log(STS_LOG_ERR, "-", "privileges", "cannot return to gid %u: %s",
                (unsigned)u->id.gid, strerror(errno));
        return -1;
    }
    return 0;
}

int mt_user_drop(const mt_user *u)
{
    sts_account a;
    sts_why why = { "" };

    if (!u->drop)
        return 0;
    memset(&a, 0, sizeof(a));
    (void)snprintf(a.name, sizeof(a.name), "%s", u->name);
    a.id = u->id;
    a.drop = true;
    if (sts_account_become(&a, true, &why) != STS_OK) {
        sts_log(STS_LOG_ERR, "-", "privileges", "%s", why.text);
        return -1;
    }
    sts_log(STS_LOG_INFO, "-", "privileges", "running as user=%s uid=%u gid=%u", u->name,
            (unsigned)u->id.uid, (unsigned)u->id.gid);
    return 0;
}

/* ------------------------------------------------------------ -n */

static bool check_socket(const char *key, const char *spec)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    sts_why why = { "" };

    if (sts_sockspec_parse(spec, &ss, &sl, &why) == STS_OK)
        return true;
    fprintf(stderr, "mtasts-milter: %s %s: %s\n", key, spec, why.text);
    return false;
}

static bool check_user(const char *spec, const char *sock_group)
{
    char name[256];
    char *group;
    bool ok = true;

    (void)snprintf(name, sizeof(name), "%s", spec);
    if ((group = strchr(name, ':')) != NULL)
        *group++ = '\0';
    if (getpwnam(name) == NULL) {
        fprintf(stderr, "mtasts-milter: UserID: user %s does not exist\n", name);
        ok = false;
    }
    if (group != NULL && getgrnam(group) == NULL) {
        fprintf(stderr, "mtasts-milter: UserID: group %s does not exist\n", group);
        ok = false;
    }
    if (sock_group != NULL && getgrnam(sock_group) == NULL) {
        fprintf(stderr, "mtasts-milter: SocketGroup: group %s does not exist\n", sock_group);
        ok = false;
    }
    return ok;
}

bool mt_startup_check(const sts_config *cfg)
{
    sts_discover_opts dopts;
    sts_discover *d = NULL;
    sts_why why = { "" };
    bool ok = true;

    ok &= check_user(cfg->user_id, cfg->socket_group);
    ok &= check_socket("Socket", cfg->socket);
    ok &= check_socket("SocketmapSocket", cfg->socketmap_socket);
    /* The resolver (DNSServers) and the fetcher (CAFile, timeouts), built
     * exactly as the engine builds them. */
    sts_opts_discover(cfg, &dopts);
    if (sts_discover_new(&dopts, &d, &why) != STS_OK) {
        fprintf(stderr, "mtasts-milter: DNSServers/CAFile: %s\n", why.text);
        ok = false;
    }
    sts_discover_free(d);
    return ok;
}

/* ------------------------------------------------------------ detaching */

/* The parent: wait for "ready" or for the child's end. */
static void parent_wait(pid_t child, int fd)
{
    unsigned char b;
    ssize_t n;
    int status;

    do
        n = read(fd, &b, 1);
    while (n < 0 && errno == EINTR);
    if (n == 1)
        _exit(0);
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "mtasts-milter: the daemon did not start (%s)\n", strerror(errno));
            _exit(EX_SOFTWARE);
        }
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        _exit(WEXITSTATUS(status));
    fprintf(stderr, "mtasts-milter: the daemon ended before it was ready (%s %d)\n",
            WIFSIGNALED(status) ? "signal" : "status",
            WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    _exit(EX_SOFTWARE);
}

int mt_detach_begin(void)
{
    int p[2];
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    pid = fork();
    if (pid < 0) {
        (void)close(p[0]);
        (void)close(p[1]);
        return -1;
    }
    if (pid > 0) {
        (void)close(p[1]);
        parent_wait(pid, p[0]);
    }
    (void)close(p[0]);
    ready_fd = p[1];
    if (setsid() < 0 || chdir("/") != 0)
        return -1;
    return 0;
}

void mt_detach_ready(void)
{
    unsigned char b = 'R';
    int null;

    if (ready_fd < 0)
        return;
    sts_log_stderr(false, STS_LOG_STYLE_PLAIN, STS_LOG_ERR);
    null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        (void)dup2(null, STDIN_FILENO);
        (void)dup2(null, STDOUT_FILENO);
        (void)dup2(null, STDERR_FILENO);
        if (null > STDERR_FILENO)
            (void)close(null);
    }
    while (write(ready_fd, &b, 1) < 0 && errno == EINTR)
        ;
    (void)close(ready_fd);
    ready_fd = -1;
}
