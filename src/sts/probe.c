/*
 * probe.c - trying an MX host as an MTA-STS enforce delivery would (see
 * probe.h): RFC 5321 (greeting, EHLO, QUIT), RFC 3207 (STARTTLS), RFC 8461
 * 4.1 and 5 (PKIX chain, name of the MX host with RFC 6125 wildcard rules),
 * result types of RFC 8460 4.3.
 *
 * The handshake verifies with a callback that records what went wrong
 * and lets it finish, so that an expired certificate, an untrusted chain
 * and a wrong name are told apart (OpenSSL stops at the first error
 * otherwise).  The name is checked after the handshake with
 * X509_check_host and no partial wildcards.  A STARTTLS reply followed by
 * more bytes before the handshake is refused (the plaintext injection of
 * CVE-2011-0411): those bytes would be read as if they came over TLS.
 */
#include "sts/probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/clock.h"
#include "base/buf.h"
#include "sts/domain.h"
#include "sts/smtpreply.h"
#include "base/sigpipe.h"

#define PROBE_RBUF 4096 /* bytes read at once; a reply line is capped in smtpreply */

static const struct {
    sts_probe_result r;
    const char *name;
} result_names[] = {
    { STS_PROBE_SUCCESS, "success" },
    { STS_PROBE_STARTTLS_NOT_SUPPORTED, "starttls-not-supported" },
    { STS_PROBE_CERT_HOST_MISMATCH, "certificate-host-mismatch" },
    { STS_PROBE_CERT_EXPIRED, "certificate-expired" },
    { STS_PROBE_CERT_NOT_TRUSTED, "certificate-not-trusted" },
    { STS_PROBE_VALIDATION_FAILURE, "validation-failure" },
    { STS_PROBE_UNREACHABLE, "unreachable" },
    { STS_PROBE_REFUSED, "refused" },
};

const char *sts_probe_result_name(sts_probe_result r)
{
    for (size_t i = 0; i < sizeof(result_names) / sizeof(result_names[0]); i++)
        if (result_names[i].r == r)
            return result_names[i].name;
    return "unknown";
}

bool sts_probe_result_from_name(const char *name, size_t len, sts_probe_result *out)
{
    for (size_t i = 0; i < sizeof(result_names) / sizeof(result_names[0]); i++)
        if (strlen(result_names[i].name) == len && memcmp(result_names[i].name, name, len) == 0) {
            *out = result_names[i].r;
            return true;
        }
    return false;
}

bool sts_probe_result_is_failure(sts_probe_result r)
{
    switch (r) {
    case STS_PROBE_STARTTLS_NOT_SUPPORTED:
    case STS_PROBE_CERT_HOST_MISMATCH:
    case STS_PROBE_CERT_EXPIRED:
    case STS_PROBE_CERT_NOT_TRUSTED:
    case STS_PROBE_VALIDATION_FAILURE:
        return true;
    default:
        return false;
    }
}

/* An untrusted chain says the most (nothing about the certificate can be
 * believed); expiry of a trusted chain next; the name last, as RFC 8461
 * 4.1 checks it of a certificate that is otherwise valid. */
sts_probe_result sts_probe_cert_verdict(bool chain_errors, bool expired, bool name_ok)
{
    if (chain_errors)
        return STS_PROBE_CERT_NOT_TRUSTED;
    if (expired)
        return STS_PROBE_CERT_EXPIRED;
    if (!name_ok)
        return STS_PROBE_CERT_HOST_MISMATCH;
    return STS_PROBE_SUCCESS;
}

/* ------------------------------------------------------------ waiting */

typedef struct conn {
    int fd;
    SSL *ssl;
    int64_t end;          /* the whole probe's deadline */
    unsigned io_ms;       /* each wait */
    char rbuf[PROBE_RBUF];
    size_t rlen;          /* bytes read and not yet parsed */
    bool timed_out;       /* a deadline passed, or the probe was cancelled */
    int cancel_fd;        /* -1: none */
} conn;

/* Wait for events on c->fd until the next deadline; false on timeout. */
static bool wait_fd(conn *c, short events)
{
    int64_t dl = sts_mono_ms() + c->io_ms;

    if (dl > c->end)
        dl = c->end;
    for (;;) {
        struct pollfd pfd[2] = { { .fd = c->fd, .events = events, .revents = 0 },
                                 { .fd = c->cancel_fd, .events = POLLIN, .revents = 0 } };
        int64_t left = dl - sts_mono_ms();
        int n;

        if (left <= 0) {
            c->timed_out = true;
            return false;
        }
        n = poll(pfd, c->cancel_fd >= 0 ? 2 : 1, (int)left);
        if (n > 0 && c->cancel_fd >= 0 && pfd[1].revents != 0) {
            c->timed_out = true;
            return false;
        }
        if (n > 0)
            return true; /* readable, writable, or an error the next call reports */
        if (n < 0 && errno != EINTR)
            return false;
    }
}

/* Read some bytes (plain or TLS) into rbuf; false on EOF, error, timeout. */
static bool fill(conn *c, char *why, size_t whysz)
{
    if (c->rlen >= sizeof(c->rbuf)) {
        (void)snprintf(why, whysz, "read buffer full");
        return false;
    }
    for (;;) {
        if (c->ssl == NULL) {
            ssize_t n = recv(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, 0);

            if (n > 0) {
                c->rlen += (size_t)n;
                return true;
            }
            if (n == 0) {
                (void)snprintf(why, whysz, "connection closed by the server");
                return false;
            }
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                (void)snprintf(why, whysz, "read: %s", strerror(errno));
                return false;
            }
            if (!wait_fd(c, POLLIN)) {
                (void)snprintf(why, whysz, "timed out waiting for the server");
                return false;
            }
        } else {
            int n = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(sizeof(c->rbuf) - c->rlen));
            int e;

            if (n > 0) {
                c->rlen += (size_t)n;
                return true;
            }
            e = SSL_get_error(c->ssl, n);
            if ((e == SSL_ERROR_WANT_READ && wait_fd(c, POLLIN)) ||
                (e == SSL_ERROR_WANT_WRITE && wait_fd(c, POLLOUT)))
                continue;
            (void)snprintf(why, whysz, "%s", c->timed_out ? "timed out waiting for the server"
                                                          : "TLS read failed");
            return false;
        }
    }
}

static bool send_all(conn *c, const char *p, size_t n, char *why, size_t whysz)
{
    while (n > 0) {
        if (c->ssl == NULL) {
            ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);

            if (w > 0) {
                p += w;
                n -= (size_t)w;
                continue;
            }
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(c, POLLOUT))
                continue;
            (void)snprintf(why, whysz, "write: %s", w < 0 ? strerror(errno) : "nothing written");
            return false;
        } else {
            int w = SSL_write(c->ssl, p, (int)n);
            int e;

            if (w > 0) {
                p += w;
                n -= (size_t)w;
                continue;
            }
            e = SSL_get_error(c->ssl, w);
            if ((e == SSL_ERROR_WANT_READ && wait_fd(c, POLLIN)) ||
                (e == SSL_ERROR_WANT_WRITE && wait_fd(c, POLLOUT)))
                continue;
            (void)snprintf(why, whysz, "TLS write failed");
            return false;
        }
    }
    return true;
}

/* Read one complete reply; bytes after it stay in rbuf. */
static bool read_reply(conn *c, sts_smtp_reply *r, char *why, size_t whysz)
{
    sts_smtp_reply_init(r);
    for (;;) {
        size_t used = 0;
        sts_smtp_rc rc = sts_smtp_reply_feed(r, c->rbuf, c->rlen, &used);

        memmove(c->rbuf, c->rbuf + used, c->rlen - used);
        c->rlen -= used;
        if (rc == STS_SMTP_DONE)
            return true;
        if (rc == STS_SMTP_BAD) {
            (void)snprintf(why, whysz, "bad reply: %s", r->why);
            return false;
        }
        if (!fill(c, why, whysz))
            return false;
    }
}

/* ------------------------------------------------------------ connect */

static int connect_addr(conn *c, const uint8_t a[16], unsigned port, unsigned timeout_ms,
                        char *why, size_t whysz)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int fd, err = 0;
    socklen_t el = sizeof(err);
    unsigned save_io = c->io_ms;

    memset(&ss, 0, sizeof(ss));
    if (sts_ipaddr_is_v4(a)) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        memcpy(&s4->sin_addr, a + 12, 4);
        sl = sizeof(*s4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        memcpy(&s6->sin6_addr, a, 16);
        sl = sizeof(*s6);
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        (void)snprintf(why, whysz, "socket: %s", strerror(errno));
        return -1;
    }
    c->fd = fd;
    if (connect(fd, (struct sockaddr *)&ss, sl) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        (void)snprintf(why, whysz, "connect: %s", strerror(errno));
        goto fail;
    }
    c->io_ms = timeout_ms;
    if (!wait_fd(c, POLLOUT)) {
        c->io_ms = save_io;
        (void)snprintf(why, whysz, "connect timed out");
        goto fail;
    }
    c->io_ms = save_io;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
        (void)snprintf(why, whysz, "connect: %s", strerror(err != 0 ? err : errno));
        goto fail;
    }
    return fd;
fail:
    (void)close(fd);
    c->fd = -1;
    return -1;
}

/* ------------------------------------------------------------ TLS */

typedef struct vstate {
    bool chain_errors, expired;
    int first_error;
} vstate;

static int vstate_idx = -1;
static pthread_once_t vstate_once = PTHREAD_ONCE_INIT;

static void vstate_init(void)
{
    vstate_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* Record every verification error and go on, so that the handshake ends
 * and the kinds of failure can be told apart. */
static int verify_cb(int ok, X509_STORE_CTX *x)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    vstate *v = ssl != NULL ? SSL_get_ex_data(ssl, vstate_idx) : NULL;
    int e;

    if (ok || v == NULL)
        return 1;
    e = X509_STORE_CTX_get_error(x);
    if (e == X509_V_ERR_CERT_HAS_EXPIRED || e == X509_V_ERR_CERT_NOT_YET_VALID) {
        v->expired = true;
    } else {
        v->chain_errors = true;
        if (v->first_error == 0)
            v->first_error = e;
    }
    return 1;
}

static void ssl_errors(char *buf, size_t sz)
{
    unsigned long e = ERR_get_error();

    if (e == 0)
        (void)snprintf(buf, sz, "no OpenSSL error");
    else
        ERR_error_string_n(e, buf, sz);
    ERR_clear_error();
}

static SSL_CTX *make_ctx(const sts_probe_opts *o, char *why, size_t whysz)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char err[160];

    if (ctx == NULL) {
        ssl_errors(err, sizeof(err));
        (void)snprintf(why, whysz, "TLS context: %s", err);
        return NULL;
    }
    if (o->ca_file != NULL && o->ca_file[0] != '\0'
            ? SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1
            : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        ssl_errors(err, sizeof(err));
        (void)snprintf(why, whysz, "CA store %s: %s",
                       o->ca_file != NULL && o->ca_file[0] != '\0' ? o->ca_file : "(system)",
                       err);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
    return ctx;
}

/* Handshake on c->fd and the certificate verdict. */
static sts_probe_result tls_check(conn *c, SSL_CTX *ctx, const char *mx, char *why, size_t whysz)
{
    char name[STS_DOMAIN_MAX + 1];
    size_t nlen = strlen(mx);
    vstate v = { false, false, 0 };
    X509 *cert;
    bool name_ok;
    sts_probe_result r;
    char err[160];

    if (nlen > 0 && mx[nlen - 1] == '.')
        nlen--;
    (void)snprintf(name, sizeof(name), "%.*s", (int)nlen, mx);
    c->ssl = SSL_new(ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 ||
        SSL_set_tlsext_host_name(c->ssl, name) != 1 ||
        SSL_set_ex_data(c->ssl, vstate_idx, &v) != 1) {
        ssl_errors(err, sizeof(err));
        (void)snprintf(why, whysz, "TLS setup: %s", err);
        return STS_PROBE_VALIDATION_FAILURE;
    }
    for (;;) {
        int rc = SSL_connect(c->ssl);
        int e;

        if (rc == 1)
            break;
        e = SSL_get_error(c->ssl, rc);
        if ((e == SSL_ERROR_WANT_READ && wait_fd(c, POLLIN)) ||
            (e == SSL_ERROR_WANT_WRITE && wait_fd(c, POLLOUT)))
            continue;
        if (c->timed_out) {
            (void)snprintf(why, whysz, "TLS handshake timed out");
            return STS_PROBE_UNREACHABLE;
        }
        ssl_errors(err, sizeof(err));
        (void)snprintf(why, whysz, "TLS handshake failed: %s", err);
        SSL_set_ex_data(c->ssl, vstate_idx, NULL);
        return STS_PROBE_VALIDATION_FAILURE;
    }
    SSL_set_ex_data(c->ssl, vstate_idx, NULL);
    cert = SSL_get1_peer_certificate(c->ssl);
    if (cert == NULL) {
        (void)snprintf(why, whysz, "the server sent no certificate");
        return STS_PROBE_CERT_NOT_TRUSTED;
    }
    name_ok = X509_check_host(cert, name, strlen(name), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
                              NULL) == 1;
    X509_free(cert);
    r = sts_probe_cert_verdict(v.chain_errors, v.expired, name_ok);
    switch (r) {
    case STS_PROBE_CERT_NOT_TRUSTED:
        (void)snprintf(why, whysz, "certificate not trusted: %s",
                       X509_verify_cert_error_string(v.first_error));
        break;
    case STS_PROBE_CERT_EXPIRED:
        (void)snprintf(why, whysz, "certificate expired or not yet valid");
        break;
    case STS_PROBE_CERT_HOST_MISMATCH:
        (void)snprintf(why, whysz, "certificate not valid for %s", name);
        break;
    default:
        (void)snprintf(why, whysz, "STARTTLS with a valid certificate for %s (%s)", name,
                       SSL_get_version(c->ssl));
        break;
    }
    return r;
}

/* ------------------------------------------------------------ dialogue */

static void quote_text(char *dst, size_t dsz, const sts_smtp_reply *r)
{
    sts_quote(dst, dsz, r->text, strlen(r->text));
}

/* After a 220 greeting: the verdict of this connection. */
static sts_probe_result dialogue(conn *c, SSL_CTX *ctx, const char *mx, const char *helo,
                                 char *why, size_t whysz)
{
    sts_smtp_reply r;
    char cmd[STS_DOMAIN_MAX + 16], text[STS_SMTP_TEXT_MAX + 8];
    sts_probe_result v;

    (void)snprintf(cmd, sizeof(cmd), "EHLO %s\r\n", helo);
    if (!send_all(c, cmd, strlen(cmd), why, whysz) || !read_reply(c, &r, why, whysz))
        return STS_PROBE_UNREACHABLE;
    if (sts_smtp_reply_class(&r) != 2) {
        quote_text(text, sizeof(text), &r);
        (void)snprintf(why, whysz, "EHLO refused (%u %s): no STARTTLS without EHLO", r.code,
                       text);
        return STS_PROBE_STARTTLS_NOT_SUPPORTED;
    }
    if (!r.starttls) {
        (void)snprintf(why, whysz, "STARTTLS not offered in the EHLO reply");
        return STS_PROBE_STARTTLS_NOT_SUPPORTED;
    }
    if (c->rlen != 0) {
        (void)snprintf(why, whysz, "the server sent data before being asked (after EHLO)");
        return STS_PROBE_UNREACHABLE;
    }
    if (!send_all(c, "STARTTLS\r\n", 10, why, whysz) || !read_reply(c, &r, why, whysz))
        return STS_PROBE_UNREACHABLE;
    if (r.code != 220) {
        quote_text(text, sizeof(text), &r);
        (void)snprintf(why, whysz, "STARTTLS refused (%u %s)", r.code, text);
        return STS_PROBE_STARTTLS_NOT_SUPPORTED;
    }
    if (c->rlen != 0) {
        (void)snprintf(why, whysz, "data after the STARTTLS reply, before the handshake");
        return STS_PROBE_VALIDATION_FAILURE;
    }
    v = tls_check(c, ctx, mx, why, whysz);
    if (c->ssl != NULL && v != STS_PROBE_VALIDATION_FAILURE && v != STS_PROBE_UNREACHABLE) {
        char ignored[64];

        /* Polite end; what the server answers no longer matters. */
        c->io_ms = c->io_ms < 2000 ? c->io_ms : 2000;
        if (send_all(c, "QUIT\r\n", 6, ignored, sizeof(ignored)))
            (void)read_reply(c, &r, ignored, sizeof(ignored));
    }
    return v;
}

static void conn_close(conn *c)
{
    if (c->ssl != NULL) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        (void)close(c->fd);
    c->fd = -1;
    c->rlen = 0;
    c->timed_out = false;
}

/* The stop descriptor is readable: no next address. */
static bool cancelled(const conn *c)
{
    struct pollfd pfd = { .fd = c->cancel_fd, .events = POLLIN, .revents = 0 };

    return c->cancel_fd >= 0 && poll(&pfd, 1, 0) > 0;
}

sts_status sts_probe_run(const sts_probe_opts *opts, const char *mx, const char *const *addrs,
                         size_t naddrs, sts_probe_out *out)
{
    static const sts_probe_opts defaults = { 0 };
    const sts_probe_opts *o = opts != NULL ? opts : &defaults;
    const char *helo = o->helo_name != NULL && o->helo_name[0] != '\0' ? o->helo_name
                                                                         : "localhost";
    unsigned port = o->port != 0 ? o->port : 25;
    unsigned cto = o->connect_timeout_ms != 0 ? o->connect_timeout_ms : 10000;
    static conn zero_conn;
    conn *c = NULL;
    SSL_CTX *ctx = NULL;
    size_t refused = 0;
    sts_status st = STS_OK;
    sts_sigpipe_guard g;

    memset(out, 0, sizeof(*out));
    out->result = STS_PROBE_UNREACHABLE;
    size_t mxlen = mx != NULL ? strlen(mx) : 0;

    if (mxlen > 0 && mx[mxlen - 1] == '.')
        mxlen--;
    if (mx == NULL || !sts_hostname_valid(mx, mxlen) || strlen(helo) > STS_DOMAIN_MAX ||
        strpbrk(helo, " \r\n") != NULL) {
        (void)snprintf(out->detail, sizeof(out->detail), "bad MX or EHLO name");
        return STS_PERMFAIL;
    }
    if (naddrs == 0) {
        (void)snprintf(out->detail, sizeof(out->detail), "no address for %s", mx);
        return STS_OK;
    }
    (void)pthread_once(&vstate_once, vstate_init);
    if (vstate_idx < 0) {
        (void)snprintf(out->detail, sizeof(out->detail), "no OpenSSL ex_data index");
        return STS_NOMEM;
    }
    ctx = make_ctx(o, out->detail, sizeof(out->detail));
    if (ctx == NULL)
        return STS_TEMPFAIL;
    c = malloc(sizeof(*c)); /* 4 KiB read buffer: not on a worker's stack */
    if (c == NULL) {
        SSL_CTX_free(ctx);
        (void)snprintf(out->detail, sizeof(out->detail), "out of memory");
        return STS_NOMEM;
    }
    *c = zero_conn;
    c->fd = -1;
    c->cancel_fd = o->cancel_fd != NULL ? *o->cancel_fd : -1;
    c->io_ms = o->io_timeout_ms != 0 ? o->io_timeout_ms : 30000;
    c->end = sts_mono_ms() + (o->total_timeout_ms != 0 ? o->total_timeout_ms : 60000);
    sts_sigpipe_block(&g);
    for (size_t i = 0; i < naddrs; i++) {
        uint8_t a[16];
        const sts_ipblock *blk;
        sts_smtp_reply r;
        char text[STS_SMTP_TEXT_MAX + 8];

        if (sts_mono_ms() >= c->end || cancelled(c)) {
            (void)snprintf(out->detail, sizeof(out->detail), "probe time used up");
            break;
        }
        if (!sts_ipaddr_from_text(addrs[i], a))
            continue;
        sts_ipaddr_show(a, out->ip, sizeof(out->ip));
        if (!o->allow_internal && (blk = sts_ipaddr_special(a)) != NULL) {
            refused++;
            (void)snprintf(out->detail, sizeof(out->detail),
                           "address %s is special-purpose (%s, %s) and not allowed", out->ip,
                           blk->name, blk->ref);
            continue;
        }
        if (connect_addr(c, a, port, cto, out->detail, sizeof(out->detail)) < 0)
            continue;
        if (!read_reply(c, &r, out->detail, sizeof(out->detail))) {
            conn_close(c);
            continue;
        }
        if (r.code != 220) {
            quote_text(text, sizeof(text), &r);
            (void)snprintf(out->detail, sizeof(out->detail), "greeting %u %s", r.code, text);
            conn_close(c);
            continue;
        }
        if (c->rlen != 0) {
            (void)snprintf(out->detail, sizeof(out->detail),
                           "the server sent data before being asked (after its greeting)");
            conn_close(c);
            continue;
        }
        out->result = dialogue(c, ctx, mx, helo, out->detail, sizeof(out->detail));
        conn_close(c);
        goto done;
    }
    out->result = refused == naddrs ? STS_PROBE_REFUSED : STS_PROBE_UNREACHABLE;
done:
    conn_close(c);
    sts_sigpipe_restore(&g);
    free(c);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return st;
}
