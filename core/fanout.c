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
		snprintf(dv->last_error, sizeof(dv->last_error),
			 "policy_error: policy '%s' is not loaded", dv->policy_name);
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
			snprintf(dv->last_error, sizeof(dv->last_error),
				 "policy_error: output could not be serialized");
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
			snprintf(dv->last_error, sizeof(dv->last_error),
				 "policy_error: invalid headers");
		}
		free(hdrs);
		free(text);
		break;
	}
	case POLICY_FILTERED:
		dv->state = DLV_FILTERED;
		snprintf(dv->last_error, sizeof(dv->last_error), "%s",
			 res.reason[0] ? res.reason : "filtered by policy");
		if (stats)
			stats->filtered++;
		break;
	case POLICY_ERROR:
	default:
		dv->state = DLV_DEAD;
		snprintf(dv->last_error, sizeof(dv->last_error), "policy_error: %.480s", res.reason);
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

/* ---- deferred policy fan-out ---- */

size_t fanout_marker_key(const char *app_id, const char *msg_id, char *out)
{
	return registry_endpoint_key(app_id, msg_id, out);
}

struct fanout_job {
	struct worker_job job; /* first */
	struct fanout_ctx *ctx;
	char app_id[80], msg_id[ID_MAX];
	json_t *envelope; /* read by the policy thread, released on the loop */
	struct delivery **dvs;
	size_t n;
	struct fanout_stats stats; /* counted on the policy thread, added on the loop */
};

static void fanout_job_free(struct fanout_job *fj)
{
	for (size_t i = 0; i < fj->n; i++)
		delivery_free(fj->dvs[i]);
	free(fj->dvs);
	json_decref(fj->envelope);
	free(fj);
}

/* Writes the deliveries and removes the marker in one batch (the batch owns nothing of
 * fj: it copies what it stores). */
static struct store_batch *fanout_job_batch(struct fanout_job *fj, int64_t now_ms)
{
	struct store_batch *b = store_batch_new();
	char key[200];
	size_t klen = fanout_marker_key(fj->app_id, fj->msg_id, key);
	if (!b)
		return NULL;
	for (size_t i = 0; i < fj->n; i++)
		if (dispatch_persist(fj->ctx->store, b, fj->dvs[i], now_ms) != HOOKD_OK)
			goto fail;
	if (store_batch_del(b, fj->ctx->store->fanout, key, klen) != HOOKD_OK)
		goto fail;
	return b;
fail:
	store_batch_free(b);
	return NULL;
}

static void fanout_job_run(struct worker_job *job)
{
	struct fanout_job *fj = (struct fanout_job *)job;
	fanout_run_policies(fj->ctx->policies, fj->envelope, fj->dvs, fj->n, &fj->stats);
}

/* The policies ran: the deliveries to send go out at once and are stored with their first
 * outcome (the marker stands for them until then; see dispatch_add_unstored). */
static void fanout_job_done(struct worker_job *job)
{
	struct fanout_job *fj = (struct fanout_job *)job;
	char key[200];
	size_t klen = fanout_marker_key(fj->app_id, fj->msg_id, key);
	if (fj->ctx->stats) {
		fj->ctx->stats->filtered += fj->stats.filtered;
		fj->ctx->stats->policy_errors += fj->stats.policy_errors;
	}
	dispatch_add_unstored(fj->ctx->disp, fj->msg_id, key, klen, fj->dvs, fj->n);
	fj->n = 0;
	fanout_job_free(fj);
}

void fanout_defer(struct fanout_ctx *ctx, const char *app_id, const char *msg_id,
		  json_t *envelope, struct delivery **dvs, size_t n)
{
	struct fanout_job *fj = calloc(1, sizeof(*fj));
	if (!fj) {
		log_error("fanout: out of memory for %s; its policy deliveries wait for a restart",
			  msg_id);
		for (size_t i = 0; i < n; i++)
			delivery_free(dvs[i]);
		free(dvs);
		json_decref(envelope);
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

/* Deliveries are stored with their first outcome and the marker goes with the last of a
 * message's, so a crash can leave a fan-out half stored. Keeps (compacted in dvs, returned
 * count) only the deliveries whose endpoint has no stored delivery of msg_id yet, and gives
 * them numbers not in use; frees the others. */
static size_t fanout_drop_stored(MDB_txn *txn, struct store *s, const char *msg_id,
				 struct delivery **dvs, size_t n)
{
	char prefix[DELIVERY_ID_MAX];
	size_t plen = delivery_id_policy_prefix(msg_id, prefix);
	MDB_cursor *cur;
	MDB_val k = {plen, prefix}, v;
	struct { const char *ep; size_t num; } *st = NULL; /* the stored ones */
	size_t ne = 0, cap = 0, m = 0, next = 0, i, j;
	int rc;

	if (mdb_cursor_open(txn, s->deliveries, &cur) != 0)
		return n;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     rc == 0 && k.mv_size > plen && memcmp(k.mv_data, prefix, plen) == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct delivery_rec r;
		size_t num;
		if (record_decode(v.mv_data, v.mv_size, &r) != HOOKD_OK)
			continue;
		/* A key not of the scheme still stands for its endpoint, but reserves no number. */
		if (delivery_id_parse(k.mv_data, k.mv_size, NULL, NULL, &num) != HOOKD_OK)
			num = SIZE_MAX;
		if (ne == cap) {
			void *grown = realloc(st, (cap ? cap * 2 : 8) * sizeof(*st));
			if (!grown)
				break;
			st = grown;
			cap = cap ? cap * 2 : 8;
		}
		st[ne].ep = r.ep_id;
		st[ne++].num = num;
	}
	mdb_cursor_close(cur);
	for (i = 0; i < n; i++) {
		for (j = 0; j < ne && strcmp(st[j].ep, dvs[i]->ep->id) != 0; j++)
			;
		if (j < ne) {
			delivery_free(dvs[i]);
			continue;
		}
		for (;; next++) {
			for (j = 0; j < ne && st[j].num != next; j++)
				;
			if (j == ne)
				break;
		}
		delivery_id_make(msg_id, DELIVERY_POLICY, next++, dvs[i]->id);
		dvs[m++] = dvs[i];
	}
	free(st);
	return m;
}

size_t fanout_recover(struct fanout_ctx *ctx)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	struct store_batch *stale = store_batch_new();
	size_t done = 0;
	int rc;

	if (!stale || store_read_begin(ctx->store, &txn) != HOOKD_OK) {
		store_batch_free(stale);
		return 0;
	}
	mdb_cursor_open(txn, ctx->store->fanout, &cur);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const char *app_id = k.mv_data, *msg_id;
		size_t alen = strnlen(app_id, k.mv_size);
		char mid[ID_MAX];
		struct app *a;
		MDB_val mv;
		json_t *env = NULL;
		struct body *body = NULL;
		struct delivery **dvs = NULL;
		size_t n = 0, m = 0;
		int needs = 0;
		struct fanout_job *fj;

		if (alen + 1 >= k.mv_size || k.mv_size - alen - 1 >= sizeof(mid))
			goto drop;
		msg_id = (const char *)k.mv_data + alen + 1;
		memcpy(mid, msg_id, k.mv_size - alen - 1);
		mid[k.mv_size - alen - 1] = 0;
		a = registry_app(ctx->reg, app_id);
		if (!a || mdb_get(txn, ctx->store->messages, &k, &mv) != 0 ||
		    !(env = json_loadb(mv.mv_data, mv.mv_size, 0, NULL)) ||
		    !(body = body_new(mv.mv_data, mv.mv_size)))
			goto drop;
		if (fanout_message(a, mid, json_string_value(json_object_get(env, "type")) ?: "",
				   body, clock_now_ms(), &dvs, &n, &needs, NULL) != HOOKD_OK)
			goto drop;
		/* Only the policy half: the plain deliveries were stored with the message. */
		for (size_t i = 0; i < n; i++) {
			if (dvs[i]->policy_name)
				dvs[m++] = dvs[i];
			else
				delivery_free(dvs[i]);
		}
		m = fanout_drop_stored(txn, ctx->store, mid, dvs, m);
		body_unref(body);
		fj = calloc(1, sizeof(*fj));
		if (!fj) {
			for (size_t i = 0; i < m; i++)
				delivery_free(dvs[i]);
			free(dvs);
			json_decref(env);
			continue;
		}
		fj->ctx = ctx;
		snprintf(fj->app_id, sizeof(fj->app_id), "%.*s", (int)alen, app_id);
		snprintf(fj->msg_id, sizeof(fj->msg_id), "%s", mid);
		fj->dvs = dvs;
		fj->n = m;
		fanout_run_policies(ctx->policies, env, dvs, m, &fj->stats);
		json_decref(env);
		struct store_batch *b = fanout_job_batch(fj, clock_now_ms());
		if (b && store_batch_write_now(ctx->store, b) == HOOKD_OK) {
			for (size_t i = 0; i < fj->n; i++)
				dispatch_add(ctx->disp, fj->dvs[i]);
			fj->n = 0;
			done++;
		}
		store_batch_free(b);
		fanout_job_free(fj);
		continue;
	drop:
		/* The app or the message is gone: nothing left to fan out. */
		json_decref(env);
		body_unref(body);
		store_batch_del(stale, ctx->store->fanout, k.mv_data, k.mv_size);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (stale->n)
		store_batch_write_now(ctx->store, stale);
	store_batch_free(stale);
	if (done)
		log_info("fanout: finished %zu interrupted policy fan-outs", done);
	return done;
}
