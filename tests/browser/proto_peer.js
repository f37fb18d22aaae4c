// A Chromium peer speaking the interop channel protocol (loaded by proto_peer.html).
//
// The page counterpart of tests/interop/aiortc_peer.py and tests/interop/sdk_peer.c: it
// creates or joins a parleyd room over REST, signals over the WebSocket channel (parley.v1),
// offers on `offer-request` and answers an `offer`, trickles its IPv4 loopback candidates and
// then the end-of-candidates null, and exchanges the deterministic messages of the shared
// protocol (aiortc_peer.py's header: message i of peer P's stream from SHA-256 of
// "parley/<seed>/<P>/<i>/...", even i text, odd i binary, sizes over powers of two; the
// #hello / #fin / #bye control messages; echo mode), checked byte for byte and in order.
//
// test_sdk_chromium.mjs drives it:
//   await parley.join({base, token, create, roomId, messages, lo, hi, seed, echo, peers})
//                                                       -> {roomId, peerId, peers}
//   await parley.run()   -> summary when the session is over
//                        (this side done and the other's #bye, its close, or 3 s later) and
//                        the page left the room (WebSocket {"type":"leave"}, close 1000)
//   parley.state()      everything recorded so far, for diagnostics
//   parley.close()      closes the socket and the peer connection
//   parley.message(seed, sender, i, lo, hi)  message i of sender's stream ({kind, bytes})
// Events are recorded with the same names and fields as the other peers' JSON lines
// (joined, offer-request, offer-sent, offer-received, answer-sent, answer-received, open,
// sent, recv_ok, session-done, done, error).
//
// Only 127.0.0.1 candidates are sent or used (Chromium runs with
// --allow-loopback-in-peer-connection), so ICE traffic never leaves the loopback interface.
'use strict';

(() => {
  const ALPHA = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const LINGER_MS = 3000;
  const HIGH_WATER = 1 << 20;
  const enc = new TextEncoder();
  const dec = new TextDecoder('utf-8', { fatal: true });
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);

  // SHA-256 (FIPS 180-4), synchronous, on Uint8Array.
  const K256 = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);
  function sha256(bytes) {
    const n = bytes.length;
    const total = ((n + 9 + 63) >> 6) << 6;
    const buf = new Uint8Array(total);
    buf.set(bytes);
    buf[n] = 0x80;
    const dv = new DataView(buf.buffer);
    dv.setUint32(total - 8, Math.floor((n * 8) / 0x100000000));
    dv.setUint32(total - 4, (n * 8) >>> 0);
    const H = new Uint32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]);
    const W = new Uint32Array(64);
    const rotr = (x, r) => (x >>> r) | (x << (32 - r));
    for (let off = 0; off < total; off += 64) {
      for (let t = 0; t < 16; t++) W[t] = dv.getUint32(off + t * 4);
      for (let t = 16; t < 64; t++) {
        const x = W[t - 15];
        const y = W[t - 2];
        const s0 = rotr(x, 7) ^ rotr(x, 18) ^ (x >>> 3);
        const s1 = rotr(y, 17) ^ rotr(y, 19) ^ (y >>> 10);
        W[t] = (W[t - 16] + s0 + W[t - 7] + s1) >>> 0;
      }
      let [a, b, c, d, e, f, g, h] = H;
      for (let t = 0; t < 64; t++) {
        const S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        const ch = (e & f) ^ (~e & g);
        const t1 = (h + S1 + ch + K256[t] + W[t]) >>> 0;
        const S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        const maj = (a & b) ^ (a & c) ^ (b & c);
        const t2 = (S0 + maj) >>> 0;
        h = g;
        g = f;
        f = e;
        e = (d + t1) >>> 0;
        d = c;
        c = b;
        b = a;
        a = (t1 + t2) >>> 0;
      }
      H[0] += a; H[1] += b; H[2] += c; H[3] += d; H[4] += e; H[5] += f; H[6] += g; H[7] += h;
    }
    const out = new Uint8Array(32);
    const odv = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) odv.setUint32(i * 4, H[i]);
    return out;
  }

  function utf8(s) {
    return enc.encode(s);
  }
  function bitlen(x) {
    let n = 0;
    while (x > 0) {
      n++;
      x = Math.floor(x / 2);
    }
    return n;
  }

  // ---- the deterministic messages (aiortc_peer.py's msg_size() and message()) -------------
  function msgSize(seed, sender, i, lo, hi) {
    if (i === 0) return lo;
    if (i === 1 || i === 2) return hi;
    const d = sha256(utf8(`parley/${seed}/${sender}/${i}/size`));
    const dv = new DataView(d.buffer);
    const hHi = dv.getUint32(0); // h >> 32
    const hLo = dv.getUint32(4); // h & 0xFFFFFFFF
    const e0 = bitlen(Math.max(lo, 1)) - 1;
    const e1 = bitlen(hi) - 1;
    const e = e0 + (hLo % (e1 - e0 + 1));
    const a = Math.max(lo, 2 ** e);
    const b = Math.min(hi, 2 ** (e + 1) - 1);
    return a + (hHi % (b - a + 1));
  }

  // {kind: 'text'|'binary', bytes: Uint8Array} (text: valid UTF-8 of exactly size bytes)
  function message(seed, sender, i, lo, hi) {
    const size = msgSize(seed, sender, i, lo, hi);
    const raw = new Uint8Array(size + 32);
    for (let off = 0, k = 0; off < size; off += 32, k++)
      raw.set(sha256(utf8(`parley/${seed}/${sender}/${i}/${k}`)), off);
    if (i % 2) return { kind: 'binary', bytes: raw.slice(0, size) };
    const out = new Uint8Array(size);
    let n = 0;
    for (let r = 0; r < size && n < size; r++) {
      const b = raw[r];
      if (b >= 0xf8 && size - n >= 2) {
        out[n++] = 0xc3; // é
        out[n++] = 0xa9;
      } else {
        out[n++] = ALPHA.charCodeAt(b & 63);
      }
    }
    return { kind: 'text', bytes: out };
  }

  function describeMismatch(i, want, kind, got) {
    if (want.kind !== kind)
      return `message ${i}: expected ${want.kind} of ${want.bytes.length} bytes, got ${kind} of ${got.length} bytes`;
    const m = Math.min(want.bytes.length, got.length);
    let off = 0;
    while (off < m && want.bytes[off] === got[off]) off++;
    return `message ${i} (${kind}): expected ${want.bytes.length} bytes, got ${got.length} bytes, first difference at byte ${off}`;
  }

  // ---- state -------------------------------------------------------------------------------
  const S = {
    base: null,
    roomId: null,
    peerId: null,
    token: null,
    heartbeatMs: 30000,
    cfg: null,
    events: [],
    errors: [],
    log: [],
    failed: null,
  };
  const sessions = new Map(); // remote peer id -> Session
  let ws = null;
  let wsClose = null;
  let leaving = false;
  let refs = 0;
  let hbTimer = null;
  let tJoin = 0;
  let resolveRun = null;
  let finished = 0;

  function emit(event, fields) {
    const e = { event, ...(fields || {}) };
    S.events.push(e);
    log('event', e);
  }
  function log(...args) {
    const line = args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
    S.log.push(`${ms()} ${line}`);
    if (S.log.length > 2000) S.log.shift();
  }
  function fail(detail) {
    if (S.failed) return;
    S.failed = String(detail);
    S.errors.push(S.failed);
    emit('error', { detail: S.failed });
    if (resolveRun) resolveRun(summary());
  }

  // ---- REST ----------------------------------------------------------------------------------
  async function api(method, path, { token, body } = {}) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    let payload;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const r = await fetch(S.base + path, { method, headers, body: payload });
    const text = await r.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (e) {
      json = undefined;
    }
    return { status: r.status, json, text };
  }

  async function join(cfg) {
    S.base = cfg.base;
    S.cfg = { peers: 1, echo: false, ...cfg, token: undefined };
    tJoin = performance.now();
    const r = cfg.create
      ? await api('POST', '/signaling/create-room', { token: cfg.token, body: {} })
      : await api('POST', '/signaling/join-room', { token: cfg.token, body: { roomId: cfg.roomId } });
    const want = cfg.create ? [200, 201] : [200];
    if (!want.includes(r.status))
      throw new Error(`${cfg.create ? 'create' : 'join'}-room: HTTP ${r.status} ${r.text.slice(0, 300)}`);
    const j = r.json;
    tJoin = performance.now();
    S.roomId = j.roomId;
    S.peerId = j.peerId;
    S.token = j.signalingToken;
    S.heartbeatMs = Math.max(1, Number(j.heartbeatIntervalSeconds) || 30) * 1000;
    const peers = (j.peers || []).map((p) => p.peerId);
    emit('joined', { roomId: j.roomId, peerId: j.peerId, signaling: 'ws', peers });
    // The socket opens at once: envelopes (offer-request) wait in the inbox meanwhile.
    await wsOpen();
    return { roomId: j.roomId, peerId: j.peerId, peers };
  }

  // ---- WebSocket -----------------------------------------------------------------------------
  const closeWaiters = [];
  function wsOpen() {
    return new Promise((resolve, reject) => {
      const url = `${S.base.replace(/^http/, 'ws')}/signaling/ws?token=${encodeURIComponent(S.token)}`;
      ws = new WebSocket(url, ['parley.v1']);
      ws.onopen = () => {
        if (ws.protocol !== 'parley.v1') fail(`socket subprotocol ${JSON.stringify(ws.protocol)}`);
        hbTimer = setInterval(() => wsSend({ type: 'heartbeat' }), S.heartbeatMs);
        resolve();
      };
      ws.onmessage = (ev) => {
        let m;
        try {
          m = JSON.parse(ev.data);
        } catch (e) {
          fail(`socket message is not JSON: ${String(ev.data).slice(0, 200)}`);
          return;
        }
        inbox = inbox.then(() => handle(m)).catch((err) => fail(`handling ${m.type}: ${err && err.stack ? err.stack : err}`));
      };
      ws.onclose = (ev) => {
        wsClose = { code: ev.code, reason: ev.reason };
        clearInterval(hbTimer);
        for (const w of closeWaiters.splice(0)) w(wsClose);
        if (!leaving) fail(`socket closed by the server: ${ev.code} ${ev.reason}`);
        reject(new Error(`socket closed: ${ev.code}`));
      };
    });
  }
  function wsSend(msg) {
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      if (!leaving) fail(`socket not open for ${msg.type}`);
      return;
    }
    ws.send(JSON.stringify({ ...msg, ref: `r${++refs}` }));
  }
  let inbox = Promise.resolve();

  async function handle(m) {
    const t = m.type;
    if (t === 'ack') return;
    if (t === 'heartbeat' && !m.from) {
      if (m.signalingToken) S.token = m.signalingToken;
      return;
    }
    if (t === 'error' && !m.from) {
      fail(`server error ${m.code}: ${m.message}`);
      return;
    }
    const frm = m.from;
    if (t === 'offer-request') {
      const peer = m.peer && m.peer.peerId;
      emit('offer-request', { peer });
      if (sessions.has(peer)) throw new Error(`second offer-request for ${peer}`);
      const s = new Session(peer, 'offerer');
      sessions.set(peer, s);
      await s.makeOffer();
    } else if (t === 'offer') {
      emit('offer-received', { from: frm, bytes: utf8(m.sdp || '').length });
      if (sessions.has(frm)) throw new Error(`offer from ${frm}, which already has a session`);
      const s = new Session(frm, 'answerer');
      sessions.set(frm, s);
      await s.takeOffer(m.sdp);
    } else if (t === 'answer') {
      emit('answer-received', { from: frm, bytes: utf8(m.sdp || '').length });
      const s = sessions.get(frm);
      if (!s || s.role !== 'offerer' || s.remoteSet) throw new Error(`unexpected answer from ${frm}`);
      await s.takeAnswer(m.sdp);
    } else if (t === 'candidate') {
      const s = sessions.get(frm);
      if (!s) throw new Error(`candidate from ${frm}, with whom there is no session`);
      await s.onCandidate(m.candidate);
    } else if (t === 'peer-joined') {
      emit('peer-joined', { peer: m.peer && m.peer.peerId });
    } else if (t === 'peer-left') {
      const peer = m.peer && m.peer.peerId;
      emit('peer-left', { peer });
      const s = sessions.get(peer);
      if (s) s.onPeerLeft();
    } else if (t === 'room-closed') {
      fail('room closed');
    } else {
      fail(`unknown envelope type ${JSON.stringify(t)}`);
    }
  }

  // ---- one session ---------------------------------------------------------------------------
  const isLoopback4 = (addr) => /^127\.\d+\.\d+\.\d+$/.test(String(addr || ''));
  function candidateAddress(c) {
    if (typeof c === 'string') c = { candidate: c };
    if (c && typeof c.address === 'string' && c.address) return c.address;
    const f = String((c && c.candidate) || '').replace(/^a=/, '').split(' ');
    return f.length > 4 ? f[4] : '';
  }

  class Session {
    constructor(remote, role) {
      this.remote = remote;
      this.role = role;
      this.pc = new RTCPeerConnection({ iceServers: [] });
      this.dc = null;
      this.remoteSet = false;
      this.pending = [];
      this.expect = null; // [sender, n]
      this.recvN = 0;
      this.recvBytes = 0;
      this.recvDone = false;
      this.remoteFin = false;
      this.remoteBye = false;
      this.remoteClosed = false;
      this.succeeded = false;
      this.finished = false;
      this.closing = false;
      this.sentN = 0;
      this.sentBytes = 0;
      this.candidatesSent = 0;
      this.candidatesAdded = 0;
      this.candidatesDropped = [];
      this.eocSent = false;
      this.eocReceived = false;
      this.pc.onicecandidate = (ev) => {
        if (ev.candidate === null) {
          this.eocSent = true;
          wsSend({ type: 'candidate', to: this.remote, candidate: null });
          return;
        }
        if (!ev.candidate.candidate) return;
        if (!isLoopback4(candidateAddress(ev.candidate))) return;
        this.candidatesSent++;
        wsSend({ type: 'candidate', to: this.remote, candidate: ev.candidate.toJSON() });
      };
      this.pc.onconnectionstatechange = () => {
        log('connection', this.pc.connectionState);
        if (this.pc.connectionState === 'failed' && !this.closing) {
          if (this.succeeded) {
            this.remoteClosed = true;
            this.checkClose();
          } else fail(`connection with ${this.remote} failed (${this.progress()})`);
        }
      };
      this.pc.ondatachannel = (ev) => {
        if (ev.channel.label !== 'parley') {
          fail(`datachannel labelled ${JSON.stringify(ev.channel.label)}`);
          return;
        }
        this.attach(ev.channel);
      };
    }

    attach(ch) {
      this.dc = ch;
      ch.binaryType = 'arraybuffer';
      ch.bufferedAmountLowThreshold = HIGH_WATER / 4;
      const opened = () => {
        if (this.opened) return;
        this.opened = true;
        this.onOpen();
      };
      ch.onopen = opened;
      if (ch.readyState === 'open') opened();
      ch.onmessage = (ev) => {
        if (S.failed) return;
        try {
          this.onMessage(ev.data);
        } catch (err) {
          fail(err && err.message ? err.message : String(err));
        }
      };
      ch.onclose = () => {
        if (this.closing) return;
        if (this.succeeded) {
          this.remoteClosed = true;
          this.checkClose();
        } else fail(`channel with ${this.remote} closed before the exchange finished (${this.progress()})`);
      };
    }

    async makeOffer() {
      this.attach(this.pc.createDataChannel('parley', { ordered: true }));
      const offer = await this.pc.createOffer();
      wsSend({ type: 'offer', to: this.remote, sdp: offer.sdp });
      emit('offer-sent', { to: this.remote, bytes: utf8(offer.sdp).length });
      await this.pc.setLocalDescription(offer);
    }

    async takeOffer(sdp) {
      S.remoteOffer = sdp;
      await this.pc.setRemoteDescription({ type: 'offer', sdp });
      this.remoteSet = true;
      await this.flush();
      const answer = await this.pc.createAnswer();
      wsSend({ type: 'answer', to: this.remote, sdp: answer.sdp });
      emit('answer-sent', { to: this.remote, bytes: utf8(answer.sdp).length });
      await this.pc.setLocalDescription(answer);
    }

    async takeAnswer(sdp) {
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
      this.remoteSet = true;
      await this.flush();
    }

    async onCandidate(c) {
      this.pending.push(c);
      if (this.remoteSet) await this.flush();
    }

    async flush() {
      while (this.pending.length) {
        let c = this.pending.shift();
        if (typeof c === 'string') c = { candidate: c, sdpMLineIndex: 0 };
        if (c === null || c.candidate === '') {
          this.eocReceived = true;
          emit('end-of-candidates', { from: this.remote });
          try {
            await this.pc.addIceCandidate();
          } catch (err) {
            log('addIceCandidate(end):', String(err));
          }
          continue;
        }
        const addr = candidateAddress(c);
        if (!isLoopback4(addr)) {
          this.candidatesDropped.push(addr);
          emit('candidate', { from: this.remote, action: 'dropped', address: addr });
          continue;
        }
        const init = { candidate: String(c.candidate).replace(/^a=/, '') };
        if (c.sdpMid != null) init.sdpMid = c.sdpMid;
        if (c.sdpMLineIndex != null) init.sdpMLineIndex = c.sdpMLineIndex;
        if (init.sdpMid == null && init.sdpMLineIndex == null) init.sdpMLineIndex = 0;
        await this.pc.addIceCandidate(init);
        this.candidatesAdded++;
        emit('candidate', { from: this.remote, action: 'added', address: addr });
      }
    }

    send(data) {
      this.dc.send(data);
    }

    onOpen() {
      const cfg = S.cfg;
      emit('open', { peer: this.remote, ms: Math.round(performance.now() - tJoin), role: this.role, label: this.dc.label, id: this.dc.id });
      const hello = { mode: cfg.echo ? 'echo' : 'send', n: cfg.echo ? 0 : cfg.messages, seed: cfg.seed, sizes: `${cfg.lo}:${cfg.hi}`, peerId: S.peerId };
      this.send(`#hello ${JSON.stringify(hello)}`);
      if (!cfg.echo) this.sendStream().catch((err) => fail(`sending: ${err}`));
    }

    async sendStream() {
      const cfg = S.cfg;
      for (let i = 0; i < cfg.messages; i++) {
        while (this.dc.bufferedAmount > HIGH_WATER && this.dc.readyState === 'open')
          await new Promise((r) => {
            const t = setTimeout(r, 1000);
            this.dc.onbufferedamountlow = () => {
              clearTimeout(t);
              r();
            };
          });
        if (this.dc.readyState !== 'open') {
          if (!this.succeeded) fail(`channel to ${this.remote} closed after ${i} of ${cfg.messages} messages sent`);
          return;
        }
        const m = message(cfg.seed, S.peerId, i, cfg.lo, cfg.hi);
        this.send(m.kind === 'text' ? dec.decode(m.bytes) : m.bytes);
        this.sentN++;
        this.sentBytes += m.bytes.length;
        if (i % 8 === 7) await new Promise((r) => setTimeout(r, 0));
      }
      emit('sent', { peer: this.remote, n: this.sentN, bytes: this.sentBytes });
    }

    onMessage(data) {
      const cfg = S.cfg;
      const isText = typeof data === 'string';
      if (isText && data.startsWith('#')) {
        const sp = data.indexOf(' ');
        const word = sp < 0 ? data : data.slice(0, sp);
        const rest = sp < 0 ? '' : data.slice(sp + 1);
        if (word === '#hello') {
          const h = JSON.parse(rest);
          if (h.seed !== cfg.seed || h.sizes !== `${cfg.lo}:${cfg.hi}`)
            throw new Error(`peer ${this.remote} uses seed ${h.seed} sizes ${h.sizes}; this one ${cfg.seed} ${cfg.lo}:${cfg.hi}`);
          if (h.mode === 'echo') {
            if (cfg.echo) throw new Error('both sides are in echo mode');
            this.expect = [S.peerId, cfg.messages];
          } else if (h.mode === 'send') {
            this.expect = [this.remote, Number(h.n || 0)];
          } else throw new Error(`peer ${this.remote}: #hello with mode ${h.mode}`);
          this.checkRecvDone();
        } else if (word === '#fin') {
          this.remoteFin = true;
          this.checkSuccess();
        } else if (word === '#bye') {
          this.remoteBye = true;
          this.checkClose();
        } else if (word === '#ping') {
          this.send(`#pong${data.slice(5)}`);
        } else throw new Error(`peer ${this.remote}: unknown control message ${data.slice(0, 80)}`);
        return;
      }
      if (!this.expect) throw new Error(`peer ${this.remote}: data before #hello`);
      const [sender, count] = this.expect;
      const i = this.recvN;
      if (i >= count) throw new Error(`peer ${this.remote}: message ${i} beyond the ${count} expected`);
      const want = message(cfg.seed, sender, i, cfg.lo, cfg.hi);
      const got = isText ? utf8(data) : new Uint8Array(data);
      const kind = isText ? 'text' : 'binary';
      let same = want.kind === kind && want.bytes.length === got.length;
      for (let k = 0; same && k < got.length; k++) if (got[k] !== want.bytes[k]) same = false;
      if (!same) throw new Error(`from ${this.remote}: ${describeMismatch(i, want, kind, got)}`);
      this.recvN++;
      this.recvBytes += got.length;
      if (cfg.echo) this.send(data);
      this.checkRecvDone();
    }

    checkRecvDone() {
      if (this.recvDone || !this.expect || this.recvN < this.expect[1]) return;
      this.recvDone = true;
      emit('recv_ok', { peer: this.remote, n: this.recvN, bytes: this.recvBytes });
      this.send(`#fin ${JSON.stringify({ n: this.recvN })}`);
      this.checkSuccess();
    }

    checkSuccess() {
      if (this.succeeded || !(this.recvDone && this.remoteFin)) return;
      this.succeeded = true;
      this.send('#bye');
      emit('session-done', { peer: this.remote });
      setTimeout(() => this.close(), LINGER_MS);
      this.checkClose();
    }

    checkClose() {
      if (this.succeeded && (this.remoteBye || this.remoteClosed)) this.close();
    }

    onPeerLeft() {
      if (this.succeeded) {
        this.remoteClosed = true;
        this.checkClose();
      } else if (!this.finished) fail(`peer ${this.remote} left before the exchange finished (${this.progress()})`);
    }

    async close() {
      if (this.closing) return;
      this.closing = true;
      for (let k = 0; k < 100 && this.dc && this.dc.readyState === 'open' && this.dc.bufferedAmount > 0; k++)
        await new Promise((r) => setTimeout(r, 10));
      this.pc.close();
      this.finished = true;
      finished++;
      if (finished >= (S.cfg.peers || 1)) leave();
    }

    progress() {
      return `role ${this.role}, ice ${this.pc.iceConnectionState}, channel ${this.dc ? this.dc.readyState : 'none'}, sent ${this.sentN}, received ${this.recvN}/${this.expect ? this.expect[1] : '?'}, fin ${this.remoteFin}`;
    }

    summary() {
      return {
        remote: this.remote,
        role: this.role,
        sentN: this.sentN,
        sentBytes: this.sentBytes,
        recvN: this.recvN,
        recvBytes: this.recvBytes,
        succeeded: this.succeeded,
        candidatesSent: this.candidatesSent,
        candidatesAdded: this.candidatesAdded,
        candidatesDropped: this.candidatesDropped,
        eocSent: this.eocSent,
        eocReceived: this.eocReceived,
        ice: this.pc.iceConnectionState,
        channel: this.dc ? this.dc.readyState : null,
      };
    }
  }

  async function leave() {
    leaving = true;
    const closed = new Promise((r) => closeWaiters.push(r));
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'leave' }));
    const c = await Promise.race([closed, new Promise((r) => setTimeout(() => r(null), 3000))]);
    emit('done', { sessions: finished, left: c ? c.code : null });
    if (resolveRun) resolveRun(summary());
  }

  function summary() {
    return {
      peerId: S.peerId,
      roomId: S.roomId,
      events: S.events.slice(),
      errors: S.errors.slice(),
      sessions: [...sessions.values()].map((s) => s.summary()),
      wsClose,
    };
  }

  function run() {
    return new Promise((resolve) => {
      resolveRun = resolve;
      if (S.failed) resolve(summary());
    });
  }

  function close() {
    leaving = true;
    clearInterval(hbTimer);
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, 'test over');
    for (const s of sessions.values()) s.pc.close();
  }

  window.parley = { join, run, close, message, state: () => ({ ...summary(), log: S.log.slice(-200) }) };
})();
