// scripts.hpp: the server-side Lua that makes one announce or one scrape a single round trip.
//
// Key layout (README.md has the sizing): every key of one torrent carries the hex info_hash as
// its hash tag, so a Redis Cluster keeps the whole swarm in one slot and a script may touch it.
//   <prefix>:{<hex>}:s4  s6   sorted sets of seeders, IPv4 / IPv6
//   <prefix>:{<hex>}:l4  l6   sorted sets of leechers, IPv4 / IPv6
//   <prefix>:{<hex>}:n        string: completed events counted for the torrent
//   <prefix>:{<hex>}:c        hash member -> "uploaded:downloaded" (only with TRACK_COUNTERS)
// A member is the peer's compact entry (6 bytes IPv4, 18 IPv6: address + port, network order),
// exactly what a client receives, so choosing peers is a concatenation. Its score is
//   expiry_ms * 2 + completed
// with expiry_ms on the Redis server's clock (TIME): host clocks are per-process monotonic and
// not comparable between tracker hosts. The low bit remembers "completed already counted" for
// free (no per-peer hash); scores stay below 2^53, so doubles hold them exactly.
// Expiry is server-side and needs no sweeper: each script trims the members whose expiry has
// passed from the swarm it touches, and each key carries a PEXPIRE as long as its longest-lived
// member, so a torrent nobody announces to disappears by itself.
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
// counts; a seeder counts the seeders' band with ZCOUNT instead). Larger swarms sample with
// ZRANDMEMBER and count with ZCOUNT; IPv6 peers, and IPv4 ones in a swarm that has IPv6 peers,
// touch the other family's set too; private mode touches the counters hash. Redis formats every
// score it returns with printf, so the common path asks for members only.
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
      if track == 1 or old then call('HDEL', kp, member) end
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
        local cap = want + 2
        local gl = call('ZRANGEBYSCORE', k, lo_l, hi_l, 'LIMIT', 0, cap)
        local gs = {}
        if seeder == 0 then gs = call('ZRANGEBYSCORE', k, lo_s, hi_s, 'LIMIT', 0, cap) end
        if #gl < cap and #gs < cap then
          cl = #gl
          if seeder == 0 then cs = #gs end
          for j = 1, #gl do if gl[j] ~= member then np = np + 1; pool[np] = gl[j] end end
          for j = 1, #gs do if gs[j] ~= member then np = np + 1; pool[np] = gs[j] end end
        else
          -- A larger one: a random sample with scores. Peers, the specials ('n', '6', 'k'..)
          -- and this peer may all come back: ask for enough.
          local ask = 2 * want + 4
          local got = call('ZRANDMEMBER', k, ask, 'WITHSCORES')
          local expired = false
          local len = #member
          for j = 1, #got, 2 do
            local m = got[j]
            if #m == len then
              local sm = tonumber(got[j + 1])
              local is_seeder = sm >= B
              if is_seeder then sm = sm - B end
              if sm <= cut then
                expired = true
              elseif m ~= member and (seeder == 0 or not is_seeder) then
                np = np + 1; pool[np] = m
              end
            end
          end
          cs, cl = counts(k)
          if np < want then
            -- The sample held too few of the peers this one may get: take more of those alone,
            -- in score order from a random offset (never the peer itself, never one twice).
            local lo, hi, n = lo_l, hi_l, cl
            if seeder == 0 then hi, n = hi_s, cs + cl end
            local seen = {}
            for j = 1, np do seen[pool[j]] = true end
            local off = 0
            if n > want + 1 then off = math.random(0, n - want - 1) end
            local more = call('ZRANGEBYSCORE', k, lo, hi, 'LIMIT', off, want + 1)
            for j = 1, #more do
              local m = more[j]
              if #m == len and np < want and m ~= member and not seen[m] then
                np = np + 1; pool[np] = m
              end
            end
          end
          if expired then trim(k, kp) end
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
    if cs < 0 then cs, cl = counts(k) end
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
