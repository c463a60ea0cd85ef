/* cli.c - help, option parsing and usage errors for the hookd commands (see cli.h). */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void cli_help(const struct cli_cmd *cmd)
{
	fputs(cmd->usage, stdout);
}

int cli_error(const struct cli_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("hookd: ", stderr);
	if (cmd)
		fprintf(stderr, "%s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'hookd %s%s--help'.\n", cmd ? cmd->name : "", cmd ? " " : "");
	return CLI_EXIT_USAGE;
}

static bool cli_is_help(const char *arg)
{
	return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

/* The option of opts that arg names (`--name` or `--name=value`), or NULL. */
static const struct cli_opt *cli_opt_find(const struct cli_opt *opts, const char *arg)
{
	for (; opts && opts->name; opts++) {
		size_t n = strlen(opts->name);
		if (strncmp(arg, opts->name, n) == 0 && (arg[n] == '\0' || arg[n] == '='))
			return opts;
	}
	return NULL;
}

bool cli_parse(const struct cli_cmd *cmd, const struct cli_opt *opts, int argc, char **argv,
	       const char **pos, int max_pos, int *n_pos, int *status)
{
	int i, npos = 0;
	bool options = true;

	/* Help first, wherever it stands before `--`: `hookd serve --cofig x --help` is a user
	 * asking what the right spelling is. */
	for (i = 0; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (cli_is_help(argv[i])) {
			cli_help(cmd);
			*status = 0;
			return false;
		}
	*status = CLI_EXIT_USAGE;
	for (i = 0; i < argc; i++) {
		const char *arg = argv[i];
		const struct cli_opt *o;

		if (options && strcmp(arg, "--") == 0) {
			options = false;
			continue;
		}
		/* A lone "-" is an argument (the usual name for stdin), not an option. */
		if (options && arg[0] == '-' && arg[1] != '\0') {
			const char *eq;

			if (!(o = cli_opt_find(opts, arg))) {
				eq = strchr(arg, '=');
				cli_error(cmd, "unknown option '%.*s'",
					  eq && arg[1] == '-' ? (int)(eq - arg) : (int)strlen(arg),
					  arg);
				return false;
			}
			if ((eq = strchr(arg, '=')) != NULL)
				*o->value = eq + 1;
			else if (i + 1 < argc)
				*o->value = argv[++i];
			else {
				cli_error(cmd, "option '%s' needs a value", o->name);
				return false;
			}
			continue;
		}
		if (npos >= max_pos) {
			cli_error(cmd, "unexpected argument '%s'", arg);
			return false;
		}
		pos[npos++] = arg;
	}
	if (n_pos)
		*n_pos = npos;
	*status = 0;
	return true;
}
