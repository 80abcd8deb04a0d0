/*
 * fetch.c - HTTPS policy retrieval with libcurl's multi interface
 * (RFC 8461 3.3 policy retrieval, 3.2 media type, 8.4 no HTTP caching).
 *
 * Every security property is set explicitly on each transfer rather than
 * trusted to defaults: HTTPS only, peer and host verification, TLS >= 1.2,
 * no redirects, no proxies from the environment, no name resolution by curl
 * (addresses come from our resolver through CURLOPT_RESOLVE), no socket to
 * a special-purpose address unless allowed (CURLOPT_OPENSOCKETFUNCTION),
 * bounded time and size (body and headers).  The hostname in the URL is
 * what curl verifies the certificate against and sends as SNI:
 * mta-sts.<domain>.
 *
 * The trust store (CAFile, or the system store libcurl was built with) is
 * parsed once into one X509_STORE that every transfer's SSL_CTX shares
 * (CURLOPT_SSL_CTX_FUNCTION), not once per transfer: the system bundle
 * takes tens of milliseconds to parse with OpenSSL 3, per transfer.  One
 * `trust` (file and store) belongs to each sts_fetch, parsed when it is
 * made and again by sts_fetch_set_ca() (SIGHUP); one more, process-wide,
 * serves the report uploads (sts_fetch_post), parsed at the first upload
 * and again only when an upload names another file.  A transfer takes a
 * reference to the store when it starts, so it is verified with the trust
 * it started with whatever replaces the store meanwhile.  When the store
 * cannot be parsed, transfers name the file to libcurl as before, so the
 * failure is reported per transfer as a local error; verification is never
 * switched off.
 */
#include "buildconf.h"
#include "sts/fetch.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "base/buf.h"
#include "base/ipaddr.h"
#include "sts/domain.h"

#define FETCH_MAX_EXTRA_FDS 64
#define FETCH_USER_AGENT "mtasts-milter/" PACKAGE_VERSION " (MTA-STS, RFC 8461)"

/* libcurl refuses one header line over CURL_MAX_HTTP_HEADER itself, before
 * a header callback sees it, and says CURLE_OUT_OF_MEMORY; below that our
 * own cap on the whole header block applies.  finish() relies on this. */
_Static_assert(STS_FETCH_MAX_HEADERS < CURL_MAX_HTTP_HEADER,
               "a header line libcurl refuses must be over our cap too");

/* The sockets of one transfer: which addresses were refused (the first
 * one and its block kept for the reason), how many sockets were opened. */
typedef struct conn_guard {
    bool allow_internal;
    unsigned refused, opened;
    char first[STS_IPADDR_TEXT_MAX];
    const sts_ipblock *block;
} conn_guard;

/* A trust store and the file it came from (NULL: the system store); the
 * threads starting transfers read them, a reload replaces them, both under
 * mu.  store NULL: not parsed, transfers name ca_file to libcurl instead. */
typedef struct trust {
    pthread_mutex_t mu;
    char *ca_file;
    X509_STORE *store;
} trust;

typedef struct sts_fetch_xfer {
    struct sts_fetch_xfer *prev, *next;
    sts_fetch *f;
    CURL *easy;
    X509_STORE *store; /* the transfer's reference to its trust's store, or NULL */
    struct curl_slist *resolve;
    struct curl_slist *headers;
    sts_buf body;
    bool too_big;
    size_t head_len;    /* response header bytes so far */
    bool head_open;     /* a header block has begun and not ended */
    bool head_too_big;
    conn_guard guard;
    char errbuf[CURL_ERROR_SIZE];
    sts_fetch_cb *cb;
    void *arg;
} transfer;

struct sts_fetch {
    CURLM *multi;
    trust trust; /* the loop thread reads it, sts_fetch_set_ca() replaces it */
    unsigned connect_timeout_ms;
    unsigned timeout_ms;
    unsigned port;
    size_t max_body;
    bool allow_internal;
    size_t pending;
    transfer *head;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

/* The trust of report uploads, process-wide; post_mu makes "parse it if
 * the file differs, then take a reference" one step per upload. */
static pthread_mutex_t post_mu = PTHREAD_MUTEX_INITIALIZER;
static trust post_trust = { PTHREAD_MUTEX_INITIALIZER, NULL, NULL };

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* The trust store of ca_file, or of the system store libcurl would use
 * (its built-in CA bundle and CA directory, CURLINFO_CAINFO/CAPATH), read
 * now; NULL (with a reason) if it cannot be read. */
static X509_STORE *ca_store_load(const char *ca_file, sts_why *why)
{
    X509_STORE *st = X509_STORE_new();
    const char *file = ca_file, *dir = NULL;
    CURL *probe = NULL;
    bool ok;

    if (st == NULL) {
        sts_why_set(why, "out of memory");
        return NULL;
    }
    if (ca_file == NULL) {
        char *cf = NULL, *cp = NULL;

        if ((probe = curl_easy_init()) == NULL) {
            sts_why_set(why, "out of memory");
            X509_STORE_free(st);
            return NULL;
        }
        (void)curl_easy_getinfo(probe, CURLINFO_CAINFO, &cf);
        (void)curl_easy_getinfo(probe, CURLINFO_CAPATH, &cp);
        file = cf;
        dir = cp;
    }
    /* A directory is looked up lazily, certificate by certificate, and
     * what it finds stays in the store. */
    ok = (file != NULL || dir != NULL) && (file == NULL || X509_STORE_load_file(st, file) == 1) &&
         (dir == NULL || X509_STORE_load_path(st, dir) == 1);
    if (!ok) {
        sts_why_set(why, "cannot read the CA certificates of %s%s%s",
                    file != NULL ? file : "", file != NULL && dir != NULL ? " and " : "",
                    dir != NULL ? dir : "");
        X509_STORE_free(st);
        st = NULL;
    }
    curl_easy_cleanup(probe);
    return st;
}

static bool same_file(const char *a, const char *b)
{
    return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

/* Parse ca_file (NULL: the system store) and make it t's trust, the store
 * before freed once no transfer holds it.  If it cannot be parsed:
 * keep_old, t stays as it was; else t names ca_file with no store, for
 * libcurl to read (and fail on) per transfer.  The parse is outside the
 * lock: transfers starting meanwhile use the store before.  STS_OK;
 * STS_TEMPFAIL (not parsed) or STS_NOMEM, with a reason. */
static sts_status trust_load(trust *t, const char *ca_file, bool keep_old, sts_why *why)
{
    char *copy = NULL;
    X509_STORE *st, *old;
    char *old_file;

    if (ca_file != NULL && (copy = strdup(ca_file)) == NULL) {
        sts_why_set(why, "out of memory");
        return STS_NOMEM;
    }
    st = ca_store_load(ca_file, why);
    if (st == NULL && keep_old) {
        free(copy);
        return STS_TEMPFAIL;
    }
    pthread_mutex_lock(&t->mu);
    old = t->store;
    old_file = t->ca_file;
    t->store = st;
    t->ca_file = copy;
    pthread_mutex_unlock(&t->mu);
    /* Transfers hold references of their own. */
    X509_STORE_free(old);
    free(old_file);
    return st != NULL ? STS_OK : STS_TEMPFAIL;
}

static void trust_free(trust *t)
{
    X509_STORE_free(t->store);
    free(t->ca_file);
    pthread_mutex_destroy(&t->mu);
}

sts_status sts_fetch_new(const sts_fetch_opts *opts, sts_fetch **out, sts_why *why)
{
    sts_fetch *f;

    *out = NULL;
    (void)pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        sts_why_set(why, "libcurl initialisation failed: %s", curl_easy_strerror(global_rc));
        return STS_TEMPFAIL;
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        goto nomem;
    pthread_mutex_init(&f->trust.mu, NULL);
    /* Not parsed: transfers report it (see the top). */
    if (trust_load(&f->trust, opts != NULL ? opts->ca_file : NULL, false, NULL) == STS_NOMEM)
        goto nomem;
    f->connect_timeout_ms = opts != NULL && opts->connect_timeout_ms ? opts->connect_timeout_ms : 10000;
    f->timeout_ms = opts != NULL && opts->timeout_ms ? opts->timeout_ms : 60000;
    f->port = opts != NULL && opts->port ? opts->port : 443;
    f->max_body = opts != NULL && opts->max_body ? opts->max_body : 65536;
    f->allow_internal = opts != NULL && opts->allow_internal;
    f->multi = curl_multi_init();
    if (f->multi == NULL)
        goto nomem;
    *out = f;
    return STS_OK;
nomem:
    if (f != NULL)
        trust_free(&f->trust);
    free(f);
    sts_why_set(why, "out of memory");
    return STS_NOMEM;
}

static void transfer_free(transfer *t)
{
    sts_fetch *f = t->f;

    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        f->head = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    if (t->easy != NULL) {
        (void)curl_multi_remove_handle(f->multi, t->easy);
        curl_easy_cleanup(t->easy);
    }
    X509_STORE_free(t->store);
    curl_slist_free_all(t->resolve);
    curl_slist_free_all(t->headers);
    sts_buf_free(&t->body);
    free(t);
}

void sts_fetch_free(sts_fetch *f)
{
    if (f == NULL)
        return;
    while (f->head != NULL) {
        transfer *t = f->head;
        sts_fetch_result res = { STS_FETCH_LOCAL, 0, "", 0, "policy fetch cancelled: shutting down" };

        f->pending--;
        t->cb(t->arg, &res);
        transfer_free(t);
    }
    curl_multi_cleanup(f->multi);
    trust_free(&f->trust);
    free(f);
}

sts_status sts_fetch_set_ca(sts_fetch *f, const char *ca_file, sts_why *why)
{
    return trust_load(&f->trust, ca_file, true, why);
}

size_t sts_fetch_pending(const sts_fetch *f)
{
    return f->pending;
}

sts_fetch_phase sts_fetch_xfer_phase(const sts_fetch_xfer *x)
{
    curl_off_t conn = 0, app = 0;

    if (curl_easy_getinfo(x->easy, CURLINFO_CONNECT_TIME_T, &conn) != CURLE_OK || conn == 0)
        return STS_FETCH_CONNECTING;
    if (curl_easy_getinfo(x->easy, CURLINFO_APPCONNECT_TIME_T, &app) != CURLE_OK || app == 0)
        return STS_FETCH_HANDSHAKE;
    return STS_FETCH_AWAITING;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    transfer *t = userp;
    size_t n = size * nmemb; /* curl guarantees size == 1 */

    switch (sts_buf_append(&t->body, data, n)) {
    case STS_OK:
        return n;
    case STS_PERMFAIL:
        t->too_big = true;
        return 0; /* abort: a policy over the cap is rejected, not truncated */
    default:
        return 0;
    }
}

/* Response headers, one complete line at a time (the status line too). */
static size_t on_header(char *data, size_t size, size_t nmemb, void *userp)
{
    transfer *t = userp;
    size_t n = size * nmemb; /* curl guarantees size == 1 */

    t->head_len += n;
    if (t->head_len > STS_FETCH_MAX_HEADERS) {
        t->head_too_big = true;
        return 0; /* abort */
    }
    /* The empty line ends a header block (a 1xx block is followed by another). */
    t->head_open = !(n == 0 || data[0] == '\n' || (n == 2 && data[0] == '\r'));
    return n;
}

/* CURLOPT_OPENSOCKETFUNCTION: curl asks for each socket it is about to
 * connect, with the very address it will connect to, so no DNS answer,
 * early or late, gets past this.  A special-purpose address (ipaddr.h) is
 * refused unless allowed; curl then goes on with the next address. */
static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *sa)
{
    conn_guard *g = clientp;
    const sts_ipblock *b = NULL;
    int fd;

    (void)purpose;
    if (!g->allow_internal)
        b = sts_ipaddr_special_sockaddr(&sa->addr, sa->addrlen);
    if (b != NULL) {
        if (g->refused++ == 0) {
            uint8_t a[16];

            g->block = b;
            if (!sts_ipaddr_from_sockaddr(&sa->addr, sa->addrlen, a, NULL))
                (void)snprintf(g->first, sizeof(g->first), "family %d", sa->family);
            else if (sa->family != AF_INET6 ||
                     inet_ntop(AF_INET6, a, g->first, sizeof(g->first)) == NULL)
                (void)sts_ipaddr_show(a, g->first, sizeof(g->first)); /* v6 stays v6 */
        }
        return CURL_SOCKET_BAD;
    }
    fd = socket(sa->family, sa->socktype | SOCK_CLOEXEC, sa->protocol);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    g->opened++;
    return fd;
}

/* Why addresses were refused, "" if none was: appended to a reason. */
static void guard_why(const conn_guard *g, char *buf, size_t size)
{
    char more[64] = "";

    buf[0] = '\0';
    if (g->refused == 0)
        return;
    if (g->refused > 1)
        (void)snprintf(more, sizeof(more), " and %u more address%s", g->refused - 1,
                       g->refused > 2 ? "es" : "");
    (void)snprintf(buf, size,
                   "refused to connect to %s (%s, %s, %s)%s: not a public address "
                   "(AllowInternalAddresses is off)",
                   g->first, g->block->name, g->block->prefix, g->block->ref, more);
}

/* The CURLOPT_RESOLVE list "+PREFIXHOST:PORT:ADDR[,ADDR...]" (IPv6 in
 * brackets): curl never resolves a name itself.  '+': the entry ages out
 * of curl's DNS cache like a looked-up one, so a long-running daemon does
 * not accumulate one entry per domain.  STS_OK or STS_NOMEM. */
static sts_status resolve_list(const char *prefix, const char *host, unsigned port,
                               const char *const *addrs, size_t naddrs, struct curl_slist **out)
{
    sts_buf b;
    sts_status st = STS_NOMEM;

    sts_buf_init(&b, 4096);
    if (sts_buf_printf(&b, "+%s%s:%u:", prefix, host, port) != STS_OK)
        goto done;
    for (size_t i = 0; i < naddrs; i++) {
        bool v6 = strchr(addrs[i], ':') != NULL;

        if (sts_buf_printf(&b, "%s%s%s%s", i == 0 ? "" : ",", v6 ? "[" : "", addrs[i],
                           v6 ? "]" : "") != STS_OK)
            goto done;
    }
    if ((*out = curl_slist_append(NULL, b.data)) != NULL)
        st = STS_OK;
done:
    sts_buf_free(&b);
    return st;
}

/* In a function with `sts_status st`, `sts_why *why` and a done label.
 * A refused option is our build's problem, not the peer's: temporary. */
#define SETOPT(easy, opt, val)                                                           \
    do {                                                                                 \
        if (curl_easy_setopt(easy, opt, val) != CURLE_OK) {                              \
            sts_why_set(why, "libcurl refused option %s", #opt);                         \
            st = STS_TEMPFAIL;                                                           \
            goto done;                                                                   \
        }                                                                                \
    } while (0)

/* The options the policy fetch and the report upload share (see the top):
 * HTTPS only, peer and host verified, TLS >= 1.2, an explicit ca_file is
 * the whole trust (no system directory besides), addresses only from
 * resolve, never a proxy from http(s)_proxy, no redirects (RFC 8461 3.3;
 * for an upload a redirect is no acceptance either), no cookies,
 * HTTP/1.1, errors into errbuf (CURL_ERROR_SIZE bytes), every socket
 * opened through the guard g.  The CAs: setopt_trust(). */
static sts_status setopt_https(CURL *easy, const char *url, struct curl_slist *resolve,
                               struct curl_slist *headers, unsigned connect_timeout_ms,
                               unsigned timeout_ms, char *errbuf, conn_guard *g, sts_why *why)
{
    sts_status st = STS_OK;

    SETOPT(easy, CURLOPT_URL, url);
    SETOPT(easy, CURLOPT_PROTOCOLS_STR, "https");
    SETOPT(easy, CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(easy, CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(easy, CURLOPT_SSL_VERIFYHOST, 2L);
    SETOPT(easy, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    SETOPT(easy, CURLOPT_RESOLVE, resolve);
    SETOPT(easy, CURLOPT_NOPROXY, "*");
    SETOPT(easy, CURLOPT_PROXY, "");
    SETOPT(easy, CURLOPT_HTTPHEADER, headers);
    SETOPT(easy, CURLOPT_USERAGENT, FETCH_USER_AGENT);
    SETOPT(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_timeout_ms);
    SETOPT(easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    SETOPT(easy, CURLOPT_ERRORBUFFER, errbuf);
    SETOPT(easy, CURLOPT_NOSIGNAL, 1L);
    SETOPT(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SETOPT(easy, CURLOPT_COOKIEFILE, (char *)NULL);
    SETOPT(easy, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    SETOPT(easy, CURLOPT_OPENSOCKETDATA, g);
done:
    return st;
}

/* CURLOPT_SSL_CTX_FUNCTION: the new connection's SSL_CTX gets the
 * transfer's store (one more reference), in place of the empty one
 * libcurl made.  Verification stays on (CURLOPT_SSL_VERIFYPEER/HOST);
 * without a store it would fail, never pass. */
static CURLcode on_ssl_ctx(CURL *easy, void *ssl_ctx, void *userp)
{
    X509_STORE *store = userp;

    (void)easy;
    if (store == NULL || X509_STORE_up_ref(store) != 1)
        return CURLE_SSL_CACERT_BADFILE;
    SSL_CTX_set_cert_store(ssl_ctx, store); /* frees the one it had */
    return CURLE_OK;
}

/* Where a transfer's trust comes from: t's store, of which *ref gets a
 * reference for the transfer (the caller frees it after the transfer);
 * or, when t has none (not parsed), t's file named to libcurl, read by it
 * per transfer (*ref NULL).  An explicit file is the whole trust, no
 * system directory besides. */
static sts_status setopt_trust(trust *t, CURL *easy, X509_STORE **ref, sts_why *why)
{
    sts_status st = STS_OK;
    CURLcode rc = CURLE_OK;
    bool named = false;

    *ref = NULL;
    pthread_mutex_lock(&t->mu);
    if (t->store != NULL && X509_STORE_up_ref(t->store) == 1)
        *ref = t->store;
    else if ((named = t->ca_file != NULL))
        rc = curl_easy_setopt(easy, CURLOPT_CAINFO, t->ca_file); /* libcurl copies it */
    pthread_mutex_unlock(&t->mu);
    if (rc != CURLE_OK) {
        sts_why_set(why, "libcurl refused option CURLOPT_CAINFO");
        return STS_TEMPFAIL;
    }
    if (*ref == NULL) {
        if (named)
            SETOPT(easy, CURLOPT_CAPATH, (char *)NULL);
        goto done;
    }
    /* No file for libcurl to read: the store comes from on_ssl_ctx.
     * libcurl's own store cache stays off: it runs after on_ssl_ctx and
     * would put back the first store it saw, through reloads. */
    SETOPT(easy, CURLOPT_CAINFO, (char *)NULL);
    SETOPT(easy, CURLOPT_CAPATH, (char *)NULL);
    SETOPT(easy, CURLOPT_CA_CACHE_TIMEOUT, 0L);
    SETOPT(easy, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
    SETOPT(easy, CURLOPT_SSL_CTX_DATA, *ref);
done:
    return st;
}

sts_status sts_fetch_start(sts_fetch *f, const char *domain, const char *const *addrs,
                           size_t naddrs, sts_fetch_cb *cb, void *arg, sts_fetch_xfer **xfer,
                           sts_why *why)
{
    char url[STS_DOMAIN_MAX + 64];
    transfer *t = NULL;
    sts_status st = STS_NOMEM;
    struct curl_slist *sl;
    int n;

    if (naddrs == 0) {
        sts_why_set(why, "no address for mta-sts.%s", domain);
        st = STS_PERMFAIL;
        goto done;
    }
    if (strlen(domain) > STS_DOMAIN_MAX - 8) {
        sts_why_set(why, "policy host name mta-sts.%s is too long", domain);
        st = STS_PERMFAIL;
        goto done;
    }
    if (f->port == 443)
        n = snprintf(url, sizeof(url), "https://mta-sts.%s/.well-known/mta-sts.txt", domain);
    else
        n = snprintf(url, sizeof(url), "https://mta-sts.%s:%u/.well-known/mta-sts.txt", domain,
                     f->port);
    if (n < 0 || (size_t)n >= sizeof(url)) {
        sts_why_set(why, "policy URL too long");
        st = STS_PERMFAIL;
        goto done;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        goto nomem;
    t->f = f;
    t->cb = cb;
    t->arg = arg;
    t->guard.allow_internal = f->allow_internal;
    sts_buf_init(&t->body, f->max_body);
    t->easy = curl_easy_init();
    if (t->easy == NULL)
        goto nomem;
    if (resolve_list("mta-sts.", domain, f->port, addrs, naddrs, &t->resolve) != STS_OK)
        goto nomem;
    /* RFC 8461 3.3: HTTP caching MUST NOT be used; also tell intermediaries. */
    if ((sl = curl_slist_append(NULL, "Cache-Control: no-cache")) == NULL)
        goto nomem;
    t->headers = sl;
    if ((sl = curl_slist_append(t->headers, "Pragma: no-cache")) == NULL)
        goto nomem;
    t->headers = sl;

    if ((st = setopt_https(t->easy, url, t->resolve, t->headers, f->connect_timeout_ms,
                           f->timeout_ms, t->errbuf, &t->guard, why)) != STS_OK ||
        (st = setopt_trust(&f->trust, t->easy, &t->store, why)) != STS_OK)
        goto done;
    SETOPT(t->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f->max_body);
    SETOPT(t->easy, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(t->easy, CURLOPT_WRITEDATA, t);
    SETOPT(t->easy, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(t->easy, CURLOPT_HEADERDATA, t);
    SETOPT(t->easy, CURLOPT_PRIVATE, t);
    SETOPT(t->easy, CURLOPT_ACCEPT_ENCODING, (char *)NULL); /* the cap applies to what is sent */

    if (curl_multi_add_handle(f->multi, t->easy) != CURLM_OK) {
        sts_why_set(why, "libcurl refused a new transfer");
        st = STS_TEMPFAIL;
        goto done;
    }
    t->next = f->head;
    if (f->head != NULL)
        f->head->prev = t;
    f->head = t;
    f->pending++;
    if (xfer != NULL)
        *xfer = t;
    t = NULL;
    st = STS_OK;
    goto done;
nomem:
    sts_why_set(why, "out of memory");
    st = STS_NOMEM;
done:
    if (t != NULL) {
        if (t->easy != NULL)
            curl_easy_cleanup(t->easy);
        X509_STORE_free(t->store);
        curl_slist_free_all(t->resolve);
        curl_slist_free_all(t->headers);
        sts_buf_free(&t->body);
        free(t);
    }
    return st;
}

/* RFC 8461 3.2: the media type is text/plain; parameters such as charset
 * are allowed.  Media types compare case-insensitively (RFC 2045). */
static bool media_type_ok(const char *ct)
{
    sts_cur c = sts_cur_str(ct);

    sts_cur_skip_wsp(&c);
    if (!sts_cur_take_lit_nocase(&c, "text/plain"))
        return false;
    sts_cur_skip_wsp(&c);
    return sts_cur_empty(&c) || c.p[0] == ';';
}

static void finish(transfer *t, CURLcode code)
{
    sts_fetch_result res;
    char why[CURL_ERROR_SIZE + 2 * STS_WHY_MAX], refused[STS_WHY_MAX];
    long status = 0;
    char *ct = NULL;
    const char *detail = t->errbuf[0] != '\0' ? t->errbuf : curl_easy_strerror(code);

    (void)curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    res.http_status = status;
    res.body = t->body.data != NULL ? t->body.data : "";
    res.body_len = t->body.len;
    why[0] = '\0';
    guard_why(&t->guard, refused, sizeof(refused));
    if (code != CURLE_OK && t->guard.refused > 0 && t->guard.opened == 0) {
        res.err = STS_FETCH_REFUSED;
        (void)snprintf(why, sizeof(why), "%s", refused);
    } else if (t->head_too_big || (code == CURLE_OUT_OF_MEMORY && t->head_open)) {
        /* An out-of-memory inside a header block is libcurl refusing a
         * line over CURL_MAX_HTTP_HEADER (see the assertion at the top). */
        res.err = STS_FETCH_HTTP;
        (void)snprintf(why, sizeof(why), "response headers larger than %d bytes",
                       STS_FETCH_MAX_HEADERS);
    } else if (code == CURLE_PEER_FAILED_VERIFICATION) {
        res.err = STS_FETCH_WEBPKI;
        (void)snprintf(why, sizeof(why), "certificate of the policy host rejected: %s", detail);
    } else if (status != 0 && status != 200) {
        char *loc = NULL;

        res.err = STS_FETCH_HTTP;
        (void)curl_easy_getinfo(t->easy, CURLINFO_REDIRECT_URL, &loc);
        if (status >= 300 && status < 400) {
            char qloc[200];

            /* The Location is peer text: quoted before it reaches a reason. */
            (void)sts_quote(qloc, sizeof(qloc), loc != NULL ? loc : "", loc != NULL ? strlen(loc) : 0);
            (void)snprintf(why, sizeof(why),
                           "HTTP status %ld (redirect%s%s not followed, RFC 8461 3.3)", status,
                           loc != NULL ? " to " : "", qloc);
        } else {
            (void)snprintf(why, sizeof(why), "HTTP status %ld, only 200 is accepted", status);
        }
    } else if (code == CURLE_FILESIZE_EXCEEDED || (code == CURLE_WRITE_ERROR && t->too_big)) {
        res.err = STS_FETCH_TOO_BIG;
        (void)snprintf(why, sizeof(why), "policy body larger than %zu bytes", t->f->max_body);
    } else if (code == CURLE_OUT_OF_MEMORY || code == CURLE_WRITE_ERROR ||
               code == CURLE_SSL_CACERT_BADFILE || code == CURLE_FAILED_INIT) {
        res.err = STS_FETCH_LOCAL;
        (void)snprintf(why, sizeof(why), "local error fetching the policy: %s", detail);
    } else if (code != CURLE_OK) {
        res.err = STS_FETCH_NETWORK;
        (void)snprintf(why, sizeof(why), "policy fetch failed: %s%s%s", detail,
                       refused[0] != '\0' ? "; " : "", refused);
    } else {
        (void)curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &ct);
        if (ct == NULL) {
            res.err = STS_FETCH_MEDIA_TYPE;
            (void)snprintf(why, sizeof(why), "no Content-Type, text/plain is required");
        } else if (!media_type_ok(ct)) {
            char esc[128];

            (void)sts_quote(esc, sizeof(esc), ct, strlen(ct)); /* peer text */
            res.err = STS_FETCH_MEDIA_TYPE;
            (void)snprintf(why, sizeof(why), "Content-Type '%s', text/plain is required", esc);
        } else {
            res.err = STS_FETCH_OK;
        }
    }
    res.why = why;
    t->f->pending--;
    t->cb(t->arg, &res);
    transfer_free(t);
}

sts_status sts_fetch_wait(sts_fetch *f, struct pollfd *extra, int nextra, int timeout_ms)
{
    struct curl_waitfd wfd[FETCH_MAX_EXTRA_FDS];
    int n = nextra < FETCH_MAX_EXTRA_FDS ? nextra : FETCH_MAX_EXTRA_FDS;
    int running = 0, left = 0;
    CURLMcode mc;
    CURLMsg *msg;

    for (int i = 0; i < n; i++) {
        wfd[i].fd = extra[i].fd;
        wfd[i].events = (short)((extra[i].events & POLLIN ? CURL_WAIT_POLLIN : 0) |
                                (extra[i].events & POLLOUT ? CURL_WAIT_POLLOUT : 0));
        wfd[i].revents = 0;
    }
    mc = curl_multi_poll(f->multi, wfd, (unsigned)n, timeout_ms, NULL);
    if (mc != CURLM_OK)
        return STS_TEMPFAIL;
    for (int i = 0; i < n; i++) {
        short re = 0;

        if (wfd[i].revents & CURL_WAIT_POLLIN)
            re |= POLLIN;
        if (wfd[i].revents & CURL_WAIT_POLLOUT)
            re |= POLLOUT;
        extra[i].revents = re;
    }
    mc = curl_multi_perform(f->multi, &running);
    if (mc != CURLM_OK)
        return STS_TEMPFAIL;
    while ((msg = curl_multi_info_read(f->multi, &left)) != NULL) {
        transfer *t = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        (void)curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        if (t != NULL)
            finish(t, msg->data.result);
    }
    return STS_OK;
}

void sts_fetch_wakeup(sts_fetch *f)
{
    (void)curl_multi_wakeup(f->multi);
}

/* ------------------------------------------------------ report upload */

static size_t on_post_reply(char *data, size_t size, size_t nmemb, void *userp)
{
    size_t *total = userp;
    size_t n = size * nmemb;

    (void)data;
    *total += n;
    return *total > 1024 * 1024 ? 0 : n; /* a reply is a status, not a download */
}

/* setopt_trust() with the uploads' trust, first made ca_file's if it is
 * another file's or has no store: the first upload parses it, or the
 * first naming another file.  Not parsed: libcurl is named the file and
 * fails on it, for this upload; the next one tries again. */
static sts_status setopt_post_trust(CURL *easy, const char *ca_file, X509_STORE **ref,
                                    sts_why *why)
{
    sts_status st;
    bool fresh;

    pthread_mutex_lock(&post_mu);
    pthread_mutex_lock(&post_trust.mu);
    fresh = post_trust.store != NULL && same_file(post_trust.ca_file, ca_file);
    pthread_mutex_unlock(&post_trust.mu);
    if (!fresh && trust_load(&post_trust, ca_file, false, NULL) == STS_NOMEM) {
        sts_why_set(why, "out of memory");
        st = STS_NOMEM;
    } else {
        st = setopt_trust(&post_trust, easy, ref, why);
    }
    pthread_mutex_unlock(&post_mu);
    return st;
}

sts_status sts_fetch_post(const sts_fetch_post_req *req, long *http_status, sts_why *why)
{
    char errbuf[CURL_ERROR_SIZE], refused[STS_WHY_MAX];
    conn_guard guard = { .allow_internal = req->allow_internal };
    struct curl_slist *resolve = NULL, *headers = NULL, *sl;
    CURL *easy = NULL;
    X509_STORE *store = NULL;
    sts_status st = STS_NOMEM;
    size_t reply_len = 0;
    long status = 0;
    CURLcode code;

    *http_status = 0;
    (void)pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        sts_why_set(why, "libcurl initialisation failed: %s", curl_easy_strerror(global_rc));
        st = STS_TEMPFAIL;
        goto done;
    }
    if (req->naddrs == 0) {
        sts_why_set(why, "no address for %s", req->host);
        st = STS_PERMFAIL;
        goto done;
    }
    if (resolve_list("", req->host, req->port, req->addrs, req->naddrs, &resolve) != STS_OK)
        goto nomem;
    {
        char ct[128];

        (void)snprintf(ct, sizeof(ct), "Content-Type: %s", req->content_type);
        if ((headers = curl_slist_append(NULL, ct)) == NULL)
            goto nomem;
    }
    /* No "Expect: 100-continue" round trip: the body is small. */
    if ((sl = curl_slist_append(headers, "Expect:")) == NULL)
        goto nomem;
    headers = sl;
    if ((easy = curl_easy_init()) == NULL)
        goto nomem;
    errbuf[0] = '\0';
    if ((st = setopt_https(easy, req->url, resolve, headers,
                           req->connect_timeout_ms != 0 ? req->connect_timeout_ms : 10000,
                           req->timeout_ms != 0 ? req->timeout_ms : 60000, errbuf, &guard,
                           why)) != STS_OK)
        goto done;
    if ((st = setopt_post_trust(easy, req->ca_file, &store, why)) != STS_OK)
        goto done;
    SETOPT(easy, CURLOPT_POST, 1L);
    SETOPT(easy, CURLOPT_POSTFIELDS, req->body);
    SETOPT(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    SETOPT(easy, CURLOPT_WRITEFUNCTION, on_post_reply);
    SETOPT(easy, CURLOPT_WRITEDATA, &reply_len);

    code = curl_easy_perform(easy);
    (void)curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    *http_status = status;
    guard_why(&guard, refused, sizeof(refused));
    if (status >= 200 && status < 300) {
        st = STS_OK; /* accepted; what happens to the reply body does not undo that */
    } else if (guard.refused > 0 && guard.opened == 0) {
        sts_why_set(why, "%s", refused); /* this host's addresses: not a passing failure */
        st = STS_PERMFAIL;
    } else if (status != 0) {
        sts_why_set(why, "HTTP status %ld%s", status,
                    status >= 300 && status < 400 ? " (redirects are not followed)" : "");
        st = STS_TEMPFAIL;
    } else {
        sts_why_set(why, "%s%s%s", errbuf[0] != '\0' ? errbuf : curl_easy_strerror(code),
                    refused[0] != '\0' ? "; " : "", refused);
        st = code == CURLE_OUT_OF_MEMORY ? STS_NOMEM : STS_TEMPFAIL;
    }
    goto done;
nomem:
    sts_why_set(why, "out of memory");
    st = STS_NOMEM;
done:
    if (easy != NULL)
        curl_easy_cleanup(easy);
    X509_STORE_free(store);
    curl_slist_free_all(resolve);
    curl_slist_free_all(headers);
    return st;
}
