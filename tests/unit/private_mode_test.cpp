// Private mode's host side: the directory the storage fills, the admission policy, and the
// ledger's crediting rules.
#include "accounting/ledger.hpp"
#include "private/directory.hpp"
#include "private/policy.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

using namespace chihaya;

namespace {

// Strings are literals: the ABI structs point into them.
chihaya_user user(uint64_t id, std::string_view passkey, bool enabled = true, uint32_t slots = 0,
                  uint32_t up = 1000, uint32_t down = 1000) {
    chihaya_user u{};
    u.struct_size = sizeof u;
    u.id = id;
    u.passkey = {passkey.data(), passkey.size()};
    u.flags = enabled ? CHIHAYA_ENABLED : 0;
    u.leech_slots = slots;
    u.upload_multiplier = up;
    u.download_multiplier = down;
    return u;
}

chihaya_torrent torrent(uint64_t id, uint8_t fill, bool enabled = true, uint32_t up = 1000, uint32_t down = 1000) {
    chihaya_torrent t{};
    t.struct_size = sizeof t;
    t.id = id;
    std::memset(t.info_hash, fill, 20);
    t.flags = enabled ? CHIHAYA_ENABLED : 0;
    t.upload_multiplier = up;
    t.download_multiplier = down;
    return t;
}

chihaya_client client(uint64_t id, std::string_view prefix) {
    chihaya_client c{};
    c.struct_size = sizeof c;
    c.id = id;
    c.prefix = {prefix.data(), prefix.size()};
    return c;
}

InfoHash hash(uint8_t fill) {
    InfoHash h;
    h.bytes.fill(fill);
    return h;
}

AnnounceRequest request(uint8_t fill, const char* peer_id = "-lt2000-000000000000", uint64_t left = 10) {
    AnnounceRequest r;
    r.info_hash = hash(fill);
    std::memcpy(r.peer_id.bytes.data(), peer_id, 20);
    r.left = left;
    return r;
}

}  // namespace

TEST_CASE("the directory answers from what the sink delivered, and follows changes") {
    Directory d;
    const chihaya_registry_sink* sink = d.sink();
    CHECK_FALSE(d.loaded());
    auto u1 = user(1, "alpha");
    auto u2 = user(2, "beta", false);
    auto t1 = torrent(10, 0xAA);
    sink->put_user(sink->ctx, &u1);
    sink->put_user(sink->ctx, &u2);
    sink->put_torrent(sink->ctx, &t1);
    sink->loaded(sink->ctx);
    CHECK(d.loaded());
    CHECK(d.users() == 2);
    REQUIRE(d.user("alpha"));
    CHECK(d.user("alpha")->id == 1);
    CHECK(d.user("beta")->enabled == false);
    CHECK_FALSE(d.user("gamma"));
    CHECK(d.torrent(hash(0xAA))->id == 10);
    CHECK_FALSE(d.torrent(hash(0xAB)));

    SUBCASE("a new passkey replaces the old one") {
        auto moved = user(1, "alpha2");
        sink->put_user(sink->ctx, &moved);
        CHECK_FALSE(d.user("alpha"));
        CHECK(d.user("alpha2")->id == 1);
        CHECK(d.users() == 2);
    }
    SUBCASE("removals by id") {
        sink->remove_user(sink->ctx, 1);
        sink->remove_torrent(sink->ctx, 10);
        CHECK_FALSE(d.user("alpha"));
        CHECK_FALSE(d.torrent(hash(0xAA)));
        CHECK(d.users() == 1);
        CHECK(d.torrents() == 0);
    }
    SUBCASE("a passkey handed to another user names that user only") {
        auto taken = user(3, "alpha");
        sink->put_user(sink->ctx, &taken);
        CHECK(d.user("alpha")->id == 3);
        sink->remove_user(sink->ctx, 1);  // the old owner's removal must not remove the new one
        CHECK(d.user("alpha")->id == 3);
    }
    SUBCASE("after reset, rows the new load did not deliver are dropped only when it completes") {
        sink->reset(sink->ctx);
        auto again = user(2, "beta");
        sink->put_user(sink->ctx, &again);
        CHECK(d.user("alpha"));  // still served until the load is complete
        sink->loaded(sink->ctx);
        CHECK_FALSE(d.user("alpha"));
        CHECK(d.user("beta")->enabled);
        CHECK_FALSE(d.torrent(hash(0xAA)));
    }
}

TEST_CASE("the directory agrees with a simple model through random puts, moves and removals") {
    // Thousands of changes on a few hundred ids and keys: reassigned passkeys and hashes, keys
    // stored inline and on the heap (longer than a slot holds), removals that shift probe runs.
    Directory d;
    const chihaya_registry_sink* sink = d.sink();
    std::vector<std::string> keys;
    const size_t lengths[] = {5, 32, 38, 39, 64, 255, 254};
    for (int i = 0; i < 400; ++i) {
        std::string k(lengths[i % 7], 'k');
        std::snprintf(k.data(), k.size(), "%03d", i);  // NUL-terminated inside the key: still a byte
        k.back() = char('a' + i % 26);  // 255: the heap marker's value as a length
        keys.push_back(k);
    }
    CHECK_FALSE(d.user(std::string(255, 'k')));  // probes slots holding heap keys
    auto info_hash = [](int i) {
        InfoHash h;
        h.bytes.fill(0x5A);  // shared prefix: only the tail differs
        h.bytes[18] = uint8_t(i >> 8);
        h.bytes[19] = uint8_t(i);
        return h;
    };
    std::map<uint64_t, size_t> key_of;     // user id -> index in keys
    std::map<size_t, uint64_t> owner_of;   // key index -> user id
    std::map<uint64_t, int> hash_of;       // torrent id -> hash index
    std::map<int, uint64_t> torrent_at;    // hash index -> torrent id
    uint64_t x = 88172645463325252ull;
    auto next = [&] { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x; };
    for (int step = 0; step < 20000; ++step) {
        const uint64_t id = 1 + next() % 300;
        switch (next() % 4) {
        case 0: case 1: {
            const size_t k = next() % keys.size();
            if (auto it = key_of.find(id); it != key_of.end()) { owner_of.erase(it->second); key_of.erase(it); }
            if (auto it = owner_of.find(k); it != owner_of.end()) { key_of.erase(it->second); owner_of.erase(it); }
            key_of[id] = k;
            owner_of[k] = id;
            auto u = user(id, keys[k], id % 3 != 0, uint32_t(id % 5));
            sink->put_user(sink->ctx, &u);
            const int hi = int(next() % 500);
            if (auto it = hash_of.find(id); it != hash_of.end()) { torrent_at.erase(it->second); hash_of.erase(it); }
            if (auto it = torrent_at.find(hi); it != torrent_at.end()) { hash_of.erase(it->second); torrent_at.erase(it); }
            hash_of[id] = hi;
            torrent_at[hi] = id;
            chihaya_torrent t = torrent(id, 0, id % 2 == 0);
            std::memcpy(t.info_hash, info_hash(hi).bytes.data(), 20);
            sink->put_torrent(sink->ctx, &t);
            break;
        }
        case 2:
            if (auto it = key_of.find(id); it != key_of.end()) { owner_of.erase(it->second); key_of.erase(it); }
            sink->remove_user(sink->ctx, id);
            break;
        case 3:
            if (auto it = hash_of.find(id); it != hash_of.end()) { torrent_at.erase(it->second); hash_of.erase(it); }
            sink->remove_torrent(sink->ctx, id);
            break;
        }
        if (step % 1000 != 999) continue;
        REQUIRE(d.users() == key_of.size());
        REQUIRE(d.torrents() == hash_of.size());
        for (size_t k = 0; k < keys.size(); ++k) {
            auto found = d.user(keys[k]);
            auto it = owner_of.find(k);
            REQUIRE(bool(found) == (it != owner_of.end()));
            if (found) {
                CHECK(found->id == it->second);
                CHECK(found->enabled == (it->second % 3 != 0));
                CHECK(found->leech_slots == it->second % 5);
            }
        }
        for (int hi = 0; hi < 500; ++hi) {
            auto found = d.torrent(info_hash(hi));
            auto it = torrent_at.find(hi);
            REQUIRE(bool(found) == (it != torrent_at.end()));
            if (found) CHECK(found->id == it->second);
        }
    }
}

// Web applications make passkeys with long common prefixes and fixed-width counters, whose
// varying bytes take ten values each. The directory picks a key's shard from hash bits 40 and
// up and its slot in that shard's linear-probing table (at most 3/4 full) from the low bits, so
// both must spread such keys as random ones would, and independently: a profile of the private
// bench found 5 slots compared per lookup with the keys of one shard crowding the same slots.
static double mean_probes(const char* format, uint32_t count) {
    constexpr uint32_t kShards = 64;
    std::vector<std::vector<uint64_t>> shards(kShards);
    char key[64];
    for (uint32_t i = 0; i < count; ++i) {
        std::snprintf(key, sizeof key, format, i);
        const uint64_t h = Directory::passkey_hash(key);
        shards[(h >> 40) % kShards].push_back(h);
    }
    uint64_t probes = 0;
    for (const auto& hashes : shards) {
        size_t cap = 16;
        while ((hashes.size() + 1) * 4 > cap * 3) cap *= 2;
        std::vector<bool> used(cap);
        for (uint64_t h : hashes) {  // a hit later walks exactly the slots its insert walked
            size_t i = h & (cap - 1);
            for (probes += 1; used[i]; i = (i + 1) & (cap - 1)) ++probes;
            used[i] = true;
        }
    }
    return double(probes) / count;
}

TEST_CASE("passkey hashes spread counter-style keys over shards and slots") {
    // Uniform hashing at these loads (about 0.38 or 0.76) walks 1.3 to 2.6 slots per hit.
    for (const char* format : {"bench%027u", "%032u", "user-%u-passkey-0000000000000", "%u"}) {
        INFO(format);
        CHECK(mean_probes(format, 100000) < 2.0);
    }
}

TEST_CASE("an empty whitelist allows every client; otherwise a prefix must match") {
    Directory d;
    PeerId lt, qb;
    std::memcpy(lt.bytes.data(), "-lt2000-aaaaaaaaaaaa", 20);
    std::memcpy(qb.bytes.data(), "-qB4500-aaaaaaaaaaaa", 20);
    CHECK(d.client_allowed(lt));
    auto c = client(1, "-lt20");
    d.put_client(c);
    CHECK(d.client_allowed(lt));
    CHECK_FALSE(d.client_allowed(qb));
    d.remove_client(1);
    CHECK(d.client_allowed(qb));
}

TEST_CASE("the policy names the rule an announce breaks, in order") {
    Directory d;
    Policy policy(d, 600);
    AccountingGrant grant;
    using namespace private_failure;
    CHECK(std::string(policy.admit_announce("alpha", request(0xAA), 0, grant)) == kNotLoaded);
    d.put_user(user(1, "alpha"));
    d.put_user(user(2, "off", false));
    d.put_torrent(torrent(10, 0xAA));
    d.put_torrent(torrent(11, 0xBB, false));
    d.put_client(client(1, "-lt"));
    d.mark_loaded();
    CHECK(std::string(policy.admit_announce("", request(0xAA), 0, grant)) == kNoPasskey);
    CHECK(std::string(policy.admit_announce("nobody", request(0xAA), 0, grant)) == kUnknownPasskey);
    CHECK(std::string(policy.admit_announce("off", request(0xAA), 0, grant)) == kUserDisabled);
    CHECK(std::string(policy.admit_announce("alpha", request(0xCC), 0, grant)) == kUnregistered);
    CHECK(std::string(policy.admit_announce("alpha", request(0xBB), 0, grant)) == kTorrentDisabled);
    CHECK(std::string(policy.admit_announce("alpha", request(0xAA, "-XX0001-aaaaaaaaaaaa"), 0, grant)) ==
          kClientNotAllowed);
    CHECK(policy.admit_announce("alpha", request(0xAA), 0, grant) == nullptr);
    CHECK(grant.user_id == 1);
    CHECK(grant.torrent_id == 10);
    CHECK(std::string(policy.admit_scrape("off")) == kUserDisabled);
    CHECK(policy.admit_scrape("alpha") == nullptr);
}

TEST_CASE("user and torrent multipliers combine: freeleech and double upload") {
    Directory d;
    Policy policy(d, 600);
    d.put_user(user(1, "alpha", true, 0, 1500, 1000));
    d.put_torrent(torrent(10, 0xAA, true, 2000, 0));
    d.mark_loaded();
    AccountingGrant grant;
    REQUIRE(policy.admit_announce("alpha", request(0xAA), 0, grant) == nullptr);
    CHECK(grant.upload_multiplier == 3000);
    CHECK(grant.download_multiplier == 0);
}

TEST_CASE("a user at the leeching slot limit cannot start leeching another torrent") {
    Directory d;
    Policy policy(d, 600);
    d.put_user(user(1, "alpha", true, 2));
    for (uint8_t i = 1; i <= 3; ++i) d.put_torrent(torrent(i, i));
    d.mark_loaded();
    AccountingGrant g;
    CHECK(policy.admit_announce("alpha", request(1), 100, g) == nullptr);
    CHECK(policy.admit_announce("alpha", request(2), 100, g) == nullptr);
    CHECK(policy.admit_announce("alpha", request(1), 110, g) == nullptr);  // same torrent again
    CHECK(std::string(policy.admit_announce("alpha", request(3), 110, g)) == private_failure::kSlotsFull);
    CHECK(policy.admit_announce("alpha", request(3, "-lt2000-000000000000", 0), 110, g) == nullptr);  // seeding
    auto done = request(2, "-lt2000-000000000000", 0);  // finished torrent 2: a slot frees up
    CHECK(policy.admit_announce("alpha", done, 120, g) == nullptr);
    CHECK(policy.admit_announce("alpha", request(3), 120, g) == nullptr);
    // Slots held by peers that went silent expire with the peer lifetime.
    CHECK(policy.admit_announce("alpha", request(2), 2000, g) == nullptr);
}

namespace {

PeerReport report(uint64_t up, uint64_t down, bool had_previous = false, uint64_t prev_up = 0,
                  uint64_t prev_down = 0, Event event = Event::None, char peer = 'a') {
    PeerReport r;
    r.grant = {7, 70, 1000, 1000};
    r.peer_id.fill(uint8_t(peer));
    r.uploaded = up;
    r.downloaded = down;
    r.left = 5;
    r.event = event;
    r.had_previous = had_previous;
    r.previous_uploaded = prev_up;
    r.previous_downloaded = prev_down;
    return r;
}

}  // namespace

TEST_CASE("credit: the bytes since the previous report, or the whole report after a restart") {
    CHECK(credit(100, 250, 1000) == 150);
    CHECK(credit(250, 40, 1000) == 40);  // counters went down: a new client session
    CHECK(credit(100, 250, 2000) == 300);
    CHECK(credit(100, 250, 0) == 0);
    const uint64_t huge = ~0ull / 2;  // times 2000 wraps in 64 bits before the division
    CHECK(credit(0, huge, 2000) == huge * 2);
}

TEST_CASE("the ledger chains reports per peer and anchors what the cache did not know") {
    Ledger ledger;
    SUBCASE("a known peer is credited the difference") {
        ledger.record(report(300, 50, true, 100, 20));
        ledger.record(report(500, 60, true, 300, 50));
        SealedBatch b = ledger.take();
        REQUIRE(b.deltas.size() == 1);
        const chihaya_peer_delta& d = b.deltas[0];
        CHECK((d.flags & CHIHAYA_DELTA_ANCHORED) == 0);
        CHECK(d.credit_uploaded == 400);
        CHECK(d.credit_downloaded == 40);
        CHECK(d.uploaded == 500);
        CHECK(d.downloaded == 60);
        CHECK(d.user_id == 7);
        CHECK(d.torrent_id == 70);
    }
    SUBCASE("an unknown peer is anchored, and later reports in the batch chain from it") {
        ledger.record(report(1000, 10));
        ledger.record(report(1300, 10));  // the cache lost it again: chained to the batch's last
        SealedBatch b = ledger.take();
        REQUIRE(b.deltas.size() == 1);
        const chihaya_peer_delta& d = b.deltas[0];
        CHECK((d.flags & CHIHAYA_DELTA_ANCHORED) != 0);
        CHECK(d.anchor_uploaded == 1000);
        CHECK(d.credit_uploaded == 300);
        CHECK(d.uploaded == 1300);
    }
    SUBCASE("completed and stopped are flagged; take() empties the ledger") {
        ledger.record(report(10, 10, true, 0, 0, Event::Completed));
        ledger.record(report(20, 10, true, 10, 10, Event::Stopped));
        ledger.record(report(5, 5, true, 0, 0, Event::None, 'b'));
        CHECK(ledger.pending() == 2);
        SealedBatch b = ledger.take();
        CHECK(b.deltas.size() == 2);
        for (const auto& d : b.deltas) {
            if (d.peer_id[0] == 'a') {
                CHECK((d.flags & CHIHAYA_DELTA_COMPLETED) != 0);
                CHECK((d.flags & CHIHAYA_DELTA_STOPPED) != 0);
                CHECK(d.credit_uploaded == 20);
            } else {
                CHECK((d.flags & (CHIHAYA_DELTA_COMPLETED | CHIHAYA_DELTA_STOPPED)) == 0);
            }
        }
        REQUIRE(b.torrents.size() == 1);
        CHECK(b.torrents[0].torrent_id == 70);
        CHECK(ledger.pending() == 0);
        CHECK(ledger.take().empty());
    }
}

TEST_CASE("a repeated started adds nothing; a dual-stack client's two families count once") {
    Ledger ledger;
    // The cache knew the peer at 1,000,000 and the client says started again with the same
    // counters (a retransmission, or a client that repeats started): chained, not whole.
    ledger.record(report(1000000, 0, true, 1000000, 0, Event::Started));
    SealedBatch b = ledger.take();
    REQUIRE(b.deltas.size() == 1);
    CHECK(b.deltas[0].credit_uploaded == 0);

    // One client, one counter, announced over IPv4 and IPv6 (same peer_id); each family's
    // previous report comes from the cache separately.
    PeerReport v4 = report(5000, 100, true, 1000, 0);
    PeerReport v6 = report(5000, 100, true, 1000, 0);
    v6.family = CHIHAYA_IPV6;
    ledger.record(v4);
    ledger.record(v6);
    // The IPv6 announce raced ahead of a slightly later IPv4 one: the same counter, reordered.
    PeerReport v6_late = report(7000, 100, true, 5000, 100);
    v6_late.family = CHIHAYA_IPV6;
    PeerReport v4_behind = report(6990, 100, true, 5000, 100);
    ledger.record(v6_late);
    ledger.record(v4_behind);
    b = ledger.take();
    REQUIRE(b.deltas.size() == 1);
    CHECK(b.deltas[0].credit_uploaded == 6000);  // 1000 -> 7000, once
    CHECK(b.deltas[0].credit_downloaded == 100);
    CHECK(b.deltas[0].uploaded == 7000);

    // A client that restarts within a batch (below its own family's previous report) is a new
    // session, as is a started below what the batch has.
    ledger.record(report(8000, 0, true, 7000, 0));
    ledger.record(report(300, 0, true, 8000, 0));
    b = ledger.take();
    CHECK(b.deltas[0].credit_uploaded == 1000 + 300);
}

TEST_CASE("started opens a new session: its counters are credited whole, never anchored") {
    Ledger ledger;
    ledger.record(report(5000, 70, true, 9000, 100, Event::Started));  // the old session's prev
    SealedBatch b = ledger.take();
    REQUIRE(b.deltas.size() == 1);
    CHECK((b.deltas[0].flags & CHIHAYA_DELTA_ANCHORED) == 0);
    CHECK(b.deltas[0].credit_uploaded == 5000);
    CHECK(b.deltas[0].credit_downloaded == 70);
    ledger.record(report(40, 0, false, 0, 0, Event::Started, 'z'));
    b = ledger.take();
    CHECK((b.deltas[0].flags & CHIHAYA_DELTA_ANCHORED) == 0);
    CHECK(b.deltas[0].credit_uploaded == 40);
}
