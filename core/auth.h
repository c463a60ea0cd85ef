/* auth.h - authentication schemes on outgoing HTTP attempts: an endpoint with an "auth"
 * object (struct endpoint_auth, registry.h; the field's rules are endpoint_schema.c's) has
 * every attempt decorated by its scheme's plugin (struct hookd_auth, include/hookd/plugin.h)
 * before it is sent: headers, a client certificate.
 *
 * auth_send() stands where the scheduler would call transport->send() and keeps its
 * contract: it returns HOOKD_OK and calls req->done exactly once, later, on the loop thread;
 * or it fails at once and never calls it. In between:
 *   - decorate() answers DONE: the request goes out with the scheme's headers (replacing
 *     the endpoint's own of the same name) and client certificate;
 *   - PENDING: the attempt waits, still in flight for the caps, until the plugin calls
 *     auth_resume(token) (from any thread), then decorate() runs again; an error in the
 *     resume, or req->timeout_ms passing first, ends the attempt as a transport error
 *     (retryable);
 *   - ERROR: the attempt ends as a transport error with the plugin's message;
 *   - a 401 answer when the scheme sets refresh_on_401: decorate() once more with
 *     refresh = 1, its headers those the refused request carried (the scheme's own
 *     included, so it can tell whether the credentials refused are still the ones it
 *     holds), and the request is sent again, in the same attempt; the second answer is the
 *     attempt's, whatever it is.
 * The attempt keeps its own copies of the URL and header lines and a reference to the
 * endpoint's auth object, so a PATCH of the endpoint while it waits changes nothing for
 * it; an endpoint deleted meanwhile gets nothing more: the attempt ends with an error
 * instead of the next decorate. auth_free() abandons the attempts in progress without calling done, as
 * the HTTP transport abandons its transfers at shutdown (the deliveries stay pending in
 * the store).
 *
 * Loop thread only, but for the resume hook the plugin host forwards auth_resume to. */
#ifndef HOOKD_AUTH_H
#define HOOKD_AUTH_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct endpoint;
struct transport;
struct transport_request;
struct hookd_auth_out;

struct auth;

/* One per process (the plugin host forwards resumes to the current one). */
int auth_new(struct event_base *base, struct auth **out);
/* Abandons what is in progress (no done() is called) and stops taking resumes. NULL is a
 * no-op. Before the transport is destroyed: attempts out on it are forgotten here. */
void auth_free(struct auth *a);

/* Sends req through t decorated by ep's auth scheme (ep->auth must be set). req's header
 * lines, URL, ids and proxy are copied, its TLS options (ep's, borrowed from ep->json) kept
 * with a reference to ep->json; req->body and ep must stay valid until done (the
 * scheduler's delivery holds both). */
int auth_send(struct auth *a, struct transport *t, const struct endpoint *ep,
	      const struct transport_request *req);

/* What the plugin host's functions of the same name forward to (include/hookd/plugin.h):
 * add_header and client_cert during decorate only; resume from any thread. */
void auth_out_add_header(struct hookd_auth_out *out, const char *name, const char *value);
void auth_out_client_cert(struct hookd_auth_out *out, const char *cert_path,
			  const char *key_path);
void auth_resume(uint64_t token, const char *error);

#endif
