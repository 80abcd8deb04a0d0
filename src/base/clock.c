/*
 * clock.c - see clock.h.
 */
#include "base/clock.h"

#include <time.h>

int64_t sts_mono_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
