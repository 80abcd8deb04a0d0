/*
 * smap_profile.h - socketmap profiles: what one map NAME answers.
 *
 * A request "NAME KEY" selects the profile called NAME.  Profiles come
 * from the configuration ("SocketmapProfile NAME option=value ...", one
 * line per profile); "postfix" and "sts" (Sendmail's FEATURE(`sts')) are
 * built in and may be redefined.  A NAME that is no profile is refused
 * (PERM "unknown map"), like a table that does not exist.
 *
 * Two kinds:
 *   tls        a TLS policy for smtp_tls_policy_maps / Sendmail sts maps
 *              (options servername, strict_testing, match, tlsrpt, dane,
 *              site: answer SiteTLSPolicyFile levels, smap_site.h);
 *   transport  a transport name per policy mode for transport_maps
 *              (options enforce=, testing=, none=).
 * Both: on_fail (notfound | temp) and budget (how long a cold domain is
 * waited for).  Pure data and parsing; no I/O.
 */
#ifndef STS_SMAP_PROFILE_H
#define STS_SMAP_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "base/buf.h"
#include "base/status.h"

#define STS_SMAP_NAME_MAX 64       /* bytes of a map name */
#define STS_SMAP_TRANSPORT_MAX 128 /* bytes of a transport result */
#define STS_SMAP_MAX_PROFILES 64   /* profiles in one configuration */
#define STS_SMAP_BUDGET_MAX_MS 60000u
#define STS_SMAP_BUDGET_DEFAULT_MS 3000u

typedef enum sts_smap_kind { STS_SMAP_KIND_TLS, STS_SMAP_KIND_TRANSPORT } sts_smap_kind;
typedef enum sts_smap_on_fail { STS_SMAP_FAIL_NOTFOUND, STS_SMAP_FAIL_TEMP } sts_smap_on_fail;
typedef enum sts_smap_match { STS_SMAP_MATCH_WILDCARD, STS_SMAP_MATCH_EXACT } sts_smap_match;
typedef enum sts_smap_dane { STS_SMAP_DANE_NO, STS_SMAP_DANE_DANE, STS_SMAP_DANE_ONLY } sts_smap_dane;

/* Transport slots, one per outcome class. */
enum { STS_SMAP_T_ENFORCE, STS_SMAP_T_TESTING, STS_SMAP_T_NONE, STS_SMAP_T_COUNT };

/* A profile is plain data (no pointers): copied freely, never freed. */
typedef struct sts_smap_profile {
    char name[STS_SMAP_NAME_MAX + 1];
    sts_smap_kind kind;
    bool servername;      /* tls: append servername=hostname (Postfix >= 3.4) */
    bool strict_testing;  /* tls: answer testing policies like enforce */
    bool tlsrpt;          /* tls: Postfix 3.10 TLSRPT attributes */
    sts_smap_match match; /* tls: how "*." patterns become match= names */
    sts_smap_dane dane;   /* tls: answer dane / dane-only when TLSA is validated */
    bool site;            /* tls: answer the site TLS policy where it is stronger */
    sts_smap_on_fail on_fail; /* nothing usable could be had in time */
    unsigned budget_ms;   /* how long a cold domain is waited for */
    /* transport: result per class ("" = NOTFOUND) */
    char transport[STS_SMAP_T_COUNT][STS_SMAP_TRANSPORT_MAX + 1];
} sts_smap_profile;

/* Parse one profile definition "NAME option=value ..." (the value of a
 * SocketmapProfile line).  Options may come in any order, each at most
 * once; options of the other kind are refused.  STS_OK or STS_PERMFAIL
 * with a reason in why. */
sts_status sts_smap_profile_parse(sts_cur text, sts_smap_profile *out, sts_why *why) STS_MUST_CHECK;

/* The canonical text of a profile, every option spelled out (what
 * `mtasts-milter -n` prints; sts_smap_profile_parse reads it back to the
 * same profile).  Returns false if it does not fit in size bytes. */
bool sts_smap_profile_format(const sts_smap_profile *p, char *out, size_t size);

/* The profiles in force: the configured ones plus the built-ins not
 * redefined.  Immutable once built. */
typedef struct sts_smap_profiles {
    size_t n;
    sts_smap_profile p[]; /* configured ones first, in file order */
} sts_smap_profiles;

/* Build the set from the configured definitions, one per line (as
 * sts_config stores SocketmapProfile; NULL = none).  STS_OK, STS_NOMEM,
 * or STS_PERMFAIL (a bad or repeated definition: why says).  Free with
 * free(). */
sts_status sts_smap_profiles_build(const char *lines, sts_smap_profiles **out,
                                   sts_why *why) STS_MUST_CHECK;

/* The profile called name[0..len), NULL if there is none. */
const sts_smap_profile *sts_smap_profiles_find(const sts_smap_profiles *set, const char *name,
                                               size_t len);

/* True if some profile answers DANE (the discovery then looks up TLSA). */
bool sts_smap_profiles_want_dane(const sts_smap_profiles *set);

/* Print every profile in force as "KEY canonical-text" lines. */
void sts_smap_profiles_print(const char *lines, const char *key, FILE *fp);

#endif
