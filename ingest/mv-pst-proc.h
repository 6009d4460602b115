/* mv-pst-proc: reading a PST in a child process, so that libpst crashing
 * on a damaged file fails one item, not the import.
 *
 * The child (`mailvault pst-read --records`, mv_pst_serve) reads the file
 * with mv-pst.h and writes records to a pipe: before each folder entry it
 * parses, the entry's number, node id and counts (flushed), then each
 * rebuilt item or item failure.  When the child dies without its end
 * record (a signal, an exit), the parent reports the entry it was reading
 * as failed ("libpst crashed ...") and starts a new child that continues
 * after it (mv_pst_set_restart), at most max_crashes times per file.
 *
 * SECURITY: the records come from a process that read a hostile file:
 * every length is checked against the limits before memory is spent.
 *
 * Ownership: mv_pst_proc_open returns a reader freed by
 * mv_pst_proc_close (which kills and reaps a child still running);
 * items as in mv-pst.h. */
#ifndef MV_PST_PROC_H
#define MV_PST_PROC_H

#include <glib.h>

#include "mv-pst.h"
#include "mv-status.h"

typedef struct mv_pst_proc mv_pst_proc;

/* Child side: read path and write its records to fd until the end.
 * skip_to as in mv_pst_next; restart_entry, index_base and other_base as
 * in mv_pst_set_restart (0: from the start).  Returns MV_OK once the end
 * record is written; an error also writes a fatal record. */
mv_status mv_pst_serve(const char *path, const mv_pst_limits *limits, gint64 skip_to,
                       gint64 restart_entry, gint64 index_base, gint64 other_base, int fd,
                       char **error_r) MV_WARN_UNUSED;

/* Parent side: start a child, helper_argv followed by the reading
 * options and path (helper_argv: {"/proc/self/exe", "pst-read",
 * "--records", NULL} for the mailvault command).  Fails as mv_pst_open
 * does when the file cannot be opened. */
mv_status mv_pst_proc_open(const char *const *helper_argv, const char *path,
                           const mv_pst_limits *limits, gint64 skip_to, mv_pst_proc **proc_r,
                           char **error_r) MV_WARN_UNUSED;

/* As mv_pst_next (no skip_to: given to open).  A crash of the child is
 * returned as MV_ERR_INPUT for the entry it was reading; call again. */
mv_status mv_pst_proc_next(mv_pst_proc *proc, mv_pst_item **item_r, gint64 *index_r,
                           char **error_r) MV_WARN_UNUSED;

gint64 mv_pst_proc_other_items(const mv_pst_proc *proc);
/* Times the reader crashed on this file. */
guint mv_pst_proc_crashes(const mv_pst_proc *proc);

void mv_pst_proc_close(mv_pst_proc **proc);

#endif
