'use strict';
// worker.js - the peer's delivery side: a BullMQ Worker that POSTs each job's envelope to the
// app's endpoint with undici over keep-alive connections, signed the Standard Webhooks way
// (what hookd sends):
//
//   webhook-id: <message id>   webhook-timestamp: <unix s>
//   webhook-signature: v1,<base64 HMAC-SHA256 over "<id>.<timestamp>.<body>", key = the
//                      base64 part of the whsec_ secret>
//
// A 2xx completes the job; anything else (or a transport error, or no answer within 15 s,
// hookd's default delivery.timeout_ms) throws, and BullMQ retries the job with the backoff in
// common.js. Concurrency 64 is hookd's default max_inflight_per_endpoint, and the pool keeps
// up to that many connections to the endpoint's origin.
//
// Usage: node worker.js --redis-port N --sink URL --secret whsec_... [--queue NAME]
//                       [--concurrency 64]
// The endpoint of app A is URL + "/A/ep0" (see api.js). Prints "READY" on stdout once it is
// connected; on SIGTERM/SIGINT it stops taking jobs, lets the running ones finish, prints
// "worker completed=N failed_attempts=M" on stderr and exits.
const crypto = require('node:crypto');
const { Worker } = require('bullmq');
const { Agent, request } = require('undici');
const { arg } = require('./common');

const redisPort = Number(arg('--redis-port'));
const sink = arg('--sink').replace(/\/+$/, '');
const secret = arg('--secret');
const queueName = arg('--queue', 'hookd-bench');
const concurrency = Number(arg('--concurrency', '64'));
// hookd's defaults: delivery.connect_timeout_ms 5000, delivery.timeout_ms 15000.
const CONNECT_TIMEOUT_MS = 5000;
const TIMEOUT_MS = 15000;

if (!secret.startsWith('whsec_')) {
	process.stderr.write('worker: --secret must start with whsec_\n');
	process.exit(2);
}
const signingKey = Buffer.from(secret.slice('whsec_'.length), 'base64');
const agent = new Agent({
	connections: concurrency,
	keepAliveTimeout: 60000,
	headersTimeout: TIMEOUT_MS,
	bodyTimeout: TIMEOUT_MS,
	connect: { timeout: CONNECT_TIMEOUT_MS },
});

function sign(id, ts, body) {
	const mac = crypto.createHmac('sha256', signingKey).update(`${id}.${ts}.${body}`).digest('base64');
	return `v1,${mac}`;
}

async function deliver(job) {
	const { app, id, body } = job.data;
	const ts = Math.floor(Date.now() / 1000);
	const res = await request(`${sink}/${app}/ep0`, {
		method: 'POST',
		dispatcher: agent,
		headers: {
			'content-type': 'application/json',
			'webhook-id': id,
			'webhook-timestamp': String(ts),
			'webhook-signature': sign(id, ts, body),
		},
		body,
	});
	await res.body.dump();
	if (res.statusCode < 200 || res.statusCode > 299)
		throw new Error(`HTTP ${res.statusCode}`);
}

let completed = 0;
let failed = 0;
const worker = new Worker(queueName, deliver, {
	connection: { host: '127.0.0.1', port: redisPort },
	concurrency,
});
worker.on('completed', () => { completed++; });
worker.on('failed', () => { failed++; });
worker.on('error', (e) => process.stderr.write(`worker: ${e.message}\n`));

let stopping = false;
async function stop() {
	if (stopping)
		return;
	stopping = true;
	await worker.close().catch(() => {});
	await agent.close().catch(() => {});
	process.stderr.write(`worker completed=${completed} failed_attempts=${failed}\n`);
	process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

worker.waitUntilReady().then(() => process.stdout.write('READY\n'), (e) => {
	process.stderr.write(`worker: cannot reach Redis on 127.0.0.1:${redisPort}: ${e.message}\n`);
	process.exit(1);
});
