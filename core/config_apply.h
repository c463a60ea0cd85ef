/* config_apply.h - what turns a loaded configuration into the running daemon's state: the
 * apps and endpoints the file declares (configuration as code, at every start) and the
 * policies of policies.dir (at start and on SIGHUP). */
#ifndef HOOKD_CONFIG_APPLY_H
#define HOOKD_CONFIG_APPLY_H

#include <stddef.h>

struct config;
struct policy_engine;
struct registry;
struct store;

/* Creates or updates every declared app and endpoint, in the store and in reg. An endpoint
 * goes through endpoint_json_merge like an API request; on an update, what the file leaves
 * out returns to its default (the file is the whole declaration) and a changed secret
 * replaces the current one without a grace period. HOOKD_OK, or HOOKD_ECONFIG with a
 * message naming the app or endpoint and its line. */
int config_apply_declared(const struct config *c, struct registry *reg, struct store *s,
			  char *err, size_t errlen);

/* Loads policies.dir into the engine (nothing to do without one). HOOKD_OK, or the
 * engine's error with err saying which file failed (the running versions stay). */
int config_apply_policies(const struct config *c, struct policy_engine *pe, char *err,
			  size_t errlen);

#endif
