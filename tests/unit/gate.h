/* gate.h - a counter that test threads wait on until it reaches a value. Every wait is
 * bounded (GATE_WAIT_S) so that a test of threads that never meet fails a CHECK instead of
 * hanging the suite; the bound is never what a test measures. */
#ifndef HOOKD_TEST_GATE_H
#define HOOKD_TEST_GATE_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#define GATE_WAIT_S 10

struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int count;
};

static inline void gate_init(struct gate *g)
{
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->count = 0;
}

static inline void gate_destroy(struct gate *g)
{
	pthread_mutex_destroy(&g->lock);
	pthread_cond_destroy(&g->cond);
}

static inline void gate_add(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->count++;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* true once count >= want; false after GATE_WAIT_S seconds without. */
static inline bool gate_wait(struct gate *g, int want)
{
	struct timespec until;
	int rc = 0;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += GATE_WAIT_S;
	pthread_mutex_lock(&g->lock);
	while (g->count < want && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&g->cond, &g->lock, &until);
	ok = g->count >= want;
	pthread_mutex_unlock(&g->lock);
	return ok;
}

#endif
