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

// KEYS: s4 l4 s6 l6 n c
// ARGV: member, family ("4"/"6"), event (BEP 15 number), seeder ("1"/"0"), numwant, ttl_ms,
//       track ("1"/"0"), uploaded, downloaded, random seed
// Returns {complete, incomplete, downloaded, had_previous, prev_uploaded, prev_downloaded, peers}
// Counters stay strings end to end: Lua numbers are doubles and would round 64-bit totals.
inline constexpr const char* kAnnounce = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cut = now * 2 + 1
local kc = KEYS[6]
local tracked = redis.call('EXISTS', kc) == 1
for i = 1, 4 do
  if tracked then
    local gone = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', cut)
    for j = 1, #gone, 1000 do
      redis.call('HDEL', kc, unpack(gone, j, math.min(j + 999, #gone)))
    end
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', cut)
end
local member = ARGV[1]
local ks, kl = KEYS[1], KEYS[2]
if ARGV[2] == '6' then ks, kl = KEYS[3], KEYS[4] end
local event = ARGV[3]
local seeder = ARGV[4] == '1'
local want = tonumber(ARGV[5])
local ttl = tonumber(ARGV[6])
local in_s = redis.call('ZSCORE', ks, member)
local in_l = false
if not in_s then in_l = redis.call('ZSCORE', kl, member) end
local old = in_s or in_l
local had, pu, pd = 0, '0', '0'
if old then
  had = 1
  if tracked then
    local v = redis.call('HGET', kc, member)
    if v then
      local sep = string.find(v, ':', 1, true)
      pu, pd = string.sub(v, 1, sep - 1), string.sub(v, sep + 1)
    end
  end
end
local function extend(k)
  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
end
local peers = ''
if event == '3' then
  if in_s then redis.call('ZREM', ks, member) elseif in_l then redis.call('ZREM', kl, member) end
  if tracked then redis.call('HDEL', kc, member) end
else
  local done = 0
  if old then done = tonumber(old) % 2 end
  if event == '1' and done == 0 then
    done = 1
    redis.call('INCR', KEYS[5])
  end
  local mine = kl
  if seeder then mine = ks end
  if seeder and in_l then redis.call('ZREM', kl, member) end
  if not seeder and in_s then redis.call('ZREM', ks, member) end
  redis.call('ZADD', mine, (now + ttl) * 2 + done, member)
  extend(mine)
  if ARGV[7] == '1' then
    redis.call('HSET', kc, member, ARGV[8] .. ':' .. ARGV[9])
    extend(kc)
  elseif tracked then
    extend(kc)
  end
  extend(KEYS[5])
  if want > 0 then
    math.randomseed(tonumber(ARGV[10]))
    local pool = {}
    local function take(k, n)
      local got = redis.call('ZRANDMEMBER', k, n)
      for i = 1, #got do
        if got[i] ~= member then pool[#pool + 1] = got[i] end
      end
    end
    take(kl, want + 1)
    if not seeder then take(ks, want) end
    local n = #pool
    if n > want then
      for i = 1, want do
        local j = math.random(i, n)
        pool[i], pool[j] = pool[j], pool[i]
      end
      for i = n, want + 1, -1 do pool[i] = nil end
    end
    peers = table.concat(pool)
  end
end
local s = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[3])
local l = redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[4])
local d = 0
if s + l == 0 then
  redis.call('DEL', KEYS[5], kc)
else
  d = tonumber(redis.call('GET', KEYS[5]) or '0')
end
return {s, l, d, had, pu, pd, peers}
)lua";

// Read-only: counts live members without trimming, so a scrape never writes.
// KEYS: s4 l4 s6 l6 n. Returns {complete, incomplete, downloaded}.
inline constexpr const char* kScrape = R"lua(
local t = redis.call('TIME')
local cut = '(' .. string.format('%d', (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) * 2 + 1)
local s = redis.call('ZCOUNT', KEYS[1], cut, '+inf') + redis.call('ZCOUNT', KEYS[3], cut, '+inf')
local l = redis.call('ZCOUNT', KEYS[2], cut, '+inf') + redis.call('ZCOUNT', KEYS[4], cut, '+inf')
local d = 0
if s + l > 0 then d = tonumber(redis.call('GET', KEYS[5]) or '0') end
return {s, l, d}
)lua";

}  // namespace chihaya::redis::scripts
