/*
 * route.h - is a recipient the milter's business?  Only recipients that
 * the MTA delivers by SMTP to the recipient domain's own MX hosts are
 * (RFC 8461 3.4, 5): the MTA says how it will deliver at RCPT time, in
 * the milter macros {rcpt_mailer} (Postfix: the transport from
 * trivial-rewrite, transport_maps included; Sendmail: the mailer) and
 * {rcpt_host} (the next hop).  Local, virtual, lmtp, pipe and other
 * non-SMTP deliveries, a relayhost / SMART_HOST, and a transport map to
 * an internal host are not: routing them would send local mail out, and
 * MTA-STS then applies at the relay.  Pure functions, unit-tested.
 */
#ifndef STS_ROUTE_H
#define STS_ROUTE_H

#include <stddef.h>

typedef enum sts_route {
    STS_ROUTE_OWN_MX,    /* outbound SMTP to the recipient domain's own MX hosts */
    STS_ROUTE_ELSEWHERE, /* anything else: the reason says what */
    STS_ROUTE_UNKNOWN,   /* the MTA sent no {rcpt_mailer}: taken as OWN_MX */
} sts_route;

/* The transports that are outbound SMTP unless a key says otherwise:
 * Postfix smtp and relay; Sendmail esmtp, smtp, smtp8, dsmtp, relay. */
#define STS_ROUTE_DEFAULT_TRANSPORTS "smtp,relay,esmtp,smtp8,dsmtp"

/* Classify one recipient of the normalised domain (domain.h) from the
 * MTA's macros (NULL when not sent).  transports: comma list of transport
 * names that count as outbound SMTP (compared without regard to case;
 * NULL = STS_ROUTE_DEFAULT_TRANSPORTS).
 * The next hop is the domain's own when it names the recipient domain,
 * optionally with ":25" (in any spelling sts_domain_normalize accepts,
 * e.g. with a trailing dot or as U-labels); "[host]" (no MX lookup), a
 * list of hops, another host or another port are elsewhere.  A missing
 * {rcpt_host} with an SMTP transport is OWN_MX (Sendmail sends none for
 * some mailers; the transport decides).  For ELSEWHERE, reason (at least
 * 1 byte) gets a log-safe sentence naming the transport and next hop. */
sts_route sts_route_classify(const char *domain, const char *mailer, const char *host,
                             const char *transports, char *reason, size_t rsz);

#endif
