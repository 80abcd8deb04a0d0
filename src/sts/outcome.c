/*
 * outcome.c - names and JSON form of a discovery outcome (RFC 8461 3,
 * RFC 8460 4.3 result types).  See outcome.h.
 */
#include "sts/outcome.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

void sts_outcome_init(sts_outcome *o, const char *domain)
{
    size_t n = strlen(domain);

    memset(o, 0, sizeof(*o));
    if (n > STS_DOMAIN_MAX)
        n = STS_DOMAIN_MAX;
    memcpy(o->domain, domain, n);
    o->domain[n] = '\0';
    o->result = STS_RESULT_TEMPERROR;
    o->report_type = STS_RT_NONE;
}

void sts_outcome_clear(sts_outcome *o)
{
    sts_policy_free(o->policy);
    o->policy = NULL;
}

const char *sts_result_name(sts_result r)
{
    switch (r) {
    case STS_RESULT_POLICY:
        return "policy";
    case STS_RESULT_NONE:
        return "none";
    case STS_RESULT_TEMPERROR:
        return "temperror";
    case STS_RESULT_INVALID:
        return "invalid";
    }
    return "temperror";
}

const char *sts_report_type_name(sts_report_type t)
{
    switch (t) {
    case STS_RT_NONE:
        return NULL;
    case STS_RT_FETCH_ERROR:
        return "sts-policy-fetch-error";
    case STS_RT_POLICY_INVALID:
        return "sts-policy-invalid";
    case STS_RT_WEBPKI_INVALID:
        return "sts-webpki-invalid";
    }
    return NULL;
}

/* json_object_set_new() steals the value even when it fails. */
static int set(json_t *obj, const char *key, json_t *val)
{
    return val == NULL ? -1 : json_object_set_new(obj, key, val);
}

sts_status sts_outcome_json(const sts_outcome *o, const sts_mx_check *mx, size_t nmx,
                            const char *source, char **out)
{
    json_t *root = json_object();
    const char *rt = sts_report_type_name(o->report_type);
    sts_status st = STS_NOMEM;
    int rc = 0;

    *out = NULL;
    if (root == NULL)
        goto done;
    rc |= set(root, "domain", json_string(o->domain));
    rc |= set(root, "result", json_string(sts_result_name(o->result)));
    if (o->policy != NULL) {
        json_t *arr = json_array();

        rc |= set(root, "mode", json_string(sts_mode_name(o->policy->mode)));
        for (size_t i = 0; arr != NULL && i < o->policy->n_mx; i++)
            rc |= json_array_append_new(arr, json_string(o->policy->mx[i]));
        rc |= set(root, "mx", arr);
        rc |= set(root, "max_age", json_integer((json_int_t)o->policy->max_age));
    }
    if (o->id[0] != '\0')
        rc |= set(root, "id", json_string(o->id));
    if (o->error[0] != '\0') {
        /* Reasons may quote peer bytes; JSON needs valid UTF-8 and the
         * readers of the line need it printable. */
        char safe[sizeof(o->error)];
        size_t i;

        for (i = 0; o->error[i] != '\0' && i + 1 < sizeof(safe); i++)
            safe[i] = (o->error[i] >= 0x20 && o->error[i] < 0x7f) ? o->error[i] : '?';
        safe[i] = '\0';
        rc |= set(root, "error", json_string(safe));
    }
    rc |= set(root, "report_type", rt != NULL ? json_string(rt) : json_null());
    if (nmx > 0 && o->policy != NULL) {
        json_t *m = json_object();

        for (size_t i = 0; m != NULL && i < nmx; i++)
            rc |= set(m, mx[i].host, json_boolean(mx[i].match));
        rc |= set(root, "mx_match", m);
    }
    if (source != NULL)
        rc |= set(root, "source", json_string(source));
    if (rc != 0)
        goto done;
    *out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (*out != NULL)
        st = STS_OK;
done:
    json_decref(root);
    return st;
}
