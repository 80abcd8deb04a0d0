/*
 * srcaddr.h - the local address this host uses towards a remote IP
 * address, for the sending-mta-ip of RFC 8460 4.3 failure details when
 * the MTA's log does not say (Postfix and Sendmail never log it) and
 * ReportSendingIP is unset.  Asked of the kernel's routing table with a
 * connected UDP socket, which sends nothing.  Right when mtasts-report
 * runs on the MTA's host and the MTA binds no other address
 * (smtp_bind_address, ClientPortOptions Addr=: then set ReportSendingIP).
 */
#ifndef STS_SRCADDR_H
#define STS_SRCADDR_H

#include "base/status.h"

typedef struct sts_srcaddr sts_srcaddr;

/* A new cache of answers (at most STS_SRCADDR_CACHE of them). */
#define STS_SRCADDR_CACHE 4096
sts_status sts_srcaddr_new(sts_srcaddr **out) STS_MUST_CHECK;

/* The local address towards rip (IPv4 or IPv6 text) in text form, "" when
 * there is no route, rip is not an address or the cache is full.  The text lives until
 * sts_srcaddr_free. */
const char *sts_srcaddr_for(sts_srcaddr *s, const char *rip);

void sts_srcaddr_free(sts_srcaddr *s);

#endif
