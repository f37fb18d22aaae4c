#!/usr/bin/env node
// A real WebRTC handshake through parleyd between two headless Chromium pages.
//
// For each variant a fresh parleyd (the real binary) runs on a free loopback port; the test
// page (peer.html + peer.js) is served from a tiny HTTP server on another loopback port, so
// every call to parleyd is cross-origin (CORS, with preflights). Two pages, each in its own
// browser context: A creates a room, B joins it, A gets `offer-request` for B and offers over
// a DataChannel-only RTCPeerConnection, B answers, both trickle candidates (and the
// end-of-candidates null), the channel opens and carries MESSAGES messages each way, checked
// exactly and in order; then B leaves and A must get `peer-left`. parleyd is stopped with
// SIGTERM and must exit 0 (and, when PARLEY_SANITIZED=1, print no sanitizer report).
//
// Variants: rest  signaling over REST only (POST offer/answer/candidate, GET events/offer/
//                 answer with ?wait long-polls: the seed's polling flow)
//           ws    signaling over GET /signaling/ws
//
// With --nodes 2 the variant runs on a small cluster instead: a redis-server of its own (free
// loopback port, no persistence) and two parleyd nodes on it; page A talks only to node 1 and
// page B only to node 2, so every envelope crosses nodes through Redis.
//
// Usage:  node test_webrtc.mjs [--nodes 1|2] [rest] [ws]        (default: 1 node, both)
// Environment: PARLEYD (default <repo>/build/bin/parleyd), PARLEY_SANITIZED ("1": sanitizer
//   checks, longer time bounds), PARLEY_CHROMIUM (default /usr/bin/chromium),
//   PARLEY_TEST_KEEP_LOGS=1 (keep parleyd logs; they are kept on failure anyway).
// Needs: `npm ci` in this directory (tests/run.sh does it), Debian's chromium.
// Ends with a line `N passed, M failed` and exits non-zero on any failure.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import {
  CHROMIUM,
  CHROMIUM_ARGS,
  HERE,
  Parleyd,
  RedisServer,
  SANITIZED,
  assert,
  assertList,
  mintToken,
  startPageServer,
  withTimeout,
} from './common.mjs';

const KEEP_LOGS = process.env.PARLEY_TEST_KEEP_LOGS === '1';
const SLOW = SANITIZED ? 2 : 1;
const VARIANT_TIMEOUT_MS = 30000 * SLOW; // one variant, start to finish
const STEP_TIMEOUT_MS = 15000 * SLOW; // one awaited step inside it
const MESSAGES = 10;
const ALL_VARIANTS = ['rest', 'ws'];

// ---- one variant -----------------------------------------------------------------------------

async function runVariant(browser, pageOrigin, variant, nodes) {
  const secret = crypto.randomBytes(48).toString('hex');
  const name = nodes > 1 ? `${variant} on ${nodes} nodes` : variant;
  const redis = nodes > 1 ? new RedisServer() : null;
  const srvs = [];
  for (let i = 0; i < nodes; i++) {
    const env = { PARLEY_JWT_SECRET: secret, PARLEY_ALLOWED_ORIGINS: pageOrigin };
    srvs.push(new Parleyd(env));
  }
  // Page A's node and page B's node (the same one unless --nodes 2).
  const srvA = srvs[0];
  const srvB = srvs[srvs.length - 1];
  const contexts = [];
  const consoles = { A: [], B: [] };
  let pages = {};
  let failure = null;
  let detail = '';
  const started = Date.now();
  const deadline = started + VARIANT_TIMEOUT_MS;
  // Every awaited step is bounded by the variant's deadline (and by STEP_TIMEOUT_MS).
  const step = (promise, what) =>
    withTimeout(promise, Math.max(1, Math.min(STEP_TIMEOUT_MS, deadline - Date.now())), what);
  try {
    if (redis) {
      await step(redis.start(), 'redis-server to start');
      srvs.forEach((srv, i) => Object.assign(srv.env, { PARLEY_STORE: redis.url, PARLEY_NODE_ID: `browser-node-${i + 1}` }));
    }
    for (const srv of srvs) await srv.start();
    for (const who of ['A', 'B']) {
      // Camera/microphone permission lets WebRTC enumerate every interface (loopback too):
      // without it Chromium offers only the default route's addresses. No device is opened.
      const ctx = await browser.newContext({ permissions: ['microphone'] });
      contexts.push(ctx);
      const page = await ctx.newPage();
      page.on('console', (m) => consoles[who].push(`${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => consoles[who].push(`pageerror: ${e.message}`));
      page.on('crash', () => consoles[who].push('page crashed'));
      await step(page.goto(`${pageOrigin}/peer.html`), `page ${who} to load`);
      pages[who] = page;
    }
    const { A, B } = pages;
    const tokA = mintToken(secret, `alice-${variant}`, 'Alice');
    const tokB = mintToken(secret, `bob-${variant}`, 'Bob');

    const created = await step(
      A.evaluate(([base, tok]) => parley.createRoom(base, tok), [srvA.base, tokA]),
      'create-room',
    );
    assert(Array.isArray(created.iceServers), `create-room: no iceServers array: ${JSON.stringify(created)}`);
    const joined = await step(
      B.evaluate(([base, tok, room]) => parley.joinRoom(base, tok, room), [srvB.base, tokB, created.roomId]),
      'join-room',
    );
    assert(
      joined.roomId === created.roomId,
      `join-room: roomId ${joined.roomId}, expected ${created.roomId}`,
    );
    assertList(
      joined.peers.map((p) => p.peerId),
      [created.peerId],
      'join-room peers',
    );

    const cfg = (role, remote) => ({ role, variant, remote, messages: MESSAGES });
    const [resA, resB] = await step(
      Promise.all([
        A.evaluate((c) => parley.start(c), cfg('offerer', joined.peerId)),
        B.evaluate((c) => parley.start(c), cfg('answerer', created.peerId)),
      ]),
      'the data channel to carry every message both ways',
    );
    for (const r of [resA, resB])
      assert(r.errors.length === 0, `${r.role} reported errors:\n  ${r.errors.join('\n  ')}`);
    assertList(
      resA.received,
      [...Array(MESSAGES).keys()].map((i) => `B->A message ${i}`),
      'A received',
    );
    assertList(
      resB.received,
      [...Array(MESSAGES).keys()].map((i) => `A->B message ${i}`),
      'B received',
    );
    for (const r of [resA, resB]) {
      assert(r.candidatesSent > 0, `${r.role} sent no loopback candidate`);
      assert(r.candidatesReceived > 0, `${r.role} received no candidate`);
      assert(
        r.eocSent && r.eocReceived,
        `${r.role}: end-of-candidates sent ${r.eocSent}, received ${r.eocReceived}`,
      );
      if (variant === 'ws') {
        assert(
          r.wsProtocol === 'parley.v1',
          `${r.role}: socket subprotocol ${JSON.stringify(r.wsProtocol)}, expected "parley.v1"`,
        );
      }
    }
    assert(resA.envelopeTypes.includes('offer-request'), `A never got offer-request: ${resA.envelopeTypes}`);
    assert(
      resB.envelopeTypes[0] === 'offer',
      `B's first envelope is ${resB.envelopeTypes[0]}, expected offer`,
    );

    // B leaves: REST leave-room answers 204; over the socket the server closes with 1000.
    const left = await step(
      B.evaluate(() => parley.leave()),
      'B to leave the room',
    );
    if (variant === 'ws') {
      // A second close frame from the server (RFC 6455 5.5.1) makes Chromium report 1006.
      assert(left.close === 1000, `leave over the socket: close code ${left.close}, expected 1000`);
    } else if (variant !== 'ws') {
      assert(left.status === 204, `POST leave-room: HTTP ${left.status}, expected 204`);
    }
    await step(
      A.evaluate((b) => parley.waitFor('peer-left', b), joined.peerId),
      'A to get peer-left for B',
    );

    // Every signal sent over the socket carried a ref: each must have been acked by now.
    const [stA, stB] = await step(
      Promise.all([A.evaluate(() => parley.state()), B.evaluate(() => parley.state())]),
      'page state',
    );
    detail =
      `${MESSAGES} messages each way; loopback candidates sent A ${stA.candidatesSent}, B ${stB.candidatesSent}; ` +
      `skipped ${JSON.stringify([...new Set([...stA.candidatesSkipped, ...stB.candidatesSkipped])])}; ` +
      `data channel open after ${stA.dcOpenedAt} ms (A)` +
      (variant === 'ws' ? `; ${stA.acks + stB.acks} acks` : '');
    for (const st of [stA, stB]) {
      assert(st.errors.length === 0, `${st.role} reported errors:\n  ${st.errors.join('\n  ')}`);
      if (variant === 'ws')
        assert(st.acks === st.refsSent, `${st.role}: ${st.acks} acks for ${st.refsSent} signals with a ref`);
    }
    if (nodes > 1 && variant === 'ws') {
      // Each page's socket lived on its own node, and each node pushed to its own socket.
      for (const [who, srv] of [['A', srvA], ['B', srvB]]) {
        const socks = await srv.metric('parley_ws_connections_total');
        const pushed = await srv.metric('parley_ws_envelopes_pushed_total');
        assert(socks === 1, `${who}'s node counted ${socks} WebSockets, expected 1`);
        assert(pushed > 0, `${who}'s node pushed ${pushed} envelopes`);
      }
      detail += '; one socket on each node';
    }
  } catch (err) {
    failure = err;
  }

  // Diagnostics are gathered before anything is torn down.
  let states = {};
  if (failure) {
    for (const [who, page] of Object.entries(pages)) {
      try {
        states[who] = await withTimeout(
          page.evaluate(() => parley.state()),
          3000,
          'page state',
        );
      } catch (err) {
        states[who] = `unavailable: ${err.message}`;
      }
    }
  }
  for (const page of Object.values(pages))
    await withTimeout(
      page.evaluate(() => parley.close()),
      3000,
      'close',
    ).catch(() => {});
  for (const ctx of contexts) await withTimeout(ctx.close(), 5000, 'context close').catch(() => {});

  const exits = [];
  for (const srv of srvs) {
    let exit = null;
    try {
      exit = await srv.stop();
      if (!failure && exit) {
        assert(exit.code === 0, `parleyd exited with ${JSON.stringify(exit)} after SIGTERM, expected code 0`);
      }
    } catch (err) {
      failure = failure || err;
    }
    exits.push(exit);
    if (!failure && SANITIZED) {
      const bad = srv.sanitizerLines();
      if (bad.length)
        failure = new Error(`sanitizer reports in parleyd's log:\n${bad.slice(0, 20).join('\n')}`);
    }
    srv.kill();
  }
  if (redis) redis.stop();

  const secs = ((Date.now() - started) / 1000).toFixed(1);
  if (!failure) {
    if (KEEP_LOGS) for (const srv of srvs) console.log(`  parleyd log: ${srv.saveLog()}`);
    console.log(`PASS ${name} (${secs} s): ${detail}`);
    return true;
  }
  console.log(`FAIL ${name} (${secs} s): ${failure.message}`);
  for (const who of ['A', 'B']) {
    console.log(`--- page ${who} state ---`);
    console.log(JSON.stringify(states[who], null, 1));
    console.log(`--- page ${who} console (last 60) ---`);
    console.log(consoles[who].slice(-60).join('\n') || '(empty)');
  }
  srvs.forEach((srv, i) => {
    console.log(
      `--- parleyd log tail (${srv.base || 'not started'}; exit ${JSON.stringify(exits[i])}; full log ${srv.saveLog()}) ---`,
    );
    console.log(srv.tail(40));
  });
  console.log('---');
  return false;
}

// ---- main --------------------------------------------------------------------------------------

async function main() {
  const args = process.argv.slice(2);
  let nodes = 1;
  const at = args.indexOf('--nodes');
  if (at >= 0) {
    nodes = Number(args[at + 1]);
    args.splice(at, 2);
  }
  const variants = args;
  for (const v of variants) {
    if (!ALL_VARIANTS.includes(v) || ![1, 2].includes(nodes)) {
      console.error(`usage: node test_webrtc.mjs [--nodes 1|2] [${ALL_VARIANTS.join('] [')}]`);
      process.exit(2);
    }
  }
  if (!variants.length) variants.push(...ALL_VARIANTS);

  let playwright;
  try {
    playwright = await import('playwright-core');
  } catch (err) {
    console.log(
      `playwright-core is not installed: run \`npm ci\` in ${HERE} (tests/run.sh does)\n${err.message}`,
    );
    console.log(`0 passed, ${variants.length} failed`);
    process.exit(1);
  }
  if (!fs.existsSync(CHROMIUM)) {
    console.log(`no Chromium at ${CHROMIUM}: deploy/install-deps.sh installs Debian's chromium`);
    console.log(`0 passed, ${variants.length} failed`);
    process.exit(1);
  }

  // A hard bound on the whole run, whatever hangs.
  const hard = setTimeout(
    () => {
      console.log(
        `FAIL: the whole run took more than ${(VARIANT_TIMEOUT_MS * variants.length + 60000) / 1000} s`,
      );
      console.log(`0 passed, ${variants.length} failed`);
      process.exit(1);
    },
    VARIANT_TIMEOUT_MS * variants.length + 60000,
  );
  hard.unref();

  const pageServer = await startPageServer({
    '/peer.html': ['text/html; charset=utf-8', path.join(HERE, 'peer.html')],
    '/peer.js': ['text/javascript; charset=utf-8', path.join(HERE, 'peer.js')],
  });
  const pageOrigin = `http://127.0.0.1:${pageServer.address().port}`;
  let passed = 0;
  let failed = 0;
  let browser = null;
  try {
    browser = await withTimeout(
      playwright.chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS }),
      30000,
      'Chromium to start',
    );
    for (const v of variants) {
      if (await runVariant(browser, pageOrigin, v, nodes)) passed++;
      else failed++;
    }
  } catch (err) {
    console.log(`FAIL: ${err.stack || err}`);
    failed = variants.length - passed;
  } finally {
    if (browser) await withTimeout(browser.close(), 10000, 'Chromium to close').catch(() => {});
    pageServer.close();
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
