/*
 * test_sockpeer.c - who is at the other end of a socket
 * (src/base/sockpeer.c): the uid of a UNIX-socket peer and of a loopback
 * TCP peer (this test's own), comparing peers, and their log form.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/sockpeer.h"

static sts_sockpeer uid(uint32_t u)
{
    sts_sockpeer p = { .kind = STS_SOCKPEER_UID, .uid = u };

    return p;
}

static sts_sockpeer ip(const char *text)
{
    sts_sockpeer p = { .kind = STS_SOCKPEER_ADDR };
    struct in_addr a4;

    if (inet_pton(AF_INET, text, &a4) == 1) {
        p.addr[10] = p.addr[11] = 0xff;
        memcpy(p.addr + 12, &a4, 4);
    } else {
        assert_int_equal(inet_pton(AF_INET6, text, p.addr), 1);
    }
    return p;
}

static void test_same(void **state)
{
    const sts_sockpeer unknown = { .kind = STS_SOCKPEER_UNKNOWN };
    const struct {
        const char *name;
        sts_sockpeer a, b;
        bool want;
    } cases[] = {
        { "same_uid", uid(115), uid(115), true },
        { "other_uid", uid(115), uid(0), false },
        { "same_address", ip("192.0.2.1"), ip("192.0.2.1"), true },
        { "other_address", ip("192.0.2.1"), ip("192.0.2.2"), false },
        { "uid_is_not_an_address", uid(0), ip("0.0.0.0"), false },
        { "unknown_is_like_no_other", unknown, unknown, false },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (sts_sockpeer_same(&cases[i].a, &cases[i].b) != cases[i].want)
            fail_msg("case %s: got %d, want %d", cases[i].name, !cases[i].want, cases[i].want);
}

static void test_show(void **state)
{
    const struct {
        const char *name;
        sts_sockpeer p;
        const char *want;
    } cases[] = {
        { "uid", uid(65534), "uid:65534" },
        { "ipv4", ip("192.0.2.1"), "ip:192.0.2.1" },
        { "ipv6", ip("2001:db8::1"), "ip:2001:db8::1" },
        { "unknown", { .kind = STS_SOCKPEER_UNKNOWN }, "unknown" },
    };
    char buf[STS_SOCKPEER_SHOW_MAX];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = sts_sockpeer_show(&cases[i].p, buf, sizeof(buf));

        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %s: got %s, want %s", cases[i].name, got, cases[i].want);
    }
}

static void test_unix_peer_is_its_uid(void **state)
{
    sts_sockpeer_finder f;
    sts_sockpeer p;
    sts_why why = { "" };
    int sv[2];

    (void)state;
    sts_sockpeer_finder_init(&f);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(sts_sockpeer_identify(&f, sv[0], &p, &why), STS_OK);
    if (p.kind != STS_SOCKPEER_UID || p.uid != (uint32_t)getuid())
        fail_msg("got kind %d uid %u, want uid %u", p.kind, p.uid, (unsigned)getuid());
    (void)close(sv[0]);
    (void)close(sv[1]);
    sts_sockpeer_finder_close(&f);
}

/* A loopback TCP connection to ourselves: the kernel's table names our
 * uid; a kernel without sock_diag leaves it unknown (never 127.0.0.1,
 * every local user's address), and says why. */
static void test_loopback_tcp_peer_is_its_uid(void **state)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t al = sizeof(a);
    sts_sockpeer_finder f;
    sts_why why = { "" };
    int l, c, s;

    (void)state;
    sts_sockpeer_finder_init(&f);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    l = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l >= 0);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 4), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
    c = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    s = accept(l, NULL, NULL);
    assert_true(s >= 0);
    for (int round = 0; round < 2; round++) { /* the second reuses the netlink socket */
        sts_sockpeer p;
        sts_status st = sts_sockpeer_identify(&f, s, &p, &why);

        if (st != STS_OK) {
            if (p.kind != STS_SOCKPEER_UNKNOWN || !f.broken || why.text[0] == '\0')
                fail_msg("not told: got kind %d broken %d why \"%s\"", p.kind, f.broken,
                         why.text);
            skip();
        }
        if (p.kind != STS_SOCKPEER_UID || p.uid != (uint32_t)getuid())
            fail_msg("round %d: got kind %d uid %u, want uid %u", round, p.kind, p.uid,
                     (unsigned)getuid());
    }
    (void)close(s);
    (void)close(c);
    (void)close(l);
    sts_sockpeer_finder_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same),
        cmocka_unit_test(test_show),
        cmocka_unit_test(test_unix_peer_is_its_uid),
        cmocka_unit_test(test_loopback_tcp_peer_is_its_uid),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
