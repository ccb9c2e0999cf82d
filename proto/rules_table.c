/*
 * The rule table (rules.h): METHOD.md's defaults (rules_config_default), the
 * rule names, the JSON table an operator writes (rules_config_load_json,
 * every refusal naming the rule and the field), and the effective table as
 * JSON text (rules_config_to_json) in that same format: the daemon sends it
 * to the tablets in Welcome.deadline_rules (docs/protocol.md), so a tablet
 * evaluates with the table the daemon uses.
 *
 * Layer: the shared core. Every rule is written with every field it can be
 * given, so the text loaded over the defaults gives back rc exactly (equal
 * rules_fingerprint). Pure; allocates only the text it returns.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fieldsync/rules.h"

#define RULES_AMOUNT_MAX 10000 /* largest N in "<N> days|weeks|months" */

static const char *const g_rule_names[RULE_COUNT] = {
	[RULE_QUICK_HELP] = "quick-help",
	[RULE_COUNSELLING_LIMIT] = "counselling-limit",
	[RULE_TREATMENT_START] = "treatment-start",
	[RULE_TREATMENT_WINDOW] = "treatment-window",
	[RULE_GROUP_COURSE] = "group-course",
	[RULE_PARENT_SESSION] = "parent-session",
	[RULE_NETWORK_MEETING] = "network-meeting",
	[RULE_FOLLOW_UP] = "follow-up",
	[RULE_HANDOVER] = "handover",
	[RULE_NOTIFICATION_DUTY] = "notification-duty",
};

/* ---- configuration ------------------------------------------------------ */

static rule_conf
conf_make(int due, cal_unit due_unit, bool has_warning, int warning, cal_unit warning_unit,
          int count)
{
	rule_conf c = {
		.enabled = true,
		.due = {due, due_unit},
		.has_warning = has_warning,
		.warning = {has_warning ? warning : 0, has_warning ? warning_unit : CAL_DAYS},
		.count = count,
	};
	return c;
}

void
rules_config_default(rules_config *rc)
{
	assert(rc != NULL);
	memset(rc, 0, sizeof(*rc));
	rc->rule[RULE_QUICK_HELP] = conf_make(7, CAL_DAYS, true, 2, CAL_DAYS, 0);
	rc->rule[RULE_COUNSELLING_LIMIT] = conf_make(0, CAL_DAYS, false, 0, CAL_DAYS, 5);
	rc->rule[RULE_TREATMENT_START] = conf_make(4, CAL_WEEKS, true, 1, CAL_WEEKS, 0);
	rc->rule[RULE_TREATMENT_WINDOW] = conf_make(9, CAL_MONTHS, true, 1, CAL_MONTHS, 12);
	rc->rule[RULE_GROUP_COURSE] = conf_make(3, CAL_MONTHS, true, 2, CAL_WEEKS, 0);
	rc->rule[RULE_PARENT_SESSION] = conf_make(14, CAL_DAYS, true, 2, CAL_DAYS, 0);
	/* due unused: a network meeting is due at its next_at */
	rc->rule[RULE_NETWORK_MEETING] = conf_make(0, CAL_DAYS, true, 2, CAL_DAYS, 0);
	/* the warning is measured from the start: the window opens 1 month after */
	rc->rule[RULE_FOLLOW_UP] = conf_make(3, CAL_MONTHS, true, 1, CAL_MONTHS, 0);
	rc->rule[RULE_HANDOVER] = conf_make(0, CAL_DAYS, false, 0, CAL_DAYS, 0);
	rc->rule[RULE_NOTIFICATION_DUTY] = conf_make(0, CAL_DAYS, false, 0, CAL_DAYS, 0);
}

const char *
rule_name(rule_id r)
{
	return (unsigned)r < RULE_COUNT ? g_rule_names[r] : "unknown";
}

bool
rule_parse(const char *name, rule_id *out)
{
	if (name == NULL)
		return false;
	for (int r = 0; r < RULE_COUNT; r++) {
		if (strcmp(name, g_rule_names[r]) == 0) {
			*out = (rule_id)r;
			return true;
		}
	}
	return false;
}

/* Formats one sentence into err (when there is room). Always false. */
static bool
conf_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return false;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return false;
}

/* A printable copy of untrusted text for an error message: at most 60
 * bytes, quotes, backslashes and control bytes shown as '?'. */
static const char *
shown(const char *s, char buf[64])
{
	size_t n = 0;

	if (s == NULL)
		s = "";
	for (; *s != '\0' && n < 60; s++, n++) {
		unsigned char ch = (unsigned char)*s;
		buf[n] = (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\') ? '?' : (char)ch;
	}
	if (*s != '\0') {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

static const char *
json_type(const cJSON *v)
{
	if (cJSON_IsNull(v))
		return "null";
	if (cJSON_IsBool(v))
		return "a boolean";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsArray(v))
		return "an array";
	if (cJSON_IsObject(v))
		return "an object";
	return "an invalid value";
}

/* "<N> days|weeks|months": N decimal digits, one space, a unit that
 * cal_unit_parse() knows. OFFSET_OK and *out set, or why not. */
typedef enum { OFFSET_OK, OFFSET_SYNTAX, OFFSET_RANGE } offset_status;

static offset_status
offset_parse(const char *s, rule_offset *out)
{
	long n = 0;
	int digits = 0;
	cal_unit unit;

	for (; *s >= '0' && *s <= '9'; s++, digits++) {
		if (n <= RULES_AMOUNT_MAX)
			n = n * 10 + (*s - '0');
	}
	if (digits == 0 || *s != ' ' || !cal_unit_parse(s + 1, &unit))
		return OFFSET_SYNTAX;
	if (n > RULES_AMOUNT_MAX)
		return OFFSET_RANGE;
	out->amount = (int)n;
	out->unit = unit;
	return OFFSET_OK;
}

/* Parses the string of field `field` into *o, or says why not in err. */
static bool
conf_offset(const char *rn, const char *field, const char *s, rule_offset *o, char *err,
            size_t errlen)
{
	char b[64];

	switch (offset_parse(s, o)) {
	case OFFSET_OK:
		return true;
	case OFFSET_RANGE:
		return conf_fail(err, errlen,
		                 "rule \"%s\": field \"%s\": N must be 0..%d, got \"%s\"", rn,
		                 field, RULES_AMOUNT_MAX, shown(s, b));
	default:
		return conf_fail(
			err, errlen,
			"rule \"%s\": field \"%s\": expected \"<N> days|weeks|months\"%s, got \"%s\"",
			rn, field, strcmp(field, "warning") == 0 ? " or \"none\"" : "",
			shown(s, b));
	}
}

/* One field of one rule's object. */
static bool
conf_field(rule_id r, rule_conf *c, const cJSON *f, char *err, size_t errlen)
{
	const char *rn = g_rule_names[r];
	char b1[64];

	if (strcmp(f->string, "enabled") == 0) {
		if (!cJSON_IsBool(f))
			return conf_fail(
				err, errlen,
				"rule \"%s\": field \"enabled\": expected true or false, got %s",
				rn, json_type(f));
		c->enabled = cJSON_IsTrue(f);
		return true;
	}
	if (strcmp(f->string, "due") == 0) {
		if (r == RULE_NETWORK_MEETING)
			return conf_fail(
				err, errlen,
				"rule \"%s\": field \"due\": not configurable, the meeting is due at its next_at",
				rn);
		if (!cJSON_IsString(f))
			return conf_fail(
				err, errlen,
				"rule \"%s\": field \"due\": expected \"<N> days|weeks|months\", got %s",
				rn, json_type(f));
		return conf_offset(rn, "due", f->valuestring, &c->due, err, errlen);
	}
	if (strcmp(f->string, "warning") == 0) {
		if (cJSON_IsNull(f) || (cJSON_IsString(f) && strcmp(f->valuestring, "none") == 0)) {
			c->has_warning = false;
			c->warning.amount = 0;
			c->warning.unit = CAL_DAYS;
			return true;
		}
		if (!cJSON_IsString(f))
			return conf_fail(
				err, errlen,
				"rule \"%s\": field \"warning\": expected \"<N> days|weeks|months\" or \"none\" or null, got %s",
				rn, json_type(f));
		if (!conf_offset(rn, "warning", f->valuestring, &c->warning, err, errlen))
			return false;
		c->has_warning = true;
		return true;
	}
	if (strcmp(f->string, "count") == 0) {
		double v = f->valuedouble;

		if (r != RULE_COUNSELLING_LIMIT && r != RULE_TREATMENT_WINDOW)
			return conf_fail(
				err, errlen,
				"rule \"%s\": field \"count\": only counselling-limit and treatment-window have a count",
				rn);
		if (!cJSON_IsNumber(f))
			return conf_fail(
				err, errlen,
				"rule \"%s\": field \"count\": expected an integer 1..%d, got %s",
				rn, RULES_COUNT_MAX, json_type(f));
		if (!(v >= 1 && v <= RULES_COUNT_MAX) || (double)(int)v != v)
			return conf_fail(
				err, errlen,
				"rule \"%s\": field \"count\": expected an integer 1..%d, got %g",
				rn, RULES_COUNT_MAX, v);
		c->count = (int)v;
		return true;
	}
	return conf_fail(err, errlen,
	                 "rule \"%s\": unknown field \"%s\" (known: enabled, due, warning%s)", rn,
	                 shown(f->string, b1),
	                 r == RULE_COUNSELLING_LIMIT || r == RULE_TREATMENT_WINDOW ? ", count"
	                                                                           : "");
}

bool
rules_config_load_json(rules_config *rc, const char *json, char *err, size_t errlen)
{
	const char *end = NULL;
	cJSON *root = NULL;
	const cJSON *item, *f;
	bool seen[RULE_COUNT] = {false};
	bool ok = false;
	char b[64];

	assert(rc != NULL);
	if (json == NULL)
		return conf_fail(err, errlen, "no rule table given");
	root = cJSON_ParseWithOpts(json, &end, true);
	if (root == NULL) {
		conf_fail(err, errlen, "rule table is not JSON: syntax error at byte %zu",
		          end != NULL && end >= json ? (size_t)(end - json) : (size_t)0);
		goto out;
	}
	if (!cJSON_IsObject(root)) {
		conf_fail(err, errlen, "rule table: expected an object keyed by rule name, got %s",
		          json_type(root));
		goto out;
	}
	cJSON_ArrayForEach(item, root)
	{
		rule_id r;
		unsigned fields = 0; /* bit per known field, to refuse repeats */

		if (!rule_parse(item->string, &r)) {
			conf_fail(err, errlen, "unknown rule \"%s\"", shown(item->string, b));
			goto out;
		}
		if (seen[r]) {
			conf_fail(err, errlen, "rule \"%s\" given twice", g_rule_names[r]);
			goto out;
		}
		seen[r] = true;
		if (!cJSON_IsObject(item)) {
			conf_fail(err, errlen, "rule \"%s\": expected an object of fields, got %s",
			          g_rule_names[r], json_type(item));
			goto out;
		}
		cJSON_ArrayForEach(f, item)
		{
			static const char *const known[] = {"enabled", "due", "warning", "count"};

			for (unsigned k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
				if (strcmp(f->string, known[k]) != 0)
					continue;
				if (fields & (1u << k)) {
					conf_fail(err, errlen,
					          "rule \"%s\": field \"%s\" given twice",
					          g_rule_names[r], known[k]);
					goto out;
				}
				fields |= 1u << k;
			}
			if (!conf_field(r, &rc->rule[r], f, err, errlen))
				goto out;
		}
	}
	ok = true;
out:
	cJSON_Delete(root);
	return ok;
}

/* ---- contacts ----------------------------------------------------------- */

static const char *
unit_name(cal_unit u)
{
	return u == CAL_WEEKS ? "weeks" : u == CAL_MONTHS ? "months" : "days";
}

static bool
add_offset(cJSON *o, const char *field, rule_offset off)
{
	char b[48];
	snprintf(b, sizeof(b), "%d %s", off.amount, unit_name(off.unit));
	return cJSON_AddStringToObject(o, field, b) != NULL;
}

char *
rules_config_to_json(const rules_config *rc)
{
	cJSON *root = cJSON_CreateObject();
	char *text = NULL;
	bool ok = root != NULL;

	for (int r = 0; ok && r < RULE_COUNT; r++) {
		const rule_conf *c = &rc->rule[r];
		cJSON *o = cJSON_AddObjectToObject(root, rule_name((rule_id)r));
		ok = o != NULL && cJSON_AddBoolToObject(o, "enabled", c->enabled) != NULL;
		if (ok && r != RULE_NETWORK_MEETING)
			ok = add_offset(o, "due", c->due);
		if (ok)
			ok = c->has_warning ? add_offset(o, "warning", c->warning)
			                    : cJSON_AddStringToObject(o, "warning", "none") != NULL;
		if (ok && (r == RULE_COUNSELLING_LIMIT || r == RULE_TREATMENT_WINDOW))
			ok = cJSON_AddNumberToObject(o, "count", c->count) != NULL;
	}
	if (ok)
		text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return text;
}
