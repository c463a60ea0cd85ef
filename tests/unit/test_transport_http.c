/* test_transport_http.c - the HTTP transport's bound on its sockets across its connection
 * caches (core/transport_http.c): load that moves from cache to cache leaves idle
 * connections behind in each, and once the sockets open reach max_inflight + 256 an
 * attempt's connection is closed after it rather than kept. Against an evhttp receiver in
 * a child process on 127.0.0.1 (so /proc/self/fd counts only the transport's sockets). */
#include "check.h"

#include "err.h"
#include "ssrf.h"
#include "transport.h"

#include <curl/curl.h>
#include <dirent.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define INFLIGHT 32
#define CACHES TRANSPORT_HTTP_CACHES

static void serve_cb(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();
	(void)arg;
	evbuffer_add(b, "ok", 2);
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* The receiver, in a child: writes its port to fd, serves until killed. */
static void serve(int fd)
{
	struct event_base *base = event_base_new();
	struct evhttp *http = evhttp_new(base);
	struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	unsigned short port = 0;
	if (s && getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&ss, &len) == 0)
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (write(fd, &port, sizeof(port)) != sizeof(port))
		_exit(1);
	evhttp_set_gencb(http, serve_cb, NULL);
	evhttp_set_timeout(http, 60);
	event_base_dispatch(base);
	_exit(0);
}

static int sockets_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;
	char path[300], link[64];
	while (d && (e = readdir(d))) {
		ssize_t l;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		l = readlink(path, link, sizeof(link) - 1);
		if (l > 0) {
			link[l] = 0;
			n += strncmp(link, "socket:", 7) == 0;
		}
	}
	if (d)
		closedir(d);
	return n;
}

static struct event_base *base;
static int done_n, ok_n;

static void on_done(void *arg, const struct transport_result *res)
{
	(void)arg;
	done_n++;
	ok_n += res->status == 200;
	if (done_n == INFLIGHT)
		event_base_loopbreak(base);
}

int main(void)
{
	int fds[2], before, most = 0;
	unsigned short port = 0;
	pid_t child;
	struct ssrf_policy ssrf = {0};
	char err[256], url[64], eps[CACHES][16];
	struct transport *t;

	CHECK(pipe(fds) == 0);
	if ((child = fork()) == 0)
		serve(fds[1]);
	CHECK(child > 0);
	CHECK(read(fds[0], &port, sizeof(port)) == sizeof(port) && port != 0);
	signal(SIGPIPE, SIG_IGN);
	CHECK(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK);
	CHECK(ssrf_policy_allow(&ssrf, "127.0.0.0/8", err, sizeof(err)) == HOOKD_OK);
	base = event_base_new();
	t = transport_http_new(base, &ssrf, INFLIGHT, err, sizeof(err));
	CHECK(t != NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/x", port);
	/* One endpoint id per cache. */
	for (int c = 0; c < CACHES; c++)
		for (int i = 0;; i++) {
			snprintf(eps[c], sizeof(eps[0]), "ep%d", i);
			if (transport_http_cache("a", eps[c], NULL) == c)
				break;
		}
	before = sockets_open();
	/* Each round: INFLIGHT at once through the next cache, which has no idle connection
	 * yet, so each opens its own; the previous caches keep theirs idle. */
	for (int round = 0; round < CACHES; round++) {
		done_n = ok_n = 0;
		for (int i = 0; i < INFLIGHT; i++) {
			struct transport_request req;
			memset(&req, 0, sizeof(req));
			req.url = url;
			req.body = "{}";
			req.body_len = 2;
			req.connect_timeout_ms = 5000;
			req.timeout_ms = 10000;
			req.done = on_done;
			req.app_id = "a";
			req.endpoint_id = eps[round];
			CHECK(t->send(t, &req) == HOOKD_OK);
		}
		event_base_dispatch(base);
		CHECK(done_n == INFLIGHT && ok_n == INFLIGHT);
		int now = sockets_open() - before;
		if (now > most)
			most = now;
	}
	printf("sockets: at most %d open after a round (bound %llu; %d rounds of %d through "
	       "separate caches would keep %d)\n",
	       most, (unsigned long long)TRANSPORT_HTTP_MAX_SOCKETS(INFLIGHT), CACHES, INFLIGHT,
	       CACHES * INFLIGHT);
	CHECK(most <= (int)TRANSPORT_HTTP_MAX_SOCKETS(INFLIGHT));
	CHECK(most >= TRANSPORT_HTTP_MAX_CONNECTS); /* idle connections were kept up to it */
	t->destroy(t);
	event_base_free(base);
	ssrf_policy_free(&ssrf);
	curl_global_cleanup();
	kill(child, SIGTERM);
	waitpid(child, NULL, 0);
	return check_done();
}
