/* api_recover.c - POST /v1/apps/{app}/endpoints/{id}/recover and GET .../recover/{job}:
 * re-send every dead delivery of one endpoint whose message was published in a window, as a
 * job, with no cap on the count.
 *
 * A job walks the endpoint's dead deliveries through the store's endpoint index (publish
 * order), a page of RECOVER_PAGE at a time, and redrives each page in one write op
 * (store_redrive_ids_submit); once that commits, the page goes to the scheduler, which sends
 * it at the endpoint's rate limit and in-flight cap (flow.h), holding what does not fit its
 * window in the store's due index, so a recover of 100,000 costs the memory of one page.
 * The next page is read only after the previous one committed, and between pages the loop
 * serves everything else. Jobs live in memory: after a restart the ones that were running
 * are gone (what they redrove stays pending; what they had not reached is still dead and a
 * new recover of the same window picks it up). */
#include "api-t.h"

#include "clock.h"
#include "delivery.h"
#include "err.h"
#include "id.h"
#include "log.h"
#include "record.h"
#include "registry.h"
#include "store.h"

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Deliveries redriven per write op: big enough that 100,000 take 200 commits, small enough
 * that one op never holds the writer for long. */
#define RECOVER_PAGE 500
/* Finished jobs kept for GET; the oldest finished one goes past this. */
#define RECOVER_JOBS_KEPT 100

struct recover_job {
	struct api *a;
	char id[ID_MAX];
	char app_id[80], ep_id[80];
	int64_t since_ms, until_ms, started_ms, finished_ms;
	const char *state; /* "running", "done", "failed" */
	uint64_t redriven;
	char after[DELIVERY_ID_MAX]; /* the last delivery walked ("" before the first) */
	int end;                     /* the walk passed the window or the index ended */
	char error[256];
	struct event *ev; /* the next page */
	struct recover_job *next;
};

/* One page of the walk. */
struct recover_page {
	struct recover_job *job;
	char **ids;
	size_t n;
	int stopped;
};

static int recover_collect(void *arg, const char *dlv_id, const struct delivery_rec *r)
{
	struct recover_page *pg = arg;
	struct recover_job *job = pg->job;
	if (r->created_ms > job->until_ms) {
		job->end = 1; /* publish order: every later one is later still */
		pg->stopped = 1;
		return STORE_WALK_STOP;
	}
	snprintf(job->after, sizeof(job->after), "%s", dlv_id);
	if (r->created_ms < job->since_ms)
		return 0;
	if (!(pg->ids[pg->n] = strdup(dlv_id)))
		return HOOKD_ENOMEM;
	if (++pg->n == RECOVER_PAGE) {
		pg->stopped = 1;
		return STORE_WALK_STOP;
	}
	return 0;
}

static void recover_finish(struct recover_job *job, const char *state, const char *why)
{
	job->state = state;
	job->finished_ms = clock_now_ms();
	if (why)
		snprintf(job->error, sizeof(job->error), "%s", why);
	log_info("recover %s of %s/%s: %s, %llu deliveries redriven%s%s", job->id, job->app_id,
		 job->ep_id, state, (unsigned long long)job->redriven, why ? ": " : "",
		 why ? why : "");
}

static void recover_revive(void *arg, struct delivery_rec *rec)
{
	(void)arg;
	api_redrive_revive_at(rec, clock_now_ms());
}

static void recover_committed(void *arg, int rc, const char *const *ids, size_t n)
{
	struct recover_job *job = arg;
	if (rc != HOOKD_OK) {
		recover_finish(job, "failed", hookd_strerror(rc));
		return;
	}
	for (size_t i = 0; i < n; i++)
		api_redrive_schedule(job->a, ids[i]);
	job->redriven += n;
	if (job->end)
		recover_finish(job, "done", NULL);
	else
		event_active(job->ev, EV_TIMEOUT, 0);
}

/* Reads the next page and redrives it. */
static void recover_step(evutil_socket_t fd, short what, void *arg)
{
	struct recover_job *job = arg;
	struct api *a = job->a;
	struct recover_page pg = {.job = job};
	struct store_read *rd = NULL;
	int rc;
	(void)fd;
	(void)what;

	if (!registry_endpoint(a->reg, job->app_id, job->ep_id)) {
		recover_finish(job, "failed", "the endpoint was deleted");
		return;
	}
	if (!(pg.ids = calloc(RECOVER_PAGE, sizeof(*pg.ids))) ||
	    (rc = store_read_begin(a->store, &rd)) != HOOKD_OK) {
		free(pg.ids);
		recover_finish(job, "failed", "out of memory or storage error");
		return;
	}
	rc = store_read_endpoint_deliveries(rd, job->app_id, job->ep_id, DLV_DEAD,
					    job->after[0] ? job->after : NULL, recover_collect, &pg);
	store_read_end(rd);
	if (rc == HOOKD_OK && !pg.stopped)
		job->end = 1; /* the endpoint's dead ones ended */
	if (rc != HOOKD_OK)
		recover_finish(job, "failed", hookd_strerror(rc));
	else if (!pg.n && job->end)
		recover_finish(job, "done", NULL);
	else if (!pg.n)
		event_active(job->ev, EV_TIMEOUT, 0);
	else if ((rc = store_redrive_ids_submit(a->store, job->app_id, (const char *const *)pg.ids,
						pg.n, recover_revive, recover_committed, job)) !=
		 HOOKD_OK)
		recover_finish(job, "failed", hookd_strerror(rc));
	for (size_t i = 0; i < pg.n; i++)
		free(pg.ids[i]);
	free(pg.ids);
}

static void recover_job_free(struct recover_job *job)
{
	if (job->ev)
		event_free(job->ev);
	free(job);
}

/* Drops the oldest finished jobs past RECOVER_JOBS_KEPT (running ones are never dropped:
 * their commit callbacks hold them). */
static void recover_trim(struct api *a)
{
	struct recover_job **pp = &a->jobs, *job;
	size_t seen = 0;
	while ((job = *pp)) {
		if (++seen > RECOVER_JOBS_KEPT && strcmp(job->state, "running") != 0) {
			*pp = job->next;
			recover_job_free(job);
			a->n_jobs--;
			continue;
		}
		pp = &job->next;
	}
}

static json_t *recover_view(const struct recover_job *job)
{
	char since[CLOCK_ISO_LEN], until[CLOCK_ISO_LEN], started[CLOCK_ISO_LEN],
		finished[CLOCK_ISO_LEN];
	clock_iso8601(job->since_ms, since);
	clock_iso8601(job->until_ms, until);
	clock_iso8601(job->started_ms, started);
	if (job->finished_ms)
		clock_iso8601(job->finished_ms, finished);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:o, s:o}", "id", job->id,
			 "app_id", job->app_id, "endpoint_id", job->ep_id, "since", since, "until",
			 until, "state", job->state, "redriven", (json_int_t)job->redriven,
			 "started_at", started, "finished_at",
			 job->finished_ms ? json_string(finished) : json_null(), "error",
			 job->error[0] ? json_string(job->error) : json_null());
}

/* A time member of the request: HOOKD_OK with *ms, HOOKD_ENOTFOUND when absent (or null),
 * else answered 400 here. */
static int recover_time(struct evhttp_request *req, json_t *body, const char *name,
			int64_t *ms)
{
	json_t *v = json_object_get(body, name);
	if (!v || json_is_null(v))
		return HOOKD_ENOTFOUND;
	if (!json_is_string(v) || clock_parse(json_string_value(v), ms) != HOOKD_OK) {
		api_error(req, 400, "invalid_field", name,
			  "%s: expected an ISO 8601 time (2026-12-01T00:00:00Z) or Unix seconds",
			  name);
		return HOOKD_EINVAL;
	}
	return HOOKD_OK;
}

void api_endpoint_recover(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	json_t *body = api_body_json(a, req, 1), *v;
	struct recover_job *job = NULL;
	const char *key;
	int64_t now = clock_now_ms(), since = 0, until = now;
	int rc;

	if (!body)
		return;
	json_object_foreach(body, key, v) {
		if (strcmp(key, "since") != 0 && strcmp(key, "until") != 0) {
			api_error(req, 400, "invalid_field", key,
				  "%s: unknown field (expected since, until)", key);
			goto out;
		}
	}
	if ((rc = recover_time(req, body, "since", &since)) == HOOKD_ENOTFOUND) {
		api_error(req, 400, "missing_field", "since", "since: required");
		goto out;
	}
	if (rc != HOOKD_OK || (rc = recover_time(req, body, "until", &until)) == HOOKD_EINVAL)
		goto out;
	if (until < since) {
		api_error(req, 400, "invalid_field", "until", "until: must not be before since");
		goto out;
	}
	if (!(job = calloc(1, sizeof(*job))) ||
	    !(job->ev = event_new(a->base, -1, 0, recover_step, job))) {
		free(job);
		api_error(req, 500, "internal", NULL, "out of memory");
		goto out;
	}
	job->a = a;
	id_make("rcv_", now, job->id);
	snprintf(job->app_id, sizeof(job->app_id), "%s", args->ep->app_id);
	snprintf(job->ep_id, sizeof(job->ep_id), "%s", args->ep->id);
	job->since_ms = since;
	job->until_ms = until;
	job->started_ms = now;
	job->state = "running";
	job->next = a->jobs;
	a->jobs = job;
	a->n_jobs++;
	recover_trim(a);
	log_info("recover %s of %s/%s: dead deliveries published from %lld to %lld ms", job->id,
		 job->app_id, job->ep_id, (long long)since, (long long)until);
	event_active(job->ev, EV_TIMEOUT, 0);
	api_send(req, 202, recover_view(job));
out:
	json_decref(body);
}

void api_endpoint_recover_get(struct api *a, struct evhttp_request *req,
			      const struct api_args *args)
{
	for (struct recover_job *job = a->jobs; job; job = job->next) {
		if (strcmp(job->id, args->id) == 0 && strcmp(job->app_id, args->ep->app_id) == 0 &&
		    strcmp(job->ep_id, args->ep->id) == 0) {
			api_send(req, 200, recover_view(job));
			return;
		}
	}
	api_error(req, 404, "not_found", NULL, "no recover job %s for this endpoint", args->id);
}

void api_recover_free(struct api *a)
{
	while (a->jobs) {
		struct recover_job *job = a->jobs;
		a->jobs = job->next;
		recover_job_free(job);
	}
	a->n_jobs = 0;
}
