// The Zipf workload of chihaya_loadgen (--workload zipf): who the peers are, which swarm each is
// in, which address and port it announces from, and what it sends next (churn). No sockets here;
// bench/zipf_udp.cpp sends what this decides and asks it whether a returned peer is legitimate.
//
// Swarms: torrent r (0-based rank, r = 0 the most popular) holds
//     size(r) = max(1, floor(c / (r + 1)^s))
// peers, s = --zipf-exponent, c chosen (bisection) so that the sizes add up to at most --peers
// (as close as the floors allow); so every one of the --torrents torrents has a peer and the
// largest holds about c. Peer g (0 <= g < total) is peer j of torrent t, t the rank whose prefix
// sum covers g. Announces pick g uniformly, so a torrent is announced to in proportion to its size.
//
// Addresses: IPv4 peers announce from --source-net (default 127.1.0.0/16, N addresses). Peer j of
// torrent t sits at address index a = (offset(t) + j) mod N and the k-th port of that address,
// k = j / N, port = 10000 + k * stride + a mod stride; so one address holds ceil(v4 peers / N)
// peers of a torrent at most (a few in the largest swarms, one elsewhere) and the same
// (address, port) client sits in many torrents, as a real client does. IPv6 peers can only come
// from ::1 on loopback, so they are told apart by port alone: the i-th IPv6 peer of a torrent
// has port 10000 + i. The IPv6 peers of torrent t are its last v6count(t) peers, v6count(t) =
// floor(size(t) * share + u(t)), u(t) in [0, 1) from a hash of t: small swarms get an IPv6 peer
// with probability `share`, large ones the share itself.
//
// Churn (steady phase): a peer is active (in its swarm) or not. An inactive peer that is picked
// sends `started` (a join). An active one sends `stopped` with probability stop, vanishes
// silently with probability vanish (it stops announcing without a word: the tracker must expire
// it; it sends nothing now and another peer is picked), sends `completed` with probability
// complete if it is a leecher (it becomes a seeder), or a plain re-announce otherwise. A share of
// every request (--scrape-share) is a scrape of --scrape-hashes torrents, each drawn by the same
// popularity, from a picked peer's address. Phase 1 announces every peer `started` once, in a
// scattered order so that all swarms grow together; a quarter of the peers start as seeders.
#pragma once

#include "loadgen_common.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace loadgen {

struct ZipfConfig {
    uint64_t seed = 1;
    uint32_t torrents = 1'000'000;
    uint64_t peers = 2'500'000;         // total peers over all swarms (>= torrents)
    double exponent = 1.0;
    double ipv6_share = 0.20;           // of peers
    double scrape_share = 0.10;         // of requests
    uint32_t scrape_hashes = 1;         // info_hashes per scrape (1..74)
    double stop_share = 0.02;           // of an active peer's announces
    double vanish_share = 0.01;         // an active peer leaves without a stop
    double complete_share = 0.03;       // of a leecher's announces
    double seeder_share = 0.25;         // peers that start as seeders in phase 1
    uint32_t source_base = 0x7F010000;  // 127.1.0.0, host order
    uint32_t source_count = 65536;      // addresses from source_base on
};

// What one request is: an announce by a peer, or a scrape from a peer's address.
struct ZipfRequest {
    enum class Kind : uint8_t { Announce, Scrape } kind = Kind::Announce;
    bool v6 = false;
    Event event = Event::None;
    uint32_t torrent = 0;
    uint32_t peer = 0;        // j within the torrent
    uint32_t address = 0;     // source address index (IPv6: source_count, i.e. ::1)
    uint16_t port = 0;        // announce port
    uint64_t left = 0;
    uint64_t scrape_seed = 0; // the scrape's further torrents derive from it
    uint8_t retries = 0;      // resent once after an error about the connection id
};

// The swarms and who is in them; read-only once built, shared by every thread.
class ZipfModel {
public:
    // Builds the swarm sizes (about 0.2 s for 1,000,000 torrents). Throws std::invalid_argument
    // when the configuration cannot be laid out (e.g. an IPv6 share too large for 55,000 ports).
    explicit ZipfModel(const ZipfConfig& config);

    const ZipfConfig& config() const { return c_; }
    uint64_t total_peers() const { return offsets_.back(); }
    uint32_t size(uint32_t t) const { return uint32_t(offsets_[t + 1] - offsets_[t]); }
    uint32_t largest() const { return size(0); }
    uint32_t v6_count(uint32_t t) const;
    uint64_t v6_total() const { return v6_total_; }
    uint32_t torrent_of(uint64_t g) const;  // binary search over the prefix sums
    uint64_t first_peer(uint32_t t) const { return offsets_[t]; }
    uint32_t port_stride() const { return stride_; }

    void info_hash(uint32_t t, uint8_t out[20]) const;  // the uniform workload's, same seed
    void peer_id(uint32_t t, uint32_t j, uint8_t out[20]) const;
    uint32_t key(uint32_t t, uint32_t j) const;        // BEP 7 key, never 0
    bool initially_seeder(uint64_t g) const;
    // Fills address, port and v6 of a request for peer j of torrent t.
    void place(uint32_t t, uint32_t j, ZipfRequest& r) const;
    // The t-th further torrent of a scrape (index i >= 1; index 0 is r.torrent).
    uint32_t scrape_torrent(const ZipfRequest& r, uint32_t i) const;

    // Whether a compact peer in a reply about torrent t is one the workload put in that swarm:
    // IPv4 (4-byte address, network order) or IPv6 (16 bytes), port in host order.
    bool member_v4(uint32_t t, const uint8_t addr[4], uint16_t port) const;
    bool member_v6(uint32_t t, const uint8_t addr[16], uint16_t port) const;

    static constexpr uint32_t kFirstPort = 10'000;
    static constexpr uint64_t kLeft = 1 << 20;

private:
    uint32_t address_offset(uint32_t t) const;

    ZipfConfig c_;
    std::vector<uint64_t> offsets_;  // torrents + 1 prefix sums
    std::vector<uint32_t> guide_;    // torrent_of(b << guide_shift_) per bucket b, then one more
    uint32_t guide_shift_ = 0;
    uint64_t v6_total_ = 0;
    uint32_t stride_ = 64;
};

// One generator thread's stream of requests. Thread k of n owns the peers g with g % n == k, so
// the per-peer churn state needs no lock; `state` is shared storage of one byte per peer.
class ZipfStream {
public:
    ZipfStream(const ZipfModel& model, std::vector<uint8_t>& state, uint32_t thread, uint32_t threads);

    // Phase 1: this thread's i-th announce (every peer it owns, `started`), i < prepopulate_count().
    uint64_t prepopulate_count() const;
    ZipfRequest prepopulate(uint64_t i);
    // Phase 2: the next request (announce or scrape) under the churn model.
    ZipfRequest steady();

    uint64_t vanished() const { return vanished_; }
    // Every peer as phase 1 leaves it: active, a quarter seeders. A steady phase run in another
    // process (bench/run fills first) starts from the same state.
    static std::vector<uint8_t> initial_state(const ZipfModel& model);

private:
    uint64_t pick_peer();            // a peer this thread owns, uniformly
    uint32_t pick_torrent();         // by popularity (a uniform peer's torrent)
    ZipfRequest announce(uint64_t g, Event e);

    static constexpr uint8_t kActive = 1, kSeeder = 2;
    const ZipfModel& m_;
    std::vector<uint8_t>& state_;
    uint32_t thread_, threads_;
    Rng rng_;
    uint64_t scatter_;   // phase 1 order: i -> (i * scatter_) mod total, a permutation
    uint64_t vanished_ = 0;
};

// "127.1.0.0/16" -> base and count; false when it is not a loopback network of 1..2^24 addresses.
bool parse_source_net(const std::string& text, uint32_t& base, uint32_t& count);

}  // namespace loadgen
