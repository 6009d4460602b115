/* The "what becomes due" report of `retention apply` and `policy load`
 * (implemented in cmd-retention.c). */
#ifndef MV_CMD_RETENTION_H
#define MV_CMD_RETENTION_H

#include <json-glib/json-glib.h>
#include <stdio.h>

#include "mv-retention.h"

/* "WHEN: N due for destruction (the next purge destroys them), ..." and a
 * line per class, on f. */
void mv_cli_due_print(FILE *f, const char *when, const mv_apply_stats *stats);
/* Members due_now, review_now, held_now and due_by_class ([{class,
 * disposition, due, held}]) of the object being built. */
void mv_cli_due_json(JsonBuilder *b, const mv_apply_stats *stats);

#endif
