/* The Lua code of the redis store engine (store/redis.c): one body per operation and the
 * helpers they share. On Redis 7 and later the engine loads them all as one function library
 * (FUNCTION LOAD: RS_VARS, RS_HELPERS, a setup function of RS_SETUP, and each body
 * registered as a function) and calls them with FCALL, so the helpers are defined once, not
 * at every call. On older Redis each script is RS_VARS + RS_SETUP + RS_HELPERS + its body,
 * loaded with SCRIPT LOAD and called with EVALSHA (EVAL on NOSCRIPT). Every operation
 * returns {events, status, ...}: `events` are the expiry notifications its reaping produced
 * (the engine delivers them before the callback), `status` is 0 or a PL_E* code.
 * docs/scaling.md describes the keys.
 *
 * ARGV[1] is now (ms); the operation's own arguments start at ARGV[2]. The node's options
 * (room_ttl_ms, member_ttl_ms, signal_ttl_ms, inbox_max, inbox_bytes_max,
 * inbox_per_sender_max, queued_bytes_max, rooms_max) are written into the code as constants:
 * converting them from strings at every call cost more than some whole operations, and nodes
 * with other options get a library (and scripts) of their own. Times travel as decimal
 * strings: Lua 5.1 numbers are doubles, exact for epoch milliseconds, and S() formats them
 * without an exponent.
 *
 * Inside Redis, each redis.call() costs a few microseconds (the command runs through the
 * whole call path and its reply is converted back to Lua): the hot operations (push and
 * pop) are written to make as few of them as they can. */
#ifndef PL_STORE_REDIS_SCRIPTS_H
#define PL_STORE_REDIS_SCRIPTS_H

/* The state every script shares, declared once (RS_VARS, after the engine's own line that
 * sets the options RTTL, MTTL, STTL, IMAX, IBYTES, ISEND, QBMAX, RMAX) and set from ARGV at
 * the start of each call (RS_SETUP). */
#define RS_VARS                                                                                    \
    "local now,EV,SC\n"                                                                            \
    "local GRACE=60000\n"
#define RS_SETUP "now=tonumber(ARGV[1]) EV={} SC={}\n"

/* The helpers the scripts share.
 *
 * pl:expiry's score for a room is never later than the room's earliest due time (its own
 * expiry, a member's or a queued signal's). Most changes only move times later, which
 * leaves the score early, not wrong, and is not written; the ones that can move a time
 * earlier lower the score with expiry_at_most(): a signal that expires before the room's
 * earlier ones, and a member's or the room's new expiry (later than the old ones when every
 * node has the same TTLs, but nodes with other options may share the Redis). So a score
 * after now means nothing is due and the room is there: alive() answers that with one read,
 * for the scripts that need only to know the room is live. Otherwise it settles the room as
 * the sweep does (reap, expired signals, an exact score again). The table alive() returns
 * has no fields on that fast path; live() reads them. SC caches the scores this call has
 * read or written.
 *
 * A member's expiry lives in the mexp zset: heartbeats move only that (the JSON in mdata
 * keeps the one it was written with, and mem_arr's callers put mexp's in its place, as Redis
 * writes it: integral scores below 2^53 come back as plain digits), so the most frequent
 * call neither decodes nor encodes the member.
 *
 * renew() sets the room's new expiry (t.expires) and, every GRACE/2 of it, the keys' TTLs;
 * it answers false when the room's hash is gone while its score is not (only eviction does
 * that), so that nothing writes a hash without a TTL. */
#define RS_HELPERS                                                                                 \
    "local function S(x) return string.format('%.0f',x) end\n"                                     \
    "local function K(r,s) return 'pl:{'..r..'}:'..s end\n"                                        \
    "local function bytes_lt(a,b)\n"                                                               \
    "  local n=math.min(#a,#b)\n"                                                                  \
    "  for i=1,n do local x,y=string.byte(a,i),string.byte(b,i)\n"                                 \
    "    if x~=y then return x<y end end\n"                                                        \
    "  return #a<#b end\n"                                                                         \
    "local function stat(f,d) redis.call('HINCRBY','pl:stats',f,d) end\n"                          \
    "local function parse(rec)\n"                                                                  \
    "  return string.match(rec,'^(%d+)|(%d+)|([^|]*)|([^|]*)|(.*)$') end\n"                        \
    "local function room_get(r)\n"                                                                 \
    "  local h=redis.call('HGETALL',K(r,'room'))\n"                                                \
    "  if #h==0 then return nil end\n"                                                             \
    "  local t={} for i=1,#h,2 do t[h[i]]=h[i+1] end return t end\n"                               \
    "local function room_arr(t,r)\n"                                                               \
    "  return {t.id,t.bid,t.bname,t.cname,t.created,t.expires,\n"                                  \
    "    tostring(redis.call('ZCARD',K(r,'order'))),t.maxp,t.pub,t.topo} end\n"                    \
    "local function mem_get(r,p)\n"                                                                \
    "  local v=redis.call('HGET',K(r,'mdata'),p)\n"                                                \
    "  if not v then return nil end return cjson.decode(v) end\n"                                  \
    "local function mem_save(r,m)\n"                                                               \
    "  redis.call('HSET',K(r,'mdata'),m.p,cjson.encode(m)) end\n"                                  \
    "local function mem_arr(m) return {m.p,m.u,m.n,m.j,m.e,m.l} end\n"                             \
    "local function members(r,except)\n"                                                           \
    "  local out,es,x={},{},redis.call('ZRANGE',K(r,'mexp'),0,-1,'WITHSCORES')\n"                  \
    "  for i=1,#x,2 do es[x[i]]=x[i+1] end\n"                                                      \
    "  for _,p in ipairs(redis.call('ZRANGE',K(r,'order'),0,-1)) do\n"                             \
    "    if p~=except then local m=mem_get(r,p)\n"                                                 \
    "      if m then if es[p] then m.e=es[p] end out[#out+1]=mem_arr(m) end end "                  \
    "end\n"                                                                                        \
    "  return out end\n"                                                                           \
    "local function keep(r,t)\n"                                                                   \
    "  local ttl=tonumber(t.expires)-now+GRACE\n"                                                  \
    "  if ttl<GRACE then ttl=GRACE end\n"                                                          \
    "  for _,s in ipairs({'room','order','mdata','mexp','offer'}) do\n"                            \
    "    redis.call('PEXPIRE',K(r,s),ttl) end\n"                                                   \
    "  local b='pl:bcast:'..t.bid\n"                                                               \
    "  if redis.call('GET',b)==r then redis.call('PEXPIRE',b,ttl) end\n"                           \
    "  if t.bname~='' then local n='pl:name:'..t.bname\n"                                          \
    "    if redis.call('GET',n)==r then redis.call('PEXPIRE',n,ttl) end end end\n"                 \
    "local function touch_expiry(r,t)\n"                                                           \
    "  local e=tonumber(t.expires)\n"                                                              \
    "  if not e then return end\n"                                                                 \
    "  local m=redis.call('ZRANGE',K(r,'mexp'),0,0,'WITHSCORES')\n"                                \
    "  if m[2] and tonumber(m[2])<e then e=tonumber(m[2]) end\n"                                   \
    "  local sx=tonumber(redis.call('HGET',K(r,'room'),'sx'))\n"                                   \
    "  if sx and sx<e then e=sx end\n"                                                             \
    "  redis.call('ZADD','pl:expiry',e,r) SC[r]=e end\n"                                           \
    "local function offer_clear(r,expired)\n"                                                      \
    "  local env=redis.call('HGET',K(r,'offer'),'env')\n"                                          \
    "  if not env then return end\n"                                                               \
    "  local _,_,_,_,js=parse(env)\n"                                                              \
    "  stat('queued',-1) stat('qbytes',-#(js or ''))\n"                                            \
    "  if expired then stat('expired',1) end\n"                                                    \
    "  redis.call('DEL',K(r,'offer')) end\n"                                                       \
    "local function inbox_clear(r,p)\n"                                                            \
    "  local k=K(r,'inbox:'..p)\n"                                                                 \
    "  for _,rec in ipairs(redis.call('LRANGE',k,0,-1)) do\n"                                      \
    "    local _,_,_,_,js=parse(rec) stat('queued',-1) stat('qbytes',-#js) end\n"                  \
    "  redis.call('DEL',k) end\n"                                                                  \
    "local function mem_remove(r,p)\n"                                                             \
    "  if redis.call('HDEL',K(r,'mdata'),p)==1 then stat('members',-1) end\n"                      \
    "  redis.call('ZREM',K(r,'order'),p) redis.call('ZREM',K(r,'mexp'),p)\n"                       \
    "  if redis.call('HGET',K(r,'offer'),'sender')==p then offer_clear(r,false) end\n"             \
    "  inbox_clear(r,p) end\n"                                                                     \
    "local function mem_add(r,m)\n"                                                                \
    "  local seq=redis.call('HINCRBY',K(r,'room'),'seq',1)\n"                                      \
    "  m.j=S(now) m.e=S(now+MTTL) m.l=''\n"                                                        \
    "  mem_save(r,m) redis.call('ZADD',K(r,'mexp'),m.e,m.p)\n"                                     \
    "  redis.call('ZADD',K(r,'order'),seq,m.p) stat('members',1)\n"                                \
    "  return m end\n"                                                                             \
    "local function sig_due(r,ex)\n"                                                               \
    "  local sx=tonumber(redis.call('HGET',K(r,'room'),'sx'))\n"                                   \
    "  if sx and sx<=ex then return false end\n"                                                   \
    "  redis.call('HSET',K(r,'room'),'sx',S(ex)) return true end\n"                                \
    "local function sig_reap(r)\n"                                                                 \
    "  local nx=nil\n"                                                                             \
    "  for _,p in ipairs(redis.call('ZRANGE',K(r,'order'),0,-1)) do\n"                             \
    "    local k=K(r,'inbox:'..p)\n"                                                               \
    "    while true do local h=redis.call('LINDEX',k,0)\n"                                         \
    "      if not h then break end\n"                                                              \
    "      local _,ex,_,_,hj=parse(h) ex=tonumber(ex)\n"                                           \
    "      if ex and ex>now then if not nx or ex<nx then nx=ex end break end\n"                    \
    "      redis.call('LPOP',k) stat('queued',-1) stat('qbytes',-#(hj or ''))\n"                   \
    "      stat('expired',1) end end\n"                                                            \
    "  local o=redis.call('HGET',K(r,'offer'),'env')\n"                                            \
    "  if o then local _,ex=parse(o) ex=tonumber(ex)\n"                                            \
    "    if not ex or ex<=now then offer_clear(r,true)\n"                                          \
    "    elseif not nx or ex<nx then nx=ex end end\n"                                              \
    "  if nx then redis.call('HSET',K(r,'room'),'sx',S(nx))\n"                                     \
    "  else redis.call('HDEL',K(r,'room'),'sx') end end\n"                                         \
    "local function room_remove(r,t)\n"                                                            \
    "  for _,p in ipairs(redis.call('ZRANGE',K(r,'order'),0,-1)) do mem_remove(r,p) end\n"         \
    "  offer_clear(r,false)\n"                                                                     \
    "  redis.call('DEL',K(r,'room'),K(r,'order'),K(r,'mdata'),K(r,'mexp'))\n"                      \
    "  redis.call('ZREM','pl:rooms',r) redis.call('ZREM','pl:rooms:public',r)\n"                   \
    "  redis.call('ZREM','pl:expiry',r) SC[r]=nil\n"                                               \
    "  if t then\n"                                                                                \
    "    local b='pl:bcast:'..t.bid\n"                                                             \
    "    if redis.call('GET',b)==r then redis.call('DEL',b) end\n"                                 \
    "    if t.bname~='' then local n='pl:name:'..t.bname\n"                                        \
    "      if redis.call('GET',n)==r then redis.call('DEL',n) end end end end\n"                   \
    "local function reap(r)\n"                                                                     \
    "  local t=room_get(r)\n"                                                                      \
    "  if not t then room_remove(r,nil) return nil end\n"                                          \
    "  if not tonumber(t.expires) then room_remove(r,nil) return nil end\n"                        \
    "  if tonumber(t.expires)<=now then\n"                                                         \
    "    local ra,ms=room_arr(t,r),members(r)\n"                                                   \
    "    room_remove(r,t) EV[#EV+1]={'R',ra,ms} return nil end\n"                                  \
    "  local gone=redis.call('ZRANGEBYSCORE',K(r,'mexp'),'-inf',now,'WITHSCORES')\n"               \
    "  if #gone==0 then return t end\n"                                                            \
    "  local ga={}\n"                                                                              \
    "  for i=1,#gone,2 do local p=gone[i] local m=mem_get(r,p)\n"                                  \
    "    if m then m.e=gone[i+1] ga[#ga+1]=mem_arr(m) end mem_remove(r,p) end\n"                   \
    "  local rem=members(r)\n"                                                                     \
    "  local ra=room_arr(t,r)\n"                                                                   \
    "  if #rem==0 then room_remove(r,t) end\n"                                                     \
    "  if #ga>0 then EV[#EV+1]={'M',ra,ga,rem,(#rem==0) and '1' or '0'} end\n"                     \
    "  if #rem==0 then return nil end\n"                                                           \
    "  touch_expiry(r,t) return t end\n"                                                           \
    "local function settle(r)\n"                                                                   \
    "  local t=reap(r)\n"                                                                          \
    "  if t then sig_reap(r) touch_expiry(r,t) end\n"                                              \
    "  return t end\n"                                                                             \
    "local function alive(r)\n"                                                                    \
    "  local e=tonumber(redis.call('ZSCORE','pl:expiry',r))\n"                                     \
    "  if e and e>now then SC[r]=e return {} end\n"                                                \
    "  return settle(r) end\n"                                                                     \
    "local function live(r)\n"                                                                     \
    "  local t=alive(r)\n"                                                                         \
    "  if t and not t.id then t=room_get(r) end\n"                                                 \
    "  return t end\n"                                                                             \
    "local function expiry_at_most(r,e)\n"                                                         \
    "  local c=SC[r]\n"                                                                            \
    "  if not c then c=tonumber(redis.call('ZSCORE','pl:expiry',r)) end\n"                         \
    "  if not c or c>e then redis.call('ZADD','pl:expiry',e,r) SC[r]=e end end\n"                  \
    "local function renew(r,t)\n"                                                                  \
    "  local kx=t.kx\n"                                                                            \
    "  if not t.id then local h=redis.call('HMGET',K(r,'room'),'id','kx')\n"                       \
    "    if not h[1] then return false end kx=h[2] end\n"                                          \
    "  expiry_at_most(r,math.min(tonumber(t.expires),now+MTTL))\n"                                 \
    "  if kx and tonumber(t.expires)-tonumber(kx)<GRACE/2 then\n"                                  \
    "    redis.call('HSET',K(r,'room'),'expires',t.expires) return true end\n"                     \
    "  redis.call('HSET',K(r,'room'),'expires',t.expires,'kx',t.expires)\n"                        \
    "  if not t.id then local f=room_get(r) f.expires=t.expires t=f end\n"                         \
    "  keep(r,t) return true end\n"

/* ARGV[2..11]: room id, broadcaster id, broadcaster name, custom name, public (1/0),
 * topology, max_peers, peer id, user id, name. */
#define RS_CREATE                                                                                  \
    "local rid,bid,bname=ARGV[2],ARGV[3],ARGV[4]\n"                                                \
    "local req={p=ARGV[9],u=ARGV[10],n=ARGV[11]}\n"                                                \
    "local ex=redis.call('GET','pl:bcast:'..bid)\n"                                                \
    "if ex then local t=live(ex)\n"                                                                \
    "  if t then local mm\n"                                                                       \
    "    for _,p in ipairs(redis.call('ZRANGE',K(ex,'order'),0,-1)) do\n"                          \
    "      local m=mem_get(ex,p) if m and m.u==bid then mm=m break end end\n"                      \
    "    if mm then mm.e=S(now+MTTL) redis.call('ZADD',K(ex,'mexp'),mm.e,mm.p)\n"                  \
    "    elseif redis.call('HEXISTS',K(ex,'mdata'),req.p)==1 then return {EV,-30005}\n"            \
    "    else mm=mem_add(ex,req) end\n"                                                            \
    "    t.expires=S(now+RTTL) renew(ex,t)\n"                                                      \
    "    return {EV,0,room_arr(t,ex),mem_arr(mm),'0'} end end\n"                                   \
    "if RMAX>0 and redis.call('ZCARD','pl:rooms')>=RMAX then\n"                                    \
    "  for _,r in ipairs(redis.call('ZRANGEBYSCORE','pl:expiry','-inf',now,'LIMIT',0,256)) do\n"   \
    "    settle(r) end end\n"                                                                      \
    "if RMAX>0 and redis.call('ZCARD','pl:rooms')>=RMAX then return {EV,-30008} end\n"             \
    "if rid=='' then return {EV,-30002} end\n"                                                     \
    "if redis.call('EXISTS',K(rid,'room'))==1 then return {EV,-30005} end\n"                       \
    "local t={id=rid,bid=bid,bname=bname,cname=ARGV[5],created=S(now),expires=S(now+RTTL),\n"      \
    "  maxp=ARGV[8],pub=ARGV[6],topo=ARGV[7]}\n"                                                   \
    "redis.call('HSET',K(rid,'room'),'id',t.id,'bid',t.bid,'bname',t.bname,'cname',t.cname,\n"     \
    "  'created',t.created,'expires',t.expires,'maxp',t.maxp,'pub',t.pub,'topo',t.topo,'seq',0,\n" \
    "  'kx',t.expires)\n"                                                                          \
    "local mm=mem_add(rid,req)\n"                                                                  \
    "redis.call('ZADD','pl:rooms',now,rid)\n"                                                      \
    "redis.call('SET','pl:bcast:'..bid,rid)\n"                                                     \
    "if bname~='' and t.pub=='1' then redis.call('SET','pl:name:'..bname,rid) end\n"               \
    "if t.pub=='1' then redis.call('ZADD','pl:rooms:public',-now,rid) end\n"                       \
    "keep(rid,t) SC[rid]=math.min(now+RTTL,now+MTTL) redis.call('ZADD','pl:expiry',SC[rid],rid)\n" \
    "return {EV,0,room_arr(t,rid),mem_arr(mm),'1'}\n"

/* ARGV[2..6]: room id or "", broadcaster name or "", peer id, user id, name. */
#define RS_JOIN                                                                                    \
    "local r=ARGV[2]\n"                                                                            \
    "if r=='' then r=redis.call('GET','pl:name:'..ARGV[3]) end\n"                                  \
    "if not r then return {EV,-30003} end\n"                                                       \
    "local t=live(r)\n"                                                                            \
    "if not t then return {EV,-30003} end\n"                                                       \
    "local n=redis.call('ZCARD',K(r,'order'))\n"                                                   \
    "if tonumber(t.maxp)>0 and n>=tonumber(t.maxp) then return {EV,-30004} end\n"                  \
    "if redis.call('HEXISTS',K(r,'mdata'),ARGV[4])==1 then return {EV,-30005} end\n"               \
    "local peers=members(r)\n"                                                                     \
    "local mm=mem_add(r,{p=ARGV[4],u=ARGV[5],n=ARGV[6]})\n"                                        \
    "expiry_at_most(r,now+MTTL)\n"                                                                 \
    "return {EV,0,room_arr(t,r),mem_arr(mm),peers}\n"

/* ARGV[2..3]: room id, peer id. */
#define RS_LEAVE                                                                                   \
    "local r,p=ARGV[2],ARGV[3]\n"                                                                  \
    "local t=alive(r)\n"                                                                           \
    "if not t then return {EV,-30003} end\n"                                                       \
    "if redis.call('HEXISTS',K(r,'mdata'),p)==0 then return {EV,-30006} end\n"                     \
    "mem_remove(r,p)\n"                                                                            \
    "local rest=members(r)\n"                                                                      \
    "if #rest==0 then room_remove(r,t.id and t or room_get(r)) return {EV,0,'1',rest} end\n"       \
    "return {EV,0,'0',rest}\n"

/* ARGV[2..3]: room id, peer id. The keys' TTLs (keep()) are only a backstop for the sweep,
 * so a heartbeat renews them only once the room's expiry has moved GRACE/2 past the one they
 * were last set for (kx): the keys then outlive the room by at least GRACE/2, and most
 * heartbeats make ten fewer calls. The member in the answer is its peer id and new expiry
 * (store.h): mexp says whether it is a member, and the JSON in mdata is not read. */
#define RS_HEARTBEAT                                                                               \
    "local r,p=ARGV[2],ARGV[3]\n"                                                                  \
    "local t=alive(r)\n"                                                                           \
    "if not t then return {EV,-30003} end\n"                                                       \
    "local mx=K(r,'mexp')\n"                                                                       \
    "if not redis.call('ZSCORE',mx,p) then return {EV,-30006} end\n"                               \
    "t.expires=S(now+RTTL)\n"                                                                      \
    "if not renew(r,t) then return {EV,-30003} end\n"                                              \
    "local e=S(now+MTTL)\n"                                                                        \
    "redis.call('ZADD',mx,e,p)\n"                                                                  \
    "return {EV,0,{r,'','','','0',t.expires,tostring(redis.call('ZCARD',K(r,'order'))),\n"         \
    "  '0','0','0'},{p,'','','0',e,''}}\n"

#define RS_GET_MEMBER                                                                              \
    "local r,p=ARGV[2],ARGV[3]\n"                                                                  \
    "local t=live(r)\n"                                                                            \
    "if not t then return {EV,-30003} end\n"                                                       \
    "local m=mem_get(r,p)\n"                                                                       \
    "if not m then return {EV,-30006} end\n"                                                       \
    "local e=redis.call('ZSCORE',K(r,'mexp'),p)\n"                                                 \
    "if e then m.e=e end\n"                                                                        \
    "return {EV,0,room_arr(t,r),mem_arr(m)}\n"

/* ARGV[2..11]: room id, from peer, has from (1/0), to peer, has to (1/0), type, envelope
 * id, envelope from, json, direct: "1" the node holds the recipient's socket and takes the
 * envelope from the reply when the inbox is empty (answer {EV,0,'D'}: counted as delivered,
 * not queued; if the socket refuses it, the node requeues it, RS_REQUEUE); "0" queue it. */
#define RS_PUSH                                                                                    \
    "local r,from,hasfrom,to,hasto=ARGV[2],ARGV[3],ARGV[4]=='1',ARGV[5],ARGV[6]=='1'\n"            \
    "local ty,id,efrom,js,dm=ARGV[7],ARGV[8],ARGV[9],ARGV[10],ARGV[11]\n"                          \
    "local t=alive(r)\n"                                                                           \
    "if not t then return {EV,-30003} end\n"                                                       \
    "local ms=redis.call('HMGET',K(r,'mdata'),from,to)\n"                                          \
    "if hasfrom and not ms[1] then return {EV,-30006} end\n"                                       \
    "local k=K(r,'inbox:'..to)\n"                                                                  \
    "if hasto then\n"                                                                              \
    "  local md=ms[2]\n"                                                                           \
    "  if not md then return {EV,-30003} end\n"                                                    \
    "  if dm=='1' and redis.call('EXISTS',k)==0 then stat('delivered',1)\n"                        \
    "    if ty=='1' and efrom~='' then local m=cjson.decode(md) m.l=efrom mem_save(r,m) end\n"     \
    "    return {EV,0,'D'} end\n"                                                                  \
    "  local all,items=redis.call('LRANGE',k,0,-1),{}\n"                                           \
    "  for i,rec in ipairs(all) do local _,ex,_,_,hj=parse(rec)\n"                                 \
    "    if #items==0 and tonumber(ex)<=now then\n"                                                \
    "      stat('queued',-1) stat('qbytes',-#hj) stat('expired',1)\n"                              \
    "    else items[#items+1]=rec end end\n"                                                       \
    "  if #items<#all then redis.call('LTRIM',k,#all-#items,-1) end\n"                             \
    "  if IMAX>0 and #items>=IMAX then return {EV,-30008} end\n"                                   \
    "  local b,mine=0,0\n"                                                                         \
    "  for _,rec in ipairs(items) do local _,_,f,_,j=parse(rec) b=b+#j\n"                          \
    "    if f==efrom then mine=mine+1 end end\n"                                                   \
    "  if IBYTES>0 and b+#js>IBYTES then return {EV,-30008} end\n"                                 \
    "  if ISEND>0 and efrom~='' and mine>=ISEND then return {EV,-30008} end\n"                     \
    "end\n"                                                                                        \
    "if QBMAX>0 and (tonumber(redis.call('HGET','pl:stats','qbytes')) or 0)+#js>QBMAX then\n"      \
    "  return {EV,-30008} end\n"                                                                   \
    "local rec=ty..'|'..S(now+STTL)..'|'..efrom..'|'..id..'|'..js\n"                               \
    "if hasto then\n"                                                                              \
    "  redis.call('RPUSH',k,rec) redis.call('PEXPIRE',k,STTL+GRACE)\n"                             \
    "  redis.call('PUBLISH','pl:inbox',r..'/'..to)\n"                                              \
    "else\n"                                                                                       \
    "  if redis.call('EXISTS',K(r,'room'))==0 then return {EV,-30003} end\n"                       \
    "  local sender=efrom if hasfrom then sender=from end\n"                                       \
    "  offer_clear(r,false)\n"                                                                     \
    "  redis.call('HSET',K(r,'offer'),'sender',sender,'env',rec)\n"                                \
    "  redis.call('PEXPIRE',K(r,'offer'),STTL+GRACE)\n"                                            \
    "  for _,p in ipairs(redis.call('ZRANGE',K(r,'order'),0,-1)) do\n"                             \
    "    if p~=sender then redis.call('PUBLISH','pl:inbox',r..'/'..p) end end\n"                   \
    "end\n"                                                                                        \
    "stat('queued',1) stat('qbytes',#js)\n"                                                        \
    "if sig_due(r,now+STTL) then expiry_at_most(r,now+STTL) end\n"                                 \
    "return {EV,0}\n"

/* ARGV[2..5]: room id, peer id, mask, max. Envelopes come back as {id,type,from,json}. */
#define RS_POP                                                                                     \
    "local r,p,mask,max=ARGV[2],ARGV[3],tonumber(ARGV[4]),tonumber(ARGV[5])\n"                     \
    "local t=alive(r)\n"                                                                           \
    "if not t then return {EV,-30003} end\n"                                                       \
    "if redis.call('HEXISTS',K(r,'mdata'),p)==0 then return {EV,-30006} end\n"                     \
    "local k=K(r,'inbox:'..p)\n"                                                                   \
    "local items=redis.call('LRANGE',k,0,-1)\n"                                                    \
    "local kept,out,changed={}, {}, false\n"                                                       \
    "for _,rec in ipairs(items) do\n"                                                              \
    "  local ty,ex,f,id,js=parse(rec)\n"                                                           \
    "  if tonumber(ex)<=now then changed=true\n"                                                   \
    "    stat('queued',-1) stat('qbytes',-#js) stat('expired',1)\n"                                \
    "  elseif #out<max and bit.band(tonumber(ty),mask)~=0 then changed=true\n"                     \
    "    stat('queued',-1) stat('qbytes',-#js) out[#out+1]={id,ty,f,js}\n"                         \
    "  else kept[#kept+1]=rec end end\n"                                                           \
    "if changed then redis.call('DEL',k)\n"                                                        \
    "  for i=1,#kept,512 do redis.call('RPUSH',k,unpack(kept,i,math.min(i+511,#kept))) end\n"      \
    "  if #kept>0 then redis.call('PEXPIRE',k,STTL+GRACE) end end\n"                               \
    "if bit.band(mask,1)~=0 then\n"                                                                \
    "  local o=redis.call('HMGET',K(r,'offer'),'sender','env')\n"                                  \
    "  if o[2] then local ty,ex,f,id,js=parse(o[2])\n"                                             \
    "    if tonumber(ex)<=now then offer_clear(r,true)\n"                                          \
    "    elseif #out<max and o[1]~=p then offer_clear(r,false) out[#out+1]={id,ty,f,js} end\n"     \
    "  end end\n"                                                                                  \
    "if #out>0 then stat('delivered',#out) end\n"                                                  \
    "local lof=nil\n"                                                                              \
    "for _,e in ipairs(out) do if e[2]=='1' and e[3]~='' then lof=e[3] end end\n"                  \
    "if lof then local m=mem_get(r,p) if m then m.l=lof mem_save(r,m) end end\n"                   \
    "return {EV,0,out}\n"

#define RS_GET_ROOM                                                                                \
    "local t=live(ARGV[2])\n"                                                                      \
    "if not t then return {EV,-30003} end\n"                                                       \
    "return {EV,0,room_arr(t,ARGV[2])}\n"

#define RS_GET_MEMBERS                                                                             \
    "local t=live(ARGV[2])\n"                                                                      \
    "if not t then return {EV,-30003} end\n"                                                       \
    "return {EV,0,room_arr(t,ARGV[2]),members(ARGV[2])}\n"

/* ARGV[2..4]: limit, cursor created_at ("" for the first page), cursor room id. */
#define RS_LIST                                                                                    \
    "local limit,cc,cid=tonumber(ARGV[2]),ARGV[3],ARGV[4]\n"                                       \
    "local min='-inf' local cs=nil\n"                                                              \
    "if cc~='' then cs=-tonumber(cc) min=S(cs) end\n"                                              \
    "local out,last,more,off={},nil,false,0\n"                                                     \
    "while not more do\n"                                                                          \
    "  local "                                                                                     \
    "b=redis.call('ZRANGEBYSCORE','pl:rooms:public',min,'+inf','WITHSCORES','LIMIT',off,128)\n"    \
    "  if #b==0 then break end\n"                                                                  \
    "  for i=1,#b,2 do local id,sc=b[i],tonumber(b[i+1])\n"                                        \
    "    if not (cs and sc==cs and not bytes_lt(cid,id)) then\n"                                   \
    "      local t=room_get(id)\n"                                                                 \
    "      if t and tonumber(t.expires)>now then\n"                                                \
    "        if #out>=limit then more=true break end\n"                                            \
    "        out[#out+1]=room_arr(t,id) last=t end end end\n"                                      \
    "  off=off+128 end\n"                                                                          \
    "local nc=''\n"                                                                                \
    "if more and last then nc=last.created..'.'..last.id end\n"                                    \
    "return {EV,0,out,nc}\n"

/* ARGV[2..3]: key, window_ms. */
#define RS_RATE                                                                                    \
    "local w=tonumber(ARGV[3])\n"                                                                  \
    "local win=math.floor(now/w)\n"                                                                \
    "local k='pl:rl:'..ARGV[2]..':'..ARGV[3]..':'..S(win)\n"                                       \
    "local c=redis.call('INCR',k)\n"                                                               \
    "if c==1 then redis.call('PEXPIRE',k,w+1000) end\n"                                            \
    "return {EV,0,tostring(c),S((win+1)*w)}\n"

#define RS_STATS                                                                                   \
    "local v=redis.call('HMGET','pl:stats','members','queued','delivered','expired')\n"            \
    "return {EV,0,tostring(redis.call('ZCARD','pl:rooms')),v[1] or '0',v[2] or '0',\n"             \
    "  v[3] or '0',v[4] or '0'}\n"

/* ARGV[2] the secret's name, [3] a fresh random value: the first caller's value wins
 * (SET NX, no TTL) and every caller gets the stored one. */
#define RS_SECRET                                                                                  \
    "local k='pl:secret:'..ARGV[2]\n"                                                              \
    "redis.call('SET',k,ARGV[3],'NX')\n"                                                           \
    "return {EV,0,redis.call('GET',k)}\n"

/* ARGV[2]: how many due rooms to handle. Every node runs it; the script is atomic, so each
 * expiry is reported by exactly one node. */
#define RS_SWEEP                                                                                   \
    "local due=redis.call('ZRANGEBYSCORE','pl:expiry','-inf',now,'LIMIT',0,tonumber(ARGV[2]))\n"   \
    "for _,r in ipairs(due) do settle(r) end\n"                                                    \
    "return {EV,0,tostring(#due)}\n"

/* ---- custom emoji and the upstream cache ----
 * pl:emoji:<id> hash (the record and its image in `data`), pl:emoji:names:<domain> hash
 * name -> id (names are unique per domain), pl:emoji:list:<domain> zset id by upload time;
 * no TTL. pl:cache:<key> hash {v, at} with the TTL the caller asks for. */
#define RS_EMOJI_FIELDS "'id','name','dom','by','at','w','h','anim','ct','etag','size'"

/* ARGV[2..12]: id, domain, name, uploaded_by, uploaded_at_ms, width, height, animated (1/0),
 * content type, etag, image. */
#define RS_EMOJI_ADD                                                                               \
    "local id,dom,name=ARGV[2],ARGV[3],ARGV[4]\n"                                                  \
    "local ek,nk,lk='pl:emoji:'..id,'pl:emoji:names:'..dom,'pl:emoji:list:'..dom\n"                \
    "if redis.call('HEXISTS',nk,name)==1 or redis.call('EXISTS',ek)==1 then\n"                     \
    "  return {EV,-30005} end\n"                                                                   \
    "if EMAX>0 and redis.call('HLEN',nk)>=EMAX then return {EV,-30008} end\n"                      \
    "redis.call('HSET',ek,'id',id,'dom',dom,'name',name,'by',ARGV[5],'at',ARGV[6],'w',ARGV[7],\n"  \
    "  'h',ARGV[8],'anim',ARGV[9],'ct',ARGV[10],'etag',ARGV[11],'size',tostring(#ARGV[12]),\n"     \
    "  'data',ARGV[12])\n"                                                                         \
    "redis.call('HSET',nk,name,id)\n"                                                              \
    "redis.call('ZADD',lk,tonumber(ARGV[6]),id)\n"                                                 \
    "return {EV,0,redis.call('HMGET',ek," RS_EMOJI_FIELDS ")}\n"

/* ARGV[2..3]: id, with data (1/0). */
#define RS_EMOJI_GET                                                                               \
    "local k='pl:emoji:'..ARGV[2]\n"                                                               \
    "local a=redis.call('HMGET',k," RS_EMOJI_FIELDS ")\n"                                          \
    "if not a[1] then return {EV,-30003} end\n"                                                    \
    "if ARGV[3]=='1' then return {EV,0,a,redis.call('HGET',k,'data')} end\n"                       \
    "return {EV,0,a}\n"

/* ARGV[2]: domain. Oldest first. */
#define RS_EMOJI_LIST                                                                              \
    "local out={}\n"                                                                               \
    "for _,id in ipairs(redis.call('ZRANGE','pl:emoji:list:'..ARGV[2],0,-1)) do\n"                 \
    "  local a=redis.call('HMGET','pl:emoji:'..id," RS_EMOJI_FIELDS ")\n"                          \
    "  if a[1] then out[#out+1]=a end end\n"                                                       \
    "return {EV,0,out}\n"

/* ARGV[2]: id. */
#define RS_EMOJI_DEL                                                                               \
    "local k=ARGV[2]\n"                                                                            \
    "local v=redis.call('HMGET','pl:emoji:'..k,'dom','name')\n"                                    \
    "if not v[1] then return {EV,-30003} end\n"                                                    \
    "local nk='pl:emoji:names:'..v[1]\n"                                                           \
    "if redis.call('HGET',nk,v[2])==k then redis.call('HDEL',nk,v[2]) end\n"                       \
    "redis.call('ZREM','pl:emoji:list:'..v[1],k)\n"                                                \
    "redis.call('DEL','pl:emoji:'..k)\n"                                                           \
    "return {EV,0}\n"

/* ARGV[2]: key. */
#define RS_CACHE_GET                                                                               \
    "local v=redis.call('HMGET','pl:cache:'..ARGV[2],'v','at')\n"                                  \
    "if not v[1] then return {EV,-30003} end\n"                                                    \
    "return {EV,0,v[1],v[2]}\n"

/* ARGV[2..4]: key, value, keep (ms). */
#define RS_CACHE_PUT                                                                               \
    "local k='pl:cache:'..ARGV[2]\n"                                                               \
    "redis.call('HSET',k,'v',ARGV[3],'at',S(now))\n"                                               \
    "redis.call('PEXPIRE',k,tonumber(ARGV[4]))\n"                                                  \
    "return {EV,0}\n"

/* ARGV[2..7]: room id, to peer, type, envelope id, envelope from, json. An envelope a direct
 * push left to this node whose socket then refused it: back to the head of the inbox (it was
 * pushed before anything queued there since), without the sender and limit checks its push
 * passed, and no longer counted as delivered. */
#define RS_REQUEUE                                                                                 \
    "local r,to,js=ARGV[2],ARGV[3],ARGV[7]\n"                                                      \
    "stat('delivered',-1)\n"                                                                       \
    "local t=alive(r)\n"                                                                           \
    "if not t then return {EV,-30003} end\n"                                                       \
    "if redis.call('HEXISTS',K(r,'mdata'),to)==0 then return {EV,-30003} end\n"                    \
    "local k=K(r,'inbox:'..to)\n"                                                                  \
    "redis.call('LPUSH',k,ARGV[4]..'|'..S(now+STTL)..'|'..ARGV[6]..'|'..ARGV[5]..'|'..js)\n"       \
    "redis.call('PEXPIRE',k,STTL+GRACE)\n"                                                         \
    "redis.call('PUBLISH','pl:inbox',r..'/'..to)\n"                                                \
    "stat('queued',1) stat('qbytes',#js)\n"                                                        \
    "if sig_due(r,now+STTL) then expiry_at_most(r,now+STTL) end\n"                                 \
    "return {EV,0}\n"

#endif
