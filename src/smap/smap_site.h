/*
 * smap_site.h - the site TLS policy table (SiteTLSPolicyFile): a TLS level
 * the site demands for listed domains, answered by the socketmap's tls
 * profiles where the domain's own MTA-STS policy asks for less (RFC 8461
 * leaves domains without a policy to local configuration).
 *
 * The file, one entry per line ('#' starts a comment line; blank lines
 * are skipped):
 *     DOMAIN    LEVEL [match=NAME[:NAME...]]
 * DOMAIN is "example.com" (that domain only) or ".example.com" (every
 * name below it, at any depth, not example.com itself: Postfix's table
 * syntax); case, a trailing dot and U-labels are normalised.  LEVEL is
 * encrypt, verify or secure (Postfix smtp_tls_security_level names);
 * match= (verify and secure only) lists certificate names as Postfix
 * reads them: host names, ".parent" names, or the keywords hostname,
 * nexthop, dot-nexthop.  The most specific entry wins: the domain itself,
 * then its nearest parent.
 */
#ifndef STS_SMAP_SITE_H
#define STS_SMAP_SITE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/status.h"

#define STS_SITE_MAX_FILE (8u * 1024 * 1024) /* bytes of a site file */
#define STS_SITE_MAX_LINE 2048               /* bytes of one line */
#define STS_SITE_MAX_ENTRIES 200000          /* entries of one file */
#define STS_SITE_MAX_MATCH 1024              /* bytes of one match= list */
#define STS_SITE_MAX_NAMES 64                /* names in one match= list */

typedef enum sts_site_level { STS_SITE_ENCRYPT, STS_SITE_VERIFY, STS_SITE_SECURE } sts_site_level;

/* One entry; owned by its table. */
typedef struct sts_site_rule {
    const char *key;    /* "example.com" or ".example.com", normalised */
    sts_site_level level;
    const char *match;  /* ':'-separated names, "" = Postfix's default for the level */
    unsigned line;      /* where it was read */
} sts_site_rule;

typedef struct sts_site_table sts_site_table;

/* Parse a site file's text (len bytes; need not be NUL-terminated).
 * name is what error messages call it ("FILE:LINE: ...").  STS_OK with
 * *out (possibly empty), STS_NOMEM, or STS_PERMFAIL with why. */
sts_status sts_site_parse(const char *text, size_t len, const char *name, sts_site_table **out,
                          sts_why *why) STS_MUST_CHECK;

/* Read and parse the file at path (a regular file of at most
 * STS_SITE_MAX_FILE bytes).  As sts_site_parse; a file that cannot be
 * read is STS_PERMFAIL with the reason. */
sts_status sts_site_load(const char *path, sts_site_table **out, sts_why *why) STS_MUST_CHECK;

/* The entry for a normalised domain (domain.h), NULL if none applies.
 * Valid while the table lives. */
const sts_site_rule *sts_site_find(const sts_site_table *t, const char *domain);

size_t sts_site_count(const sts_site_table *t);

/* Entry i (0 <= i < sts_site_count), in key order. */
const sts_site_rule *sts_site_at(const sts_site_table *t, size_t i);

/* "encrypt", "verify" or "secure". */
const char *sts_site_level_name(sts_site_level level);

void sts_site_free(sts_site_table *t);

#endif
