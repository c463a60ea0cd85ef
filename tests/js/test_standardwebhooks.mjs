// End to end: what hookd sends is accepted by the official `standardwebhooks` npm library
// (v1, HMAC-SHA256) and by Node's own Ed25519 verification (v1a) with the endpoint's whpk_ key.
// Everything runs on 127.0.0.1. Needs tests/js/node_modules: run `make test-deps`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HOST = '127.0.0.1';
const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

let Webhook = null;
let loadError = null;
try {
  ({ Webhook } = require('standardwebhooks'));
} catch (e) {
  loadError = e;
}

function needLibrary() {
  if (!Webhook) {
    assert.fail(`the standardwebhooks package is not installed in ${here}/node_modules ` +
      `(${loadError && loadError.code}): run \`make test-deps\` (it runs \`npm ci\` in tests/js)`);
  }
}

const SCALE = Number(process.env.HOOKD_TEST_SCALE || 0) || (() => {
  try {
    const cache = fs.readFileSync(path.join(process.env.HOOKD_BUILD_DIR || '', 'CMakeCache.txt'), 'utf8');
    return /^HOOKD_SANITIZE:BOOL=(ON|1|TRUE|YES)\s*$/mi.test(cache) ? 3 : 1;
  } catch { return 1; }
})();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(pred, timeoutS, what) {
  const deadline = Date.now() + timeoutS * 1000 * SCALE;
  let lastErr = null;
  for (;;) {
    try {
      const v = await pred();
      if (v) return v;
    } catch (e) { lastErr = e; }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${lastErr ? ` (last error: ${lastErr})` : ''}`);
    }
    await sleep(50);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, HOST, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// ------------------------------------------------------------------ receiver
const received = []; // {path, headers, body (Buffer), at}
let receiver;
let receiverPort;

// ------------------------------------------------------------------ daemon
let tmp;
let logPath;
let proc;
let daemonPort;
const adminKey = 'js-' + crypto.randomBytes(12).toString('hex');
let procExit = null;

function daemonLog() {
  try { return fs.readFileSync(logPath, 'utf8'); } catch { return ''; }
}

async function api(method, p, body) {
  const res = await fetch(`http://${HOST}:${daemonPort}${p}`, {
    method,
    headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = text; }
  return { status: res.status, body: json };
}

async function apiOk(method, p, body, expected) {
  const r = await api(method, p, body);
  assert.equal(r.status, expected, `${method} ${p}: ${JSON.stringify(r.body)}`);
  return r.body;
}

before(async () => {
  receiver = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks), at: Date.now() });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  await new Promise((r) => receiver.listen(0, HOST, r));
  receiverPort = receiver.address().port;

  const bin = process.env.HOOKD_BIN || path.join(here, '..', '..', 'build', 'hookd');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hookd-js-'));
  daemonPort = await freePort();
  const cfg = [
    `listen: "${HOST}:${daemonPort}"`,
    `data_dir: ${JSON.stringify(path.join(tmp, 'data'))}`,
    'api:',
    `  admin_key: "${adminKey}"`,
    'security:',
    '  allow_destinations:',
    '    - "127.0.0.0/8"',
    '    - "::1/128"',
    '',
  ].join('\n');
  const cfgPath = path.join(tmp, 'hookd.yaml');
  fs.writeFileSync(cfgPath, cfg);
  logPath = path.join(tmp, 'hookd.log');
  const logFd = fs.openSync(logPath, 'a');
  const env = { ...process.env };
  delete env.HOOKD_ADMIN_KEY;
  proc = spawn(bin, ['serve', '--config', cfgPath], { cwd: tmp, env, stdio: ['ignore', logFd, logFd] });
  proc.on('exit', (code, sig) => { procExit = { code, sig }; });
  fs.closeSync(logFd);
  await waitUntil(async () => {
    if (procExit) throw new Error(`hookd exited ${JSON.stringify(procExit)}:\n${daemonLog()}`);
    const r = await fetch(`http://${HOST}:${daemonPort}/healthz`);
    return r.status === 200;
  }, 20, 'hookd /healthz').catch((e) => {
    throw new Error(`${e.message}\n----- hookd log -----\n${daemonLog()}`);
  });
});

let anyFailed = false;

after(async () => {
  if (proc && !procExit) {
    proc.kill('SIGTERM');
    await waitUntil(() => procExit, 30, 'hookd to exit on SIGTERM').catch(() => proc.kill('SIGKILL'));
  }
  if (receiver) receiver.close();
  const log = daemonLog();
  const san = log.split('\n').filter((l) => /ERROR: (Address|Leak)Sanitizer|runtime error:/.test(l));
  if (anyFailed || san.length) {
    console.error(`----- hookd log (exit ${JSON.stringify(procExit)}) -----\n${log.split('\n').slice(-200).join('\n')}\n----- end -----`);
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  if (san.length) throw new Error(`sanitizer errors in the hookd log: ${san.slice(0, 5).join(' | ')}`);
});

// Runs fn; marks the run failed (to print the daemon log) when it throws.
function hookdTest(name, fn) {
  test(name, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      anyFailed = true;
      throw e;
    }
  });
}

async function waitForDelivery(p, msgId) {
  return waitUntil(() => received.find((r) => r.path === p && r.headers['webhook-id'] === msgId),
    15, `delivery of ${msgId} to ${p}`);
}

function sigEntries(headers, version) {
  return (headers['webhook-signature'] || '').split(' ').filter(Boolean)
    .map((e) => { const i = e.indexOf(','); return [e.slice(0, i), e.slice(i + 1)]; })
    .filter(([v]) => v === version).map(([, s]) => s);
}

function ed25519PublicKey(whpk) {
  assert.ok(whpk.startsWith('whpk_'), whpk);
  const raw = Buffer.from(whpk.slice('whpk_'.length), 'base64');
  assert.equal(raw.length, 32, 'whpk_ is not a 32-byte key');
  return crypto.createPublicKey({
    key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]),
    format: 'der',
    type: 'spki',
  });
}

function verifyV1a(publicKey, headers, body) {
  const signed = Buffer.concat([Buffer.from(`${headers['webhook-id']}.${headers['webhook-timestamp']}.`), body]);
  return sigEntries(headers, 'v1a').some((s) => crypto.verify(null, signed, publicKey, Buffer.from(s, 'base64')));
}

hookdTest('standardwebhooks library accepts hookd HMAC (v1) deliveries', async () => {
  needLibrary();
  const app = await apiOk('POST', '/v1/apps', { name: 'js' }, 201);
  const ep = await apiOk('POST', `/v1/apps/${app.id}/endpoints`,
    { url: `http://${HOST}:${receiverPort}/hmac` }, 201);
  assert.ok(ep.secret.startsWith('whsec_'), ep.secret);
  const data = { invoice: 'in_1', amount: 1999, tags: ['a', 'b'], note: 'h\u00e9llo \u2713' };
  const msg = await apiOk('POST', `/v1/apps/${app.id}/messages`, { type: 'invoice.paid', data }, 202);
  const d = await waitForDelivery('/hmac', msg.id);
  const body = d.body.toString('utf8');

  const wh = new Webhook(ep.secret);
  const payload = wh.verify(body, d.headers);
  assert.equal(payload.id, msg.id);
  assert.equal(payload.type, 'invoice.paid');
  assert.deepEqual(payload.data, data);

  assert.throws(() => wh.verify(body.replace('1999', '1998'), d.headers), /signature/i, 'tampered body accepted');
  assert.throws(() => wh.verify(body + ' ', d.headers), 'body with an extra byte accepted');
  const other = new Webhook('whsec_' + crypto.randomBytes(32).toString('base64'));
  assert.throws(() => other.verify(body, d.headers), 'a wrong secret accepted');
  assert.throws(() => wh.verify(body, { ...d.headers, 'webhook-id': msg.id + 'x' }), 'a changed id accepted');
});

hookdTest('standardwebhooks library accepts deliveries signed during a secret rotation', async () => {
  needLibrary();
  const app = await apiOk('POST', '/v1/apps', { name: 'js-rot' }, 201);
  const ep = await apiOk('POST', `/v1/apps/${app.id}/endpoints`,
    { url: `http://${HOST}:${receiverPort}/rot` }, 201);
  const rot = await apiOk('POST', `/v1/apps/${app.id}/endpoints/${ep.id}/secret/rotate`, {}, 200);
  const msg = await apiOk('POST', `/v1/apps/${app.id}/messages`, { type: 'a.b', data: { r: 1 } }, 202);
  const d = await waitForDelivery('/rot', msg.id);
  const body = d.body.toString('utf8');
  assert.equal(new Webhook(ep.secret).verify(body, d.headers).id, msg.id);
  assert.equal(new Webhook(rot.secret).verify(body, d.headers).id, msg.id);
});

hookdTest('Ed25519 (v1a) deliveries verify with the endpoint public key', async () => {
  const app = await apiOk('POST', '/v1/apps', { name: 'js-ed' }, 201);
  const ep = await apiOk('POST', `/v1/apps/${app.id}/endpoints`,
    { url: `http://${HOST}:${receiverPort}/ed`, secret_type: 'ed25519' }, 201);
  assert.equal(ep.secret_type, 'ed25519');
  assert.ok(ep.secret.startsWith('whsk_'), ep.secret);
  const sk = Buffer.from(ep.secret.slice('whsk_'.length), 'base64');
  assert.equal(sk.length, 64, 'whsk_ is not 64 bytes (seed + public key)');
  const pkRaw = Buffer.from(ep.public_key.slice('whpk_'.length), 'base64');
  assert.deepEqual(sk.subarray(32), pkRaw, 'public_key is not the second half of the secret key');
  const publicKey = ed25519PublicKey(ep.public_key);
  const got = await apiOk('GET', `/v1/apps/${app.id}/endpoints/${ep.id}`, undefined, 200);
  assert.equal(got.public_key, ep.public_key);

  const data = { order: 'o_9', items: [1, 2, 3] };
  const msg = await apiOk('POST', `/v1/apps/${app.id}/messages`, { type: 'order.created', data }, 202);
  const d = await waitForDelivery('/ed', msg.id);
  assert.ok(sigEntries(d.headers, 'v1a').length >= 1, `no v1a entry: ${d.headers['webhook-signature']}`);
  assert.equal(sigEntries(d.headers, 'v1').length, 0, `unexpected v1 entry: ${d.headers['webhook-signature']}`);
  assert.ok(Math.abs(Number(d.headers['webhook-timestamp']) - Date.now() / 1000) < 60);
  assert.ok(verifyV1a(publicKey, d.headers, d.body), `v1a signature does not verify: ${d.headers['webhook-signature']}`);
  const payload = JSON.parse(d.body.toString('utf8'));
  assert.equal(payload.id, msg.id);
  assert.deepEqual(payload.data, data);

  const tampered = Buffer.from(d.body.toString('utf8').replace('o_9', 'o_8'));
  assert.ok(!verifyV1a(publicKey, d.headers, tampered), 'tampered body verifies');
  assert.ok(!verifyV1a(publicKey, { ...d.headers, 'webhook-timestamp': String(Number(d.headers['webhook-timestamp']) + 1) }, d.body),
    'changed timestamp verifies');
  const otherKey = crypto.generateKeyPairSync('ed25519').publicKey;
  assert.ok(!verifyV1a(otherKey, d.headers, d.body), 'verifies with another public key');

  // The libsodium-style secret key signs like hookd does: derive the key from the seed and
  // check that a signature made here over the same content equals hookd's (Ed25519 is deterministic).
  const privateKey = crypto.createPrivateKey({
    key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), sk.subarray(0, 32)]),
    format: 'der',
    type: 'pkcs8',
  });
  const signed = Buffer.concat([Buffer.from(`${d.headers['webhook-id']}.${d.headers['webhook-timestamp']}.`), d.body]);
  const mine = crypto.sign(null, signed, privateKey).toString('base64');
  assert.ok(sigEntries(d.headers, 'v1a').includes(mine), 'hookd signature differs from one made with its own secret key');
});
