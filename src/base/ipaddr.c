/*
 * ipaddr.c - IP addresses as 16 bytes, and the special-purpose ones
 * (ipaddr.h).
 *
 * The blocks below are the entries of the IANA IPv4 and IPv6
 * Special-Purpose Address Registries (RFC 6890, RFC 8190) whose
 * "Globally Reachable" is False, as of 2025:
 *   https://www.iana.org/assignments/iana-ipv4-special-registry/
 *   https://www.iana.org/assignments/iana-ipv6-special-registry/
 * together with the entries inside them that the registry marks True
 * (anycast addresses, AMT, AS112, ORCHIDv2, DRIP: reachable, so allowed),
 * plus multicast (RFC 5771, RFC 4291 2.7; in the multicast registries, not
 * these) and, for IPv6, everything outside 2000::/3: IANA allocates global
 * unicast only from there (IPv6 Address Space registry), the rest is
 * reserved or one of the scoped blocks (fc00::/7, fe80::/10, fec0::/10,
 * ff00::/8, 100::/64, 5f00::/16, ...).
 *
 * Entries marked "N/A" in the registry: 6to4 (2002::/16) is what the IPv4
 * address in its bits 16..47 is, as is NAT64's well-known prefix
 * 64:ff9b::/96 (True in the registry, but RFC 6052 3.1 forbids it for
 * non-global IPv4 addresses, so 64:ff9b::7f00:1 is refused while the
 * translation of a public address, what DNS64 gives an IPv6-only host,
 * is allowed); TEREDO (2001::/32) lies in 2001::/23 and is refused with
 * it; 192.88.99.0/24 (deprecated 6to4 relay anycast, RFC 7526) is left
 * alone.  All of 192.0.0.0/24 but the two anycast addresses is refused.
 *
 * An IPv4 address is kept as ::ffff:a.b.c.d, so one table holds both
 * families: an IPv4 block a.b.c.d/n is ::ffff:a.b.c.d/(96 + n), and an
 * IPv4-mapped IPv6 address is classified as the IPv4 address it is.
 */
#include "base/ipaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

typedef enum block_kind {
    REFUSED,   /* special-purpose */
    REACHABLE, /* an exception inside a refused block, or the global space */
    EMBEDS_V4, /* the IPv4 address at byte v4_at decides */
} block_kind;

typedef struct block {
    uint8_t net[16];
    unsigned plen;
    block_kind kind;
    unsigned v4_at;
    sts_ipblock info;
} block;

#define V4(a, b, c, d, len) { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d }, 96 + (len)

static const block blocks[] = {
    /* IPv4 (the mapped space); reachable unless a block below says otherwise */
    { V4(0, 0, 0, 0, 0), REACHABLE, 0, { "::ffff:0:0/96", "IPv4-mapped Address", "RFC 4291" } },
    { V4(0, 0, 0, 0, 8), REFUSED, 0, { "0.0.0.0/8", "This network", "RFC 791" } },
    { V4(10, 0, 0, 0, 8), REFUSED, 0, { "10.0.0.0/8", "Private-Use", "RFC 1918" } },
    { V4(100, 64, 0, 0, 10), REFUSED, 0, { "100.64.0.0/10", "Shared Address Space", "RFC 6598" } },
    { V4(127, 0, 0, 0, 8), REFUSED, 0, { "127.0.0.0/8", "Loopback", "RFC 1122" } },
    { V4(169, 254, 0, 0, 16), REFUSED, 0, { "169.254.0.0/16", "Link Local", "RFC 3927" } },
    { V4(172, 16, 0, 0, 12), REFUSED, 0, { "172.16.0.0/12", "Private-Use", "RFC 1918" } },
    { V4(192, 0, 0, 0, 24), REFUSED, 0,
      { "192.0.0.0/24", "IETF Protocol Assignments", "RFC 6890" } },
    { V4(192, 0, 0, 9, 32), REACHABLE, 0,
      { "192.0.0.9/32", "Port Control Protocol Anycast", "RFC 7723" } },
    { V4(192, 0, 0, 10, 32), REACHABLE, 0,
      { "192.0.0.10/32", "Traversal Using Relays around NAT Anycast", "RFC 8155" } },
    { V4(192, 0, 2, 0, 24), REFUSED, 0,
      { "192.0.2.0/24", "Documentation (TEST-NET-1)", "RFC 5737" } },
    { V4(192, 168, 0, 0, 16), REFUSED, 0, { "192.168.0.0/16", "Private-Use", "RFC 1918" } },
    { V4(198, 18, 0, 0, 15), REFUSED, 0, { "198.18.0.0/15", "Benchmarking", "RFC 2544" } },
    { V4(198, 51, 100, 0, 24), REFUSED, 0,
      { "198.51.100.0/24", "Documentation (TEST-NET-2)", "RFC 5737" } },
    { V4(203, 0, 113, 0, 24), REFUSED, 0,
      { "203.0.113.0/24", "Documentation (TEST-NET-3)", "RFC 5737" } },
    { V4(224, 0, 0, 0, 4), REFUSED, 0, { "224.0.0.0/4", "Multicast", "RFC 5771" } },
    { V4(240, 0, 0, 0, 4), REFUSED, 0, { "240.0.0.0/4", "Reserved", "RFC 1112" } },
    { V4(255, 255, 255, 255, 32), REFUSED, 0,
      { "255.255.255.255/32", "Limited Broadcast", "RFC 919" } },
    /* IPv6 */
    { { 0 }, 0, REFUSED, 0, { "::/0", "Not Global Unicast (outside 2000::/3)",
                              "IANA IPv6 Address Space" } },
    { { 0x20 }, 3, REACHABLE, 0, { "2000::/3", "Global Unicast", "RFC 4291" } },
    { { 0 }, 128, REFUSED, 0, { "::/128", "Unspecified Address", "RFC 4291" } },
    { { [15] = 1 }, 128, REFUSED, 0, { "::1/128", "Loopback Address", "RFC 4291" } },
    { { 0, 0x64, 0xff, 0x9b }, 96, EMBEDS_V4, 12,
      { "64:ff9b::/96", "IPv4-IPv6 Translat.", "RFC 6052" } },
    { { 0, 0x64, 0xff, 0x9b, 0, 1 }, 48, REFUSED, 0,
      { "64:ff9b:1::/48", "IPv4-IPv6 Translat.", "RFC 8215" } },
    { { 0x01 }, 64, REFUSED, 0, { "100::/64", "Discard-Only Address Block", "RFC 6666" } },
    { { 0x20, 0x01 }, 23, REFUSED, 0, { "2001::/23", "IETF Protocol Assignments", "RFC 2928" } },
    { { 0x20, 0x01 }, 32, REFUSED, 0, { "2001::/32", "TEREDO", "RFC 4380" } },
    { { 0x20, 0x01, 0, 0x01, [15] = 1 }, 128, REACHABLE, 0,
      { "2001:1::1/128", "Port Control Protocol Anycast", "RFC 7723" } },
    { { 0x20, 0x01, 0, 0x01, [15] = 2 }, 128, REACHABLE, 0,
      { "2001:1::2/128", "Traversal Using Relays around NAT Anycast", "RFC 8155" } },
    { { 0x20, 0x01, 0, 0x01, [15] = 3 }, 128, REACHABLE, 0,
      { "2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", "RFC 9665" } },
    { { 0x20, 0x01, 0, 0x02 }, 48, REFUSED, 0, { "2001:2::/48", "Benchmarking", "RFC 5180" } },
    { { 0x20, 0x01, 0, 0x03 }, 32, REACHABLE, 0, { "2001:3::/32", "AMT", "RFC 7450" } },
    { { 0x20, 0x01, 0, 0x04, 0x01, 0x12 }, 48, REACHABLE, 0,
      { "2001:4:112::/48", "AS112-v6", "RFC 7535" } },
    { { 0x20, 0x01, 0, 0x20 }, 28, REACHABLE, 0, { "2001:20::/28", "ORCHIDv2", "RFC 7343" } },
    { { 0x20, 0x01, 0, 0x30 }, 28, REACHABLE, 0,
      { "2001:30::/28", "Drone Remote ID Protocol Entity Tags", "RFC 9374" } },
    { { 0x20, 0x01, 0x0d, 0xb8 }, 32, REFUSED, 0, { "2001:db8::/32", "Documentation", "RFC 3849" } },
    { { 0x20, 0x02 }, 16, EMBEDS_V4, 2, { "2002::/16", "6to4", "RFC 3056" } },
    { { 0x3f, 0xff }, 20, REFUSED, 0, { "3fff::/20", "Documentation", "RFC 9637" } },
    { { 0xfc }, 7, REFUSED, 0, { "fc00::/7", "Unique-Local", "RFC 4193" } },
    { { 0xfe, 0x80 }, 10, REFUSED, 0, { "fe80::/10", "Link-Local Unicast", "RFC 4291" } },
    { { 0xff }, 8, REFUSED, 0, { "ff00::/8", "Multicast", "RFC 4291" } },
};

static const sts_ipblock not_ip = { "-", "not an IP address", "-" };

static const uint8_t v4_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

bool sts_ipaddr_from_sockaddr(const struct sockaddr *sa, size_t len, uint8_t out[16],
                              uint16_t *port)
{
    struct sockaddr_in in;
    struct sockaddr_in6 in6;

    /* Copied out: sa need not be aligned for its family's struct. */
    if (sa == NULL || len < sizeof(sa_family_t))
        return false;
    if (sa->sa_family == AF_INET && len >= sizeof(in)) {
        memcpy(&in, sa, sizeof(in));
        memcpy(out, v4_prefix, sizeof(v4_prefix));
        memcpy(out + 12, &in.sin_addr, 4);
        if (port != NULL)
            *port = in.sin_port;
        return true;
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(in6)) {
        memcpy(&in6, sa, sizeof(in6));
        memcpy(out, &in6.sin6_addr, 16);
        if (port != NULL)
            *port = in6.sin6_port;
        return true;
    }
    return false;
}

bool sts_ipaddr_from_text(const char *text, uint8_t out[16])
{
    struct in_addr a4;

    if (text == NULL)
        return false;
    if (inet_pton(AF_INET, text, &a4) == 1) {
        memcpy(out, v4_prefix, sizeof(v4_prefix));
        memcpy(out + 12, &a4, 4);
        return true;
    }
    return inet_pton(AF_INET6, text, out) == 1;
}

bool sts_ipaddr_is_v4(const uint8_t a[16])
{
    return memcmp(a, v4_prefix, sizeof(v4_prefix)) == 0;
}

const char *sts_ipaddr_show(const uint8_t a[16], char *buf, size_t size)
{
    char text[STS_IPADDR_TEXT_MAX];
    const char *t = sts_ipaddr_is_v4(a) ? inet_ntop(AF_INET, a + 12, text, sizeof(text))
                                         : inet_ntop(AF_INET6, a, text, sizeof(text));

    (void)snprintf(buf, size, "%s", t != NULL ? t : "?");
    return buf;
}

static bool in_block(const uint8_t a[16], const block *b)
{
    unsigned whole = b->plen / 8, rest = b->plen % 8;

    if (memcmp(a, b->net, whole) != 0)
        return false;
    return rest == 0 || ((a[whole] ^ b->net[whole]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

/* The most specific block holding a (the table has ::/0, so one always does). */
static const block *longest_match(const uint8_t a[16])
{
    const block *best = NULL;

    for (size_t i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++)
        if (in_block(a, &blocks[i]) && (best == NULL || blocks[i].plen > best->plen))
            best = &blocks[i];
    return best;
}

const sts_ipblock *sts_ipaddr_special(const uint8_t a[16])
{
    const block *b = longest_match(a);
    uint8_t v4[16];

    if (b->kind == EMBEDS_V4) {
        memcpy(v4, v4_prefix, sizeof(v4_prefix));
        memcpy(v4 + 12, a + b->v4_at, 4);
        b = longest_match(v4); /* mapped: never EMBEDS_V4 again */
    }
    return b->kind == REFUSED ? &b->info : NULL;
}

const sts_ipblock *sts_ipaddr_special_sockaddr(const struct sockaddr *sa, size_t len)
{
    uint8_t a[16];

    return sts_ipaddr_from_sockaddr(sa, len, a, NULL) ? sts_ipaddr_special(a) : &not_ip;
}
