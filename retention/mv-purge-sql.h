/* mv-purge-sql: SQL shared by the purge runs (mv-purge.c) and the
 * tombstone lookup (mv-tombstone.c); private to the retention library. */
#ifndef MV_PURGE_SQL_H
#define MV_PURGE_SQL_H

/* The advisory lock a purge run holds (mv_purge_lock). */
#define PURGE_LOCK_KEY "7231980414"

/* A disposition d's state: a run without an end is running while its
 * lock is held, interrupted otherwise. */
#define SQL_RUN_STATE                                                                         \
	"CASE WHEN d.finished_at IS NOT NULL THEN d.state "                                      \
	"WHEN d.run = (SELECT max(x.run) FROM disposition x WHERE x.finished_at IS NULL) "       \
	"AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "       \
	"AND l.classid::bigint * 4294967296 + l.objid::bigint = " PURGE_LOCK_KEY                  \
	" AND l.objsubid = 1) THEN 'running' ELSE 'interrupted' END"

#endif
