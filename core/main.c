/* main.c - the hookd command line: serve, verify, keygen, policy test. */
#include <stdio.h>

int main(int argc, char **argv)
{
	fprintf(stderr, "hookd: not yet\n");
	return 2;
}
