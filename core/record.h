/* record.h - the binary delivery record stored in the `deliveries` database.
 *
 * Binary rather than JSON because it is rewritten on every attempt: encoding and decoding
 * are a few memcpys, with no parser on the delivery path. Layout (little-endian host order
 * is fine: the file never leaves the machine; a version byte guards changes):
 *   u8 version, u8 state, u8 flags, u8 0, u32 attempts, u32 cycle_failures, i32 last_status,
 *   i64 next_at_ms, i64 created_ms, i64 updated_ms,
 *   then strings as u32 length + bytes + NUL: app_id, msg_id, ep_id, last_error,
 *   body (inline policy output: older records only), headers (JSON object text or empty).
 * A policy's output body is kept apart, in the `bodies` database (flag RECORD_CUSTOM_BODY),
 * written once: the record is rewritten on every attempt and stays small. It is written
 * with the first record that leaves the delivery pending or dead (it may be sent again);
 * a delivery that succeeded at its first attempt never needs it, and has none. */
#ifndef HOOKD_RECORD_H
#define HOOKD_RECORD_H

#include <stddef.h>
#include <stdint.h>

enum delivery_state {
	DLV_PENDING = 0,
	DLV_INFLIGHT = 1, /* only ever in memory; stored as pending */
	DLV_SUCCEEDED = 2,
	DLV_FILTERED = 3,
	DLV_DEAD = 4
};

const char *delivery_state_name(int state);

#define RECORD_CUSTOM_BODY 1 /* the body to send is in the bodies database */

struct delivery_rec {
	int state;
	unsigned flags;          /* RECORD_CUSTOM_BODY */
	uint32_t attempts;       /* every attempt ever made */
	uint32_t cycle_failures; /* failed attempts since creation or the last redrive */
	int32_t last_status;     /* last HTTP status, 0 if none */
	int64_t next_at_ms;      /* pending: when due */
	int64_t created_ms;
	int64_t updated_ms;
	/* Strings: on encode, the caller's; on decode, pointers into the buffer decoded from
	 * (for LMDB: valid until the read transaction ends). NUL-terminated; "" when empty. */
	const char *app_id, *msg_id, *ep_id, *last_error;
	const char *body;        /* policy output body, or "" */
	size_t body_len;
	const char *headers;     /* policy headers as JSON object text, or "" */
};

/* Encodes into a malloc'd buffer (*out, owned by the caller). */
int record_encode(const struct delivery_rec *r, unsigned char **out, size_t *len);
/* Decodes data (not copied). HOOKD_EINVAL on a truncated or unknown record. */
int record_decode(const void *data, size_t len, struct delivery_rec *r);

#endif
