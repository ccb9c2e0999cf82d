/*
 * The effective rule table as JSON text (rules.h: rules_config_to_json), in
 * the format rules_config_load_json() reads: the daemon sends it to the
 * tablets in Welcome.deadline_rules (docs/protocol.md), so a tablet
 * evaluates with the table the daemon uses.
 *
 * Layer: the shared core. Every rule is written with every field it can be
 * given, so the text loaded over the defaults gives back rc exactly (equal
 * rules_fingerprint). Pure; allocates only the text it returns.
 */
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "fieldsync/rules.h"

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
