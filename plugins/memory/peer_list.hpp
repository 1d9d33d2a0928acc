// peer_list.hpp: one address family's peers of one swarm, as a flat array of packed records.
#pragma once

#include "rng.hpp"

#include <malloc.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace chihaya::memory {

// What TRACK_COUNTERS keeps per peer: the totals the peer reported last time.
struct Counters {
    uint64_t uploaded;
    uint64_t downloaded;
};

// One peer in EndpointBytes + 4 bytes, alignment 1, no padding (10 bytes IPv4, 22 bytes IPv6).
// `endpoint` is the address in network order followed by the port big-endian, i.e. exactly the
// compact entry a client receives, so choosing a peer is one memcpy and finding one is a memcmp.
// `state` holds bit 31: this peer's completed event was counted; bits 0..30: the second (tracker
// clock, see MemoryCache) after which the peer is gone. Storing the deadline rather than the
// last-seen time lets tick() expire peers without knowing the TTL of the announce that set it.
template <size_t EndpointBytes>
struct PackedPeer {
    static constexpr size_t endpoint_bytes = EndpointBytes;
    static constexpr uint32_t completed_bit = 0x80000000u;
    static constexpr uint32_t deadline_mask = 0x7fffffffu;

    uint8_t endpoint[EndpointBytes];
    uint8_t state[4];

    uint32_t word() const noexcept { uint32_t w; std::memcpy(&w, state, 4); return w; }
    void set_word(uint32_t w) noexcept { std::memcpy(state, &w, 4); }
    uint32_t deadline() const noexcept { return word() & deadline_mask; }
    bool completed() const noexcept { return (word() & completed_bit) != 0; }
    void set(uint32_t deadline, bool completed) noexcept {
        set_word((deadline & deadline_mask) | (completed ? completed_bit : 0));
    }
};

using PeerV4 = PackedPeer<6>;
using PeerV6 = PackedPeer<18>;
static_assert(sizeof(PeerV4) == 10 && alignof(PeerV4) == 1);
static_assert(sizeof(PeerV6) == 22 && alignof(PeerV6) == 1);

inline uint32_t gcd(uint32_t a, uint32_t b) noexcept {
    while (b != 0) { uint32_t t = a % b; a = b; b = t; }
    return a;
}

// The peers of one family, leechers first: [0, leechers) are leechers, [leechers, size) seeders,
// so a seeder's answer (leechers only) is a contiguous range and needs no filtering.
// Order within each part is arbitrary (removal moves the last element into the hole).
//
// Storage is one malloc'd block, header then records, and nullptr while empty: an empty family
// costs one pointer. The capacity is whatever the allocator's chunk holds (malloc_usable_size),
// so no byte the allocator hands out is wasted. An optional parallel Counters array (TRACK_COUNTERS)
// is allocated the first time a tracked announce reaches this family, so open trackers never pay
// for it. Records are trivially copyable, hence realloc rather than new[].
//
// Not thread-safe: the owning shard's mutex guards it. Allocation failure is reported by return
// value, never thrown.
template <class Peer>
class PeerList {
public:
    static constexpr uint32_t npos = UINT32_MAX;

    PeerList() noexcept = default;
    PeerList(const PeerList&) = delete;
    PeerList& operator=(const PeerList&) = delete;
    PeerList(PeerList&& other) noexcept : block_(other.block_) { other.block_ = nullptr; }
    PeerList& operator=(PeerList&& other) noexcept {
        if (this != &other) { release(); block_ = other.block_; other.block_ = nullptr; }
        return *this;
    }
    ~PeerList() { release(); }

    uint32_t size() const noexcept { return block_ ? block_->size : 0; }
    uint32_t capacity() const noexcept { return block_ ? block_->cap : 0; }
    uint32_t leechers() const noexcept { return block_ ? block_->leechers : 0; }
    uint32_t seeders() const noexcept { return size() - leechers(); }
    bool is_seeder(uint32_t i) const noexcept { return i >= leechers(); }

    Peer& operator[](uint32_t i) noexcept { return peers()[i]; }
    const Peer& operator[](uint32_t i) const noexcept { return peers()[i]; }

    // Null until enable_counters succeeded; then one entry per record, same index.
    Counters* counters() const noexcept { return block_ ? block_->counters() : nullptr; }

    // Linear scan: records are 10/22 bytes, so even a 10,000-peer family is ~100-220 KB of
    // sequential memory (tens of microseconds); typical swarms are a handful of peers.
    uint32_t find(const uint8_t* endpoint) const noexcept {
        uint32_t n = size();
        const Peer* p = n ? peers() : nullptr;
        for (uint32_t i = 0; i < n; ++i)
            if (std::memcmp(p[i].endpoint, endpoint, Peer::endpoint_bytes) == 0) return i;
        return npos;
    }

    // Makes room for and zeroes the parallel counters; false when out of memory.
    bool enable_counters() noexcept {
        if (!block_ && !grow()) return false;
        if (block_->counters()) return true;
        auto* c = static_cast<Counters*>(std::calloc(block_->cap, sizeof(Counters)));
        if (!c) return false;
        block_->set_counters(c);
        return true;
    }

    // Adds a peer in its part; returns its index, or npos when out of memory (nothing changed).
    uint32_t insert(const Peer& peer, bool seeder) noexcept {
        if (size() == capacity() && !grow()) return npos;
        Header& h = *block_;
        uint32_t at = h.size;
        if (!seeder) {
            move(h.leechers, h.size);  // the first seeder steps aside to the end
            at = h.leechers++;
        }
        ++h.size;
        peers()[at] = peer;
        if (Counters* c = h.counters()) c[at] = Counters{0, 0};
        return at;
    }

    // Removes the peer at i; frees the block when the family becomes empty.
    void remove(uint32_t i) noexcept {
        remove_keep_capacity(i);
        shrink_if_sparse();
    }

    // Moves peer i across the leecher/seeder boundary; returns its new index.
    uint32_t make_seeder(uint32_t i) noexcept {
        Header& h = *block_;
        swap(i, h.leechers - 1);
        return --h.leechers;
    }
    uint32_t make_leecher(uint32_t i) noexcept {
        Header& h = *block_;
        swap(i, h.leechers);
        return h.leechers++;
    }

    // Drops peers whose deadline is before now_s; returns the earliest surviving deadline
    // (UINT32_MAX when none survive).
    uint32_t expire(uint32_t now_s) noexcept {
        uint32_t earliest = UINT32_MAX;
        uint32_t i = 0;
        while (i < size()) {
            uint32_t d = peers()[i].deadline();
            if (d < now_s) {
                remove_keep_capacity(i);  // an unvisited peer moved into i: look at i again
            } else {
                if (d < earliest) earliest = d;
                ++i;
            }
        }
        shrink_if_sparse();
        return earliest;
    }

    // Writes up to `want` compact endpoints of peers in [lo, hi), never index `skip`, into out.
    // Picks a random start and a random stride coprime with the range length: that walks a
    // random permutation of the range without allocating, so repeated announces see different
    // peers. Returns the number written.
    uint32_t write_random(uint32_t lo, uint32_t hi, uint32_t skip, uint32_t want, uint8_t* out,
                          Rng& rng) const noexcept {
        constexpr size_t eb = Peer::endpoint_bytes;
        uint32_t n = hi - lo;
        if (n == 0 || want == 0) return 0;
        const Peer* p = peers();
        uint32_t written = 0;
        uint32_t available = n - ((skip >= lo && skip < hi) ? 1 : 0);
        if (want >= available) {
            for (uint32_t i = lo; i < hi; ++i)
                if (i != skip) std::memcpy(out + eb * written++, p[i].endpoint, eb);
            return written;
        }
        uint32_t pos = rng.below(n);
        uint32_t stride = 1;
        if (n > 2) {
            stride = 1 + rng.below(n - 1);
            while (gcd(stride, n) != 1)
                if (++stride == n) stride = 1;
        }
        for (uint32_t k = 0; k < n && written < want; ++k) {
            uint32_t i = lo + pos;
            if (i != skip) std::memcpy(out + eb * written++, p[i].endpoint, eb);
            pos += stride;
            if (pos >= n) pos -= n;
        }
        return written;
    }

private:
    // 20 bytes, alignment 4: the counters pointer is stored as bytes so the header does not pad
    // to 24 (a 5-peer IPv4 family then fits a 72-byte usable chunk: 20 + 5 * 10).
    struct Header {
        uint32_t size;
        uint32_t cap;
        uint32_t leechers;
        unsigned char counters_bytes[sizeof(Counters*)];

        Counters* counters() const noexcept {
            Counters* c;
            std::memcpy(&c, counters_bytes, sizeof c);
            return c;
        }
        void set_counters(Counters* c) noexcept { std::memcpy(counters_bytes, &c, sizeof c); }
    };
    static_assert(sizeof(Header) == 20);

    Peer* peers() const noexcept { return reinterpret_cast<Peer*>(block_ + 1); }

    void move(uint32_t from, uint32_t to) noexcept {
        if (from == to) return;
        peers()[to] = peers()[from];
        if (Counters* c = block_->counters()) c[to] = c[from];
    }
    void swap(uint32_t a, uint32_t b) noexcept {
        if (a == b) return;
        Peer t = peers()[a];
        peers()[a] = peers()[b];
        peers()[b] = t;
        if (Counters* c = block_->counters()) { Counters ct = c[a]; c[a] = c[b]; c[b] = ct; }
    }

    void remove_keep_capacity(uint32_t i) noexcept {
        Header& h = *block_;
        if (i < h.leechers) {
            move(h.leechers - 1, i);      // the last leecher fills the hole
            move(h.size - 1, h.leechers - 1);  // the last seeder fills the last leecher's place
            --h.leechers;
        } else {
            move(h.size - 1, i);
        }
        --h.size;
    }

    // Returns memory after a swarm shrank: all of it when empty, half when a quarter is used.
    void shrink_if_sparse() noexcept {
        if (!block_) return;
        if (block_->size == 0) { release(); return; }
        if (block_->cap >= 16 && block_->size <= block_->cap / 4) resize(block_->cap / 2);
    }

    bool grow() noexcept {
        uint32_t cap = capacity();
        uint32_t want = cap + cap / 2;
        if (want < cap + 1) want = cap + 1;
        return resize(want);
    }

    // Reallocates to at least `want` records (failure leaves everything as it was).
    bool resize(uint32_t want) noexcept {
        size_t bytes = sizeof(Header) + size_t(want) * sizeof(Peer);
        Counters* counters = block_ ? block_->counters() : nullptr;
        void* p = std::realloc(block_, bytes);
        if (!p) return false;
        bool fresh = block_ == nullptr;
        block_ = static_cast<Header*>(p);
        if (fresh) *block_ = Header{0, 0, 0, {}};
        uint32_t cap = uint32_t((malloc_usable_size(p) - sizeof(Header)) / sizeof(Peer));
        if (counters && cap > block_->cap) {
            auto* c = static_cast<Counters*>(std::realloc(counters, size_t(cap) * sizeof(Counters)));
            if (!c) return false;  // the block grew but `cap` stays: counters remain parallel
            counters = c;
        } else if (counters && cap < block_->cap) {
            // A larger counters array than needed is harmless, so a failed shrink is ignored.
            if (auto* c = static_cast<Counters*>(std::realloc(counters, size_t(cap) * sizeof(Counters))))
                counters = c;
        }
        block_->cap = cap;
        block_->set_counters(counters);
        return true;
    }

    void release() noexcept {
        if (!block_) return;
        std::free(block_->counters());
        std::free(block_);
        block_ = nullptr;
    }

    Header* block_ = nullptr;
};

}  // namespace chihaya::memory
