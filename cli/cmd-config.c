/* mailvault config: check the configuration file, print every setting. */
#include <string.h>

#include "mv-cli.h"
#include "mv-config.h"
#include "mv-json.h"

static const char help[] =
	"Usage: mailvault config check [--json] [FILE]\n"
	"       mailvault config sample\n"
	"       mailvault config keys\n"
	"\n"
	"check reads FILE (default: the configuration file in effect: --config,\n"
	"MAILVAULT_CONFIG, else the default path) the way every command does, and says\n"
	"what is wrong as FILE:LINE: what (exit 78), or that it is sound.  sample\n"
	"prints a configuration file with every setting commented out and documented\n"
	"(docs/mailvault.conf.sample); keys prints one line per setting: section, key,\n"
	"type, what it sets, description, separated by tabs.\n"
	"\n"
	"Options:\n"
	"  --json          check: {file, ok, error}\n" MV_CLI_COMMON_HELP;

int mv_cmd_config(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"json", no_argument, NULL, 'j'},
	                                         {NULL, 0, NULL, 0}};
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		if (o == 'h') {
			fputs(help, stdout);
			return 0;
		}
		if (o == 'j') {
			cli->json = TRUE;
			continue;
		}
		return mv_cli_usage_error(cli, "unknown option");
	}
	if (optind >= argc)
		return mv_cli_usage_error(cli, "say check, sample or keys");
	const char *what = argv[optind++];
	if (strcmp(what, "sample") == 0 || strcmp(what, "keys") == 0) {
		if (optind != argc)
			return mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
		if (what[0] == 's')
			mv_config_write_sample(stdout);
		else
			mv_config_write_keys(stdout);
		return 0;
	}
	if (strcmp(what, "check") != 0)
		return mv_cli_usage_error(cli, "unknown subcommand '%s'", what);
	const char *path = optind < argc ? argv[optind++] : cli->config_path;
	if (optind != argc)
		return mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	if (path == NULL) {
		if (cli->json) {
			g_autoptr(JsonBuilder) b = json_builder_new();
			json_builder_begin_object(b);
			mv_json_add_string(b, "file", NULL);
			mv_json_add_bool(b, "ok", TRUE);
			json_builder_end_object(b);
			mv_json_write(b, stdout);
		} else {
			printf("no configuration file (%s does not exist; MAILVAULT_CONFIG is not set)\n",
			       mv_config_default_path());
		}
		return 0;
	}
	mv_config *config = NULL;
	char *err = NULL;
	mv_status st = mv_config_load(path, &config, &err);
	mv_config_free(&config);
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_string(b, "file", path);
		mv_json_add_bool(b, "ok", st == MV_OK);
		mv_json_add_string(b, "error", err);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	}
	if (st != MV_OK) {
		int rc = cli->json ? mv_cli_exit_code(st) : mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	if (!cli->json)
		printf("%s: ok\n", path);
	return 0;
}
