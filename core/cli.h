/* cli.h - the conventions every `hookd` command follows (main.c, policy_cli.c).
 *
 * - `-h`/`--help` anywhere among a command's options prints that command's usage on stdout,
 *   prints nothing on stderr and exits 0, whatever else the line says: a user who asks for
 *   help gets it, and scripts can read it.
 * - A mistake (unknown command or option, an option without its value, a stray or missing
 *   argument) is named on one stderr line, `hookd: serve: unknown option '--cofig'`, then one
 *   hint line `Try 'hookd serve --help'.`, and the exit status is CLI_EXIT_USAGE: a user sees
 *   what to fix instead of the whole usage text, and a script can tell a typo (2) from a
 *   command that ran and failed (1).
 * - Options are `--name VALUE` or `--name=VALUE`; `--` ends the options.
 */
#ifndef HOOKD_CLI_H
#define HOOKD_CLI_H

#include <stdbool.h>

/* The exit status of a usage error (as in getopt-based tools: grep, diff, curl's). */
#define CLI_EXIT_USAGE 2

/* One command: its name as typed after `hookd` ("serve", "policy test") and its usage text
 * ("usage: hookd serve ...\n..."), both static. */
struct cli_cmd {
	const char *name;
	const char *usage;
};

/* An option that takes a value; *value receives it (a pointer into argv, or left as it
 * was when the option is absent). The last option of a table has name NULL. */
struct cli_opt {
	const char *name; /* "--config" */
	const char **value;
};

/* Parses a command's arguments (argv after the command's name) against opts. Arguments that
 * are not options are stored in pos[0..max_pos) in order and counted in *n_pos (pos and n_pos
 * may be NULL when max_pos is 0). Returns true when the command should run; false when it
 * should exit at once with *status: 0 after printing the usage (help), CLI_EXIT_USAGE after
 * naming a mistake (cli_error). */
bool cli_parse(const struct cli_cmd *cmd, const struct cli_opt *opts, int argc, char **argv,
	       const char **pos, int max_pos, int *n_pos, int *status);

/* Prints cmd's usage on stdout. */
void cli_help(const struct cli_cmd *cmd);

/* Names a usage mistake of cmd (NULL: of `hookd` itself) on stderr with the hint to --help,
 * as above; returns CLI_EXIT_USAGE for `return cli_error(...)`. */
int cli_error(const struct cli_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
