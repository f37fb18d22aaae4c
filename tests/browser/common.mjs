// Shared by the browser tests (test_webrtc.mjs, test_sdk_chromium.mjs): Chromium's flags, a
// tiny page server, token minting, bounded waits, and parleyd / redis-server as child
// processes. Environment: PARLEYD (default <repo>/build/bin/parleyd), PARLEY_CHROMIUM
// (default /usr/bin/chromium), PARLEY_SANITIZED ("1": sanitizer checks, longer bounds).

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..', '..');
export const PARLEYD = process.env.PARLEYD || path.join(REPO, 'build', 'bin', 'parleyd');
export const CHROMIUM = process.env.PARLEY_CHROMIUM || '/usr/bin/chromium';
export const SANITIZED = ['1', 'on', 'true', 'yes'].includes((process.env.PARLEY_SANITIZED || '').toLowerCase());
// Time bounds of parleyd's start and stop scale by this under the sanitizers.
const SLOW = SANITIZED ? 2 : 1;
export const SANITIZER_MARKERS = ['AddressSanitizer', 'runtime error', 'LeakSanitizer'];
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Plain host candidates (no mDNS names), and loopback ones among them: the pages send and
  // use loopback candidates only, so ICE traffic never leaves 127.0.0.1 / ::1.
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--allow-loopback-in-peer-connection',
];

// ---- small helpers ------------------------------------------------------------------------

export const b64url = (buf) => Buffer.from(buf).toString('base64url');

export function mintToken(secret, sub, name) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ sub, name, iat: now, exp: now + 3600 }));
  const sig = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest();
  return `${head}.${body}.${b64url(sig)}`;
}

export class StepTimeout extends Error {}

export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new StepTimeout(`timed out after ${ms / 1000} s: ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

export function assertList(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  assert(a === e, `${what}: got ${a}, expected ${e}`);
}

// ---- the page's HTTP server -----------------------------------------------------------------

// files: URL path -> [content type, file path].
export function startPageServer(files) {
  const server = http.createServer((req, res) => {
    const f = files[new URL(req.url, 'http://x').pathname];
    if (!f || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    const body = fs.readFileSync(f[1]);
    res.writeHead(200, { 'Content-Type': f[0], 'Cache-Control': 'no-store', 'Content-Length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

// ---- redis-server (for --nodes 2) ----------------------------------------------------------

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export class RedisServer {
  async start() {
    for (let attempt = 0; attempt < 3; attempt++) {
      this.port = await freePort();
      this.url = `redis://127.0.0.1:${this.port}/0`;
      const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
      this.proc = spawn('redis-server', args, { stdio: 'ignore' });
      this.exit = null;
      this.proc.on('exit', (code, signal) => (this.exit = { code, signal }));
      this.proc.on('error', () => (this.exit = { code: -1 }));
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline && !this.exit) {
        if (await this.ping()) return this;
        await sleep(50);
      }
      this.stop();
    }
    throw new Error('could not start redis-server on a free loopback port');
  }

  ping() {
    return new Promise((resolve) => {
      const sock = net.connect(this.port, '127.0.0.1');
      let buf = '';
      sock.setTimeout(500, () => sock.destroy());
      sock.on('connect', () => sock.write('PING\r\n'));
      sock.on('data', (d) => {
        buf += d;
        if (buf.includes('\r\n')) sock.end();
      });
      sock.on('error', () => {});
      sock.on('close', () => resolve(buf.startsWith('+PONG')));
    });
  }

  stop() {
    if (this.proc && !this.exit) this.proc.kill('SIGKILL');
  }
}

// ---- parleyd ---------------------------------------------------------------------------------

export class Parleyd {
  constructor(env) {
    this.env = env;
    this.log = '';
    this.proc = null;
    this.exit = null; // {code, signal}
    this.logPath = path.join(os.tmpdir(), `parleyd-browser-${process.pid}-${Date.now()}.log`);
  }

  async start() {
    assert(fs.existsSync(PARLEYD), `parleyd binary not found at ${PARLEYD} (set PARLEYD)`);
    // parleyd refuses unknown PARLEY_* variables: it gets exactly the ones set here.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PARLEY_')));
    Object.assign(env, { PARLEY_LISTEN: '127.0.0.1:0', PARLEY_LOG_LEVEL: 'info' }, this.env);
    this.proc = spawn(PARLEYD, [], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
    this.proc.on('error', (err) => {
      this.log += `spawn error: ${err.message}\n`;
    });
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (d) => {
      this.log += d;
    });
    const deadline = Date.now() + 10000 * SLOW;
    for (;;) {
      const m = this.log.match(/\{[^\n]*"msg":"listening"[^\n]*\}/);
      if (m) {
        const addr = JSON.parse(m[0]).addr;
        this.base = `http://${addr}`;
        break;
      }
      if (this.exit)
        throw new Error(`parleyd exited during start-up (${JSON.stringify(this.exit)}):\n${this.tail(40)}`);
      if (Date.now() > deadline) throw new Error(`parleyd printed no "listening" line:\n${this.tail(40)}`);
      await sleep(20);
    }
    // On the redis engine the node serves once it has connected and subscribed.
    for (;;) {
      const r = await fetch(`${this.base}/readyz`).catch(() => null);
      if (r && r.status === 200) return this;
      if (this.exit)
        throw new Error(`parleyd exited during start-up (${JSON.stringify(this.exit)}):\n${this.tail(40)}`);
      if (Date.now() > deadline) throw new Error(`parleyd never turned ready:\n${this.tail(40)}`);
      await sleep(50);
    }
  }

  async metric(name) {
    const text = await (await fetch(`${this.base}/metrics`)).text();
    const m = text.match(new RegExp(`^${name} (\\S+)$`, 'm'));
    return m ? Number(m[1]) : NaN;
  }

  tail(n = 30) {
    return this.log.trimEnd().split('\n').slice(-n).join('\n');
  }

  // SIGTERM; returns the exit code (or throws when it did not exit in time).
  async stop() {
    if (!this.proc) return null;
    if (!this.exit) {
      this.proc.kill('SIGTERM');
      try {
        await withTimeout(this.exited, 10000 * SLOW, 'parleyd to exit after SIGTERM');
      } catch (err) {
        this.proc.kill('SIGKILL');
        await this.exited;
        throw err;
      }
    }
    await sleep(0); // let the last stderr data arrive
    return this.exit;
  }

  kill() {
    if (this.proc && !this.exit) this.proc.kill('SIGKILL');
  }

  sanitizerLines() {
    return this.log.split('\n').filter((l) => SANITIZER_MARKERS.some((m) => l.includes(m)));
  }

  saveLog() {
    fs.writeFileSync(this.logPath, this.log);
    return this.logPath;
  }
}
