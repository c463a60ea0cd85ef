/* api_metrics.c - /metrics: Prometheus text exposition of the daemon's counters and gauges. */
#include "api-t.h"

#include "dispatch.h"
#include "plugin.h"
#include "store.h"

#include <event2/buffer.h>
#include <event2/http.h>

/* A plugin's counter (host->counter): its help text was cleaned of newlines when made. */
static void api_metrics_plugin_counter(void *arg, const char *metric, const char *help,
				       uint64_t value)
{
	evbuffer_add_printf(arg, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", metric, help,
			    metric, metric, (unsigned long long)value);
}

struct api_metrics_plugins {
	struct evbuffer *buf;
	int n;
};

/* One gauge per loaded plugin, labelled with its name (names are [a-z0-9_-]: no escaping
 * needed in a label value). */
static void api_metrics_plugin(void *arg, const char *name, const char *version,
			       int64_t alloc_bytes)
{
	struct api_metrics_plugins *m = arg;
	if (m->n++ == 0)
		evbuffer_add_printf(m->buf,
				    "# HELP hookd_plugin_alloc_bytes Memory a plugin holds through "
				    "the host's allocator\n"
				    "# TYPE hookd_plugin_alloc_bytes gauge\n");
	evbuffer_add_printf(m->buf, "hookd_plugin_alloc_bytes{plugin=\"%s\"} %lld\n", name,
			    (long long)alloc_bytes);
}

void api_metrics(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	struct dispatch_stats ds;
	struct store_space sp;
	struct store_stats st;
	struct store_counts sc = {0};
	struct evbuffer *buf = evbuffer_new();
	dispatch_get_stats(a->disp, &ds);
	/* Pending: what the due index holds (a delivery in flight keeps its entry until its
	 * outcome is stored); a policy delivery counts from its first write. */
	store_get_counts(a->store, &sc);
	store_get_space(a->store, &sp);
	store_get_stats(a->store, &st);
	evbuffer_add_printf(buf,
			    "# TYPE hookd_messages_published_total counter\nhookd_messages_published_total %llu\n"
			    "# TYPE hookd_publish_rejected_total counter\nhookd_publish_rejected_total %llu\n"
			    "# TYPE hookd_attempts_total counter\nhookd_attempts_total %llu\n"
			    "# TYPE hookd_deliveries_succeeded_total counter\nhookd_deliveries_succeeded_total %llu\n"
			    "# TYPE hookd_attempts_failed_total counter\nhookd_attempts_failed_total %llu\n"
			    "# TYPE hookd_deliveries_dead_total counter\nhookd_deliveries_dead_total %llu\n"
			    "# TYPE hookd_deliveries_filtered_total counter\nhookd_deliveries_filtered_total %llu\n"
			    "# TYPE hookd_policy_errors_total counter\nhookd_policy_errors_total %llu\n"
			    "# TYPE hookd_inflight gauge\nhookd_inflight %u\n"
			    "# HELP hookd_pending Pending deliveries (in the store's due index)\n"
			    "# TYPE hookd_pending gauge\nhookd_pending %llu\n"
			    "# HELP hookd_scheduled Deliveries the scheduler holds in memory\n"
			    "# TYPE hookd_scheduled gauge\nhookd_scheduled %zu\n"
			    "# TYPE hookd_store_commits_total counter\nhookd_store_commits_total %llu\n"
			    "# TYPE hookd_store_ops_total counter\nhookd_store_ops_total %llu\n"
			    "# TYPE hookd_store_commit_seconds_total counter\nhookd_store_commit_seconds_total %.6f\n"
			    "# HELP hookd_store_syncs_total Syncs of a last commit that no other followed\n"
			    "# TYPE hookd_store_syncs_total counter\nhookd_store_syncs_total %llu\n",
			    (unsigned long long)a->published, (unsigned long long)a->publish_rejected,
			    (unsigned long long)ds.attempts, (unsigned long long)ds.succeeded,
			    (unsigned long long)ds.failed, (unsigned long long)ds.dead,
			    (unsigned long long)a->fstats.filtered,
			    (unsigned long long)a->fstats.policy_errors, ds.inflight, (unsigned long long)sc.due, ds.in_memory,
			    (unsigned long long)st.commits, (unsigned long long)st.ops,
			    st.commit_ns / 1e9, (unsigned long long)st.syncs);
	evbuffer_add_printf(buf,
			    "# HELP hookd_store_map_bytes storage.map_size\n"
			    "# TYPE hookd_store_map_bytes gauge\nhookd_store_map_bytes %llu\n"
			    "# HELP hookd_store_used_bytes Store pages in use (free list excluded)\n"
			    "# TYPE hookd_store_used_bytes gauge\nhookd_store_used_bytes %llu\n"
			    "# HELP hookd_store_reserved_bytes Room kept for outcomes of pending deliveries\n"
			    "# TYPE hookd_store_reserved_bytes gauge\nhookd_store_reserved_bytes %llu\n"
			    "# HELP hookd_store_budget_bytes Map size minus the base reserve\n"
			    "# TYPE hookd_store_budget_bytes gauge\nhookd_store_budget_bytes %llu\n"
			    "# HELP hookd_store_full 1 while publishes are refused with 507\n"
			    "# TYPE hookd_store_full gauge\nhookd_store_full %d\n"
			    "# HELP hookd_store_waiting_writes Delivery state changes waiting for space\n"
			    "# TYPE hookd_store_waiting_writes gauge\nhookd_store_waiting_writes %llu\n",
			    (unsigned long long)sp.map_bytes, (unsigned long long)sp.used_bytes,
			    (unsigned long long)sp.reserved_bytes, (unsigned long long)sp.budget_bytes,
			    sp.full, (unsigned long long)sp.waiting_writes);
	struct api_metrics_plugins mp = {buf, 0};
	plugins_each_plugin(plugins_current(), api_metrics_plugin, &mp);
	plugins_each_counter(plugins_current(), api_metrics_plugin_counter, buf);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, NULL, buf);
	evbuffer_free(buf);
}

