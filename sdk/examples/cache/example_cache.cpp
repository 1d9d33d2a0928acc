// example_cache.cpp: a complete chihaya cache driver in one file, for reading.
//
// A cache driver keeps the swarms: which peers announced which torrent, seeders and leechers, and
// how many completed. The host calls it once per announce and once per scrape, from many worker
// threads at once; the rules it must follow are written in chihaya/abi.h, and chihaya-conformance
// checks them:
//   chihaya-conformance --plugin ./chihaya_example_cache.so --driver example --provides tick
//
// This one keeps everything in a std::map behind one mutex: easy to read, slow under load. The
// bundled "memory" driver does the same job with sharded locks and packed peer arrays.
#include <chihaya/driver.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <vector>

namespace {

using InfoHash = std::array<uint8_t, 20>;

// A peer is identified in its swarm by (family, address, port): the same address and port over
// IPv4 and IPv6 are two peers.
struct PeerKey {
    uint8_t family;
    std::array<uint8_t, 16> addr;
    uint16_t port;
    bool operator==(const PeerKey&) const = default;
    bool operator<(const PeerKey& o) const {  // the order of std::map
        if (family != o.family) return family < o.family;
        if (int c = std::memcmp(addr.data(), o.addr.data(), addr.size())) return c < 0;
        return port < o.port;
    }
};

struct Peer {
    bool seeder = false;
    bool completed = false;  // its `completed` event was counted (once per peer)
    uint64_t expires_ms = 0;
    uint64_t uploaded = 0;   // the last totals it reported, for CHIHAYA_ANNOUNCE_TRACK_COUNTERS
    uint64_t downloaded = 0;
};

struct Swarm {
    std::map<PeerKey, Peer> peers;
    uint32_t downloaded = 0;  // completed events counted for this torrent

    // A peer not heard from within its TTL is gone.
    void expire(uint64_t now_ms) {
        std::erase_if(peers, [&](const auto& entry) { return entry.second.expires_ms <= now_ms; });
    }
    void count(uint32_t& seeders, uint32_t& leechers) const {
        seeders = leechers = 0;
        for (const auto& [key, peer] : peers) ++(peer.seeder ? seeders : leechers);
    }
};

class ExampleCache {
public:
    // Keys of [cache.example] in chihaya.toml: the host checks types and ranges and fills
    // defaults before the constructor runs.
    static constexpr chihaya_config_key config_keys[] = {
        chihaya::config_int("max_peers", "100000", 1, 100000000,
                            "peers kept per torrent; a new peer beyond it is refused"),
    };

    // Runs on the main thread before the tracker serves. Throwing refuses start-up, with the
    // exception's message in the host's error.
    ExampleCache(const chihaya::Host& host, const chihaya::Config& config)
        : max_peers_(size_t(config.integer("max_peers"))) {
        host.info("example cache ready");
    }

    // One announce: apply the peer's change, then answer with counts and some other peers.
    // `request` and `result` belong to the host until `done` is called; call it exactly once.
    void announce(const chihaya_announce_request& request, chihaya_announce_result& result,
                  chihaya::Completion done) {
        InfoHash hash;
        std::memcpy(hash.data(), request.info_hash, 20);
        PeerKey key{request.family, {}, request.port};
        std::memcpy(key.addr.data(), request.addr, 16);
        const bool track = request.flags & CHIHAYA_ANNOUNCE_TRACK_COUNTERS;

        chihaya_status status = CHIHAYA_OK;
        {
            std::lock_guard lock(mutex_);
            Swarm& swarm = swarms_[hash];
            swarm.expire(request.now_ms);
            auto it = swarm.peers.find(key);
            const bool known = it != swarm.peers.end();
            result.had_previous = known;
            if (known && track) {  // private mode: the host turns these into per-user deltas
                result.previous_uploaded = it->second.uploaded;
                result.previous_downloaded = it->second.downloaded;
            }

            if (request.event == CHIHAYA_EVENT_STOPPED) {
                if (known) swarm.peers.erase(it);
            } else if (!known && swarm.peers.size() >= max_peers_) {
                // A failure: the message goes to the tracker's log, the client gets a generic
                // reason. Never put a secret in it.
                chihaya::write_message(result.message, CHIHAYA_MESSAGE_CAP, "torrent is full (max_peers)");
                status = CHIHAYA_INVALID;
            } else {
                Peer& peer = swarm.peers[key];
                peer.seeder = request.left == 0;
                peer.expires_ms = request.now_ms + uint64_t(request.peer_ttl_s) * 1000;
                peer.uploaded = request.uploaded;
                peer.downloaded = request.downloaded;
                if (request.event == CHIHAYA_EVENT_COMPLETED && !peer.completed) {
                    peer.completed = true;  // a repeated `completed` counts once
                    ++swarm.downloaded;
                }
                result.peer_count = choose_peers(swarm, key, peer.seeder, request, result);
            }
            if (status == CHIHAYA_OK) {
                swarm.count(result.complete, result.incomplete);
                result.downloaded = swarm.downloaded;
            }
        }
        done(status);  // inline, after the lock is released
    }

    // Counts for every torrent of the request; zeros for one we do not know.
    void scrape(chihaya_scrape_request& request, chihaya::Completion done) {
        {
            std::lock_guard lock(mutex_);
            for (uint32_t i = 0; i < request.count; ++i) {
                chihaya_scrape_entry& entry = chihaya::scrape_entry(request, i);  // host's stride
                InfoHash hash;
                std::memcpy(hash.data(), entry.info_hash, 20);
                entry.complete = entry.incomplete = entry.downloaded = 0;
                auto it = swarms_.find(hash);
                if (it == swarms_.end()) continue;
                it->second.expire(request.now_ms);
                it->second.count(entry.complete, entry.incomplete);
                entry.downloaded = it->second.downloaded;
            }
        }
        done(CHIHAYA_OK);
    }

    // Optional housekeeping, about once a second from the main thread (concurrently with
    // announces): expire peers everywhere and forget torrents nobody announces any more.
    void tick(uint64_t now_ms) {
        std::lock_guard lock(mutex_);
        for (auto it = swarms_.begin(); it != swarms_.end();) {
            it->second.expire(now_ms);
            bool forgotten = it->second.peers.empty() && it->second.downloaded == 0;
            it = forgotten ? swarms_.erase(it) : std::next(it);
        }
    }

private:
    // Up to numwant random peers of the requester's family, never the requester itself; a
    // seeder only gets leechers (another seeder has nothing to give it). Written as compact
    // entries (address, then port, network byte order) into the host's buffer.
    static uint32_t choose_peers(const Swarm& swarm, const PeerKey& self, bool seeder,
                                 const chihaya_announce_request& request,
                                 chihaya_announce_result& result) {
        std::vector<const PeerKey*> candidates;
        for (const auto& [key, peer] : swarm.peers)
            if (key.family == self.family && key != self && !(seeder && peer.seeder))
                candidates.push_back(&key);
        const size_t want = std::min<size_t>({request.numwant, result.peers_capacity, candidates.size()});
        thread_local std::mt19937 rng{std::random_device{}()};
        const size_t addr_len = self.family == CHIHAYA_IPV4 ? 4 : 16;
        uint8_t* out = result.peers;
        for (size_t i = 0; i < want; ++i) {
            // A partial Fisher-Yates shuffle: each answer is a fresh random sample.
            std::swap(candidates[i], candidates[std::uniform_int_distribution<size_t>(i, candidates.size() - 1)(rng)]);
            std::memcpy(out, candidates[i]->addr.data(), addr_len);
            out[addr_len] = uint8_t(candidates[i]->port >> 8);
            out[addr_len + 1] = uint8_t(candidates[i]->port);
            out += addr_len + 2;
        }
        return uint32_t(want);
    }

    const size_t max_peers_;
    std::mutex mutex_;  // announces and scrapes come from every worker thread at once
    std::map<InfoHash, Swarm> swarms_;
};

}  // namespace

// The registration line: exports the entry symbol with a constant table for driver "example".
CHIHAYA_REGISTER_CACHE("example", ExampleCache)
