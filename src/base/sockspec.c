/*
 * sockspec.c - parse OpenDKIM/libmilter socket specifications (see
 * sockspec.h).
 */
#include "base/sockspec.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "base/buf.h"

sts_status sts_sockspec_parse(const char *spec, struct sockaddr_storage *ss, socklen_t *len,
                              sts_why *why)
{
    const char *colon = strchr(spec, ':'), *at = strchr(spec, '@');
    char host[256];
    sts_cur pc;
    uint64_t port = 0;
    size_t hl;

    memset(ss, 0, sizeof(*ss));
    if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        const char *path = colon + 1;

        if (path[0] == '\0' || strlen(path) >= sizeof(un->sun_path)) {
            sts_why_set(why, "bad socket path in '%s'", spec);
            return STS_PERMFAIL;
        }
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, path, strlen(path) + 1);
        *len = sizeof(*un);
        return STS_OK;
    }
    if ((strncmp(spec, "inet:", 5) != 0 && strncmp(spec, "inet6:", 6) != 0) || at == NULL ||
        at < colon) {
        sts_why_set(why, "'%s' is not inet:PORT@HOST, inet6:PORT@HOST or unix:PATH", spec);
        return STS_PERMFAIL;
    }
    pc = sts_cur_make(colon + 1, (size_t)(at - colon - 1));
    if (!sts_cur_take_number(&pc, 5, 65535, &port) || !sts_cur_empty(&pc) || port == 0) {
        sts_why_set(why, "bad port in '%s'", spec);
        return STS_PERMFAIL;
    }
    (void)snprintf(host, sizeof(host), "%s", at + 1);
    hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    if (strcmp(host, "localhost") == 0 || host[0] == '\0')
        (void)snprintf(host, sizeof(host), "%s", strncmp(spec, "inet6:", 6) == 0 ? "::1"
                                                                                 : "127.0.0.1");
    if (strchr(host, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            goto badhost;
        *len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
            goto badhost;
        *len = sizeof(*s4);
    }
    return STS_OK;
badhost:
    sts_why_set(why, "'%s' in '%s' is not an IP address", host, spec);
    return STS_PERMFAIL;
}
