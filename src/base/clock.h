/*
 * clock.h - the monotonic clock in milliseconds: deadlines, timeouts and
 * ages measured inside the process (never a time of day).
 */
#ifndef STS_CLOCK_H
#define STS_CLOCK_H

#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t sts_mono_ms(void);

#endif
