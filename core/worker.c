/* worker.c - a job thread with completion on the loop (the store's writer pattern). */
#include "worker.h"

#include "err.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>

/* Jobs handed back per notification (see worker_main): a policy call is ~15-40 us, so 16
 * jobs return within about half a millisecond while still sharing one wake-up of the loop. */
#define WORKER_CHUNK 16

struct worker {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct worker_job *head, *tail; /* queued */
	struct worker_job *done_head, *done_tail;
	int stopping;
	struct event *done_ev;
	/* Loop side: jobs submitted during this loop iteration, handed to the thread together
	 * by flush_ev (one lock and at most one wake-up per iteration, not per job). */
	struct worker_job *local_head, *local_tail;
	struct event *flush_ev;
};

/* Takes everything queued at once and hands it back in chunks, one wake-up of the loop per
 * chunk: under load, jobs pile up while the worker runs, and the hand-off cost is paid per
 * chunk rather than per job. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (;;) {
		struct worker_job *batch;
		pthread_mutex_lock(&w->lock);
		while (!w->head && !w->stopping)
			pthread_cond_wait(&w->cond, &w->lock);
		batch = w->head;
		w->head = w->tail = NULL;
		pthread_mutex_unlock(&w->lock);
		if (!batch)
			break;

		/* Hand results back in chunks: the first publishes of a large batch reach the
		 * writer while the rest still run, instead of all waiting for the slowest. */
		while (batch) {
			struct worker_job *chunk = batch, *end = batch;
			int n = 1;
			end->run(end);
			while (end->next && n < WORKER_CHUNK) {
				end = end->next;
				end->run(end);
				n++;
			}
			batch = end->next;
			end->next = NULL;
			pthread_mutex_lock(&w->lock);
			if (w->done_tail)
				w->done_tail->next = chunk;
			else
				w->done_head = chunk;
			w->done_tail = end;
			pthread_mutex_unlock(&w->lock);
			event_active(w->done_ev, EV_READ, 0);
		}

	}
	return NULL;
}

static void worker_run_done(struct worker *w)
{
	struct worker_job *job, *next;
	pthread_mutex_lock(&w->lock);
	job = w->done_head;
	w->done_head = w->done_tail = NULL;
	pthread_mutex_unlock(&w->lock);
	for (; job; job = next) {
		next = job->next;
		job->done(job);
	}
}

static void worker_done_cb(evutil_socket_t fd, short what, void *arg)
{
	worker_run_done(arg);
}

static void worker_flush(struct worker *w)
{
	int was_empty;
	if (!w->local_head)
		return;
	pthread_mutex_lock(&w->lock);
	was_empty = w->head == NULL;
	if (w->tail)
		w->tail->next = w->local_head;
	else
		w->head = w->local_head;
	w->tail = w->local_tail;
	/* Only an idle worker (empty queue) can be waiting. */
	if (was_empty)
		pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	w->local_head = w->local_tail = NULL;
}

static void worker_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	worker_flush(arg);
}

int worker_new(struct event_base *base, struct worker **out)
{
	struct worker *w = calloc(1, sizeof(*w));
	if (!w)
		return HOOKD_ENOMEM;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->done_ev = event_new(base, -1, 0, worker_done_cb, w);
	w->flush_ev = event_new(base, -1, 0, worker_flush_cb, w);
	if (!w->done_ev || !w->flush_ev || pthread_create(&w->thread, NULL, worker_main, w) != 0) {
		if (w->done_ev)
			event_free(w->done_ev);
		if (w->flush_ev)
			event_free(w->flush_ev);
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->cond);
		free(w);
		return HOOKD_ENOMEM;
	}
	*out = w;
	return HOOKD_OK;
}

void worker_submit(struct worker *w, struct worker_job *job)
{
	job->next = NULL;
	if (w->local_tail)
		w->local_tail->next = job;
	else
		w->local_head = job;
	w->local_tail = job;
	/* Runs after the events already active in this iteration (other requests being
	 * answered), so their jobs travel together. Same-thread activation: no syscall. */
	event_active(w->flush_ev, EV_READ, 0);
}

void worker_free(struct worker *w)
{
	if (!w)
		return;
	worker_flush(w);
	pthread_mutex_lock(&w->lock);
	w->stopping = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	worker_run_done(w);
	event_free(w->done_ev);
	event_free(w->flush_ev);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
}
