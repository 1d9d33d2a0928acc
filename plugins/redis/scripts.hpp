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
//   that a Cluster slot being migrated redirects or refuses the call as for any multi-key one);
//   then, only when an announce of the batch carries max_torrents or max_peers, the ledger of
//   the batch's slot (below).
// ARGV[1]: random seed; then per announce 3 arguments:
//   member; ctl = struct '>BBBI4I4I4' (event, seeder 0/1, track 0/1, numwant, ttl_s,
//   key: the BEP 7 key, 0 = none), followed, only when the host set a limit (ABI 2.3), by
//   '>BI4dd' (no_new_swarm 0/1, max_peers_per_address, max_torrents, max_peers; 0 = none);
//   counters "uploaded:downloaded" ("" without track)
//   With the ledger key, two more: the torrents and the peers of every other slot's ledger
//   ("0" on a single node, where one ledger counts everything).
// Returns 9 flat elements per announce, in order:
//   status (0 ok; refused, nothing changed: 1 key mismatch, 2 max_peers_per_address,
//   3 max_torrents, 4 max_peers, 5 NO_NEW_SWARM), complete,
//   incomplete, downloaded, had_previous, prev_uploaded, prev_downloaded, peers, created_swarm
//
// Budgets (ABI 2.3; README.md "Memory budgets" has the reasons and the precision):
//   'a' .. address   in a family's set, score 2^50 + the peers of that (family, address) in the
//                    set, expired-but-not-trimmed ones included; kept only by announces that
//                    carry max_peers_per_address, and removed at 0. A new peer trims the set
//                    first, so expired peers do not count against it.
//   ledger           "<prefix>:{limits}" (single node) or "<prefix>:{limits-<n>}" with n chosen
//                    so that it hashes to the batch's slot (Cluster): a sorted set of the slot's
//                    swarms, member = the 40 hex digits, score = (expiry_s - E0) * 2^22 + the
//                    swarm's peer entries (both families, expired-but-not-trimmed included), and
//                    '#p' = minus the sum of those entries. expiry_s is never earlier than any
//                    key of the swarm expires (kept up to ttl_s / 8 ahead of the latest
//                    PEXPIREAT), so an entry below now is a swarm Redis has dropped by TTL, and
//                    prune() gives its peers back. Torrents = ZCARD - 1 (the '#p' entry).
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
-- Budgets (ABI 2.3): the ledger of this slot, when some announce carries a global budget.
local E0 = 1700000000        -- ledger epoch (s): scores stay below 2^53 until about 2091
local C = 4194304            -- 2^22: a ledger score's peer-entry part (swarms below 4M entries)
local nann = math.floor(#KEYS / 3)
local L
local others_t, others_p = 0, 0
if #KEYS % 3 == 1 then
  L = KEYS[#KEYS]
  others_t, others_p = tonumber(ARGV[2 + 3 * nann]), tonumber(ARGV[3 + 3 * nann])
end
local now_s = math.floor(now / 1000)
local lcut = '(' .. fmt('%d', (now_s - E0) * C)
-- Drops up to `limit` ledger entries of swarms whose keys expired by TTL and gives their peers
-- back; returns the set of those dropped.
local function prune(limit)
  local got = call('ZRANGEBYSCORE', L, '(0', lcut, 'WITHSCORES', 'LIMIT', 0, limit)
  local gone = {}
  if #got == 0 then return gone end
  local names, dp = {}, 0
  for j = 1, #got, 2 do
    if got[j] ~= '#p' then  -- (never in range while the books balance)
      names[#names + 1] = got[j]
      dp = dp + tonumber(got[j + 1]) % C
      gone[got[j]] = true
    end
  end
  if #names == 0 then return gone end
  call('ZREM', L, unpack(names))
  if dp > 0 then call('ZINCRBY', L, dp, '#p') end
  return gone
end
-- The key lives at least until `at` (ms since the epoch, a string): extended, never shortened.
-- GT fails on a key without expiry (one just created) and on a missing one; NX then sets the
-- former.
local function extend(k, at)
  if call('PEXPIREAT', k, at, 'GT') == 0 then call('PEXPIREAT', k, at, 'NX') end
end
-- Removes the expired peers of set k, their key entries, and their counters in kp; with
-- per_addr, lowers their addresses' 'a' counts. Returns how many peers went, and how many of
-- them had address entry `mine` ('a' .. address).
local function trim(k, kp, per_addr, mine)
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
  local of_mine = 0
  if per_addr and #gone > 0 then
    local per = {}
    for j = 1, #gone do
      local ad = 'a' .. string.sub(gone[j], 1, #gone[j] - 2)
      per[ad] = (per[ad] or 0) + 1
    end
    for ad, c in pairs(per) do
      if tonumber(call('ZINCRBY', k, -c, ad)) <= N0 then call('ZREM', k, ad) end
    end
    of_mine = per[mine] or 0
  end
  return #gone, of_mine
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
for i = 1, nann do
  local a = i * 3 - 1
  local k4, k6, kp = KEYS[a - 1], KEYS[a], KEYS[a + 1]
  local member, ctr, ctl = ARGV[a], ARGV[a + 2], ARGV[a + 1]
  local event, seeder, track, want, ttl_s, key = unpack_ctl('>BBBI4I4I4', ctl)
  local lim = #ctl > 15
  local no_new, ppa, maxt, maxp = 0, 0, 0, 0
  if lim then no_new, ppa, maxt, maxp = unpack_ctl('>BI4dd', ctl, 16) end
  local led = L ~= nil and (maxt > 0 or maxp > 0)
  local v6 = #member == 18
  local k = k4
  if v6 then k = k6 end
  local ek = 'k' .. member
  -- With max_peers_per_address, the address's count comes with the peer's own scores.
  local ae, ai = nil, 0
  if ppa > 0 then ae = 'a' .. string.sub(member, 1, #member - 2) end
  local sc, sp
  if v6 then
    if ae then sc = call('ZMSCORE', k, member, ek, ae); ai = 3
    else sc = call('ZMSCORE', k, member, ek) end
    sp = call('ZMSCORE', k4, 'n', '6')
  else
    if ae then sc = call('ZMSCORE', k, member, ek, 'n', '6', ae); ai = 5
    else sc = call('ZMSCORE', k, member, ek, 'n', '6') end
    sp = {sc[3], sc[4]}
  end
  local ac = 0  -- peers of this (family, address) in the set
  if ae and sc[ai] then ac = tonumber(sc[ai]) - N0 end
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
  local refuse = 0
  if old and stored ~= 0 and stored ~= key then refuse = 1 end  -- BEP 7: someone else's peer
  -- A new peer: does its swarm exist (keys present, expired peers included), and may it join?
  -- The set is trimmed first, so that expired peers count against no budget.
  local created, trimmed, lv = false, 0, nil
  local h = led and string.sub(k4, -43, -4)  -- the swarm's ledger member: its 40 hex digits
  if refuse == 0 and led then lv = call('ZMSCORE', L, h, '#p') end
  if refuse == 0 and event ~= 3 and not old then
    created = not (present or sc[2] or sp[1] or sp[2]) and call('ZCARD', k4) == 0
    if created and no_new == 1 then
      refuse = 5
    else
      local mine
      trimmed, mine = trim(k, kp, ae ~= nil, ae)
      ac = ac - mine
      if ae and ac >= ppa then refuse = 2 end
    end
    if refuse == 0 and led and created and lv[1] then
      -- The ledger still holds the swarm Redis dropped by TTL (within its slack): give it back.
      local sv = tonumber(lv[1])
      call('ZREM', L, h)
      if sv % C > 0 then call('ZINCRBY', L, sv % C, '#p') end
      lv = call('ZMSCORE', L, h, '#p')
    end
    if refuse == 0 and led then
      -- The budget this announce would exceed: 3 max_torrents, 4 max_peers, 0 none.
      local over = function()
        if maxt > 0 and created then
          local n = call('ZCARD', L)
          if lv[2] then n = n - 1 end
          if n + others_t >= maxt then return 3 end
        end
        if maxp <= 0 then return 0 end
        local held = -tonumber(lv[2] or 0)
        if lv[1] then held = held - trimmed end  -- the ledger still counts what trim() removed
        if held + others_p >= maxp then return 4 end
        return 0
      end
      refuse = over()
      if refuse ~= 0 then
        -- At a budget: give back what TTL expiry dropped, then look again.
        local gone = prune(64)
        if next(gone) then
          lv = call('ZMSCORE', L, h, '#p')
          refuse = over()
        end
      end
    end
  end
  -- The ledger: this swarm's peer entries (+1 joined, -1 stopped, -trimmed) and its expiry,
  -- kept up to `slack` s beyond its keys' so that a swarm's announces rarely move its score.
  -- (A closure made only for an announce with a global budget: the others pay nothing.)
  local account
  if led then account = function(dp, at, gone_all)
    local slack = math.floor(ttl_s / 8)
    local sv = lv[1] and tonumber(lv[1])
    if gone_all then
      if sv then
        call('ZREM', L, h)
        if sv % C > 0 then call('ZINCRBY', L, sv % C, '#p') end
      end
      return
    end
    if not sv then
      if event == 3 or not at then return end
      -- New to the ledger: a swarm just created, or one made before the budgets were asked
      -- (adopted at its entries, specials included: over, never under).
      local c0 = dp
      if not created then c0 = call('ZCARD', k4) + call('ZCARD', k6) end
      call('ZADD', L, fmt('%d', (math.ceil(at / 1000) + slack - E0) * C + c0), h)
      if c0 ~= 0 then call('ZINCRBY', L, -c0, '#p') end
      prune(2)  -- each new swarm clears up to two dropped ones: the ledger cannot pile up
      return
    end
    local cnt = sv % C
    if dp < -cnt then dp = -cnt end
    local inc = dp
    local e = (sv - cnt) / C + E0
    if at and math.ceil(at / 1000) > e then inc = inc + (math.ceil(at / 1000) + slack - e) * C end
    if inc ~= 0 then call('ZINCRBY', L, fmt('%d', inc), h) end
    if dp ~= 0 then call('ZINCRBY', L, -dp, '#p') end
  end end
  if refuse ~= 0 then
    if led and trimmed > 0 then account(-trimmed, nil, false) end
    out[o + 1], out[o + 2], out[o + 3], out[o + 4] = refuse, 0, 0, 0
    out[o + 5], out[o + 6], out[o + 7], out[o + 8] = 0, '0', '0', ''
    out[o + 9] = 0
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
    local at
    if event == 3 then
      if present then
        if ae and sc[ai] then
          if ac <= 1 then call('ZREM', k, member, ek, ae)
          else call('ZREM', k, member, ek); call('ZADD', k, fmt('%d', N0 + ac - 1), ae) end
        else
          call('ZREM', k, member, ek)
        end
      end
      if track == 1 or present then call('HDEL', kp, member) end
    else
      at = now + ttl_s * 1000
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
      -- A new peer with max_peers_per_address raises its address's count in the same ZADD.
      local extra = {}
      if ae and not old then extra = {fmt('%d', N0 + ac + 1), ae} end
      if keep ~= 0 and (not old or stored == 0) then
        call('ZADD', k, fmt('%d', score), member, fmt('%d', K0 + keep), ek, unpack(extra))
      else
        call('ZADD', k, fmt('%d', score), member, unpack(extra))
        if sc[2] and not old and not present then call('ZREM', k, ek) end  -- a stale key entry
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
      -- (A peer joining trimmed the set above, so churn cannot grow it with expired peers.)
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
    if led then
      local dp = -trimmed
      if event == 3 then
        if present then dp = dp - 1 end
      elseif not old then
        dp = dp + 1
      end
      account(dp, at, s + l == 0)
    end
    local made = 0
    if created and s + l > 0 then made = 1 end
    out[o + 1], out[o + 2], out[o + 3], out[o + 4] = 0, s, l, d
    out[o + 5], out[o + 6], out[o + 7], out[o + 8] = had, pu, pd, peers
    out[o + 9] = made
  end
  o = o + 9
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

// Budgets (ABI 2.3), Cluster only, from the driver's tick: one slot's ledger (KEYS[1]) pruned
// of swarms Redis dropped by TTL (up to 1000), then {torrents, peers} it counts. The driver sums
// them over the slots and hands every announce script the other slots' part.
inline constexpr const char* kLedgerTotals = R"lua(
local E0, C = 1700000000, 4194304
local L = KEYS[1]
local t = redis.call('TIME')
local cut = '(' .. string.format('%d', (tonumber(t[1]) - E0) * C)
local got = redis.call('ZRANGEBYSCORE', L, '(0', cut, 'WITHSCORES', 'LIMIT', 0, 1000)
local names, dp = {}, 0
for j = 1, #got, 2 do
  if got[j] ~= '#p' then
    names[#names + 1] = got[j]
    dp = dp + tonumber(got[j + 1]) % C
  end
end
if #names > 0 then redis.call('ZREM', L, unpack(names)) end
if dp > 0 then redis.call('ZINCRBY', L, dp, '#p') end
local n = redis.call('ZCARD', L)
local p = redis.call('ZSCORE', L, '#p')
if p then n = n - 1 end
return {n, -tonumber(p or 0)}
)lua";

}  // namespace chihaya::redis::scripts
