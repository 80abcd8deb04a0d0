/*
 * test_ipaddr.c - IP addresses and their special-purpose blocks
 * (src/base/ipaddr.c): every block of the table at its first and last
 * address and just outside it, the exceptions the IANA registries mark
 * globally reachable, addresses that embed an IPv4 address (mapped,
 * NAT64, 6to4), public addresses, and input that is no address at all.
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
#include <sys/un.h>

#include "base/ipaddr.h"

#define PUBLIC NULL

/* want: the prefix of the block the address falls in, PUBLIC for none. */
static const struct {
    const char *name, *addr, *want;
} classify_cases[] = {
    { "this_network_first", "0.0.0.0", "0.0.0.0/8" },
    { "this_network_last", "0.255.255.255", "0.0.0.0/8" },
    { "after_this_network", "1.0.0.0", PUBLIC },
    { "before_10", "9.255.255.255", PUBLIC },
    { "private_10_first", "10.0.0.0", "10.0.0.0/8" },
    { "private_10_last", "10.255.255.255", "10.0.0.0/8" },
    { "after_10", "11.0.0.0", PUBLIC },
    { "before_shared", "100.63.255.255", PUBLIC },
    { "shared_first", "100.64.0.0", "100.64.0.0/10" },
    { "shared_last", "100.127.255.255", "100.64.0.0/10" },
    { "after_shared", "100.128.0.0", PUBLIC },
    { "before_loopback", "126.255.255.255", PUBLIC },
    { "loopback_first", "127.0.0.0", "127.0.0.0/8" },
    { "loopback_usual", "127.0.0.1", "127.0.0.0/8" },
    { "loopback_last", "127.255.255.255", "127.0.0.0/8" },
    { "after_loopback", "128.0.0.0", PUBLIC },
    { "before_link_local", "169.253.255.255", PUBLIC },
    { "link_local_first", "169.254.0.0", "169.254.0.0/16" },
    { "link_local_metadata_service", "169.254.169.254", "169.254.0.0/16" },
    { "link_local_last", "169.254.255.255", "169.254.0.0/16" },
    { "after_link_local", "169.255.0.0", PUBLIC },
    { "before_172_16", "172.15.255.255", PUBLIC },
    { "private_172_16_first", "172.16.0.0", "172.16.0.0/12" },
    { "private_172_16_last", "172.31.255.255", "172.16.0.0/12" },
    { "after_172_16", "172.32.0.0", PUBLIC },
    { "before_ietf_v4", "191.255.255.255", PUBLIC },
    { "ietf_v4_first", "192.0.0.0", "192.0.0.0/24" },
    { "ietf_v4_dummy", "192.0.0.8", "192.0.0.0/24" },
    { "ietf_v4_pcp_anycast_reachable", "192.0.0.9", PUBLIC },
    { "ietf_v4_turn_anycast_reachable", "192.0.0.10", PUBLIC },
    { "ietf_v4_after_anycast", "192.0.0.11", "192.0.0.0/24" },
    { "ietf_v4_nat64_discovery", "192.0.0.170", "192.0.0.0/24" },
    { "ietf_v4_last", "192.0.0.255", "192.0.0.0/24" },
    { "between_ietf_and_test_net_1", "192.0.1.0", PUBLIC },
    { "test_net_1_first", "192.0.2.0", "192.0.2.0/24" },
    { "test_net_1_last", "192.0.2.255", "192.0.2.0/24" },
    { "after_test_net_1", "192.0.3.0", PUBLIC },
    { "deprecated_6to4_relay_left_alone", "192.88.99.1", PUBLIC },
    { "before_192_168", "192.167.255.255", PUBLIC },
    { "private_192_168_first", "192.168.0.0", "192.168.0.0/16" },
    { "private_192_168_last", "192.168.255.255", "192.168.0.0/16" },
    { "after_192_168", "192.169.0.0", PUBLIC },
    { "before_benchmarking", "198.17.255.255", PUBLIC },
    { "benchmarking_first", "198.18.0.0", "198.18.0.0/15" },
    { "benchmarking_last", "198.19.255.255", "198.18.0.0/15" },
    { "after_benchmarking", "198.20.0.0", PUBLIC },
    { "before_test_net_2", "198.51.99.255", PUBLIC },
    { "test_net_2_first", "198.51.100.0", "198.51.100.0/24" },
    { "test_net_2_last", "198.51.100.255", "198.51.100.0/24" },
    { "after_test_net_2", "198.51.101.0", PUBLIC },
    { "before_test_net_3", "203.0.112.255", PUBLIC },
    { "test_net_3_first", "203.0.113.0", "203.0.113.0/24" },
    { "test_net_3_last", "203.0.113.255", "203.0.113.0/24" },
    { "after_test_net_3", "203.0.114.0", PUBLIC },
    { "before_multicast", "223.255.255.255", PUBLIC },
    { "multicast_first", "224.0.0.0", "224.0.0.0/4" },
    { "multicast_last", "239.255.255.255", "224.0.0.0/4" },
    { "reserved_first", "240.0.0.0", "240.0.0.0/4" },
    { "reserved_last_but_broadcast", "255.255.255.254", "240.0.0.0/4" },
    { "limited_broadcast", "255.255.255.255", "255.255.255.255/32" },
    { "public_v4_dns", "8.8.8.8", PUBLIC },
    { "public_v4_one", "1.1.1.1", PUBLIC },

    { "unspecified_v6", "::", "::/128" },
    { "loopback_v6", "::1", "::1/128" },
    { "after_loopback_v6", "::2", "::/0" },
    { "v4_compatible_deprecated", "::127.0.0.1", "::/0" },
    { "mapped_loopback_is_v4_loopback", "::ffff:127.0.0.1", "127.0.0.0/8" },
    { "mapped_private_is_v4_private", "::ffff:10.1.2.3", "10.0.0.0/8" },
    { "mapped_this_network", "::ffff:0.0.0.0", "0.0.0.0/8" },
    { "mapped_public_is_v4_public", "::ffff:8.8.8.8", PUBLIC },
    { "before_mapped", "::fffe:ffff:ffff", "::/0" },
    { "nat64_of_loopback", "64:ff9b::7f00:1", "127.0.0.0/8" },
    { "nat64_of_private", "64:ff9b::192.168.0.1", "192.168.0.0/16" },
    { "nat64_of_public", "64:ff9b::8.8.8.8", PUBLIC },
    { "outside_nat64_96", "64:ff9b:0:0:1::", "::/0" },
    { "local_nat64_first", "64:ff9b:1::", "64:ff9b:1::/48" },
    { "local_nat64_last", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "64:ff9b:1::/48" },
    { "after_local_nat64", "64:ff9b:2::", "::/0" },
    { "discard_first", "100::", "100::/64" },
    { "discard_last", "100::ffff:ffff:ffff:ffff", "100::/64" },
    { "after_discard", "100:0:0:1::", "::/0" },
    { "before_global_unicast", "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/0" },
    { "global_unicast_first", "2000::", PUBLIC },
    { "teredo_first", "2001::", "2001::/32" },
    { "teredo_last", "2001:0:ffff:ffff:ffff:ffff:ffff:ffff", "2001::/32" },
    { "ietf_v6_after_teredo", "2001:1::", "2001::/23" },
    { "ietf_v6_pcp_anycast_reachable", "2001:1::1", PUBLIC },
    { "ietf_v6_turn_anycast_reachable", "2001:1::2", PUBLIC },
    { "ietf_v6_srp_anycast_reachable", "2001:1::3", PUBLIC },
    { "ietf_v6_after_anycast", "2001:1::4", "2001::/23" },
    { "benchmarking_v6_first", "2001:2::", "2001:2::/48" },
    { "benchmarking_v6_last", "2001:2:0:ffff:ffff:ffff:ffff:ffff", "2001:2::/48" },
    { "after_benchmarking_v6", "2001:2:1::", "2001::/23" },
    { "amt_reachable_first", "2001:3::", PUBLIC },
    { "amt_reachable_last", "2001:3:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC },
    { "as112_v6_reachable", "2001:4:112::1", PUBLIC },
    { "after_as112_v6", "2001:4:113::", "2001::/23" },
    { "deprecated_orchid", "2001:10::1", "2001::/23" },
    { "before_orchid_v2", "2001:1f:ffff:ffff:ffff:ffff:ffff:ffff", "2001::/23" },
    { "orchid_v2_reachable_first", "2001:20::", PUBLIC },
    { "orchid_v2_reachable_last", "2001:2f:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC },
    { "drip_reachable_first", "2001:30::", PUBLIC },
    { "drip_reachable_last", "2001:3f:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC },
    { "after_drip", "2001:40::", "2001::/23" },
    { "ietf_v6_last", "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", "2001::/23" },
    { "after_ietf_v6", "2001:200::", PUBLIC },
    { "before_documentation_v6", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC },
    { "documentation_v6_first", "2001:db8::", "2001:db8::/32" },
    { "documentation_v6_last", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::/32" },
    { "after_documentation_v6", "2001:db9::", PUBLIC },
    { "sixtofour_of_loopback", "2002:7f00:1::", "127.0.0.0/8" },
    { "sixtofour_of_private", "2002:a00:1::1", "10.0.0.0/8" },
    { "sixtofour_of_public", "2002:808:808::1", PUBLIC },
    { "before_documentation_3fff", "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC },
    { "documentation_3fff_first", "3fff::", "3fff::/20" },
    { "documentation_3fff_last", "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", "3fff::/20" },
    { "after_documentation_3fff", "3fff:1000::", PUBLIC },
    { "global_unicast_last", "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC },
    { "after_global_unicast", "4000::", "::/0" },
    { "srv6_sids_not_global_unicast", "5f00::1", "::/0" },
    { "before_unique_local", "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/0" },
    { "unique_local_first", "fc00::", "fc00::/7" },
    { "unique_local_last", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fc00::/7" },
    { "after_unique_local", "fe00::", "::/0" },
    { "link_local_v6_first", "fe80::", "fe80::/10" },
    { "link_local_v6_last", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::/10" },
    { "site_local_deprecated", "fec0::1", "::/0" },
    { "multicast_v6_first", "ff00::", "ff00::/8" },
    { "multicast_v6_all_nodes", "ff02::1", "ff00::/8" },
    { "multicast_v6_last", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ff00::/8" },
    { "public_v6_google", "2a00:1450:4001::1", PUBLIC },
    { "public_v6_cloudflare", "2606:4700::1111", PUBLIC },
};

static void test_classify(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(classify_cases) / sizeof(classify_cases[0]); i++) {
        const char *want = classify_cases[i].want;
        const sts_ipblock *b;
        uint8_t a[16];

        if (!sts_ipaddr_from_text(classify_cases[i].addr, a))
            fail_msg("case %s: '%s' does not parse", classify_cases[i].name,
                     classify_cases[i].addr);
        b = sts_ipaddr_special(a);
        if ((b == NULL) != (want == NULL) || (b != NULL && strcmp(b->prefix, want) != 0))
            fail_msg("case %s (%s): got %s, want %s", classify_cases[i].name,
                     classify_cases[i].addr, b != NULL ? b->prefix : "public",
                     want != NULL ? want : "public");
        if (b != NULL && (b->name[0] == '\0' || b->ref[0] == '\0'))
            fail_msg("case %s: block %s has no name or reference", classify_cases[i].name,
                     b->prefix);
    }
}

/* A refusal names the block as its registry does. */
static void test_names(void **state)
{
    const struct {
        const char *name, *addr, *want_name, *want_ref;
    } cases[] = {
        { "loopback", "127.0.0.1", "Loopback", "RFC 1122" },
        { "rfc1918", "192.168.1.1", "Private-Use", "RFC 1918" },
        { "unique_local", "fd00::1", "Unique-Local", "RFC 4193" },
        { "outside_2000_3", "4000::1", "Not Global Unicast (outside 2000::/3)",
          "IANA IPv6 Address Space" },
    };
    uint8_t a[16];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const sts_ipblock *b;

        assert_true(sts_ipaddr_from_text(cases[i].addr, a));
        b = sts_ipaddr_special(a);
        if (b == NULL || strcmp(b->name, cases[i].want_name) != 0 ||
            strcmp(b->ref, cases[i].want_ref) != 0)
            fail_msg("case %s: got %s / %s, want %s / %s", cases[i].name,
                     b != NULL ? b->name : "public", b != NULL ? b->ref : "-",
                     cases[i].want_name, cases[i].want_ref);
    }
}

static void test_text_that_is_no_address(void **state)
{
    static const char *const cases[] = {
        "", "localhost", "mta-sts.example.com", "127.0.0.1:443", "[::1]", "::1%lo",
        "256.0.0.1", "1.2.3", "127.1", "0x7f.0.0.1", " 1.2.3.4", "1.2.3.4 ", "1.2.3.4.5",
        ":::", "1::2::3", "fe80::1/64", "::ffff:1.2.3.256",
    };
    uint8_t a[16];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (sts_ipaddr_from_text(cases[i], a))
            fail_msg("case '%s': got an address, want none", cases[i]);
    assert_false(sts_ipaddr_from_text(NULL, a));
}

static void test_sockaddr(void **state)
{
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(443) };
    struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(8443) };
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    const sts_ipblock *b;
    uint16_t port = 0;
    uint8_t a[16];
    char text[STS_IPADDR_TEXT_MAX];

    (void)state;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(sts_ipaddr_from_sockaddr((struct sockaddr *)&in, sizeof(in), a, &port));
    assert_int_equal(ntohs(port), 443);
    assert_true(sts_ipaddr_is_v4(a));
    assert_string_equal(sts_ipaddr_show(a, text, sizeof(text)), "127.0.0.1");
    b = sts_ipaddr_special_sockaddr((struct sockaddr *)&in, sizeof(in));
    assert_non_null(b);
    assert_string_equal(b->prefix, "127.0.0.0/8");

    /* An AF_INET6 socket to a mapped address reaches the IPv4 address. */
    assert_int_equal(inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr), 1);
    b = sts_ipaddr_special_sockaddr((struct sockaddr *)&in6, sizeof(in6));
    assert_non_null(b);
    assert_string_equal(b->prefix, "127.0.0.0/8");

    assert_int_equal(inet_pton(AF_INET6, "2001:4860:4860::8888", &in6.sin6_addr), 1);
    assert_null(sts_ipaddr_special_sockaddr((struct sockaddr *)&in6, sizeof(in6)));
    assert_true(sts_ipaddr_from_sockaddr((struct sockaddr *)&in6, sizeof(in6), a, &port));
    assert_int_equal(ntohs(port), 8443);
    assert_false(sts_ipaddr_is_v4(a));
    assert_string_equal(sts_ipaddr_show(a, text, sizeof(text)), "2001:4860:4860::8888");

    /* No IP address at all: refused as such, never taken for a public one. */
    b = sts_ipaddr_special_sockaddr((struct sockaddr *)&un, sizeof(un));
    assert_non_null(b);
    assert_string_equal(b->name, "not an IP address");
    b = sts_ipaddr_special_sockaddr((struct sockaddr *)&in, sizeof(in) - 1);
    assert_non_null(b);
    assert_string_equal(b->name, "not an IP address");
    b = sts_ipaddr_special_sockaddr((struct sockaddr *)&in6, sizeof(struct sockaddr_in));
    assert_non_null(b);
    assert_string_equal(b->name, "not an IP address");
    b = sts_ipaddr_special_sockaddr(NULL, 0);
    assert_non_null(b);
    assert_string_equal(b->name, "not an IP address");
    assert_false(sts_ipaddr_from_sockaddr((struct sockaddr *)&un, sizeof(un), a, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_text_that_is_no_address),
        cmocka_unit_test(test_sockaddr),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
