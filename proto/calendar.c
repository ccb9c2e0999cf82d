/*
 * Calendar arithmetic in an IANA time zone (METHOD.md, "Deadline rules").
 *
 * NOTES ON THE DESIGN
 *
 * TZif (RFC 8536) is the compiled tz database: a header with six counts, a
 * table of transition instants (UTC seconds, ascending) each naming a local
 * time type (UTC offset, DST flag, abbreviation), leap-second records and
 * two flag arrays. Version 1 has 32-bit times only; versions 2-4 repeat the
 * header and table with 64-bit times and end with a footer, "\n" POSIX TZ
 * string "\n" (e.g. "CET-1CEST,M3.5.0,M10.5.0/3"), that governs every
 * instant from the last transition on. tzif_parse() reads the 64-bit block
 * when present, checks every count, size, index, order and range before it
 * is used, and keeps only what we need: transitions, type offsets and the
 * parsed footer rule, in one fs_tz that is never modified afterwards.
 *
 * Offset at an instant (tz_lookup): before the first transition type 0;
 * between transitions a binary search; from the last one on the footer
 * rule (the last type when the footer is empty). tz_lookup also returns the
 * next instant at which the offset may change: the offset is constant on
 * [t, next).
 *
 * First instant of local date X (day_start): local time g(t) = t + off(t)
 * jumps at transitions and can even run backwards (America/Santiago goes
 * from Saturday 24:00 back to 23:00), so no formula or bisection inverts it.
 * We want the least t with g(t) >= L, L being X's midnight in local
 * seconds. Offsets lie in (-25 h, 26 h), so that t lies in [L - 26 h,
 * L + 26 h]: walk that window one constant-offset segment [t, next) at a
 * time; the answer is the first max(t, L - off) that is < next. It is the
 * local midnight, or the end of a gap that swallowed midnight (Havana:
 * 23:59:59 -> 01:00), or, when the whole date was skipped (Samoa, 30
 * December 2011), the first instant of the next date.
 *
 * Civil dates are days since 1970-01-01, converted with days_from_civil()
 * and civil_from_days() (Howard Hinnant's algorithms, in 400-year eras), so
 * month arithmetic, leap years and weekdays need no tables.
 *
 * Why not TZ + tzset() + localtime()/mktime(): they work on process-global
 * state (the TZ variable, tzname, the cached zone), are not thread safe,
 * allow one zone per process, and mktime() is vague about local times that
 * do not exist or occur twice -- exactly the cases deadlines hit.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fieldsync/calendar.h"

#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"
#define TZ_NAME_MAX 255          /* longest zone name accepted */
#define TZ_FILE_MAX (256 * 1024) /* the largest real zone is under 4 KiB */
#define TZ_STRING_MAX 255        /* footer TZ string */
#define TZ_OFF_MIN (-89999)      /* RFC 8536: offsets within (-25 h, 26 h) */
#define TZ_OFF_MAX 93599
#define TZ_WINDOW 93600                  /* |offset| < this, in seconds */
#define TZ_RULE_T_MAX ((int64_t)1 << 50) /* rule years stay far from overflow */
#define DAY_S 86400

/* Days since 1970-01-01 of 0001-01-01 and of 10000-01-01. */
#define CAL_DAY_MIN (-719162)
#define CAL_DAY_END 2932897
#define CAL_MS_MIN ((int64_t)CAL_DAY_MIN * DAY_S * 1000)
#define CAL_MS_END ((int64_t)CAL_DAY_END * DAY_S * 1000)

/* One date of a POSIX TZ rule: Jn, n or Mm.w.d, then /time. */
typedef struct tz_rule_date {
	char kind;    /* 'J': day n 1..365, Feb 29 never counted; 'D': day n 0..365; 'M' */
	int n;        /* J and D */
	int m, w, d;  /* M: month 1..12, week 1..5 (5 = last), weekday 0..6 (0 = Sunday) */
	int32_t time; /* local seconds after midnight, -167 h .. 167 h */
} tz_rule_date;

/* The footer: a standard offset and, optionally, a DST offset and its dates. */
typedef struct tz_rule {
	int32_t std_off; /* UTC offsets, east positive */
	int32_t dst_off;
	bool has_dst;
	tz_rule_date start; /* DST starts, read on the standard-time clock */
	tz_rule_date end;   /* DST ends, read on the DST clock */
} tz_rule;

struct fs_tz {
	char name[TZ_NAME_MAX + 1];
	size_t ntimes;
	int64_t *times; /* ntimes transitions, strictly ascending */
	uint8_t *types; /* ntimes indexes into offs */
	size_t noffs;
	int32_t *offs; /* noffs >= 1 UTC offsets, one per local time type */
	bool has_rule; /* a non-empty footer */
	tz_rule rule;
	uint8_t *tzif; /* the TZif image it was read from (tz_tzif) */
	size_t tzif_len;
};

/* ---- civil dates -------------------------------------------------------- */

static int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

static bool
is_leap(int64_t y)
{
	return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static int
month_days(int64_t y, int m)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of y-m-d (proleptic Gregorian; m 1..12, d 1..31). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	/* Years run March..February, so the leap day ends the year. */
	if (m <= 2)
		y--;
	era = floor_div(y, 400);
	yoe = y - era * 400;                                   /* 0..399 */
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* 0..365 */
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* 0..146096 */
	return era * 146097 + doe - 719468; /* 719468: 0000-03-01 to 1970-01-01 */
}

/* The inverse of days_from_civil(). */
static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = floor_div(z, 146097);
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153; /* 0 = March .. 11 = February */
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* 0 = Sunday .. 6 = Saturday; 1970-01-01 was a Thursday. */
static int
weekday(int64_t days)
{
	int64_t w = (days + 4) % 7;

	return (int)(w < 0 ? w + 7 : w);
}

/* ---- the footer rule ---------------------------------------------------- */

/* Reads 1..4 digits as a number in lo..hi. */
static bool
tzs_num(const char **pp, int lo, int hi, int *out)
{
	const char *p = *pp;
	int v = 0, n = 0;

	while (*p >= '0' && *p <= '9' && n < 4) {
		v = v * 10 + (*p++ - '0');
		n++;
	}
	if (n == 0 || (*p >= '0' && *p <= '9') || v < lo || v > hi)
		return false;
	*out = v;
	*pp = p;
	return true;
}

/* A zone abbreviation: 3+ letters, or <3+ of [A-Za-z0-9+-]>. */
static bool
tzs_name(const char **pp)
{
	const char *p = *pp;
	size_t n = 0;

	if (*p == '<') {
		p++;
		while ((p[n] >= 'A' && p[n] <= 'Z') || (p[n] >= 'a' && p[n] <= 'z') ||
		       (p[n] >= '0' && p[n] <= '9') || p[n] == '+' || p[n] == '-')
			n++;
		if (p[n] != '>' || n < 3)
			return false;
		*pp = p + n + 1;
		return true;
	}
	while ((p[n] >= 'A' && p[n] <= 'Z') || (p[n] >= 'a' && p[n] <= 'z'))
		n++;
	if (n < 3)
		return false;
	*pp = p + n;
	return true;
}

/* [+-]hh[:mm[:ss]], hours 0..maxh, as signed seconds. */
static bool
tzs_hms(const char **pp, int maxh, int32_t *out)
{
	const char *p = *pp;
	int sign = 1, h, m = 0, s = 0;

	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	if (!tzs_num(&p, 0, maxh, &h))
		return false;
	if (*p == ':') {
		p++;
		if (!tzs_num(&p, 0, 59, &m))
			return false;
		if (*p == ':') {
			p++;
			if (!tzs_num(&p, 0, 59, &s))
				return false;
		}
	}
	*out = sign * (h * 3600 + m * 60 + s);
	*pp = p;
	return true;
}

/* ",date[/time]"; the time may be negative or up to 167 h (RFC 8536 3.3.1). */
static bool
tzs_date(const char **pp, tz_rule_date *d)
{
	const char *p = *pp;

	if (*p++ != ',')
		return false;
	memset(d, 0, sizeof(*d));
	if (*p == 'J') {
		p++;
		d->kind = 'J';
		if (!tzs_num(&p, 1, 365, &d->n))
			return false;
	} else if (*p == 'M') {
		p++;
		d->kind = 'M';
		if (!tzs_num(&p, 1, 12, &d->m) || *p++ != '.' || !tzs_num(&p, 1, 5, &d->w) ||
		    *p++ != '.' || !tzs_num(&p, 0, 6, &d->d))
			return false;
	} else {
		d->kind = 'D';
		if (!tzs_num(&p, 0, 365, &d->n))
			return false;
	}
	d->time = 2 * 3600;
	if (*p == '/') {
		p++;
		if (!tzs_hms(&p, 167, &d->time))
			return false;
	}
	*pp = p;
	return true;
}

/* Parses a whole non-empty POSIX TZ string (std offset [dst [offset] ,start,end]). */
static bool
tz_rule_parse(const char *s, tz_rule *r)
{
	const char *p = s;
	int32_t v;

	memset(r, 0, sizeof(*r));
	if (!tzs_name(&p) || !tzs_hms(&p, 24, &v))
		return false;
	r->std_off = -v; /* POSIX offsets count west of Greenwich */
	if (*p == '\0')
		return true;
	if (!tzs_name(&p))
		return false;
	r->dst_off = r->std_off + 3600;
	if (*p != ',' && *p != '\0') {
		if (!tzs_hms(&p, 24, &v))
			return false;
		r->dst_off = -v;
	}
	/* zic always writes the dates; POSIX leaves their absence open. */
	if (!tzs_date(&p, &r->start) || !tzs_date(&p, &r->end) || *p != '\0')
		return false;
	r->has_dst = true;
	return r->dst_off >= TZ_OFF_MIN && r->dst_off <= TZ_OFF_MAX;
}

/* The UTC instant of rule date d in year y, read on a clock at offset off. */
static int64_t
rule_instant(const tz_rule_date *d, int64_t y, int32_t off)
{
	int64_t day = days_from_civil(y, 1, 1);

	switch (d->kind) {
	case 'J':
		day += d->n - 1 + (is_leap(y) && d->n >= 60);
		break;
	case 'D':
		day += d->n;
		break;
	default: {
		int64_t first = days_from_civil(y, d->m, 1);

		day = first + (d->d - weekday(first) + 7) % 7 + 7 * (d->w - 1);
		if (day >= first + month_days(y, d->m))
			day -= 7; /* week 5: the last such weekday */
		break;
	}
	}
	return day * DAY_S + d->time - off;
}

/*
 * The rule's offset at t, and the next instant it may change (as tz_lookup).
 * t is clamped to +-2^50 s (35 million years), where *next means nothing.
 */
static void
rule_lookup(const tz_rule *r, int64_t t, int64_t *off, int64_t *next)
{
	int64_t y, st[4], en[4];
	int m, d;
	bool dst = false;

	*off = r->std_off;
	*next = INT64_MAX;
	if (!r->has_dst)
		return;
	if (t > TZ_RULE_T_MAX)
		t = TZ_RULE_T_MAX;
	if (t < -TZ_RULE_T_MAX)
		t = -TZ_RULE_T_MAX;
	civil_from_days(floor_div(t, DAY_S), &y, &m, &d);
	for (int k = 0; k < 4; k++) {
		st[k] = rule_instant(&r->start, y - 1 + k, r->std_off);
		en[k] = rule_instant(&r->end, y - 1 + k, r->dst_off);
		if (st[k] > t && st[k] < *next)
			*next = st[k];
		if (en[k] > t && en[k] < *next)
			*next = en[k];
	}
	/* DST runs from a start to the end in the same year, or (southern
	 * hemisphere) in the next; t can only fall in one from y-1, y or y+1. */
	for (int k = 0; k < 3; k++) {
		int64_t until = st[k] < en[k] ? en[k] : en[k + 1];

		if (st[k] <= t && t < until)
			dst = true;
	}
	if (dst)
		*off = r->dst_off;
	if (*next == INT64_MAX) /* a rule no real zone has; stay correct */
		*next = days_from_civil(y + 1, 1, 1) * DAY_S;
}

/* ---- TZif --------------------------------------------------------------- */

typedef struct tzif_rd {
	const uint8_t *p;
	size_t len, pos;
} tzif_rd;

typedef struct tzif_hdr {
	char version; /* 0, '2', '3' or '4' */
	uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} tzif_hdr;

/* The next n bytes, or NULL when fewer remain. */
static const uint8_t *
rd_take(tzif_rd *r, uint64_t n)
{
	const uint8_t *p;

	if (n > r->len - r->pos)
		return NULL;
	p = r->p + r->pos;
	r->pos += (size_t)n;
	return p;
}

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t
be64(const uint8_t *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static const char *
hdr_read(tzif_rd *r, tzif_hdr *h)
{
	const uint8_t *p = rd_take(r, 44);

	if (p == NULL)
		return "truncated header";
	if (memcmp(p, "TZif", 4) != 0)
		return "not a TZif file";
	h->version = (char)p[4];
	if (h->version != 0 && (h->version < '2' || h->version > '4'))
		return "unsupported TZif version";
	h->isutcnt = be32(p + 20);
	h->isstdcnt = be32(p + 24);
	h->leapcnt = be32(p + 28);
	h->timecnt = be32(p + 32);
	h->typecnt = be32(p + 36);
	h->charcnt = be32(p + 40);
	return NULL;
}

/* Bytes in the data block after header h, with tsize-byte times. */
static uint64_t
block_size(const tzif_hdr *h, unsigned tsize)
{
	return (uint64_t)h->timecnt * (tsize + 1) + (uint64_t)h->typecnt * 6 + h->charcnt +
	       (uint64_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
}

/* Reads and checks the data block after h into tz. */
static const char *
block_read(tzif_rd *r, const tzif_hdr *h, unsigned tsize, fs_tz *tz)
{
	const uint8_t *p, *times, *idx, *info, *chars, *isstd, *isut;

	if (h->typecnt == 0 || h->typecnt > 256 || h->charcnt == 0)
		return "no local time types";
	if ((h->isstdcnt != 0 && h->isstdcnt != h->typecnt) ||
	    (h->isutcnt != 0 && h->isutcnt != h->typecnt))
		return "bad indicator counts";
	if (h->leapcnt != 0)
		return "leap-second zones are not supported";
	if ((p = rd_take(r, block_size(h, tsize))) == NULL)
		return "truncated data block";
	times = p;
	idx = times + (size_t)h->timecnt * tsize;
	info = idx + h->timecnt;
	chars = info + (size_t)h->typecnt * 6;
	isstd = chars + h->charcnt; /* no leap records */
	isut = isstd + h->isstdcnt;

	tz->ntimes = h->timecnt;
	tz->noffs = h->typecnt;
	tz->times = malloc((h->timecnt ? h->timecnt : 1) * sizeof(*tz->times));
	tz->types = malloc(h->timecnt ? h->timecnt : 1);
	tz->offs = malloc(h->typecnt * sizeof(*tz->offs));
	if (tz->times == NULL || tz->types == NULL || tz->offs == NULL)
		return "out of memory";
	for (size_t i = 0; i < tz->ntimes; i++) {
		tz->times[i] =
			tsize == 8 ? be64(times + 8 * i) : (int64_t)(int32_t)be32(times + 4 * i);
		if (i > 0 && tz->times[i] <= tz->times[i - 1])
			return "transitions out of order";
		if (idx[i] >= h->typecnt)
			return "transition names an unknown type";
		tz->types[i] = idx[i];
	}
	for (size_t i = 0; i < tz->noffs; i++) {
		int32_t off = (int32_t)be32(info + 6 * i);

		if (off < TZ_OFF_MIN || off > TZ_OFF_MAX)
			return "UTC offset out of range";
		if (info[6 * i + 4] > 1 || info[6 * i + 5] >= h->charcnt)
			return "bad local time type";
		tz->offs[i] = off;
	}
	if (chars[h->charcnt - 1] != '\0')
		return "unterminated abbreviations";
	for (size_t i = 0; i < h->isstdcnt; i++)
		if (isstd[i] > 1 || (h->isutcnt && isut[i] > isstd[i]))
			return "bad standard/UT indicators";
	for (size_t i = 0; i < h->isutcnt; i++)
		if (isut[i] > 1)
			return "bad standard/UT indicators";
	return NULL;
}

/* "\n" TZ string "\n" after a version 2+ block. */
static const char *
footer_read(tzif_rd *r, fs_tz *tz)
{
	char s[TZ_STRING_MAX + 1];
	const uint8_t *p, *nl;
	size_t n;

	if ((p = rd_take(r, 1)) == NULL || *p != '\n')
		return "missing footer";
	nl = memchr(r->p + r->pos, '\n', r->len - r->pos);
	if (nl == NULL)
		return "unterminated footer";
	n = (size_t)(nl - (r->p + r->pos));
	if (n > TZ_STRING_MAX)
		return "footer too long";
	memcpy(s, r->p + r->pos, n);
	s[n] = '\0';
	r->pos += n + 1;
	if (n == 0)
		return NULL; /* no rule: the last type goes on */
	if (strlen(s) != n || !tz_rule_parse(s, &tz->rule) || tz->rule.std_off < TZ_OFF_MIN ||
	    tz->rule.std_off > TZ_OFF_MAX)
		return "malformed TZ string in footer";
	tz->has_rule = true;
	return NULL;
}

/* Parses a whole TZif image into tz; NULL, or why it is malformed. */
static const char *
tzif_parse(fs_tz *tz, const uint8_t *buf, size_t len)
{
	tzif_rd r = {buf, len, 0};
	tzif_hdr h;
	const char *why;

	if ((why = hdr_read(&r, &h)) != NULL)
		return why;
	if (h.version == 0)
		return block_read(&r, &h, 4, tz);
	/* Version 2+: skip the 32-bit block, use the 64-bit one. */
	if (rd_take(&r, block_size(&h, 4)) == NULL)
		return "truncated data block";
	if ((why = hdr_read(&r, &h)) != NULL)
		return why;
	if (h.version == 0)
		return "second header has version 1";
	if ((why = block_read(&r, &h, 8, tz)) != NULL)
		return why;
	return footer_read(&r, tz);
}

/* Relative path of 1..TZ_NAME_MAX of [A-Za-z0-9._+-], no "." or ".." parts. */
static bool
tz_name_ok(const char *name)
{
	size_t n = strnlen(name, TZ_NAME_MAX + 1), part = 0;

	if (n == 0 || n > TZ_NAME_MAX)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char c = name[i];

		if (c == '/' || c == '\0') {
			if (part == 0 || (part == 1 && name[i - 1] == '.') ||
			    (part == 2 && name[i - 1] == '.' && name[i - 2] == '.'))
				return false;
			part = 0;
		} else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '+' || c == '-') {
			part++;
		} else {
			return false;
		}
	}
	return true;
}

/* Reads a regular file of at most TZ_FILE_MAX bytes; NULL, or what failed. */
static const char *
file_read(const char *path, uint8_t **buf, size_t *len)
{
	const char *why = NULL;
	struct stat st;
	uint8_t *b = NULL;
	size_t n = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		why = errno == ENOENT || errno == ENOTDIR ? "no such zone"
		      : errno == EACCES                   ? "permission denied"
		                                          : "cannot open the file";
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		why = "not a zone file";
		goto out;
	}
	if ((b = malloc(TZ_FILE_MAX + 1)) == NULL) {
		why = "out of memory";
		goto out;
	}
	/* Read to EOF rather than trust st_size: the file may change under us. */
	while (n <= TZ_FILE_MAX) {
		ssize_t got = read(fd, b + n, TZ_FILE_MAX + 1 - n);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			why = "cannot read the file";
			goto out;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	if (n > TZ_FILE_MAX) {
		why = "file too large";
		goto out;
	}
	*buf = b;
	*len = n;
	b = NULL;
out:
	free(b);
	if (fd >= 0)
		close(fd);
	return why;
}

static void
set_err(char *err, size_t errlen, const char *name, const char *path, const char *why)
{
	if (err == NULL || errlen == 0)
		return;
	if (path != NULL)
		snprintf(err, errlen, "time zone \"%.*s\": %s (%s)", TZ_NAME_MAX, name, why, path);
	else
		snprintf(err, errlen, "time zone \"%.*s\": %s", TZ_NAME_MAX, name, why);
}

/* A zone named name from the TZif image buf[0..len), which it copies; NULL
 * with one sentence in err (path: where the image came from, or NULL). */
static fs_tz *
tz_from_image(const char *name, const char *path, const uint8_t *buf, size_t len, char *err,
              size_t errlen)
{
	fs_tz *tz;
	const char *why;

	if ((tz = calloc(1, sizeof(*tz))) == NULL ||
	    (tz->tzif = malloc(len > 0 ? len : 1)) == NULL) {
		free(tz);
		set_err(err, errlen, name, NULL, "out of memory");
		return NULL;
	}
	memcpy(tz->name, name, strlen(name) + 1);
	memcpy(tz->tzif, buf, len);
	tz->tzif_len = len;
	if ((why = tzif_parse(tz, buf, len)) != NULL) {
		char msg[128];

		snprintf(msg, sizeof(msg), "malformed TZif file: %s", why);
		set_err(err, errlen, name, path, msg);
		tz_free(&tz);
	}
	return tz;
}

fs_tz *
tz_load(const char *name, char *err, size_t errlen)
{
	fs_tz *tz = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	char path[4096];
	const char *dir, *why;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (name == NULL || !tz_name_ok(name)) {
		set_err(err, errlen, name ? name : "(null)", NULL,
		        "not a zone name (like Europe/Copenhagen)");
		goto out;
	}
	dir = getenv("TZDIR");
	if (dir == NULL || dir[0] == '\0')
		dir = TZ_DEFAULT_DIR;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
		set_err(err, errlen, name, NULL, "TZDIR path too long");
		goto out;
	}
	if ((why = file_read(path, &buf, &len)) != NULL) {
		set_err(err, errlen, name, path, why);
		goto out;
	}
	tz = tz_from_image(name, path, buf, len, err, errlen);
out:
	free(buf);
	return tz;
}

fs_tz *
tz_load_tzif(const char *name, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (name == NULL || !tz_name_ok(name)) {
		set_err(err, errlen, name ? name : "(null)", NULL,
		        "not a zone name (like Europe/Copenhagen)");
		return NULL;
	}
	if (buf == NULL || len == 0 || len > TZ_FILE_MAX) {
		set_err(err, errlen, name, NULL,
		        len > TZ_FILE_MAX ? "TZif image too large" : "empty TZif image");
		return NULL;
	}
	return tz_from_image(name, NULL, buf, len, err, errlen);
}

const uint8_t *
tz_tzif(const fs_tz *tz, size_t *len)
{
	assert(tz != NULL && len != NULL);
	*len = tz->tzif_len;
	return tz->tzif;
}

void
tz_free(fs_tz **tz)
{
	if (tz == NULL || *tz == NULL)
		return;
	free((*tz)->times);
	free((*tz)->types);
	free((*tz)->offs);
	free((*tz)->tzif);
	free(*tz);
	*tz = NULL;
}

const char *
tz_name(const fs_tz *tz)
{
	assert(tz != NULL);
	return tz->name;
}

/*
 * The UTC offset at t, and the least instant after t at which it may
 * change (*next > t; INT64_MAX when never): the offset is constant on
 * [t, *next).
 */
static void
tz_lookup(const fs_tz *tz, int64_t t, int64_t *off, int64_t *next)
{
	size_t n = tz->ntimes, lo, hi;

	if (n > 0 && t < tz->times[0]) {
		*off = tz->offs[0];
		*next = tz->times[0];
		return;
	}
	if (n > 0 && t < tz->times[n - 1]) {
		lo = 0; /* times[lo] <= t < times[hi] */
		hi = n - 1;
		while (hi - lo > 1) {
			size_t mid = lo + (hi - lo) / 2;

			if (tz->times[mid] <= t)
				lo = mid;
			else
				hi = mid;
		}
		*off = tz->offs[tz->types[lo]];
		*next = tz->times[hi];
		return;
	}
	if (tz->has_rule) {
		rule_lookup(&tz->rule, t, off, next);
		return;
	}
	*off = tz->offs[n > 0 ? tz->types[n - 1] : 0];
	*next = INT64_MAX;
}

int64_t
tz_offset_s(const fs_tz *tz, int64_t utc_s)
{
	int64_t off, next;

	assert(tz != NULL);
	tz_lookup(tz, utc_s, &off, &next);
	return off;
}

/* The earliest instant (UTC seconds) whose local date is day or later. */
static int64_t
day_start(const fs_tz *tz, int64_t day)
{
	int64_t local = day * DAY_S, t = local - TZ_WINDOW, off, next, cand;

	/* Terminates: once t >= local + TZ_WINDOW, cand == t < next. */
	for (;;) {
		tz_lookup(tz, t, &off, &next);
		cand = local - off > t ? local - off : t;
		if (cand < next)
			return cand;
		t = next;
	}
}

bool
cal_unit_parse(const char *s, cal_unit *out)
{
	static const struct {
		const char *name;
		cal_unit unit;
	} units[] = {{"days", CAL_DAYS}, {"weeks", CAL_WEEKS}, {"months", CAL_MONTHS}};

	if (s == NULL)
		return false;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s, units[i].name) == 0) {
			*out = units[i].unit;
			return true;
		}
	}
	return false;
}

bool
cal_due_ms(const fs_tz *tz, int64_t start_ms, int amount, cal_unit unit, int64_t *due_ms)
{
	int64_t s, day, y, mi;
	int m, d;

	assert(tz != NULL && due_ms != NULL);
	if (start_ms < CAL_MS_MIN || start_ms >= CAL_MS_END)
		return false;
	s = floor_div(start_ms, 1000);
	day = floor_div(s + tz_offset_s(tz, s), DAY_S);
	switch (unit) {
	case CAL_DAYS:
		day += amount;
		break;
	case CAL_WEEKS:
		day += (int64_t)amount * 7;
		break;
	case CAL_MONTHS:
		civil_from_days(day, &y, &m, &d);
		mi = y * 12 + (m - 1) + amount;
		y = floor_div(mi, 12);
		m = (int)(mi - y * 12) + 1;
		if (d > month_days(y, m))
			d = month_days(y, m);
		day = days_from_civil(y, m, d);
		break;
	default:
		return false;
	}
	day++; /* the end of the day is the start of the next */
	if (day < CAL_DAY_MIN || day >= CAL_DAY_END)
		return false;
	*due_ms = day_start(tz, day) * 1000;
	return true;
}

bool
cal_before_ms(const fs_tz *tz, int64_t due_ms, int amount, cal_unit unit, int64_t *warn_ms)
{
	if (amount == INT_MIN || due_ms <= CAL_MS_MIN)
		return false;
	return cal_due_ms(tz, due_ms - 1, -amount, unit, warn_ms);
}

bool
cal_day_start_ms(const fs_tz *tz, int64_t t_ms, int64_t *day_ms)
{
	return cal_due_ms(tz, t_ms, -1, CAL_DAYS, day_ms);
}
