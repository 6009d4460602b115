/* mv-config: the configuration file (/etc/mailvault/mailvault.conf,
 * --config FILE, MAILVAULT_CONFIG), read with GLib's GKeyFile.
 *
 * One table (mv-config.c) maps each "[section] key" to what it sets:
 *  - an environment variable the library already reads (MAILVAULT_HOME,
 *    MAILVAULT_CLAMD, ...), set only when the environment does not set it;
 *  - a command's long option, put into the command's argv right after the
 *    command (and subcommand) name, so the options the user typed come later
 *    and win (getopt keeps the last value of an option);
 *  - a section a command reads itself ([smtpd], [imap:NAME]): the table
 *    only checks its keys and values;
 *  - a global setting of mailvault.c ([logging] level, progress).
 * So a command's file does not change for its options to be configurable:
 * adding a setting is one row of the table (and docs/mailvault.conf.sample,
 * regenerated with 'mailvault config sample').
 *
 * Untrusted input: the file is read by root-run services; every line is
 * checked (syntax, known section and key, value) before anything is used,
 * and an error names FILE:LINE and the key. */
#ifndef MV_CONFIG_H
#define MV_CONFIG_H

#include <glib.h>
#include <stdio.h>

#include "mv-status.h"

typedef struct mv_config mv_config;

/* Where the configuration comes from: option (--config PATH) if not NULL,
 * else $MAILVAULT_CONFIG (set but empty: no file), else the default path
 * (sysconfdir/mailvault/mailvault.conf) when it exists.  NULL when there is
 * no file to read; the result points into option, static storage or the
 * environment (not to free). */
const char *mv_config_locate(const char *option);

/* The default path, for help texts. */
const char *mv_config_default_path(void);

/* Read and check path.  MV_ERR_CONFIG with "FILE:LINE: what" for a syntax
 * error, an unknown section or key, or a bad value; MV_ERR_IO when an
 * explicit file cannot be read.  *config_r: free with mv_config_free. */
mv_status mv_config_load(const char *path, mv_config **config_r, char **error_r)
	G_GNUC_WARN_UNUSED_RESULT;
void mv_config_free(mv_config **config);

/* The file it was read from (owned by config). */
const char *mv_config_path(const mv_config *config);

/* A value of a global setting ([logging] level ...), NULL when unset.
 * Owned by config. */
const char *mv_config_get(const mv_config *config, const char *section, const char *key);

/* Set the environment variables of the file's settings that the
 * environment does not set already. */
void mv_config_apply_env(const mv_config *config);

/* The argv a command runs with: argv[0] (the command), its subcommand when
 * the file has settings for it, then the file's options for it, then the
 * rest of argv.  Returns a new NULL-terminated vector (free with g_strfreev)
 * and its length in *argc_r; *added_r: the options added, separated by
 * spaces (free with g_free). */
char **mv_config_command_argv(const mv_config *config, int argc, char **argv, int *argc_r,
                              char **added_r);

/* 'mailvault config sample': every key with its documentation, as a
 * commented configuration file.  'config keys': one line per key,
 * "section key type target". */
void mv_config_write_sample(FILE *f);
void mv_config_write_keys(FILE *f);

#endif
