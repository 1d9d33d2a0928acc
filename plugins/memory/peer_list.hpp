// peer_list.hpp: one address family's peers of one swarm, as a flat array of packed records.
#pragma once

#include "rng.hpp"

#include <malloc.h>

#include <chrono>
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

// What expiry calls with each peer it drops, before the record goes: nothing by default; the
// swarm's AddressTally (address_counts.hpp) takes the peer off its address's count.
struct IgnoreGone {
    void operator()(const uint8_t*) const noexcept {}
};

inline uint32_t gcd(uint32_t a, uint32_t b) noexcept {
    while (b != 0) { uint32_t t = a % b; a = b; b = t; }
    return a;
}

// A family of at least this many peers gets a hash index (endpoint -> position), so finding a
// peer costs O(1) whatever the swarm's size; below it a linear scan of at most this many
// 10/22-byte records is as fast and costs no memory. The index goes again below a quarter of it.
inline constexpr uint32_t kIndexFrom = 64;
// Expiry of an indexed family is incremental: each touch examines at most this many records,
// from a cursor that walks the whole family in turn (see PeerList::expire_some).
inline constexpr uint32_t kExpireSlice = 32;

inline uint64_t mix64(uint64_t x) noexcept {  // splitmix64's finalizer
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// Keyed per process, so that nobody can choose endpoints (an address's 65,535 ports, say) that
// all land in one probe chain of a big swarm's index.
inline uint64_t index_seed() noexcept {
    static const uint64_t seed = [] {
        uint64_t t = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
        return mix64(t ^ uint64_t(reinterpret_cast<uintptr_t>(&t)));
    }();
    return seed;
}

template <size_t N>
inline uint64_t endpoint_hash(const uint8_t* e) noexcept {
    uint64_t h = index_seed();
    size_t i = 0;
    for (; i + 8 <= N; i += 8) {
        uint64_t w;
        std::memcpy(&w, e + i, 8);
        h = mix64(h ^ w);
    }
    uint64_t tail = 0;
    std::memcpy(&tail, e + i, N - i);
    return mix64(h ^ tail ^ (uint64_t(N) << 56));
}

// A pointer kept as bytes: alignment 1, copied with memcpy (one plain load or store).
template <class T>
class PackedPtr {
public:
    T* get() const noexcept {
        T* p;
        std::memcpy(&p, bytes_, sizeof p);
        return p;
    }
    void set(T* p) noexcept { std::memcpy(bytes_, &p, sizeof p); }

private:
    unsigned char bytes_[sizeof(T*)] = {};
};

// The peers of one family, leechers first: [0, leechers) are leechers, [leechers, size) seeders,
// so a seeder's answer (leechers only) is a contiguous range and needs no filtering.
// Order within each part is arbitrary (removal moves the last element into the hole).
//
// Storage is one malloc'd block and nullptr while empty: an empty family costs one pointer. The
// block is the header, the records, then the parallel arrays the family has needed so far, each
// one entry per record at the same index:
//   - the BEP 7 keys (4 bytes, 4-aligned), once a peer of the family announced with a key;
//   - the Counters of TRACK_COUNTERS (16 bytes, 8-aligned), once private mode enabled them.
// So an open tracker never pays for counters, a family whose peers send no key pays nothing for
// keys, and a peer's key and counters are a few lines from its record rather than behind a
// pointer to a separate array. Keys were such a separate array in an Extension once: most clients
// send a key, so a 10-peer IPv4 family cost a 32-byte and a 48-byte chunk more where the block now
// grows by 48 bytes (bench/run, 20,000,000 peers: 29.2 bytes a peer before, 25.9 after). The capacity is
// the most records the allocator's chunk holds with those arrays (malloc_usable_size), so no byte
// it hands out is wasted; the arrays' places depend on the capacity, so a resize moves them.
// What only big families need lives in a separate Extension, allocated on first use:
//   - the hash index of a family of kIndexFrom peers or more: positions in an open-addressing
//     table (linear probing, backward-shift deletion, at most half full), kept in step with every
//     move, so find() is O(1) in a swarm of a million peers;
//   - the cursor of incremental expiry.
// Records are trivially copyable, hence realloc rather than new[].
//
// Prefix > 0: the allocation starts with Prefix bytes the list does not interpret (a Swarm keeps
// its info_hash, counts and other family there, swarm.hpp), so that a swarm and its IPv4 peers
// are one allocation. Such a list owns the prefix's memory: create() allocates it, an empty list
// keeps a bare header instead of freeing its block, and every resize may move the prefix (so
// nobody may hold a pointer into it across a change to this list).
//
// Not thread-safe: the owning shard's mutex guards it. Allocation failure is reported by return
// value, never thrown. (Growing an index rehashes it under that mutex: amortized O(1) per insert,
// but an O(n) step at each doubling, a few milliseconds once for a million-peer family.)
template <class Peer, size_t Prefix = 0>
class PeerList {
    static_assert(Prefix % 4 == 0, "the header is 4-aligned");

public:
    using peer_type = Peer;
    static constexpr uint32_t npos = UINT32_MAX;

    PeerList() noexcept = default;
    PeerList(const PeerList&) = delete;
    PeerList& operator=(const PeerList&) = delete;
    PeerList(PeerList&& other) noexcept : ptr_(other.ptr_) { other.ptr_.set(nullptr); }
    PeerList& operator=(PeerList&& other) noexcept {
        if (this != &other) { destroy(); ptr_ = other.ptr_; other.ptr_.set(nullptr); }
        return *this;
    }
    ~PeerList() { destroy(); }

    // Prefix > 0: allocates the prefix (uninitialized) and an empty list; false when out of memory.
    bool create() noexcept {
        static_assert(Prefix > 0);
        destroy();
        void* p = std::malloc(Prefix + sizeof(Header));
        if (!p) return false;
        ptr_.set(reinterpret_cast<Header*>(static_cast<char*>(p) + Prefix));
        *block() = Header{0, 0, 0, {}};
        return true;
    }
    // The prefix's first byte (Prefix > 0, after create()); valid until the next change to this list.
    char* prefix() const noexcept { return base() - Prefix; }
    bool has_block() const noexcept { return block() != nullptr; }

    uint32_t size() const noexcept { return block() ? block()->size : 0; }
    uint32_t capacity() const noexcept { return block() ? block()->cap : 0; }
    uint32_t leechers() const noexcept { return block() ? block()->leechers : 0; }
    uint32_t seeders() const noexcept { return size() - leechers(); }
    bool is_seeder(uint32_t i) const noexcept { return i >= leechers(); }
    bool indexed() const noexcept { return ext() && ext()->slots; }

    Peer& operator[](uint32_t i) noexcept { return peers()[i]; }
    const Peer& operator[](uint32_t i) const noexcept { return peers()[i]; }

    // Null until enable_counters succeeded; then one entry per record, same index.
    Counters* counters() const noexcept {
        if (!block() || !(block()->flags() & kCounters)) return nullptr;
        return reinterpret_cast<Counters*>(base() + counters_offset(block()->cap, block()->flags()));
    }
    // Null until enable_keys succeeded; then one BEP 7 key per record (0 = the peer gave none).
    uint32_t* keys() const noexcept {
        if (!block() || !(block()->flags() & kKeys)) return nullptr;
        return reinterpret_cast<uint32_t*>(base() + keys_offset(block()->cap));
    }

    // O(1) through the index when there is one; else a scan of fewer than kIndexFrom records.
    uint32_t find(const uint8_t* endpoint) const noexcept {
        if (const Extension* x = ext(); x && x->slots) {
            uint32_t s = uint32_t(endpoint_hash<Peer::endpoint_bytes>(endpoint)) & x->mask;
            for (;; s = (s + 1) & x->mask) {
                uint32_t v = x->slots[s];
                if (v == 0) return npos;
                if (std::memcmp(peers()[v - 1].endpoint, endpoint, Peer::endpoint_bytes) == 0) return v - 1;
            }
        }
        uint32_t n = size();
        const Peer* p = n ? peers() : nullptr;
        for (uint32_t i = 0; i < n; ++i)
            if (std::memcmp(p[i].endpoint, endpoint, Peer::endpoint_bytes) == 0) return i;
        return npos;
    }

    // Make room for and zero a parallel array; false when out of memory (nothing changed).
    bool enable_counters() noexcept { return enable(kCounters); }
    bool enable_keys() noexcept { return enable(kKeys); }

    // Adds a peer in its part; returns its index, or npos when out of memory (nothing changed).
    uint32_t insert(const Peer& peer, bool seeder) noexcept {
        if (size() == capacity() && !grow()) return npos;
        if (!reserve_index(size() + 1)) return npos;
        Header& h = *block();
        uint32_t at = h.size;
        if (!seeder) {
            relocate(h.leechers, h.size);  // the first seeder steps aside to the end
            at = h.leechers++;
        }
        ++h.size;
        peers()[at] = peer;
        if (Counters* c = counters()) c[at] = Counters{0, 0};
        if (uint32_t* k = keys()) k[at] = 0;
        index_add(at);
        return at;
    }

    // Removes the peer at i; frees the block when the family becomes empty (with a prefix,
    // shrinks it to a bare header).
    void remove(uint32_t i) noexcept {
        remove_keep_capacity(i);
        shrink_if_sparse();
    }

    // Moves peer i across the leecher/seeder boundary; returns its new index.
    uint32_t make_seeder(uint32_t i) noexcept {
        Header& h = *block();
        swap(i, h.leechers - 1);
        return --h.leechers;
    }
    uint32_t make_leecher(uint32_t i) noexcept {
        Header& h = *block();
        swap(i, h.leechers);
        return h.leechers++;
    }

    // Drops peers whose deadline is before now_s; returns the earliest surviving deadline
    // (UINT32_MAX when none survive). A whole pass: for families without an index. `gone` sees
    // each dropped peer's endpoint first.
    template <class Gone = IgnoreGone>
    uint32_t expire(uint32_t now_s, const Gone& gone = Gone{}) noexcept {
        uint32_t earliest = UINT32_MAX;
        uint32_t i = 0;
        while (i < size()) {
            uint32_t d = peers()[i].deadline();
            if (d < now_s) {
                gone(peers()[i].endpoint);
                remove_keep_capacity(i);  // an unvisited peer moved into i: look at i again
            } else {
                if (d < earliest) earliest = d;
                ++i;
            }
        }
        shrink_if_sparse();
        return earliest;
    }

    // Incremental expiry of a big family: examines `budget` records from where the last call
    // stopped, so the work per touch is bounded whatever the swarm's size, and every record is
    // examined again after size() / budget calls.
    template <class Gone = IgnoreGone>
    void expire_some(uint32_t now_s, uint32_t budget, const Gone& gone = Gone{}) noexcept {
        Extension* x = ext();
        if (!x) {
            expire(now_s, gone);
            return;
        }
        for (uint32_t k = 0; k < budget && size() > 0; ++k) {
            if (x->cursor >= size()) x->cursor = 0;
            if (peers()[x->cursor].deadline() < now_s) {
                gone(peers()[x->cursor].endpoint);
                remove_keep_capacity(x->cursor);
            } else {
                ++x->cursor;
            }
        }
        shrink_if_sparse();
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
    struct Extension {
        uint32_t* slots = nullptr;  // position + 1 per used slot, 0 = empty
        uint32_t mask = 0;          // slot count - 1 (a power of two)
        uint32_t cursor = 0;        // expire_some's position
    };

    // Which parallel arrays a block holds: the low bits of the header's extension word (an
    // Extension is malloc'd, so at least 8-aligned and those bits are free).
    static constexpr uintptr_t kKeys = 1, kCounters = 2, kArrays = kKeys | kCounters;

    // 20 bytes, alignment 4: the extension pointer is stored as bytes so the header does not pad
    // to 24 (a 3-peer IPv6 family then fits an 88-byte usable chunk: 20 + 3 * 22).
    struct Header {
        uint32_t size;
        uint32_t cap;
        uint32_t leechers;
        unsigned char ext_bytes[sizeof(Extension*)];

        uintptr_t word() const noexcept {
            uintptr_t w;
            std::memcpy(&w, ext_bytes, sizeof w);
            return w;
        }
        void set_word(uintptr_t w) noexcept { std::memcpy(ext_bytes, &w, sizeof w); }
        Extension* ext() const noexcept { return reinterpret_cast<Extension*>(word() & ~kArrays); }
        void set_ext(Extension* x) noexcept { set_word(reinterpret_cast<uintptr_t>(x) | flags()); }
        uintptr_t flags() const noexcept { return word() & kArrays; }
        void add_flags(uintptr_t f) noexcept { set_word(word() | f); }
    };
    static_assert(sizeof(Header) == 20);
    static_assert(alignof(std::max_align_t) > kArrays);

    char* base() const noexcept { return reinterpret_cast<char*>(block()); }
    Peer* peers() const noexcept { return reinterpret_cast<Peer*>(block() + 1); }
    Extension* ext() const noexcept { return block() ? block()->ext() : nullptr; }

    // The layout of a block of `cap` records holding the arrays of `flags`: where each array
    // starts (from the header; aligned from the allocation's start, which is the prefix's),
    // how big the block is, and the most records a block of `bytes` holds.
    static constexpr size_t align_up(size_t n, size_t a) noexcept { return (n + a - 1) & ~(a - 1); }
    static constexpr size_t keys_offset(uint32_t cap) noexcept {
        return align_up(Prefix + sizeof(Header) + size_t(cap) * sizeof(Peer), alignof(uint32_t)) - Prefix;
    }
    static constexpr size_t counters_offset(uint32_t cap, uintptr_t flags) noexcept {
        return align_up(Prefix + keys_offset(cap) + ((flags & kKeys) ? size_t(cap) * sizeof(uint32_t) : 0),
                        alignof(Counters)) - Prefix;
    }
    static constexpr size_t block_bytes(uint32_t cap, uintptr_t flags) noexcept {
        if (flags & kCounters) return counters_offset(cap, flags) + size_t(cap) * sizeof(Counters);
        if (flags & kKeys) return keys_offset(cap) + size_t(cap) * sizeof(uint32_t);
        return sizeof(Header) + size_t(cap) * sizeof(Peer);
    }
    static uint32_t capacity_for(size_t bytes, uintptr_t flags) noexcept {
        const size_t per = sizeof(Peer) + ((flags & kKeys) ? sizeof(uint32_t) : 0) +
                           ((flags & kCounters) ? sizeof(Counters) : 0);
        uint32_t cap = uint32_t((bytes - sizeof(Header)) / per);
        while (cap > 0 && block_bytes(cap, flags) > bytes) --cap;  // alignment padding
        return cap;
    }

    // Adds the parallel array `flag` to the block, zeroed: the counters, being last, move up
    // when the keys come in before them.
    bool enable(uintptr_t flag) noexcept {
        if (!block() && !grow()) return false;
        const uintptr_t before = block()->flags(), after = before | flag;
        if (before == after) return true;
        const uint32_t cap = block()->cap;
        void* p = std::realloc(allocation(), Prefix + block_bytes(cap, after));
        if (!p) return false;
        adopt(p);
        if (before & kCounters)
            std::memmove(base() + counters_offset(cap, after), base() + counters_offset(cap, before),
                         size_t(block()->size) * sizeof(Counters));
        block()->add_flags(flag);
        if (flag == kKeys) std::memset(keys(), 0, size_t(cap) * sizeof(uint32_t));
        else std::memset(counters(), 0, size_t(cap) * sizeof(Counters));
        return true;
    }

    Extension* ensure_ext() noexcept {
        if (Extension* x = ext()) return x;
        auto* x = static_cast<Extension*>(std::calloc(1, sizeof(Extension)));
        if (x) block()->set_ext(x);
        return x;
    }

    // ---- the index: slot -> position + 1 --------------------------------------------------------

    uint32_t home(uint32_t position) const noexcept {
        return uint32_t(endpoint_hash<Peer::endpoint_bytes>(peers()[position].endpoint)) & ext()->mask;
    }
    // The slot that names `position` (it must have one).
    uint32_t slot_of(uint32_t position) const noexcept {
        const Extension* x = ext();
        uint32_t s = home(position);
        while (x->slots[s] != position + 1) s = (s + 1) & x->mask;
        return s;
    }
    // Indexes the record at `position`, which has no slot yet.
    void index_add(uint32_t position) noexcept {
        Extension* x = ext();
        if (!x || !x->slots) return;
        uint32_t s = home(position);
        while (x->slots[s] != 0) s = (s + 1) & x->mask;
        x->slots[s] = position + 1;
    }
    // Removes the record at `position` from the index (backward-shift deletion: no tombstones,
    // so probe chains never grow with churn).
    void index_remove(uint32_t position) noexcept {
        Extension* x = ext();
        if (!x || !x->slots) return;
        uint32_t hole = slot_of(position);
        for (uint32_t next = (hole + 1) & x->mask; x->slots[next] != 0; next = (next + 1) & x->mask) {
            const uint32_t want = home(x->slots[next] - 1);
            // The entry at `next` may move back into the hole unless its home lies cyclically
            // in (hole, next]: then the hole is not on its probe path.
            const bool stays = hole <= next ? (want > hole && want <= next) : (want > hole || want <= next);
            if (!stays) {
                x->slots[hole] = x->slots[next];
                hole = next;
            }
        }
        x->slots[hole] = 0;
    }

    // Makes the index fit `n` records at most half full: built when a family reaches kIndexFrom,
    // doubled as it grows. False when out of memory (nothing changed).
    bool reserve_index(uint32_t n) noexcept {
        if (n < kIndexFrom) return true;
        Extension* x = ensure_ext();
        if (!x) return false;
        if (x->slots && n * 2 <= x->mask + 1) return true;
        uint32_t slots = 2 * kIndexFrom;
        while (slots < n * 2) slots *= 2;
        auto* table = static_cast<uint32_t*>(std::calloc(slots, sizeof(uint32_t)));
        if (!table) return false;
        std::free(x->slots);
        x->slots = table;
        x->mask = slots - 1;
        for (uint32_t i = 0; i < size(); ++i) index_add(i);
        return true;
    }

    void drop_index() noexcept {
        if (Extension* x = ext(); x && x->slots) {
            std::free(x->slots);
            x->slots = nullptr;
            x->mask = 0;
        }
    }

    // ---- moves, kept in step with the counters and the index ------------------------------------

    // Moves the record at `from` to `to`, whose own record is gone (removed or moved away).
    void relocate(uint32_t from, uint32_t to) noexcept {
        if (from == to) return;
        const bool indexed = this->indexed();
        uint32_t s = indexed ? slot_of(from) : 0;
        peers()[to] = peers()[from];
        if (Counters* c = counters()) c[to] = c[from];
        if (uint32_t* k = keys()) k[to] = k[from];
        if (indexed) ext()->slots[s] = to + 1;
    }
    void swap(uint32_t a, uint32_t b) noexcept {
        if (a == b) return;
        const bool indexed = this->indexed();
        uint32_t sa = indexed ? slot_of(a) : 0, sb = indexed ? slot_of(b) : 0;
        Peer t = peers()[a];
        peers()[a] = peers()[b];
        peers()[b] = t;
        if (Counters* c = counters()) { Counters ct = c[a]; c[a] = c[b]; c[b] = ct; }
        if (uint32_t* k = keys()) { uint32_t kt = k[a]; k[a] = k[b]; k[b] = kt; }
        if (indexed) {
            ext()->slots[sa] = b + 1;
            ext()->slots[sb] = a + 1;
        }
    }

    void remove_keep_capacity(uint32_t i) noexcept {
        Header& h = *block();
        index_remove(i);
        if (i < h.leechers) {
            relocate(h.leechers - 1, i);           // the last leecher fills the hole
            relocate(h.size - 1, h.leechers - 1);  // the last seeder fills the last leecher's place
            --h.leechers;
        } else {
            relocate(h.size - 1, i);
        }
        --h.size;
    }

    // Returns memory after a family shrank: all of it when empty, the index when the family is
    // small again, half the records when a quarter is used.
    void shrink_if_sparse() noexcept {
        if (!block()) return;
        if (block()->size == 0) { release(); return; }
        if (indexed() && block()->size < kIndexFrom / 4) drop_index();
        if (block()->cap >= 16 && block()->size <= block()->cap / 4) resize(block()->cap / 2);
    }

    // Small families grow by a quarter, big ones by half: most swarms are small, and 1.5x left a
    // 10-peer IPv4 family in a 160-byte chunk (room for 13) where 128 bytes hold it
    // (chihaya_bench_memory, 2,000,000 torrents x 10 peers: 24.2 bytes per peer before, 21.0
    // after; 30.6 and 25.8 with keys). Below 64 records a realloc copies at most 2.7 KiB, so the
    // extra reallocs (10.4 instead of 7.1 on average to reach sizes 1-64) cost less than the bytes
    // they save; growth stays geometric either way.
    bool grow() noexcept {
        uint32_t cap = capacity();
        uint32_t want = cap < 64 ? cap + cap / 4 : cap + cap / 2;
        if (want < cap + 1) want = cap + 1;
        return resize(want);
    }

    // Reallocates to at least `want` records (failure leaves everything as it was). Positions do
    // not change, so the index stays valid. The live records' entries of the parallel arrays move
    // to their places for the new capacity: after the realloc when growing (to the most records
    // the new chunk holds), before it when shrinking (to exactly `want`).
    bool resize(uint32_t want) noexcept {
        const uintptr_t flags = block() ? block()->flags() : 0;
        const uint32_t cap = capacity();
        if (block() && want == cap) return true;
        if (want < cap) {
            move_arrays(cap, want, flags);
            // A failed shrink keeps the bigger block, which holds the moved arrays just as well.
            if (void* p = std::realloc(allocation(), Prefix + block_bytes(want, flags))) adopt(p);
            block()->cap = want;
            return true;
        }
        void* p = std::realloc(allocation(), Prefix + block_bytes(want, flags));
        if (!p) return false;
        const bool fresh = block() == nullptr;
        adopt(p);
        if (fresh) *block() = Header{0, 0, 0, {}};
        const uint32_t fit = capacity_for(malloc_usable_size(p) - Prefix, flags);  // at least want
        move_arrays(cap, fit, flags);
        block()->cap = fit;
        return true;
    }

    // Moves the live entries of the arrays from their places at capacity `from` to those at `to`.
    // Every array starts further up at a bigger capacity, so growing moves the last (counters)
    // first and shrinking the first (keys) first: no move overwrites entries still to be moved.
    void move_arrays(uint32_t from, uint32_t to, uintptr_t flags) noexcept {
        const size_t live = block()->size;
        const auto counters = [&] {
            if (flags & kCounters)
                std::memmove(base() + counters_offset(to, flags), base() + counters_offset(from, flags),
                             live * sizeof(Counters));
        };
        const auto keys = [&] {
            if (flags & kKeys)
                std::memmove(base() + keys_offset(to), base() + keys_offset(from), live * sizeof(uint32_t));
        };
        if (to > from) { counters(); keys(); }
        else { keys(); counters(); }
    }

    // The start of the malloc'd allocation (the prefix's), or null.
    void* allocation() const noexcept { return block() ? base() - Prefix : nullptr; }
    void adopt(void* allocation) noexcept {
        ptr_.set(reinterpret_cast<Header*>(static_cast<char*>(allocation) + Prefix));
    }

    // The family became empty: its block goes, or with a prefix shrinks to a bare header.
    void release() noexcept {
        if (!block()) return;
        if constexpr (Prefix == 0) {
            destroy();
        } else {
            if (block()->cap == 0 && block()->word() == 0) return;  // bare already
            free_ext();
            // A failed shrink keeps the bigger block, which is as good.
            if (void* p = std::realloc(allocation(), Prefix + sizeof(Header))) adopt(p);
            *block() = Header{0, 0, 0, {}};
        }
    }
    void destroy() noexcept {
        if (!block()) return;
        free_ext();
        std::free(allocation());
        ptr_.set(nullptr);
    }
    void free_ext() noexcept {
        if (Extension* x = ext()) {
            std::free(x->slots);
            std::free(x);
            block()->set_ext(nullptr);
        }
    }

    // Stored as bytes (alignment 1), so that a PeerList packs into a swarm's head (swarm.hpp).
    PackedPtr<Header> ptr_;
    Header* block() const noexcept { return ptr_.get(); }
};

}  // namespace chihaya::memory
