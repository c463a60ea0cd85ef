/* store_fixture.h - what the store's unit tests share: removing a test environment, and the
 * callbacks of a redrive of everything (test_store.c, test_store_epindex.c,
 * test_retention.c). Static inline, so a test that uses part of it warns of nothing. */
#ifndef HOOKD_TEST_STORE_FIXTURE_H
#define HOOKD_TEST_STORE_FIXTURE_H

#include "record.h"

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

/* Removes an LMDB environment directory made with mkdtemp. */
static inline void rm_dir(const char *dir)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/lock.mdb", dir);
	unlink(path);
	rmdir(dir);
}

/* store_redrive_submit's select: every dead delivery. */
static inline int select_all(void *arg, const char *dlv_id, int64_t dead_at_ms)
{
	(void)arg;
	(void)dlv_id;
	(void)dead_at_ms;
	return 1;
}

/* store_redrive_submit's revive: pending, due at 4242, no error. */
static inline void revive_now(void *arg, struct delivery_rec *r)
{
	(void)arg;
	r->state = DLV_PENDING;
	r->next_at_ms = 4242;
	r->last_error = "";
}

#endif
