#!/usr/bin/env node
// libparley and Chromium: sdk_peer (tests/interop/sdk_peer.c, the SDK's public API only)
// against a headless Chromium page (proto_peer.html + proto_peer.js) through the real parleyd.
//
// Both speak the interop channel protocol of tests/interop/aiortc_peer.py (deterministic
// messages from SHA-256, text and binary, 1 B to 64 KiB, #hello/#fin/#bye), so each side checks
// the other's stream byte for byte and in order. Variants, one fresh parleyd each:
//   sdk-offers       sdk_peer creates the room, the page joins: the SDK gets offer-request and
//                    offers, Chromium answers
//   chromium-offers  the page creates the room, sdk_peer joins: Chromium offers, the SDK answers
// MESSAGES messages each way. The page signals over the WebSocket channel and trickles its
// 127.0.0.1 candidates then null; sdk_peer gathers on 127.0.0.1 only (--ice-addr) and signals
// as the SDK chooses (auto). Afterwards both have left (the page's socket closed 1000, the
// SDK's on_left), parleyd is stopped with SIGTERM and must exit 0; with PARLEY_SANITIZED=1 its
// log and sdk_peer's stderr must hold no sanitizer report.
//
// Usage:  node test_sdk_chromium.mjs [sdk-offers] [chromium-offers]     (default: both)
// Environment: PARLEYD (default <repo>/build/bin/parleyd), PARLEY_SDK_PEER (default
//   <repo>/build/tests/sdk_peer), PARLEY_SANITIZED, PARLEY_CHROMIUM (default /usr/bin/chromium).
// Needs `npm ci` in tests/browser (playwright-core) and Debian's chromium, like test_webrtc.mjs.
// Ends with a line `N passed, M failed` and exits non-zero on any failure.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  CHROMIUM,
  CHROMIUM_ARGS,
  HERE,
  Parleyd,
  REPO,
  SANITIZED,
  SANITIZER_MARKERS,
  assert,
  mintToken,
  sleep,
  startPageServer,
  withTimeout,
} from './common.mjs';

const SDK_PEER = process.env.PARLEY_SDK_PEER || path.join(REPO, 'build', 'tests', 'sdk_peer');
const SLOW = SANITIZED ? 3 : 1;
const VARIANT_TIMEOUT_MS = 60000 * SLOW;
const MESSAGES = 200;
const LO = 1;
const HI = 65536;
const LSAN_SUPP = path.join(REPO, 'client-sdk', 'tests', 'lsan.supp');
// The launch flags of test_webrtc.mjs.
const ALL_VARIANTS = ['sdk-offers', 'chromium-offers'];

// ---- sdk_peer ---------------------------------------------------------------------------------

class SdkPeer {
  constructor(args) {
    assert(fs.existsSync(SDK_PEER), `sdk_peer not found at ${SDK_PEER} (set PARLEY_SDK_PEER)`);
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PARLEY_')));
    Object.assign(env, { G_SLICE: 'always-malloc', G_DEBUG: 'gc-friendly' });
    if (fs.existsSync(LSAN_SUPP)) env.LSAN_OPTIONS = `suppressions=${LSAN_SUPP}:print_suppressions=0`;
    this.args = args;
    this.events = [];
    this.stderr = '';
    this.waiters = [];
    this.proc = spawn(SDK_PEER, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) =>
      this.proc.on('exit', (code, signal) => {
        this.exit = { code, signal };
        for (const w of this.waiters.splice(0)) w.reject(new Error(`sdk_peer exited (${code}) without ${w.name}`));
        resolve(this.exit);
      }),
    );
    let buf = '';
    this.proc.stdout.setEncoding('utf8');
    this.proc.stdout.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let ev;
        try {
          ev = JSON.parse(line);
        } catch (e) {
          ev = { event: '<not json>', line };
        }
        this.events.push(ev);
        for (let i = this.waiters.length - 1; i >= 0; i--)
          if (this.waiters[i].name === ev.event) this.waiters.splice(i, 1)[0].resolve(ev);
      }
    });
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (d) => (this.stderr += d));
  }

  waitEvent(name) {
    const seen = this.events.find((e) => e.event === name);
    if (seen) return Promise.resolve(seen);
    if (this.exit) return Promise.reject(new Error(`sdk_peer exited (${this.exit.code}) without ${name}`));
    return new Promise((resolve, reject) => this.waiters.push({ name, resolve, reject }));
  }

  of(name, peer) {
    return this.events.filter((e) => e.event === name && (peer === undefined || e.peer === peer));
  }

  kill() {
    if (!this.exit) this.proc.kill('SIGKILL');
  }

  report() {
    return (
      `--- sdk_peer ${JSON.stringify(this.exit)} ${this.args.filter((a, i) => this.args[i - 1] !== '--token').join(' ')}\n` +
      `stdout:\n${this.events.map((e) => JSON.stringify(e).slice(0, 400)).join('\n')}\n` +
      `stderr (last 60 lines):\n${this.stderr.trimEnd().split('\n').slice(-60).join('\n')}`
    );
  }
}

// ---- one variant ------------------------------------------------------------------------------

async function runVariant(browser, pageOrigin, variant) {
  const secret = crypto.randomBytes(48).toString('hex');
  const srv = new Parleyd({ PARLEY_JWT_SECRET: secret, PARLEY_ALLOWED_ORIGINS: pageOrigin, PARLEY_STUN_URLS: '' });
  const seed = `chromium-${crypto.randomBytes(4).toString('hex')}`;
  const started = Date.now();
  const consoleLines = [];
  let sdk = null;
  let ctx = null;
  let page = null;
  let failure = null;
  let detail = '';
  try {
    await srv.start();
    ctx = await browser.newContext({ permissions: ['microphone'] });
    page = await ctx.newPage();
    page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
    await withTimeout(page.goto(`${pageOrigin}/proto_peer.html`), 15000 * SLOW, 'the page to load');
    const proto = { messages: MESSAGES, lo: LO, hi: HI, seed, echo: false };
    const sdkArgs = (mode) => [
      '--server', srv.base, '--token', mintToken(secret, `sdk-${variant}`, 'Sdk'),
      ...mode, '--ice-addr', '127.0.0.1', '--messages', String(MESSAGES), '--sizes', `${LO}:${HI}`,
      '--seed', seed, '--timeout', String(Math.round((VARIANT_TIMEOUT_MS - 10000) / 1000)),
    ];
    const pageToken = mintToken(secret, `page-${variant}`, 'Page');
    let joined;
    if (variant === 'sdk-offers') {
      sdk = new SdkPeer(sdkArgs(['--create']));
      const j = await withTimeout(sdk.waitEvent('joined'), 15000 * SLOW, 'sdk_peer to create the room');
      joined = await withTimeout(
        page.evaluate((c) => parley.join(c), { ...proto, base: srv.base, token: pageToken, create: false, roomId: j.roomId }),
        15000 * SLOW, 'the page to join',
      );
      assert(JSON.stringify(joined.peers) === JSON.stringify([j.peerId]), `page joined with peers ${JSON.stringify(joined.peers)}`);
    } else {
      joined = await withTimeout(
        page.evaluate((c) => parley.join(c), { ...proto, base: srv.base, token: pageToken, create: true }),
        15000 * SLOW, 'the page to create the room',
      );
      sdk = new SdkPeer(sdkArgs(['--join', joined.roomId]));
    }
    const [res, exit] = await withTimeout(
      Promise.all([page.evaluate(() => parley.run()), sdk.exited]),
      VARIANT_TIMEOUT_MS, 'both sides to finish',
    );
    const sj = sdk.of('joined')[0];
    assert(sj, 'sdk_peer printed no joined line');
    assert(exit.code === 0, `sdk_peer exit ${JSON.stringify(exit)}`);
    assert(sdk.of('error').length === 0, `sdk_peer errors: ${JSON.stringify(sdk.of('error'))}`);
    assert(res.errors.length === 0, `page errors:\n  ${res.errors.join('\n  ')}`);
    const pev = (name) => res.events.filter((e) => e.event === name);
    // who offered
    const role = variant === 'sdk-offers' ? 'answerer' : 'offerer';
    const open = pev('open');
    assert(open.length === 1 && open[0].role === role && open[0].peer === sj.peerId, `page open events ${JSON.stringify(open)}`);
    if (variant === 'sdk-offers') {
      assert(pev('offer-received').length === 1 && pev('offer-received')[0].from === sj.peerId, 'the page got no offer from the SDK');
      assert(pev('offer-request').length === 0, 'the page got an offer-request');
    } else {
      assert(pev('offer-request').length === 1 && pev('offer-request')[0].peer === sj.peerId, 'no offer-request for the SDK peer');
      assert(pev('answer-received').length === 1, 'the page got no answer');
    }
    // the exchange, verified on both sides; bytes agree
    const sdkSent = sdk.of('sent', joined.peerId);
    const sdkRecv = sdk.of('recv_ok', joined.peerId);
    const pageSent = pev('sent');
    const pageRecv = pev('recv_ok');
    assert(sdk.of('connected', joined.peerId).length === 1, 'sdk_peer: not exactly one connected');
    assert(sdkSent.length === 1 && sdkSent[0].n === MESSAGES, `sdk sent ${JSON.stringify(sdkSent)}`);
    assert(sdkRecv.length === 1 && sdkRecv[0].n === MESSAGES, `sdk recv_ok ${JSON.stringify(sdkRecv)}`);
    assert(pageSent.length === 1 && pageSent[0].n === MESSAGES, `page sent ${JSON.stringify(pageSent)}`);
    assert(pageRecv.length === 1 && pageRecv[0].n === MESSAGES, `page recv_ok ${JSON.stringify(pageRecv)}`);
    assert(sdkSent[0].bytes === pageRecv[0].bytes, `SDK sent ${sdkSent[0].bytes} bytes, the page verified ${pageRecv[0].bytes}`);
    assert(pageSent[0].bytes === sdkRecv[0].bytes, `the page sent ${pageSent[0].bytes} bytes, the SDK verified ${sdkRecv[0].bytes}`);
    assert(pev('session-done').length === 1 && sdk.of('session-done').length === 1, 'session-done missing');
    const pageDone = pev('done');
    assert(pageDone.length === 1 && pageDone[0].left === 1000, `page done ${JSON.stringify(pageDone)}`);
    const sdkDone = sdk.of('done');
    assert(sdkDone.length === 1 && sdkDone[0].left === 0, `sdk done ${JSON.stringify(sdkDone)}`);
    const sess = res.sessions[0];
    assert(sess.candidatesSent > 0 && sess.eocSent, `the page sent no loopback candidate / null: ${JSON.stringify(sess)}`);
    detail =
      `${MESSAGES} messages each way (${sdkSent[0].bytes} B SDK->page, ${pageSent[0].bytes} B page->SDK); ` +
      `channel open after ${sdk.of('connected')[0].ms} ms (SDK, from its join call), ${open[0].ms} ms (page); ` +
      `page candidates sent ${sess.candidatesSent}, added ${sess.candidatesAdded}, dropped ${JSON.stringify(sess.candidatesDropped)}`;
  } catch (err) {
    failure = err;
  }
  let state = null;
  if (failure && page) {
    state = await withTimeout(page.evaluate(() => parley.state()), 3000, 'page state').catch((e) => `unavailable: ${e.message}`);
  }
  if (page) await withTimeout(page.evaluate(() => parley.close()), 3000, 'close').catch(() => {});
  if (ctx) await withTimeout(ctx.close(), 5000, 'context close').catch(() => {});
  if (sdk) {
    if (failure) sdk.kill();
    await withTimeout(sdk.exited, 10000, 'sdk_peer to exit').catch(() => sdk.kill());
  }
  try {
    const exit = await srv.stop();
    if (!failure) assert(exit.code === 0, `parleyd exited with ${JSON.stringify(exit)} after SIGTERM`);
  } catch (err) {
    failure = failure || err;
  }
  if (!failure && SANITIZED) {
    const bad = srv.log.split('\n').concat(sdk ? sdk.stderr.split('\n') : []).filter((l) => SANITIZER_MARKERS.some((m) => l.includes(m)));
    if (bad.length) failure = new Error(`sanitizer reports:\n${bad.slice(0, 20).join('\n')}`);
  }
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  if (!failure) {
    console.log(`PASS ${variant} (${secs} s): ${detail}`);
    return true;
  }
  console.log(`FAIL ${variant} (${secs} s): ${failure.stack || failure.message}`);
  console.log('--- page state ---');
  console.log(typeof state === 'string' ? state : JSON.stringify(state, null, 1));
  console.log('--- page console (last 40) ---');
  console.log(consoleLines.slice(-40).join('\n') || '(empty)');
  if (sdk) console.log(sdk.report());
  const logPath = path.join(os.tmpdir(), `parleyd-sdk-chromium-${process.pid}-${variant}.log`);
  fs.writeFileSync(logPath, srv.log);
  console.log(`--- parleyd log tail (full log ${logPath}) ---\n${srv.tail(40)}\n---`);
  return false;
}

async function main() {
  const variants = process.argv.slice(2);
  for (const v of variants) {
    if (!ALL_VARIANTS.includes(v)) {
      console.error(`usage: node test_sdk_chromium.mjs [${ALL_VARIANTS.join('] [')}]`);
      process.exit(2);
    }
  }
  if (!variants.length) variants.push(...ALL_VARIANTS);
  let playwright;
  try {
    playwright = await import('playwright-core');
  } catch (err) {
    console.log(`playwright-core is not installed: run \`npm ci\` in ${HERE}\n${err.message}`);
    console.log(`0 passed, ${variants.length} failed`);
    process.exit(1);
  }
  if (!fs.existsSync(CHROMIUM)) {
    console.log(`no Chromium at ${CHROMIUM}`);
    console.log(`0 passed, ${variants.length} failed`);
    process.exit(1);
  }
  const hard = setTimeout(() => {
    console.log('FAIL: the whole run took too long');
    console.log(`0 passed, ${variants.length} failed`);
    process.exit(1);
  }, VARIANT_TIMEOUT_MS * variants.length + 60000);
  hard.unref();
  const pageServer = await startPageServer({
    '/proto_peer.html': ['text/html; charset=utf-8', path.join(HERE, 'proto_peer.html')],
    '/proto_peer.js': ['text/javascript; charset=utf-8', path.join(HERE, 'proto_peer.js')],
  });
  const pageOrigin = `http://127.0.0.1:${pageServer.address().port}`;
  let passed = 0;
  let failed = 0;
  let browser = null;
  try {
    browser = await withTimeout(
      playwright.chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS }),
      30000, 'Chromium to start',
    );
    for (const v of variants) {
      if (await runVariant(browser, pageOrigin, v)) passed++;
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
