/*
 * Calendar arithmetic in a service's IANA time zone, for deadlines
 * (METHOD.md, "Deadline rules"). Zones are read from TZif files by
 * tz_load(); nothing here touches TZ, tzset() or localtime(), and a loaded
 * zone is never modified, so any number of threads may share one.
 */
#ifndef FIELDSYNC_CALENDAR_H
#define FIELDSYNC_CALENDAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An IANA zone loaded from its TZif file; immutable once loaded. */
typedef struct fs_tz fs_tz;

/*
 * Loads zone `name` (e.g. "Europe/Copenhagen") from the tz database: the
 * directory in env TZDIR, else /usr/share/zoneinfo. Returns a zone the
 * caller owns (free with tz_free), or NULL with one sentence in err (when
 * err is not NULL): bad name, unknown zone, unreadable, oversized or
 * malformed file, leap-second ("right/") zone. Never crashes on a bad file.
 */
fs_tz *tz_load(const char *name, char *err, size_t errlen);
/*
 * The zone `name` from a TZif image in memory (buf[0..len), copied), e.g.
 * the bytes a daemon sent in Welcome.time_zone_tzif, for a host without a
 * tz database. Checked exactly as tz_load checks a file; NULL with one
 * sentence in err when the name or the image is bad.
 */
fs_tz *tz_load_tzif(const char *name, const uint8_t *buf, size_t len, char *err, size_t errlen);
/* The TZif image the zone was read from (owned by tz), *len bytes: another
 * host's tz_load_tzif() of it computes exactly as this zone does. */
const uint8_t *tz_tzif(const fs_tz *tz, size_t *len);
void tz_free(fs_tz **tz);             /* accepts NULL and *tz == NULL; nulls *tz */
const char *tz_name(const fs_tz *tz); /* the name given to tz_load; owned by tz */
/* UTC offset in seconds (local = UTC + offset) in effect at instant utc_s. */
int64_t tz_offset_s(const fs_tz *tz, int64_t utc_s);

typedef enum { CAL_DAYS, CAL_WEEKS, CAL_MONTHS } cal_unit;

/* "days", "weeks" or "months" into *out; false (and *out untouched) otherwise. */
bool cal_unit_parse(const char *s, cal_unit *out);

/*
 * The end-of-day rule: *due_ms = the first instant of the local day after
 * (the local date of start_ms + amount units). Weeks are 7 days; months are
 * calendar months clamped to the month's end; amount may be negative. The
 * first instant is the local midnight, or the end of the DST gap when the
 * clocks skip midnight, or the next day's when the whole date was skipped.
 * False, *due_ms untouched, when start_ms (in UTC) or the due date lies
 * outside years 1..9999.
 */
bool cal_due_ms(const fs_tz *tz, int64_t start_ms, int amount, cal_unit unit, int64_t *due_ms);

/*
 * The first instant of the local day holding t_ms (its midnight, or the end
 * of a DST gap that swallowed midnight), i.e. cal_due_ms(tz, t_ms, -1,
 * CAL_DAYS, day_ms). For the day a deadline from cal_due_ms() falls on,
 * pass due_ms - 1. False as cal_due_ms().
 */
bool cal_day_start_ms(const fs_tz *tz, int64_t t_ms, int64_t *day_ms);

/*
 * A warning `amount` units before a due instant: the end of the local day
 * `amount` units before the last local day that due_ms closes, i.e.
 * cal_due_ms(tz, due_ms - 1, -amount, unit, warn_ms). For a due instant
 * from cal_due_ms() that is exactly `amount` calendar units earlier ("2 days
 * before" a due at the end of the 7th is the end of the 5th); for any other
 * instant (a meeting at 10:00 on the 7th) the day is the one holding it.
 * False as cal_due_ms(), or when amount is INT_MIN.
 */
bool cal_before_ms(const fs_tz *tz, int64_t due_ms, int amount, cal_unit unit, int64_t *warn_ms);

#endif
