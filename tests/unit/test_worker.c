/* test_worker.c - the policy thread pool (worker.c): done callbacks run on the loop in
 * submission order whatever order the jobs finish in (random durations, 1 to 16 threads,
 * and a job forced to finish after the ones behind it); a job that runs long holds up no
 * other thread's jobs; a pool of N runs N jobs at once; every job queued at shutdown runs
 * once and is handed back in order; sizes outside 1..WORKER_THREADS_MAX are refused.
 *
 * Waits between threads are bounded (gate.h) so that a broken pool fails a CHECK instead
 * of hanging the suite; no CHECK depends on how long anything took. */
#include "check.h"
#include "err.h"
#include "gate.h"
#include "worker.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

struct tjob {
	struct worker_job job; /* first */
	size_t seq;
	unsigned delay_us;
	atomic_int runs;
	int finish_rank;       /* order in which runs returned */
	/* Optional: before returning, add to started, then wait for wait_for->count to
	 * reach wait_want; add to finished once done. */
	struct gate *started, *wait_for, *finished;
	int wait_want;
	bool wait_ok;
};

/* Loop side: the order of done callbacks. */
static size_t *done_order;
static size_t done_n;
static atomic_int finish_counter;

static void tjob_run(struct worker_job *j)
{
	struct tjob *t = (struct tjob *)j;

	if (t->started)
		gate_add(t->started);
	if (t->delay_us)
		usleep(t->delay_us);
	t->wait_ok = true;
	if (t->wait_for)
		t->wait_ok = gate_wait(t->wait_for, t->wait_want);
	t->finish_rank = atomic_fetch_add(&finish_counter, 1);
	atomic_fetch_add(&t->runs, 1);
	if (t->finished)
		gate_add(t->finished);
}

static void tjob_done(struct worker_job *j)
{
	struct tjob *t = (struct tjob *)j;
	done_order[done_n++] = t->seq;
}

static struct tjob *jobs_new(size_t n)
{
	struct tjob *t = calloc(n, sizeof(*t));
	for (size_t i = 0; i < n; i++) {
		t[i].seq = i;
		t[i].job.run = tjob_run;
		t[i].job.done = tjob_done;
	}
	free(done_order);
	done_order = calloc(n, sizeof(*done_order));
	done_n = 0;
	atomic_store(&finish_counter, 0);
	return t;
}

/* Runs the loop until want done callbacks ran (the worker wakes it for each hand-back). */
static void loop_until(struct event_base *base, size_t want)
{
	while (done_n < want)
		event_base_loop(base, EVLOOP_ONCE);
}

/* Every job ran once and came back in submission order. */
static void check_in_order(const struct tjob *t, size_t n)
{
	size_t bad_order = 0, bad_runs = 0;

	CHECK(done_n == n);
	for (size_t i = 0; i < done_n; i++)
		if (done_order[i] != i)
			bad_order++;
	for (size_t i = 0; i < n; i++)
		if (atomic_load(&t[i].runs) != 1)
			bad_runs++;
	CHECK(bad_order == 0);
	CHECK(bad_runs == 0);
}

/* Bursts of jobs of random durations (0..300 us, a tenth of them none), flushed one burst
 * per loop iteration so that threads take shares of queues of every length. */
static void test_order_random(struct event_base *base, unsigned n_threads)
{
	enum { BURSTS = 30, PER_BURST = 100, N = BURSTS * PER_BURST };
	struct worker *w = NULL;
	struct tjob *t = jobs_new(N);
	unsigned seed = 12345 + n_threads;
	size_t i = 0, out_of_order = 0;

	CHECK(worker_new(base, n_threads, &w) == HOOKD_OK);
	if (!w)
		return;
	for (int b = 0; b < BURSTS; b++) {
		for (int k = 0; k < PER_BURST; k++, i++) {
			unsigned r = (unsigned)rand_r(&seed);
			t[i].delay_us = r % 10 == 0 ? 0 : r % 300;
			worker_submit(w, &t[i].job);
		}
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	loop_until(base, N);
	check_in_order(t, N);
	for (i = 1; i < N; i++)
		if (t[i].finish_rank < t[i - 1].finish_rank)
			out_of_order++;
	/* Not a CHECK (it depends on scheduling): how often the reorder mattered. */
	printf("threads %2u: %zu of %d jobs finished before the job submitted just before them\n",
	       n_threads, out_of_order, N);
	worker_free(w);
	free(t);
}

/* Job 0 cannot finish before job 1 has: job 1 finishes first, yet done runs 0 then 1. */
static void test_order_forced(struct event_base *base, unsigned n_threads)
{
	struct worker *w = NULL;
	struct tjob *t = jobs_new(2);
	struct gate one_done;

	gate_init(&one_done);
	t[0].wait_for = &one_done;
	t[0].wait_want = 1;
	t[1].finished = &one_done;
	CHECK(worker_new(base, n_threads, &w) == HOOKD_OK);
	if (!w)
		return;
	worker_submit(w, &t[0].job);
	worker_submit(w, &t[1].job);
	loop_until(base, 2);
	CHECK(t[0].wait_ok);
	CHECK(t[1].finish_rank == 0 && t[0].finish_rank == 1);
	check_in_order(t, 2);
	worker_free(w);
	gate_destroy(&one_done);
	free(t);
}

/* A job that runs until every later job has run (a policy spending its whole CPU budget):
 * the other threads run all of them meanwhile; they are handed back after it, in order. */
static void test_long_job(struct event_base *base, unsigned n_threads)
{
	enum { N = 51 };
	struct worker *w = NULL;
	struct tjob *t = jobs_new(N);
	struct gate started, others;

	gate_init(&started);
	gate_init(&others);
	t[0].started = &started;
	t[0].wait_for = &others;
	t[0].wait_want = N - 1;
	for (int i = 1; i < N; i++)
		t[i].finished = &others;
	CHECK(worker_new(base, n_threads, &w) == HOOKD_OK);
	if (!w)
		return;
	worker_submit(w, &t[0].job);
	event_base_loop(base, EVLOOP_NONBLOCK); /* hands job 0 over alone */
	CHECK(gate_wait(&started, 1));
	for (int i = 1; i < N; i++)
		worker_submit(w, &t[i].job);
	loop_until(base, N);
	CHECK(t[0].wait_ok);
	CHECK(t[0].finish_rank == N - 1);
	check_in_order(t, N);
	worker_free(w);
	gate_destroy(&started);
	gate_destroy(&others);
	free(t);
}

/* n jobs that each wait for all n to have started: only n threads at once get through. */
static void test_parallel(struct event_base *base, unsigned n_threads)
{
	struct worker *w = NULL;
	struct tjob *t = jobs_new(n_threads);
	struct gate started;
	bool all = true;

	gate_init(&started);
	for (unsigned i = 0; i < n_threads; i++) {
		t[i].started = &started;
		t[i].wait_for = &started;
		t[i].wait_want = (int)n_threads;
	}
	CHECK(worker_new(base, n_threads, &w) == HOOKD_OK);
	if (!w)
		return;
	for (unsigned i = 0; i < n_threads; i++)
		worker_submit(w, &t[i].job);
	loop_until(base, n_threads);
	for (unsigned i = 0; i < n_threads; i++)
		all = all && t[i].wait_ok;
	CHECK(all);
	check_in_order(t, n_threads);
	worker_free(w);
	gate_destroy(&started);
	free(t);
}

/* worker_free with jobs running, jobs queued and jobs not even handed to the threads yet:
 * every one runs once, and every done callback runs (in order) before it returns. */
static void test_shutdown(struct event_base *base, unsigned n_threads)
{
	enum { N = 400 };
	struct worker *w = NULL;
	struct tjob *t = jobs_new(N);
	unsigned seed = 99;

	CHECK(worker_new(base, n_threads, &w) == HOOKD_OK);
	if (!w)
		return;
	for (int i = 0; i < N; i++) {
		t[i].delay_us = (unsigned)rand_r(&seed) % 500;
		worker_submit(w, &t[i].job);
		if (i == N / 2)
			event_base_loop(base, EVLOOP_NONBLOCK); /* the first half is queued */
	}
	worker_free(w);
	check_in_order(t, N);
	free(t);
}

static void test_sizes(struct event_base *base)
{
	struct worker *w = NULL;

	CHECK(worker_new(base, 0, &w) == HOOKD_EINVAL && w == NULL);
	CHECK(worker_new(base, WORKER_THREADS_MAX + 1, &w) == HOOKD_EINVAL && w == NULL);
	CHECK(worker_new(base, WORKER_THREADS_MAX, &w) == HOOKD_OK && w != NULL);
	worker_free(w);
	worker_free(NULL);
}

int main(void)
{
	static const unsigned sizes[] = {1, 2, 4, 16};
	struct event_base *base;

	evthread_use_pthreads();
	base = event_base_new();
	if (!base)
		return 1;
	test_sizes(base);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		test_order_random(base, sizes[i]);
		test_shutdown(base, sizes[i]);
		test_parallel(base, sizes[i]);
		if (sizes[i] >= 2) {
			test_order_forced(base, sizes[i]);
			test_long_job(base, sizes[i]);
		}
	}
	free(done_order);
	event_base_free(base);
	libevent_global_shutdown();
	return check_done();
}
