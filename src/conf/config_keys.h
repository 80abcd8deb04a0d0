/*
 * config_keys.h - the keys of the configuration file: the table
 * (config_keys.c) of names, types, defaults, ranges and sts_config fields,
 * and what a value of each type may be, how it is stored and printed.
 * Private to config.c, which reads the lines and places the errors.
 */
#ifndef STS_CONFIG_KEYS_H
#define STS_CONFIG_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/buf.h"
#include "base/status.h"
#include "conf/config.h"

#define STS_CONFIG_MAX_LINE 4096 /* bytes of one line, line end excluded */
#define STS_CONFIG_KEYS_MAX 64   /* keys in the table at most: sizes config.c's per-key arrays */
#define STS_CONFIG_SHOW_MAX 48   /* bytes of a bad value quoted in an error */

typedef enum sts_config_key_type {
    STS_KT_STRING,      /* any non-empty text */
    STS_KT_PATH,        /* a file name */
    STS_KT_FILE,        /* a file name that must name a readable regular file now */
    STS_KT_SOCKET,      /* inet:PORT@HOST, inet6:PORT@HOST, unix:PATH, local:PATH */
    STS_KT_USER,        /* user or user:group */
    STS_KT_FACILITY,    /* syslog facility name, stored lower-case */
    STS_KT_DNSLIST,     /* HOST[:PORT],... stored as c-ares "ports csv" */
    STS_KT_STORE,       /* sqlite:PATH, redis://HOST[:PORT][/DB] or none */
    STS_KT_DURATION_MS, /* N, Nms or Ns; stored in milliseconds */
    STS_KT_DURATION_S,  /* N, Ns, Nm, Nh or Nd; stored in seconds */
    STS_KT_UINT,        /* decimal number */
    STS_KT_BOOL,        /* yes/no, true/false, on/off, 1/0 */
    STS_KT_HEADER,      /* a header field name (RFC 5322 ftext), at most 64 bytes */
    STS_KT_FAILACTION,  /* accept or tempfail, stored lower-case */
    STS_KT_DOMAINLIST,  /* comma list of domain names */
    STS_KT_NAMELIST,    /* comma list of transport/mailer names */
    STS_KT_SMAP_PROFILE, /* repeatable, once per name: socketmap profile lines, '\n'-joined */
    STS_KT_LOGLEVEL,    /* error, warning, notice, info, debug; stored lower-case */
    STS_KT_MODE,        /* octal file mode 0..0777, e.g. 0660; printed as 4 octal digits */
    STS_KT_GROUP,       /* a group name */
    STS_KT_CAFILE,      /* a readable PEM file holding at least one CA certificate */
} sts_config_key_type;

typedef struct sts_config_key {
    const char *name;
    sts_config_key_type type;
    const char *def; /* default in config syntax; NULL = unset */
    uint64_t min;    /* numeric types only; durations in ms */
    uint64_t max;
    size_t off; /* offset of the field in sts_config */
    const char *doc;
} sts_config_key;

/* The table, in the order sts_config_print follows; sts_config_keys_n
 * entries, at most STS_CONFIG_KEYS_MAX. */
extern const sts_config_key sts_config_keys[];
extern const size_t sts_config_keys_n;

/* The key called name (ASCII case-insensitive), NULL if there is none. */
const sts_config_key *sts_config_keys_find(sts_cur name);

/* A value quoted for an error message: escaped, cut at
 * STS_CONFIG_SHOW_MAX bytes with "..." after it. */
typedef struct sts_config_shown {
    char text[STS_CONFIG_SHOW_MAX * 4 + 4];
} sts_config_shown;

const char *sts_config_keys_show(sts_config_shown *s, sts_cur v);

/* What every value must be: present, at most STS_CONFIG_MAX_LINE bytes, no
 * control characters; false with the reason in why. */
bool sts_config_keys_value_ok(sts_cur v, sts_why *why);

/* Check and convert value v for key k and store it into cfg, whose slot
 * for k must be empty (a repeatable key adds to it); why gets the reason
 * without any prefix.  STS_PERMFAIL or STS_NOMEM; cfg's slot unchanged. */
sts_status sts_config_keys_apply(const sts_config_key *k, sts_cur v, sts_config *cfg,
                                 sts_why *why) STS_MUST_CHECK;

/* sts_config_keys_apply for the repeatable SocketmapProfile (its value
 * must have passed sts_config_keys_value_ok).  A map name defined before
 * sets *dup to that definition's index, counted from 0 in the order they
 * were added (the caller knows their lines); else *dup is SIZE_MAX. */
sts_status sts_config_keys_apply_profile(const sts_config_key *k, sts_cur v, sts_config *cfg,
                                         size_t *dup, sts_why *why) STS_MUST_CHECK;

/* Move key k's value from src to dst (dst's old value is freed). */
void sts_config_keys_move(const sts_config_key *k, sts_config *dst, sts_config *src);

/* Free key k's value in cfg if it is allocated, leaving the slot empty. */
void sts_config_keys_free(const sts_config_key *k, sts_config *cfg);

/* Print key k's value in config syntax: "Key value" (one line per map in
 * force for SocketmapProfile), which parses back to the same value
 * (tests/fuzz/fuzz_config.c checks it); an unset text value as
 * "# Key (unset)". */
void sts_config_keys_print(const sts_config_key *k, const sts_config *cfg, FILE *fp);

#endif
