// swarm.cpp: the announce rules of one swarm (see swarm.hpp) over its two peer families.
#include "swarm.hpp"

#include <chihaya/driver.hpp>

#include <cstring>

namespace chihaya::memory {

namespace {

template <class Peer>
Peer make_peer(const chihaya_announce_request& request) noexcept {
    Peer peer{};
    constexpr size_t addr_bytes = Peer::endpoint_bytes - 2;
    std::memcpy(peer.endpoint, request.addr, addr_bytes);
    peer.endpoint[addr_bytes] = static_cast<uint8_t>(request.port >> 8);
    peer.endpoint[addr_bytes + 1] = static_cast<uint8_t>(request.port & 0xff);
    return peer;
}

// The tracker clock stops at 2^31 - 1 (68 years, MemoryCache::seconds). The host's peer_lifetime is
// at most 7 days (config), but the driver does not rely on it: a deadline must lie within
// PackedPeer::reach of now to be read back.
uint32_t deadline_for(uint32_t now_s, uint32_t ttl_s) noexcept {
    return now_s + (ttl_s < PeerV4::reach ? ttl_s : PeerV4::reach - 1);
}

// The key as stored: 0 means "no key", so a client's key 0 is kept as 1 (a 1-in-2^32 alias).
// A host older than the key members sends a shorter request: no key.
// Built against the frozen 2.0 headers too (tests/abi): those have neither the members nor the
// status, and then there are no keys.
#ifdef CHIHAYA_KEY_MISMATCH
uint32_t announce_key(const chihaya_announce_request& request) noexcept {
    if (!CHIHAYA_HAS_MEMBER(&request, chihaya_announce_request, has_key) || !request.has_key) return 0;
    return request.key != 0 ? request.key : 1;
}
constexpr chihaya_status kKeyMismatch = CHIHAYA_KEY_MISMATCH;
#else
uint32_t announce_key(const chihaya_announce_request&) noexcept { return 0; }
constexpr chihaya_status kKeyMismatch = CHIHAYA_INVALID;  // never returned: no key is ever kept
#endif

// ABI 2.3's refusals; the frozen 2.0 headers (tests/abi) have neither the statuses nor the
// budgets, and then MemoryCache never asks for a refusal (its admission admits everything).
// The refusal of a new peer, saying which budget (chihaya_announce_result.refused_by).
chihaya_status refuse_peer(chihaya_announce_result& result, bool full, const char* why) noexcept {
    chihaya::write_message(result.message, CHIHAYA_MESSAGE_CAP, why);
#ifdef CHIHAYA_ADDRESS_LIMIT
    result.refused_by = uint8_t(full ? CHIHAYA_BUDGET_MAX_PEERS : CHIHAYA_BUDGET_PEERS_PER_ADDRESS);
    return full ? CHIHAYA_FULL : CHIHAYA_ADDRESS_LIMIT;
#else
    (void)result, (void)full;
    return CHIHAYA_INVALID;  // never: MemoryCache admits everything without the budgets
#endif
}

void write_counts(const SwarmCounts& c, chihaya_announce_result& result) noexcept {
    result.complete = c.complete;
    result.incomplete = c.incomplete;
    result.downloaded = c.downloaded;
}

}  // namespace

chihaya_status Swarm::announce(const chihaya_announce_request& request, uint32_t now_s,
                               chihaya_announce_result& result, Rng& rng,
                               const PeerAdmission& admission) noexcept {
    result.peer_count = 0;
    result.had_previous = 0;
    if (!valid()) {
        chihaya::write_message(result.message, CHIHAYA_MESSAGE_CAP, "memory: out of memory for a swarm");
        return CHIHAYA_INTERNAL;
    }
    expire(now_s, kExpireSlice, admission.tally);
    if (request.family == CHIHAYA_IPV6) return announce_in(v6(), request, now_s, result, rng, admission);
    return announce_in(v4(), request, now_s, result, rng, admission);
}

// `peers` is a view of one family: a change to the peers may move the block, so head() is read
// anew after each.
template <class List>
chihaya_status Swarm::announce_in(List peers, const chihaya_announce_request& request,
                                  uint32_t now_s, chihaya_announce_result& result,
                                  Rng& rng, const PeerAdmission& admission) noexcept {
    using Peer = typename List::peer_type;
    const Peer incoming = make_peer<Peer>(request);
    const bool track = (request.flags & CHIHAYA_ANNOUNCE_TRACK_COUNTERS) != 0;
    uint32_t i = peers.find(incoming.endpoint);

    // BEP 7: the first key a peer announced with is its proof of identity. Someone else behind
    // the same address (a NAT, a shared host) who does not know it can neither stop, move nor
    // refresh that peer. A peer that gave no key stays claimable, as it was.
    const uint32_t key = announce_key(request);
    if (i != peers.npos) {
        const uint32_t kept = peers.key(i);
        if (kept != 0 && kept != key) {
            chihaya::write_message(result.message, CHIHAYA_MESSAGE_CAP, "memory: key mismatch");
            return kKeyMismatch;
        }
    }

    if (i != peers.npos) {
        result.had_previous = 1;
        if (track) {
            const Counters c = peers.counters(i);
            result.previous_uploaded = c.uploaded;
            result.previous_downloaded = c.downloaded;
        }
    }

    if (request.event == CHIHAYA_EVENT_STOPPED) {
        if (i != peers.npos) {
            const bool was_indexed = peers.indexed();
            peers.remove(i);
            admission.tally.changed(peers, was_indexed, incoming.endpoint, false);
        }
        write_counts(counts(), result);
        return CHIHAYA_OK;
    }

    // Budgets (abi.h 2.3) bind only a peer the swarm does not hold yet; checked before anything
    // is allocated for it, so a refusal changes nothing. The address's count is a counter of the
    // cache's table (address_counts.hpp), not a scan: O(1) in a swarm of any size.
    if (i == peers.npos) {
        if (admission.max_peers != 0 && admission.peer_total &&
            admission.peer_total->load(std::memory_order_relaxed) >= admission.max_peers) {
            write_counts(counts(), result);
            return refuse_peer(result, true, "memory: max_peers reached");
        }
        if (admission.max_per_address != 0 &&
            admission.tally.peers_in(peers, incoming.endpoint) >= admission.max_per_address) {
            write_counts(counts(), result);
            return refuse_peer(result, false, "memory: max_peers_per_address reached");
        }
    }

    if (track && !peers.enable_counters()) {
        chihaya::write_message(result.message, CHIHAYA_MESSAGE_CAP, "memory: out of memory for peer counters");
        return CHIHAYA_INTERNAL;
    }
    if (key != 0 && !peers.enable_keys()) {
        chihaya::write_message(result.message, CHIHAYA_MESSAGE_CAP, "memory: out of memory for peer keys");
        return CHIHAYA_INTERNAL;
    }

    const bool seeder = request.left == 0;
    const bool completed_now = request.event == CHIHAYA_EVENT_COMPLETED;
    const uint32_t deadline = deadline_for(now_s, request.peer_ttl_s);
    if (i == peers.npos) {
        const bool was_indexed = peers.indexed();
        i = peers.insert(incoming, seeder);
        if (i == peers.npos) {
            chihaya::write_message(result.message, CHIHAYA_MESSAGE_CAP, "memory: out of memory for a peer");
            return CHIHAYA_INTERNAL;
        }
        admission.tally.changed(peers, was_indexed, incoming.endpoint, true);
        peers[i].set(deadline, completed_now);
        if (completed_now) set_downloaded(downloaded() + 1);
    } else {
        bool counted = peers[i].completed();
        if (completed_now && !counted) {
            counted = true;
            set_downloaded(downloaded() + 1);
        }
        peers[i].set(deadline, counted);
        if (seeder && !peers.is_seeder(i)) i = peers.make_seeder(i);
        else if (!seeder && peers.is_seeder(i)) i = peers.make_leecher(i);
    }
    if (deadline < sweep_due(now_s)) set_sweep_due(deadline);
    if (track) peers.set_counters(i, Counters{request.uploaded, request.downloaded});
    if (key != 0 && peers.key(i) == 0) peers.set_key(i, key);  // first key wins; kept until it leaves

    uint32_t want = request.numwant < result.peers_capacity ? request.numwant : result.peers_capacity;
    // Seeders need only leechers (the front of the list); leechers take anyone.
    uint32_t hi = seeder ? peers.leechers() : peers.size();
    result.peer_count = peers.write_random(0, hi, i, want, result.peers, rng);
    write_counts(counts(), result);
    return CHIHAYA_OK;
}

}  // namespace chihaya::memory
