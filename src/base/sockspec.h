/*
 * sockspec.h - socket specifications as OpenDKIM and libmilter write them:
 * inet:PORT@HOST, inet6:PORT@HOST, unix:PATH, local:PATH (HOST an IPv4 or
 * IPv6 address, or localhost).  Used for the socketmap listener and to
 * reach our own milter socket.
 */
#ifndef STS_SOCKSPEC_H
#define STS_SOCKSPEC_H

#include <sys/socket.h>

#include "base/status.h"

/* Fill *ss / *len for spec.  STS_OK or STS_PERMFAIL with a reason. */
sts_status sts_sockspec_parse(const char *spec, struct sockaddr_storage *ss, socklen_t *len,
                              sts_why *why) STS_MUST_CHECK;

#endif
