/* api.c - the HTTP API's server: routing, authentication, and the helpers every resource
 * file shares (replies, request bodies, answers after a commit). The resources live in
 * api_apps.c, api_endpoints.c, api_status.c, api_deliveries.c, api_recover.c,
 * api_messages.c, api_dead.c, api_policies.c, api_metrics.c. */
#include "api.h"
#include "api-t.h"
#include "api_conn.h"

#include "config.h"
#include "dispatch.h"
#include "err.h"
#include "registry.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define API_MAX_SEGMENTS 8

/* ---------- replies ---------- */

void api_send(struct evhttp_request *req, int status, json_t *body)
{
	struct evbuffer *buf = evbuffer_new();
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	/* A response to HEAD has no body: evhttp would send one anyway and break the framing
	 * of the next response on the connection. */
	if (text && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		evbuffer_add(buf, text, strlen(text));
		evbuffer_add(buf, "\n", 1);
	}
	evhttp_send_reply(req, status, NULL, buf);
	evbuffer_free(buf);
	free(text);
	json_decref(body);
}

void api_error(struct evhttp_request *req, int status, const char *code,
		      const char *field, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	api_send(req, status,
		 json_pack("{s:{s:s, s:s, s:o}}", "error", "code", code, "message", msg, "field",
			   field && *field ? json_string(field) : json_null()));
}

static void api_conn_closed(struct evhttp_connection *conn, void *arg)
{
	struct api_pending *p = arg;
	p->req = NULL;
	p->conn = NULL;
}

struct api_pending *api_pending_new(struct api *a, struct evhttp_request *req)
{
	struct api_pending *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->api = a;
	p->req = req;
	p->conn = evhttp_request_get_connection(req);
	if (p->conn)
		evhttp_connection_set_closecb(p->conn, api_conn_closed, p);
	return p;
}

/* Detaches from the connection; returns the request to answer, or NULL if it is gone. */
struct evhttp_request *api_pending_take(struct api_pending *p)
{
	if (p->conn)
		evhttp_connection_set_closecb(p->conn, NULL, NULL);
	return p->req;
}

void api_pending_free(struct api_pending *p)
{
	for (size_t i = 0; i < p->n_dvs; i++)
		delivery_free(p->dvs[i]);
	free(p->dvs);
	for (size_t i = 0; i < p->n_policy; i++)
		delivery_free(p->policy_dvs[i]);
	free(p->policy_dvs);
	json_decref(p->json);
	body_unref(p->envelope);
	free(p->text);
	free(p->idem);
	free(p);
}

void api_store_failed(struct evhttp_request *req, int rc)
{
	if (rc == HOOKD_EFULL)
		api_error(req, 507, "storage_full", NULL,
			  "the store is full (storage.map_size); accepted messages are still being "
			  "delivered, new ones are refused until space is freed or the map is enlarged");
	else
		api_error(req, 500, "internal", NULL, "could not store the change: %s",
			  hookd_strerror(rc));
}


/* ---------- request helpers ---------- */

json_t *api_body_json(struct api *a, struct evhttp_request *req, int required)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_error_t jerr;
	json_t *j;

	if (len > a->cfg->max_payload_bytes) {
		api_error(req, 413, "payload_too_large", NULL,
			  "request body is %zu bytes; limits.max_payload_bytes is %zu", len,
			  a->cfg->max_payload_bytes);
		return NULL;
	}
	if (len == 0) {
		if (!required)
			return json_object();
		api_error(req, 400, "invalid_json", NULL, "request body is empty; a JSON object is required");
		return NULL;
	}
	j = json_loadb((const char *)evbuffer_pullup(in, -1), len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		api_error(req, 400, "invalid_json", NULL,
			  "invalid JSON at line %d, column %d (position %d): %s", jerr.line,
			  jerr.column, jerr.position, jerr.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		api_error(req, 400, "invalid_json", NULL, "request body must be a JSON object");
		return NULL;
	}
	return j;
}

static int api_authorized(struct api *a, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	unsigned char hash[crypto_generichash_BYTES];
	if (!a->has_key || !h || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	/* Compare digests in constant time: the key's length and bytes do not leak by timing. */
	crypto_generichash(hash, sizeof(hash), (const unsigned char *)h, strlen(h), NULL, 0);
	return sodium_memcmp(hash, a->key_hash, sizeof(hash)) == 0;
}

long api_query_long(struct evkeyvalq *q, const char *name, long def, long min, long max,
			   struct evhttp_request *req, int *bad)
{
	const char *v = evhttp_find_header(q, name);
	char *end;
	long n;
	if (!v)
		return def;
	n = strtol(v, &end, 10);
	if (*v == 0 || *end || n < min || n > max) {
		api_error(req, 400, "invalid_field", name, "%s must be an integer from %ld to %ld", name,
			  min, max);
		*bad = 1;
		return def;
	}
	return n;
}


static int api_cmp_id(const void *x, const void *y)
{
	const json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
	return strcmp(json_string_value(json_object_get(a, "id")) ?: "",
		      json_string_value(json_object_get(b, "id")) ?: "");
}

json_t *api_sorted(json_t *arr)
{
	size_t n = json_array_size(arr);
	json_t **items = calloc(n + 1, sizeof(*items)), *out = json_array();
	for (size_t i = 0; i < n; i++)
		items[i] = json_array_get(arr, i);
	qsort(items, n, sizeof(*items), api_cmp_id);
	for (size_t i = 0; i < n; i++)
		json_array_append(out, items[i]);
	free(items);
	json_decref(arr);
	return out;
}

/* ---------- routing ---------- */

/* The methods the API names in Allow, in this order. */
static const struct {
	int method;
	const char *name;
} api_method_names[] = {
	{EVHTTP_REQ_GET, "GET"},       {EVHTTP_REQ_POST, "POST"},
	{EVHTTP_REQ_PUT, "PUT"},       {EVHTTP_REQ_PATCH, "PATCH"},
	{EVHTTP_REQ_DELETE, "DELETE"}, {EVHTTP_REQ_OPTIONS, "OPTIONS"},
};

/* Every route, once: its path pattern, method, handler and whether it needs the admin key.
 * In a pattern, ":app" names a stored app and ":ep" one of its endpoints (404 when there
 * is none, after the method check); any other ":name" captures the segment as args->id.
 * The Allow header of a path is the union of the methods of the patterns it matches. */
static const struct api_route {
	const char *path;
	int method;
	api_handler_fn fn;
	int public;
} api_routes[] = {
	{"/healthz", EVHTTP_REQ_GET, api_healthz, 1},
	{"/metrics", EVHTTP_REQ_GET, api_metrics, 0},
	{"/v1/policies", EVHTTP_REQ_GET, api_policies_list, 0},
	{"/v1/policies/:name", EVHTTP_REQ_GET, api_policy_get, 0},
	{"/v1/policies/:name", EVHTTP_REQ_PUT, api_policy_put, 0},
	{"/v1/policies/:name/test", EVHTTP_REQ_POST, api_policy_test, 0},
	{"/v1/apps", EVHTTP_REQ_GET, api_apps_list, 0},
	{"/v1/apps", EVHTTP_REQ_POST, api_apps_create, 0},
	{"/v1/apps/:app", EVHTTP_REQ_GET, api_app_get, 0},
	{"/v1/apps/:app", EVHTTP_REQ_PATCH, api_app_patch, 0},
	{"/v1/apps/:app/endpoints", EVHTTP_REQ_GET, api_endpoints_list, 0},
	{"/v1/apps/:app/endpoints", EVHTTP_REQ_POST, api_endpoints_create, 0},
	{"/v1/apps/:app/endpoints/:ep", EVHTTP_REQ_GET, api_endpoint_get, 0},
	{"/v1/apps/:app/endpoints/:ep", EVHTTP_REQ_PATCH, api_endpoint_patch, 0},
	{"/v1/apps/:app/endpoints/:ep", EVHTTP_REQ_DELETE, api_endpoint_delete, 0},
	{"/v1/apps/:app/endpoints/:ep/secret/rotate", EVHTTP_REQ_POST, api_endpoint_rotate, 0},
	{"/v1/apps/:app/endpoints/:ep/status", EVHTTP_REQ_GET, api_endpoint_status, 0},
	{"/v1/apps/:app/endpoints/:ep/recover", EVHTTP_REQ_POST, api_endpoint_recover, 0},
	{"/v1/apps/:app/endpoints/:ep/recover/:job", EVHTTP_REQ_GET, api_endpoint_recover_get, 0},
	{"/v1/apps/:app/endpoints/:ep/deliveries", EVHTTP_REQ_GET, api_endpoint_deliveries, 0},
	{"/v1/apps/:app/messages", EVHTTP_REQ_GET, api_messages_list, 0},
	{"/v1/apps/:app/messages", EVHTTP_REQ_POST, api_messages_create, 0},
	{"/v1/apps/:app/messages/:msg", EVHTTP_REQ_GET, api_message_get, 0},
	{"/v1/apps/:app/messages/:msg/attempts", EVHTTP_REQ_GET, api_message_attempts, 0},
	{"/v1/apps/:app/dead", EVHTTP_REQ_GET, api_dead_list, 0},
	{"/v1/apps/:app/dead/redrive", EVHTTP_REQ_POST, api_dead_redrive, 0},
};

#define API_NROUTES (sizeof(api_routes) / sizeof(api_routes[0]))

void api_set_ops(struct api *a, struct ops *o)
{
	a->ops = o;
}

void api_healthz(struct api *a, struct evhttp_request *req, const struct api_args *args)
{
	api_send(req, 200, json_pack("{s:s}", "status", "ok"));
}

/* true if the segments match pattern (literal segments equal, ":x" any). */
static bool api_path_match(const char *pattern, char **seg, int nseg)
{
	int i = 0;
	for (const char *p = pattern; *p; i++) {
		const char *end;
		size_t len;
		p++; /* the '/' */
		end = strchr(p, '/');
		len = end ? (size_t)(end - p) : strlen(p);
		if (i >= nseg)
			return false;
		if (*p != ':' && (strlen(seg[i]) != len || memcmp(seg[i], p, len) != 0))
			return false;
		p += len;
	}
	return i == nseg;
}

/* Fills args from the captures of pattern; answers 404 and returns -1 for an app or
 * endpoint that is not there. */
static int api_path_bind(struct api *a, struct evhttp_request *req, const char *pattern,
			 char **seg, struct api_args *args)
{
	int i = 0;
	for (const char *p = pattern; *p; i++) {
		p++;
		if (strncmp(p, ":app", 4) == 0 && (p[4] == '/' || !p[4])) {
			args->app = registry_app(a->reg, seg[i]);
			if (!args->app) {
				api_error(req, 404, "not_found", NULL, "app '%.80s' not found", seg[i]);
				return -1;
			}
		} else if (strncmp(p, ":ep", 3) == 0 && (p[3] == '/' || !p[3])) {
			args->ep = args->app ? strmap_get(&args->app->endpoints, seg[i]) : NULL;
			if (!args->ep) {
				api_error(req, 404, "not_found", NULL,
					  "endpoint '%.80s' not found in app '%s'", seg[i],
					  args->app ? args->app->id : "");
				return -1;
			}
		} else if (*p == ':') {
			args->id = seg[i];
		}
		p += strcspn(p, "/");
	}
	return 0;
}

/* Finds the route of (method, segments): *methods gets the methods the path serves (0: no
 * such path), *public whether it needs no key. NULL when the method is not one of them. */
static const struct api_route *api_route_find(int method, char **seg, int nseg, int *methods,
					      int *public)
{
	const struct api_route *hit = NULL;
	*methods = 0;
	*public = 0;
	for (size_t i = 0; i < API_NROUTES; i++) {
		if (!api_path_match(api_routes[i].path, seg, nseg))
			continue;
		*methods |= api_routes[i].method;
		*public |= api_routes[i].public;
		if (api_routes[i].method == method)
			hit = &api_routes[i];
	}
	return hit;
}

/* Sets Allow to methods (plus OPTIONS, which every route answers). */
static void api_allow_set(struct evhttp_request *req, int methods)
{
	char allow[64] = "";
	size_t len = 0;
	methods |= EVHTTP_REQ_OPTIONS;
	for (size_t i = 0; i < sizeof(api_method_names) / sizeof(api_method_names[0]); i++)
		if (methods & api_method_names[i].method)
			len += (size_t)snprintf(allow + len, sizeof(allow) - len, "%s%s",
						len ? ", " : "", api_method_names[i].name);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
}

/* OPTIONS: 204 with Allow. Any other method the route does not serve: 405 with Allow
 * (HEAD, TRACE, CONNECT and names evhttp does not know, such as FOO, included). Returns 1
 * when it answered. */
static int api_method_check(struct evhttp_request *req, int method, int methods,
			    const char *path)
{
	if (method == EVHTTP_REQ_OPTIONS) {
		api_allow_set(req, methods);
		evhttp_send_reply(req, 204, NULL, NULL);
		return 1;
	}
	if (method & methods)
		return 0;
	api_allow_set(req, methods);
	api_error(req, 405, "method_not_allowed", NULL, "method not allowed on %.200s (see Allow)",
		  path);
	return 1;
}

/* Splits path into percent-decoded segments (in buf). A segment that decodes to a control
 * character (0x00-0x1F, 0x7F) is refused: a NUL would silently cut an id short
 * ("/v1/apps/ab%00/endpoints" acting on app "ab"), and no id or name contains one.
 * Returns the number of segments, or -1 after answering 400 (or 500). */
static int api_path_split(struct evhttp_request *req, const char *path, char *buf,
			  size_t buflen, char **seg)
{
	char *save = NULL, *tok;
	int nseg = 0;
	snprintf(buf, buflen, "%s", path);
	for (tok = strtok_r(buf, "/", &save); tok && nseg <= API_MAX_SEGMENTS;
	     tok = strtok_r(NULL, "/", &save)) {
		size_t n = 0;
		char *dec = evhttp_uridecode(tok, 0, &n);
		if (!dec) {
			api_error(req, 500, "internal", NULL, "out of memory");
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)dec[i];
			if (ch < 0x20 || ch == 0x7f) {
				api_error(req, 400, "invalid_path", NULL,
					  "path segment %d '%.80s' contains a control character "
					  "(0x%02X) once decoded; ids and names never do",
					  nseg + 1, tok, ch);
				free(dec);
				return -1;
			}
		}
		memcpy(tok, dec, n + 1); /* decoding never lengthens a segment */
		free(dec);
		seg[nseg++] = tok;
	}
	return nseg;
}

static void api_route(struct evhttp_request *req, void *arg)
{
	struct api *a = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = evhttp_uri_get_path(uri), *query = evhttp_uri_get_query(uri);
	int method = evhttp_request_get_command(req);
	char pathbuf[1024], *seg[API_MAX_SEGMENTS + 1];
	int nseg, methods, public;
	struct evkeyvalq q;
	struct api_args args = {.query = &q};
	const struct api_route *route;

	TAILQ_INIT(&q);
	if (!path || strlen(path) >= sizeof(pathbuf)) {
		api_error(req, 404, "not_found", NULL, "no such route");
		return;
	}
	if (query && evhttp_parse_query_str(query, &q) != 0) {
		api_error(req, 400, "invalid_field", NULL, "malformed query string");
		return;
	}
	if ((nseg = api_path_split(req, path, pathbuf, sizeof(pathbuf), seg)) < 0)
		goto out;
	route = api_route_find(method, seg, nseg, &methods, &public);
	if (!public && !api_authorized(a, req))
		api_error(req, 401, "unauthorized", NULL,
			  "missing or wrong bearer key (Authorization: Bearer <api.admin_key>)");
	else if (!methods)
		api_error(req, 404, "not_found", NULL, "no such route: %s", path);
	else if (!api_method_check(req, method, methods, path) &&
		 api_path_bind(a, req, route->path, seg, &args) == 0)
		route->fn(a, req, &args);
out:
	evhttp_clear_headers(&q);
}

int api_new(struct event_base *base, struct store *store, struct registry *reg,
	    struct dispatch *disp, struct policy_engine *policies, struct worker *worker,
	    const struct config *cfg, struct api **out)
{
	struct api *a = calloc(1, sizeof(*a));
	if (!a)
		return HOOKD_ENOMEM;
	a->base = base;
	a->store = store;
	a->reg = reg;
	a->disp = disp;
	a->policies = policies;
	a->worker = worker;
	a->cfg = cfg;
	a->fanout.store = store;
	a->fanout.disp = disp;
	a->fanout.reg = reg;
	a->fanout.policies = policies;
	a->fanout.worker = worker;
	a->fanout.stats = &a->fstats;
	if (cfg->admin_key && *cfg->admin_key) {
		crypto_generichash(a->key_hash, sizeof(a->key_hash),
				   (const unsigned char *)cfg->admin_key, strlen(cfg->admin_key), NULL, 0);
		a->has_key = 1;
	}
	a->http = evhttp_new(base);
	if (!a->http) {
		free(a);
		return HOOKD_ENOMEM;
	}
	if (api_conns_new(base, a->http, cfg, &a->conns) != HOOKD_OK) {
		evhttp_free(a->http);
		free(a);
		return HOOKD_ENOMEM;
	}
	/* A body over limits.max_payload_bytes is refused by the connection layer from its
	 * Content-Length or chunk sizes, before it is read (api_conn.h), and api_body_json
	 * checks again. evhttp's own limit, max(4 x limit, 1 MiB), is a backstop: past it evhttp
	 * answers its own 413 and, with lingering close, drains what the client still sends. */
	size_t cutoff = cfg->max_payload_bytes * 4;
	if (cutoff < 1024 * 1024)
		cutoff = 1024 * 1024;
	evhttp_set_max_body_size(a->http, (ev_ssize_t)cutoff);
	evhttp_set_flags(a->http, EVHTTP_SERVER_LINGERING_CLOSE);
	/* Every method reaches api_route, which answers 405 with Allow (or 204 to OPTIONS)
	 * for what a route does not serve; evhttp itself would answer 501, a server error. The
	 * top bit is evhttp's mark for a method it does not know (FOO). */
	evhttp_set_allowed_methods(a->http, 0xffff);
	evhttp_set_gencb(a->http, api_route, a);
	*out = a;
	return HOOKD_OK;
}

/* A library's message as words inside a sentence: "address already in use", not
 * "Address already in use". */
static void api_words(const char *text, char *out, size_t len)
{
	snprintf(out, len, "%s", text);
	if (out[0] >= 'A' && out[0] <= 'Z')
		out[0] = (char)(out[0] - 'A' + 'a');
}

int api_socket_open(const char *host, uint16_t port, int *fd_out, uint16_t *bound_port,
		    char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	const char *lb = strchr(host, ':') ? "[" : "", *rb = *lb ? "]" : "";
	char service[8], why[128];
	int fd = -1, one = 1, rc;

	*fd_out = -1;
	snprintf(service, sizeof(service), "%u", port);
	/* Like evhttp_bind_socket: the first address the name resolves to. */
	rc = getaddrinfo(host, service, &hints, &ai);
	if (rc != 0 || !ai) {
		api_words(rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc), why, sizeof(why));
		err_set(err, errlen, "cannot listen on %s%s%s:%u: cannot resolve %s: %s", lb, host, rb,
			port, host, why);
		goto fail;
	}
	/* SO_REUSEADDR: a restart binds at once although connections of the previous process
	 * are still in TIME_WAIT. SOMAXCONN (the kernel caps it at net.core.somaxconn): clients
	 * that connect while the daemon still opens its store wait in the backlog. */
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
		api_words(strerror(errno), why, sizeof(why));
		err_set(err, errlen, "cannot listen on %s%s%s:%u: %s", lb, host, rb, port, why);
		goto fail;
	}
	*bound_port = port;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET)
			*bound_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			*bound_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	freeaddrinfo(ai);
	*fd_out = fd;
	return HOOKD_OK;
fail:
	if (fd >= 0)
		close(fd);
	if (ai)
		freeaddrinfo(ai);
	return HOOKD_EIO;
}

int api_listen(struct api *a, int fd, char *err, size_t errlen)
{
	/* Backlog 0: api_socket_open has called listen() already. */
	struct evconnlistener *lev = evconnlistener_new(
		a->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	struct evhttp_bound_socket *bs = NULL;

	if (!lev)
		close(fd);
	else if (!(bs = evhttp_bind_listener(a->http, lev)))
		evconnlistener_free(lev); /* closes fd */
	if (!bs) {
		err_set(err, errlen, "cannot serve the API's listening socket: out of memory");
		return HOOKD_ENOMEM;
	}
	api_conns_attach(a->conns, bs);
	return HOOKD_OK;
}

void api_close(struct api *a)
{
	if (a && a->http) {
		api_conns_detach(a->conns); /* evhttp_free frees the listener */
		evhttp_free(a->http);
		a->http = NULL;
	}
}

void api_free(struct api *a)
{
	if (!a)
		return;
	api_close(a);
	api_conns_free(a->conns);
	api_recover_free(a);
	free(a);
}

