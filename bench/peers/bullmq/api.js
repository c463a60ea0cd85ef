'use strict';
// api.js - the peer's publish API: what a team builds instead of hookd, in its most common
// shape (node:http, BullMQ on Redis). Same route, auth and body as hookd's bench uses:
//
//   POST /v1/apps/{app}/messages   Authorization: Bearer KEY   {"type": "...", "data": {...}}
//   -> 202 {"id","type","timestamp"} once queue.add() resolved, i.e. once Redis answered the
//      write; Redis runs with appendfsync always, which fsyncs the AOF before it answers, so
//      the 202 is as durable as hookd's. 400 bad body, 401 bad key, 404/405 other routes,
//      413 body too large, 503 when Redis refused the job.
//   GET /healthz -> 200 once the queue's Redis connection is up.
//
// The job carries the envelope text the worker will POST ({"id","type","timestamp",
// "version","data"}, built here once, as hookd stores its envelope once), the app and the
// message id. Every app has one endpoint, the worker's --sink URL + "/{app}/ep0" (what
// run.sh's pass 1 creates in hookd); there is no endpoint table and no event-type filter.
//
// Usage: node api.js --port N --redis-port N --key KEY [--queue NAME]
// Listens on 127.0.0.1 only; prints "PORT <n>" on stdout once it listens (port 0: the kernel
// picks). SIGTERM/SIGINT: stops listening, closes the queue, exits.
const http = require('node:http');
const crypto = require('node:crypto');
const { Queue } = require('bullmq');
const { arg, jobOptions } = require('./common');

const port = Number(arg('--port', '0'));
const redisPort = Number(arg('--redis-port'));
const key = arg('--key');
const queueName = arg('--queue', 'hookd-bench');
// hookd's default limits.max_payload_bytes.
const MAX_BODY = 256 * 1024;
// hookd's rule for event types: segments of [A-Za-z0-9_-] joined by '.', at most 128 bytes.
const TYPE_RE = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const ROUTE_RE = /^\/v1\/apps\/([A-Za-z0-9_-]{1,64})\/messages$/;

const queue = new Queue(queueName, {
	connection: { host: '127.0.0.1', port: redisPort },
	defaultJobOptions: jobOptions,
});
const auth = Buffer.from(`Bearer ${key}`);

function send(res, status, obj) {
	const body = JSON.stringify(obj);
	res.writeHead(status, {
		'Content-Type': 'application/json',
		'Content-Length': Buffer.byteLength(body),
	});
	res.end(body);
}

function fail(res, status, code, message, field = null) {
	send(res, status, { error: { code, message, field } });
}

function authorized(req) {
	const got = Buffer.from(req.headers.authorization || '');
	return got.length === auth.length && crypto.timingSafeEqual(got, auth);
}

// The same checks hookd makes on a publish, in the same order, with its error codes.
function check(body) {
	if (body === null || typeof body !== 'object' || Array.isArray(body))
		return ['invalid_json', 'request body must be a JSON object', null];
	for (const k of Object.keys(body)) {
		if (k === 'type') {
			if (typeof body.type !== 'string' || !TYPE_RE.test(body.type) || body.type.length > 128)
				return ['invalid_field', "type must be segments of [A-Za-z0-9_-] joined by '.', at most 128 bytes", 'type'];
		} else if (k === 'data') {
			if (body.data === null || typeof body.data !== 'object' || Array.isArray(body.data))
				return ['invalid_field', 'data must be a JSON object', 'data'];
		} else if (k !== 'version' && k !== 'source') {
			return ['invalid_field', `unknown field '${k.slice(0, 80)}' (expected type, data, version, source)`, k];
		}
	}
	if (body.type === undefined)
		return ['missing_field', 'type is required', 'type'];
	if (body.data === undefined)
		return ['missing_field', 'data is required', 'data'];
	return null;
}

async function publish(res, app, raw) {
	let body;
	try {
		body = JSON.parse(raw);
	} catch (e) {
		return fail(res, 400, 'invalid_json', `request body is not JSON: ${e.message}`);
	}
	const bad = check(body);
	if (bad)
		return fail(res, 400, bad[0], bad[1], bad[2]);
	const now = Date.now();
	const id = `msg_${now.toString(36)}${crypto.randomBytes(10).toString('hex')}`;
	const timestamp = new Date(now).toISOString();
	const envelope = JSON.stringify({
		id, type: body.type, timestamp, version: body.version || '1',
		...(body.source ? { source: body.source } : {}), data: body.data,
	});
	try {
		await queue.add('deliver', { app, id, body: envelope }, { jobId: id });
	} catch (e) {
		return fail(res, 503, 'unavailable', `queue: ${e.message}`);
	}
	send(res, 202, { id, type: body.type, timestamp });
}

const server = http.createServer((req, res) => {
	if (req.url === '/healthz' && req.method === 'GET')
		return send(res, 200, { status: 'ok' });
	const m = ROUTE_RE.exec(req.url);
	if (!m)
		return fail(res, 404, 'not_found', 'no such route');
	if (req.method !== 'POST')
		return fail(res, 405, 'method_not_allowed', 'POST only');
	if (!authorized(req))
		return fail(res, 401, 'unauthorized', 'missing or wrong bearer key');
	const chunks = [];
	let len = 0;
	req.on('data', (c) => {
		len += c.length;
		if (len <= MAX_BODY)
			chunks.push(c);
	});
	req.on('end', () => {
		if (len > MAX_BODY)
			return fail(res, 413, 'payload_too_large', `request body is ${len} bytes; the limit is ${MAX_BODY}`);
		if (len === 0)
			return fail(res, 400, 'invalid_json', 'request body is empty; a JSON object is required');
		publish(res, m[1], Buffer.concat(chunks, len).toString('utf8')).catch((e) =>
			fail(res, 500, 'internal', e.message));
	});
});
// The bench keeps its connections for the whole pass; Node's default closes idle ones at 5 s.
server.keepAliveTimeout = 60000;

let stopping = false;
async function stop() {
	if (stopping)
		return;
	stopping = true;
	server.close();
	server.closeAllConnections();
	await queue.close().catch(() => {});
	process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

queue.waitUntilReady().then(() => {
	server.listen(port, '127.0.0.1', () => {
		process.stdout.write(`PORT ${server.address().port}\n`);
	});
}, (e) => {
	process.stderr.write(`api: cannot reach Redis on 127.0.0.1:${redisPort}: ${e.message}\n`);
	process.exit(1);
});
