/* fanout.c - message -> deliveries, with the policy hook. */
#include "fanout.h"

#include "dispatch.h"
#include "id.h"
#include "jsontext.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "policy.h"
#include "record.h"
#include "registry.h"
#include "store.h"
#include "worker.h"

#include <stddef.h>
#include <stdint.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fanout_capture_policy(struct delivery *dv, const struct endpoint *ep)
{
	free(dv->policy_name);
	json_decref(dv->policy_params);
	dv->policy_name = ep->policy_name ? strdup(ep->policy_name) : NULL;
	/* Shared, not copied: an endpoint change builds new JSON rather than editing this
	 * object, and jansson's reference counts are atomic (JANSSON_THREAD_SAFE_REFCOUNT). */
	dv->policy_params = ep->policy_params ? json_incref(ep->policy_params) : NULL;
	return (ep->policy_name && !dv->policy_name) ? HOOKD_ENOMEM : HOOKD_OK;
}

void fanout_apply_policy(struct policy_engine *policies, const json_t *envelope,
			 struct delivery *dv, struct fanout_stats *stats)
{
	/* dv->ep->id is fixed for the endpoint's lifetime and dv holds a reference: safe to
	 * read from the policy thread, unlike the endpoint's mutable fields. */
	struct policy_input in = {envelope, dv->ep->id, dv->app_id, dv->policy_params};
	struct policy_result res;
	int rc;

	memset(&res, 0, sizeof(res));
	if (!dv->policy_name)
		return;
	rc = policies ? policy_run(policies, dv->policy_name, &in, &res) : HOOKD_ENOTFOUND;
	if (rc == HOOKD_ENOTFOUND) {
		dv->state = DLV_DEAD;
		delivery_set_error(dv, "policy_error: policy '%s' is not loaded", dv->policy_name);
		if (stats)
			stats->policy_errors++;
		return;
	}
	switch (res.action) {
	case POLICY_DELIVER: {
		struct jsontext_buf t = {0};
		char *text = NULL;
		char *hdrs = res.headers && json_object_size(res.headers)
				     ? json_dumps(res.headers, JSON_COMPACT)
				     : NULL;
		struct body *b = NULL;
		if (jsontext_json(&t, res.envelope) == HOOKD_OK)
			b = body_new(t.data, t.len);
		else if ((text = json_dumps(res.envelope, JSON_COMPACT | JSON_PRESERVE_ORDER)))
			b = body_new(text, strlen(text));
		jsontext_free(&t);
		if (!b) {
			dv->state = DLV_DEAD;
			delivery_set_error(dv, "policy_error: output could not be serialized");
			free(hdrs);
			free(text);
			break;
		}
		body_unref(dv->body);
		dv->body = b;
		dv->custom_body = 1;
		dv->body_stored = 0; /* (re)written with the next persist */
		if (hdrs && delivery_set_headers(dv, hdrs) != HOOKD_OK) {
			dv->state = DLV_DEAD;
			delivery_set_error(dv, "policy_error: invalid headers");
		}
		free(hdrs);
		free(text);
		break;
	}
	case POLICY_FILTERED:
		dv->state = DLV_FILTERED;
		delivery_set_error(dv, "%s",
			 res.reason[0] ? res.reason : "filtered by policy");
		if (stats)
			stats->filtered++;
		break;
	case POLICY_ERROR:
	default:
		dv->state = DLV_DEAD;
		delivery_set_error(dv, "policy_error: %.480s", res.reason);
		if (stats)
			stats->policy_errors++;
		break;
	}
	policy_result_free(&res);
}

void fanout_run_policies(struct policy_engine *policies, const json_t *envelope,
			 struct delivery **dvs, size_t n, struct fanout_stats *stats)
{
	for (size_t i = 0; i < n; i++)
		if (dvs[i]->policy_name)
			fanout_apply_policy(policies, envelope, dvs[i], stats);
}

struct fanout_walk {
	struct app *app;
	const char *msg_id, *type;
	struct body *body;
	int needs_policy;
	size_t n_policy;
	int64_t now_ms;
	struct delivery **out;
	size_t n, cap;
	int rc;
	struct fanout_stats *stats;
};

static void fanout_one(const char *key, void *value, void *arg)
{
	struct fanout_walk *w = arg;
	struct endpoint *ep = value;
	struct delivery *dv;
	char id[DELIVERY_ID_MAX];

	/* A disabled endpoint gets its deliveries too: the scheduler holds them until it is
	 * enabled again (dispatch_route), so nothing published meanwhile is lost. */
	if (w->rc != HOOKD_OK || !endpoint_matches(ep, w->type))
		return;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 8;
		struct delivery **n = realloc(w->out, cap * sizeof(*n));
		if (!n) {
			w->rc = HOOKD_ENOMEM;
			return;
		}
		w->out = n;
		w->cap = cap;
	}
	/* dlv_<message ulid>_<n>: a message's deliveries are adjacent in the store. Deliveries
	 * through a policy are numbered apart (_p<n>): they are stored later (fanout_defer)
	 * and a recovery re-plans only them, so the two series can never collide. */
	if (ep->policy_name)
		delivery_id_make(w->msg_id, DELIVERY_POLICY, w->n_policy++, id);
	else
		delivery_id_make(w->msg_id, DELIVERY_PLAIN, w->n - w->n_policy, id);
	dv = delivery_new(id, w->msg_id, w->app->id, ep, w->body, w->now_ms);
	if (!dv) {
		w->rc = HOOKD_ENOMEM;
		return;
	}
	if (ep->policy_name) {
		if (fanout_capture_policy(dv, ep) != HOOKD_OK) {
			delivery_free(dv);
			w->rc = HOOKD_ENOMEM;
			return;
		}
		w->needs_policy = 1;
	}
	if (w->stats)
		w->stats->deliveries++;
	w->out[w->n++] = dv;
}

int fanout_message(struct app *a, const char *msg_id, const char *type, struct body *body,
		   int64_t now_ms, struct delivery ***out, size_t *n_out, int *needs_policy,
		   struct fanout_stats *stats)
{
	struct fanout_walk w = {.app = a, .msg_id = msg_id, .type = type, .body = body,
				.now_ms = now_ms, .rc = HOOKD_OK, .stats = stats};
	strmap_each(&a->endpoints, fanout_one, &w);
	if (w.rc != HOOKD_OK) {
		for (size_t i = 0; i < w.n; i++)
			delivery_free(w.out[i]);
		free(w.out);
		return w.rc;
	}
	*out = w.out;
	*n_out = w.n;
	*needs_policy = w.needs_policy;
	return HOOKD_OK;
}

/* ---- the publish op and the marker ---- */

/* The marker of a fan-out still to do: put with the message (fanout_publish), deleted with
 * the last delivery it stands for (fanout_marker_delete), read by fanout_recover. */
static int fanout_marker_put(struct store_batch *b, const char *app_id, const char *msg_id)
{
	return store_batch_put_fanout_marker(b, app_id, msg_id);
}

int fanout_publish(struct store *s, const struct fanout_publish *pub,
		   void (*cb)(struct store_batch *b), void *arg)
{
	struct store_batch *b = store_batch_new();
	int rc;

	if (!b)
		return HOOKD_ENOMEM;
	rc = store_publish_add_message(b, pub->app_id, pub->msg_id, pub->envelope,
				       strlen(pub->envelope));
	for (size_t i = 0; rc == HOOKD_OK && i < pub->n_dvs; i++)
		rc = dispatch_persist(b, pub->dvs[i], pub->now_ms);
	/* The policy half of the fan-out is made after the 202 (fanout_defer): this marker
	 * makes a restart finish it if the process dies in between. */
	if (rc == HOOKD_OK && pub->deferred)
		rc = fanout_marker_put(b, pub->app_id, pub->msg_id);
	if (rc == HOOKD_OK && pub->idem_key)
		rc = store_publish_set_idempotency(b, pub->app_id, pub->idem_key, pub->msg_id,
						   pub->now_ms, pub->idem_expires_ms);
	if (rc != HOOKD_OK) {
		store_batch_free(b);
		return rc;
	}
	store_publish_submit(s, b, cb, arg);
	return HOOKD_OK;
}

/* Adds the deletion of msg_id's marker to b: with the write that stores the last of the
 * deliveries it stands for (handed to dispatch_add_unstored), or at recovery. */
static int fanout_marker_delete(struct store_batch *b, const char *app_id, const char *msg_id)
{
	return store_batch_del_fanout_marker(b, app_id, msg_id);
}

/* ---- deferred policy fan-out ---- */

struct fanout_job {
	struct worker_job job; /* first */
	struct fanout_ctx *ctx;
	char app_id[80], msg_id[ID_MAX];
	struct body *envelope; /* parsed on the policy thread, released on the loop */
	int unread;            /* the envelope could not be parsed (out of memory) */
	struct delivery **dvs;
	size_t n;
	struct fanout_stats stats; /* counted on the policy thread, added on the loop */
};

static void fanout_job_free(struct fanout_job *fj)
{
	for (size_t i = 0; i < fj->n; i++)
		delivery_free(fj->dvs[i]);
	free(fj->dvs);
	body_unref(fj->envelope);
	free(fj);
}

/* Writes the deliveries and removes the marker in one batch (the batch owns nothing of
 * fj: it copies what it stores). NULL with *rc set on failure. */
static struct store_batch *fanout_job_batch(struct fanout_job *fj, int64_t now_ms, int *rc)
{
	struct store_batch *b = store_batch_new();
	if (!b) {
		*rc = HOOKD_ENOMEM;
		return NULL;
	}
	*rc = HOOKD_OK;
	for (size_t i = 0; *rc == HOOKD_OK && i < fj->n; i++)
		*rc = dispatch_persist(b, fj->dvs[i], now_ms);
	if (*rc == HOOKD_OK)
		*rc = fanout_marker_delete(b, fj->app_id, fj->msg_id);
	if (*rc != HOOKD_OK) {
		store_batch_free(b);
		return NULL;
	}
	return b;
}

static void fanout_job_run(struct worker_job *job)
{
	struct fanout_job *fj = (struct fanout_job *)job;
	/* The tree the policies read is built here, off the loop, and freed here: nothing of a
	 * policy's outcome refers to it once fanout_run_policies returns (policy.h). */
	json_t *env = json_loadb(fj->envelope->data, fj->envelope->len, 0, NULL);
	if (!env) {
		fj->unread = 1;
		return;
	}
	fanout_run_policies(fj->ctx->policies, env, fj->dvs, fj->n, &fj->stats);
	json_decref(env);
}

/* The policies ran: the deliveries to send go out at once and are stored with their first
 * outcome (the marker stands for them until then; see dispatch_add_unstored). */
static void fanout_job_done(struct worker_job *job)
{
	struct fanout_job *fj = (struct fanout_job *)job;
	if (fj->unread) {
		/* As when the job could not be made: the marker stays, the next start redoes it. */
		log_error("fanout: out of memory reading %s; its policy deliveries wait for a "
			  "restart", fj->msg_id);
		fanout_job_free(fj);
		return;
	}
	if (fj->ctx->stats) {
		fj->ctx->stats->filtered += fj->stats.filtered;
		fj->ctx->stats->policy_errors += fj->stats.policy_errors;
	}
	dispatch_add_unstored(fj->ctx->disp, fj->app_id, fj->msg_id, fj->dvs, fj->n,
			      fanout_marker_delete);
	fj->n = 0;
	fanout_job_free(fj);
}

void fanout_defer(struct fanout_ctx *ctx, const char *app_id, const char *msg_id,
		  struct body *envelope, struct delivery **dvs, size_t n)
{
	struct fanout_job *fj = calloc(1, sizeof(*fj));
	if (!fj) {
		log_error("fanout: out of memory for %s; its policy deliveries wait for a restart",
			  msg_id);
		for (size_t i = 0; i < n; i++)
			delivery_free(dvs[i]);
		free(dvs);
		body_unref(envelope);
		return;
	}
	fj->ctx = ctx;
	snprintf(fj->app_id, sizeof(fj->app_id), "%s", app_id);
	snprintf(fj->msg_id, sizeof(fj->msg_id), "%s", msg_id);
	fj->envelope = envelope;
	fj->dvs = dvs;
	fj->n = n;
	fj->job.run = fanout_job_run;
	fj->job.done = fanout_job_done;
	if (ctx->worker) {
		worker_submit(ctx->worker, &fj->job);
	} else {
		fanout_job_run(&fj->job);
		fanout_job_done(&fj->job);
	}
}

/* The policy deliveries of a message already stored: their endpoint and number. */
struct fanout_stored {
	size_t plen; /* of the prefix dlv_<msg ulid>_p */
	struct { const char *ep; size_t num; } *st; /* ep: the snapshot's */
	size_t n, cap;
};

static int fanout_stored_one(void *arg, const char *dlv_id, const struct delivery_rec *r)
{
	struct fanout_stored *f = arg;
	size_t len = strlen(dlv_id), num;
	if (len <= f->plen)
		return 0;
	/* A key not of the scheme still stands for its endpoint, but reserves no number. */
	if (delivery_id_parse(dlv_id, len, NULL, NULL, &num) != HOOKD_OK)
		num = SIZE_MAX;
	if (f->n == f->cap) {
		void *grown = realloc(f->st, (f->cap ? f->cap * 2 : 8) * sizeof(*f->st));
		if (!grown)
			return STORE_WALK_STOP;
		f->st = grown;
		f->cap = f->cap ? f->cap * 2 : 8;
	}
	f->st[f->n].ep = r->ep_id;
	f->st[f->n++].num = num;
	return 0;
}

/* Deliveries are stored with their first outcome and the marker goes with the last of a
 * message's, so a crash can leave a fan-out half stored. Keeps (compacted in dvs, returned
 * count) only the deliveries whose endpoint has no stored delivery of msg_id yet, and gives
 * them numbers not in use; frees the others. */
static size_t fanout_drop_stored(struct store_read *rd, const char *msg_id,
				 struct delivery **dvs, size_t n)
{
	char prefix[DELIVERY_ID_MAX];
	struct fanout_stored f = {0};
	size_t m = 0, next = 0, i, j;
	int rc;

	f.plen = delivery_id_policy_prefix(msg_id, prefix);
	if ((rc = store_read_deliveries(rd, prefix, fanout_stored_one, &f)) != HOOKD_OK) {
		log_error("fanout: reading the stored deliveries of %s: %s", msg_id,
			  hookd_strerror(rc));
		free(f.st);
		return n;
	}
	for (i = 0; i < n; i++) {
		for (j = 0; j < f.n && strcmp(f.st[j].ep, dvs[i]->ep->id) != 0; j++)
			;
		if (j < f.n) {
			delivery_free(dvs[i]);
			continue;
		}
		for (;; next++) {
			for (j = 0; j < f.n && f.st[j].num != next; j++)
				;
			if (j == f.n)
				break;
		}
		delivery_id_make(msg_id, DELIVERY_POLICY, next++, dvs[i]->id);
		dvs[m++] = dvs[i];
	}
	free(f.st);
	return m;
}

/* fanout_recover's walk of the markers. */
struct fanout_recovery {
	struct fanout_ctx *ctx;
	struct store_read *rd;
	struct store_batch *stale; /* markers of fan-outs with nothing left to do */
	size_t done;
};

static int fanout_recover_one(void *arg, const char *app_id, const char *mid)
{
	struct fanout_recovery *rv = arg;
	struct fanout_ctx *ctx = rv->ctx;
	struct app *a;
	const char *env_text;
	size_t env_len;
	json_t *env = NULL;
	struct body *body = NULL;
	struct delivery **dvs = NULL;
	size_t n = 0, m = 0;
	int needs = 0, rc;
	struct fanout_job *fj;
	struct store_batch *b;

	if (strlen(app_id) >= sizeof(fj->app_id) || strlen(mid) >= ID_MAX)
		goto drop;
	a = registry_app(ctx->reg, app_id);
	if (!a)
		goto drop;
	rc = store_read_message(rv->rd, app_id, mid, &env_text, &env_len);
	if (rc == HOOKD_ESTORE || rc == HOOKD_EFULL)
		return rc;
	if (rc != HOOKD_OK || !(env = json_loadb(env_text, env_len, 0, NULL)) ||
	    !(body = body_new(env_text, env_len)))
		goto drop;
	if (fanout_message(a, mid, json_string_value(json_object_get(env, "type")) ?: "", body,
			   clock_now_ms(), &dvs, &n, &needs, NULL) != HOOKD_OK)
		goto drop;
	/* Only the policy half: the plain deliveries were stored with the message. */
	for (size_t i = 0; i < n; i++) {
		if (dvs[i]->policy_name)
			dvs[m++] = dvs[i];
		else
			delivery_free(dvs[i]);
	}
	m = fanout_drop_stored(rv->rd, mid, dvs, m);
	body_unref(body);
	fj = calloc(1, sizeof(*fj));
	if (!fj) {
		for (size_t i = 0; i < m; i++)
			delivery_free(dvs[i]);
		free(dvs);
		json_decref(env);
		return 0;
	}
	fj->ctx = ctx;
	snprintf(fj->app_id, sizeof(fj->app_id), "%s", app_id);
	snprintf(fj->msg_id, sizeof(fj->msg_id), "%s", mid);
	fj->dvs = dvs;
	fj->n = m;
	fanout_run_policies(ctx->policies, env, dvs, m, &fj->stats);
	json_decref(env);
	b = fanout_job_batch(fj, clock_now_ms(), &rc);
	if (b && (rc = store_batch_write_now(ctx->store, b, 0)) == HOOKD_OK) {
		for (size_t i = 0; i < fj->n; i++)
			dispatch_add(ctx->disp, fj->dvs[i]);
		fj->n = 0;
		rv->done++;
	} else {
		log_error("fanout: cannot store the policy deliveries of %s: %s (the next start "
			  "tries again)", mid, hookd_strerror(rc));
	}
	store_batch_free(b);
	fanout_job_free(fj);
	return 0;
drop:
	/* The app or the message is gone: nothing left to fan out. */
	json_decref(env);
	body_unref(body);
	if ((rc = fanout_marker_delete(rv->stale, app_id, mid)) != HOOKD_OK)
		log_error("fanout: cannot drop the marker of %s: %s", mid, hookd_strerror(rc));
	return 0;
}

size_t fanout_recover(struct fanout_ctx *ctx)
{
	struct fanout_recovery rv = {.ctx = ctx, .stale = store_batch_new()};
	int rc;

	if (!rv.stale || (rc = store_read_begin(ctx->store, &rv.rd)) != HOOKD_OK) {
		log_error("fanout: cannot read the store to finish interrupted fan-outs");
		store_batch_free(rv.stale);
		return 0;
	}
	if ((rc = store_read_fanout_markers(rv.rd, fanout_recover_one, &rv)) != HOOKD_OK)
		log_error("fanout: reading the fan-out markers: %s", hookd_strerror(rc));
	store_read_end(rv.rd);
	if (store_batch_count(rv.stale) &&
	    (rc = store_batch_write_now(ctx->store, rv.stale, 0)) != HOOKD_OK)
		log_error("fanout: dropping %zu stale fan-out markers failed: %s",
			  store_batch_count(rv.stale), hookd_strerror(rc));
	store_batch_free(rv.stale);
	if (rv.done)
		log_info("fanout: finished %zu interrupted policy fan-outs", rv.done);
	return rv.done;
}
