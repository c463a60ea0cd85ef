/* dispatch.c - scheduling, sending, and recording deliveries. */
#include "dispatch.h"

#include "auth.h"
#include "clock.h"
#include "config.h"
#include "epstats.h"
#include "err.h"
#include "flow.h"
#include "jsontext.h"
#include "log.h"
#include "policy.h"
#include "registry.h"
#include "retry.h"
#include "sign.h"
#include "store.h"
#include "transport.h"
#include "url.h"

#include <event2/event.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deliveries started per timer tick before yielding to the loop, so a backlog that becomes
 * due at once (a restart after an outage) does not starve the API. */
#define DISPATCH_TICK_MAX 512
/* An endpoint's window holds only deliveries due within this much of now: a retry due later
 * waits in the store and is read back this long before it is due, so retries an hour away
 * never fill the window while deliveries due now wait behind them. */
#define DISPATCH_HORIZON_MS 1000
#define DISPATCH_NONE INT64_MAX

struct dispatch {
	struct event_base *base;
	struct store *store;
	struct registry *reg;
	const struct config *cfg;
	struct transport *transport;
	struct auth *auth;                /* attempts of endpoints with an auth scheme */
	struct delivery **heap;
	size_t heap_n, heap_cap;
	struct strmap live;
	struct strmap unstored; /* msg id -> struct unstored_set */
	struct event *timer;
	struct event *refill_ev;          /* reads queued endpoints' windows from the store */
	struct dispatch_ep *refill_head;  /* endpoints queued for a read, in order */
	struct dispatch_ep *refill_tail;
	uint32_t window;                  /* deliveries per endpoint in memory at most */
	uint32_t inflight;
	struct dispatch_stats stats;
	struct dispatch_ep *eps; /* every endpoint runtime, to free with the dispatcher */
	/* Endpoints whose waiting deliveries their flow would let go but every global slot was
	 * busy: released, in order, as slots free (their own completions may be none). */
	struct dispatch_ep *blocked_head, *blocked_tail;
	dispatch_event_fn event_fn;       /* operational events (ops.h), or NULL */
	void *event_arg;
};

/* The scheduler's runtime for one endpoint, hung on ep->sched (which only this file reads):
 * one pointer from the delivery's endpoint on the hot path, no lookup. Made when the
 * endpoint's first delivery is scheduled (dispatch_add, dispatch_load), so every scheduled
 * delivery of an endpoint that is not deleted finds it. It holds a reference to the endpoint,
 * so its pointer back stays valid whatever the registry does. A deleted endpoint's runtime is
 * freed once nothing of it is in flight or waiting (its other live deliveries are being
 * buried and never touch it); the others' go with the dispatcher. */
struct dispatch_ep {
	struct endpoint *ep;                    /* reference held */
	uint32_t inflight;
	/* The window: live deliveries of this endpoint in memory (in the heap, in its FIFO, in
	 * flight, or finished and waiting for the commit that records it), at most d->window
	 * but for those already on their way to the store, and only those due within
	 * DISPATCH_HORIZON_MS. The others stay only in the store's due index; stored_at is the
	 * earliest due time among them (a lower bound), DISPATCH_NONE when there are none. The
	 * window is read back from the index, soonest due first, once it is half empty and
	 * stored_at is within the horizon (the wake timer fires then). */
	uint32_t live_n;
	int64_t stored_at;
	struct event *wake;                     /* stored_at comes within the horizon */
	int refill_queued;                      /* in d's refill queue */
	struct dispatch_ep *refill_next;
	struct delivery *wait_head, *wait_tail; /* due, waiting for capacity or re-enable */
	/* Breaker, rate limit, throttling (flow.h): whether the next waiting one may go. */
	struct flow flow;
	struct event *flow_ev;                  /* the flow lets the next one go then */
	int64_t flow_at;                        /* when flow_ev fires (0: not armed) */
	int blocked;                            /* in d's blocked list */
	int64_t fail_start_ms;                  /* its run of failed attempts began (0: none) */
	struct dispatch_ep *blocked_next;
	struct epstats stats;                   /* the status feed's last hour */
	struct dispatch *d;
	struct dispatch_ep *prev, *next;        /* in d->eps */
};

static void dispatch_wake_cb(evutil_socket_t fd, short what, void *arg);
static void dispatch_flow_cb(evutil_socket_t fd, short what, void *arg);

/* A message's policy deliveries scheduled before being stored, and the store marker that
 * stands for them meanwhile (see dispatch_add_unstored). */
struct unstored_set {
	int refs;                /* deliveries holding it, + 1 while being handed out */
	size_t left;             /* deliveries whose first write is not yet in a batch */
	struct dispatch *d;      /* NULL once the dispatcher is gone */
	int indexed;             /* listed in d->unstored under msg_id */
	char msg_id[ID_MAX];
	char app_id[ID_MAX + 32]; /* with msg_id, what last() is told */
	dispatch_last_write_fn last; /* joins the batch that stores the last of them */
	size_t n;
	char ids[][DELIVERY_ID_MAX];
};

static void unstored_unref(struct unstored_set *set)
{
	if (!set || --set->refs > 0)
		return;
	if (set->d && set->indexed)
		strmap_del(&set->d->unstored, set->msg_id);
	free(set);
}

void dispatch_unstored_unref(struct unstored_set *set)
{
	unstored_unref(set);
}

/* ---- per-endpoint runtime ---- */

/* The endpoint's flow limits: its own where it has them, the daemon's defaults else. */
static void dispatch_limits(const struct dispatch *d, const struct endpoint *ep,
			    struct flow_limits *l)
{
	const struct config *c = d->cfg;
	const struct endpoint_flow *f = &ep->flow;
	l->consecutive_failures = f->consecutive_failures >= 0 ? (uint32_t)f->consecutive_failures
							       : c->breaker_consecutive_failures;
	l->failure_ratio = f->failure_ratio >= 0 ? f->failure_ratio : c->breaker_failure_ratio;
	l->window_s = f->window_s > 0 ? (uint32_t)f->window_s : c->breaker_window_s;
	l->cooldown_s = f->cooldown_s > 0 ? (uint32_t)f->cooldown_s : c->breaker_cooldown_s;
	l->cooldown_max_s = c->breaker_cooldown_max_s > l->cooldown_s ? c->breaker_cooldown_max_s
								      : l->cooldown_s;
	if (f->per_second >= 0) {
		l->per_second = f->per_second;
		l->burst = f->burst > 0 ? (uint32_t)f->burst : 0;
	} else {
		l->per_second = c->rate_per_second;
		l->burst = c->rate_burst;
	}
	if (!l->burst)
		l->burst = l->per_second > 1 ? (uint32_t)ceil(l->per_second) : 1;
	l->max_in_flight = f->max_in_flight > 0 ? (uint32_t)f->max_in_flight
						: c->max_inflight_per_endpoint;
}

/* Deliveries of de's endpoint in memory at most: the daemon's window, and never less than
 * twice the endpoint's own in-flight cap (else its slots idle between reads). */
static uint32_t dispatch_window(const struct dispatch *d, const struct dispatch_ep *de)
{
	int64_t own = de->ep->flow.max_in_flight;
	return own > 0 && (uint64_t)own * 2 > d->window ? (uint32_t)own * 2 : d->window;
}

/* ep's runtime, made on first use; NULL when out of memory. */
static struct dispatch_ep *dispatch_ep_get(struct dispatch *d, struct endpoint *ep)
{
	struct dispatch_ep *de = ep->sched;
	if (de)
		return de;
	if (!(de = calloc(1, sizeof(*de))))
		return NULL;
	if (!(de->wake = evtimer_new(d->base, dispatch_wake_cb, de)) ||
	    !(de->flow_ev = evtimer_new(d->base, dispatch_flow_cb, de))) {
		if (de->wake)
			event_free(de->wake);
		free(de);
		return NULL;
	}
	flow_init(&de->flow);
	de->d = d;
	de->stored_at = DISPATCH_NONE;
	de->ep = ep;
	endpoint_ref(ep);
	de->next = d->eps;
	if (d->eps)
		d->eps->prev = de;
	d->eps = de;
	ep->sched = de;
	return de;
}

static void dispatch_ep_free(struct dispatch *d, struct dispatch_ep *de)
{
	if (de->prev)
		de->prev->next = de->next;
	else
		d->eps = de->next;
	if (de->next)
		de->next->prev = de->prev;
	if (de->blocked) {
		struct dispatch_ep **pp = &d->blocked_head, *prev = NULL;
		while (*pp != de) {
			prev = *pp;
			pp = &(*pp)->blocked_next;
		}
		*pp = de->blocked_next;
		if (d->blocked_tail == de)
			d->blocked_tail = prev;
	}
	de->ep->sched = NULL;
	event_free(de->wake);
	event_free(de->flow_ev);
	endpoint_unref(de->ep); /* may free the endpoint: last */
	free(de);
}

/* Frees ep's runtime if ep is deleted and nothing of it is in flight, waiting, or left in
 * the store to bury any more. */
static void dispatch_ep_settle(struct dispatch *d, struct endpoint *ep)
{
	struct dispatch_ep *de = ep->sched;
	if (de && ep->deleted && de->inflight == 0 && !de->wait_head &&
	    de->stored_at == DISPATCH_NONE && !de->refill_queued)
		dispatch_ep_free(d, de);
}

/* Queues de for a read of its window from the store when the store holds pending ones due
 * within the horizon and the window is at most half full; arms its wake timer when the
 * earliest stored one is due later. A deleted endpoint's are read at once, to be buried. */
static void dispatch_want(struct dispatch *d, struct dispatch_ep *de)
{
	struct timeval zero = {0, 0};
	int64_t now;
	if (!de || de->stored_at == DISPATCH_NONE || de->refill_queued ||
	    de->live_n > dispatch_window(d, de) / 2)
		return;
	now = clock_now_ms();
	if (!de->ep->deleted && de->stored_at > now + DISPATCH_HORIZON_MS) {
		int64_t wait = de->stored_at - DISPATCH_HORIZON_MS - now;
		struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
		evtimer_add(de->wake, &tv);
		return;
	}
	evtimer_del(de->wake);
	de->refill_queued = 1;
	de->refill_next = NULL;
	if (d->refill_tail)
		d->refill_tail->refill_next = de;
	else
		d->refill_head = de;
	d->refill_tail = de;
	evtimer_add(d->refill_ev, &zero);
}

static void dispatch_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dispatch_ep *de = arg;
	(void)fd;
	(void)what;
	dispatch_want(de->d, de);
}

/* The store has a pending delivery of de due at at that is not in memory. */
static void dispatch_stored(struct dispatch_ep *de, int64_t at)
{
	if (at < de->stored_at)
		de->stored_at = at;
}

/* ---- the live map: every delivery in memory, by id ---- */

static int dispatch_live_put(struct dispatch *d, struct delivery *dv)
{
	int rc = strmap_put(&d->live, dv->id, dv);
	if (rc == HOOKD_OK) {
		dv->live = 1;
		dv->ep->sched->live_n++;
	}
	return rc;
}

static void dispatch_live_del(struct dispatch *d, struct delivery *dv)
{
	struct dispatch_ep *de = dv->ep->sched;
	if (!dv->live)
		return;
	strmap_del(&d->live, dv->id);
	dv->live = 0;
	if (de) {
		de->live_n--;
		/* Still pending, it stays in the store's due index only (a retry that left the
		 * window, a policy delivery stored for it): a read of the window must find it,
		 * also when the last read ended while it was still in memory. */
		if (dv->state == DLV_PENDING || dv->state == DLV_INFLIGHT)
			dispatch_stored(de, dv->next_at_ms);
		dispatch_want(d, de);
	}
}

/* ---- the heap (by next_at_ms, then id) ---- */

/* Ties go by id: a message's deliveries are numbered after its id, which grows with publish
 * order, so deliveries due in the same millisecond leave the heap (and join a held
 * endpoint's FIFO) in publish order, also after a restart loads them all at once. */
static int heap_before(const struct delivery *a, const struct delivery *b)
{
	return a->next_at_ms < b->next_at_ms ||
	       (a->next_at_ms == b->next_at_ms && strcmp(a->id, b->id) < 0);
}

static void heap_swap(struct dispatch *d, size_t i, size_t j)
{
	struct delivery *t = d->heap[i];
	d->heap[i] = d->heap[j];
	d->heap[j] = t;
	d->heap[i]->heap_idx = i;
	d->heap[j]->heap_idx = j;
}

static void heap_up(struct dispatch *d, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!heap_before(d->heap[i], d->heap[p]))
			break;
		heap_swap(d, i, p);
		i = p;
	}
}

static void heap_down(struct dispatch *d, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < d->heap_n && heap_before(d->heap[l], d->heap[m]))
			m = l;
		if (r < d->heap_n && heap_before(d->heap[r], d->heap[m]))
			m = r;
		if (m == i)
			break;
		heap_swap(d, i, m);
		i = m;
	}
}

static int heap_push(struct dispatch *d, struct delivery *dv)
{
	if (d->heap_n == d->heap_cap) {
		size_t cap = d->heap_cap ? d->heap_cap * 2 : 1024;
		struct delivery **n = realloc(d->heap, cap * sizeof(*n));
		if (!n)
			return HOOKD_ENOMEM;
		d->heap = n;
		d->heap_cap = cap;
	}
	d->heap[d->heap_n] = dv;
	dv->heap_idx = d->heap_n++;
	heap_up(d, dv->heap_idx);
	return HOOKD_OK;
}

static struct delivery *heap_pop(struct dispatch *d)
{
	struct delivery *top = d->heap[0];
	d->heap_n--;
	if (d->heap_n) {
		d->heap[0] = d->heap[d->heap_n];
		d->heap[0]->heap_idx = 0;
		heap_down(d, 0);
	}
	top->heap_idx = SIZE_MAX;
	return top;
}

static void dispatch_arm(struct dispatch *d)
{
	int64_t wait;
	struct timeval tv;
	if (!d->heap_n) {
		evtimer_del(d->timer);
		return;
	}
	wait = d->heap[0]->next_at_ms - clock_now_ms();
	if (wait < 0)
		wait = 0;
	tv.tv_sec = wait / 1000;
	tv.tv_usec = (wait % 1000) * 1000;
	evtimer_add(d->timer, &tv);
}

/* ---- persistence ---- */

int dispatch_persist(struct store_batch *b, struct delivery *dv, int64_t now_ms)
{
	struct delivery_rec r = {0};
	int rc;

	r.state = dv->state == DLV_INFLIGHT ? DLV_PENDING : dv->state;
	r.attempts = dv->attempts;
	r.cycle_failures = dv->cycle_failures;
	r.last_status = dv->last_status;
	r.next_at_ms = dv->next_at_ms;
	r.created_ms = dv->created_ms;
	r.updated_ms = now_ms;
	r.app_id = dv->app_id;
	r.msg_id = dv->msg_id;
	r.ep_id = dv->ep->id;
	r.last_error = delivery_error(dv);
	r.flags = dv->custom_body ? RECORD_CUSTOM_BODY : 0;
	r.headers = dv->headers_json;
	/* A policy's output is kept for what may be sent again: retries of a pending delivery
	 * and a redrive of a dead one. A delivery that succeeded is never sent again. */
	if (dv->custom_body && !dv->body_stored && r.state != DLV_SUCCEEDED) {
		rc = store_batch_put_body(b, dv->id, dv->body->data, dv->body->len);
		if (rc)
			return rc;
		dv->body_stored = 1;
	}
	if ((rc = store_batch_put_delivery(b, dv->id, &r)))
		return rc;
	if (dv->due_key_ms && (r.state != DLV_PENDING || dv->due_key_ms != dv->next_at_ms)) {
		if ((rc = store_batch_del_due(b, dv->app_id, dv->ep->id, dv->due_key_ms, dv->id)))
			return rc;
		dv->due_key_ms = 0;
	}
	if (r.state == DLV_PENDING && dv->due_key_ms != dv->next_at_ms) {
		if ((rc = store_batch_put_due(b, dv->app_id, dv->ep->id, dv->next_at_ms, dv->id)))
			return rc;
		dv->due_key_ms = dv->next_at_ms;
	}
	if (r.state == DLV_DEAD && (rc = store_batch_put_dead(b, dv->app_id, now_ms, dv->id)))
		return rc;
	if (dv->unstored) {
		/* Its first write: the last of its message's goes with the marker's removal. */
		struct unstored_set *set = dv->unstored;
		if (--set->left == 0 &&
		    (rc = set->last(b, set->app_id, set->msg_id)) != HOOKD_OK) {
			set->left++;
			return rc;
		}
		dv->unstored = NULL;
		unstored_unref(set);
	}
	return HOOKD_OK;
}

static void dispatch_forget(struct dispatch *d, struct delivery *dv);

/* A finished delivery stays live (visible to the API with its new state) until the commit
 * that records its outcome is done; only then is the in-memory copy dropped. */
static void dispatch_recorded(struct store_batch *b)
{
	struct delivery *dv = store_batch_arg(b);
	dispatch_forget(dv->dispatch, dv);
}

/* Writes the attempt and the delivery's new state; with forget (finished, or a retry that
 * leaves the window) the delivery is dropped from memory once that is committed. */
static void dispatch_record_attempt(struct dispatch *d, struct delivery *dv,
				    const struct transport_result *res, int64_t at_ms, int forget)
{
	struct store_batch *b = store_batch_new();
	char iso[CLOCK_ISO_LEN];
	struct jsontext_buf t = {0};
	char *text;
	int rc;

	if (!b) {
		if (forget)
			dispatch_forget(d, dv);
		return;
	}
	/* Written once per attempt: a direct writer, not a jansson tree. Response bytes that
	 * are not UTF-8 are stored with U+FFFD in their place. */
	clock_iso8601(at_ms, iso);
	jsontext_cstr(&t, "{\"delivery_id\":");
	jsontext_string(&t, dv->id, strlen(dv->id));
	jsontext_cstr(&t, ",\"endpoint_id\":");
	jsontext_string(&t, dv->ep->id, strlen(dv->ep->id));
	jsontext_cstr(&t, ",\"attempt\":");
	jsontext_long(&t, dv->attempts);
	jsontext_cstr(&t, ",\"at\":\"");
	jsontext_cstr(&t, iso);
	jsontext_cstr(&t, "\",\"duration_ms\":");
	jsontext_long(&t, res->duration_ms);
	jsontext_cstr(&t, ",\"status\":");
	if (res->status)
		jsontext_long(&t, res->status);
	else
		jsontext_cstr(&t, "null");
	jsontext_cstr(&t, ",\"error\":");
	if (res->error[0])
		jsontext_string(&t, res->error, strlen(res->error));
	else
		jsontext_cstr(&t, "null");
	jsontext_cstr(&t, ",\"response\":");
	jsontext_string(&t, res->response ? res->response : "", res->response_len);
	jsontext_cstr(&t, "}");
	text = t.failed ? NULL : t.data;
	if ((rc = text ? store_batch_put_attempt(b, dv->id, dv->attempts, text, strlen(text))
		       : HOOKD_ENOMEM) != HOOKD_OK ||
	    (rc = dispatch_persist(b, dv, at_ms)) != HOOKD_OK) {
		log_error("dispatch: cannot record attempt %u of %s: %s", dv->attempts, dv->id,
			  hookd_strerror(rc));
		jsontext_free(&t);
		store_batch_free(b);
		if (forget)
			dispatch_forget(d, dv);
		return;
	}
	jsontext_free(&t);
	store_batch_submit(d->store, b, STORE_OP_KEEP, forget ? dispatch_recorded : NULL, dv);
}

/* ---- sending ---- */

static void dispatch_pump(struct dispatch *d);
static void dispatch_start(struct dispatch *d, struct delivery *dv);
static void dispatch_release(struct dispatch *d, struct endpoint *ep);
static void dispatch_unblock(struct dispatch *d);
static void dispatch_track_failing(struct dispatch *d, struct endpoint *ep,
				   struct dispatch_ep *de, bool failed, int64_t now);
static void dispatch_event(struct dispatch *d, const char *type, const struct endpoint *ep,
			   json_t *data);

/* ---- flow: when an endpoint's waiting deliveries may go (flow.h) ---- */

/* Arms de's flow timer for at (flow_admit's answer), unless it is armed sooner already. */
static void dispatch_flow_wait(struct dispatch *d, struct dispatch_ep *de, int64_t at)
{
	int64_t wait;
	struct timeval tv;
	if (at == FLOW_AFTER_COMPLETION)
		return; /* one of its attempts out ends first, and releases it */
	if (de->flow_at && de->flow_at <= at && evtimer_pending(de->flow_ev, NULL))
		return;
	wait = at - clock_now_ms();
	if (wait < 1)
		wait = 1;
	tv.tv_sec = (time_t)(wait / 1000);
	tv.tv_usec = (suseconds_t)(wait % 1000) * 1000;
	evtimer_add(de->flow_ev, &tv);
	de->flow_at = at;
}

static void dispatch_flow_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dispatch_ep *de = arg;
	struct dispatch *d = de->d;
	struct endpoint *ep = de->ep;
	(void)fd;
	(void)what;
	de->flow_at = 0;
	endpoint_ref(ep);
	dispatch_release(d, ep);
	dispatch_ep_settle(d, ep);
	endpoint_unref(ep);
}

/* de's flow would let one go but every global slot is busy: released when one frees. */
static void dispatch_block(struct dispatch *d, struct dispatch_ep *de)
{
	if (de->blocked)
		return;
	de->blocked = 1;
	de->blocked_next = NULL;
	if (d->blocked_tail)
		d->blocked_tail->blocked_next = de;
	else
		d->blocked_head = de;
	d->blocked_tail = de;
}

/* How long a failed attempt's endpoint asked to be left alone, in seconds: a Retry-After
 * on 429 or 503, or a plugin's retry_after_ms rounded up to whole seconds; -1 when it did
 * not ask. The delivery's retry (dispatch_failed) and the endpoint's pause (its flow) both
 * honour it, capped by delivery.retry_after_cap_s. */
static int64_t dispatch_asked_wait_s(const struct transport_result *res)
{
	if (res->verdict == TRANSPORT_BY_STATUS)
		return (res->status == 429 || res->status == 503) ? res->retry_after_s : -1;
	return res->retry_after_ms >= 0 ? (res->retry_after_ms + 999) / 1000 : -1;
}

/* An attempt of dv ended (its new state set): the breaker, the rates and the status feed
 * learn of it; transitions are logged. */
static void dispatch_flow_outcome(struct dispatch *d, struct delivery *dv,
				  const struct transport_result *res, int64_t now)
{
	struct endpoint *ep = dv->ep;
	struct dispatch_ep *de = ep->sched;
	struct flow_limits l;
	bool ok = dv->state == DLV_SUCCEEDED;
	int status = res->verdict == TRANSPORT_BY_STATUS ? res->status : 0;
	int64_t pause = ok ? -1 : dispatch_asked_wait_s(res);
	int probe = dv->probe;
	enum flow_event ev;

	dv->probe = 0;
	if (pause >= 0) /* the whole endpoint pauses as long as that delivery's retry waits */
		pause = (pause < d->cfg->retry_after_cap_s ? pause : d->cfg->retry_after_cap_s) * 1000;
	dispatch_limits(d, ep, &l);
	ev = flow_outcome(&de->flow, &l, ok, status, pause, probe, now);
	dispatch_track_failing(d, ep, de, flow_is_failure(ok, status), now);
	epstats_add(&de->stats, ok, status, ok ? NULL : delivery_error(dv), res->duration_ms, now);
	switch (ev) {
	case FLOW_OPENED: {
		char iso[CLOCK_ISO_LEN];
		clock_iso8601(de->flow.probe_at_ms, iso);
		dispatch_event(d, "endpoint.breaker_opened", ep,
			       json_pack("{s:I, s:s, s:s}", "failures_in_a_row",
					 (json_int_t)de->flow.consecutive, "last_error",
					 delivery_error(dv), "next_probe_at", iso));
		log_warn("endpoint %s/%s: circuit breaker opened after %u failed attempts in a row "
			 "(last: %s); its due deliveries wait without spending attempts; one probe "
			 "in %lld s",
			 ep->app_id, ep->id, de->flow.consecutive, delivery_error(dv),
			 (long long)((de->flow.probe_at_ms - now + 999) / 1000));
		break;
	}
	case FLOW_REOPENED:
		log_warn("endpoint %s/%s: circuit breaker probe failed (%s); open again, next probe "
			 "in %lld s",
			 ep->app_id, ep->id, delivery_error(dv),
			 (long long)((de->flow.probe_at_ms - now + 999) / 1000));
		break;
	case FLOW_CLOSED_AGAIN:
		log_info("endpoint %s/%s: circuit breaker probe succeeded; closed; waiting deliveries "
			 "go out at a rate rising from %.0f/s",
			 ep->app_id, ep->id, FLOW_RAMP_START_RATE);
		dispatch_event(d, "endpoint.breaker_closed", ep, json_object());
		break;
	case FLOW_THROTTLED:
		log_info("endpoint %s/%s answered %d: sending at most %.2f attempts/s until it "
			 "stops asking for less",
			 ep->app_id, ep->id, status, flow_rate(&de->flow, &l, now));
		break;
	case FLOW_NONE:
		break;
	}
}

static void dispatch_forget(struct dispatch *d, struct delivery *dv)
{
	struct endpoint *ep = dv->ep;
	endpoint_ref(ep);
	dispatch_live_del(d, dv);
	delivery_free(dv);
	dispatch_ep_settle(d, ep);
	endpoint_unref(ep);
}

static void wait_push(struct dispatch_ep *de, struct delivery *dv)
{
	dv->wait_next = NULL;
	dv->waiting = 1;
	if (de->wait_tail)
		de->wait_tail->wait_next = dv;
	else
		de->wait_head = dv;
	de->wait_tail = dv;
}

static struct delivery *wait_pop(struct dispatch_ep *de)
{
	struct delivery *dv = de->wait_head;
	if (!dv)
		return NULL;
	de->wait_head = dv->wait_next;
	if (!de->wait_head)
		de->wait_tail = NULL;
	dv->wait_next = NULL;
	dv->waiting = 0;
	return dv;
}

/* Stores text (ep's new JSON from the registry, freed here) for a change the scheduler made;
 * what says what, for the log when it cannot. A state change like an outcome: kept until it
 * fits if the store is full. */
static void dispatch_store_endpoint(struct dispatch *d, struct endpoint *ep, char *text,
				    const char *what)
{
	struct store_batch *b = NULL;
	int rc = HOOKD_ENOMEM;
	if (!text || !(b = store_batch_new()) ||
	    (rc = store_batch_put_endpoint(b, ep->app_id, ep->id, text)) != HOOKD_OK) {
		log_error("dispatch: cannot record %s for %s/%s: %s", what, ep->app_id, ep->id,
			  hookd_strerror(rc));
		store_batch_free(b);
	} else {
		store_batch_submit(d->store, b, STORE_OP_KEEP, NULL, NULL);
	}
	free(text);
}

static void dispatch_event(struct dispatch *d, const char *type, const struct endpoint *ep,
			   json_t *data)
{
	if (d->event_fn)
		d->event_fn(d->event_arg, type, ep, data);
	else
		json_decref(data);
}

void dispatch_set_events(struct dispatch *d, dispatch_event_fn fn, void *arg)
{
	d->event_fn = fn;
	d->event_arg = arg;
}

static void dispatch_disable_endpoint(struct dispatch *d, struct endpoint *ep, const char *why)
{
	dispatch_store_endpoint(d, ep, registry_endpoint_set_disabled(d->reg, ep, true, why),
				"that it is disabled");
	log_warn("endpoint %s/%s disabled: %s", ep->app_id, ep->id, why);
	dispatch_event(d, "endpoint.disabled", ep, json_pack("{s:s}", "reason", why));
}

/* Auto-disable: an endpoint whose attempts fail without a success for its
 * auto_disable_seconds (delivery.auto_disable_seconds) is disabled with the reason, and its
 * deliveries are held, not dropped. The start of the run is stored once it has lasted
 * DISPATCH_FAILING_STORE_MS (or a quarter of the limit, when shorter), so the time counts
 * across restarts without a write per failure; a success clears it. failed is the
 * breaker's notion (flow_is_failure): a 400 refusing one message is the endpoint up. */
#define DISPATCH_FAILING_STORE_MS 60000

static void dispatch_track_failing(struct dispatch *d, struct endpoint *ep,
				   struct dispatch_ep *de, bool failed, int64_t now)
{
	int64_t limit_ms = (ep->flow.auto_disable_s >= 0 ? ep->flow.auto_disable_s
							 : (int64_t)d->cfg->auto_disable_s) *
			   1000;
	int64_t store_after = limit_ms / 4 < DISPATCH_FAILING_STORE_MS ? limit_ms / 4
								       : DISPATCH_FAILING_STORE_MS;
	char why[DELIVERY_ERROR_MAX], iso[CLOCK_ISO_LEN];

	if (!failed) {
		de->fail_start_ms = 0;
		if (ep->failing_since_ms)
			dispatch_store_endpoint(d, ep,
						registry_endpoint_set_failing_since(d->reg, ep, 0),
						"that it recovered");
		return;
	}
	if (!de->fail_start_ms)
		de->fail_start_ms = ep->failing_since_ms ? ep->failing_since_ms : now;
	if (!limit_ms || ep->disabled || ep->deleted)
		return;
	if (!ep->failing_since_ms && now - de->fail_start_ms >= store_after)
		dispatch_store_endpoint(
			d, ep, registry_endpoint_set_failing_since(d->reg, ep, de->fail_start_ms),
			"when it began failing");
	if (now - de->fail_start_ms < limit_ms)
		return;
	clock_iso8601(de->fail_start_ms, iso);
	snprintf(why, sizeof(why),
		 "failing without a success since %s (%lld s; auto_disable_seconds is %lld)",
		 iso, (long long)((now - de->fail_start_ms) / 1000), (long long)(limit_ms / 1000));
	dispatch_disable_endpoint(d, ep, why);
	de->fail_start_ms = 0;
}

/* After a failed attempt: dead (410 Gone, which also disables the endpoint, or the retry
 * schedule exhausted), or pending again after the schedule's next delay, stretched to a
 * Retry-After on 429 and 503. */
static void dispatch_failed(struct dispatch *d, struct delivery *dv,
			    const struct transport_result *res, int64_t now)
{
	struct endpoint *ep = dv->ep;
	int http = res->verdict == TRANSPORT_BY_STATUS;

	if (http && res->status)
		delivery_set_error(dv, "HTTP %d", res->status);
	else
		delivery_set_error(dv, "%s", res->error);
	d->stats.failed++;
	dv->cycle_failures++;
	if (res->verdict == TRANSPORT_PERMANENT) {
		/* The transport knows no retry can succeed (a plugin's HOOKD_FAILED): dead now,
		 * with its reason, and redrivable like any dead delivery. */
		dv->state = DLV_DEAD;
	} else if (http && res->status == 410) {
		char why[128], iso[CLOCK_ISO_LEN];
		clock_iso8601(now, iso);
		snprintf(why, sizeof(why), "endpoint answered 410 Gone at %s", iso);
		if (!ep->disabled)
			dispatch_disable_endpoint(d, ep, why);
		dv->state = DLV_DEAD;
		delivery_set_error(dv, "HTTP 410 Gone: endpoint disabled");
	} else {
		const uint32_t *sched = ep->schedule ? ep->schedule : d->cfg->retry_schedule;
		size_t n = ep->schedule ? ep->n_schedule : d->cfg->n_retry_schedule;
		int64_t delay = retry_delay_ms(sched, n, dv->cycle_failures);
		if (delay == RETRY_EXHAUSTED) {
			char last[DELIVERY_ERROR_MAX];
			snprintf(last, sizeof(last), "%s", delivery_error(dv));
			dv->state = DLV_DEAD;
			delivery_set_error(dv, "retry schedule exhausted after %u attempts; last: %.400s",
				 dv->cycle_failures, last);
		} else {
			delay = retry_with_retry_after(delay, dispatch_asked_wait_s(res),
						       d->cfg->retry_after_cap_s);
			dv->state = DLV_PENDING;
			dv->next_at_ms = now + delay;
		}
	}
	if (dv->state == DLV_DEAD) {
		d->stats.dead++;
		dispatch_event(d, "message.dead", ep,
			       json_pack("{s:s, s:s, s:I, s:s}", "message_id", dv->msg_id,
					 "delivery_id", dv->id, "attempts", (json_int_t)dv->attempts,
					 "last_error", delivery_error(dv)));
	}
}

static void dispatch_done(void *arg, const struct transport_result *res)
{
	struct delivery *dv = arg;
	struct endpoint *ep = dv->ep;
	struct dispatch *d = dv->dispatch;
	int64_t now = clock_now_ms();

	endpoint_ref(ep); /* dv may be freed below; ep must outlive this function */
	ep->sched->inflight--;
	d->inflight--;
	d->stats.attempts++;
	dv->last_status = res->status;
	if (res->verdict == TRANSPORT_SENT ||
	    (res->verdict == TRANSPORT_BY_STATUS && res->status >= 200 && res->status < 300)) {
		dv->state = DLV_SUCCEEDED;
		delivery_clear_error(dv);
		d->stats.succeeded++;
	} else {
		dispatch_failed(d, dv, res, now);
	}
	dispatch_flow_outcome(d, dv, res, now);
	if (dv->state == DLV_PENDING && ep->deleted) {
		/* Its endpoint was deleted while this attempt was out: nothing to retry to. */
		dv->state = DLV_DEAD;
		delivery_set_error(dv, "endpoint deleted");
	}
	if (dv->state == DLV_PENDING &&
	    (dv->next_at_ms > now + DISPATCH_HORIZON_MS || ep->sched->live_n > dispatch_window(d, ep->sched) ||
	     ep->sched->stored_at <= dv->next_at_ms)) {
		/* Its retry leaves the window (due beyond the horizon, the window over, or the
		 * store has ones due sooner): the store's due index has it once this commits
		 * (dispatch_live_del notes it), and it is read back in its turn. */
		dispatch_record_attempt(d, dv, res, now, 1);
	} else if (dv->state == DLV_PENDING) {
		dispatch_record_attempt(d, dv, res, now, 0);
		heap_push(d, dv);
	} else {
		dispatch_record_attempt(d, dv, res, now, 1);
	}

	/* Capacity freed: this endpoint's waiters first (its FIFO order), then endpoints the
	 * global cap held back, then the heap. */
	dispatch_release(d, ep);
	dispatch_unblock(d);
	dispatch_pump(d);
	dispatch_ep_settle(d, ep); /* the last attempt out for a deleted endpoint */
	endpoint_unref(ep);
}

static void dispatch_start(struct dispatch *d, struct delivery *dv)
{
	struct endpoint *ep = dv->ep;
	const struct endpoint_secret *secs[ENDPOINT_MAX_SECRETS];
	int64_t now_ms = clock_now_ms(), ts = now_ms / 1000;
	size_t n_sec = endpoint_active_secrets(ep, now_ms, secs, ENDPOINT_MAX_SECRETS);
	char id_line[DELIVERY_ID_MAX + 16], ts_line[48];
	char sig_line[32 + ENDPOINT_MAX_SECRETS * SIGN_TEXT_MAX];
	/* Its own four, then the endpoint's, then the policy's: each bounded by its schema. */
	const char *lines[4 + ENDPOINT_MAX_HEADERS + POLICY_HEADERS_MAX];
	size_t n_lines = 0, off;
	struct transport_request req;
	struct transport_result fail;
	char scheme[URL_SCHEME_MAX + 1];

	snprintf(id_line, sizeof(id_line), "webhook-id: %s", dv->msg_id);
	snprintf(ts_line, sizeof(ts_line), "webhook-timestamp: %lld", (long long)ts);
	off = (size_t)snprintf(sig_line, sizeof(sig_line), "webhook-signature:");
	for (size_t i = 0; i < n_sec; i++) {
		sig_line[off++] = ' ';
		if (sign_compute(&secs[i]->key, dv->msg_id, ts, dv->body->data, dv->body->len,
				 sig_line + off, sizeof(sig_line) - off) == HOOKD_OK)
			off += strlen(sig_line + off);
		else
			off--;
	}
	sig_line[off] = 0;
	lines[n_lines++] = "Content-Type: application/json";
	lines[n_lines++] = id_line;
	lines[n_lines++] = ts_line;
	lines[n_lines++] = sig_line;
	for (size_t i = 0; i < ep->n_headers && i < ENDPOINT_MAX_HEADERS; i++)
		lines[n_lines++] = ep->header_lines[i];
	for (size_t i = 0; i < dv->n_extra && i < POLICY_HEADERS_MAX; i++)
		lines[n_lines++] = dv->extra_lines[i];

	memset(&req, 0, sizeof(req));
	req.url = ep->url;
	req.headers = lines;
	req.n_headers = n_lines;
	req.body = dv->body->data;
	req.body_len = dv->body->len;
	req.tls_cert_pem = ep->tls_cert_pem;
	req.tls_key_pem = ep->tls_key_pem;
	req.tls_ca_pem = ep->tls_ca_pem;
	req.tls_pin = ep->tls_pin;
	req.proxy = ep->proxy ? ep->proxy : d->cfg->proxy;
	req.connect_timeout_ms = d->cfg->connect_timeout_ms;
	req.timeout_ms = d->cfg->timeout_ms;
	req.done = dispatch_done;
	req.arg = dv;
	req.app_id = dv->app_id;
	req.endpoint_id = ep->id;
	req.message_id = dv->msg_id;
	req.delivery_id = dv->id;
	req.attempt = dv->attempts + 1;
	if (url_plugin_scheme(ep->url, scheme))
		req.event_type = body_event_type(dv->body); /* a plugin transport's */

	dv->state = DLV_INFLIGHT;
	dv->attempts++;
	dv->dispatch = d;
	ep->sched->inflight++;
	d->inflight++;
	if ((ep->auth ? auth_send(d->auth, d->transport, ep, &req)
		      : d->transport->send(d->transport, &req)) != HOOKD_OK) {
		memset(&fail, 0, sizeof(fail));
		fail.retry_after_s = -1;
		fail.retry_after_ms = -1;
		snprintf(fail.error, sizeof(fail.error), "could not start the request");
		dispatch_done(dv, &fail);
	}
}

/* Routes a due delivery: start it, or park it in its endpoint's FIFO. */
/* Records dv as dead because its endpoint is gone (no attempt), then forgets it. */
/* Writes dv's current state (no attempt); with forget it is dropped from memory once that
 * is committed. KEEP: like an outcome, it waits for space rather than failing when the
 * store is full (it may also be the write that removes a fan-out marker). */
static int dispatch_write_state(struct dispatch *d, struct delivery *dv, int forget)
{
	struct store_batch *b = store_batch_new();
	int rc = b ? dispatch_persist(b, dv, clock_now_ms()) : HOOKD_ENOMEM;
	if (rc != HOOKD_OK) {
		store_batch_free(b);
		return rc;
	}
	dv->dispatch = d; /* dispatch_recorded finds its dispatcher there */
	store_batch_submit(d->store, b, STORE_OP_KEEP, forget ? dispatch_recorded : NULL, dv);
	return HOOKD_OK;
}

static void dispatch_bury(struct dispatch *d, struct delivery *dv)
{
	dv->state = DLV_DEAD;
	delivery_set_error(dv, "endpoint deleted");
	if (dispatch_write_state(d, dv, 1) != HOOKD_OK)
		dispatch_forget(d, dv);
}

/* A held delivery (its endpoint is disabled) that was never stored, a policy delivery
 * scheduled before its first write (dispatch_add_unstored), is stored now: it may wait for
 * days, and until it is stored only its message's fan-out marker stands for it, so a restart
 * would re-run the policy for it, or lose it if the endpoint no longer has that policy or
 * subscription. No attempt is recorded: holding costs none. */
static void dispatch_store_held(struct dispatch *d, struct delivery *dv)
{
	if (dispatch_write_state(d, dv, 0) == HOOKD_OK)
		return;
	log_error("dispatch: cannot store held delivery %s now (its fan-out marker keeps it)",
		  dv->id);
}

static void dispatch_route(struct dispatch *d, struct delivery *dv)
{
	struct endpoint *ep = dv->ep;
	struct dispatch_ep *de;
	struct flow_limits l;
	int64_t at;
	if (ep->deleted) {
		dispatch_bury(d, dv);
		return;
	}
	de = ep->sched; /* made when dv was scheduled; freed only once ep is deleted */
	if (ep->disabled || de->wait_head) {
		/* Held (disabled), or behind others that wait: due, in its endpoint's FIFO, no
		 * attempt made and its retry schedule untouched until the endpoint takes it. */
		if (ep->disabled && dv->unstored)
			dispatch_store_held(d, dv);
		wait_push(de, dv);
		return;
	}
	dispatch_limits(d, ep, &l);
	if ((at = flow_admit(&de->flow, &l, de->inflight, clock_now_ms())) != 0) {
		/* Over its in-flight cap, its rate, paused, or its breaker open: it waits the
		 * same way. An open breaker may hold it for minutes: a policy delivery is then
		 * stored, as a held one is. */
		if (de->flow.breaker == FLOW_OPEN && dv->unstored)
			dispatch_store_held(d, dv);
		wait_push(de, dv);
		dispatch_flow_wait(d, de, at);
		return;
	}
	dv->probe = de->flow.breaker == FLOW_HALF_OPEN;
	dispatch_start(d, dv);
}

static void dispatch_pump(struct dispatch *d)
{
	int64_t now = clock_now_ms();
	int n = 0;
	while (d->heap_n && d->heap[0]->next_at_ms <= now && d->inflight < d->cfg->max_inflight &&
	       n++ < DISPATCH_TICK_MAX)
		dispatch_route(d, heap_pop(d));
	if (d->heap_n && d->heap[0]->next_at_ms <= now && d->inflight < d->cfg->max_inflight) {
		struct timeval zero = {0, 0};
		evtimer_add(d->timer, &zero); /* more due: continue after other events */
		return;
	}
	dispatch_arm(d);
}

static void dispatch_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	dispatch_pump(arg);
}

/* A policy delivery never stored that does not fit its endpoint's window: stored now and
 * dropped from memory once that is committed (the due index then has it). */
static void dispatch_store_unstored(struct dispatch *d, struct delivery *dv)
{
	if (dispatch_live_put(d, dv) == HOOKD_OK && dispatch_write_state(d, dv, 1) == HOOKD_OK)
		return;
	log_error("dispatch: cannot store policy delivery %s now (its fan-out marker keeps it "
		  "for the next start)", dv->id);
	dispatch_forget(d, dv);
}

void dispatch_add(struct dispatch *d, struct delivery *dv)
{
	struct dispatch_ep *de;
	if (dv->state != DLV_PENDING) {
		delivery_free(dv);
		return;
	}
	if (dv->ep->deleted) {
		/* Stored as pending just as its endpoint went (a policy fan-out finishing after
		 * a delete): settle it instead of leaving it pending forever. */
		dispatch_bury(d, dv);
		return;
	}
	if (!(de = dispatch_ep_get(d, dv->ep))) {
		log_error("dispatch: out of memory scheduling %s (it stays stored)", dv->id);
		delivery_free(dv);
		return;
	}
	if (strmap_get(&d->live, dv->id)) {
		/* A read of the window saw its commit first and has it already. */
		delivery_free(dv);
		return;
	}
	if (de->live_n >= dispatch_window(d, de) || de->stored_at <= dv->next_at_ms ||
	    dv->next_at_ms > clock_now_ms() + DISPATCH_HORIZON_MS) {
		/* The window is full, the store holds ones due sooner, or it is not due soon: it
		 * waits there. */
		dispatch_stored(de, dv->next_at_ms);
		if (dv->unstored)
			dispatch_store_unstored(d, dv);
		else
			delivery_free(dv);
		dispatch_want(d, de);
		return;
	}
	if (dispatch_live_put(d, dv) != HOOKD_OK || heap_push(d, dv) != HOOKD_OK) {
		log_error("dispatch: out of memory scheduling %s (it stays stored)", dv->id);
		dispatch_live_del(d, dv);
		delivery_free(dv);
		return;
	}
	/* A policy delivery for a disabled endpoint: stored now, in the order of the writes
	 * that follow (dispatch_route would store it only when it leaves the heap). */
	if (dv->unstored && dv->ep->disabled)
		dispatch_store_held(d, dv);
	if (dv->heap_idx == 0)
		dispatch_pump(d);
}

struct delivery *dispatch_live(struct dispatch *d, const char *dlv_id)
{
	return strmap_get(&d->live, dlv_id);
}

static void dispatch_finished_stored(struct store_batch *b)
{
	struct delivery **fin = store_batch_arg(b);
	for (size_t i = 0; fin[i]; i++)
		delivery_free(fin[i]);
	free(fin);
}

void dispatch_add_unstored(struct dispatch *d, const char *app_id, const char *msg_id,
			   struct delivery **dvs, size_t n, dispatch_last_write_fn last)
{
	struct unstored_set *set = calloc(1, sizeof(*set) + n * DELIVERY_ID_MAX);
	struct delivery **fin = NULL;
	struct store_batch *b = NULL;
	size_t n_fin = 0, i;
	int64_t now = clock_now_ms();

	for (i = 0; i < n && dvs[i]->state == DLV_PENDING; i++)
		;
	if (i < n)
		fin = calloc(n + 1, sizeof(*fin));
	if (!set || (i < n && !fin) || strlen(app_id) >= sizeof(set->app_id)) {
		log_error("dispatch: out of memory scheduling the policy deliveries of %s; the next "
			  "start redoes them", msg_id);
		for (i = 0; i < n; i++)
			delivery_free(dvs[i]);
		free(set);
		free(fin);
		return;
	}
	set->d = d;
	set->last = last;
	set->left = n;
	set->refs = 1;
	snprintf(set->app_id, sizeof(set->app_id), "%s", app_id);
	snprintf(set->msg_id, sizeof(set->msg_id), "%s", msg_id);
	for (i = 0; i < n; i++) {
		memcpy(set->ids[set->n++], dvs[i]->id, DELIVERY_ID_MAX);
		dvs[i]->unstored = set;
		set->refs++;
	}
	if (!strmap_get(&d->unstored, set->msg_id) &&
	    strmap_put(&d->unstored, set->msg_id, set) == HOOKD_OK)
		set->indexed = 1;

	/* Finished already (filtered, policy error): stored now, in one batch. */
	for (i = 0; i < n; i++) {
		if (dvs[i]->state == DLV_PENDING)
			continue;
		if ((!b && !(b = store_batch_new())) ||
		    dispatch_persist(b, dvs[i], now) != HOOKD_OK) {
			log_error("dispatch: cannot record the policy outcome of %s; the next start "
				  "redoes it", dvs[i]->id);
			set->left = SIZE_MAX / 2; /* the marker must stay: never reaches 0 now */
			delivery_free(dvs[i]);
			continue;
		}
		fin[n_fin++] = dvs[i];
	}
	if (b && n_fin) {
		store_batch_submit(d->store, b, STORE_OP_KEEP, dispatch_finished_stored, fin);
		fin = NULL;
	} else {
		store_batch_free(b);
	}
	free(fin);
	/* Pending ones go out now; dispatch_record_attempt stores each with its outcome. */
	for (i = 0; i < n; i++)
		if (dvs[i]->state == DLV_PENDING)
			dispatch_add(d, dvs[i]);
	unstored_unref(set);
}

const char (*dispatch_unstored(struct dispatch *d, const char *msg_id,
			       size_t *n_out))[DELIVERY_ID_MAX]
{
	struct unstored_set *set = strmap_get(&d->unstored, msg_id);
	*n_out = set ? set->n : 0;
	return set ? (const char (*)[DELIVERY_ID_MAX])set->ids : NULL;
}

static void heap_remove(struct dispatch *d, struct delivery *dv)
{
	size_t i = dv->heap_idx;
	d->heap_n--;
	if (i != d->heap_n) {
		d->heap[i] = d->heap[d->heap_n];
		d->heap[i]->heap_idx = i;
		heap_down(d, i);
		heap_up(d, i);
	}
	dv->heap_idx = SIZE_MAX;
}

struct dispatch_collect {
	struct endpoint *ep;
	struct delivery **dvs;
	size_t n, cap;
};

static void dispatch_collect_ep(const char *key, void *value, void *arg)
{
	struct dispatch_collect *c = arg;
	struct delivery *dv = value;
	if (dv->ep != c->ep || dv->state != DLV_PENDING || dv->waiting)
		return;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct delivery **n = realloc(c->dvs, cap * sizeof(*n));
		if (!n)
			return;
		c->dvs = n;
		c->cap = cap;
	}
	c->dvs[c->n++] = dv;
}

void dispatch_endpoint_deleted(struct dispatch *d, struct endpoint *ep)
{
	struct dispatch_collect c = {ep, NULL, 0, 0};
	struct delivery *dv;
	endpoint_ref(ep);
	/* Waiting ones (disabled endpoint, or over its in-flight cap) ... */
	while (ep->sched && (dv = wait_pop(ep->sched)))
		dispatch_bury(d, dv);
	/* ... and scheduled ones: a scan, but deleting an endpoint is rare. In-flight ones are
	 * buried when their attempt completes. */
	strmap_each(&d->live, dispatch_collect_ep, &c);
	for (size_t i = 0; i < c.n; i++) {
		if (c.dvs[i]->heap_idx != SIZE_MAX)
			heap_remove(d, c.dvs[i]);
		dispatch_bury(d, c.dvs[i]);
	}
	free(c.dvs);
	dispatch_arm(d);
	/* ... and what waits only in the store, read back and buried a window at a time. */
	if (ep->sched)
		dispatch_want(d, ep->sched);
	dispatch_ep_settle(d, ep); /* unless attempts are still out: then the last one's done */
	endpoint_unref(ep);
}

/* Starts ep's waiting deliveries, oldest first, as far as its flow (flow.h) and the global
 * cap allow; then waits for the flow's time, a completion, or a global slot. */
static void dispatch_release(struct dispatch *d, struct endpoint *ep)
{
	struct dispatch_ep *de = ep->sched;
	struct flow_limits l;
	if (!de || !de->wait_head)
		return;
	dispatch_limits(d, ep, &l);
	while (!ep->deleted && !ep->disabled && de->wait_head) {
		struct delivery *dv;
		int64_t at;
		if (d->inflight >= d->cfg->max_inflight) {
			dispatch_block(d, de);
			return;
		}
		if ((at = flow_admit(&de->flow, &l, de->inflight, clock_now_ms())) != 0) {
			dispatch_flow_wait(d, de, at);
			return;
		}
		dv = wait_pop(de);
		dv->probe = de->flow.breaker == FLOW_HALF_OPEN;
		dispatch_start(d, dv);
	}
}

/* Endpoints blocked by the global cap get the slots that freed, in the order they came. */
static void dispatch_unblock(struct dispatch *d)
{
	while (d->blocked_head && d->inflight < d->cfg->max_inflight) {
		struct dispatch_ep *de = d->blocked_head;
		struct endpoint *ep = de->ep;
		d->blocked_head = de->blocked_next;
		if (!d->blocked_head)
			d->blocked_tail = NULL;
		de->blocked = 0;
		endpoint_ref(ep);
		dispatch_release(d, ep);
		dispatch_ep_settle(d, ep);
		endpoint_unref(ep);
	}
}

void dispatch_endpoint_changed(struct dispatch *d, struct endpoint *ep)
{
	struct dispatch_ep *de = ep->sched;
	struct delivery *dv;
	int any = 0;
	if (ep->disabled || ep->deleted || !de)
		return; /* (no runtime: nothing of it was ever scheduled, none held) */
	if (!ep->failing_since_ms)
		de->fail_start_ms = 0; /* enabled again: the run of failures starts over */
	/* Held deliveries go back to the heap, which orders them (due time, then id: publish
	 * order) and shares the global cap with everyone else; what the endpoint's own cap
	 * refuses waits in its FIFO again, behind its in-flight ones, whose completions start
	 * it. (Started straight from the FIFO instead, a release that found every global slot
	 * busy would start nothing, ever: only the endpoint's own completions drain it.) */
	while ((dv = wait_pop(de))) {
		if (heap_push(d, dv) != HOOKD_OK) {
			wait_push(de, dv); /* out of memory: stays held, retried at the next change */
			break;
		}
		any = 1;
	}
	if (any)
		dispatch_pump(d);
}

/* Builds the in-memory delivery of ep for a stored record; the body of a plain delivery is
 * its message's. */
static struct delivery *dispatch_from_record(struct store_read *rd, struct endpoint *ep,
					     const char *id, const struct delivery_rec *r)
{
	struct body *body = NULL;
	struct delivery *dv;
	const char *data;
	size_t len;

	if (r->flags & RECORD_CUSTOM_BODY) {
		if (store_read_body(rd, id, &data, &len) != HOOKD_OK) {
			log_error("dispatch: policy output body of %s is missing", id);
			return NULL;
		}
		body = body_new(data, len);
	} else if (r->body_len) {
		body = body_new(r->body, r->body_len);
	} else {
		if (store_read_message(rd, r->app_id, r->msg_id, &data, &len) != HOOKD_OK) {
			log_error("dispatch: message %s of %s is missing", r->msg_id, id);
			return NULL;
		}
		body = body_new(data, len);
	}
	if (!body)
		return NULL;
	dv = delivery_new(id, r->msg_id, r->app_id, ep, body, r->created_ms);
	body_unref(body);
	if (!dv)
		return NULL;
	dv->custom_body = (r->flags & RECORD_CUSTOM_BODY) || r->body_len > 0;
	dv->body_stored = (r->flags & RECORD_CUSTOM_BODY) != 0;
	dv->state = r->state;
	dv->attempts = r->attempts;
	dv->cycle_failures = r->cycle_failures;
	dv->last_status = r->last_status;
	dv->next_at_ms = r->next_at_ms;
	dv->due_key_ms = r->state == DLV_PENDING ? r->next_at_ms : 0;
	delivery_set_error(dv, "%s", r->last_error);
	if (r->headers[0] && delivery_set_headers(dv, r->headers) != HOOKD_OK) {
		delivery_free(dv);
		return NULL;
	}
	return dv;
}

/* ---- reading windows back from the store's due index ---- */

/* One read of an endpoint's window. */
struct dispatch_reading {
	struct dispatch *d;
	struct dispatch_ep *de;
	struct store_read *rd;
	struct store_batch *stale; /* index entries to drop */
	int64_t horizon;           /* entries due later stay in the store */
	int64_t next_at;           /* where the read stopped: the first entry left, or NONE */
	int rc;
};

static int dispatch_read_one(void *arg, int64_t at_ms, const char *id)
{
	struct dispatch_reading *l = arg;
	struct dispatch *d = l->d;
	struct endpoint *ep = l->de->ep;
	struct delivery_rec r;
	struct delivery *dv = NULL;
	int rc;
	if (l->de->live_n >= dispatch_window(d, l->de) || at_ms > l->horizon) {
		l->next_at = at_ms;
		return STORE_WALK_STOP;
	}
	if (strlen(id) >= DELIVERY_ID_MAX || strmap_get(&d->live, id))
		return 0; /* in memory already (its latest state may still be on its way) */
	rc = store_read_delivery(l->rd, id, &r);
	if (rc == HOOKD_ESTORE || rc == HOOKD_EFULL)
		return rc;
	if (rc == HOOKD_OK && r.state == DLV_PENDING && r.next_at_ms == at_ms &&
	    strcmp(r.app_id, ep->app_id) == 0 && strcmp(r.ep_id, ep->id) == 0)
		dv = dispatch_from_record(l->rd, ep, id, &r);
	if (!dv) {
		/* Record superseded, settled or unreadable: the index entry goes. */
		if ((rc = store_batch_del_due(l->stale, ep->app_id, ep->id, at_ms, id)) != HOOKD_OK)
			l->rc = rc;
		return 0;
	}
	if (dispatch_live_put(d, dv) != HOOKD_OK) {
		delivery_free(dv);
		l->next_at = at_ms; /* out of memory: the rest stays stored, read again later */
		return STORE_WALK_STOP;
	}
	if (ep->deleted) {
		dispatch_bury(d, dv); /* what a deleted endpoint left in the store */
		return 0;
	}
	if (heap_push(d, dv) != HOOKD_OK) {
		dispatch_live_del(d, dv);
		delivery_free(dv);
		l->next_at = at_ms;
		return STORE_WALK_STOP;
	}
	return 0;
}

/* Reads de's window back from the due index, soonest due first, skipping what is in memory,
 * until the window is full or the next entry is due beyond the horizon (a deleted
 * endpoint's: all of them, to be buried); stored_at is then that entry's time, or
 * DISPATCH_NONE when the index ended. */
static void dispatch_read_window(struct dispatch *d, struct dispatch_ep *de)
{
	struct dispatch_reading l = {.d = d, .de = de, .stale = store_batch_new()};
	struct endpoint *ep = de->ep;
	int rc;

	if (!l.stale || store_read_begin(d->store, &l.rd) != HOOKD_OK) {
		store_batch_free(l.stale);
		log_error("dispatch: cannot read the due index of %s/%s now; it is read again when "
			  "one of its deliveries settles", ep->app_id, ep->id);
		return;
	}
	l.horizon = ep->deleted ? DISPATCH_NONE : clock_now_ms() + DISPATCH_HORIZON_MS;
	l.next_at = DISPATCH_NONE;
	rc = store_read_due(l.rd, ep->app_id, ep->id, dispatch_read_one, &l);
	store_read_end(l.rd);
	if (rc != HOOKD_OK)
		log_error("dispatch: reading the due index of %s/%s: %s", ep->app_id, ep->id,
			  hookd_strerror(rc));
	else
		de->stored_at = l.next_at; /* (evictions still on their way note theirs later) */
	if (l.rc != HOOKD_OK)
		log_error("dispatch: cannot drop every stale due-index entry of %s/%s: %s",
			  ep->app_id, ep->id, hookd_strerror(l.rc));
	if (store_batch_count(l.stale))
		store_batch_submit(d->store, l.stale, STORE_OP_KEEP, NULL, NULL);
	else
		store_batch_free(l.stale);
}

static void dispatch_refill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dispatch *d = arg;
	struct dispatch_ep *de;
	(void)fd;
	(void)what;
	while ((de = d->refill_head)) {
		struct endpoint *ep = de->ep;
		d->refill_head = de->refill_next;
		if (!d->refill_head)
			d->refill_tail = NULL;
		de->refill_queued = 0;
		endpoint_ref(ep);
		if (de->stored_at != DISPATCH_NONE)
			dispatch_read_window(d, de);
		dispatch_want(d, de); /* the next read, when the first one left is due later */
		dispatch_ep_settle(d, ep); /* a deleted endpoint with nothing left */
		endpoint_unref(ep);
	}
	dispatch_pump(d);
}

/* dispatch_load's walk of the endpoints that have due entries. */
struct dispatch_loading {
	struct dispatch *d;
	size_t n_eps;                  /* known ones, queued for their first read */
	char **orphans;                /* app, endpoint pairs no longer registered (owned) */
	size_t n_orphans, cap_orphans;
	int rc;
};

static int dispatch_load_endpoint(void *arg, const char *app_id, const char *ep_id)
{
	struct dispatch_loading *l = arg;
	struct endpoint *ep = registry_endpoint(l->d->reg, app_id, ep_id);
	if (ep) {
		/* Its window is read once the loop runs: a backlog of any size costs a seek per
		 * endpoint here, not a walk of the backlog. */
		struct dispatch_ep *de = dispatch_ep_get(l->d, ep);
		if (!de)
			return HOOKD_ENOMEM;
		de->stored_at = INT64_MIN; /* unknown until the first read */
		dispatch_want(l->d, de);
		l->n_eps++;
		return 0;
	}
	if (l->n_orphans == l->cap_orphans) {
		size_t cap = l->cap_orphans ? l->cap_orphans * 2 : 8;
		char **n = realloc(l->orphans, 2 * cap * sizeof(*n));
		if (!n)
			return HOOKD_ENOMEM;
		l->orphans = n;
		l->cap_orphans = cap;
	}
	l->orphans[2 * l->n_orphans] = strdup(app_id);
	l->orphans[2 * l->n_orphans + 1] = strdup(ep_id);
	l->n_orphans++;
	return 0;
}

/* Drops the due entries of an endpoint that is not registered any more (deleted while its
 * deliveries were being buried, then a crash): nothing can be sent there. */
#define DISPATCH_ORPHAN_CHUNK 10000

struct dispatch_orphan {
	const char *app_id, *ep_id;
	struct store_batch *b;
	int rc;
};

static int dispatch_orphan_one(void *arg, int64_t at_ms, const char *id)
{
	struct dispatch_orphan *o = arg;
	if (store_batch_count(o->b) >= DISPATCH_ORPHAN_CHUNK)
		return STORE_WALK_STOP;
	if ((o->rc = store_batch_del_due(o->b, o->app_id, o->ep_id, at_ms, id)) != HOOKD_OK)
		return o->rc;
	return 0;
}

static int dispatch_drop_orphan(struct dispatch *d, const char *app_id, const char *ep_id)
{
	size_t dropped = 0;
	for (;;) {
		struct dispatch_orphan o = {app_id, ep_id, store_batch_new(), HOOKD_OK};
		struct store_read *rd;
		size_t n;
		int rc;
		if (!o.b || (rc = store_read_begin(d->store, &rd)) != HOOKD_OK) {
			store_batch_free(o.b);
			return HOOKD_ESTORE;
		}
		rc = store_read_due(rd, app_id, ep_id, dispatch_orphan_one, &o);
		store_read_end(rd);
		n = store_batch_count(o.b);
		if (rc == HOOKD_OK && n)
			rc = store_batch_write_now(d->store, o.b, 0);
		store_batch_free(o.b);
		if (rc != HOOKD_OK)
			return rc;
		dropped += n;
		if (n < DISPATCH_ORPHAN_CHUNK)
			break;
	}
	log_info("dispatch: dropped %zu due-index entries of %s/%s, which is no longer registered",
		 dropped, app_id, ep_id);
	return HOOKD_OK;
}

int dispatch_load(struct dispatch *d, char *err, size_t errlen)
{
	struct dispatch_loading l = {.d = d};
	struct store_read *rd;
	int rc;

	if (store_read_begin(d->store, &rd) != HOOKD_OK) {
		snprintf(err, errlen, "cannot read the store");
		return HOOKD_ESTORE;
	}
	rc = store_read_due_endpoints(rd, dispatch_load_endpoint, &l);
	store_read_end(rd);
	for (size_t i = 0; i < l.n_orphans; i++) {
		char *app = l.orphans[2 * i], *ep = l.orphans[2 * i + 1];
		if (rc == HOOKD_OK && app && ep && dispatch_drop_orphan(d, app, ep) != HOOKD_OK)
			log_error("dispatch: dropping the due entries of %s/%s failed (they are "
				  "dropped again at the next start)", app, ep);
		free(app);
		free(ep);
	}
	if (rc != HOOKD_OK)
		snprintf(err, errlen, "storage error: reading the due index: %s", hookd_strerror(rc));
	else
		log_info("dispatch: %zu endpoints with pending deliveries", l.n_eps);
	free(l.orphans);
	return rc;
}

struct delivery *dispatch_load_stored(struct dispatch *d, const char *dlv_id)
{
	struct store_read *rd;
	struct delivery_rec r;
	struct delivery *dv = NULL;
	struct endpoint *ep;
	if (dispatch_live(d, dlv_id))
		return NULL;
	if (store_read_begin(d->store, &rd) != HOOKD_OK)
		return NULL;
	if (store_read_delivery(rd, dlv_id, &r) == HOOKD_OK && r.state == DLV_PENDING &&
	    (ep = registry_endpoint(d->reg, r.app_id, r.ep_id)))
		dv = dispatch_from_record(rd, ep, dlv_id, &r);
	store_read_end(rd);
	return dv;
}

void dispatch_endpoint_status(struct dispatch *d, struct endpoint *ep,
			      struct dispatch_ep_status *out)
{
	struct dispatch_ep *de = ep->sched;
	struct flow_limits l;
	struct flow fresh;
	struct epstats_view v;
	const struct flow *f;
	int64_t now = clock_now_ms();

	memset(out, 0, sizeof(*out));
	dispatch_limits(d, ep, &l);
	if (!de)
		flow_init(&fresh); /* nothing of it was scheduled since the start */
	f = de ? &de->flow : &fresh;
	out->breaker = flow_breaker_name(f->breaker);
	out->failures_in_a_row = f->consecutive;
	out->opened_ms = f->opened_ms;
	out->next_probe_ms = f->breaker == FLOW_OPEN ? f->probe_at_ms : 0;
	out->rate = flow_rate(f, &l, now);
	out->throttled = out->rate > 0 && (l.per_second <= 0 || out->rate < l.per_second);
	out->paused_until_ms = f->paused_until_ms > now ? f->paused_until_ms : 0;
	out->per_second = l.per_second;
	out->burst = l.burst;
	out->max_in_flight = l.max_in_flight;
	out->consecutive_failures = l.consecutive_failures;
	out->failure_ratio = l.failure_ratio;
	out->window_s = l.window_s;
	out->cooldown_s = l.cooldown_s;
	out->p50_ms = out->p99_ms = -1;
	out->last_failure_error = "";
	if (!de)
		return;
	out->inflight = de->inflight;
	for (struct delivery *dv = de->wait_head; dv; dv = dv->wait_next)
		out->waiting++;
	epstats_read(&de->stats, now, &v);
	out->succeeded = v.ok;
	out->failed = v.fail;
	out->p50_ms = v.p50_ms;
	out->p99_ms = v.p99_ms;
	out->last_success_ms = de->stats.last_success_ms;
	out->last_failure_ms = de->stats.last_failure_ms;
	out->last_failure_status = de->stats.last_failure_status;
	out->last_failure_error = de->stats.last_failure_error;
}

const char *dispatch_waiting_for(const struct delivery *dv)
{
	const struct dispatch_ep *de;
	struct flow_limits l;
	if (!dv || !dv->waiting || !(de = dv->ep->sched))
		return NULL;
	if (dv->ep->disabled)
		return "endpoint_disabled";
	if (de->flow.breaker != FLOW_CLOSED)
		return "breaker_open";
	if (de->flow.paused_until_ms > clock_now_ms())
		return "retry_after";
	dispatch_limits(de->d, dv->ep, &l);
	if (de->inflight >= l.max_in_flight)
		return "max_in_flight";
	return "rate_limit";
}

void dispatch_get_stats(struct dispatch *d, struct dispatch_stats *out)
{
	*out = d->stats;
	out->inflight = d->inflight;
	out->in_memory = d->live.count;
}

int dispatch_new(struct event_base *base, struct store *store, struct registry *reg,
		 const struct config *cfg, struct transport *transport, struct dispatch **out)
{
	struct dispatch *d = calloc(1, sizeof(*d));
	if (!d)
		return HOOKD_ENOMEM;
	d->base = base;
	d->store = store;
	d->reg = reg;
	d->cfg = cfg;
	d->transport = transport;
	/* Less than twice the per-endpoint cap would leave its slots idle between reads. */
	d->window = cfg->window_per_endpoint;
	if (d->window < 2 * cfg->max_inflight_per_endpoint)
		d->window = 2 * cfg->max_inflight_per_endpoint;
	d->timer = evtimer_new(base, dispatch_timer_cb, d);
	d->refill_ev = evtimer_new(base, dispatch_refill_cb, d);
	if (!d->timer || !d->refill_ev || auth_new(base, &d->auth) != HOOKD_OK) {
		if (d->timer)
			event_free(d->timer);
		if (d->refill_ev)
			event_free(d->refill_ev);
		free(d);
		return HOOKD_ENOMEM;
	}
	*out = d;
	return HOOKD_OK;
}

static void dispatch_free_live(const char *key, void *value, void *arg)
{
	delivery_free(value);
}

static void dispatch_orphan_set(const char *key, void *value, void *arg)
{
	struct unstored_set *set = value;
	set->d = NULL;
	set->indexed = 0;
}

void dispatch_free(struct dispatch *d)
{
	if (!d)
		return;
	/* First: attempts waiting for credentials hold deliveries freed below. */
	auth_free(d->auth);
	strmap_each(&d->live, dispatch_free_live, NULL);
	strmap_free(&d->live);
	while (d->eps)
		dispatch_ep_free(d, d->eps);
	/* Sets still held by deliveries in the writer's queue outlive the index. */
	strmap_each(&d->unstored, dispatch_orphan_set, NULL);
	strmap_free(&d->unstored);
	free(d->heap);
	event_free(d->timer);
	event_free(d->refill_ev);
	free(d);
}
