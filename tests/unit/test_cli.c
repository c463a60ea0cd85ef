/* test_cli.c - the command-line parser (cli.c): option forms, `--`, help anywhere, and the
 * message and status of each mistake. The commands themselves: tests/integration/test_cli.py. */
#include "check.h"
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct cli_cmd CMD = {"demo", "usage: hookd demo [--name V] [ARG]\n"};

static const char *name, *other;
static const char *pos[2];
static int npos;

/* Runs cli_parse on the NULL-terminated words with stdout and stderr captured into out and
 * err; returns what cli_parse returned, *status its status. */
static bool parse(int max_pos, int *status, char *out, char *err, size_t len, ...)
{
	const struct cli_opt opts[] = {{"--name", &name}, {"--other", &other}, {NULL, NULL}};
	char *argv[16];
	int argc = 0, saved_out = dup(1), saved_err = dup(2);
	FILE *fo = tmpfile(), *fe = tmpfile();
	va_list ap;
	bool ok;
	size_t n;

	va_start(ap, len);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	name = other = NULL;
	pos[0] = pos[1] = NULL;
	npos = -1;
	fflush(stdout);
	fflush(stderr);
	dup2(fileno(fo), 1);
	dup2(fileno(fe), 2);
	ok = cli_parse(&CMD, opts, argc, argv, pos, max_pos, &npos, status);
	fflush(stdout);
	fflush(stderr);
	dup2(saved_out, 1);
	dup2(saved_err, 2);
	close(saved_out);
	close(saved_err);
	rewind(fo);
	rewind(fe);
	n = fread(out, 1, len - 1, fo);
	out[n] = '\0';
	n = fread(err, 1, len - 1, fe);
	err[n] = '\0';
	fclose(fo);
	fclose(fe);
	return ok;
}

int main(void)
{
	char out[512], err[512];
	int status = -1;

	/* the option forms, positional arguments, and `--` */
	CHECK(parse(1, &status, out, err, sizeof(err), "--name", "a", "x", NULL));
	CHECK(status == 0 && npos == 1);
	CHECK_STR(name, "a");
	CHECK_STR(pos[0], "x");
	CHECK_STR(out, "");
	CHECK_STR(err, "");
	CHECK(parse(1, &status, out, err, sizeof(err), "--name=a=b", "--other=", NULL));
	CHECK_STR(name, "a=b");
	CHECK_STR(other, "");
	CHECK(npos == 0);
	CHECK(parse(2, &status, out, err, sizeof(err), "--", "--name", "-h", NULL));
	CHECK(name == NULL && npos == 2);
	CHECK_STR(pos[0], "--name");
	CHECK_STR(pos[1], "-h");
	CHECK(parse(1, &status, out, err, sizeof(err), "-", NULL));
	CHECK_STR(pos[0], "-");
	/* an option named twice: the last one wins */
	CHECK(parse(0, &status, out, err, sizeof(err), "--name", "a", "--name", "b", NULL));
	CHECK_STR(name, "b");

	/* help, wherever it stands before `--`, and whatever else is wrong */
	CHECK(!parse(0, &status, out, err, sizeof(err), "--bogus", "--help", NULL));
	CHECK(status == 0);
	CHECK_STR(out, CMD.usage);
	CHECK_STR(err, "");
	CHECK(!parse(0, &status, out, err, sizeof(err), "--name", "-h", NULL));
	CHECK(status == 0);
	CHECK_STR(out, CMD.usage);

	/* mistakes: one line naming it, one hint line, status 2, nothing on stdout */
	CHECK(!parse(0, &status, out, err, sizeof(err), "--nmae", "a", NULL));
	CHECK(status == CLI_EXIT_USAGE);
	CHECK_STR(out, "");
	CHECK_STR(err, "hookd: demo: unknown option '--nmae'\nTry 'hookd demo --help'.\n");
	CHECK(!parse(0, &status, out, err, sizeof(err), "--nmae=secret", NULL));
	CHECK_STR(err, "hookd: demo: unknown option '--nmae'\nTry 'hookd demo --help'.\n");
	CHECK(!parse(0, &status, out, err, sizeof(err), "-x", NULL));
	CHECK_STR(err, "hookd: demo: unknown option '-x'\nTry 'hookd demo --help'.\n");
	CHECK(!parse(0, &status, out, err, sizeof(err), "--names", "a", NULL));
	CHECK_STR(err, "hookd: demo: unknown option '--names'\nTry 'hookd demo --help'.\n");
	CHECK(!parse(0, &status, out, err, sizeof(err), "--name", NULL));
	CHECK(status == CLI_EXIT_USAGE);
	CHECK_STR(err, "hookd: demo: option '--name' needs a value\nTry 'hookd demo --help'.\n");
	CHECK(!parse(1, &status, out, err, sizeof(err), "a", "b", NULL));
	CHECK_STR(err, "hookd: demo: unexpected argument 'b'\nTry 'hookd demo --help'.\n");

	/* cli_error for hookd itself */
	{
		int saved = dup(2);
		FILE *fe = tmpfile();
		size_t n;
		fflush(stderr);
		dup2(fileno(fe), 2);
		status = cli_error(NULL, "unknown command '%s'", "srve");
		fflush(stderr);
		dup2(saved, 2);
		close(saved);
		rewind(fe);
		n = fread(err, 1, sizeof(err) - 1, fe);
		err[n] = '\0';
		fclose(fe);
		CHECK(status == CLI_EXIT_USAGE);
		CHECK_STR(err, "hookd: unknown command 'srve'\nTry 'hookd --help'.\n");
	}
	return check_done();
}
