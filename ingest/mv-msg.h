/* mv-msg: an Outlook MSG file (an OLE compound file of MAPI property
 * streams, [MS-OXMSG]) rebuilt as an RFC 5322 message (mv-mapi.h).
 *
 * libgsf reads the compound file; this module reads the property streams
 * it holds: "__substg1.0_IIIITTTT" (strings in UTF-16LE or the message's
 * code page, binary), the fixed-size values of "__properties_version1.0",
 * the recipient storages "__recip_version1.0_#N" and the attachment
 * storages "__attach_version1.0_#N" (an attached message is a storage of
 * its own, read the same way).
 *
 * SECURITY: reads untrusted files.  The whole file is at most max_bytes
 * and in memory; every stream is bounded by what is left of max_bytes;
 * recipients (10,000), attachments (1,000) and embedded depth (16) are
 * bounded.
 *
 * Ownership: *result_r is the caller's (mv_msg_result_free). */
#ifndef MV_MSG_H
#define MV_MSG_H

#include <glib.h>

#include "mv-status.h"

typedef struct {
	GBytes *raw;          /* the rebuilt message */
	char *message_class;  /* PR_MESSAGE_CLASS ("IPM.Note"), or NULL */
	gboolean is_mail;     /* IPM.Note*, IPM.Post*, IPM.Schedule*, REPORT.* (or no class) */
	guint8 *entry_id;     /* PR_ENTRYID when the file keeps it, or NULL */
	gsize entry_id_len;
	guint attachments;
} mv_msg_result;

/* Does a file starting with these bytes look like an OLE compound file? */
gboolean mv_msg_looks_like(const guint8 *head, gsize len);

/* Read the MSG in data[0..len).  MV_ERR_INPUT when it is not an MSG that
 * can be read, MV_ERR_LIMIT when a bound is crossed. */
mv_status mv_msg_read(const guint8 *data, gsize len, gsize max_bytes, mv_msg_result **result_r,
                      char **error_r) MV_WARN_UNUSED;

void mv_msg_result_free(mv_msg_result **result);

#endif
