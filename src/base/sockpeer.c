/*
 * sockpeer.c - who is at the other end of an accepted stream socket
 * (sockpeer.h).  UNIX sockets: SO_PEERCRED, the credentials the peer
 * connected with.  TCP: the peer's own socket, looked up in the kernel's
 * table by its four tuple with one exact NETLINK_SOCK_DIAG request (as
 * ss(8) does); found, it names the uid that created it, so a second local
 * user is told from the MTA even over 127.0.0.1.  Not found (a peer on
 * another host, or in another network namespace), the peer is its address.
 * The kernel answers, never the peer: nothing it sends is used here.
 */
#include "buildconf.h" /* _GNU_SOURCE: struct ucred */

#include "base/sockpeer.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/ipaddr.h"

void sts_sockpeer_finder_init(sts_sockpeer_finder *f)
{
    memset(f, 0, sizeof(*f));
}

void sts_sockpeer_finder_close(sts_sockpeer_finder *f)
{
    if (f->nl > 0)
        (void)close(f->nl);
    sts_sockpeer_finder_init(f);
}

static bool is_loopback(const uint8_t a[16])
{
    static const uint8_t v6[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };

    return sts_ipaddr_is_v4(a) ? a[12] == 127 : memcmp(a, v6, sizeof(v6)) == 0;
}

/* A state in which the peer's socket is still its owner's (a TIME_WAIT
 * remnant has no owner and reports uid 0). */
static bool owned_state(uint8_t st)
{
    return st == TCP_ESTABLISHED || st == TCP_FIN_WAIT1 || st == TCP_FIN_WAIT2 ||
           st == TCP_CLOSE_WAIT || st == TCP_CLOSING || st == TCP_LAST_ACK;
}

/* The owner of the socket whose local end is peer:pport and remote end
 * us:uport.  STS_OK with *uid, STS_NOTFOUND (not a socket of this host),
 * STS_TEMPFAIL (no answer; why says). */
static sts_status diag_uid(sts_sockpeer_finder *f, const uint8_t peer[16], uint16_t pport,
                           const uint8_t us[16], uint16_t uport, uint32_t *uid, sts_why *why)
{
    struct {
        struct nlmsghdr nh;
        struct inet_diag_req_v2 r;
    } req;
    union {
        struct nlmsghdr nh;
        char bytes[1024];
    } resp;
    bool v4 = sts_ipaddr_is_v4(peer) && sts_ipaddr_is_v4(us);
    ssize_t n;

    if (f->broken) {
        sts_why_set(why, "sock_diag unavailable");
        return STS_TEMPFAIL;
    }
    if (f->nl <= 0) {
        f->nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        if (f->nl < 0) {
            f->nl = 0;
            f->broken = true;
            sts_why_set(why, "sock_diag: %s", strerror(errno));
            return STS_TEMPFAIL;
        }
    }
    memset(&req, 0, sizeof(req));
    req.nh.nlmsg_len = sizeof(req);
    req.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.nh.nlmsg_flags = NLM_F_REQUEST;
    req.nh.nlmsg_seq = ++f->seq;
    req.r.sdiag_family = v4 ? AF_INET : AF_INET6;
    req.r.sdiag_protocol = IPPROTO_TCP;
    req.r.idiag_states = ~0u;
    req.r.id.idiag_sport = pport;
    req.r.id.idiag_dport = uport;
    memcpy(req.r.id.idiag_src, v4 ? peer + 12 : peer, v4 ? 4 : 16);
    memcpy(req.r.id.idiag_dst, v4 ? us + 12 : us, v4 ? 4 : 16);
    req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    if (send(f->nl, &req, sizeof(req), 0) != (ssize_t)sizeof(req)) {
        sts_why_set(why, "sock_diag: %s", strerror(errno));
        f->broken = errno == EPERM || errno == EACCES;
        return STS_TEMPFAIL;
    }
    /* The kernel answers a single (not dump) request before send returns;
     * a reply to an earlier request that was never read is skipped. */
    for (;;) {
        n = recv(f->nl, &resp, sizeof(resp), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < (ssize_t)sizeof(struct nlmsghdr) || !NLMSG_OK(&resp.nh, (size_t)n)) {
            sts_why_set(why, "sock_diag: %s", n < 0 ? strerror(errno) : "short answer");
            return STS_TEMPFAIL;
        }
        if (resp.nh.nlmsg_seq == f->seq)
            break;
    }
    if (resp.nh.nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA(&resp.nh);

        if (resp.nh.nlmsg_len >= NLMSG_LENGTH(sizeof(*e)) && e->error == -ENOENT)
            return STS_NOTFOUND;
        sts_why_set(why, "sock_diag: %s",
                    resp.nh.nlmsg_len >= NLMSG_LENGTH(sizeof(*e)) ? strerror(-e->error)
                                                                 : "short error");
        /* No inet_diag in this kernel, or not for us: it will not change. */
        if (resp.nh.nlmsg_len >= NLMSG_LENGTH(sizeof(*e)) &&
            (e->error == -EOPNOTSUPP || e->error == -EINVAL || e->error == -EPERM ||
             e->error == -EACCES))
            f->broken = true;
        return STS_TEMPFAIL;
    }
    if (resp.nh.nlmsg_type != SOCK_DIAG_BY_FAMILY ||
        resp.nh.nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
        sts_why_set(why, "sock_diag: unexpected answer type %u", (unsigned)resp.nh.nlmsg_type);
        return STS_TEMPFAIL;
    }
    {
        const struct inet_diag_msg *m = NLMSG_DATA(&resp.nh);

        if (!owned_state(m->idiag_state))
            return STS_NOTFOUND;
        *uid = m->idiag_uid;
    }
    return STS_OK;
}

sts_status sts_sockpeer_identify(sts_sockpeer_finder *f, int fd, sts_sockpeer *out,
                                 sts_why *why)
{
    struct sockaddr_storage peer, us;
    socklen_t pl = sizeof(peer), ul = sizeof(us);
    uint16_t pport, uport;
    uint8_t uaddr[16];

    memset(out, 0, sizeof(*out));
    if (getpeername(fd, (struct sockaddr *)&peer, &pl) != 0 ||
        getsockname(fd, (struct sockaddr *)&us, &ul) != 0) {
        sts_why_set(why, "getpeername: %s", strerror(errno));
        return STS_TEMPFAIL;
    }
    if (peer.ss_family == AF_UNIX) {
        struct ucred cred;
        socklen_t cl = sizeof(cred);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) {
            sts_why_set(why, "SO_PEERCRED: %s", strerror(errno));
            return STS_TEMPFAIL;
        }
        out->kind = STS_SOCKPEER_UID;
        out->uid = (uint32_t)cred.uid;
        return STS_OK;
    }
    if (!sts_ipaddr_from_sockaddr((struct sockaddr *)&peer, pl, out->addr, &pport) ||
        !sts_ipaddr_from_sockaddr((struct sockaddr *)&us, ul, uaddr, &uport)) {
        sts_why_set(why, "address family %d", (int)peer.ss_family);
        return STS_TEMPFAIL;
    }
    switch (diag_uid(f, out->addr, pport, uaddr, uport, &out->uid, why)) {
    case STS_OK:
        out->kind = STS_SOCKPEER_UID;
        memset(out->addr, 0, sizeof(out->addr));
        return STS_OK;
    case STS_NOTFOUND:
        /* Loopback is this namespace's: a peer not in the table has gone. */
        sts_why_set(why, "the peer's socket is gone");
        break;
    default:
        break;
    }
    /* A loopback address is every local user's: it tells nobody apart. */
    if (is_loopback(out->addr)) {
        memset(out, 0, sizeof(*out));
        return STS_TEMPFAIL;
    }
    out->kind = STS_SOCKPEER_ADDR;
    return STS_OK;
}

bool sts_sockpeer_same(const sts_sockpeer *a, const sts_sockpeer *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case STS_SOCKPEER_UID:
        return a->uid == b->uid;
    case STS_SOCKPEER_ADDR:
        return memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
    default:
        return false;
    }
}

const char *sts_sockpeer_show(const sts_sockpeer *p, char *buf, size_t size)
{
    char text[STS_IPADDR_TEXT_MAX];

    switch (p->kind) {
    case STS_SOCKPEER_UID:
        (void)snprintf(buf, size, "uid:%lu", (unsigned long)p->uid);
        return buf;
    case STS_SOCKPEER_ADDR:
        (void)snprintf(buf, size, "ip:%s", sts_ipaddr_show(p->addr, text, sizeof(text)));
        return buf;
    default:
        (void)snprintf(buf, size, "unknown");
        return buf;
    }
}
