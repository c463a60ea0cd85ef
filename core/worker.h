/* worker.h - one background thread that runs jobs off the event loop, in order, and hands
 * each back to the loop when it is done. Routing policies run here: a policy may spend its
 * whole CPU budget, and the loop (API, scheduler, sockets) must not wait for it. */
#ifndef HOOKD_WORKER_H
#define HOOKD_WORKER_H

struct event_base;
struct worker;

/* Embed in the caller's struct; the caller owns it until done runs. */
struct worker_job {
	struct worker_job *next;
	void (*run)(struct worker_job *job);  /* on the worker thread */
	void (*done)(struct worker_job *job); /* then on the loop thread */
};

int worker_new(struct event_base *base, struct worker **out);
/* Queues job (loop thread). */
void worker_submit(struct worker *w, struct worker_job *job);
/* Finishes queued jobs (their done callbacks run here), stops the thread, frees w. */
void worker_free(struct worker *w);

#endif
