/*
 * route.c - which recipients are the milter's business, from the MTA's
 * own routing (see route.h; RFC 8461 3.4: when mail goes through a smart
 * host, the smart host's domain is the policy domain, not the
 * recipient's).
 */
#include "decision/route.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "sts/domain.h"

#define ROUTE_SMTP_PORT 25

static bool transport_is_smtp(const char *mailer, const char *transports)
{
    sts_cur list = sts_cur_str(transports);
    sts_cur item;

    while (sts_cur_take_item(&list, ',', &item))
        if (!sts_cur_empty(&item) && item.len == strlen(mailer) &&
            sts_cur_eq_nocase(&item, mailer))
            return true;
    return false;
}

/* True if the next hop names the recipient domain itself (MX lookup, port
 * 25); why gets the reason otherwise. */
static bool nexthop_is_domain(const char *domain, const char *host, char *why, size_t wsz)
{
    sts_cur c = sts_cur_str(host);
    char norm[STS_DOMAIN_MAX + 1];
    sts_why nwhy = { "" };
    size_t colon;

    sts_cur_skip_wsp(&c);
    sts_cur_rtrim_wsp(&c);
    if (c.len > 0 && c.p[0] == '[') {
        (void)snprintf(why, wsz, "a fixed host, no MX lookup");
        return false;
    }
    if (memchr(c.p, ',', c.len) != NULL || memchr(c.p, ' ', c.len) != NULL) {
        (void)snprintf(why, wsz, "a list of hosts");
        return false;
    }
    /* "name:port": the port must be SMTP's own. */
    for (colon = c.len; colon > 0 && c.p[colon - 1] != ':'; colon--)
        ;
    if (colon > 0) {
        sts_cur port = sts_cur_make(c.p + colon, c.len - colon);
        uint64_t n = 0;

        if (!sts_cur_take_number(&port, 5, 65535, &n) || !sts_cur_empty(&port) ||
            n != ROUTE_SMTP_PORT) {
            (void)snprintf(why, wsz, "not SMTP port %d", ROUTE_SMTP_PORT);
            return false;
        }
        c.len = colon - 1;
    }
    if (sts_domain_normalize(c.p, c.len, norm, &nwhy) != STS_OK) {
        (void)snprintf(why, wsz, "not a domain name");
        return false;
    }
    if (strcmp(norm, domain) != 0) {
        (void)snprintf(why, wsz, "another host than the recipient domain");
        return false;
    }
    return true;
}

sts_route sts_route_classify(const char *domain, const char *mailer, const char *host,
                             const char *transports, char *reason, size_t rsz)
{
    char qm[64], qh[STS_DOMAIN_MAX + 8], why[64];

    reason[0] = '\0';
    if (mailer == NULL)
        return STS_ROUTE_UNKNOWN;
    (void)sts_log_escape(qm, sizeof(qm), mailer, strlen(mailer));
    if (mailer[0] == '\0' || !transport_is_smtp(mailer, transports != NULL ? transports
                                                                    : STS_ROUTE_DEFAULT_TRANSPORTS)) {
        (void)snprintf(reason, rsz,
                       "transport %s is not outbound SMTP (SMTPTransports): "
                       "the MTA delivers it itself",
                       mailer[0] != '\0' ? qm : "(empty)");
        return STS_ROUTE_ELSEWHERE;
    }
    if (host == NULL || host[0] == '\0')
        return STS_ROUTE_OWN_MX;
    if (!nexthop_is_domain(domain, host, why, sizeof(why))) {
        (void)sts_log_escape(qh, sizeof(qh), host, strlen(host));
        (void)snprintf(reason, rsz,
                       "transport %s next hop %s is %s, not the domain's MX: "
                       "MTA-STS applies at the relay (RFC 8461 3.4)",
                       qm, qh, why);
        return STS_ROUTE_ELSEWHERE;
    }
    return STS_ROUTE_OWN_MX;
}
