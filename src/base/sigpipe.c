/*
 * sigpipe.c - see sigpipe.h.
 */
#include "base/sigpipe.h"

#include <pthread.h>
#include <time.h>

void sts_sigpipe_block(sts_sigpipe_guard *g)
{
    sigset_t set, pending;

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    (void)pthread_sigmask(SIG_BLOCK, &set, &g->old);
    g->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
}

void sts_sigpipe_restore(const sts_sigpipe_guard *g)
{
    static const struct timespec zero = { 0, 0 };
    sigset_t set, pending;

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    if (!g->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1)
        (void)sigtimedwait(&set, NULL, &zero);
    (void)pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}
