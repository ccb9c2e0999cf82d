/*
 * clock: the daemon's time (infrastructure layer). Any thread.
 *
 * Wall-clock milliseconds stamp records and events; monotonic milliseconds
 * time intervals (timeouts, liveness); the deadline clock is the wall clock
 * shifted by --clock-offset-ms (a testing aid).
 */
#ifndef FIELDSYNCD_CLOCK_H
#define FIELDSYNCD_CLOCK_H

#include <stdint.h>

int64_t clock_wall_ms(void); /* CLOCK_REALTIME, ms since the epoch */
int64_t clock_mono_ms(void); /* CLOCK_MONOTONIC, ms */
/* The clock deadlines are evaluated at: wall clock + offset_ms. */
int64_t clock_deadline_ms(int64_t offset_ms);

#endif
