// scripts.hpp: the server-side Lua that makes one announce or one scrape a single round trip.
//
// Key layout (README.md has the sizing and the reasons): every key of one torrent carries the hex
// info_hash as its hash tag, so a Redis Cluster keeps the whole swarm in one slot.
//   <prefix>:{<hex>}:4, :6   sorted set per family: the peers, their BEP 7 keys, and (in :4 only)
//                            `downloaded` and the IPv6 flag
//   <prefix>:{<hex>}:p       hash member -> "uploaded:downloaded" (only with TRACK_COUNTERS)
// A peer's member is its compact entry (6 bytes IPv4, 18 IPv6: address + port, network order),
// exactly what a client receives, so choosing peers is a concatenation. Scores (all below 2^53,
// exact in a double):
//   leecher          expiry_ms * 2 + completed                  in [0, 2^46)
//   seeder           2^46 + expiry_ms * 2 + completed           in [2^46, 2^47)
//   'k' .. member    2^51 + the peer's BEP 7 key (absent: no key)
//   'n'              2^50 + downloaded;   '6'   2^50 ("IPv6 peers may exist")
// expiry_ms is on the Redis server's clock (TIME): host clocks are per-process monotonic and not
// comparable between tracker hosts. The low bit remembers "completed already counted".
// Expiry needs no sweeper: counts and answers use only live score bands, a peer joining a set
// trims it, and each key carries a PEXPIREAT as long as its longest-lived member, so a torrent
// nobody announces to disappears by itself.
#pragma once

namespace chihaya::redis::scripts {

// One call carries a batch of announces (all of one slot in a Cluster: their keys share it).
// KEYS: per announce, its torrent's three keys "<prefix>:{<hex>}:" 4, 6 and p (all declared, so
//   that a Cluster slot being migrated redirects or refuses the call as for any multi-key one)
// ARGV[1]: random seed; then per announce 3 arguments:
//   member; ctl = struct '>BBBI4I4I4' (event, seeder 0/1, track 0/1, numwant, ttl_s,
//   key: the BEP 7 key, 0 = none); counters "uploaded:downloaded" ("" without track)
// Returns 8 flat elements per announce, in order:
//   status (0 ok, 1 key mismatch: nothing changed), complete, incomplete, downloaded,
//   had_previous, prev_uploaded, prev_downloaded, peers
// Counters stay strings end to end: Lua numbers are doubles and would round 64-bit totals.
//
// Why this shape: Redis' one thread is the limit of the whole Redis path; each redis.call costs
// about a microsecond and each distinct key an announce touches about two more (its dict entry,
// object and listpack are cold in a large keyspace). So one sorted set per torrent and family
// holds everything an announce needs, and a known peer re-announcing into a small swarm costs
// five calls on one key: ZMSCORE (its score, its key, downloaded, the IPv6 flag), ZADD,
// PEXPIREAT, and a ZRANGEBYSCORE of each live band it may be given (whole: the answer and the
// counts; a seeder counts the seeders' band with ZCOUNT instead). Larger swarms count with ZCOUNT
// and draw each band's share in a few random windows (draw()); IPv6 peers, and IPv4 ones in a
// swarm that has IPv6 peers, touch the other family's set too; private mode touches the counters
// hash. Redis formats every score it returns with printf, so no path asks for scores.
inline constexpr const char* kAnnounce = R"lua(#!lua
local call = redis.call
local fmt = string.format
local B = 70368744177664     -- 2^46: seeders' scores start here
local N0 = 1125899906842624  -- 2^50: specials; 'n' = N0 + downloaded, '6' = N0
local K0 = 2251799813685248  -- 2^51: 'k'..member = K0 + the member's BEP 7 key
local t = call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cut = now * 2 + 1
local lo_l, hi_l = '(' .. fmt('%d', cut), '(' .. fmt('%d', B)
local lo_s, hi_s = '(' .. fmt('%d', B + cut), '(' .. fmt('%d', 2 * B)
math.randomseed(tonumber(ARGV[1]))
local unpack_ctl = struct.unpack
-- The key lives at least until `at` (ms since the epoch, a string): extended, never shortened.
-- GT fails on a key without expiry (one just created) and on a missing one; NX then sets the
-- former.
local function extend(k, at)
  if call('PEXPIREAT', k, at, 'GT') == 0 then call('PEXPIREAT', k, at, 'NX') end
end
-- Removes the expired peers of set k, their key entries, and their counters in kp.
local function trim(k, kp)
  local gone = call('ZRANGEBYSCORE', k, '-inf', fmt('%d', cut))
  local gs = call('ZRANGEBYSCORE', k, fmt('%d', B), fmt('%d', B + cut))
  for j = 1, #gs do gone[#gone + 1] = gs[j] end
  for j = 1, #gone, 500 do
    local batch = {}
    for m = j, math.min(j + 499, #gone) do
      batch[#batch + 1] = gone[m]
      batch[#batch + 1] = 'k' .. gone[m]
    end
    call('ZREM', k, unpack(batch))
    call('HDEL', kp, unpack(gone, j, math.min(j + 499, #gone)))
  end
  return #gone
end
-- Live counts of set k: seeders, leechers.
local function counts(k)
  return call('ZCOUNT', k, lo_s, hi_s), call('ZCOUNT', k, lo_l, hi_l)
end
-- Appends m random members of set k's band that holds c members at ranks [base, base + c),
-- other than self and those in seen, to pool (np entries); returns the new np. Windows of
-- consecutive members (in expiry order) from random ranks (ZRANGE by rank: O(log n) to reach,
-- where ZRANGEBYSCORE .. LIMIT walks its offset), then one window twice the size needed: with at
-- most m - 1 seen and self to skip, that last one completes the draw.
local function draw(k, base, c, m, self, pool, np, seen)
  if m <= 0 then return np end
  local want_np = np + m
  local function take(off, n)
    local got = call('ZRANGE', k, base + off, base + off + n - 1)
    for j = 1, #got do
      local g = got[j]
      if np < want_np and g ~= self and not seen[g] then
        seen[g] = true
        np = np + 1
        pool[np] = g
      end
    end
  end
  local size = math.ceil(m / 6)
  if c > 2 * m + 2 then
    for _ = 1, 6 do
      if np >= want_np then break end
      take(math.random(0, c - size), size)
    end
  end
  if np < want_np then
    local n = math.min(c, 2 * m + 2)
    take(math.random(0, c - n), n)
  end
  return np
end
local out, o = {}, 0
for i = 1, #KEYS / 3 do
  local a = i * 3 - 1
  local k4, k6, kp = KEYS[a - 1], KEYS[a], KEYS[a + 1]
  local member, ctr = ARGV[a], ARGV[a + 2]
  local event, seeder, track, want, ttl_s, key = unpack_ctl('>BBBI4I4I4', ARGV[a + 1])
  local v6 = #member == 18
  local k = k4
  if v6 then k = k6 end
  local ek = 'k' .. member
  local sc, sp
  if v6 then
    sc = call('ZMSCORE', k, member, ek)
    sp = call('ZMSCORE', k4, 'n', '6')
  else
    sc = call('ZMSCORE', k, member, ek, 'n', '6')
    sp = {sc[3], sc[4]}
  end
  local d = 0
  if sp[1] then d = tonumber(sp[1]) - N0 end
  local has6 = sp[2] ~= false
  -- The peer: present (maybe expired), live, its state and key.
  local present = sc[1] ~= false
  local old, was_seeder, done = false, false, 0
  if present then
    local s = tonumber(sc[1])
    was_seeder = s >= B
    if was_seeder then s = s - B end
    if s > cut then
      old = true
      done = s % 2
    end
  end
  local stored = 0
  if old and sc[2] then stored = tonumber(sc[2]) - K0 end
  if old and stored ~= 0 and stored ~= key then
    -- BEP 7: someone else behind this address and port; nothing changes.
    out[o + 1], out[o + 2], out[o + 3], out[o + 4] = 1, 0, 0, 0
    out[o + 5], out[o + 6], out[o + 7], out[o + 8] = 0, '0', '0', ''
  else
    local had, pu, pd = 0, '0', '0'
    if old then had = 1 end
    if old and track == 1 then
      local v = call('HGET', kp, member)
      if v then
        local sep = string.find(v, ':', 1, true)
        pu, pd = string.sub(v, 1, sep - 1), string.sub(v, sep + 1)
      end
    end
    local peers = ''
    local cs, cl = -1, -1
    if event == 3 then
      if present then call('ZREM', k, member, ek) end
      if track == 1 or present then call('HDEL', kp, member) end
    else
      local at = now + ttl_s * 1000
      local sat = fmt('%d', at)
      if event == 1 and done == 0 then
        done = 1
        if sp[1] then d = call('ZINCRBY', k4, 1, 'n') - N0
        else call('ZADD', k4, N0 + 1, 'n'); d = 1 end
      end
      local score = at * 2 + done
      if seeder == 1 then score = score + B end
      -- The first key a peer gave stays its key until it leaves (stopped or expired).
      local keep = key
      if old and stored ~= 0 then keep = stored end
      if keep ~= 0 and (not old or stored == 0) then
        call('ZADD', k, fmt('%d', score), member, fmt('%d', K0 + keep), ek)
      else
        call('ZADD', k, fmt('%d', score), member)
        if sc[2] and not old then call('ZREM', k, ek) end  -- an expired peer's key
      end
      extend(k, sat)
      if v6 then
        if not has6 then call('ZADD', k4, N0, '6'); has6 = true end
        extend(k4, sat)  -- holds downloaded and the IPv6 flag
      end
      if track == 1 then
        call('HSET', kp, member, ctr)
        extend(kp, sat)
      end
      -- A peer joining trims the set, so churn cannot grow it with expired peers.
      if not old then trim(k, kp) end
      if want > 0 then
        local pool, np = {}, 0
        -- A swarm with few peers: its live bands, whole (members only: no scores to format).
        -- (ZCARD counts entries, peers or not: at most cap of them means both bands are small.)
        local cap = want + 2
        local gl, gs = {}, {}
        local small = call('ZCARD', k) <= cap
        if small then
          gl = call('ZRANGEBYSCORE', k, lo_l, hi_l)
          if seeder == 0 then gs = call('ZRANGEBYSCORE', k, lo_s, hi_s) end
        else
          cs, cl = counts(k)
          if cl < cap and cs < cap then
            small = true
            gl = call('ZRANGEBYSCORE', k, lo_l, hi_l)
            if seeder == 0 then gs = call('ZRANGEBYSCORE', k, lo_s, hi_s) end
          end
        end
        if small then
          cl = #gl
          if seeder == 0 then cs = #gs end
          for j = 1, #gl do if gl[j] ~= member then np = np + 1; pool[np] = gl[j] end end
          for j = 1, #gs do if gs[j] ~= member then np = np + 1; pool[np] = gs[j] end end
        else
          -- A larger one: each band's share of the answer drawn from it in random windows
          -- (members only, never a scan, never the peer itself, never one twice).
          local own_l = 0
          if seeder == 0 then own_l = 1 end  -- this leecher is live in the leechers' band
          local as, al = cs, cl - own_l
          if seeder == 1 then as = 0 end
          local target = math.min(want, as + al)
          local ms = 0
          if as > 0 then ms = math.min(as, math.floor(target * as / (as + al) + 0.5)) end
          local ml = math.min(al, target - ms)
          ms = target - ml
          -- Ranks: expired leechers, live leechers, expired seeders, live seeders, specials.
          local seen = {}
          local base_l = call('ZCOUNT', k, '-inf', fmt('%d', cut))
          np = draw(k, base_l, cl, ml, member, pool, np, seen)
          if ms > 0 then
            local base_s = call('ZCOUNT', k, '-inf', fmt('%d', B + cut))
            np = draw(k, base_s, cs, ms, member, pool, np, seen)
          end
        end
        if np > want then
          for j = 1, want do
            local r = math.random(j, np)
            pool[j], pool[r] = pool[r], pool[j]
          end
          for j = np, want + 1, -1 do pool[j] = nil end
        end
        peers = table.concat(pool)
      end
    end
    if cl >= 0 and cs < 0 then
      cs = call('ZCOUNT', k, lo_s, hi_s)  -- a seeder took the leechers' band whole
    elseif cs < 0 then
      cs, cl = counts(k)
    end
    local s, l = cs, cl
    if v6 then
      local os, ol = counts(k4)
      s, l = s + os, l + ol
    elseif has6 then
      local os, ol = counts(k6)
      s, l = s + os, l + ol
    end
    if s + l == 0 then
      call('DEL', k4, k6, kp)
      d = 0
    end
    out[o + 1], out[o + 2], out[o + 3], out[o + 4] = 0, s, l, d
    out[o + 5], out[o + 6], out[o + 7], out[o + 8] = had, pu, pd, peers
  end
  o = o + 8
end
return out
)lua";

// Read-only: counts live peers without trimming, so a scrape never writes.
// KEYS: the torrent's sets 4 and 6. Returns {complete, incomplete, downloaded}.
inline constexpr const char* kScrape = R"lua(
local B = 70368744177664
local N0 = 1125899906842624
local t = redis.call('TIME')
local cut = (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) * 2 + 1
local lo_l, hi_l = '(' .. string.format('%d', cut), '(' .. string.format('%d', B)
local lo_s, hi_s = '(' .. string.format('%d', B + cut), '(' .. string.format('%d', 2 * B)
local s = redis.call('ZCOUNT', KEYS[1], lo_s, hi_s) + redis.call('ZCOUNT', KEYS[2], lo_s, hi_s)
local l = redis.call('ZCOUNT', KEYS[1], lo_l, hi_l) + redis.call('ZCOUNT', KEYS[2], lo_l, hi_l)
local d = 0
if s + l > 0 then
  local n = redis.call('ZSCORE', KEYS[1], 'n')
  if n then d = tonumber(n) - N0 end
end
return {s, l, d}
)lua";

}  // namespace chihaya::redis::scripts
