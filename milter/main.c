/*
 * main.c - mtasts-milter, the daemon: command line, configuration,
 * sockets, privileges, signals, and the libmilter main loop.
 *
 * Start-up order (CONVENTIONS.md "State and threads"): read the config,
 * create or open the decision log and the pid file as root
 * (base/safefile.h; first, so that a refusal leaves no socket behind),
 * open the sockets, drop to the service user (setgroups, setgid, setuid,
 * then verify root cannot be regained), and only then open the cache
 * store and start threads (engine loop, libmilter).  Until then the
 * process has one thread, which makes the umask and effective-id switches
 * around the sockets' bind() safe.
 *
 * Unix sockets are created the way Postfix's master creates its own: with
 * the effective uid and gid of the service user (seteuid/setegid; the real
 * and saved ids stay root, so root comes back right after) and the final
 * mode from the umask at bind().  The socket file is born with its owner,
 * group and mode: nothing is changed by path afterwards, and whatever the
 * service user may have planted in the socket's directory is met with the
 * service user's rights only.  (A socket's inode is made by bind(), so
 * fchown/fchmod on the descriptor cannot reach it.)
 *
 * Signals: libmilter's own signal thread sigwaits for HUP, TERM and INT
 * and treats SIGHUP like SIGTERM: it stops the milter.  Linux hands a
 * process-directed signal to the thread-group leader whenever the leader
 * does not block it (and has no other signal waiting), else to any thread
 * that waits for it.  The main thread used to sigwait as well, so a HUP
 * that came while it was busy with the previous one went to libmilter,
 * which stopped answering the MTA (reproduced with a burst of HUPs).  Now
 * every other thread starts with these signals blocked, and the main
 * thread never blocks them: a handler writes the signal number to a pipe
 * and the main thread reads the pipe.  It stops cleanly itself (TERM,
 * INT) but hands reloads (HUP) and decision-log reopens (USR1) to the
 * control thread: they look users and groups up, and Debian's nss-systemd
 * blocks SIGHUP for the length of each lookup, which again let libmilter
 * take a HUP (reproduced with DecisionLog set).  The main thread calls
 * nothing that could block a signal.
 */
#include "buildconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#include "base/buf.h"
#include "sts/domain.h"
#include "base/log.h"
#include "base/safefile.h"
#include "callbacks.h"
#include "probes.h"
#include "startup.h"
#include "runtime.h"
#include "metrics.h"
#include "socketmap.h"
#include "base/sockspec.h"
#include "conf/opts.h"

#define MT_DRAIN_SECONDS 10
#define MT_PIDFILE_MODE 0644

static bool foreground;

/* ------------------------------------------------------------ start-up helpers */

static void usage(FILE *fp)
{
    fprintf(fp, "usage: mtasts-milter [-c FILE] [-f] [-p SOCKET] [-u USER[:GROUP]] [-P PIDFILE] "
                "[-n] [-v] [-V]\n"
                "  -c FILE     configuration file (default %s)\n"
                "  -f          stay in the foreground, log to stderr too\n"
                "  -p SOCKET   milter socket: inet:PORT@HOST, inet6:PORT@HOST or unix:PATH\n"
                "  -u USER     run as USER[:GROUP] after opening the sockets\n"
                "  -P PIDFILE  write the process id to PIDFILE\n"
                "  -n          check the configuration, print the effective values, exit\n"
                "  -v          log more: one LogLevel step per -v (notice, info, debug)\n"
                "  -V          print the version and exit\n"
                "See mtasts-milter(8) and mtasts-milter.conf(5).\n",
            STS_DEFAULT_CONFIG);
}

static bool config_given; /* -c: the file must exist */

/* Load the file and apply the command-line overrides.  Without -c a
 * missing default file means the built-in defaults (said on stderr at
 * start).  Non-zero with the reason ("FILE:LINE: ...") in why. */
static int load_config(const char *path, const char *sock, const char *user, const char *pidfile,
                       sts_config *cfg, sts_why *why)
{
    bool skip_file = !config_given && access(path, F_OK) != 0 && errno == ENOENT;

    if (sts_config_defaults(cfg) != STS_OK) {
        sts_why_set(why, "out of memory");
        return EX_OSERR;
    }
    if ((!skip_file && sts_config_load(path, cfg, why) != STS_OK) ||
        (sock != NULL && sts_config_set(cfg, "Socket", sock, why) != STS_OK) ||
        (user != NULL && sts_config_set(cfg, "UserID", user, why) != STS_OK) ||
        (pidfile != NULL && sts_config_set(cfg, "PidFile", pidfile, why) != STS_OK)) {
        sts_config_free(cfg);
        return EX_CONFIG;
    }
    return 0;
}

static unsigned verbose; /* -v given this many times */

/* LogLevel raised one step per -v. */
static void apply_log_level(const sts_config *cfg)
{
    sts_log_level lvl = STS_LOG_INFO;

    (void)sts_log_level_parse(cfg->log_level, strlen(cfg->log_level), &lvl);
    lvl = (unsigned)lvl + verbose > STS_LOG_DEBUG ? STS_LOG_DEBUG
                                                  : (sts_log_level)((unsigned)lvl + verbose);
    sts_log_set_level(lvl);
}

#define MT_MAX_FD_SCAN 1024

static bool is_listener(int fd)
{
    int acc = 0;
    socklen_t len = sizeof(acc);

    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) == 0 && acc != 0;
}

/* libmilter does not show its listening socket; find the one that
 * smfi_opensocket() added and set TCP_NODELAY on it (accepted sockets
 * inherit it on Linux).  Without it, the end-of-message replies (one small
 * write per added header, then CONTINUE) wait ~40 ms for delayed ACKs. */
static void nodelay_new_listeners(const bool *before)
{
    int one = 1;

    for (int fd = 0; fd < MT_MAX_FD_SCAN; fd++)
        if (!before[fd] && is_listener(fd))
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* The file of a "unix:PATH" / "local:PATH" socket spec, else NULL. */
static const char *unix_socket_path(const char *spec)
{
    if (strncmp(spec, "unix:", 5) == 0)
        return spec + 5;
    if (strncmp(spec, "local:", 6) == 0)
        return spec + 6;
    return NULL;
}

/* A start-up error: syslog and, until the daemon is ready, stderr (see
 * startup.c). */
static void startup_error(const char *event, const char *text)
{
    sts_log(STS_LOG_ERR, "-", event, "%s", text);
}

/* libmilter spells unix sockets "unix:" or "local:", inet as we do.  A
 * unix socket gets its mode (SocketMode) from the umask at bind()
 * (libmilter binds inside smfi_opensocket) and, made under the service
 * user's effective uid and the socket group (main), its owner and group:
 * the MTA connects as a member of that group (as with OpenDKIM). */
static int open_milter_socket(const char *spec, unsigned mode)
{
    static bool before[MT_MAX_FD_SCAN];
    mode_t old_mask;
    int rc;

    if (smfi_setconn((char *)spec) != MI_SUCCESS) {
        sts_log(STS_LOG_ERR, "-", "socket", "socket=%s refused by libmilter", spec);
        return -1;
    }
    if (smfi_register(*mt_milter_desc()) != MI_SUCCESS) {
        sts_log(STS_LOG_ERR, "-", "socket", "smfi_register failed");
        return -1;
    }
    for (int fd = 0; fd < MT_MAX_FD_SCAN; fd++)
        before[fd] = is_listener(fd);
    /* true: remove a stale unix socket left by an earlier run (libmilter
     * removes only a socket). */
    old_mask = umask((mode_t)(~mode & 0777));
    rc = smfi_opensocket(true);
    (void)umask(old_mask);
    if (rc != MI_SUCCESS) {
        int err = errno;
        sts_why msg;

        sts_why_set(&msg, "socket=%s cannot be opened: %s%s", spec, strerror(err),
                    err == EACCES && geteuid() != 0 ? " (its directory must be writable by UserID)"
                                                    : "");
        startup_error("socket", msg.text);
        return -1;
    }
    mt_milter_set_local_socket(unix_socket_path(spec) != NULL);
    if (strncmp(spec, "inet", 4) == 0)
        nodelay_new_listeners(before);
    return 0;
}

/* Every socketmap connection is a file descriptor (SocketmapMaxConnections,
 * and as many again on their way out), beside the milter's and the
 * engine's: the common soft limit of 1024 would refuse connections long
 * before that.  Raise the
 * soft limit to the hard one, as root before the drop. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        sts_log(STS_LOG_WARNING, "-", "startup", "cannot raise the open file limit: %s",
                strerror(errno));
}

/* Opened before detaching (a refusal reaches the terminal and the exit
 * status), written after (the pid is the daemon's). */
static int open_pidfile(const char *path, const sts_safefile_owner *owner)
{
    sts_why why = { "" }, msg;
    int fd;

    if (sts_safefile_open(path, STS_SAFEFILE_REPLACE, MT_PIDFILE_MODE, owner, &fd, &why) !=
        STS_OK) {
        sts_why_set(&msg, "cannot open pid file: %s", why.text);
        startup_error("pidfile", msg.text);
        return -1;
    }
    return fd;
}

static int write_pidfile(int fd, const char *path)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    bool ok = n > 0 && write(fd, buf, (size_t)n) == n;

    if (close(fd) != 0 || !ok) {
        sts_log(STS_LOG_ERR, "-", "pidfile", "path=%s cannot write: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* libmilter's listener holds a lock while it waits for a connection, so
 * smfi_stop() blocks until the next one arrives or the wait times out
 * (seconds).  Calling it from a helper thread and then connecting to our
 * own socket makes the stop immediate. */
static void *stop_thread(void *arg)
{
    (void)arg;
    (void)smfi_stop();
    return NULL;
}

static void poke_listener(const char *spec)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    sts_why why;
    int fd;

    if (sts_sockspec_parse(spec, &ss, &sl, &why) != STS_OK)
        return;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (connect(fd, (struct sockaddr *)&ss, sl) == 0) {
        /* Reset rather than close: no TIME_WAIT left holding a port. */
        struct linger lg = { 1, 0 };

        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    (void)close(fd);
}

/* The signal pipe: written by the handler (async-signal-safe write of one
 * byte; non-blocking, so a full pipe drops the byte rather than the
 * handler hanging: the pipe then already holds signals to act on), read by
 * the main thread.  The milter thread writes MT_MILTER_ENDED there when
 * smfi_main returns. */
static int sig_pipe[2] = { -1, -1 };
#define MT_MILTER_ENDED 255

static void *milter_thread(void *arg)
{
    int *rc = arg;
    unsigned char b = MT_MILTER_ENDED;

    *rc = smfi_main();
    /* The main thread may be waiting on the pipe: one byte tells it, also
     * when libmilter stopped on its own (a signal its thread took). */
    if (write(sig_pipe[1], &b, 1) < 0) {
        /* full: it holds bytes the main thread reads first anyway */
    }
    return NULL;
}

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;

    if (write(sig_pipe[1], &b, 1) < 0) {
        /* nothing to do in a handler: see above */
    }
    errno = saved;
}

/* Route HUP, TERM, INT and USR1 to on_signal; false (errno set) on failure. */
static bool signal_pipe_open(const sigset_t *sigs)
{
    struct sigaction sa;

    if (pipe2(sig_pipe, O_CLOEXEC) != 0 ||
        fcntl(sig_pipe[1], F_SETFL, fcntl(sig_pipe[1], F_GETFL) | O_NONBLOCK) != 0)
        return false;
    /* No signal is blocked while the handler runs (empty mask, SA_NODEFER):
     * a signal blocked in the main thread even for a moment would go to
     * libmilter's thread instead.  The handler only writes, so nesting is
     * harmless. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(sigs, sig) == 1 && sigaction(sig, &sa, NULL) != 0)
            return false;
    return true;
}

/* The next signal from the pipe (blocks); 0 on a read error. */
static int signal_next(void)
{
    unsigned char b;

    for (;;) {
        ssize_t n = read(sig_pipe[0], &b, 1);

        if (n == 1)
            return b;
        if (n < 0 && errno == EINTR)
            continue;
        return 0;
    }
}

/* What the control thread needs to reload. */
typedef struct control_args {
    const char *path, *sock, *user, *pidfile;
} control_args;

static void reload(const char *path, const char *sock, const char *user, const char *pidfile);

/* Reloads and reopens, in the order the main thread passes them on
 * through control_pipe; a batch of signals that came together is done
 * once (a HUP also reopens the decision log).  Ends when the pipe is
 * closed. */
static int control_pipe[2] = { -1, -1 };

static void *control_thread(void *arg)
{
    const control_args *a = arg;
    unsigned char buf[256];
    sts_why why = { "" };

    for (;;) {
        ssize_t n = read(control_pipe[0], buf, sizeof(buf));
        bool hup, usr1;

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        hup = memchr(buf, SIGHUP, (size_t)n) != NULL;
        usr1 = memchr(buf, SIGUSR1, (size_t)n) != NULL;
        if (hup)
            reload(a->path, a->sock, a->user, a->pidfile);
        if ((hup || usr1) && mt_dlog != NULL) {
            if (sts_dlog_reopen(mt_dlog, &why) != STS_OK)
                sts_log(STS_LOG_ERR, "-", "decision-log", "%s", why.text);
            else if (!hup)
                sts_log(STS_LOG_INFO, "-", "decision-log", "reopened");
        }
    }
    return NULL;
}

/* SIGHUP: build a new runtime from the file; settings that the running
 * engine and sockets were made with need a restart, and say so. */
static void reload(const char *path, const char *sock, const char *user, const char *pidfile)
{
    sts_config cfg;
    mt_runtime *rt, *cur;
    sts_why why = { "" };

    if (load_config(path, sock, user, pidfile, &cfg, &why) != 0) {
        sts_log(STS_LOG_ERR, "-", "reload-failed",
                "config=%s reason=\"%s\" kept the running configuration", path, why.text);
        return;
    }
    rt = mt_runtime_new(&cfg, &why);
    if (rt == NULL) {
        sts_log(STS_LOG_ERR, "-", "reload-failed", "config=%s reason=\"%s\"", path, why.text);
        return;
    }
    cur = mt_runtime_acquire();
#define CHANGED(f) ((cur->cfg.f == NULL) != (rt->cfg.f == NULL) || \
                    (cur->cfg.f != NULL && strcmp(cur->cfg.f, rt->cfg.f) != 0))
#define NCHANGED(f) (cur->cfg.f != rt->cfg.f)
    /* Only the milter's own settings (envelope budget, fail action, header
     * names, SplitMixed, EarlyTempfail, LocalDomains), the CAs of CAFile and the socketmap's
     * profiles, timeouts and per-peer limit change on reload; the rest was
     * used to build sockets, the engine, the prober, the connection table
     * and the logs: each such key that changed is named. */
    {
        const struct {
            bool changed;
            const char *key;
        } fixed[] = {
            { CHANGED(socket), "Socket" },
            { CHANGED(socketmap_socket), "SocketmapSocket" },
            { CHANGED(metrics_socket), "MetricsSocket" },
            { CHANGED(socket_group), "SocketGroup" },
            { NCHANGED(socket_mode), "SocketMode" },
            { CHANGED(user_id), "UserID" },
            { CHANGED(pid_file), "PidFile" },
            { CHANGED(decision_log), "DecisionLog" },
            { CHANGED(syslog_facility), "SyslogFacility" },
            { CHANGED(cache_store), "CacheStore" },
            { NCHANGED(cache_size), "CacheSize" },
            { NCHANGED(cache_store_max_entries), "CacheStoreMaxEntries" },
            { CHANGED(dns_servers), "DNSServers" },
            { NCHANGED(dns_timeout_ms), "DNSTimeout" },
            { NCHANGED(dns_tries), "DNSTries" },
            { NCHANGED(https_timeout_ms), "HTTPSTimeout" },
            { NCHANGED(https_connect_timeout_ms), "HTTPSConnectTimeout" },
            { NCHANGED(policy_port), "PolicyPort" },
            { NCHANGED(allow_internal_addresses), "AllowInternalAddresses" },
            { NCHANGED(negative_ttl), "NegativeCacheTime" },
            { NCHANGED(recheck_interval), "RecheckInterval" },
            { NCHANGED(retry_interval), "RetryInterval" },
            { NCHANGED(refresh_idle), "RefreshIdle" },
            { NCHANGED(max_discoveries), "MaxDiscoveries" },
            { NCHANGED(discovery_queue), "DiscoveryQueue" },
            { NCHANGED(max_policy_fetches), "MaxPolicyFetches" },
            { NCHANGED(policy_fetch_slot_ms), "PolicyFetchSlotTime" },
            { NCHANGED(socketmap_max_connections), "SocketmapMaxConnections" },
            { NCHANGED(probe_testing_mx), "ProbeTestingMX" },
            { NCHANGED(probe_enforce_mx), "ProbeEnforceMX" },
            { NCHANGED(probe_interval), "ProbeInterval" },
            { NCHANGED(probe_concurrency), "ProbeConcurrency" },
            { NCHANGED(probe_queue), "ProbeQueue" },
            { NCHANGED(probe_timeout_ms), "ProbeTimeout" },
            { CHANGED(probe_helo_name), "ProbeHeloName" },
            { NCHANGED(probe_port), "ProbePort" },
        };
        char keys[768];
        size_t len = 0;

        keys[0] = '\0';
        for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
            int k;

            if (!fixed[i].changed || len >= sizeof(keys) - 1)
                continue;
            k = snprintf(keys + len, sizeof(keys) - len, "%s%s", len > 0 ? "," : "",
                         fixed[i].key);
            len = k < 0 ? len : len + (size_t)k < sizeof(keys) ? len + (size_t)k
                                                                 : sizeof(keys) - 1;
        }
        if (len > 0)
            sts_log(STS_LOG_WARNING, "-", "reload",
                    "config=%s restart_needed=%s changes to these keys take effect at the "
                    "next restart", path, keys);
    }
#undef NCHANGED
#undef CHANGED
    mt_runtime_release(cur);
    /* The CAs are read again on every reload: CAFile may name another
     * file, or the same file (or the system store) may have new contents. */
    if (sts_engine_set_ca(mt_engine, rt->cfg.ca_file, &why) != STS_OK)
        sts_log(STS_LOG_ERR, "-", "reload-failed",
                "config=%s CAFile=%s reason=\"%s\" policy fetches keep the CAs read before",
                path, rt->cfg.ca_file != NULL ? rt->cfg.ca_file : "(system store)", why.text);
    sts_engine_set_dane(mt_engine, sts_smap_profiles_want_dane(rt->profiles));
    apply_log_level(&rt->cfg);
    mt_runtime_install(rt);
    sts_log(STS_LOG_INFO, "-", "reload", "config=%s reloaded", path);
}

int main(int argc, char **argv)
{
    const char *path = STS_DEFAULT_CONFIG, *sock = NULL, *user = NULL, *pidfile = NULL;
    bool check = false;
    sts_config cfg;
    mt_runtime *rt;
    sts_store *store = NULL;
    sts_engine_opts eopts;
    sts_why why = { "" };
    pthread_t mthread, cthread;
    control_args cargs;
    mt_socketmap *smap = NULL;
    mt_metrics *metrics = NULL;
    mt_user user_ids;
    char listen_spec[1024], pid_path[4096] = "";
    sigset_t sigs;
    int ch, rc, milter_rc = 0, pid_fd = -1;
    bool milter_lost = false; /* the milter stopped without being asked */
    bool journal;

    while ((ch = getopt(argc, argv, "c:fp:u:P:nvVh")) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            config_given = true;
            break;
        case 'f':
            foreground = true;
            break;
        case 'p':
            sock = optarg;
            break;
        case 'u':
            user = optarg;
            break;
        case 'P':
            pidfile = optarg;
            break;
        case 'n':
            check = true;
            break;
        case 'v':
            verbose++;
            break;
        case 'V':
            printf("mtasts-milter %s\n", PACKAGE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return EX_USAGE;
    }
    if ((rc = load_config(path, sock, user, pidfile, &cfg, &why)) != 0) {
        fprintf(stderr, "mtasts-milter: %s\n", why.text);
        return rc;
    }
    if (check && cfg.site_tls_policy_file != NULL) {
        sts_site_table *site = NULL;

        /* The file is read as it will be at start and on SIGHUP. */
        if (sts_site_load(cfg.site_tls_policy_file, &site, &why) != STS_OK) {
            fprintf(stderr, "mtasts-milter: %s: SiteTLSPolicyFile: %s\n", path, why.text);
            sts_config_free(&cfg);
            return EX_CONFIG;
        }
        sts_site_free(site);
    }
    if (!config_given && access(path, F_OK) != 0 && errno == ENOENT)
        fprintf(stderr, "mtasts-milter: %s does not exist: using the built-in defaults\n", path);
    if (check) {
        bool ok = mt_startup_check(&cfg);

        if (ok) {
            printf("# %s: configuration OK; effective values:\n", path);
            sts_config_print(&cfg, stdout);
        } else {
            fprintf(stderr, "mtasts-milter: %s: configuration NOT usable\n", path);
        }
        sts_config_free(&cfg);
        return ok ? 0 : EX_CONFIG;
    }
    /* Under systemd, stderr is the journal ($JOURNAL_STREAM): lines go
     * there alone, with sd-daemon priority prefixes (syslog as well would
     * log each line twice).  Else syslog, and stderr with -f; without -f
     * stderr shows warnings and errors until the daemon is ready. */
    journal = foreground && sts_log_journal_stream(STDERR_FILENO);
    if (sts_log_open("mtasts-milter", journal ? NULL : cfg.syslog_facility, true) != STS_OK) {
        fprintf(stderr, "mtasts-milter: bad SyslogFacility %s\n", cfg.syslog_facility);
        sts_config_free(&cfg);
        return EX_CONFIG;
    }
    sts_log_stderr(true, journal ? STS_LOG_STYLE_JOURNAL : STS_LOG_STYLE_PLAIN,
                   foreground || journal ? STS_LOG_DEBUG : STS_LOG_WARNING);
    apply_log_level(&cfg);
    rt = mt_runtime_new(&cfg, &why);
    if (rt == NULL) {
        sts_log(STS_LOG_ERR, "-", "config", "config=%s reason=\"%s\"", path, why.text);
        return EX_CONFIG;
    }
    mt_runtime_install(rt);

    raise_fd_limit();
    if (mt_user_resolve(rt->cfg.user_id, rt->cfg.socket_group, &user_ids) != 0)
        return EX_NOPERM;
    if (rt->cfg.decision_log != NULL &&
        sts_dlog_open(rt->cfg.decision_log, &user_ids.id, &mt_dlog, &why) != STS_OK) {
        startup_error("decision-log", why.text);
        return EX_CANTCREAT;
    }
    if (rt->cfg.pid_file != NULL) {
        /* Absolute: removed at exit, after the detached daemon's chdir. */
        if (!sts_safefile_abspath(rt->cfg.pid_file, pid_path, sizeof(pid_path)))
            (void)snprintf(pid_path, sizeof(pid_path), "%s", rt->cfg.pid_file);
        if ((pid_fd = open_pidfile(pid_path, &user_ids.id)) < 0)
            return EX_CANTCREAT;
    }
    /* Our handlers, and these signals blocked, before any socket answers:
     * a reload asked for as soon as the sockets listen waits in the pipe
     * (an inherited SIG_IGN would have dropped it, the default action
     * killed the daemon).  Threads started later inherit the mask, so
     * only the main thread takes them (see the comment at the top). */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (!signal_pipe_open(&sigs)) {
        sts_log(STS_LOG_ERR, "-", "startup", "cannot set up signal handling: %s",
                strerror(errno));
        return EX_OSERR;
    }
    if (mt_user_for_sockets(&user_ids) != 0)
        return EX_NOPERM;
    if (open_milter_socket(rt->cfg.socket, rt->cfg.socket_mode) != 0)
        return EX_UNAVAILABLE;
    /* The socket libmilter listens on, whatever a reload says later. */
    (void)snprintf(listen_spec, sizeof(listen_spec), "%s", rt->cfg.socket);
    if (mt_socketmap_open(rt->cfg.socketmap_socket, rt->cfg.socket_mode, &smap, &why) !=
        STS_OK) {
        startup_error("socket", why.text);
        return EX_UNAVAILABLE;
    }
    if (rt->cfg.metrics_socket != NULL &&
        mt_metrics_open(rt->cfg.metrics_socket, &metrics, &why) != STS_OK) {
        startup_error("socket", why.text);
        return EX_UNAVAILABLE;
    }
    if (mt_user_root(&user_ids) != 0)
        return EX_NOPERM;
    if (!foreground && mt_detach_begin() != 0) {
        sts_log(STS_LOG_ERR, "-", "daemon", "cannot detach: %s", strerror(errno));
        return EX_OSERR;
    }
    if (pid_fd >= 0 && write_pidfile(pid_fd, pid_path) != 0)
        return EX_CANTCREAT;
    if (mt_user_drop(&user_ids) != 0)
        return EX_NOPERM;


    if (sts_engine_open_store(rt->cfg.cache_store, &store) != STS_OK) {
        sts_log(STS_LOG_ERR, "-", "startup", "out of memory opening the cache store");
        return EX_OSERR;
    }
    sts_opts_engine(&rt->cfg, &eopts);
    if (sts_engine_new(&eopts, store, &mt_engine, &why) != STS_OK ||
        (sts_engine_set_dane(mt_engine, sts_smap_profiles_want_dane(rt->profiles)),
         sts_engine_start(mt_engine, &why)) != STS_OK) {
        sts_log(STS_LOG_ERR, "-", "startup", "engine: %s", why.text);
        return EX_UNAVAILABLE;
    }
    if (mt_probes_start(&rt->cfg, &why) != STS_OK) {
        sts_log(STS_LOG_ERR, "-", "startup", "probes: %s", why.text);
        return EX_CONFIG;
    }
    if (mt_socketmap_start(smap, mt_engine, &why) != STS_OK ||
        (metrics != NULL && mt_metrics_start(metrics, &why) != STS_OK)) {
        sts_log(STS_LOG_ERR, "-", "startup", "%s", why.text);
        return EX_OSERR;
    }
    cargs = (control_args){ path, sock, user, pidfile };
    if (pipe2(control_pipe, O_CLOEXEC) != 0 ||
        pthread_create(&cthread, NULL, control_thread, &cargs) != 0) {
        sts_log(STS_LOG_ERR, "-", "startup", "cannot start the control thread");
        return EX_OSERR;
    }
    /* A signal that came during the start (a reload asked for as soon as
     * the sockets answered) is pending: hand it to our handler now, before
     * libmilter's signal thread exists, which would sigwait() it away. */
    pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    if (pthread_create(&mthread, NULL, milter_thread, &milter_rc) != 0) {
        sts_log(STS_LOG_ERR, "-", "startup", "cannot start the milter thread");
        return EX_OSERR;
    }
    sts_log(STS_LOG_NOTICE, "-", "started", "version=%s socket=%s socketmap=%s config=%s",
            PACKAGE_VERSION, rt->cfg.socket, rt->cfg.socketmap_socket, path);
    mt_detach_ready();

    /* Every thread is started: from now on the main thread takes the
     * signals, including any that came while they were blocked. */
    pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
    for (;;) {
        int sig = signal_next();

        if (sig == 0) {
            sts_log(STS_LOG_ERR, "-", "signal-pipe", "read failed: %s: stopping",
                    strerror(errno));
            break;
        }
        if (sig == MT_MILTER_ENDED) {
            /* Not asked for: libmilter's signal thread took a signal the
             * main thread could not (two signals within microseconds), or
             * its listener failed.  Stop visibly rather than run on without
             * answering the MTA; a supervisor restarts the daemon. */
            sts_log(STS_LOG_ERR, "-", "milter-stopped",
                    "the milter stopped on its own (libmilter status %d): stopping", milter_rc);
            milter_lost = true;
            break;
        }
        if (sig == SIGHUP || sig == SIGUSR1) {
            unsigned char b = (unsigned char)sig;

            /* A full pipe blocks here, in write(2), with no signal blocked. */
            while (write(control_pipe[1], &b, 1) < 0 && errno == EINTR)
                ;
        } else {
            sts_log(STS_LOG_NOTICE, "-", "stopping", "signal=%d", sig);
            break;
        }
    }
    /* A reload in progress finishes first. */
    (void)close(control_pipe[1]);
    pthread_join(cthread, NULL);
    {
        pthread_t st;

        if (pthread_create(&st, NULL, stop_thread, NULL) == 0) {
            poke_listener(listen_spec);
            pthread_join(st, NULL);
        } else {
            (void)smfi_stop();
        }
    }
    /* Let callbacks in flight finish their lookups, within a bound. */
    for (int i = 0; i < MT_DRAIN_SECONDS * 10 && mt_active_connections() > 0; i++) {
        struct timespec ts = { 0, 100000000L };

        nanosleep(&ts, NULL);
    }
    pthread_join(mthread, NULL);
    mt_metrics_close(metrics);
    mt_socketmap_close(smap);
    if (mt_active_connections() > 0) {
        /* libmilter does not join its session threads: one still inside a
         * callback would use the engine after a free.  Leave it all to the
         * exit. */
        sts_log(STS_LOG_WARNING, "-", "stopped",
                "active_connections=%u after %d s: exiting without cleanup",
                mt_active_connections(), MT_DRAIN_SECONDS);
        if (pid_path[0] != '\0')
            (void)unlink(pid_path);
        _exit(0);
    }
    mt_probes_stop();
    sts_engine_free(mt_engine);
    sts_dlog_close(mt_dlog);
    if (pid_path[0] != '\0')
        (void)unlink(pid_path); /* the file written at start, whatever a reload said */
    sts_log(STS_LOG_NOTICE, "-", "stopped", "active_connections=%u", mt_active_connections());
    return milter_rc == MI_SUCCESS && !milter_lost ? 0 : EX_SOFTWARE;
}
