// redis_cache.cpp: announce/scrape requests as script calls, their replies, redirects, failures.
#include "redis_cache.hpp"

#include "crc16.hpp"
#include "resp.hpp"
#include "scripts.hpp"
#include "sha1.hpp"

#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace chihaya::redis {

namespace {

constexpr int kMaxRedirects = 5;
constexpr int kMaxTryAgain = 10;
constexpr std::chrono::milliseconds kTryAgainDelay{20};
constexpr const char* kAnnounceKeys[] = {"4", "6", "p"};
constexpr const char* kScrapeKeys[] = {"4", "6"};
// Announces per script call: long enough to amortise a call (about 15 us of Redis' thread),
// short enough that one batch holds Redis for well under a millisecond.
constexpr size_t kMaxBatch = 64;
// Elements per announce in the script's reply (scripts.hpp).
constexpr size_t kReplyWidth = 9;
// Ledger totals refreshed per tick (Cluster with budgets): all slots every 8 ticks (about 8 s),
// in bursts small enough (a few hundred per connection) not to delay announces behind them.
constexpr uint32_t kTotalsPerTick = kSlotCount / 8;

// Errors that say "Redis cannot serve this now" rather than "this request is wrong".
chihaya_status status_for(std::string_view error) {
    for (std::string_view p : {"LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "OOM",
                               "READONLY", "NOREPLICAS", "MOVED", "ASK"})
        if (error.starts_with(p)) return CHIHAYA_UNAVAILABLE;
    return CHIHAYA_INTERNAL;
}

// Per-thread seed for the script's shuffle (Redis may reseed math.random per script call).
uint32_t random_seed() {
    thread_local uint64_t state =
        uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) ^
        reinterpret_cast<uintptr_t>(&state);
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return static_cast<uint32_t>((z ^ (z >> 31)) & 0x7fffffff);
}

uint64_t reply_uint(const redisReply* r) {
    if (r->type == REDIS_REPLY_INTEGER) return r->integer < 0 ? 0 : uint64_t(r->integer);
    if (r->type == REDIS_REPLY_STRING) {
        uint64_t v = 0;
        std::from_chars(r->str, r->str + r->len, v);
        return v;
    }
    return 0;
}

uint32_t clamp32(uint64_t v) { return v > UINT32_MAX ? UINT32_MAX : uint32_t(v); }

// The BEP 7 key as the script keeps it: 0 means "no key", so a client's key 0 is kept as 1 (a
// 1-in-2^32 alias), as the memory driver does. A host older than ABI 2.1 sends no key.
uint32_t announce_key(const chihaya_announce_request& request) noexcept {
#ifdef CHIHAYA_KEY_MISMATCH
    if (!CHIHAYA_HAS_MEMBER(&request, chihaya_announce_request, has_key) || !request.has_key) return 0;
    return request.key != 0 ? request.key : 1;
#else
    (void)request;
    return 0;
#endif
}

// ABI 2.3 budgets as the script's ctl tail ('>BI4dd', scripts.hpp): appended only when the host
// set one, so an announce without [limits] costs what it did. Doubles hold counts exactly below
// 2^53; a larger budget is no budget in practice.
struct Budgets {
    bool any = false, global = false;
    uint8_t no_new_swarm = 0;
    uint32_t per_address = 0;
    double torrents = 0, peers = 0;
};

Budgets announce_budgets(const chihaya_announce_request& request) noexcept {
    Budgets b;
#ifdef CHIHAYA_ADDRESS_LIMIT
    if (!CHIHAYA_HAS_MEMBER(&request, chihaya_announce_request, max_peers)) return b;
    constexpr uint64_t kExact = uint64_t(1) << 53;
    b.no_new_swarm = (request.flags & CHIHAYA_ANNOUNCE_NO_NEW_SWARM) ? 1 : 0;
    b.per_address = request.max_peers_per_address;
    b.torrents = double(request.max_torrents < kExact ? request.max_torrents : kExact);
    b.peers = double(request.max_peers < kExact ? request.max_peers : kExact);
    b.global = request.max_torrents != 0 || request.max_peers != 0;
    b.any = b.global || b.no_new_swarm || b.per_address != 0;
#else
    (void)request;
#endif
    return b;
}

void put_be64_double(uint8_t* p, double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    for (int i = 0; i < 8; ++i) p[i] = uint8_t(bits >> (56 - 8 * i));
}

}  // namespace

// One EVALSHA in flight, with what it takes to send it again: the redirect count, and the EVAL
// fallback when Redis lost the script (SCRIPT FLUSH, or a failover to a node that never had
// it; a reconnect loads it again).
class RedisCache::ScriptCall : public Command {
public:
    ScriptCall(RedisCache& cache, const std::string& sha, const char* script, size_t argc)
        : cache_(cache), script_(script), argc_(argc) {
        wire.reserve(512);
        resp::array(wire, argc);
        resp::bulk(wire, "EVALSHA");
        resp::bulk(wire, sha);
        tail_ = wire.size();
    }

    void on_reply(Connection& from, redisReply* reply) noexcept override {
        if (reply->type != REDIS_REPLY_ERROR) {
            finish(reply);
            return;
        }
        std::string_view error(reply->str, reply->len);
        if (error.starts_with("NOSCRIPT") && !evaled_) {
            if (use_eval()) {
                from.submit(this);
                return;
            }
        }
        bool moved = error.starts_with("MOVED "), ask = error.starts_with("ASK ");
        if ((moved || ask) && ++redirects_ <= kMaxRedirects) {
            // "MOVED <slot> <host>:<port>"
            size_t a = error.find(' '), b = error.find(' ', a + 1);
            if (b != std::string_view::npos) {
                if (Connection* to = cache_.topology_.redirect(slot, error.substr(b + 1), moved)) {
                    asking = ask;
                    to->submit(this);
                    return;
                }
            }
        }
        // A multi-key script whose slot is being migrated, with its keys split or absent on one
        // side, gets TRYAGAIN until the migration of that slot ends: retry a few times from the
        // slot's owner (which may ASK again), spaced out, within the redirect budget.
        if (error.starts_with("TRYAGAIN") && ++retries_ <= kMaxTryAgain && retry_later(from)) return;
        // The node lost its view of the cluster (a master failing over): the slot map may be
        // about to change without any MOVED; look again until every slot's node answers.
        if (error.starts_with("CLUSTERDOWN")) cache_.topology_.suspect_stale();
        std::string message = "redis: " + std::string(error.substr(0, 120));
        chihaya_status status = status_for(error);
        // Redis refusing the script itself (an ACL missing a command, a script error) fails every
        // announce alike while clients only see "internal tracker error": the operator must see
        // why, once in a while rather than once per request.
        if (status == CHIHAYA_INTERNAL) cache_.warn_rarely(message);
        fail(status, message.c_str());
    }

    void on_failure(const char* why) noexcept override { fail(CHIHAYA_UNAVAILABLE, why); }

    uint16_t slot = 0;

protected:
    virtual void finish(redisReply* reply) noexcept = 0;
    virtual void fail(chihaya_status status, const char* why) noexcept = 0;

private:
    bool retry_later(Connection& from) noexcept {
        try {
            auto timer = std::make_shared<asio::steady_timer>(from.io(), kTryAgainDelay);
            timer->async_wait([this, timer](const boost::system::error_code&) {
                // Also after a cancel (shutdown): route() then refuses and fails us at once.
                if (Connection* to = cache_.topology_.route(slot)) to->submit(this);
                else on_failure("redis: no node serves this torrent's slot");
            });
            return true;
        } catch (...) {
            return false;
        }
    }

    bool use_eval() noexcept {
        evaled_ = true;
        try {
            std::string w;
            w.reserve(wire.size() + std::strlen(script_) + 16);
            resp::array(w, argc_);
            resp::bulk(w, "EVAL");
            resp::bulk(w, script_);
            w.append(wire, tail_, std::string::npos);
            wire.swap(w);
            return true;
        } catch (...) {
            return false;
        }
    }

    RedisCache& cache_;
    const char* script_;
    size_t argc_;
    size_t tail_ = 0;
    int redirects_ = 0;
    int retries_ = 0;
    bool evaled_ = false;
};

// One announce: owns nothing of the host's; writes the result and completes exactly once.
// It is not a Redis command by itself: `wire` holds its part of a batch, its torrent's three keys
// ([0, split)) and its three arguments ([split, end)), in RESP; coalesce() puts it into an
// AnnounceBatch before the connection sends anything.
class RedisCache::AnnounceCall final : public Command {
public:
    AnnounceCall(chihaya_announce_result& result, chihaya::Completion done, size_t entry_bytes,
                 uint32_t want)
        : result_(result), done_(done), entry_bytes_(entry_bytes), want_(want) {
        wire.reserve(160);
    }

    void on_reply(Connection&, redisReply*) noexcept override {
        fail(CHIHAYA_INTERNAL, "redis: an announce was sent outside a batch");
    }
    void on_failure(const char* why) noexcept override { fail(CHIHAYA_UNAVAILABLE, why); }

    // Its kReplyWidth elements of the batch's reply (scripts.hpp).
    void finish(redisReply* const* r) noexcept {
        if (r[0]->type != REDIS_REPLY_INTEGER || r[7]->type != REDIS_REPLY_STRING) {
            fail(CHIHAYA_INTERNAL, "redis: unexpected reply to the announce script");
            return;
        }
        if (r[0]->integer == 1) {
#ifdef CHIHAYA_KEY_MISMATCH
            fail(CHIHAYA_KEY_MISMATCH, "redis: key mismatch");
#else
            fail(CHIHAYA_INVALID, "redis: key mismatch");
#endif
            return;
        }
#ifdef CHIHAYA_ADDRESS_LIMIT
        // Only an announce that carried a budget can be refused for one (the script sees none
        // otherwise), so a host older than 2.3 never gets these statuses.
        if (r[0]->integer >= 2 && r[0]->integer <= 5) {
            refused(static_cast<int>(r[0]->integer));
            return;
        }
        if (CHIHAYA_HAS_MEMBER(&result_, chihaya_announce_result, created_swarm))
            result_.created_swarm = reply_uint(r[8]) ? 1 : 0;
#endif
        if (r[0]->integer != 0) {
            fail(CHIHAYA_INTERNAL, "redis: unexpected status from the announce script");
            return;
        }
        result_.complete = clamp32(reply_uint(r[1]));
        result_.incomplete = clamp32(reply_uint(r[2]));
        result_.downloaded = clamp32(reply_uint(r[3]));
        result_.had_previous = reply_uint(r[4]) ? 1 : 0;
        result_.previous_uploaded = reply_uint(r[5]);
        result_.previous_downloaded = reply_uint(r[6]);
        const redisReply* peers = r[7];
        size_t count = peers->len / entry_bytes_;
        if (count > want_) count = want_;
        if (count) std::memcpy(result_.peers, peers->str, count * entry_bytes_);
        result_.peer_count = static_cast<uint32_t>(count);
        chihaya::Completion done = done_;
        delete this;
        done(CHIHAYA_OK);
    }

#ifdef CHIHAYA_ADDRESS_LIMIT
    // A budget's refusal (script status 2-5, scripts.hpp), with the budget named when the
    // host's result has refused_by.
    void refused(int why) noexcept {
        static constexpr struct {
            chihaya_status status;
            uint8_t budget;
            const char* message;
        } kRefusals[] = {  // (the CHIHAYA_BUDGET_* names come with CHIHAYA_ADDRESS_LIMIT, in 2.3)
            {CHIHAYA_ADDRESS_LIMIT, CHIHAYA_BUDGET_PEERS_PER_ADDRESS, "redis: max_peers_per_address reached"},
            {CHIHAYA_FULL, CHIHAYA_BUDGET_MAX_TORRENTS, "redis: max_torrents reached"},
            {CHIHAYA_FULL, CHIHAYA_BUDGET_MAX_PEERS, "redis: max_peers reached"},
            {CHIHAYA_ADDRESS_LIMIT, CHIHAYA_BUDGET_NEW_SWARM, "redis: no new swarm for this address now"},
        };
        const auto& r = kRefusals[why - 2];
        if (CHIHAYA_HAS_MEMBER(&result_, chihaya_announce_result, refused_by)) result_.refused_by = r.budget;
        fail(r.status, r.message);
    }
#endif

    void fail(chihaya_status status, const char* why) noexcept {
        chihaya::write_message(result_.message, CHIHAYA_MESSAGE_CAP, why);
        result_.peer_count = 0;
        chihaya::Completion done = done_;
        delete this;
        done(status);
    }

    uint16_t slot = 0;
    size_t split = 0;
    bool ledger = false;  // carries max_torrents or max_peers: its batch needs the slot's ledger

private:
    chihaya_announce_result& result_;
    chihaya::Completion done_;
    size_t entry_bytes_;
    uint32_t want_;
};

// Up to kMaxBatch announces in one EVALSHA (scripts::kAnnounce): one slot in a Cluster, so a
// redirect or TRYAGAIN moves the batch as a whole. Redis runs it atomically, so one batch's
// announces see each other in order; a failure of the call fails every announce it carries.
class RedisCache::AnnounceBatch final : public ScriptCall {
public:
    AnnounceBatch(RedisCache& cache, std::vector<AnnounceCall*> items, bool ledger)
        : ScriptCall(cache, cache.announce_sha_, scripts::kAnnounce, 4 + 6 * items.size() + (ledger ? 3 : 0)),
          items_(std::move(items)) {
        weight = static_cast<uint32_t>(items_.size());
        paced = true;
        slot = items_.front()->slot;
        size_t bytes = wire.size() + 128;
        for (const AnnounceCall* a : items_) bytes += a->wire.size();
        wire.reserve(bytes);
        resp::bulk(wire, uint64_t(3 * items_.size() + (ledger ? 1 : 0)));
        for (const AnnounceCall* a : items_) wire.append(a->wire, 0, a->split);
        if (ledger) resp::bulk(wire, cache.ledger_key(slot));
        resp::bulk(wire, uint64_t(random_seed()));
        for (const AnnounceCall* a : items_) wire.append(a->wire, a->split, std::string::npos);
        if (ledger) {
            uint64_t torrents = 0, peers = 0;
            cache.other_slots(slot, torrents, peers);
            resp::bulk(wire, torrents);
            resp::bulk(wire, peers);
        }
    }

private:
    void finish(redisReply* r) noexcept override {
        const size_t n = items_.size();
        const bool ok = r->type == REDIS_REPLY_ARRAY && r->elements == kReplyWidth * n;
        for (size_t i = 0; i < n; ++i) {
            if (ok) items_[i]->finish(r->element + kReplyWidth * i);
            else items_[i]->fail(CHIHAYA_INTERNAL, "redis: unexpected reply to the announce script");
        }
        delete this;
    }

    void fail(chihaya_status status, const char* why) noexcept override {
        for (AnnounceCall* a : items_) a->fail(status, why);
        delete this;
    }

    std::vector<AnnounceCall*> items_;
};

// A scrape of many hashes: one script call per hash (their slots, hence nodes, may differ),
// pipelined; the host's call completes when the last reply is in.
class RedisCache::ScrapeBatch {
public:
    ScrapeBatch(chihaya_scrape_request& request, chihaya::Completion done)
        : request_(request), done_(done), left_(request.count + 1) {}

    // The extra count in left_ is the submitting thread's own: items may all complete before
    // the submit loop ends, and the batch must outlive that loop.
    void item_done(chihaya_status status, const char* why) noexcept {
        if (status != CHIHAYA_OK) {
            int expected = CHIHAYA_OK;
            if (status_.compare_exchange_strong(expected, status))
                chihaya::write_message(request_.message, CHIHAYA_MESSAGE_CAP, why);
        }
        if (left_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            chihaya::Completion done = done_;
            auto final_status = static_cast<chihaya_status>(status_.load());
            delete this;
            done(final_status);
        }
    }

    chihaya_scrape_request& request_;
    std::vector<std::unique_ptr<ScrapeItem>> items;

private:
    chihaya::Completion done_;
    std::atomic<uint32_t> left_;
    std::atomic<int> status_{CHIHAYA_OK};
};

class RedisCache::ScrapeItem final : public ScriptCall {
public:
    ScrapeItem(RedisCache& cache, ScrapeBatch& batch, uint32_t index)
        : ScriptCall(cache, cache.scrape_sha_, scripts::kScrape, 3 + 2), batch_(batch), index_(index) {}

private:
    void finish(redisReply* r) noexcept override {
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 3) {
            fail(CHIHAYA_INTERNAL, "redis: unexpected reply to the scrape script");
            return;
        }
        chihaya_scrape_entry& e = chihaya::scrape_entry(batch_.request_, index_);
        e.complete = clamp32(reply_uint(r->element[0]));
        e.incomplete = clamp32(reply_uint(r->element[1]));
        e.downloaded = clamp32(reply_uint(r->element[2]));
        batch_.item_done(CHIHAYA_OK, nullptr);
    }
    void fail(chihaya_status status, const char* why) noexcept override {
        chihaya_scrape_entry& e = chihaya::scrape_entry(batch_.request_, index_);
        e.complete = e.incomplete = e.downloaded = 0;
        batch_.item_done(status, why);
    }

    ScrapeBatch& batch_;
    uint32_t index_;
};

// One slot's ledger totals (scripts::kLedgerTotals), for the other slots' announces.
class RedisCache::LedgerTotals final : public ScriptCall {
public:
    LedgerTotals(RedisCache& cache, uint16_t of_slot)
        : ScriptCall(cache, cache.totals_sha_, scripts::kLedgerTotals, 3 + 1), cache_(cache) {
        slot = of_slot;
        resp::bulk(wire, "1");
        resp::bulk(wire, cache.ledger_key(of_slot));
    }

private:
    void finish(redisReply* r) noexcept override {
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
            uint64_t t = reply_uint(r->element[0]), p = reply_uint(r->element[1]);
            cache_.sum_torrents_.fetch_add(t - cache_.slot_torrents_[slot].exchange(t));
            cache_.sum_peers_.fetch_add(p - cache_.slot_peers_[slot].exchange(p));
        }
        delete this;
    }
    // The slot keeps its last totals; the next round asks again.
    void fail(chihaya_status, const char*) noexcept override { delete this; }

    RedisCache& cache_;
};

RedisCache::RedisCache(const chihaya::Host& host, RedisCacheOptions options)
    : host_(host),
      options_(std::move(options)),
      announce_sha_(sha1_hex(scripts::kAnnounce)),
      scrape_sha_(sha1_hex(scripts::kScrape)),
      totals_sha_(sha1_hex(scripts::kLedgerTotals)),
      io_(options_.io_threads),
      topology_(io_, options_.connection, options_.connections, options_.cluster, host_) {
    const std::string& prefix = options_.key_prefix;
    if (prefix.find_first_of("{}") != std::string::npos)
        throw std::invalid_argument("redis: key_prefix must not contain '{' or '}' (they are the hash tag)");
    key_head_ = prefix.empty() ? "{" : prefix + ":{";
    if (options_.cluster && options_.connection.database != 0)
        throw std::invalid_argument("redis: database must be 0 with cluster = true (Redis Cluster has only db 0)");
    // Every (re)connect loads the scripts first, so EVALSHA finds them and the EVAL fallback
    // on NOSCRIPT stays for a server flushed mid-connection.
    options_.connection.scripts = {scripts::kAnnounce, scripts::kScrape, scripts::kLedgerTotals};
    // Budgets' ledgers (scripts.hpp): a Cluster runs a script on one slot's keys only, so each
    // slot gets its own, named "limits-<n>" with the first n whose CRC16 lands in that slot.
    if (options_.cluster) {
        ledger_keys_.resize(kSlotCount);
        size_t left = kSlotCount;
        for (uint64_t n = 0; left; ++n) {
            std::string tag = "limits-" + std::to_string(n);
            std::string& key = ledger_keys_[crc16(tag) & (kSlotCount - 1)];
            if (key.empty()) {
                key = key_head_ + tag + "}";
                --left;
            }
        }
        slot_torrents_ = std::make_unique<std::atomic<uint64_t>[]>(kSlotCount);
        slot_peers_ = std::make_unique<std::atomic<uint64_t>[]>(kSlotCount);
    } else {
        ledger_keys_.push_back(key_head_ + "limits}");
    }
    options_.connection.coalescer = this;
    io_.start();
    try {
        topology_.bootstrap(options_.addresses);
    } catch (...) {
        topology_.shutdown();
        throw;
    }
    size_t down = topology_.wait_ready(options_.connection.connect_timeout);
    if (down)
        host_.warning(std::to_string(down) +
                      " connection(s) not ready at start; announces fail with 'tracker storage "
                      "unavailable' until Redis answers (reconnecting in the background)");
    else
        host_.info("connected (" + std::string(options_.cluster ? "cluster" : "single node") +
                   ", key prefix \"" + prefix + "\")");
}

RedisCache::~RedisCache() { topology_.shutdown(); }

void RedisCache::warn_rarely(const std::string& message) noexcept {
    constexpr uint64_t kQuietMs = 10000;
    uint64_t now = host_.now_ms();
    uint64_t last = last_warning_ms_.load(std::memory_order_relaxed);
    if (last != 0 && now - last < kQuietMs) return;
    if (!last_warning_ms_.compare_exchange_strong(last, now)) return;  // another thread logs it
    host_.warning(message + " (further such errors are not logged for 10 s)");
}

uint16_t RedisCache::append_keys(std::string& wire, const uint8_t info_hash[20],
                                 const char* const* suffixes, size_t count) const {
    static const char hex[] = "0123456789abcdef";
    char key[256];
    size_t head = key_head_.size() < 200 ? key_head_.size() : 200;
    std::memcpy(key, key_head_.data(), head);
    char* p = key + head;
    for (int i = 0; i < 20; ++i) {
        *p++ = hex[info_hash[i] >> 4];
        *p++ = hex[info_hash[i] & 15];
    }
    *p++ = '}';
    *p++ = ':';
    const size_t base = size_t(p - key);
    for (size_t i = 0; i < count; ++i) {
        size_t n = std::strlen(suffixes[i]);
        std::memcpy(key + base, suffixes[i], n);
        resp::bulk(wire, std::string_view(key, base + n));
    }
    // The hash tag is the 40 hex digits between the braces.
    return crc16(std::string_view(key + head, 40)) & (kSlotCount - 1);
}

void RedisCache::announce(const chihaya_announce_request& request, chihaya_announce_result& result,
                          chihaya::Completion done) noexcept {
    const bool v6 = request.family == CHIHAYA_IPV6;
    const size_t addr_bytes = v6 ? 16 : 4, entry_bytes = addr_bytes + 2;
    uint32_t want = request.numwant < result.peers_capacity ? request.numwant : result.peers_capacity;
    result.peer_count = 0;
    result.had_previous = 0;
    AnnounceCall* call;
    try {
        call = new AnnounceCall(result, done, entry_bytes, want);
        std::string& w = call->wire;
        call->slot = append_keys(w, request.info_hash, kAnnounceKeys, 3);
        call->split = w.size();
        char member[18];
        std::memcpy(member, request.addr, addr_bytes);
        member[addr_bytes] = static_cast<char>(request.port >> 8);
        member[addr_bytes + 1] = static_cast<char>(request.port & 0xff);
        resp::bulk(w, std::string_view(member, entry_bytes));
        // ctl: struct '>BBBI4I4I4' (scripts.hpp): event, seeder, track, numwant, ttl_s, key.
        const bool track = (request.flags & CHIHAYA_ANNOUNCE_TRACK_COUNTERS) != 0;
        uint8_t ctl[15];
        ctl[0] = request.event <= 3 ? request.event : 0;
        ctl[1] = request.left == 0 ? 1 : 0;
        ctl[2] = track ? 1 : 0;
        auto be32 = [](uint8_t* p, uint32_t v) {
            p[0] = uint8_t(v >> 24), p[1] = uint8_t(v >> 16), p[2] = uint8_t(v >> 8), p[3] = uint8_t(v);
        };
        be32(ctl + 3, want);
        be32(ctl + 7, request.peer_ttl_s ? request.peer_ttl_s : 1);
        be32(ctl + 11, announce_key(request));
        const Budgets budgets = announce_budgets(request);
        if (budgets.any) {
            // + struct '>BI4dd': no_new_swarm, max_peers_per_address, max_torrents, max_peers.
            uint8_t full[sizeof ctl + 21];
            std::memcpy(full, ctl, sizeof ctl);
            full[sizeof ctl] = budgets.no_new_swarm;
            be32(full + sizeof ctl + 1, budgets.per_address);
            put_be64_double(full + sizeof ctl + 5, budgets.torrents);
            put_be64_double(full + sizeof ctl + 13, budgets.peers);
            resp::bulk(w, std::string_view(reinterpret_cast<const char*>(full), sizeof full));
            if (budgets.global) {
                call->ledger = true;
                budgets_asked_.store(true, std::memory_order_relaxed);
            }
        } else {
            resp::bulk(w, std::string_view(reinterpret_cast<const char*>(ctl), sizeof ctl));
        }
        if (track) {
            char counters[48];
            char* p = std::to_chars(counters, counters + 20, request.uploaded).ptr;
            *p++ = ':';
            p = std::to_chars(p, counters + sizeof counters, request.downloaded).ptr;
            resp::bulk(w, std::string_view(counters, size_t(p - counters)));
        } else {
            resp::bulk(w, std::string_view());
        }
    } catch (const std::bad_alloc&) {
        chihaya::write_message(result.message, CHIHAYA_MESSAGE_CAP, "redis: out of memory");
        done(CHIHAYA_INTERNAL);
        return;
    }
    Connection* to = topology_.route(call->slot);
    if (!to) {
        call->on_failure("redis: no node serves this torrent's slot");
        return;
    }
    to->submit(call);
}

void RedisCache::coalesce(std::vector<Command*>& commands) noexcept {
    thread_local std::vector<AnnounceCall*> announces;
    thread_local std::vector<Command*> others;
    announces.clear();
    others.clear();
    try {
        for (Command* c : commands) {
            if (auto* a = dynamic_cast<AnnounceCall*>(c)) announces.push_back(a);
            else others.push_back(c);
        }
        if (announces.empty()) return;
        // A Cluster runs a script only on keys of one slot: one batch per slot. A single node
        // takes any mix (it checks no slots), so its announces go in arrival order.
        if (topology_.cluster())
            std::stable_sort(announces.begin(), announces.end(),
                             [](const AnnounceCall* a, const AnnounceCall* b) { return a->slot < b->slot; });
    } catch (...) {
        // Out of memory for the scratch vectors (they keep their capacity after the first
        // turns): an announce must not reach Redis outside a batch, so fail them here.
        size_t kept = 0;
        for (Command* c : commands) {
            if (auto* a = dynamic_cast<AnnounceCall*>(c)) a->fail(CHIHAYA_INTERNAL, "redis: out of memory");
            else commands[kept++] = c;
        }
        commands.resize(kept);
        return;
    }
    commands.swap(others);
    const bool cluster = topology_.cluster();
    for (size_t i = 0; i < announces.size();) {
        size_t j = i + 1;
        while (j < announces.size() && j - i < kMaxBatch && (!cluster || announces[j]->slot == announces[i]->slot)) ++j;
        try {
            bool ledger = false;
            for (size_t k = i; k < j; ++k) ledger = ledger || announces[k]->ledger;
            auto* batch = new AnnounceBatch(*this, std::vector<AnnounceCall*>(announces.begin() + i, announces.begin() + j),
                                            ledger);
            commands.push_back(batch);
        } catch (...) {
            for (size_t k = i; k < j; ++k) announces[k]->fail(CHIHAYA_INTERNAL, "redis: out of memory");
        }
        i = j;
    }
    announces.clear();
}

void RedisCache::scrape(chihaya_scrape_request& request, chihaya::Completion done) noexcept {
    if (request.count == 0) {
        done(CHIHAYA_OK);
        return;
    }
    ScrapeBatch* batch = nullptr;
    try {
        batch = new ScrapeBatch(request, done);
        batch->items.reserve(request.count);
        for (uint32_t i = 0; i < request.count; ++i) {
            auto item = std::make_unique<ScrapeItem>(*this, *batch, i);
            resp::bulk(item->wire, "2");
            item->slot = append_keys(item->wire, chihaya::scrape_entry(request, i).info_hash, kScrapeKeys, 2);
            batch->items.push_back(std::move(item));
        }
    } catch (const std::bad_alloc&) {
        delete batch;  // nothing was submitted yet
        chihaya::write_message(request.message, CHIHAYA_MESSAGE_CAP, "redis: out of memory");
        done(CHIHAYA_INTERNAL);
        return;
    }
    for (auto& item : batch->items) {
        if (Connection* to = topology_.route(item->slot)) to->submit(item.get());
        else item->on_failure("redis: no node serves this torrent's slot");
    }
    batch->item_done(CHIHAYA_OK, nullptr);
}

void RedisCache::other_slots(uint16_t slot, uint64_t& torrents, uint64_t& peers) const noexcept {
    torrents = peers = 0;
    if (!slot_torrents_) return;  // a single node: its one ledger counts everything
    uint64_t t = sum_torrents_.load(std::memory_order_relaxed), p = sum_peers_.load(std::memory_order_relaxed);
    uint64_t own_t = slot_torrents_[slot].load(std::memory_order_relaxed);
    uint64_t own_p = slot_peers_[slot].load(std::memory_order_relaxed);
    torrents = t > own_t ? t - own_t : 0;
    peers = p > own_p ? p - own_p : 0;
}

void RedisCache::tick(uint64_t) noexcept {
    // A single node's one ledger is exact inside the script and pruned by it; and a Cluster whose
    // hosts asked no budget has no ledger to sum.
    if (!slot_torrents_ || !budgets_asked_.load(std::memory_order_relaxed)) return;
    for (uint32_t i = 0; i < kTotalsPerTick; ++i) {
        const auto slot = static_cast<uint16_t>(totals_cursor_);
        totals_cursor_ = (totals_cursor_ + 1) % kSlotCount;
        try {
            auto* call = new LedgerTotals(*this, slot);
            if (Connection* to = topology_.route(slot)) to->submit(call);
            else call->on_failure("redis: no node serves this slot");
        } catch (const std::bad_alloc&) {
            return;  // the next tick goes on
        }
    }
}

}  // namespace chihaya::redis
