/*
 * test_account.c - resolving UserID (src/base/account.c): the spec's
 * shapes, unknown users and groups, an account that is root, and what a
 * process that is not root gets (its own ids, nothing to switch).  The
 * switch itself (setuid and the check that root is gone) is exercised by
 * tests/integration/test_rootfiles.py, as root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include "base/account.h"
#include "unit_run.h"

enum want { W_OK_DROP, W_OK_KEEP, W_FAIL };

/* root_only: the outcome holds for root; a process that is not root gets
 * its own ids and nothing to switch for every well-formed spec. */
static const struct {
    const char *name, *spec;
    enum want want;
    const char *why; /* substring of the reason (NULL: empty) */
} cases[] = {
    { "nobody_drops", "nobody", W_OK_DROP, NULL },
    { "nobody_with_group", "nobody:nogroup", W_OK_DROP, NULL },
    { "root_keeps_with_note", "root", W_OK_KEEP, "is root" },
    { "unknown_user", "no-such-user-xyz", W_FAIL, "user no-such-user-xyz unknown" },
    { "unknown_group", "nobody:no-such-group-xyz", W_FAIL, "group no-such-group-xyz unknown" },
    { "empty", "", W_FAIL, "UserID is empty" },
    { "empty_user", ":nogroup", W_FAIL, "not user or user:group" },
    { "empty_group", "nobody:", W_FAIL, "not user or user:group" },
    { "user_too_long",
      "u123456789012345678901234567890123456789012345678901234567890123456789", W_FAIL,
      "not user or user:group" },
};

static void run_case(void **state)
{
    const __typeof__(cases[0]) *c = *state;
    sts_account a;
    sts_why why = { "" };
    sts_status st = sts_account_resolve(c->spec, &a, &why);
    bool shape_error = c->want == W_FAIL && strstr(c->why, "not user") != NULL;
    bool empty = c->spec[0] == '\0';

    if (geteuid() != 0 && !shape_error && !empty) {
        /* Not root: nothing is looked up, nothing to switch. */
        if (st != STS_OK || a.drop || a.id.uid != geteuid() || a.id.gid != getegid())
            fail_msg("%s as uid %u: got %s drop=%d uid=%u, want ok, no drop, own ids", c->spec,
                     (unsigned)geteuid(), sts_status_name(st), a.drop, (unsigned)a.id.uid);
        return;
    }
    if ((st == STS_OK) != (c->want != W_FAIL))
        fail_msg("%s: got %s (%s), want %s", c->spec, sts_status_name(st), why.text,
                 c->want == W_FAIL ? "failure" : "ok");
    if (c->want != W_FAIL && a.drop != (c->want == W_OK_DROP))
        fail_msg("%s: got drop=%d, want %d", c->spec, a.drop, c->want == W_OK_DROP);
    if (c->why == NULL ? why.text[0] != '\0' : strstr(why.text, c->why) == NULL)
        fail_msg("%s: got reason '%s', want one with '%s'", c->spec, why.text,
                 c->why != NULL ? c->why : "");
    if (c->want == W_OK_DROP) {
        const struct passwd *pw = getpwnam("nobody");
        const struct group *gr = strchr(c->spec, ':') != NULL ? getgrnam("nogroup") : NULL;

        assert_non_null(pw);
        if (a.id.uid != pw->pw_uid || a.id.gid != (gr != NULL ? gr->gr_gid : pw->pw_gid) ||
            strcmp(a.name, "nobody") != 0)
            fail_msg("%s: got %s uid %u gid %u, want nobody's ids", c->spec, a.name,
                     (unsigned)a.id.uid, (unsigned)a.id.gid);
    }
}

/* Nothing to switch is a success that changes nothing. */
static void test_become_without_drop_is_a_no_op(void **state)
{
    sts_account a;
    sts_why why = { "" };
    uid_t uid = geteuid();

    (void)state;
    memset(&a, 0, sizeof(a));
    a.drop = false;
    assert_int_equal(sts_account_become(&a, true, &why), STS_OK);
    assert_int_equal(sts_account_back_to_root(&a, &why), STS_OK);
    assert_int_equal(geteuid(), uid);
}

int main(void)
{
    struct CMUnitTest tests[UNIT_RUN_SLOTS(cases) + 1];
    size_t n = 0;

    for (size_t i = 0; i < UNIT_RUN_SLOTS(cases); i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(run_case, (void *)&cases[i]);
        tests[n++].name = cases[i].name;
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_become_without_drop_is_a_no_op);
    return UNIT_RUN("account", tests, n);
}
