/* worker.c - a pool of job threads with completion on the loop, in submission order.
 *
 * One list holds every job handed to the threads and not yet handed back, in submission
 * order; next_run marks the first one no thread has taken. A thread takes a short run of
 * jobs from next_run, runs them without the lock, and marks them finished. The loop takes
 * back the finished prefix of the list (worker_run_done), so a job finished early waits for
 * the jobs before it: the reorder on completion is just "hand back only the prefix". */
#include "worker.h"

#include "err.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/* Most jobs a thread takes at once, and so runs before it hands them back: a policy call
 * is ~15-40 us, so 16 jobs return within about half a millisecond while sharing one
 * wake-up of the loop and one lock round trip. A thread takes less when other threads can
 * share the queue (worker_share). */
#define WORKER_CHUNK 16

struct worker {
	pthread_t *threads;
	unsigned n_threads;       /* started (all of them once worker_new returned) */
	pthread_mutex_t lock;     /* everything below up to done_ev */
	pthread_cond_t cond;      /* work was queued, or the pool is stopping */
	/* Handed to the threads and not yet back, in submission order; linked by next. */
	struct worker_job *head, *tail;
	struct worker_job *next_run; /* the first job no thread has taken, or NULL */
	size_t n_queued;          /* jobs from next_run to tail */
	unsigned n_waiting;       /* threads waiting on cond */
	int stopping;
	struct event *done_ev;
	/* Loop side: jobs submitted during this loop iteration, handed to the threads together
	 * by flush_ev (one lock and at most one wake-up per iteration, not per job). */
	struct worker_job *local_head, *local_tail;
	size_t local_n;
	struct event *flush_ev;
};

/* How many queued jobs one thread takes (lock held): an even share of the queue among the
 * threads, at most WORKER_CHUNK, at least one. With one thread: up to WORKER_CHUNK. */
static size_t worker_share(const struct worker *w)
{
	size_t share = (w->n_queued + w->n_threads - 1) / w->n_threads;
	if (share > WORKER_CHUNK)
		share = WORKER_CHUNK;
	return share ? share : 1;
}

/* Takes a share of the queue, runs it, marks it finished, and wakes the loop when the
 * oldest job outstanding is finished (only then is there anything to hand back). Stops
 * once the pool is stopping and nothing is queued: queued jobs always run. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct worker_job *chunk[WORKER_CHUNK];

	for (;;) {
		size_t n = 0, take, i;
		int wake;

		pthread_mutex_lock(&w->lock);
		while (!w->next_run && !w->stopping) {
			w->n_waiting++;
			pthread_cond_wait(&w->cond, &w->lock);
			w->n_waiting--;
		}
		if (!w->next_run) {
			pthread_mutex_unlock(&w->lock);
			break;
		}
		take = worker_share(w);
		while (n < take && w->next_run) {
			chunk[n++] = w->next_run;
			w->next_run = w->next_run->next;
		}
		w->n_queued -= n;
		pthread_mutex_unlock(&w->lock);

		/* The jobs are this thread's until marked finished: nothing else touches them,
		 * but their next links belong to the list (the loop appends to the tail). */
		for (i = 0; i < n; i++)
			chunk[i]->run(chunk[i]);

		pthread_mutex_lock(&w->lock);
		for (i = 0; i < n; i++)
			chunk[i]->finished = 1;
		wake = w->head->finished;
		pthread_mutex_unlock(&w->lock);
		if (wake)
			event_active(w->done_ev, EV_READ, 0);
	}
	return NULL;
}

/* Hands back the finished prefix of the list: done callbacks in submission order. */
static void worker_run_done(struct worker *w)
{
	struct worker_job *first, *last = NULL, *job, *next;

	pthread_mutex_lock(&w->lock);
	first = w->head;
	for (job = w->head; job && job->finished; job = job->next)
		last = job;
	if (last) {
		/* Every job before next_run's is taken, so a finished job is never next_run. */
		w->head = last->next;
		if (!w->head)
			w->tail = NULL;
		last->next = NULL;
	}
	pthread_mutex_unlock(&w->lock);
	if (!last)
		return;
	for (job = first; job; job = next) {
		next = job->next;
		job->done(job);
	}
}

static void worker_done_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	worker_run_done(arg);
}

static void worker_flush(struct worker *w)
{
	if (!w->local_head)
		return;
	pthread_mutex_lock(&w->lock);
	if (w->tail)
		w->tail->next = w->local_head;
	else
		w->head = w->local_head;
	w->tail = w->local_tail;
	if (!w->next_run)
		w->next_run = w->local_head;
	w->n_queued += w->local_n;
	/* Wake as many waiting threads as can get a share: one job needs one thread. */
	if (w->n_waiting > 1 && w->n_queued > 1)
		pthread_cond_broadcast(&w->cond);
	else if (w->n_waiting)
		pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	w->local_head = w->local_tail = NULL;
	w->local_n = 0;
}

static void worker_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	worker_flush(arg);
}

/* Stops and joins the threads started so far (they run what is queued first). */
static void worker_join(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->stopping = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->n_threads; i++)
		pthread_join(w->threads[i], NULL);
	w->n_threads = 0;
}

/* Stops and joins the threads started so far, and frees w (nothing may be queued). */
static void worker_destroy(struct worker *w)
{
	worker_join(w);
	if (w->done_ev)
		event_free(w->done_ev);
	if (w->flush_ev)
		event_free(w->flush_ev);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w->threads);
	free(w);
}

int worker_new(struct event_base *base, unsigned n_threads, struct worker **out)
{
	struct worker *w;

	if (n_threads < 1 || n_threads > WORKER_THREADS_MAX)
		return HOOKD_EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return HOOKD_ENOMEM;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->threads = calloc(n_threads, sizeof(*w->threads));
	w->done_ev = event_new(base, -1, 0, worker_done_cb, w);
	w->flush_ev = event_new(base, -1, 0, worker_flush_cb, w);
	if (!w->threads || !w->done_ev || !w->flush_ev) {
		worker_destroy(w);
		return HOOKD_ENOMEM;
	}
	/* n_threads counts the started ones, so a failure joins exactly those. The new
	 * thread reads n_threads (worker_share) only with the lock held, as we write it. */
	for (unsigned i = 0; i < n_threads; i++) {
		int rc;
		pthread_mutex_lock(&w->lock);
		rc = pthread_create(&w->threads[i], NULL, worker_main, w);
		if (rc == 0) {
			/* Named for `top -H` and /proc/PID/task/TID/comm (at most 15 bytes). */
			char name[16];
			snprintf(name, sizeof(name), "hookd-policy%u", i);
			pthread_setname_np(w->threads[i], name);
			w->n_threads++;
		}
		pthread_mutex_unlock(&w->lock);
		if (rc != 0) {
			worker_destroy(w);
			return HOOKD_ENOMEM;
		}
	}
	*out = w;
	return HOOKD_OK;
}

void worker_submit(struct worker *w, struct worker_job *job)
{
	job->next = NULL;
	job->finished = 0;
	if (w->local_tail)
		w->local_tail->next = job;
	else
		w->local_head = job;
	w->local_tail = job;
	w->local_n++;
	/* Runs after the events already active in this iteration (other requests being
	 * answered), so their jobs travel together. Same-thread activation: no syscall. */
	event_active(w->flush_ev, EV_READ, 0);
}

void worker_free(struct worker *w)
{
	if (!w)
		return;
	worker_flush(w);
	worker_join(w);
	/* Every job has run: the whole list is the finished prefix. */
	worker_run_done(w);
	worker_destroy(w);
}
