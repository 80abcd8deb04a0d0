/*
 * store.c - the persistent policy cache front end (see store.h): picks the
 * backend named by the CacheStore value, checks every argument once for
 * all backends, implements the memory-only "none" store, and holds what
 * the backends share: the rules a stored record must obey and the JSON
 * form of a record (jansson), used by the Redis backend.
 *
 * A store keeps what RFC 8461 5.1 and 8.1 rely on: a policy outlives a
 * restart.  Anything read back is checked as strictly as untrusted input,
 * because a shared Redis or a file on disk can be changed behind our back:
 * a record that breaks a rule is refused whole ("cannot be decoded").
 */
#include "engine/store.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/log.h"
#include "sts/policy.h"
#include "engine/store_impl.h"

#define STORE_SHOW_MAX 48 /* bytes of a bad value quoted in a reason */

void sts_cache_record_clear(sts_cache_record *r)
{
    if (r == NULL)
        return;
    free(r->policy_text);
    memset(r, 0, sizeof(*r));
}

/* ------------------------------------------------------------ record rules */

/* Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing
 * above U+10FFFF.  The same set jansson accepts, so a checked policy
 * always encodes. */
static bool utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = p[i], lo = 0x80, hi = 0xbf;
        size_t need;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            lo = c == 0xe0 ? 0xa0 : 0x80;
            hi = c == 0xed ? 0x9f : 0xbf;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            lo = c == 0xf0 ? 0x90 : 0x80;
            hi = c == 0xf4 ? 0x8f : 0xbf;
        } else {
            return false;
        }
        if (n - i - 1 < need || p[i + 1] < lo || p[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= need; k++)
            if (p[i + k] < 0x80 || p[i + k] > 0xbf)
                return false;
        i += need + 1;
    }
    return true;
}

bool sts_store_domain_ok(const char *domain, size_t len)
{
    if (domain == NULL || len == 0 || len > STS_DOMAIN_MAX || memchr(domain, '\0', len) != NULL)
        return false;
    /* Stored names are normalised (domain.h): lower case, so that one
     * domain has exactly one key. */
    for (size_t i = 0; i < len; i++)
        if (domain[i] >= 'A' && domain[i] <= 'Z')
            return false;
    return sts_hostname_valid(domain, len);
}

static const char *show(char *dst, size_t dstsz, const char *s, size_t len)
{
    return sts_log_escape(dst, dstsz, s, len > STORE_SHOW_MAX ? STORE_SHOW_MAX : len);
}

sts_status sts_store_record_check(const sts_cache_record *r, sts_why *why)
{
    char shown[STORE_SHOW_MAX * 4 + 1];
    size_t dlen, idlen;

    if (r == NULL) {
        sts_why_set(why, "no record");
        return STS_PERMFAIL;
    }
    dlen = strnlen(r->domain, sizeof(r->domain));
    if (dlen == sizeof(r->domain) || !sts_store_domain_ok(r->domain, dlen)) {
        sts_why_set(why, "domain '%s' is not a lower-case host name",
                    show(shown, sizeof(shown), r->domain, dlen));
        return STS_PERMFAIL;
    }
    if (r->kind != STS_ENTRY_POLICY && r->kind != STS_ENTRY_NOPOLICY &&
        r->kind != STS_ENTRY_FAILED) {
        sts_why_set(why, "%s: kind %d is not 1 (policy), 2 (no policy) or 3 (failed)",
                    r->domain, (int)r->kind);
        return STS_PERMFAIL;
    }
    idlen = strnlen(r->id, sizeof(r->id));
    if (idlen == sizeof(r->id)) {
        sts_why_set(why, "%s: id is not NUL-terminated", r->domain);
        return STS_PERMFAIL;
    }
    for (size_t i = 0; i < idlen; i++) {
        if (!sts_is_alnum((unsigned char)r->id[i])) {
            sts_why_set(why, "%s: id '%s' has a byte other than a letter or digit", r->domain,
                        show(shown, sizeof(shown), r->id, idlen));
            return STS_PERMFAIL;
        }
    }
    if (r->kind == STS_ENTRY_POLICY) {
        if (r->policy_text == NULL) {
            sts_why_set(why, "%s: a policy record without policy text", r->domain);
            return STS_PERMFAIL;
        }
        if (r->policy_len > STS_POLICY_MAX_BODY) {
            sts_why_set(why, "%s: policy text is %zu bytes, the limit is %u", r->domain,
                        r->policy_len, STS_POLICY_MAX_BODY);
            return STS_PERMFAIL;
        }
        if (r->policy_text[r->policy_len] != '\0' ||
            memchr(r->policy_text, '\0', r->policy_len) != NULL) {
            sts_why_set(why, "%s: policy text length does not match its NUL terminator",
                        r->domain);
            return STS_PERMFAIL;
        }
        if (!utf8_valid((const unsigned char *)r->policy_text, r->policy_len)) {
            sts_why_set(why, "%s: policy text is not valid UTF-8", r->domain);
            return STS_PERMFAIL;
        }
    } else if (r->policy_text != NULL || r->policy_len != 0) {
        sts_why_set(why, "%s: policy text in a record of kind %d", r->domain, (int)r->kind);
        return STS_PERMFAIL;
    }
    if (r->fetched_at < 0 || r->checked_at < 0 || r->expires_at < 0 || r->last_used < 0) {
        sts_why_set(why, "%s: a negative time", r->domain);
        return STS_PERMFAIL;
    }
    return STS_OK;
}

sts_status sts_store_record_set_policy(sts_cache_record *out, const char *text, size_t len)
{
    out->policy_text = sts_strndup(text, len);
    if (out->policy_text == NULL)
        return STS_NOMEM;
    out->policy_len = len;
    return STS_OK;
}

/* ------------------------------------------------------------ JSON codec */

enum {
    F_V,
    F_DOMAIN,
    F_KIND,
    F_ID,
    F_POLICY,
    F_FETCHED_AT,
    F_CHECKED_AT,
    F_EXPIRES_AT,
    F_LAST_USED,
    F_COUNT
};

static const struct {
    const char *name;
    json_type type;
} fields[F_COUNT] = {
    [F_V] = { "v", JSON_INTEGER },
    [F_DOMAIN] = { "domain", JSON_STRING },
    [F_KIND] = { "kind", JSON_INTEGER },
    [F_ID] = { "id", JSON_STRING },
    [F_POLICY] = { "policy", JSON_STRING },
    [F_FETCHED_AT] = { "fetched_at", JSON_INTEGER },
    [F_CHECKED_AT] = { "checked_at", JSON_INTEGER },
    [F_EXPIRES_AT] = { "expires_at", JSON_INTEGER },
    [F_LAST_USED] = { "last_used", JSON_INTEGER },
};

/* json_object_set_new that also fails on a NULL value (an OOM upstream). */
static bool set_new(json_t *obj, const char *key, json_t *val)
{
    return val != NULL && json_object_set_new(obj, key, val) == 0;
}

sts_status sts_store_record_encode(const sts_cache_record *r, char **json, size_t *len,
                                   sts_why *why)
{
    json_t *obj = NULL;
    char *text = NULL;
    sts_status st;

    *json = NULL;
    *len = 0;
    st = sts_store_record_check(r, why);
    if (st != STS_OK)
        goto done;
    st = STS_NOMEM;
    obj = json_object();
    if (obj == NULL)
        goto done;
    if (!set_new(obj, fields[F_V].name, json_integer(STS_STORE_JSON_VERSION)) ||
        !set_new(obj, fields[F_DOMAIN].name, json_string(r->domain)) ||
        !set_new(obj, fields[F_KIND].name, json_integer((json_int_t)r->kind)) ||
        !set_new(obj, fields[F_ID].name, json_string(r->id)))
        goto done;
    /* The record check proved the text is UTF-8 without NUL, so a NULL
     * here can only be an allocation failure. */
    if (r->kind == STS_ENTRY_POLICY &&
        !set_new(obj, fields[F_POLICY].name, json_stringn(r->policy_text, r->policy_len)))
        goto done;
    if (!set_new(obj, fields[F_FETCHED_AT].name, json_integer((json_int_t)r->fetched_at)) ||
        !set_new(obj, fields[F_CHECKED_AT].name, json_integer((json_int_t)r->checked_at)) ||
        !set_new(obj, fields[F_EXPIRES_AT].name, json_integer((json_int_t)r->expires_at)) ||
        !set_new(obj, fields[F_LAST_USED].name, json_integer((json_int_t)r->last_used)))
        goto done;
    text = json_dumps(obj, JSON_COMPACT);
    if (text == NULL)
        goto done;
    *len = strlen(text);
    *json = text;
    st = STS_OK;
done:
    if (st == STS_NOMEM)
        sts_why_set(why, "out of memory encoding a record");
    json_decref(obj);
    return st;
}

/* Copy the JSON string v (already known to be a string) into dst[dstsz],
 * failing if it does not fit. */
static bool copy_string(const json_t *v, char *dst, size_t dstsz)
{
    size_t n = json_string_length(v);

    if (n >= dstsz)
        return false;
    memcpy(dst, json_string_value(v), n);
    dst[n] = '\0';
    return true;
}

sts_status sts_store_record_decode(const char *json, size_t len, sts_cache_record *out,
                                   sts_why *why)
{
    char shown[STORE_SHOW_MAX * 4 + 1];
    json_t *root = NULL, *val[F_COUNT] = { NULL };
    json_error_t err;
    const char *key;
    json_t *v;
    json_int_t n;
    sts_status st = STS_PERMFAIL;

    memset(out, 0, sizeof(*out));
    if (json == NULL) {
        sts_why_set(why, "no data");
        goto done;
    }
    if (len > STS_STORE_JSON_MAX) {
        sts_why_set(why, "record is %zu bytes, the limit is %u", len, STS_STORE_JSON_MAX);
        goto done;
    }
    /* jansson skips NUL bytes between tokens: refuse them here. */
    if (memchr(json, '\0', len) != NULL) {
        sts_why_set(why, "NUL byte in the record");
        goto done;
    }
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (root == NULL) {
        if (json_error_code(&err) == json_error_out_of_memory) {
            st = STS_NOMEM;
            sts_why_set(why, "out of memory decoding a record");
        } else {
            /* jansson quotes the input near the error: escape it. */
            char text[JSON_ERROR_TEXT_LENGTH * 4 + 1];

            sts_why_set(why, "not JSON: %s at byte %d",
                        sts_log_escape(text, sizeof(text), err.text, strlen(err.text)),
                        err.position);
        }
        goto done;
    }
    if (!json_is_object(root)) {
        sts_why_set(why, "not a JSON object");
        goto done;
    }
    json_object_foreach(root, key, v) {
        size_t f = 0;

        while (f < F_COUNT && strcmp(key, fields[f].name) != 0)
            f++;
        if (f == F_COUNT) {
            sts_why_set(why, "unknown member '%s'", show(shown, sizeof(shown), key, strlen(key)));
            goto done;
        }
        if (json_typeof(v) != fields[f].type) {
            sts_why_set(why, "member '%s' is not %s", fields[f].name,
                        fields[f].type == JSON_INTEGER ? "an integer" : "a string");
            goto done;
        }
        val[f] = v;
    }
    for (size_t f = 0; f < F_COUNT; f++) {
        if (f != F_POLICY && val[f] == NULL) {
            sts_why_set(why, "member '%s' is missing", fields[f].name);
            goto done;
        }
    }
    n = json_integer_value(val[F_V]);
    if (n != STS_STORE_JSON_VERSION) {
        sts_why_set(why, "format version %lld, want %d", (long long)n, STS_STORE_JSON_VERSION);
        goto done;
    }
    if (!copy_string(val[F_DOMAIN], out->domain, sizeof(out->domain))) {
        sts_why_set(why, "domain longer than %d bytes", STS_DOMAIN_MAX);
        goto done;
    }
    n = json_integer_value(val[F_KIND]);
    if (n != STS_ENTRY_POLICY && n != STS_ENTRY_NOPOLICY && n != STS_ENTRY_FAILED) {
        sts_why_set(why, "kind %lld is not 1, 2 or 3", (long long)n);
        goto done;
    }
    out->kind = (sts_entry_kind)n;
    if (!copy_string(val[F_ID], out->id, sizeof(out->id))) {
        sts_why_set(why, "id longer than %d bytes", STS_ID_MAX);
        goto done;
    }
    if (val[F_POLICY] != NULL) {
        size_t plen = json_string_length(val[F_POLICY]);

        if (plen > STS_POLICY_MAX_BODY) {
            sts_why_set(why, "policy text is %zu bytes, the limit is %u", plen,
                        STS_POLICY_MAX_BODY);
            goto done;
        }
        st = sts_store_record_set_policy(out, json_string_value(val[F_POLICY]), plen);
        if (st != STS_OK) {
            sts_why_set(why, "out of memory decoding a record");
            goto done;
        }
        st = STS_PERMFAIL;
    }
    out->fetched_at = (int64_t)json_integer_value(val[F_FETCHED_AT]);
    out->checked_at = (int64_t)json_integer_value(val[F_CHECKED_AT]);
    out->expires_at = (int64_t)json_integer_value(val[F_EXPIRES_AT]);
    out->last_used = (int64_t)json_integer_value(val[F_LAST_USED]);
    st = sts_store_record_check(out, why);
done:
    if (st != STS_OK)
        sts_cache_record_clear(out);
    json_decref(root);
    return st;
}

/* ------------------------------------------------------------ "none" */

static sts_status none_put(void *be, const sts_cache_record *r, sts_why *why)
{
    (void)be;
    (void)r;
    (void)why;
    return STS_OK;
}

static sts_status none_get(void *be, const char *domain, sts_cache_record *out, sts_why *why)
{
    (void)be;
    (void)out;
    sts_why_set(why, "%s: not stored (CacheStore none keeps nothing)", domain);
    return STS_NOTFOUND;
}

static sts_status none_del(void *be, const char *domain, sts_why *why)
{
    (void)be;
    (void)domain;
    (void)why;
    return STS_OK;
}

static sts_status none_clear(void *be, sts_why *why)
{
    (void)be;
    (void)why;
    return STS_OK;
}

static sts_status none_load(void *be, sts_store_each_cb *each, void *arg, size_t *skipped,
                            sts_why *why)
{
    (void)be;
    (void)each;
    (void)arg;
    (void)skipped;
    (void)why;
    return STS_OK;
}

static void none_close(void *be)
{
    (void)be;
}

static const sts_store_ops none_ops = {
    .name = "none",
    .put = none_put,
    .get = none_get,
    .del = none_del,
    .clear = none_clear,
    .load = none_load,
    .close = none_close,
};

/* ------------------------------------------------------------ front end */

sts_status sts_store_open(const char *spec, sts_store **out, sts_why *why)
{
    char shown[STORE_SHOW_MAX * 4 + 1];
    sts_store *s = NULL;
    sts_status st = STS_PERMFAIL;
    sts_cur v;

    if (out == NULL) {
        sts_why_set(why, "no place for the store");
        goto done;
    }
    *out = NULL;
    if (spec == NULL) {
        sts_why_set(why, "no cache store given");
        goto done;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        st = STS_NOMEM;
        sts_why_set(why, "out of memory opening the cache store");
        goto done;
    }
    v = sts_cur_str(spec);
    if (sts_cur_eq_nocase(&v, "none")) {
        s->ops = &none_ops;
        sts_why_set(why, "%s", "");
        st = STS_OK;
    } else if (sts_cur_take_lit_nocase(&v, "sqlite:")) {
        st = sts_store_sqlite_open(v.p, s, why);
    } else if (sts_cur_take_lit_nocase(&v, "redis://")) {
        st = sts_store_redis_open(spec, s, why);
    } else {
        sts_why_set(why,
                    "'%s' is not a cache store (sqlite:PATH, redis://HOST[:PORT][/DB] or none)",
                    show(shown, sizeof(shown), spec, strlen(spec)));
    }
    /* Redis down at start-up is TEMPFAIL with a usable store: it serves
     * from memory and reconnects later. */
    if (s->ops != NULL && (st == STS_OK || st == STS_TEMPFAIL)) {
        *out = s;
        s = NULL;
    }
done:
    free(s);
    return st;
}

void sts_store_close(sts_store *s)
{
    if (s == NULL)
        return;
    s->ops->close(s->be);
    free(s);
}

const char *sts_store_backend(const sts_store *s)
{
    return s != NULL ? s->ops->name : "none";
}

/* A domain argument: the same rule as a stored record's domain. */
static sts_status domain_arg(const char *domain, sts_why *why)
{
    char shown[STORE_SHOW_MAX * 4 + 1];
    size_t len;

    if (domain == NULL) {
        sts_why_set(why, "no domain");
        return STS_PERMFAIL;
    }
    len = strnlen(domain, STS_DOMAIN_MAX + 1);
    if (!sts_store_domain_ok(domain, len)) {
        sts_why_set(why, "'%s' is not a lower-case host name",
                    show(shown, sizeof(shown), domain, len));
        return STS_PERMFAIL;
    }
    return STS_OK;
}

static sts_status no_store(sts_why *why)
{
    sts_why_set(why, "no store");
    return STS_PERMFAIL;
}

/* Puts between two counts of a capped store: often enough that a flood
 * of new domains overshoots the cap by little, rarely enough that the
 * count (a scan of the key index) costs nothing that matters. */
static uint64_t store_check_every(uint64_t max)
{
    uint64_t n = max / 8 + 1;

    return n < 1024 ? n : 1024;
}

void sts_store_set_max_entries(sts_store *s, uint64_t max)
{
    if (s == NULL)
        return;
    s->max_entries = max;
    s->puts_to_check = 0; /* count at the next put */
}

/* After a put into a capped store: count now and then, trim when over. */
static sts_status store_bound(sts_store *s, sts_why *why)
{
    uint64_t removed = 0;
    sts_status st;

    if (s->puts_to_check > 0) {
        s->puts_to_check--;
        return STS_OK;
    }
    s->puts_to_check = store_check_every(s->max_entries) - 1;
    st = s->ops->trim(s->be, s->max_entries, s->max_entries - s->max_entries / 10, &removed,
                      why);
    if (st == STS_OK && removed > 0)
        sts_why_set(why, "the store held more than %llu records (CacheStoreMaxEntries): "
                    "removed %llu, failed and no-policy records first, then the least "
                    "recently used policies", (unsigned long long)s->max_entries,
                    (unsigned long long)removed);
    return st;
}

sts_status sts_store_put(sts_store *s, const sts_cache_record *r, sts_why *why)
{
    sts_status st;

    if (s == NULL)
        return no_store(why);
    st = sts_store_record_check(r, why);
    if (st != STS_OK)
        return st;
    st = s->ops->put(s->be, r, why);
    if (st == STS_OK && s->max_entries > 0 && s->ops->trim != NULL)
        st = store_bound(s, why);
    return st;
}

sts_status sts_store_get(sts_store *s, const char *domain, sts_cache_record *out, sts_why *why)
{
    sts_status st;

    if (s == NULL || out == NULL)
        return no_store(why);
    memset(out, 0, sizeof(*out));
    st = domain_arg(domain, why);
    if (st != STS_OK)
        return st;
    st = s->ops->get(s->be, domain, out, why);
    if (st == STS_OK && strcmp(out->domain, domain) != 0) {
        /* A Redis value copied under another key, say. */
        sts_why_set(why, "the record stored for %s cannot be decoded: it names %s", domain,
                    out->domain);
        sts_cache_record_clear(out);
        st = STS_PERMFAIL;
    }
    return st;
}

sts_status sts_store_delete(sts_store *s, const char *domain, sts_why *why)
{
    sts_status st;

    if (s == NULL)
        return no_store(why);
    st = domain_arg(domain, why);
    if (st != STS_OK)
        return st;
    return s->ops->del(s->be, domain, why);
}

sts_status sts_store_clear(sts_store *s, sts_why *why)
{
    if (s == NULL)
        return no_store(why);
    return s->ops->clear(s->be, why);
}

sts_status sts_store_prune(sts_store *s, int64_t before, sts_why *why)
{
    if (s == NULL)
        return no_store(why);
    return s->ops->prune != NULL ? s->ops->prune(s->be, before, why) : STS_OK;
}

sts_status sts_store_load(sts_store *s, sts_store_each_cb *each, void *arg, size_t *skipped,
                          sts_why *why)
{
    size_t dummy = 0;

    if (skipped == NULL)
        skipped = &dummy;
    *skipped = 0;
    if (s == NULL || each == NULL)
        return no_store(why);
    return s->ops->load(s->be, each, arg, skipped, why);
}

sts_status sts_store_purge_note(sts_store *s, const char *domain, sts_why *why)
{
    if (s == NULL)
        return no_store(why);
    if (domain != NULL && !sts_store_domain_ok(domain, strlen(domain))) {
        sts_why_set(why, "not a domain name");
        return STS_PERMFAIL;
    }
    return s->ops->purge_note != NULL ? s->ops->purge_note(s->be, domain, why) : STS_OK;
}

sts_status sts_store_purges_since(sts_store *s, uint64_t *seq, sts_store_purge_cb *each,
                                  void *arg, sts_why *why)
{
    if (s == NULL)
        return no_store(why);
    return s->ops->purges_since != NULL ? s->ops->purges_since(s->be, seq, each, arg, why)
                                        : STS_OK;
}
