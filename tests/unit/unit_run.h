/*
 * unit_run.h - run a cmocka group built at run time, exactly as filled.
 *
 * cmocka's group runner macros take the array's sizeof, so an array sized
 * larger than what main() filled runs uninitialised slots: garbage that
 * passes or crashes by luck.  UNIT_RUN refuses such a table before
 * anything runs, naming both counts, and hands cmocka the filled count.
 * tests/check-cmocka.sh makes every main() with a table built at run
 * time go through here.  Header-only: each test program includes it once.
 */
#ifndef UNIT_RUN_H
#define UNIT_RUN_H

#include <stddef.h>
#include <stdio.h>

/* Run tests[0..filled) as group `group` between setup and teardown (either
 * may be NULL); slots is the table's capacity.  Returns cmocka's count of
 * failed tests, or 1 when filled != slots. */
static inline int unit_run(const char *group, const struct CMUnitTest *tests, size_t filled,
                           size_t slots, CMFixtureFunction setup, CMFixtureFunction teardown)
{
    if (filled != slots) {
        fprintf(stderr, "%s: the test table has %zu slots but main() filled %zu\n", group,
                slots, filled);
        return 1;
    }
    return _cmocka_run_group_tests(group, tests, filled, setup, teardown);
}

/* For an array (not a pointer): its capacity is taken from sizeof. */
#define UNIT_RUN_SLOTS(tests) (sizeof(tests) / sizeof((tests)[0]))
#define UNIT_RUN(group, tests, filled) \
    unit_run((group), (tests), (filled), UNIT_RUN_SLOTS(tests), NULL, NULL)
#define UNIT_RUN_WITH(group, tests, filled, setup, teardown) \
    unit_run((group), (tests), (filled), UNIT_RUN_SLOTS(tests), (setup), (teardown))

/* The main() of a table-driven test: one test per element of the array
 * cases (each has a .name), run by fn with a pointer to it as its state. */
#define UNIT_MAIN_CASES(group, cases, fn)                                                   \
    int main(void)                                                                          \
    {                                                                                       \
        struct CMUnitTest tests[UNIT_RUN_SLOTS(cases)];                                     \
                                                                                            \
        for (size_t i = 0; i < UNIT_RUN_SLOTS(cases); i++) {                                \
            tests[i] = (struct CMUnitTest)cmocka_unit_test_prestate(fn, (void *)&(cases)[i]); \
            tests[i].name = (cases)[i].name;                                                \
        }                                                                                   \
        return UNIT_RUN(group, tests, UNIT_RUN_SLOTS(cases));                               \
    }

#endif
