/*
 * dlog_probe.c - "probe" records of the decision log (see dlog_probe.h),
 * written through the same file and lock as the decisions.
 */
#include "decision/dlog_probe.h"

#include <stdio.h>
#include <time.h>

#include <jansson.h>

/* Text that came from a server (a reply quoted in the reason) reaches the
 * JSON as printable ASCII. */
static json_t *ascii_string(const char *s)
{
    char buf[STS_WHY_MAX];
    size_t i;

    for (i = 0; s[i] != '\0' && i + 1 < sizeof(buf); i++)
        buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    buf[i] = '\0';
    return json_string(buf);
}

char *sts_dlog_probe_format(const sts_probe_record *r)
{
    json_t *o = json_object();
    char ts[32];
    struct tm tm;
    time_t t = (time_t)r->time;
    char *text;

    if (o == NULL)
        return NULL;
    if (gmtime_r(&t, &tm) == NULL || strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        (void)snprintf(ts, sizeof(ts), "%lld", (long long)r->time);
    json_object_set_new(o, "time", json_string(ts));
    json_object_set_new(o, "record", json_string("probe"));
    json_object_set_new(o, "domain", ascii_string(r->domain));
    json_object_set_new(o, "policy_id",
                        r->policy_id[0] != '\0' ? ascii_string(r->policy_id) : json_null());
    json_object_set_new(o, "mode", json_string(sts_mode_name(r->mode)));
    json_object_set_new(o, "mx", ascii_string(r->mx));
    json_object_set_new(o, "in_policy", json_boolean(r->in_policy));
    json_object_set_new(o, "ip", r->ip[0] != '\0' ? ascii_string(r->ip) : json_null());
    json_object_set_new(o, "result_type", json_string(sts_probe_result_name(r->result)));
    json_object_set_new(o, "reason", ascii_string(r->detail));
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

sts_status sts_dlog_write_probe(sts_dlog *l, const sts_probe_record *r, sts_why *why)
{
    return sts_dlog_write_line(l, sts_dlog_probe_format(r), why);
}
