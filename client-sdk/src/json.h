/*
 * json.h - the typed collections as JSON (json.c). The public half
 * (fs_json_to_payload, fs_payload_to_json) is in fieldsync.h; this is what
 * the other SDK files use. Layer: base. Thread-safe: no shared state.
 */
#ifndef FIELDSYNC_SDK_JSON_H
#define FIELDSYNC_SDK_JSON_H

#include <stddef.h>

#include "fieldsync/merge.h"

/* Version text "a:1,b:2" into buf (len > 0); truncated safely. */
void sdk_vv_text(const fsp_vv *v, char *buf, size_t len);

#endif
