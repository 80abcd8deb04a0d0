/*
 * socketmap.h - the socketmap server in the daemon (Postfix
 * socketmap_table(5), Sendmail socket maps): answers TLS policy lookups
 * from the same engine and cache as the milter.
 */
#ifndef MT_SOCKETMAP_H
#define MT_SOCKETMAP_H

#include "engine/engine.h"
#include "base/status.h"

typedef struct mt_socketmap mt_socketmap;

/* Open the listening socket (as root, before privileges drop). */
sts_status mt_socketmap_open(const char *spec, unsigned mode, mt_socketmap **out,
                             sts_why *why) STS_MUST_CHECK;

/* Start the acceptor and the workers (after the drop). */
sts_status mt_socketmap_start(mt_socketmap *sm, sts_engine *engine, sts_why *why) STS_MUST_CHECK;

/* Stop accepting, close every connection, join the threads, free. */
void mt_socketmap_close(mt_socketmap *sm);

#endif
