/* worker.h - a pool of background threads that run jobs off the event loop and hand each
 * back to the loop, in the order the jobs were submitted. Routing policies run here: a
 * policy may spend its whole CPU budget, and the loop (API, scheduler, sockets) must not
 * wait for it.
 *
 * Jobs run in parallel (one thread each) and may finish in any order; their done callbacks
 * run on the loop strictly in submission order (a job that finished early waits for the
 * ones before it). So the deliveries of an endpoint reach the scheduler in the order of
 * their publishes, and a slow job delays the hand-back of later ones by at most its own run
 * time (a policy call is bounded by its CPU limit), never their run. */
#ifndef HOOKD_WORKER_H
#define HOOKD_WORKER_H

struct event_base;
struct worker;

/* The most threads a pool may have (the upper limit of policies.threads). Past a few per
 * core the threads only compete for the cores; 16 covers the machines hookd targets, and the
 * one loop thread that hands every job out and takes it back is the limit long before. */
#define WORKER_THREADS_MAX 16

/* Embed in the caller's struct; the caller owns it until done runs. */
struct worker_job {
	struct worker_job *next;              /* the worker's (queue links) */
	void (*run)(struct worker_job *job);  /* on one of the worker threads */
	void (*done)(struct worker_job *job); /* then on the loop thread */
	int finished;                         /* the worker's: run has returned */
};

/* Starts n_threads (1..WORKER_THREADS_MAX; else HOOKD_EINVAL) threads; done callbacks
 * run on base's loop. */
int worker_new(struct event_base *base, unsigned n_threads, struct worker **out);
/* Queues job (loop thread). */
void worker_submit(struct worker *w, struct worker_job *job);
/* Runs every queued job, runs their done callbacks here (in submission order), stops and
 * joins the threads, frees w. */
void worker_free(struct worker *w);

#endif
