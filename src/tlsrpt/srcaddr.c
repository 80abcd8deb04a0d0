/*
 * srcaddr.c - the local address towards a remote one (srcaddr.h), for
 * the sending-mta-ip of RFC 8460 section 4.3: connect(2) on a UDP socket
 * picks a route and a source address without sending a packet;
 * getsockname(2) tells which.  Answers are cached by remote address; past
 * STS_SRCADDR_CACHE remote addresses the answer is "" (unknown).
 */
#include "tlsrpt/srcaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"

#define ADDR_TEXT 46 /* INET6_ADDRSTRLEN */

typedef struct slot {
    char rip[ADDR_TEXT];
    char local[ADDR_TEXT];
    bool used;
} slot;

struct sts_srcaddr {
    slot *t;      /* STS_SRCADDR_CACHE * 2 slots, open addressing */
    size_t n;
};

static uint64_t hash_str(const char *p)
{
    uint64_t h = 1469598103934665603ull;

    for (; *p != '\0'; p++) {
        h ^= (unsigned char)*p;
        h *= 1099511628211ull;
    }
    return h;
}

sts_status sts_srcaddr_new(sts_srcaddr **out)
{
    sts_srcaddr *s = calloc(1, sizeof(*s));

    *out = NULL;
    if (s == NULL || (s->t = sts_calloc_array(STS_SRCADDR_CACHE * 2, sizeof(slot))) == NULL) {
        free(s);
        return STS_NOMEM;
    }
    *out = s;
    return STS_OK;
}

/* The source address towards rip into out ("" when none). */
static void lookup(const char *rip, char out[ADDR_TEXT])
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int fd, af;

    out[0] = '\0';
    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, rip, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        af = AF_INET;
        ((struct sockaddr_in *)&ss)->sin_family = AF_INET;
        ((struct sockaddr_in *)&ss)->sin_port = htons(25);
        sl = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, rip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        af = AF_INET6;
        ((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(25);
        sl = sizeof(struct sockaddr_in6);
    } else {
        return;
    }
    if ((fd = socket(af, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
        return;
    if (connect(fd, (struct sockaddr *)&ss, sl) == 0) {
        sl = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
            inet_ntop(af,
                      af == AF_INET ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                                    : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr,
                      out, ADDR_TEXT) == NULL)
            out[0] = '\0';
    }
    (void)close(fd);
}

const char *sts_srcaddr_for(sts_srcaddr *s, const char *rip)
{
    size_t cap = STS_SRCADDR_CACHE * 2, i;

    if (strlen(rip) >= ADDR_TEXT)
        return "";
    i = (size_t)(hash_str(rip) & (cap - 1));
    for (; s->t[i].used; i = (i + 1) & (cap - 1))
        if (strcmp(s->t[i].rip, rip) == 0)
            return s->t[i].local;
    /* Full: unknown (the text returned must stay as it is). */
    if (s->n >= STS_SRCADDR_CACHE)
        return "";
    s->t[i].used = true;
    memcpy(s->t[i].rip, rip, strlen(rip) + 1);
    lookup(rip, s->t[i].local);
    s->n++;
    return s->t[i].local;
}

void sts_srcaddr_free(sts_srcaddr *s)
{
    if (s == NULL)
        return;
    free(s->t);
    free(s);
}
