/* mv-export: case bundles.  The messages of a hold or a query are streamed,
 * one at a time, from the store into a bundle (mv-bundle.h: a directory,
 * zip or tar, with SHA256SUMS) or into an mboxrd file:
 *
 *   documents/DOCID/DOCID.eml         the message, byte-exact (verified
 *                                     against its SHA-256 as it is read)
 *   documents/DOCID/DOCID.txt         its header summary and body text
 *   documents/DOCID/attachments/NAME  each attachment, decoded (with
 *                                     with_attachments), under a safe name
 *   loadfile.xml                      EDRM XML 1.2 (mv-edrm.h)
 *   edrm-1.2.xsd                      the schema of loadfile.xml
 *   index.html                        offline, sortable, filterable table
 *   manifest.xml                      what, who, when, counts
 *   audit.xml                         the audit trail entries of the case,
 *                                     each with its prev_hash and hash
 *   errors.xml                        what could not be exported, and why
 *   destroyed.xml                     records of the hold destroyed by purge
 *                                     (their tombstones)
 *   SHA256SUMS                        every file's SHA-256
 *   SHA256SUMS.asc                    with sign_key: an OpenPGP detached
 *                                     signature of SHA256SUMS
 *
 * A zip or tar holds these in one top-level folder, named after the output
 * file without its .zip/.tar (and with the part's number for split parts).
 *
 * DOCID is the message's registration number, or "ID-" and its id padded
 * to 12 digits when it has none: stable across exports.  With split_size
 * the bundle is cut into parts PATH.001, PATH.002, ..., each a complete
 * bundle of whole messages (a part is larger than split_size only when one
 * message alone is).  Every export appends an "export" audit entry naming
 * each part and the SHA-256 of its SHA256SUMS (of the mbox file for mbox).
 * Reads run in one REPEATABLE READ transaction: the bundle is a snapshot.
 *
 * A message that cannot be read (its blobs fail their SHA-256 check, or it
 * is gone) is listed in errors.xml and the export goes on: the result is
 * MV_ERR_PARTIAL.
 *
 * Destroyed records: purge deletes a destroyed message's hold_item rows, so
 * the records a hold had are found through the audit trail instead: the
 * message ids its record.hold-items entries (schema 013) and its earlier
 * export entries (message_ids=) name; those now tombstoned are listed in
 * destroyed.xml.
 *
 * Ownership: the summary is filled by mv_export_run and freed by
 * mv_export_summary_clear. */
#ifndef MV_EXPORT_H
#define MV_EXPORT_H

#include <glib.h>

#include "mv-blobstore.h"
#include "mv-db.h"
#include "mv-status.h"

typedef enum { MV_EXPORT_DIR, MV_EXPORT_ZIP, MV_EXPORT_TAR, MV_EXPORT_MBOX } mv_export_format;

/* "dir", "zip", "tar", "mbox". */
gboolean mv_export_format_parse(const char *name, mv_export_format *format_r);

/* "1048576", "512K", "100M", "1G", "2T" (powers of 1024) -> bytes.
 * FALSE when malformed or zero. */
gboolean mv_export_parse_size(const char *text, guint64 *bytes_r);

typedef struct {
	gint64 selected, done, failed;
	guint64 bytes;       /* message bytes exported so far */
	guint part;          /* 1-based */
} mv_export_progress;

typedef struct {
	const char *hold;          /* the messages of this hold (active or released), or */
	const char *query;         /* the messages this query matches; exactly one is set */
	const char *out;           /* path to create (must not exist) */
	mv_export_format format;
	gboolean with_attachments;
	gboolean include_infected; /* write an infected message's attachments too */
	guint64 split_size;        /* 0: one part */
	const char *actor;         /* who exports (audit, manifest) */
	const char *sign_key;      /* OpenPGP key (GnuPG keyring) to sign SHA256SUMS with, or NULL */
	const char *const *encrypt_to; /* zip/tar only: NULL-terminated OpenPGP recipients (public
	                              keys of the GnuPG keyring); each part is written as PART.gpg
	                              encrypted to them, the clear archive only in a private
	                              temporary directory, removed on every path; NULL: clear */
	const char *version;       /* mailvault version (manifest) */
	void (*progress)(void *context, const mv_export_progress *progress);
	void *progress_context;
} mv_export_options;

typedef struct {
	char *path;
	char *sha256;      /* of SHA256SUMS (of the file itself for mbox) */
	gint64 messages;
	gint64 attachments;
	gint64 failed;
} mv_export_part;

typedef struct {
	char *doc_id;
	gint64 id;
	char *sha256;
	char *error;
} mv_export_error;

typedef struct {
	gint64 selected;     /* messages the hold or query names */
	gint64 exported;
	gint64 attachments;
	gint64 infected;     /* messages with a virus verdict "infected" (marked) */
	gint64 attachments_withheld; /* of them, messages whose attachments were left out */
	gint64 failed;       /* listed in errors */
	guint64 bytes;       /* of the exported messages */
	GPtrArray *parts;    /* mv_export_part* */
	GPtrArray *errors;   /* mv_export_error* */
	gint64 audit_seq;    /* the export's audit entry */
	gint64 destroyed;    /* records of the hold destroyed by purge (destroyed.xml) */
	char *destroyed_runs; /* their purge runs, "2" or "2, 5"; NULL when none */
	gint64 unaccounted;  /* ids the hold's audit entries name, neither here nor tombstoned */
	gint64 held_at_creation; /* the hold's hold.create entry: messages=N; -1 unknown */
	char *signer;        /* fingerprint of the key that signed, or NULL */
	char **recipients;   /* fingerprints encrypted to (NULL-terminated), or NULL */
} mv_export_summary;

void mv_export_summary_clear(mv_export_summary *summary);

/* Export.  MV_OK: every selected message is in the bundle; MV_ERR_PARTIAL:
 * some are listed in errors (summary says which); MV_ERR_DESTROYED: a hold
 * export found no message to export, and records of the hold were destroyed
 * (the bundle is written, with destroyed.xml, and audited); MV_ERR_NOT_FOUND: no
 * such hold; MV_ERR_CONFIG: sign_key or a recipient of encrypt_to cannot be
 * used (checked before anything is written); MV_ERR_QUERY: a bad query; MV_ERR_USAGE: bad options or out
 * exists; MV_ERR_IO, MV_ERR_DB: the export stopped (what was written is
 * not a bundle to hand out; no audit entry is made).  summary_r is filled
 * whatever the outcome. */
mv_status mv_export_run(mv_db *db, mv_blobstore *blobs, const mv_export_options *options,
                        mv_export_summary *summary_r, char **error_r) MV_WARN_UNUSED;


/* ---- checking a case bundle ---- */

typedef struct {
	gint64 files;        /* listed in SHA256SUMS and checked */
	guint64 bytes;
	gint64 documents;    /* messages (.eml files) */
	gint64 attachments;
	gint64 errors;       /* entries of errors.xml */
	gint64 selected;     /* the manifest's count of selected messages */
	char *format;        /* "dir", "zip", "tar" */
	char *sums_sha256;   /* SHA-256 of SHA256SUMS (compare with the audit entry) */
	char *folder;        /* the zip's or tar's top-level folder; "" for a flat bundle */
	gint64 destroyed;    /* entries of destroyed.xml */
	gint64 audit_entries; /* entries of audit.xml */
	gboolean audit_checked; /* their hashes and links were rechecked (FALSE: an older
	                           audit.xml without prev_hash) */
	char *signature;     /* "none", "good", "bad", "no-public-key" */
	char *signer;        /* the signer's primary key fingerprint, or NULL */
	char *signer_uid;    /* and user id */
	char *signer_validity; /* GnuPG's validity of that key: "ultimate", "full", ... */
	gboolean encrypted;  /* PATH was an encrypted bundle (.gpg), decrypted to check it */
} mv_export_verify_report;

void mv_export_verify_report_clear(mv_export_verify_report *report);

/* Check a case bundle (directory, zip or tar): the signature of
 * SHA256SUMS when there is one (GnuPG keyring), every file against
 * SHA256SUMS, no file missing or extra (mv_bundle_verify); the load file
 * valid against the EDRM schema, each of its ExternalFile entries naming a
 * file of the bundle with that size and SHA-256; the manifest's counts
 * (files, documents, attachments, errors, destroyed) matching the bundle;
 * and audit.xml's chain excerpt (each entry's hash from its fields and
 * prev_hash, consecutive entries linked).
 * MV_ERR_SIGNATURE: the signature is bad (SHA256SUMS is not what was
 * signed); MV_ERR_CONFIG: signed, but the signer's public key is not in the
 * keyring (or GnuPG is missing); MV_ERR_INTEGRITY with *error_r naming the
 * first discrepancy; MV_ERR_NOT_FOUND / MV_ERR_INPUT as mv_bundle_verify.
 * A PATH ending in .gpg is an encrypted bundle: it is decrypted with a
 * secret key of the GnuPG keyring into a private temporary file (removed
 * afterwards) and that is checked; MV_ERR_CONFIG when no secret key opens
 * it, otherwise as mv_decrypt_file (mv-sign.h). */
mv_status mv_export_verify(const char *path, mv_export_verify_report *report_r, char **error_r)
	MV_WARN_UNUSED;

/* The same; with signer (a fingerprint, NULL for any) the bundle must be
 * signed by that key (primary or subkey fingerprint): MV_ERR_SIGNATURE
 * otherwise. */
mv_status mv_export_verify_signed(const char *path, const char *signer,
                                  mv_export_verify_report *report_r, char **error_r)
	MV_WARN_UNUSED;

#endif
