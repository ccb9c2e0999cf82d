/*
 * log: one JSON object per line on stderr (infrastructure layer).
 *
 * Any thread; a line is written with one write(2), so lines of different
 * threads never interleave. Never pass payload content, only identifiers.
 */
#ifndef FIELDSYNCD_LOG_H
#define FIELDSYNCD_LOG_H

#include <stdint.h>

enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(int level);
int log_level_parse(const char *s); /* -1 when unknown */

/*
 * Writes one JSON object per line to stderr: {"ts":..,"level":..,"msg":..,
 * then the key/value pairs}. The variadic list is (const char *key,
 * int kind, value) triples ended by NULL; kinds are LF_STR (const char *),
 * LF_INT (int64_t) and LF_UINT (uint64_t). Never pass payload content.
 */
enum { LF_STR = 1, LF_INT, LF_UINT };
void log_event(int level, const char *msg, ...);
/* Typed key/value pairs for log_event(): log_event(LOG_INFO, "m", LU("n", x), NULL). */
#define LS(k, v) (k), LF_STR, (const char *)(v)
#define LU(k, v) (k), LF_UINT, (uint64_t)(v)
#define LI(k, v) (k), LF_INT, (int64_t)(v)

#endif
