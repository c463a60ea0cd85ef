/* api_conn.h - the API's connections, below evhttp: how many, for how long, how big.
 *
 * evhttp (libevent 2.1.12) accepts every connection it can and waits for ever for headers
 * of any size. This layer puts every accepted socket under a bufferevent filter
 * (evhttp_set_bevcb) that watches the bytes before evhttp buffers them (api_scan.h) and:
 *   - caps the open API connections (api.max_connections, and below the descriptor limit
 *     minus what deliveries and the store need): at the cap the listener stops accepting
 *     until a connection closes, so clients wait in the kernel's accept queue;
 *   - gives each request api.header_timeout_ms from its first byte (from the accept for the
 *     first one) to the end of its header fields: a deadline, not an inactivity timeout,
 *     so a client trickling bytes (slowloris) is cut off; api.idle_timeout_ms closes a
 *     connection on which nothing arrives (evhttp's own timeout);
 *   - refuses a request whose header block passes limits.max_header_bytes or
 *     limits.max_header_lines (431), or whose body is announced or grows past
 *     limits.max_payload_bytes (413), with the API's JSON error, before reading the rest;
 *     what the client still sends is read and discarded for a bounded time and size, so
 *     that it sees the answer rather than a reset, and the connection is closed;
 *   - logs accept() failures (descriptors exhausted) at most once a second with a count,
 *     and stops accepting for a moment instead of spinning on them.
 * Everything runs on the loop thread. */
#ifndef HOOKD_API_CONN_H
#define HOOKD_API_CONN_H

#include <stdint.h>

struct event_base;
struct evhttp;
struct evhttp_bound_socket;
struct config;
struct api_conns;

/* The connection cap for a descriptor limit of nofile: configured, but no more than nofile
 * minus what deliveries (their sockets in flight and idle, TRANSPORT_HTTP_MAX_SOCKETS) and
 * the daemon itself need (2 x max_inflight + 320), and never less than 16, which keeps the API usable. */
uint32_t api_conns_cap(uint32_t configured, uint64_t nofile, uint32_t max_inflight);

/* Installs the layer on http (before any connection is accepted). cfg is borrowed and must
 * outlive the layer. */
int api_conns_new(struct event_base *base, struct evhttp *http, const struct config *cfg,
		  struct api_conns **out);
/* Starts watching bs's listener (cap, accept errors). */
void api_conns_attach(struct api_conns *c, struct evhttp_bound_socket *bs);
/* Before evhttp_free: forgets the listener evhttp is about to free. */
void api_conns_detach(struct api_conns *c);
/* Frees c. Connections still being torn down by libevent free their own state later. */
void api_conns_free(struct api_conns *c);

#endif
