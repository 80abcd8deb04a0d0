/*
 * buf.c - bounded cursor and capped growable buffer (see buf.h).
 * Every parser of network input in src/ is built on these primitives.
 */
#include "base/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sts_cur sts_cur_str(const char *s)
{
    return sts_cur_make(s, s != NULL ? strlen(s) : 0);
}

static void cur_advance(sts_cur *c, size_t n)
{
    c->p += n;
    c->len -= n;
}

bool sts_cur_take_char(sts_cur *c, char ch)
{
    if (c->len == 0 || c->p[0] != ch)
        return false;
    cur_advance(c, 1);
    return true;
}

bool sts_cur_take_lit(sts_cur *c, const char *lit)
{
    size_t n = strlen(lit);

    if (c->len < n || memcmp(c->p, lit, n) != 0)
        return false;
    cur_advance(c, n);
    return true;
}

bool sts_cur_take_lit_nocase(sts_cur *c, const char *lit)
{
    size_t n = strlen(lit);

    if (c->len < n || !sts_mem_eq_nocase(c->p, lit, n))
        return false;
    cur_advance(c, n);
    return true;
}

size_t sts_cur_skip_wsp(sts_cur *c)
{
    size_t n = 0;

    while (n < c->len && sts_is_wsp((unsigned char)c->p[n]))
        n++;
    cur_advance(c, n);
    return n;
}

bool sts_cur_take_while(sts_cur *c, bool (*pred)(unsigned char), sts_cur *out)
{
    size_t n = 0;

    while (n < c->len && pred((unsigned char)c->p[n]))
        n++;
    if (n == 0)
        return false;
    if (out != NULL)
        *out = sts_cur_make(c->p, n);
    cur_advance(c, n);
    return true;
}

bool sts_cur_take_until(sts_cur *c, char ch, sts_cur *out)
{
    const char *hit = c->len > 0 ? memchr(c->p, ch, c->len) : NULL;
    size_t n;

    if (hit == NULL)
        return false;
    n = (size_t)(hit - c->p);
    if (out != NULL)
        *out = sts_cur_make(c->p, n);
    cur_advance(c, n);
    return true;
}

bool sts_cur_take_number(sts_cur *c, size_t maxdigits, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = 0;

    while (n < c->len && sts_is_digit((unsigned char)c->p[n])) {
        unsigned d = (unsigned)(c->p[n] - '0');

        if (n == maxdigits)
            return false;
        /* v * 10 + d <= max, written so that neither side can wrap;
         * d > max must be tested first or max - d wraps around. */
        if (d > max || v > (max - d) / 10)
            return false;
        v = v * 10 + d;
        n++;
    }
    if (n == 0)
        return false;
    if (out != NULL)
        *out = v;
    cur_advance(c, n);
    return true;
}

bool sts_cur_eq(const sts_cur *c, const char *lit)
{
    size_t n = strlen(lit);

    return c->len == n && memcmp(c->p, lit, n) == 0;
}

bool sts_cur_eq_nocase(const sts_cur *c, const char *lit)
{
    size_t n = strlen(lit);

    return c->len == n && sts_mem_eq_nocase(c->p, lit, n);
}

void sts_cur_rtrim_wsp(sts_cur *c)
{
    while (c->len > 0 && sts_is_wsp((unsigned char)c->p[c->len - 1]))
        c->len--;
}

bool sts_cur_take_item(sts_cur *list, char sep, sts_cur *item)
{
    /* p == NULL marks a list whose last item was taken. */
    if (list->p == NULL)
        return false;
    if (sts_cur_take_until(list, sep, item)) {
        (void)sts_cur_take_char(list, sep);
    } else {
        *item = *list;
        list->p = NULL;
        list->len = 0;
    }
    sts_cur_skip_wsp(item);
    sts_cur_rtrim_wsp(item);
    return true;
}

const char *sts_quote(char *dst, size_t dstsz, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        bool plain = ch >= 0x20 && ch < 0x7f && ch != '\'' && ch != '\\';
        size_t need = plain ? 1 : 4;

        if (o + need + 4 > dstsz) { /* keep room for "..." and NUL */
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        if (plain) {
            dst[o++] = (char)ch;
        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[ch >> 4];
            dst[o++] = hex[ch & 0x0f];
        }
    }
    dst[o] = '\0';
    return dst;
}

bool sts_mem_eq_nocase(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (sts_to_lower((unsigned char)a[i]) != sts_to_lower((unsigned char)b[i]))
            return false;
    return true;
}

bool sts_str_eq_nocase(const char *a, const char *b)
{
    size_t na = strlen(a);

    return na == strlen(b) && sts_mem_eq_nocase(a, b, na);
}

void sts_buf_init(sts_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

static sts_status buf_reserve(sts_buf *b, size_t extra)
{
    size_t need, cap;
    char *p;

    /* The second test keeps need from wrapping when max is SIZE_MAX. */
    if (extra > b->max - b->len || extra >= SIZE_MAX - b->len)
        return STS_PERMFAIL;
    need = b->len + extra + 1; /* room for the terminating NUL */
    if (need <= b->cap)
        return STS_OK;
    cap = b->cap != 0 ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    /* cap - 1 > max, not cap > max + 1: max + 1 wraps to 0 for SIZE_MAX. */
    if (cap - 1 > b->max)
        cap = b->max + 1;
    p = realloc(b->data, cap);
    if (p == NULL)
        return STS_NOMEM;
    b->data = p;
    b->cap = cap;
    return STS_OK;
}

sts_status sts_buf_append(sts_buf *b, const void *p, size_t n)
{
    sts_status st = buf_reserve(b, n);

    if (st != STS_OK)
        return st;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return STS_OK;
}

sts_status sts_buf_append_str(sts_buf *b, const char *s)
{
    return sts_buf_append(b, s, strlen(s));
}

sts_status sts_buf_printf(sts_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    sts_status st;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return STS_PERMFAIL;
    st = buf_reserve(b, (size_t)n);
    if (st != STS_OK)
        return st;
    va_start(ap, fmt);
    (void)vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return STS_OK;
}

void sts_buf_reset(sts_buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

char *sts_buf_steal(sts_buf *b)
{
    char *p = b->data;

    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

void sts_buf_free(sts_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void *sts_calloc_array(size_t n, size_t size)
{
    /* glibc's calloc checks too, but ASan aborts on the overflow instead of
     * returning NULL, and the contract is NULL. */
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    /* Like sts_realloc_array: NULL only ever means failure. */
    if (n == 0 || size == 0)
        n = size = 1;
    return calloc(n, size);
}

void *sts_realloc_array(void *p, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    /* realloc(p, 0) may free p and return NULL, which a caller would read
     * as "out of memory, p still yours" and free again. */
    return realloc(p, n * size != 0 ? n * size : 1);
}

void *sts_array_reserve(void *p, size_t n, size_t *cap, size_t first, size_t size)
{
    size_t ncap;

    if (n < *cap)
        return p;
    if (*cap > SIZE_MAX / 2 || n == SIZE_MAX)
        return NULL;
    ncap = *cap != 0 ? *cap * 2 : first;
    if (ncap <= n)
        ncap = n + 1;
    p = sts_realloc_array(p, ncap, size);
    if (p != NULL)
        *cap = ncap;
    return p;
}

char *sts_strndup(const char *s, size_t n)
{
    char *p = n < SIZE_MAX ? malloc(n + 1) : NULL;

    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
