/*
 * config.c - the configuration file shared by mtasts-milter and
 * mtasts-query (see config.h): reading it line by line, with each error
 * placed at its line and a key given twice refused, on a copy that
 * replaces the current values only when the whole text is good; the same
 * for one command-line override (sts_config_set).  The keys themselves -
 * table, defaults, what each value may be - are config_keys.c.
 */
#include "conf/config.h"
#include "conf/config_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "smap/smap_profile.h"

#define CONFIG_MAX_FILE (1024 * 1024) /* bytes of a whole config file */

/* ------------------------------------------------------------ public API */

void sts_config_free(sts_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < sts_config_keys_n; i++)
        sts_config_keys_free(&sts_config_keys[i], cfg);
}

sts_status sts_config_defaults(sts_config *cfg)
{
    sts_why why;

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < sts_config_keys_n; i++) {
        const sts_config_key *k = &sts_config_keys[i];
        sts_status st;

        if (k->def == NULL)
            continue;
        st = sts_config_keys_apply(k, sts_cur_str(k->def), cfg, &why);
        if (st == STS_NOMEM) {
            sts_config_free(cfg);
            return STS_NOMEM;
        }
        if (st != STS_OK) {
            /* The table is compiled in: a refused default is a bug that
             * test_config catches; never ship a half-filled config. */
            (void)fprintf(stderr, "config.c: bad default for %s: %s\n", k->name, why.text);
            abort();
        }
    }
    return STS_OK;
}

static bool not_wsp(unsigned char c)
{
    return !sts_is_wsp(c);
}

sts_status sts_config_parse(const char *text, size_t len, const char *name, sts_config *cfg,
                            sts_why *why)
{
    sts_config tmp;
    size_t seen[STS_CONFIG_KEYS_MAX] = { 0 }; /* line that set each key in this text, 0 = none */
    size_t prof_line[STS_SMAP_MAX_PROFILES]; /* line of each SocketmapProfile */
    size_t nprof = 0;
    sts_cur all = sts_cur_make(text, len);
    size_t lineno = 0;
    sts_status st = STS_OK;
    sts_why reason;
    sts_config_shown s;

    memset(&tmp, 0, sizeof(tmp));
    if (name == NULL)
        name = "(config)";
    if (len > CONFIG_MAX_FILE) {
        sts_why_set(why, "%s: larger than %d bytes", name, CONFIG_MAX_FILE);
        return STS_PERMFAIL;
    }
    while (!sts_cur_empty(&all)) {
        sts_cur line, key;
        const sts_config_key *k;
        size_t ki;

        lineno++;
        if (sts_cur_take_until(&all, '\n', &line)) {
            (void)sts_cur_take_char(&all, '\n');
        } else {
            line = all; /* last line without a line end */
            all = sts_cur_make(all.p + all.len, 0);
        }
        if (line.len > 0 && line.p[line.len - 1] == '\r')
            line.len--;
        if (line.len > STS_CONFIG_MAX_LINE) {
            sts_why_set(why, "%s:%zu: line longer than %d bytes", name, lineno,
                        STS_CONFIG_MAX_LINE);
            st = STS_PERMFAIL;
            goto done;
        }
        if (line.len > 0 && memchr(line.p, '\0', line.len) != NULL) {
            sts_why_set(why, "%s:%zu: NUL byte in line", name, lineno);
            st = STS_PERMFAIL;
            goto done;
        }
        sts_cur_skip_wsp(&line);
        sts_cur_rtrim_wsp(&line);
        if (sts_cur_empty(&line) || line.p[0] == '#')
            continue;

        (void)sts_cur_take_while(&line, not_wsp, &key);
        k = sts_config_keys_find(key);
        if (k == NULL) {
            sts_why_set(why, "%s:%zu: unknown key '%s'", name, lineno,
                        sts_config_keys_show(&s, key));
            st = STS_PERMFAIL;
            goto done;
        }
        ki = (size_t)(k - sts_config_keys);
        if (k->type == STS_KT_SMAP_PROFILE) {
            size_t dup = SIZE_MAX;
            sts_cur pname = { "", 0 }, first;

            sts_cur_skip_wsp(&line);
            first = line;
            (void)sts_cur_take_while(&first, not_wsp, &pname);
            st = sts_config_keys_value_ok(line, &reason)
                     ? sts_config_keys_apply_profile(k, line, &tmp, &dup, &reason)
                     : STS_PERMFAIL;
            if (st == STS_PERMFAIL && dup < nprof)
                sts_why_set(why, "%s:%zu: %s %s given twice (first on line %zu)", name, lineno,
                            k->name, sts_config_keys_show(&s, pname), prof_line[dup]);
            else if (st == STS_PERMFAIL)
                sts_why_set(why, "%s:%zu: %s: %s", name, lineno, k->name, reason.text);
            if (st != STS_OK)
                goto done;
            prof_line[nprof++] = lineno;
            seen[ki] = lineno;
            continue;
        }
        if (seen[ki] != 0) {
            sts_why_set(why, "%s:%zu: %s given twice (first on line %zu)", name, lineno,
                        k->name, seen[ki]);
            st = STS_PERMFAIL;
            goto done;
        }
        sts_cur_skip_wsp(&line);
        st = sts_config_keys_apply(k, line, &tmp, &reason);
        if (st == STS_PERMFAIL)
            sts_why_set(why, "%s:%zu: %s: %s", name, lineno, k->name, reason.text);
        if (st != STS_OK)
            goto done;
        seen[ki] = lineno;
    }
    for (size_t i = 0; i < sts_config_keys_n; i++)
        if (seen[i] != 0)
            sts_config_keys_move(&sts_config_keys[i], cfg, &tmp);
done:
    sts_config_free(&tmp);
    return st;
}

sts_status sts_config_set(sts_config *cfg, const char *key, const char *value, sts_why *why)
{
    const sts_config_key *k = sts_config_keys_find(sts_cur_str(key));
    sts_config tmp;
    sts_cur v = sts_cur_str(value);
    sts_status st;
    sts_why reason;
    sts_config_shown s;

    if (k == NULL) {
        sts_why_set(why, "unknown key '%s'", sts_config_keys_show(&s, sts_cur_str(key)));
        return STS_PERMFAIL;
    }
    memset(&tmp, 0, sizeof(tmp));
    sts_cur_skip_wsp(&v);
    sts_cur_rtrim_wsp(&v);
    st = sts_config_keys_apply(k, v, &tmp, &reason);
    if (st == STS_PERMFAIL)
        sts_why_set(why, "%s: %s", k->name, reason.text);
    if (st == STS_OK)
        sts_config_keys_move(k, cfg, &tmp);
    sts_config_free(&tmp);
    return st;
}

sts_status sts_config_load(const char *path, sts_config *cfg, sts_why *why)
{
    sts_buf b;
    char chunk[8192];
    sts_status st = STS_OK;
    int fd;

    sts_buf_init(&b, CONFIG_MAX_FILE);
    fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        sts_why_set(why, "cannot open %s: %s", path, strerror(errno));
        return STS_PERMFAIL;
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            sts_why_set(why, "cannot read %s: %s", path, strerror(errno));
            st = STS_PERMFAIL;
            goto done;
        }
        if (n == 0)
            break;
        st = sts_buf_append(&b, chunk, (size_t)n);
        if (st == STS_PERMFAIL)
            sts_why_set(why, "%s: larger than %d bytes", path, CONFIG_MAX_FILE);
        if (st != STS_OK)
            goto done;
    }
    st = sts_config_parse(b.data != NULL ? b.data : "", b.len, path, cfg, why);
done:
    (void)close(fd);
    sts_buf_free(&b);
    return st;
}

void sts_config_print(const sts_config *cfg, FILE *fp)
{
    for (size_t i = 0; i < sts_config_keys_n; i++)
        sts_config_keys_print(&sts_config_keys[i], cfg, fp);
}

const char *sts_config_key_name(size_t i)
{
    return i < sts_config_keys_n ? sts_config_keys[i].name : NULL;
}
