/*
 * buf.h - bounded views and capped buffers for untrusted input.
 *
 * sts_cur is a read-only {ptr, len} view.  Every take function advances
 * the view only when it succeeds, so a parser can try one alternative and
 * fall back to another without saving state.  Nothing here reads past
 * p + len and nothing requires NUL termination.
 *
 * sts_buf is a growable byte buffer with a hard cap fixed at init time;
 * appends beyond the cap fail with STS_PERMFAIL and leave the buffer
 * unchanged (a too-large input is rejected, never silently truncated).
 * The data is always NUL-terminated after a successful append.
 *
 * The character classes are ASCII-only and locale-independent: parsers
 * must not use <ctype.h>.
 */
#ifndef STS_BUF_H
#define STS_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct sts_cur {
    const char *p;
    size_t len;
} sts_cur;

static inline sts_cur sts_cur_make(const char *p, size_t len)
{
    sts_cur c = { p, len };
    return c;
}

/* A view of a NUL-terminated string. */
sts_cur sts_cur_str(const char *s);

static inline bool sts_cur_empty(const sts_cur *c)
{
    return c->len == 0;
}

/* Consume ch if it is the next byte. */
bool sts_cur_take_char(sts_cur *c, char ch);

/* Consume lit if the view starts with it (exact, case-sensitive). */
bool sts_cur_take_lit(sts_cur *c, const char *lit);

/* Consume lit if the view starts with it, ASCII case-insensitively. */
bool sts_cur_take_lit_nocase(sts_cur *c, const char *lit);

/* Skip spaces and horizontal tabs (RFC 5234 WSP); returns how many. */
size_t sts_cur_skip_wsp(sts_cur *c);

/* Take the longest non-empty prefix whose bytes all satisfy pred into out.
 * Fails (nothing consumed) if the first byte does not satisfy pred. */
bool sts_cur_take_while(sts_cur *c, bool (*pred)(unsigned char), sts_cur *out);

/* Take everything up to (not including) the first ch into out; ch itself
 * is not consumed.  Fails if ch does not occur.  out may be empty. */
bool sts_cur_take_until(sts_cur *c, char ch, sts_cur *out);

/* Take 1..maxdigits decimal digits whose value is <= max into *out.
 * Fails (nothing consumed) on no digit, more than maxdigits digits, or a
 * value above max.  Leading zeros are allowed and count as digits. */
bool sts_cur_take_number(sts_cur *c, size_t maxdigits, uint64_t max, uint64_t *out);

/* Exact / ASCII case-insensitive comparison of a whole view with lit. */
bool sts_cur_eq(const sts_cur *c, const char *lit);
bool sts_cur_eq_nocase(const sts_cur *c, const char *lit);

/* Remove trailing WSP from a view (does not consume anything). */
void sts_cur_rtrim_wsp(sts_cur *c);

/* Take the next item of a sep-separated list into item, trimmed of WSP,
 * consuming the separator.  False when the list is used up (a view of a
 * NULL string has no items; "" has one empty item).  An item may be empty
 * ("a,,b", "a,"): callers decide whether that is an error. */
bool sts_cur_take_item(sts_cur *list, char sep, sts_cur *item);

/* Copy untrusted bytes into a short reason fragment: printable ASCII is
 * kept (except the quote and backslash), anything else becomes \xHH, and a
 * value too long for dst is cut with "...".  Returns dst. */
const char *sts_quote(char *dst, size_t dstsz, const char *p, size_t n);

/* ASCII, locale-independent character classes. */
static inline bool sts_is_digit(unsigned char ch) { return ch >= '0' && ch <= '9'; }
static inline bool sts_is_alpha(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}
static inline bool sts_is_alnum(unsigned char ch) { return sts_is_alpha(ch) || sts_is_digit(ch); }
static inline bool sts_is_wsp(unsigned char ch) { return ch == ' ' || ch == '\t'; }
static inline unsigned char sts_to_lower(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch - 'A' + 'a') : ch;
}

/* ASCII case-insensitive comparisons (locale-independent strcasecmp). */
bool sts_str_eq_nocase(const char *a, const char *b);
bool sts_mem_eq_nocase(const char *a, const char *b, size_t n);

typedef struct sts_buf {
    char *data; /* NUL-terminated after any successful append; NULL when empty */
    size_t len;
    size_t cap;
    size_t max; /* hard cap on len */
} sts_buf;

/* Initialise an empty buffer that may hold at most max bytes. */
void sts_buf_init(sts_buf *b, size_t max);

/* Append n bytes.  STS_PERMFAIL if len + n would exceed max, STS_NOMEM on
 * allocation failure; on failure the buffer is unchanged. */
sts_status sts_buf_append(sts_buf *b, const void *p, size_t n) STS_MUST_CHECK;
sts_status sts_buf_append_str(sts_buf *b, const char *s) STS_MUST_CHECK;
sts_status sts_buf_printf(sts_buf *b, const char *fmt, ...) STS_PRINTF(2, 3) STS_MUST_CHECK;

/* Empty the buffer but keep its memory and cap. */
void sts_buf_reset(sts_buf *b);

/* Hand the data (NUL-terminated, possibly NULL if never appended) to the
 * caller, who frees it with free(); the buffer is left empty. */
char *sts_buf_steal(sts_buf *b);

void sts_buf_free(sts_buf *b);

/* Overflow-checked allocation helpers (return NULL on overflow or OOM). */
void *sts_calloc_array(size_t n, size_t size);
void *sts_realloc_array(void *p, size_t n, size_t size);
/* Room for element n of a growable array whose capacity is *cap: returns
 * p itself while n < *cap; else p reallocated to twice *cap (first when
 * *cap is 0) with *cap updated.  NULL on overflow or OOM, p and *cap then
 * unchanged.  Use: q = sts_array_reserve(a, n, &cap, 8, sizeof(*a));
 * if (q == NULL) fail; a = q; a[n++] = x; */
void *sts_array_reserve(void *p, size_t n, size_t *cap, size_t first, size_t size);
/* strndup that returns NULL on OOM; the copy is NUL-terminated. */
char *sts_strndup(const char *s, size_t n);

#endif
