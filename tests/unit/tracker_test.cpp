// The tracker core: normalisation before the driver, and how completions come back.
#include "accounting/ledger.hpp"
#include "private/directory.hpp"
#include "private/policy.hpp"
#include "tracker/tracker.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <thread>

using namespace chihaya;

namespace {

// A scripted cache driver: records what the tracker handed it and answers as told, inline or
// from another thread, so the tracker's side of the contract can be checked on its own.
struct Script {
    chihaya_status status = CHIHAYA_OK;
    bool from_thread = false;
    bool hold = false;            // keep the completion (a copy of it) and answer nothing
    chihaya_completion held{};
    int announces = 0;
    chihaya_announce_request seen{};
    uint32_t seen_capacity = 0;
    uint8_t created_swarm = 0;  // written into the result (ABI 2.3)
    uint8_t refused_by = 0;
    std::thread worker;
};
Script* script = nullptr;

void announce(chihaya_instance*, const chihaya_announce_request* r, chihaya_announce_result* out,
              const chihaya_completion* c) {
    ++script->announces;
    script->seen = *r;
    script->seen_capacity = out->peers_capacity;
    out->complete = 3;
    out->incomplete = 4;
    out->downloaded = 5;
    out->peer_count = r->numwant;
    out->created_swarm = script->created_swarm;
    out->refused_by = script->refused_by;
    for (uint32_t i = 0; i < r->numwant * 6; ++i) out->peers[i] = uint8_t(i);
    if (script->hold)
        script->held = *c;
    else if (script->from_thread)
        script->worker = std::thread([c, s = script->status] { c->done(c->ctx, s); });
    else
        c->done(c->ctx, script->status);
}

void scrape(chihaya_instance*, chihaya_scrape_request* r, const chihaya_completion* c) {
    for (uint32_t i = 0; i < r->count; ++i) {
        chihaya_scrape_entry& e = *CHIHAYA_AT(chihaya_scrape_entry, r->entries, i);
        e.complete = e.info_hash[0];
    }
    if (script->hold) script->held = *c;
    else c->done(c->ctx, script->status);
}

const chihaya_cache_vtable vtable = {sizeof(chihaya_cache_vtable), nullptr, nullptr, &announce,
                                     &scrape, nullptr, nullptr, nullptr};

struct Result {
    int completions = 0;
    bool on_caller_thread = false;
};

AnnounceCall make_call(uint8_t* peers, uint32_t capacity, Result& result) {
    AnnounceCall call;
    call.request.peer.port = 6881;
    call.request.left = 10;
    call.peers = peers;
    call.peers_capacity = capacity;
    call.owner = &result;
    call.complete = [](AnnounceCall* c, bool on_caller_thread) {
        auto* r = static_cast<Result*>(c->owner);
        ++r->completions;
        r->on_caller_thread = on_caller_thread;
    };
    return call;
}

}  // namespace

TEST_CASE("numwant is defaulted and capped by config and by the caller's buffer") {
    Script s;
    script = &s;
    TrackerConfig config;
    config.default_numwant = 30;
    config.max_numwant = 40;
    Tracker tracker(config, {&vtable, nullptr});
    uint8_t peers[100 * 6];
    Result result;

    AnnounceCall call = make_call(peers, 100, result);
    tracker.announce(call);
    CHECK(s.seen.numwant == 30);
    CHECK(call.response.peer_count == 30);

    call.request.numwant = 1000;
    tracker.announce(call);
    CHECK(s.seen.numwant == 40);

    AnnounceCall small = make_call(peers, 7, result);
    small.request.numwant = 1000;
    tracker.announce(small);
    CHECK(s.seen.numwant == 7);
    CHECK(s.seen_capacity == 7);

    call.request.numwant = 0;
    tracker.announce(call);
    CHECK(s.seen.numwant == 0);
    CHECK(call.response.peer_count == 0);
}

TEST_CASE("the request reaches the driver field for field, with the tracker's policy") {
    Script s;
    script = &s;
    TrackerConfig config;
    config.peer_lifetime = 77;
    config.announce_interval = 1000;
    config.min_interval = 500;
    Tracker tracker(config, {&vtable, nullptr});
    uint8_t peers[600];
    Result result;
    AnnounceCall call = make_call(peers, 100, result);
    call.request.info_hash.bytes[0] = 0xAB;
    call.request.peer_id.bytes[19] = 0xCD;
    call.request.peer.family = CHIHAYA_IPV6;
    call.request.peer.addr[15] = 1;
    call.request.uploaded = 11;
    call.request.downloaded = 22;
    call.request.left = 0;
    call.request.event = Event::Completed;
    tracker.announce(call);
    CHECK(s.seen.info_hash[0] == 0xAB);
    CHECK(s.seen.peer_id[19] == 0xCD);
    CHECK(s.seen.family == CHIHAYA_IPV6);
    CHECK(s.seen.addr[15] == 1);
    CHECK(s.seen.port == 6881);
    CHECK(s.seen.uploaded == 11);
    CHECK(s.seen.downloaded == 22);
    CHECK(s.seen.left == 0);
    CHECK(s.seen.event == CHIHAYA_EVENT_COMPLETED);
    CHECK(s.seen.peer_ttl_s == 77);
    CHECK(s.seen.now_ms > 0);
    CHECK(call.response.failure == nullptr);
    CHECK(call.response.interval == 1000);
    CHECK(call.response.min_interval == 500);
    CHECK(call.response.complete == 3);
    CHECK(call.response.incomplete == 4);
    CHECK(call.response.downloaded == 5);
}

TEST_CASE("[limits] reach the driver in every announce, and a reload changes them") {
    Script s;
    script = &s;
    LimitsConfig limits;
    limits.max_torrents = 11;
    limits.max_peers = 22;
    limits.max_peers_per_address = 33;
    Tracker tracker(TrackerConfig{}, {&vtable, nullptr}, {}, limits);
    uint8_t peers[600];
    Result result;
    AnnounceCall call = make_call(peers, 100, result);
    tracker.announce(call);
    CHECK(s.seen.max_torrents == 11);
    CHECK(s.seen.max_peers == 22);
    CHECK(s.seen.max_peers_per_address == 33);
    CHECK((s.seen.flags & CHIHAYA_ANNOUNCE_NO_NEW_SWARM) == 0);
    limits.max_torrents = 0;
    limits.max_peers_per_address = 7;
    tracker.reconfigure(TrackerConfig{}, limits);
    tracker.announce(call);
    CHECK(s.seen.max_torrents == 0);
    CHECK(s.seen.max_peers_per_address == 7);
}

TEST_CASE("a client that created new_torrents_per_address swarms is flagged NO_NEW_SWARM, another is not") {
    Script s;
    script = &s;
    s.created_swarm = 1;
    LimitsConfig limits;
    limits.new_torrents_per_address = 5;
    Tracker tracker(TrackerConfig{}, {&vtable, nullptr}, {}, limits);
    uint8_t peers[600];
    Result result;
    AnnounceCall call = make_call(peers, 100, result);
    call.request.peer.addr = {192, 0, 2, 1};
    for (int i = 0; i < 5; ++i) {
        tracker.announce(call);
        CHECK((s.seen.flags & CHIHAYA_ANNOUNCE_NO_NEW_SWARM) == 0);
    }
    tracker.announce(call);
    CHECK((s.seen.flags & CHIHAYA_ANNOUNCE_NO_NEW_SWARM) != 0);
    // The bucket is the client's own address, not the announced one (ip=, a proxy's client).
    AnnounceCall spoofed = make_call(peers, 100, result);
    spoofed.request.peer.addr = {198, 51, 100, 9};
    spoofed.request.client = call.request.peer;
    tracker.announce(spoofed);
    CHECK((s.seen.flags & CHIHAYA_ANNOUNCE_NO_NEW_SWARM) != 0);
    // Another client has its own tokens; announces that create nothing cost none.
    s.created_swarm = 0;
    AnnounceCall other = make_call(peers, 100, result);
    other.request.peer.addr = {198, 51, 100, 9};
    for (int i = 0; i < 20; ++i) {
        tracker.announce(other);
        CHECK((s.seen.flags & CHIHAYA_ANNOUNCE_NO_NEW_SWARM) == 0);
    }
}

TEST_CASE("private mode has no new-swarm rate: a seedbox re-announces its registered torrents") {
    Script s;
    script = &s;
    s.created_swarm = 1;
    Directory directory;
    chihaya_user u{};
    u.struct_size = sizeof u;
    u.id = 1;
    u.passkey = {"alpha", 5};
    u.flags = CHIHAYA_ENABLED;
    u.upload_multiplier = u.download_multiplier = 1000;
    directory.put_user(u);
    for (uint8_t t = 1; t <= 20; ++t) {
        chihaya_torrent row{};
        row.struct_size = sizeof row;
        row.id = t;
        std::memset(row.info_hash, t, 20);
        row.flags = CHIHAYA_ENABLED;
        row.upload_multiplier = row.download_multiplier = 1000;
        directory.put_torrent(row);
    }
    directory.mark_loaded();
    Policy policy(directory, 600);
    Ledger ledger;
    LimitsConfig limits;
    limits.new_torrents_per_address = 5;
    Tracker tracker(TrackerConfig{}, {&vtable, nullptr}, PrivateMode{&policy, &ledger}, limits);
    uint8_t peers[600];
    Result result;
    AnnounceCall call = make_call(peers, 100, result);
    call.request.peer.addr = {192, 0, 2, 1};
    call.request.passkey = "alpha";
    std::memcpy(call.request.peer_id.bytes.data(), "-lt2000-000000000000", 20);
    // 20 registered torrents, each creating its swarm, from one address: none is flagged.
    for (uint8_t t = 1; t <= 20; ++t) {
        call.request.info_hash.bytes.fill(t);
        tracker.announce(call);
        CHECK(call.response.failure == nullptr);
        CHECK((s.seen.flags & CHIHAYA_ANNOUNCE_NO_NEW_SWARM) == 0);
    }
}

TEST_CASE("FULL and ADDRESS_LIMIT become fixed reasons per budget and are counted") {
    Script s;
    script = &s;
    Tracker tracker(TrackerConfig{}, {&vtable, nullptr});
    uint8_t peers[600];
    Result result;
    AnnounceCall call = make_call(peers, 100, result);
    struct Case {
        chihaya_status status;
        uint8_t refused_by;
        const char* reason;
        const char* limit;
    };
    const Case cases[] = {
        {CHIHAYA_FULL, CHIHAYA_BUDGET_MAX_TORRENTS, "tracker full: no new torrents accepted now", "max_torrents"},
        {CHIHAYA_FULL, CHIHAYA_BUDGET_MAX_PEERS, "tracker full: no new peers accepted now", "max_peers"},
        {CHIHAYA_ADDRESS_LIMIT, CHIHAYA_BUDGET_PEERS_PER_ADDRESS, "too many peers from your address in this torrent",
         "max_peers_per_address"},
        {CHIHAYA_ADDRESS_LIMIT, CHIHAYA_BUDGET_NEW_SWARM,
         "too many new torrents from your address; try again in a minute", "new_torrents_per_address"},
    };
    for (const Case& c : cases) {
        s.status = c.status;
        s.refused_by = c.refused_by;
        const metrics::Limit limit = [&] {
            for (size_t l = 0; l < size_t(metrics::Limit::Count); ++l)
                if (std::string(metrics::name(metrics::Limit(l))) == c.limit) return metrics::Limit(l);
            FAIL("no limit named " << c.limit);
            return metrics::Limit::Count;
        }();
        const uint64_t before = metrics::current().limits[size_t(limit)].load();
        tracker.announce(call);
        REQUIRE(call.response.failure != nullptr);
        CHECK(std::string(call.response.failure) == c.reason);
        CHECK(call.response.peer_count == 0);
        CHECK(metrics::current().limits[size_t(limit)].load() == before + 1);
        CHECK(failure_class(call.response.failure) == metrics::Result::Refused);
    }
    // A driver that does not say which budget: the status's own reason.
    s.refused_by = 0;
    s.status = CHIHAYA_ADDRESS_LIMIT;
    tracker.announce(call);
    CHECK(std::string(call.response.failure) == "too many peers from your address in this torrent");
}

TEST_CASE("port 0 is refused without a driver call") {
    Script s;
    script = &s;
    Tracker tracker(TrackerConfig{}, {&vtable, nullptr});
    uint8_t peers[60];
    Result result;
    AnnounceCall call = make_call(peers, 10, result);
    call.request.peer.port = 0;
    tracker.announce(call);
    CHECK(s.announces == 0);
    CHECK(result.completions == 1);
    CHECK(result.on_caller_thread);
    CHECK(std::string(call.response.failure) == "invalid port");
}

TEST_CASE("completions say whether they arrived inline or from the driver's thread") {
    Script s;
    script = &s;
    Tracker tracker(TrackerConfig{}, {&vtable, nullptr});
    uint8_t peers[600];
    Result result;
    AnnounceCall call = make_call(peers, 100, result);
    tracker.announce(call);
    CHECK(result.completions == 1);
    CHECK(result.on_caller_thread);

    s.from_thread = true;
    Result later;
    AnnounceCall async = make_call(peers, 100, later);
    tracker.announce(async);
    s.worker.join();
    CHECK(later.completions == 1);
    CHECK_FALSE(later.on_caller_thread);
}

TEST_CASE("driver failures become client-visible reasons") {
    Script s;
    script = &s;
    s.status = CHIHAYA_UNAVAILABLE;
    Tracker tracker(TrackerConfig{}, {&vtable, nullptr});
    uint8_t peers[600];
    Result result;
    AnnounceCall call = make_call(peers, 100, result);
    tracker.announce(call);
    CHECK(std::string(call.response.failure) == "tracker storage unavailable");
    CHECK(call.response.peer_count == 0);
    s.status = CHIHAYA_INTERNAL;
    tracker.announce(call);
    CHECK(std::string(call.response.failure) == "internal tracker error");
}

TEST_CASE("scrape: bounds checked, counts written in place, full scrape off by default") {
    Script s;
    script = &s;
    TrackerConfig config;
    config.max_scrape_torrents = 2;
    Tracker tracker(config, {&vtable, nullptr});
    chihaya_scrape_entry entries[3]{};
    entries[0].info_hash[0] = 9;
    entries[1].info_hash[0] = 8;
    ScrapeCall call;
    int completions = 0;
    call.owner = &completions;
    call.complete = [](ScrapeCall* c, bool) { ++*static_cast<int*>(c->owner); };
    call.entries = entries;
    call.count = 2;
    tracker.scrape(call);
    CHECK(completions == 1);
    CHECK(call.failure == nullptr);
    CHECK(entries[0].complete == 9);
    CHECK(entries[1].complete == 8);

    call.count = 3;
    tracker.scrape(call);
    CHECK(std::string(call.failure) == "too many info_hashes");
    call.count = 0;
    tracker.scrape(call);
    CHECK(std::string(call.failure) == "no info_hash");
    CHECK(completions == 3);

    const char* failure = nullptr;
    tracker.scrape_all(nullptr, nullptr, [](void* ctx, const char* f, bool) { *static_cast<const char**>(ctx) = f; }, &failure);
    CHECK(std::string(failure) == "full scrape disabled");
}

TEST_CASE("a call past its deadline: expire answers unavailable, the late done only gives it back") {
    Script s;
    script = &s;
    s.hold = true;
    Tracker tracker(TrackerConfig{}, {&vtable, nullptr});
    uint8_t peers[600];
    Result result;
    AnnounceCall call = make_call(peers, 100, result);
    tracker.announce(call);
    CHECK(result.completions == 0);
    REQUIRE(tracker.expire(call));
    CHECK(std::string(call.response.failure) == "tracker storage unavailable");
    CHECK_FALSE(tracker.expire(call));
    // The driver finishes writing its result (memory still valid), then completes late.
    s.held.done(s.held.ctx, CHIHAYA_OK);
    CHECK(result.completions == 1);  // the frontend takes the call back...
    CHECK(std::string(call.response.failure) == "tracker storage unavailable");  // ...answering nothing new
    CHECK(call.response.peer_count == 0);
    s.held.done(s.held.ctx, CHIHAYA_OK);  // and a second done is refused
    CHECK(result.completions == 1);

    ScrapeCall scrape;
    chihaya_scrape_entry entries[1]{};
    int scrapes = 0;
    scrape.owner = &scrapes;
    scrape.complete = [](ScrapeCall* c, bool) { ++*static_cast<int*>(c->owner); };
    scrape.entries = entries;
    scrape.count = 1;
    tracker.scrape(scrape);
    REQUIRE(tracker.expire(scrape));
    CHECK(std::string(scrape.failure) == "tracker storage unavailable");
    s.held.done(s.held.ctx, CHIHAYA_INTERNAL);
    CHECK(scrapes == 1);
    CHECK(std::string(scrape.failure) == "tracker storage unavailable");
}

TEST_CASE("expire after the done came changes nothing") {
    Script s;
    script = &s;
    Tracker tracker(TrackerConfig{}, {&vtable, nullptr});
    uint8_t peers[600];
    Result result;
    AnnounceCall call = make_call(peers, 100, result);
    tracker.announce(call);
    REQUIRE(result.completions == 1);
    CHECK_FALSE(tracker.expire(call));
    CHECK(call.response.failure == nullptr);
    CHECK(call.response.complete == 3);
}

TEST_CASE("a stray done of the previous request does not answer the newer one in the same call") {
    Script s;
    script = &s;
    s.hold = true;
    Tracker tracker(TrackerConfig{}, {&vtable, nullptr});
    uint8_t peers[600];
    Result result;
    AnnounceCall call = make_call(peers, 100, result);
    tracker.announce(call);
    const chihaya_completion first = s.held;  // what a driver keeps when it completes twice
    first.done(first.ctx, CHIHAYA_OK);
    REQUIRE(result.completions == 1);
    tracker.announce(call);  // the frontend reuses the call at once; the driver holds it
    first.done(first.ctx, CHIHAYA_OK);  // the stray second done of the first request
    CHECK(result.completions == 1);
    CHECK(tracker.expire(call));  // the newer request is still the driver's to complete
    s.held.done(s.held.ctx, CHIHAYA_OK);
    CHECK(result.completions == 2);
}
