/* mv-journal: recognising and unwrapping journal reports.
 *
 * A journal report (Exchange's envelope journaling, and others in its
 * format) is a message that carries another: a multipart whose first part
 * is text listing the envelope ("Sender: a@x", "Subject: ...",
 * "Message-Id: ...", then one line per recipient: "To: b@y", "Cc: ...",
 * "Bcc: ...", "Recipient: c@z", with ", Expanded: ..." / ", Forwarded: ..."
 * notes after the address) and whose second part is the original message
 * as message/rfc822.  Exchange marks the report with X-MS-Journal-Report.
 *
 * mv_journal_unwrap returns the original's exact bytes (the attached
 * part's body, with its transfer encoding undone when it is base64 or
 * quoted-printable; a 7bit/8bit/binary part is returned byte for byte) and
 * the envelope the report lists.
 *
 * What counts as a report: a message with X-MS-Journal-Report, or a
 * multipart whose first part has a Sender line and at least one recipient
 * line and whose second part is message/rfc822.  A message marked with the
 * header that cannot be unwrapped is MV_JOURNAL_MALFORMED (archive it as
 * it is, flagged); any other message is MV_JOURNAL_NONE.
 *
 * Untrusted input: raw comes from the journal mailbox.  GMime's parse and
 * the scans for the part's delimiter are bounded by the input; the
 * original is at most the input's size.
 *
 * Ownership: mv_journal_unwrap fills a caller's mv_journal_report; release
 * its contents with mv_journal_report_clear. */
#ifndef MV_JOURNAL_H
#define MV_JOURNAL_H

#include <glib.h>

#include "mv-message.h"

typedef enum {
	MV_JOURNAL_NONE,      /* not a journal report: archive as it is */
	MV_JOURNAL_REPORT,    /* unwrapped: original, sender and recipients set */
	MV_JOURNAL_MALFORMED, /* marked as a report but not unwrappable: problem set */
} mv_journal_kind;

typedef struct {
	mv_journal_kind kind;
	GBytes *original;      /* the attached message's bytes (REPORT) */
	char *sender;          /* the Sender line's address (REPORT) */
	GPtrArray *recipients; /* char*: every To/Cc/Bcc/Recipient address, in
	                          order, without duplicates (REPORT) */
	GPtrArray *bcc;        /* char*: those listed on Bcc lines (REPORT) */
	char *message_id;      /* the report's Message-Id line, or NULL */
	char *problem;         /* why it is MALFORMED */
} mv_journal_report;

/* Classify raw and unwrap it when it is a report.  Never fails: a message
 * that is not a well-formed report is NONE or MALFORMED.  GMime parses the
 * report; the original is cut from raw at the offsets GMime recorded and
 * decoded with GMime's decoder (base64, quoted-printable, uuencode; any
 * other encoding byte for byte). */
void mv_journal_unwrap(GBytes *raw, mv_journal_report *report);

/* Whether a parsed message may be a journal report (marked with
 * X-MS-Journal-Report, or a multipart/mixed or multipart/report whose
 * second part is message/rfc822): only those are handed to
 * mv_journal_unwrap, so ordinary mail is parsed once. */
gboolean mv_journal_candidate(const mv_message *msg);
void mv_journal_report_clear(mv_journal_report *report);

#endif
