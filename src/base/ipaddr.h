/*
 * ipaddr.h - IP addresses as 16 bytes, IPv4 as the IPv4-mapped IPv6
 * address ::ffff:a.b.c.d (RFC 4291 2.5.5.2), and whether an address is
 * special-purpose: not globally reachable by the IANA Special-Purpose
 * Address Registries (RFC 6890), multicast, or outside IPv6 global
 * unicast.  A program that connects where a remote party's DNS points it
 * (a policy host, a report endpoint) refuses such addresses, so that a
 * domain cannot aim it at this host's or this network's own services.
 */
#ifndef STS_IPADDR_H
#define STS_IPADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

/* Room for the text of any address (INET6_ADDRSTRLEN). */
#define STS_IPADDR_TEXT_MAX 46

/* One block of addresses, as its registry entry names it. */
typedef struct sts_ipblock {
    const char *prefix; /* "127.0.0.0/8", "fe80::/10" */
    const char *name;   /* "Loopback", "Link-Local Unicast" */
    const char *ref;    /* where it is defined: "RFC 1122" */
} sts_ipblock;

/* The address of an AF_INET or AF_INET6 sockaddr of len bytes into out,
 * its port (network order) into *port if port is not NULL.  False for
 * another family or a length too short for its family. */
bool sts_ipaddr_from_sockaddr(const struct sockaddr *sa, size_t len, uint8_t out[16],
                              uint16_t *port);

/* A textual IPv4 (dotted quad) or IPv6 address, as inet_pton(3) reads
 * them: no brackets, zone or port.  False for anything else. */
bool sts_ipaddr_from_text(const char *text, uint8_t out[16]);

/* An IPv4 address (IPv4-mapped). */
bool sts_ipaddr_is_v4(const uint8_t a[16]);

/* "192.0.2.1" or "2001:db8::1" into buf (STS_IPADDR_TEXT_MAX bytes
 * suffice); returns buf. */
const char *sts_ipaddr_show(const uint8_t a[16], char *buf, size_t size);

/* The special-purpose block a falls in, or NULL when a is globally
 * reachable.  An address that embeds an IPv4 address (IPv4-mapped, NAT64
 * 64:ff9b::/96, 6to4 2002::/16) is what its IPv4 address is. */
const sts_ipblock *sts_ipaddr_special(const uint8_t a[16]);

/* The same for a sockaddr; one that is no IP address at all (another
 * family, too short) is the block "not an IP address", never NULL. */
const sts_ipblock *sts_ipaddr_special_sockaddr(const struct sockaddr *sa, size_t len);

#endif
