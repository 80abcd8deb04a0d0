/*
 * sigpipe.h - keep SIGPIPE from a write to a closed socket away from the
 * process, around code that cannot pass MSG_NOSIGNAL (OpenSSL's writes,
 * hiredis's): the signal is blocked in this thread for the duration and
 * the one such a write raised is swallowed, never one that was pending
 * before (that is somebody else's).
 */
#ifndef STS_SIGPIPE_H
#define STS_SIGPIPE_H

#include <signal.h>
#include <stdbool.h>

typedef struct sts_sigpipe_guard {
    sigset_t old;
    bool was_pending;
} sts_sigpipe_guard;

void sts_sigpipe_block(sts_sigpipe_guard *g);
void sts_sigpipe_restore(const sts_sigpipe_guard *g);

#endif
