/* mailvault pst-read: rebuild the mail items of an Outlook PST / OST as
 * .eml files, or (--records) as the records `import` reads from it in a
 * child process (ingest/mv-pst-proc.h).  Needs no database. */
#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "mv-cli.h"
#include "mv-message.h"
#include "mv-pst-proc.h"

static const char help[] =
	"Usage: mailvault pst-read [OPTIONS] FILE\n"
	"\n"
	"Rebuild every mail item of an Outlook PST or OST file as a MIME message, as\n"
	"'mailvault import' archives it (docs/import.md), without a database: into\n"
	"DIR/N.eml (N: the item's position among the file's mail items), or with\n"
	"--records as the binary records 'import' reads from its PST reader process.\n"
	"Exit status 65 when an item (or the file) cannot be read.\n"
	"\n"
	"Options:\n"
	"  -o, --output DIR   write DIR/N.eml (DIR is created)\n"
	"  --records          write records to standard output (for 'import')\n"
	"  --max-size BYTES   largest rebuilt message (default 268435456)\n"
	"  --skip-to N        start at the Nth mail item (default 1)\n"
	"  --max-memory BYTES the reader's data memory limit (default 2147483648;\n"
	"                     0: none): libpst is handed hostile files, and an item\n"
	"                     that needs more is reported failed, not the machine's memory\n"
	"  --restart E,I,O    continue after folder entry E, which a reader crashed on,\n"
	"                     counting on from I mail and O other items (for 'import')\n"
	"  -h, --help         show this help\n";

static gboolean parse_int(const char *s, gint64 min, gint64 max, gint64 *out)
{
	char *end = NULL;
	gint64 v = g_ascii_strtoll(s, &end, 10);
	if (end == s || *end != '\0' || v < min || v > max)
		return FALSE;
	*out = v;
	return TRUE;
}

int mv_cmd_pst_read(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{"output", required_argument, NULL, 'o'},
		{"records", no_argument, NULL, 'r'},
		{"max-size", required_argument, NULL, 's'},
		{"skip-to", required_argument, NULL, 'k'},
		{"restart", required_argument, NULL, 'R'},
		{"max-memory", required_argument, NULL, 'm'},
		{NULL, 0, NULL, 0}};
	mv_pst_limits limits;
	mv_pst_limits_default(&limits);
	const char *output = NULL;
	gboolean records = FALSE;
	gint64 skip_to = 1, restart[3] = {0, 0, 0}, v;
	gint64 max_memory = G_GINT64_CONSTANT(2) << 30;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "ho:", longopts, NULL)) != -1) {
		switch (o) {
		case 'h':
			fputs(help, stdout);
			return 0;
		case 'o':
			output = optarg;
			break;
		case 'r':
			records = TRUE;
			break;
		case 's':
			if (!parse_int(optarg, 1, G_GINT64_CONSTANT(1) << 32, &v))
				return mv_cli_usage_error(cli, "--max-size takes a byte count up to 4 GiB");
			limits.max_message_bytes = (gsize)v;
			break;
		case 'k':
			if (!parse_int(optarg, 1, G_MAXINT64, &skip_to))
				return mv_cli_usage_error(cli, "--skip-to takes a positive number");
			break;
		case 'm':
			if (!parse_int(optarg, 0, G_MAXINT64, &max_memory))
				return mv_cli_usage_error(cli, "--max-memory takes a byte count (0: none)");
			break;
		case 'R': {
			char **f = g_strsplit(optarg, ",", 4);
			gboolean ok = g_strv_length(f) == 3 && parse_int(f[0], 1, G_MAXINT64, &restart[0]) &&
			              parse_int(f[1], 0, G_MAXINT64, &restart[1]) &&
			              parse_int(f[2], 0, G_MAXINT64, &restart[2]);
			g_strfreev(f);
			if (!ok)
				return mv_cli_usage_error(cli, "--restart takes ENTRY,INDEX,OTHER");
			break;
		}
		default:
			return mv_cli_usage_error(cli, "unknown option");
		}
	}
	if (optind + 1 != argc)
		return mv_cli_usage_error(cli, "pst-read takes one FILE");
	if (records == (output != NULL))
		return mv_cli_usage_error(cli, "give either --records or --output DIR");
	const char *path = argv[optind];
	/* The limit first, before libpst reads a byte of the file.  Under
	 * AddressSanitizer the process maps terabytes of shadow memory, so no
	 * data limit can be set there. */
#if defined(__SANITIZE_ADDRESS__)
	max_memory = 0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	max_memory = 0;
#endif
#endif
	if (max_memory > 0) {
		struct rlimit lim = {(rlim_t)max_memory, (rlim_t)max_memory};
		if (setrlimit(RLIMIT_DATA, &lim) != 0) {
			fprintf(stderr, "mailvault: pst-read: cannot limit memory: %s\n", g_strerror(errno));
			return MV_EXIT_SOFTWARE;
		}
	}
	char *err = NULL;
	mv_status ist = mv_parser_init(&err); /* GMime writes the messages */
	if (ist != MV_OK) {
		int rc = mv_cli_fail(cli, ist, err);
		g_free(err);
		return rc;
	}
	if (records) {
		mv_status st = mv_pst_serve(path, &limits, skip_to, restart[0], restart[1], restart[2],
		                            STDOUT_FILENO, &err);
		int rc = st == MV_OK ? 0 : mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	if (g_mkdir_with_parents(output, 0755) != 0) {
		fprintf(stderr, "mailvault: pst-read: cannot create %s: %s\n", output, g_strerror(errno));
		return MV_EXIT_IOERR;
	}
	mv_pst *pst = NULL;
	mv_status st = mv_pst_open(path, &limits, &pst, &err);
	if (st != MV_OK) {
		int rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	gint64 written = 0, failed = 0;
	int rc = 0;
	for (;;) {
		mv_pst_item *item = NULL;
		gint64 index = 0;
		st = mv_pst_next(pst, skip_to, &item, &index, &err);
		if (st != MV_OK) {
			fprintf(stderr, "mailvault: pst-read: %s#%" G_GINT64_FORMAT ": %s\n", path, index, err);
			g_clear_pointer(&err, g_free);
			failed++;
			continue;
		}
		if (item == NULL)
			break;
		char *name = g_strdup_printf("%s/%" G_GINT64_FORMAT ".eml", output, item->index);
		gsize len = 0;
		const char *raw = g_bytes_get_data(item->raw, &len);
		GError *gerr = NULL;
		if (!g_file_set_contents(name, raw, (gssize)len, &gerr)) {
			fprintf(stderr, "mailvault: pst-read: %s\n", gerr->message);
			g_error_free(gerr);
			rc = MV_EXIT_IOERR;
		} else {
			written++;
		}
		g_free(name);
		mv_pst_item_free(&item);
		if (rc != 0)
			break;
	}
	mv_pst_close(&pst);
	if (!cli->json)
		printf("%" G_GINT64_FORMAT " messages written, %" G_GINT64_FORMAT " items failed\n", written,
		       failed);
	if (rc == 0 && failed > 0)
		rc = MV_EXIT_DATAERR;
	return rc;
}
