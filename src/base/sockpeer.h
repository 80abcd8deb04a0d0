/*
 * sockpeer.h - who is at the other end of an accepted stream socket, as
 * far as the kernel can tell, so that connection limits can be counted
 * per peer: the user of a UNIX-socket peer (SO_PEERCRED), the user of a
 * TCP peer on this host (the kernel's socket table, sock_diag), else the
 * address of a TCP peer elsewhere.  A loopback peer whose user the kernel
 * does not tell is "unknown": every local program shares 127.0.0.1, so an
 * address would not tell the MTA from any other local user.  Linux.
 */
#ifndef STS_SOCKPEER_H
#define STS_SOCKPEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef enum sts_sockpeer_kind {
    STS_SOCKPEER_UNKNOWN = 0, /* cannot be told apart from other local peers */
    STS_SOCKPEER_UID,         /* a process of this host running as uid */
    STS_SOCKPEER_ADDR,        /* a TCP peer elsewhere, by address */
} sts_sockpeer_kind;

typedef struct sts_sockpeer {
    sts_sockpeer_kind kind;
    uint32_t uid;      /* STS_SOCKPEER_UID */
    uint8_t addr[16];  /* STS_SOCKPEER_ADDR: IPv6, IPv4 as ::ffff:a.b.c.d */
} sts_sockpeer;

/* The sock_diag socket the lookups of TCP peers use, opened at the first
 * one; one thread at a time.  Zero-initialise, or sts_sockpeer_finder_init. */
typedef struct sts_sockpeer_finder {
    int nl;      /* NETLINK_SOCK_DIAG socket, 0 = not opened yet */
    unsigned seq;
    bool broken; /* the kernel refused it: no more tries */
} sts_sockpeer_finder;

void sts_sockpeer_finder_init(sts_sockpeer_finder *f);
void sts_sockpeer_finder_close(sts_sockpeer_finder *f);

/* Who is at the other end of the connected socket fd.  Always fills *out;
 * STS_OK when the peer was told (UID or ADDR), STS_TEMPFAIL when it is
 * UNKNOWN, with the reason in why (for instance "sock_diag: Protocol not
 * supported" in a container without it). */
sts_status sts_sockpeer_identify(sts_sockpeer_finder *f, int fd, sts_sockpeer *out,
                                 sts_why *why) STS_MUST_CHECK;

/* Both told and the same peer (an unknown peer is like no other). */
bool sts_sockpeer_same(const sts_sockpeer *a, const sts_sockpeer *b);

/* "uid:115", "ip:192.0.2.1", "ip:2001:db8::1" or "unknown", into buf
 * (STS_SOCKPEER_SHOW_MAX bytes suffice); returns buf. */
#define STS_SOCKPEER_SHOW_MAX 64
const char *sts_sockpeer_show(const sts_sockpeer *p, char *buf, size_t size);

#endif
