/*
 * fuzz_rcpt.c - libFuzzer target for what the milter makes of one RCPT:
 * the recipient domain (src/decision/rcpt.c), then, as cb_envrcpt does,
 * the skip or the decision, its tag header value (sts_decision_tag) and
 * its decision log line (sts_dlog_format).
 *
 * Input: byte 0 picks the variant (bit 0: the rest up to the first '\n' is
 * the RCPT argument and what follows is {rcpt_addr}; bits 1-7 and bit 0 of
 * byte 1: the lookup result, policy and flags), byte 1 where to cut the
 * tag; the rest is the address.  Checked, aborting on violation: the parser is deterministic,
 * NUL-terminates within the buffer it was given and never writes past it,
 * fits or refuses a domain the same way at any buffer size, gives a
 * printable reason for every malformed input, reads a plain domain back
 * unchanged, and takes {rcpt_addr}'s domain when it has one; the tag is
 * printable ASCII (a header value: no CR or LF), its length is what
 * sts_decision_tag returns, and a cut tag is a prefix of the whole one;
 * the log line is one JSON object whose domain and action are the
 * decision's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/log.h"
#include "decision/decide.h"
#include "decision/dlog.h"
#include "decision/rcpt.h"
#include "sts/domain.h"
#include "sts/policy.h"

#define OUT_SZ (STS_DOMAIN_MAX * 4 + 1) /* the milter's buffer */
#define SMALL_MAX 64
#define GUARD 16
#define TAG_SZ (STS_DOMAIN_MAX + STS_TAG_MX_MAX + 128) /* the milter's buffer */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const policy_text[] = {
    "version: STSv1\nmode: enforce\nmx: mx1.a.example\nmx: *.b.example\nmax_age: 600\n",
    "version: STSv1\nmode: testing\nmx: mx1.a.example\nmax_age: 86400\n",
    "version: STSv1\nmode: none\nmax_age: 1\n",
};
static sts_policy *policies[3];

static void check_printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            abort();
}

static void check_why(const sts_why *why)
{
    size_t n = strnlen(why->text, sizeof(why->text));

    if (n == 0 || n == sizeof(why->text))
        abort();
    check_printable(why->text, n);
}

/* Is every byte one that the parser reads back as itself in a domain? */
static bool plain_domain(const char *s)
{
    for (; *s != '\0'; s++)
        if (!sts_is_alnum((unsigned char)*s) && *s != '-' && *s != '.' &&
            (unsigned char)*s < 0x80)
            return false;
    return true;
}

static sts_rcpt_status parse_checked(const char *p, size_t n, char *out)
{
    char again[OUT_SZ], small[SMALL_MAX + GUARD];
    size_t small_sz = 1 + (n > 0 ? (unsigned char)p[0] % SMALL_MAX : 0);
    sts_why why = { "" };
    sts_rcpt_status st = sts_rcpt_parse(p, n, out, OUT_SZ, &why), st2;

    if (st != STS_RCPT_DOMAIN && st != STS_RCPT_NO_DOMAIN && st != STS_RCPT_MALFORMED)
        abort();
    if (st == STS_RCPT_MALFORMED)
        check_why(&why);
    if (st == STS_RCPT_DOMAIN && (out[0] == '\0' || strnlen(out, OUT_SZ) == OUT_SZ))
        abort();
    if (sts_rcpt_parse(p, n, again, sizeof(again), NULL) != st ||
        (st == STS_RCPT_DOMAIN && strcmp(again, out) != 0))
        abort();
    /* Any buffer size: the same domain when it fits, refused when not,
     * and nothing written past the size given. */
    memset(small, 0xa5, sizeof(small));
    st2 = sts_rcpt_parse(p, n, small, small_sz, NULL);
    for (size_t i = small_sz; i < sizeof(small); i++)
        if ((unsigned char)small[i] != 0xa5)
            abort();
    if (st == STS_RCPT_DOMAIN && strlen(out) < small_sz)
        st2 = st2 == STS_RCPT_DOMAIN && strcmp(small, out) == 0 ? st : STS_RCPT_MALFORMED;
    else if (st == STS_RCPT_DOMAIN)
        st = STS_RCPT_MALFORMED; /* too long for small: refused */
    if (st2 != st)
        abort();
    return sts_rcpt_parse(p, n, out, OUT_SZ, NULL);
}

/* The tag header value: whole and cut at a size from the input. */
static void check_tag(const sts_decision *d, size_t cut)
{
    char tag[TAG_SZ], part[TAG_SZ];
    size_t n = sts_decision_tag(d, tag, sizeof(tag)), m;

    if (n != strlen(tag) || n == 0)
        abort();
    check_printable(tag, n);
    cut %= sizeof(part);
    m = sts_decision_tag(d, part, cut);
    if (cut == 0) {
        if (m != 0)
            abort();
        return;
    }
    if (m != strlen(part) || m >= cut || m > n || memcmp(part, tag, m) != 0)
        abort();
}

static void check_dlog(const sts_decision *d, const char *qid)
{
    char *line = sts_dlog_format(1795867200, qid, d);
    json_t *j;
    const char *dom, *act;

    if (line == NULL)
        return; /* out of memory */
    if (strchr(line, '\n') != NULL)
        abort();
    j = json_loads(line, 0, NULL);
    if (j == NULL || !json_is_object(j))
        abort();
    dom = json_string_value(json_object_get(j, "domain"));
    act = json_string_value(json_object_get(j, "action"));
    if (dom == NULL || act == NULL || strcmp(dom, d->domain) != 0 ||
        strcmp(act, sts_action_name(d->action)) != 0)
        abort();
    json_decref(j);
    free(line);
}

/* The milter's steps after the domain (cb_envrcpt): an escaped name for
 * a skip, a normalised one for a lookup; the answer is made up from v. */
static void decide(const char *raw, unsigned v, const uint8_t *data, size_t size,
                   sts_decision *d)
{
    char esc[STS_DOMAIN_MAX + 1], norm[STS_DOMAIN_MAX + 1];
    size_t len = strlen(raw);
    sts_why why = { "" };
    sts_answer a;

    sts_log_escape(esc, sizeof(esc), raw, len);
    if (sts_domain_is_literal(raw, len)) {
        sts_decide_skip(esc, "address literal", d);
        return;
    }
    if (sts_domain_normalize(raw, len, norm, &why) != STS_OK) {
        check_why(&why);
        sts_decide_skip(esc, why.text, d);
        return;
    }
    memset(&a, 0, sizeof(a));
    a.result = (sts_result)(v % 4);
    a.policy = a.result == STS_RESULT_POLICY ? policies[(v / 4) % 3] : NULL;
    a.pending = (v & 0x10) != 0;
    a.from_cache = (v & 0x20) != 0;
    a.mx_mismatch = (v & 0x40) != 0;
    /* A TXT id is letters and digits (RFC 8461 3.1); the error any bytes. */
    for (size_t i = 0; i < size && i < STS_ID_MAX && i < 8; i++)
        a.id[i] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[data[i] % 62];
    memcpy(a.error, data, size < sizeof(a.error) - 1 ? size : sizeof(a.error) - 1);
    sts_decide(norm, &a, (v & 0x08) ? STS_FAIL_TEMPFAIL : STS_FAIL_ACCEPT, (v & 0x80) != 0, d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[OUT_SZ], mta_out[OUT_SZ], *arg = NULL, *mta = NULL;
    const char *in;
    unsigned v;
    size_t cut, n, arglen;
    const char *nl;
    sts_rcpt_status st;
    sts_decision d;
    sts_why why = { "" };

    if (size < 2)
        return 0;
    for (size_t i = 0; i < 3; i++)
        if (policies[i] == NULL &&
            sts_policy_parse(policy_text[i], strlen(policy_text[i]), &policies[i], NULL) != STS_OK)
            abort();
    v = data[0];
    cut = data[1];
    in = (const char *)data + 2;
    n = size - 2;

    /* The bytes as one address, embedded NULs and all. */
    st = parse_checked(in, n, out);
    if (st == STS_RCPT_DOMAIN && plain_domain(out) && strlen(out) + 3 <= OUT_SZ) {
        char back[OUT_SZ + 2], dom2[OUT_SZ];

        back[0] = 'x';
        back[1] = '@';
        memcpy(back + 2, out, strlen(out) + 1);
        if (sts_rcpt_parse(back, strlen(back), dom2, sizeof(dom2), NULL) != STS_RCPT_DOMAIN ||
            strcmp(dom2, out) != 0)
            abort();
    }

    /* As the milter gets them: C strings, the argument and {rcpt_addr}. */
    nl = (v & 1) ? memchr(in, '\n', n) : NULL;
    arglen = nl != NULL ? (size_t)(nl - in) : n;
    arg = malloc(arglen + 1);
    if (arg == NULL)
        return 0;
    memcpy(arg, in, arglen);
    arg[arglen] = '\0';
    if (nl != NULL) {
        size_t mlen = n - arglen - 1;

        mta = malloc(mlen + 1);
        if (mta == NULL)
            goto done;
        memcpy(mta, nl + 1, mlen);
        mta[mlen] = '\0';
    }
    st = sts_rcpt_domain(arg, mta, out, sizeof(out), &why);
    if (st == STS_RCPT_MALFORMED)
        check_why(&why);
    if (mta != NULL &&
        sts_rcpt_parse(mta, strlen(mta), mta_out, sizeof(mta_out), NULL) == STS_RCPT_DOMAIN &&
        (st != STS_RCPT_DOMAIN || strcmp(out, mta_out) != 0))
        abort();
    if (st == STS_RCPT_DOMAIN)
        decide(out, (v >> 1) | ((cut & 1u) << 7), data, size, &d);
    else
        sts_decide_skip("-", st == STS_RCPT_MALFORMED ? why.text : "no domain", &d);
    check_tag(&d, cut);
    check_dlog(&d, arg);
    /* Refused past the per-message cap, as msg_full() logs it. */
    d.action = STS_ACT_SPLIT;
    check_tag(&d, cut);
    check_dlog(&d, arg);
done:
    free(arg);
    free(mta);
    return 0;
}
