/* The IMAP client's reader (ingest/mv-imap.c: lines, literals, tokens,
 * the CAPABILITY / SELECT / SEARCH / FETCH handlers, tagged answers) over
 * a whole session whose server's bytes are the input (mv-imap-testing.h;
 * tags M1, M2, ... in the order below): CAPABILITY, SELECT, UID SEARCH,
 * UID FETCH without and with bodies, UID STORE, (UID) EXPUNGE, APPEND
 * (with TRYCREATE), LOGOUT.  A refused command (NO / BAD) lets the
 * session go on; any other failure ends it.  Invariants: every failure
 * has a one-line printable message and success none; a session that
 * failed with MV_ERR_IO refuses the next command with MV_ERR_IO; SELECT
 * reports a UIDVALIDITY; search UIDs are non-zero and strictly ascending;
 * no fetched body is larger than max_literal. */
#include "fuzz-common.h"
#include "mv-imap-testing.h"

#define MAX_LITERAL (64u * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Check the error that goes with st and free it. */
static void check_error(mv_status st, char **err)
{
	if (st == MV_OK) {
		if (*err != NULL)
			abort();
		return;
	}
	if (*err == NULL)
		abort();
	for (const char *p = *err; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			abort();
	g_clear_pointer(err, g_free);
}

/* Whether the session is usable after st (mv-imap.h: refusals are
 * MV_ERR_INPUT, a SELECT of a missing mailbox MV_ERR_NOT_FOUND). */
static gboolean goes_on(mv_status st)
{
	return st == MV_OK || st == MV_ERR_INPUT || st == MV_ERR_NOT_FOUND;
}

static mv_status fetch(mv_imap *imap, const char *set, gboolean body, char **err)
{
	GPtrArray *msgs = NULL;
	mv_status st = mv_imap_uid_fetch(imap, set, body, &msgs, err);
	check_error(st, err);
	if (st != MV_OK) {
		if (msgs != NULL)
			abort();
		return st;
	}
	for (guint i = 0; i < msgs->len; i++) {
		const mv_imap_message *m = msgs->pdata[i];
		if (m == NULL || (m->raw != NULL && g_bytes_get_size(m->raw) > MAX_LITERAL))
			abort();
	}
	g_ptr_array_free(msgs, TRUE);
	return MV_OK;
}

/* The commands after CAPABILITY; returns the status that ended it. */
static mv_status session(mv_imap *imap)
{
	char *err = NULL;
	if (mv_imap_mailbox(imap) == NULL)
		abort();
	gboolean uidplus = mv_imap_has_capability(imap, "UIDPLUS");
	(void)mv_imap_has_capability(imap, "IMAP4rev1");

	mv_imap_mailbox_info info;
	mv_status st = mv_imap_select(imap, NULL, &info, &err);
	check_error(st, &err);
	if (st == MV_OK && info.uidvalidity == 0)
		abort();
	if (!goes_on(st))
		return st;

	GArray *uids = NULL;
	char *set = NULL;
	st = mv_imap_uid_search(imap, "UID 1:*", &uids, &err);
	check_error(st, &err);
	if (st == MV_OK) {
		const guint64 *u = (const guint64 *)(void *)uids->data;
		for (guint i = 0; i < uids->len; i++)
			if (u[i] == 0 || (i > 0 && u[i - 1] >= u[i]))
				abort();
		if (uids->len > 0)
			set = mv_imap_uid_set(u, uids->len);
		g_array_unref(uids);
	} else if (uids != NULL) {
		abort();
	}
	if (!goes_on(st))
		return st;
	if (set == NULL)
		set = g_strdup("1:*");

	st = fetch(imap, set, FALSE, &err);
	if (goes_on(st))
		st = fetch(imap, set, TRUE, &err);
	if (goes_on(st)) {
		st = mv_imap_uid_add_flag(imap, set, "\\Deleted", &err);
		check_error(st, &err);
	}
	if (goes_on(st)) {
		st = mv_imap_expunge(imap, uidplus ? set : NULL, &err);
		check_error(st, &err);
	}
	g_free(set);
	if (!goes_on(st))
		return st;

	static const char msg[] = "From: a@corp.example\r\nSubject: restored\r\n\r\nHello.\r\n";
	GBytes *raw = g_bytes_new_static(msg, sizeof msg - 1);
	guint64 uid = 1;
	st = mv_imap_append(imap, "Restored", "\\Seen", 1717408800, raw, &uid, &err);
	g_bytes_unref(raw);
	check_error(st, &err);
	if (st != MV_OK && uid != 0)
		abort();
	return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mv_imap_options o;
	mv_imap_options_default(&o);
	o.timeout = 1;
	o.max_literal = MAX_LITERAL;
	mv_imap *imap = NULL;
	char *err = NULL;
	mv_status st = mv_imap_open_memory(data, size, &o, &imap, &err);
	check_error(st, &err);
	if (st != MV_OK) {
		if (imap != NULL)
			abort();
		return 0;
	}
	st = session(imap);
	if (st == MV_ERR_IO) {
		/* Broken: refused at once, without reading. */
		if (mv_imap_expunge(imap, NULL, &err) != MV_ERR_IO)
			abort();
		check_error(MV_ERR_IO, &err);
	}
	mv_imap_close(&imap);
	if (imap != NULL)
		abort();
	return 0;
}
