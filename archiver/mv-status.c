/* mv-status: status names and the error-message helper. */
#include "mv-status.h"

#include <stdarg.h>

static const char *const status_names[MV_STATUS_COUNT] = {
	[MV_OK] = "ok",
	[MV_ERR_USAGE] = "usage error",
	[MV_ERR_QUERY] = "query syntax error",
	[MV_ERR_INPUT] = "bad input",
	[MV_ERR_NOT_FOUND] = "not found",
	[MV_ERR_IO] = "I/O error",
	[MV_ERR_DB] = "database error",
	[MV_ERR_INTEGRITY] = "integrity check failed",
	[MV_ERR_CONFIG] = "configuration error",
	[MV_ERR_LIMIT] = "limit exceeded",
	[MV_ERR_INTERNAL] = "internal error",
	[MV_ERR_PARTIAL] = "some items failed",
	[MV_ERR_BUSY] = "busy",
	[MV_ERR_DENIED] = "permission denied",
	[MV_ERR_DESTROYED] = "destroyed by purge",
	[MV_ERR_SIGNATURE] = "bad signature",
};

const char *mv_status_to_string(mv_status status)
{
	if ((int)status < 0 || status >= MV_STATUS_COUNT)
		return "unknown status";
	return status_names[status];
}

mv_status mv_fail(char **error_r, mv_status status, const char *fmt, ...)
{
	if (error_r != NULL && *error_r == NULL) {
		va_list ap;
		va_start(ap, fmt);
		*error_r = g_strdup_vprintf(fmt, ap);
		va_end(ap);
	}
	return status;
}
