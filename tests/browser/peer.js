// One side of a real WebRTC handshake signaled through parleyd (loaded by peer.html).
//
// test_webrtc.mjs drives two of these pages, each in its own browser context:
//   await parley.createRoom(base, userToken)            -> create-room's 201 body   (page A)
//   await parley.joinRoom(base, userToken, roomId)      -> join-room's 200 body     (page B)
//   await parley.start({...})                           -> resolves when the data channel has
//        carried every message both ways and end-of-candidates went both ways (summary)
//   await parley.leave()            leaves the room (REST leave-room, or WS {"type":"leave"})
//   await parley.waitFor(type, pred) resolves with the first envelope of that type received
//   parley.state()                  everything recorded so far, for diagnostics
//   parley.close()                  stops polling, closes the socket and the peer connection
//
// Roles: the "offerer" (the room's creator) waits for `offer-request` naming the other peer,
// creates the RTCPeerConnection and a DataChannel and sends the offer; the "answerer" waits
// for the offer and answers. Both trickle their candidates, then the end-of-candidates null.
// Transports: "rest" (POST offer/answer/candidate, GET events/offer/answer with ?wait
// long-polls, the seed's polling flow) or "ws" (GET /signaling/ws, one JSON per frame).
//
// Only loopback candidates are sent or used, so the browsers never send ICE traffic to any
// address but 127.0.0.1 / ::1 (Chromium runs with --allow-loopback-in-peer-connection).
'use strict';

(() => {
  const S = {
    role: null,
    variant: null,
    base: null,
    roomId: null,
    peerId: null,
    token: null,
    remote: null, // the other peer's id
    messages: 10,
    received: [], // data channel messages, in order
    sent: [],
    envelopes: [], // every envelope received (compact)
    envelopeObjs: [], // the same, whole (for waitFor)
    signalsSent: [], // every signal sent (type, to, ref, status)
    errors: [],
    notes: [],
    candidatesSent: 0,
    candidatesReceived: 0,
    candidatesSkipped: [], // non-loopback candidates not sent / not used
    eocSent: false,
    eocReceived: false,
    eocAddError: null,
    dcOpen: false,
    dcOpenedAt: null,
    remoteSet: false, // the remote description is applied (candidates can be added)
    iceStates: [],
    connStates: [],
    acks: 0,
    refsSent: 0,
    wsProtocol: null,
    wsClose: null,
    done: false,
    stopped: false,
    startedAt: null,
  };
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);

  function log(...args) {
    const line = args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
    console.log(`[${S.role || 'peer'} ${ms()}ms] ${line}`);
  }
  function fail(what, err) {
    const msg = `${what}: ${err && err.message ? err.message : String(err)}`;
    S.errors.push(msg);
    console.error(`[${S.role || 'peer'} ${ms()}ms] ERROR ${msg}`);
    settle();
  }

  // ---- REST ------------------------------------------------------------------------------
  const aborts = new Set();
  async function api(method, path, { token, body, wait } = {}) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    let payload;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const ac = new AbortController();
    aborts.add(ac);
    try {
      const url = S.base + path + (wait !== undefined ? `?wait=${wait}` : '');
      const r = await fetch(url, { method, headers, body: payload, signal: ac.signal });
      const text = await r.text();
      let json = null;
      if (text) {
        try {
          json = JSON.parse(text);
        } catch (e) {
          json = undefined;
        }
      }
      return { status: r.status, json, text };
    } finally {
      aborts.delete(ac);
    }
  }
  function expectStatus(what, r, status) {
    if (r.status !== status)
      throw new Error(`${what}: HTTP ${r.status}, expected ${status}: ${r.text.slice(0, 300)}`);
    return r.json;
  }

  async function createRoom(base, userToken, fields) {
    S.base = base;
    const r = await api('POST', '/signaling/create-room', {
      token: userToken,
      body: fields || { customName: 'browser test' },
    });
    const j = expectStatus('create-room', r, 201);
    S.roomId = j.roomId;
    S.peerId = j.peerId;
    S.token = j.signalingToken;
    log('created room', j.roomId, 'as', j.peerId);
    return j;
  }

  async function joinRoom(base, userToken, roomId) {
    S.base = base;
    const r = await api('POST', '/signaling/join-room', { token: userToken, body: { roomId } });
    const j = expectStatus('join-room', r, 200);
    S.roomId = j.roomId;
    S.peerId = j.peerId;
    S.token = j.signalingToken;
    log('joined room', j.roomId, 'as', j.peerId, 'peers:', j.peers);
    return j;
  }

  // ---- envelopes in ----------------------------------------------------------------------
  const ID_RE = /^[A-Za-z0-9_-]{22}$/;
  const waiters = []; // {type, pred, resolve}

  function checkEnvelope(e) {
    const bad = [];
    if (!e || typeof e !== 'object') return ['not an object'];
    if (typeof e.id !== 'string' || !ID_RE.test(e.id)) bad.push(`id ${JSON.stringify(e.id)}`);
    if (e.roomId !== S.roomId) bad.push(`roomId ${JSON.stringify(e.roomId)}`);
    if (!Number.isInteger(e.ts)) bad.push(`ts ${JSON.stringify(e.ts)}`);
    if (e.to !== S.peerId) bad.push(`to ${JSON.stringify(e.to)} (expected ${S.peerId})`);
    return bad;
  }

  let inbox = Promise.resolve();
  function receive(e, via) {
    // Handled one at a time, in arrival order.
    S.envelopeObjs.push(e);
    inbox = inbox.then(() => dispatch(e, via)).catch((err) => fail(`handling ${e && e.type}`, err));
    return inbox;
  }

  async function dispatch(e, via) {
    const brief = { type: e.type, from: e.from, via, at: ms() };
    if (e.peer) brief.peer = e.peer.peerId;
    if (e.type === 'candidate') brief.candidate = e.candidate === null ? null : '...';
    S.envelopes.push(brief);
    if (['offer', 'answer', 'candidate', 'offer-request', 'peer-joined', 'peer-left'].includes(e.type)) {
      const bad = checkEnvelope(e);
      if (bad.length) S.errors.push(`${e.type} envelope: ${bad.join(', ')}`);
    }
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i];
      if (w.type === e.type && (!w.pred || w.pred(e))) {
        waiters.splice(i, 1);
        w.resolve(e);
      }
    }
    switch (e.type) {
      case 'offer-request':
        if (e.from !== null) S.errors.push(`offer-request from ${JSON.stringify(e.from)}, expected null`);
        if (S.role !== 'offerer') throw new Error('the answerer got an offer-request');
        if (!e.peer || e.peer.peerId !== S.remote)
          throw new Error(`offer-request for ${JSON.stringify(e.peer)}, expected ${S.remote}`);
        await makeOffer();
        break;
      case 'offer':
        if (S.role !== 'answerer') throw new Error('the offerer got an offer');
        if (e.from !== S.remote) throw new Error(`offer from ${e.from}, expected ${S.remote}`);
        await takeOffer(e.sdp);
        break;
      case 'answer':
        if (S.role !== 'offerer') throw new Error('the answerer got an answer');
        if (e.from !== S.remote) throw new Error(`answer from ${e.from}, expected ${S.remote}`);
        await pc.setRemoteDescription({ type: 'answer', sdp: e.sdp });
        S.remoteSet = true;
        log('answer applied');
        await flushCandidates();
        break;
      case 'candidate':
        if (e.from !== S.remote) throw new Error(`candidate from ${e.from}, expected ${S.remote}`);
        pendingCandidates.push(e.candidate);
        if (S.remoteSet) await flushCandidates();
        break;
      case 'peer-joined':
      case 'peer-left':
        break;
      case 'error':
        S.errors.push(`server error message: ${JSON.stringify(e)}`);
        break;
      case 'ack':
        S.acks++;
        break;
      default:
        S.notes.push(`unexpected message type ${JSON.stringify(e.type)}`);
    }
    settle();
  }

  function waitFor(type, pred) {
    const seen = S.envelopeObjs.find((e) => e.type === type && (!pred || pred(e)));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => waiters.push({ type, pred, resolve }));
  }

  // ---- WebRTC ----------------------------------------------------------------------------
  let pc = null;
  let dc = null;
  const pendingCandidates = [];
  const LOOPBACK = (addr) => {
    const a = String(addr || '').replace(/^\[(.*)\]$/, '$1'); // Chromium writes "[::1]"
    return a === '::1' || /^127\.\d+\.\d+\.\d+$/.test(a);
  };

  function candidateAddress(c) {
    if (typeof c.address === 'string' && c.address) return c.address;
    // "candidate:<foundation> <component> <proto> <priority> <address> <port> typ ..."
    const f = String(c.candidate || '').split(' ');
    return f.length > 4 ? f[4] : '';
  }

  function newPeerConnection() {
    pc = new RTCPeerConnection({ iceServers: [] });
    pc.onicecandidate = (ev) => {
      if (ev.candidate === null) {
        S.eocSent = true;
        send({ type: 'candidate', to: S.remote, candidate: null });
        log('sent end-of-candidates');
        settle();
        return;
      }
      if (!ev.candidate.candidate) return; // per-section end marker: the null follows
      const addr = candidateAddress(ev.candidate);
      if (!LOOPBACK(addr)) {
        S.candidatesSkipped.push(`local ${addr}`);
        return;
      }
      S.candidatesSent++;
      send({ type: 'candidate', to: S.remote, candidate: ev.candidate.toJSON() });
    };
    pc.oniceconnectionstatechange = () => {
      S.iceStates.push(pc.iceConnectionState);
      log('ice', pc.iceConnectionState);
    };
    pc.onconnectionstatechange = () => {
      S.connStates.push(pc.connectionState);
      if (pc.connectionState === 'failed') fail('peer connection', new Error('connectionState failed'));
    };
    pc.ondatachannel = (ev) => wireChannel(ev.channel);
  }

  function wireChannel(channel) {
    dc = channel;
    // Chromium may hand over a remote (DCEP-opened) channel that is already open, and then no
    // open event ever fires for it; so open at once in that case, and never twice.
    const opened = () => {
      if (S.dcOpen) return;
      S.dcOpen = true;
      S.dcOpenedAt = ms();
      log('data channel open', dc.label);
      const tag = S.role === 'offerer' ? 'A->B' : 'B->A';
      for (let i = 0; i < S.messages; i++) {
        const m = `${tag} message ${i}`;
        dc.send(m);
        S.sent.push(m);
      }
      settle();
    };
    dc.onopen = opened;
    if (dc.readyState === 'open') {
      S.notes.push('data channel already open when handed over');
      opened();
    }
    dc.onmessage = (ev) => {
      S.received.push(String(ev.data));
      settle();
    };
    dc.onerror = (ev) => fail('data channel', ev.error || new Error('error event'));
  }

  async function makeOffer() {
    if (pc) throw new Error('a second offer-request');
    newPeerConnection();
    wireChannel(pc.createDataChannel('parley', { ordered: true }));
    const offer = await pc.createOffer();
    // Queued before setLocalDescription, so the offer goes out before any candidate.
    send({ type: 'offer', to: S.remote, sdp: offer.sdp });
    await pc.setLocalDescription(offer);
    log('offer sent');
  }

  async function takeOffer(sdp) {
    if (pc) throw new Error('a second offer');
    newPeerConnection();
    await pc.setRemoteDescription({ type: 'offer', sdp });
    S.remoteSet = true;
    const answer = await pc.createAnswer();
    // REST: `to` left out on purpose (defaults to the offer's sender, as in the seed flow).
    send(
      S.variant === 'rest'
        ? { type: 'answer', sdp: answer.sdp }
        : { type: 'answer', to: S.remote, sdp: answer.sdp },
    );
    await pc.setLocalDescription(answer);
    log('answer sent');
    await flushCandidates();
  }

  async function flushCandidates() {
    while (pendingCandidates.length) {
      const c = pendingCandidates.shift();
      if (c === null) {
        S.eocReceived = true;
        try {
          await pc.addIceCandidate(); // end of candidates
        } catch (err) {
          S.eocAddError = String(err && err.message);
        }
        log('got end-of-candidates');
        continue;
      }
      S.candidatesReceived++;
      const addr = candidateAddress(c);
      if (!LOOPBACK(addr)) {
        S.candidatesSkipped.push(`remote ${addr}`);
        continue;
      }
      await pc.addIceCandidate(c);
    }
  }

  // ---- signals out -----------------------------------------------------------------------
  let outChain = Promise.resolve();
  let refCounter = 0;
  function send(msg) {
    outChain = outChain
      .then(() => (S.variant === 'ws' ? wsSend(msg) : restSend(msg)))
      .catch((err) => fail(`sending ${msg.type}`, err));
  }

  async function restSend(msg) {
    const body = { roomId: S.roomId, ...msg };
    delete body.type;
    const r = await api('POST', `/signaling/${msg.type}`, { token: S.token, body });
    S.signalsSent.push({ type: msg.type, to: msg.to, status: r.status });
    expectStatus(`POST /signaling/${msg.type}`, r, 202);
    if (!r.json || !ID_RE.test(r.json.id)) throw new Error(`POST ${msg.type}: no id in ${r.text}`);
  }

  // ---- REST receiving (the seed's polling flow) --------------------------------------------
  async function poll(kind, wait) {
    const r = await api('GET', `/signaling/${kind}/${S.roomId}`, { token: S.token, wait });
    if (kind === 'events') {
      const j = expectStatus(`GET events`, r, 200);
      if (!j || !Array.isArray(j.events)) throw new Error(`GET events: no events array: ${r.text}`);
      return j.events;
    }
    if (r.status === 204) return [];
    return [expectStatus(`GET ${kind}`, r, 200)];
  }

  async function restLoop() {
    const until = async (kind, cond) => {
      while (!S.stopped && !cond()) for (const e of await poll(kind, 5)) await receive(e, `GET ${kind}`);
    };
    if (S.role === 'offerer') {
      await until('events', () => pc !== null); // offer-request
      await until('answer', () => S.remoteSet);
    } else {
      await until('offer', () => pc !== null);
    }
    await until('events', () => false); // candidates, peer-left, ...
  }

  // ---- WebSocket ---------------------------------------------------------------------------
  let ws = null;
  function wsUrl() {
    return `${S.base.replace(/^http/, 'ws')}/signaling/ws?token=${encodeURIComponent(S.token)}`;
  }
  function wsOpen() {
    return new Promise((resolve, reject) => {
      ws = new WebSocket(wsUrl(), ['parley.v1']);
      ws.onopen = () => {
        S.wsProtocol = ws.protocol;
        log('socket open, protocol', ws.protocol);
        resolve();
      };
      ws.onmessage = (ev) => {
        let e;
        try {
          e = JSON.parse(ev.data);
        } catch (err) {
          fail('socket message is not JSON', new Error(String(ev.data).slice(0, 200)));
          return;
        }
        receive(e, 'ws');
      };
      ws.onclose = (ev) => {
        S.wsClose = { code: ev.code, reason: ev.reason, at: ms() };
        log('socket closed', ev.code, ev.reason);
        for (const w of closeWaiters.splice(0)) w(S.wsClose);
        if (!S.stopped && !S.leaving) fail('socket', new Error(`closed early: ${ev.code} ${ev.reason}`));
        reject(new Error(`socket closed before open: ${ev.code}`));
      };
      ws.onerror = () => log('socket error event');
    });
  }
  const closeWaiters = [];

  async function wsSend(msg) {
    if (!ws || ws.readyState !== WebSocket.OPEN) throw new Error('socket not open');
    const ref = `r${++refCounter}`;
    S.refsSent++;
    S.signalsSent.push({ type: msg.type, to: msg.to, ref });
    ws.send(JSON.stringify({ ...msg, ref }));
  }

  // ---- completion --------------------------------------------------------------------------
  let resolveDone;
  const donePromise = new Promise((r) => (resolveDone = r));
  function settle() {
    if (S.done) return;
    const complete =
      S.dcOpen &&
      S.received.length >= S.messages &&
      S.sent.length === S.messages &&
      S.eocSent &&
      S.eocReceived;
    if (S.errors.length || complete) {
      S.done = true;
      resolveDone(summary());
    }
  }

  function summary() {
    return {
      role: S.role,
      variant: S.variant,
      peerId: S.peerId,
      received: S.received.slice(),
      sent: S.sent.slice(),
      errors: S.errors.slice(),
      candidatesSent: S.candidatesSent,
      candidatesReceived: S.candidatesReceived,
      eocSent: S.eocSent,
      eocReceived: S.eocReceived,
      eocAddError: S.eocAddError,
      dcOpenedAt: S.dcOpenedAt,
      dcState: dc ? dc.readyState : null,
      refsSent: S.refsSent,
      acks: S.acks,
      wsProtocol: S.wsProtocol,
      envelopeTypes: S.envelopes.map((e) => e.type),
    };
  }

  async function start(cfg) {
    Object.assign(S, { role: cfg.role, variant: cfg.variant, remote: cfg.remote, startedAt: ms() });
    if (cfg.messages) S.messages = cfg.messages;
    log('start', cfg.variant, 'remote', cfg.remote);
    if (S.variant === 'ws') {
      try {
        await wsOpen();
      } catch (err) {
        // A browser never shows why an upgrade failed: ask over plain HTTP for diagnostics.
        let why = '';
        try {
          const r = await api('GET', `/signaling/ws?token=${encodeURIComponent(S.token)}`);
          why = ` (plain GET /signaling/ws: HTTP ${r.status} ${r.text.slice(0, 200)})`;
        } catch (e2) {
          why = ` (plain GET failed: ${e2})`;
        }
        fail('opening the socket', new Error(err.message + why));
      }
    } else {
      restLoop().catch((err) => {
        if (!S.stopped) fail('polling', err);
      });
    }
    return donePromise;
  }

  async function leave() {
    S.leaving = true;
    if (S.variant === 'ws') {
      const closed = new Promise((r) => closeWaiters.push(r));
      ws.send(JSON.stringify({ type: 'leave' }));
      const c = await closed;
      return { close: c.code };
    }
    const r = await api('POST', '/signaling/leave-room', { token: S.token, body: { roomId: S.roomId } });
    return { status: r.status };
  }

  function close() {
    S.stopped = true;
    for (const ac of aborts) ac.abort();
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, 'test over');
    if (dc) dc.close();
    if (pc) pc.close();
  }

  window.parley = {
    createRoom,
    joinRoom,
    start,
    leave,
    close,
    waitFor: (type, peerId) => waitFor(type, peerId ? (e) => e.peer && e.peer.peerId === peerId : null),
    state: () => ({
      ...summary(),
      envelopes: S.envelopes,
      signalsSent: S.signalsSent,
      notes: S.notes,
      candidatesSkipped: S.candidatesSkipped,
      iceStates: S.iceStates,
      connStates: S.connStates,
      wsClose: S.wsClose,
      dcOpen: S.dcOpen,
      remoteSet: !!S.remoteSet,
    }),
  };
})();
