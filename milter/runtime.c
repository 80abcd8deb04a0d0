/*
 * runtime.c - the daemon's shared state (see runtime.h): the settings
 * snapshot swapped under one lock on reload (CONVENTIONS.md "State and
 * threads"), the engine and the decision log.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "sts/domain.h"
#include "runtime.h"

sts_engine *mt_engine;
sts_dlog *mt_dlog;

static pthread_mutex_t rt_mu = PTHREAD_MUTEX_INITIALIZER;
static mt_runtime *rt_current;
static atomic_uint rt_generation; /* bumped after each install, under rt_mu */

/* ------------------------------------------------------------ runtime snapshot */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void runtime_free(mt_runtime *rt)
{
    if (rt == NULL)
        return;
    for (size_t i = 0; i < rt->n_local; i++)
        free(rt->local_domains[i]);
    free(rt->local_domains);
    free(rt->profiles);
    sts_site_free(rt->site);
    sts_config_free(&rt->cfg);
    free(rt);
}

mt_runtime *mt_runtime_new(sts_config *cfg, sts_why *why)
{
    mt_runtime *rt = calloc(1, sizeof(*rt));
    sts_cur list, item;
    sts_why sub = { "" };

    if (rt == NULL) {
        sts_config_free(cfg);
        sts_why_set(why, "out of memory");
        return NULL;
    }
    rt->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg));
    rt->refs = 1;
    rt->fail_action = sts_str_eq_nocase(rt->cfg.lookup_fail_action, "tempfail") ? STS_FAIL_TEMPFAIL
                                                                                 : STS_FAIL_ACCEPT;
    list = sts_cur_str(rt->cfg.local_domains);
    while (sts_cur_take_item(&list, ',', &item)) {
        char norm[STS_DOMAIN_MAX + 1];
        char **grown;

        if (item.len == 0)
            continue;
        if (sts_domain_normalize(item.p, item.len, norm, &sub) != STS_OK) {
            sts_why_set(why, "LocalDomains: %s", sub.text);
            goto fail;
        }
        grown = sts_realloc_array(rt->local_domains, rt->n_local + 1, sizeof(*grown));
        if (grown == NULL)
            goto nomem;
        rt->local_domains = grown;
        if ((rt->local_domains[rt->n_local] = strdup(norm)) == NULL)
            goto nomem;
        rt->n_local++;
    }
    if (rt->n_local > 1)
        qsort(rt->local_domains, rt->n_local, sizeof(char *), cmp_str);
    switch (sts_smap_profiles_build(rt->cfg.socketmap_profiles, &rt->profiles, &sub)) {
    case STS_OK:
        break;
    case STS_NOMEM:
        goto nomem;
    default:
        sts_why_set(why, "SocketmapProfile: %s", sub.text);
        goto fail;
    }
    /* Read on every reload (SIGHUP), as the service user after the first. */
    if (rt->cfg.site_tls_policy_file != NULL) {
        switch (sts_site_load(rt->cfg.site_tls_policy_file, &rt->site, &sub)) {
        case STS_OK:
            break;
        case STS_NOMEM:
            goto nomem;
        default:
            sts_why_set(why, "SiteTLSPolicyFile: %s", sub.text);
            goto fail;
        }
        sts_log(STS_LOG_INFO, "-", "site-tls-policy", "file=%s entries=%zu",
                rt->cfg.site_tls_policy_file, sts_site_count(rt->site));
    }
    return rt;
nomem:
    sts_why_set(why, "out of memory");
fail:
    runtime_free(rt);
    return NULL;
}

mt_runtime *mt_runtime_acquire(void)
{
    mt_runtime *rt;

    pthread_mutex_lock(&rt_mu);
    rt = rt_current;
    rt->refs++;
    pthread_mutex_unlock(&rt_mu);
    return rt;
}

void mt_runtime_release(mt_runtime *rt)
{
    bool last;

    pthread_mutex_lock(&rt_mu);
    last = --rt->refs == 0;
    pthread_mutex_unlock(&rt_mu);
    if (last)
        runtime_free(rt);
}

void mt_runtime_install(mt_runtime *rt)
{
    mt_runtime *old;

    pthread_mutex_lock(&rt_mu);
    old = rt_current;
    rt_current = rt;
    atomic_fetch_add(&rt_generation, 1);
    pthread_mutex_unlock(&rt_mu);
    if (old != NULL)
        mt_runtime_release(old);
}

unsigned mt_runtime_generation(void)
{
    return atomic_load(&rt_generation);
}

bool mt_runtime_is_local(const mt_runtime *rt, const char *domain)
{
    const char *key = domain;

    return rt->n_local > 0 &&
           bsearch(&key, rt->local_domains, rt->n_local, sizeof(char *), cmp_str) != NULL;
}

