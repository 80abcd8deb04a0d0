/*
 * domain.h - recipient and policy domain names.
 *
 * Nothing is ever put into a DNS query or a URL unless it came out of
 * sts_domain_normalize().  A normalised name is lower-case A-labels
 * (LDH: letters, digits, hyphen), no trailing dot, labels 1..63 octets,
 * at most 253 octets in all.
 */
#ifndef STS_DOMAIN_H
#define STS_DOMAIN_H

#include <stdbool.h>
#include <stddef.h>

#include "base/status.h"

#define STS_DOMAIN_MAX 253

/* Normalise the domain in[0..len) into out (NUL-terminated):
 * - one trailing dot removed, ASCII lower-cased;
 * - U-labels (UTF-8) converted to A-labels with libidn2 (IDNA2008,
 *   UTS#46 non-transitional mapping);
 * - refused with STS_PERMFAIL and a reason: address literals ("[...]"),
 *   empty input, empty labels, a label over 63 octets, a name over 253,
 *   any byte not allowed in a host name (LDH), a label starting or ending
 *   with '-', an all-numeric last label (an IPv4 address is not a domain),
 *   invalid IDNA.
 * Returns STS_OK, STS_PERMFAIL or STS_NOMEM. */
sts_status sts_domain_normalize(const char *in, size_t len, char out[STS_DOMAIN_MAX + 1],
                                sts_why *why) STS_MUST_CHECK;

/* True if in[0..len) is an SMTP address literal: starts with '['. */
bool sts_domain_is_literal(const char *in, size_t len);

/* True if s[0..len) is already a valid normalised-form host name in the
 * sense above except that upper case letters are accepted (A-labels only,
 * no trailing dot, no U-labels).  Used for MX host names and patterns. */
bool sts_hostname_valid(const char *s, size_t len);

#endif
