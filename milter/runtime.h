/*
 * runtime.h - what the daemon's parts share: the reloadable runtime
 * settings snapshot, the engine and the decision log.  main.c builds and
 * installs them; the milter callbacks and the socketmap server read them.
 * This module depends on no other part of milter/, so none of them
 * depends on main.c.
 */
#ifndef MT_RUNTIME_H
#define MT_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/config.h"
#include "decision/decide.h"
#include "decision/dlog.h"
#include "engine/engine.h"
#include "smap/smap_profile.h"
#include "smap/smap_site.h"

/* The settings callbacks read, as one immutable reference-counted
 * snapshot; SIGHUP builds a new one and swaps it in (CONVENTIONS.md "State
 * and threads").  A callback holds its snapshot for one call. */
typedef struct mt_runtime {
    unsigned refs; /* changed only under the swap lock */
    sts_config cfg;
    sts_fail_action fail_action;
    char **local_domains; /* normalised, sorted for bsearch */
    size_t n_local;
    sts_smap_profiles *profiles; /* socketmap map names (SocketmapProfile + built-ins) */
    sts_site_table *site;        /* SiteTLSPolicyFile, read when the snapshot was built */
} mt_runtime;

/* Build a runtime from a loaded config (takes the config over), reading
 * SiteTLSPolicyFile.  NULL on OOM (the config is freed), a bad LocalDomains
 * entry or SocketmapProfile, or a site file that cannot be read or parsed
 * (why says, with FILE:LINE). */
mt_runtime *mt_runtime_new(sts_config *cfg, sts_why *why);

mt_runtime *mt_runtime_acquire(void);
void mt_runtime_release(mt_runtime *rt);

/* Install rt as the current runtime; the old one is released. */
void mt_runtime_install(mt_runtime *rt);

/* Changes with every install: a thread that keeps a runtime across calls
 * (a socketmap worker) re-acquires when it differs, without taking the
 * swap lock on every request.  Any thread. */
unsigned mt_runtime_generation(void);

bool mt_runtime_is_local(const mt_runtime *rt, const char *domain);

/* Set once by main.c before the milter and the socketmap start, read by
 * both. */
extern sts_engine *mt_engine;
extern sts_dlog *mt_dlog; /* NULL when DecisionLog is unset */

#endif
