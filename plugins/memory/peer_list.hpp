// peer_list.hpp: a swarm's peers, both address families, in the one malloc'd block it owns.
#pragma once

#include "rng.hpp"

#include <malloc.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace chihaya::memory {

// What TRACK_COUNTERS keeps per peer: the totals the peer reported last time.
struct Counters {
    uint64_t uploaded;
    uint64_t downloaded;
};

// The second whose low 23 bits are `low` (higher bits ignored) nearest to `now_s`: a time kept in
// 23 bits, which must lie less than 2^22 s (48 days) from now when it is read.
inline constexpr uint32_t kTimeMask = (1u << 23) - 1, kTimeReach = 1u << 22;
inline uint32_t nearest_time(uint32_t low, uint32_t now_s) noexcept {
    const uint32_t ahead = (low - now_s) & kTimeMask;
    if (ahead < kTimeReach) return now_s + ahead;
    const uint32_t behind = kTimeMask + 1 - ahead;
    return now_s > behind ? now_s - behind : 0;
}

// A 24-bit word in 3 bytes, little-endian (a peer's state, a swarm's sweep bound).
inline uint32_t load24(const uint8_t* b) noexcept { return b[0] | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16; }
inline void store24(uint8_t* b, uint32_t w) noexcept {
    b[0] = uint8_t(w);
    b[1] = uint8_t(w >> 8);
    b[2] = uint8_t(w >> 16);
}

// A peer as the lists insert and read it: EndpointBytes + 3 bytes, alignment 1 (9 bytes IPv4,
// 21 bytes IPv6). `endpoint` is the address in network order followed by the port big-endian,
// i.e. exactly the compact entry a client receives, so choosing a peer is one memcpy and finding
// one is a memcmp.
//
// `state` holds bit 23: this peer's completed event was counted; bits 0..22: the low 23 bits of
// the second (tracker clock, see MemoryCache) after which the peer is gone. A deadline lies less
// than `reach` (2^22 s, 48 days) from now whenever it is read: it is at most peer_lifetime ahead
// (7 days at most, config) and, once past, the peer is dropped by the next touch of its swarm or
// housekeeping pass, which comes within minutes. So the deadline is the value with those low bits
// nearest to now, and the fourth byte that storing it whole took (10 bytes an IPv4 peer, not 9)
// is saved. Storing the deadline rather than the last-seen time lets expiry work without knowing
// the TTL of the announce that set it.
template <size_t EndpointBytes>
struct PackedPeer {
    static_assert(EndpointBytes == 6 || EndpointBytes == 18);
    static constexpr size_t endpoint_bytes = EndpointBytes;
    static constexpr unsigned family = EndpointBytes == 6 ? 0 : 1;  // its part of a PeerBlock
    static constexpr uint32_t deadline_mask = kTimeMask;
    static constexpr uint32_t completed_bit = kTimeMask + 1;
    static constexpr uint32_t reach = kTimeReach;

    uint8_t endpoint[EndpointBytes];
    uint8_t state[3];

    uint32_t word() const noexcept { return load24(state); }
    void set_word(uint32_t w) noexcept { store24(state, w); }
    bool completed() const noexcept { return (word() & completed_bit) != 0; }
    // The whole deadline, given the clock's second now.
    uint32_t deadline(uint32_t now_s) const noexcept { return nearest_time(word(), now_s); }
    bool expired(uint32_t now_s) const noexcept { return ((word() - now_s) & deadline_mask) >= reach; }
    void set(uint32_t deadline, bool completed) noexcept {
        set_word((deadline & deadline_mask) | (completed ? completed_bit : 0));
    }
};

using PeerV4 = PackedPeer<6>;
using PeerV6 = PackedPeer<18>;
static_assert(sizeof(PeerV4) == 9 && alignof(PeerV4) == 1);
static_assert(sizeof(PeerV6) == 21 && alignof(PeerV6) == 1);

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
// records is as fast and costs no memory. The index goes again below a quarter of it.
inline constexpr uint32_t kIndexFrom = 64;
// Expiry of an indexed family is incremental: each touch examines at most this many records,
// from a cursor that walks the whole family in turn (see Family::expire_some).
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

template <class Peer, size_t Prefix>
class Family;

// One malloc'd block per swarm: Prefix bytes the block does not interpret (a Swarm keeps its
// info_hash and counts there, swarm.hpp), a 16-byte header, then both families' records:
//
//   [prefix][header][Extension* if any][IPv4 records ->   ...free...   <- IPv6 records]
//
// IPv4 records grow up from the header, IPv6 records down from the end of the chunk malloc handed
// out (malloc_usable_size), so neither part has a capacity to store and no byte of the chunk is
// wasted: the free space is the gap between them, whichever family needs it. Record i of IPv4
// is at begin + i * stride, record i of IPv6 at end - (i + 1) * stride, so adding a record moves
// no other. A record is the PackedPeer, then what the family has needed so far:
//   - the BEP 7 key (4 bytes), once a peer of the family announced with a key;
//   - the Counters of TRACK_COUNTERS (16 bytes), once private mode enabled them;
// so an open tracker never pays for counters, a family whose peers send no key pays nothing for
// keys, and a peer's key and counters are in its record. When a family gains one, every record
// of it is rewritten wider (once; a family that empties starts narrow again).
//
// Why one block: the IPv6 peers had a block of their own (a 20-byte header, malloc's 8 and its
// rounding, a pointer in the swarm's head), so a swarm of 8 IPv4 and 2 IPv6 peers took a 176- and
// an 80-byte chunk where this takes 208 (chihaya_bench_memory, 20,000,000 peers, 20 % IPv6:
// 27.5 bytes a peer before, see bench/README.md), and the capacities the header kept cost 8 more.
//
// Small blocks grow to exactly what the next record needs (malloc rounds up to 16 bytes, so
// every realloc leaves room for about half a record more): most swarms are small, and growing
// them by a quarter left up to 48 bytes of a 10-peer swarm's chunk unused. From 256 bytes on a
// block grows by a quarter, from 4 KiB by half: growth stays geometric where copies cost.
//
// What only big families need lives in a separate Extension, allocated on first use and named by
// a pointer after the header: the hash index of a family of kIndexFrom peers or more (positions
// in an open-addressing table, linear probing, backward-shift deletion, at most half full), kept
// in step with every move, so find() is O(1) in a swarm of a million peers; and the cursor of
// incremental expiry.
//
// Not thread-safe: the owning shard's mutex guards it. Allocation failure is reported by return
// value, never thrown. Every change may move the block: nobody may hold a pointer into it (the
// prefix, a record) across a change. (Growing an index rehashes it under that mutex: amortized
// O(1) per insert, but an O(n) step at each doubling, a few milliseconds once for a million-peer
// family.)
template <size_t Prefix>
class PeerBlock {
public:
    PeerBlock() noexcept = default;
    PeerBlock(const PeerBlock&) = delete;
    PeerBlock& operator=(const PeerBlock&) = delete;
    PeerBlock(PeerBlock&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
    PeerBlock& operator=(PeerBlock&& other) noexcept {
        if (this != &other) {
            destroy();
            block_ = std::exchange(other.block_, nullptr);
        }
        return *this;
    }
    ~PeerBlock() { destroy(); }

    // Allocates the prefix (uninitialized) and no peers; false when out of memory.
    bool create() noexcept {
        destroy();
        block_ = static_cast<char*>(std::malloc(kHeaderEnd));
        if (!block_) return false;
        std::memset(block_ + Prefix, 0, kHeaderBytes);
        return true;
    }
    bool valid() const noexcept { return block_ != nullptr; }
    // The prefix's first byte; valid until the next change.
    char* prefix() const noexcept { return block_; }
    // The chunk's bytes (what malloc handed out): for tests and memory accounting.
    size_t bytes() const noexcept { return block_ ? malloc_usable_size(block_) : 0; }

private:
    template <class Peer, size_t P>
    friend class Family;

    struct Extension {
        uint32_t* slots[2] = {nullptr, nullptr};  // per family: position + 1 per used slot, 0 = empty
        uint32_t mask[2] = {0, 0};                // slot count - 1 (a power of two)
        uint32_t cursor[2] = {0, 0};              // expire_some's position
    };

    // The header: four 32-bit words right after the prefix, unaligned (the prefix has any size:
    // a swarm's is 27 bytes), so read and written with memcpy.
    //   word f (0: IPv4, 1: IPv6): the family's records (bits 0..28), whether its records hold a
    //     key (bit 31) and counters (bit 30); word 0 bit 29: an Extension pointer follows.
    //   word 2 + f: the family's leechers: its records [0, leechers) are leechers, the rest seeders.
    static constexpr size_t kHeaderBytes = 16;
    static constexpr uint32_t kKeys = 1u << 31, kCounters = 1u << 30, kHasExt = 1u << 29;
    static constexpr uint32_t kCountMask = kHasExt - 1;
    static constexpr size_t kHeaderEnd = Prefix + kHeaderBytes;

    uint32_t word(unsigned k) const noexcept {
        uint32_t w;
        std::memcpy(&w, block_ + Prefix + 4 * k, 4);
        return w;
    }
    void set_word(unsigned k, uint32_t w) noexcept { std::memcpy(block_ + Prefix + 4 * k, &w, 4); }
    uint32_t count(unsigned f) const noexcept { return word(f) & kCountMask; }
    uint32_t flags(unsigned f) const noexcept { return word(f) & (kKeys | kCounters); }
    void set_count(unsigned f, uint32_t n) noexcept { set_word(f, (word(f) & ~kCountMask) | n); }
    uint32_t leechers(unsigned f) const noexcept { return word(2 + f); }
    void set_leechers(unsigned f, uint32_t n) noexcept { set_word(2 + f, n); }

    static constexpr size_t stride_of(size_t endpoint_bytes, uint32_t flags) noexcept {
        return endpoint_bytes + 3 + ((flags & kKeys) ? 4 : 0) + ((flags & kCounters) ? sizeof(Counters) : 0);
    }
    size_t stride(unsigned f) const noexcept { return stride_of(f == 0 ? 6 : 18, flags(f)); }
    size_t part_bytes(unsigned f) const noexcept { return size_t(count(f)) * stride(f); }

    bool has_ext() const noexcept { return (word(0) & kHasExt) != 0; }
    Extension* ext() const noexcept {
        if (!has_ext()) return nullptr;
        Extension* x;
        std::memcpy(&x, block_ + kHeaderEnd, sizeof x);
        return x;
    }
    size_t begin() const noexcept { return kHeaderEnd + (has_ext() ? sizeof(Extension*) : 0); }
    size_t used() const noexcept { return begin() + part_bytes(0) + part_bytes(1); }

    // Makes room for `extra` more bytes of records; false when out of memory (nothing changed).
    bool room(size_t extra) noexcept {
        const size_t need = used() + extra;
        if (need <= bytes()) return true;
        size_t want = need;
        if (need >= 4096) want += need / 2;
        else if (need >= 256) want += need / 4;
        return reallocate(want);
    }

    // Resizes the chunk to at least `want` bytes (at least used()), keeping the IPv6 records at
    // its end; false when growing failed (nothing changed). A failed shrink keeps the chunk.
    bool reallocate(size_t want) noexcept {
        const size_t old_end = bytes(), top = part_bytes(1);
        if (want < old_end) {  // the IPv6 records move down first: realloc keeps only `want` bytes
            std::memmove(block_ + want - top, block_ + old_end - top, top);
            if (void* p = std::realloc(block_, want)) block_ = static_cast<char*>(p);
            const size_t end = bytes();
            if (end != want) std::memmove(block_ + end - top, block_ + want - top, top);
            return true;
        }
        void* p = std::realloc(block_, want);
        if (!p) return false;
        block_ = static_cast<char*>(p);
        const size_t end = bytes();
        if (end != old_end) std::memmove(block_ + end - top, block_ + old_end - top, top);
        return true;
    }

    // Gives back what a shrunken swarm does not use: half the chunk when a quarter is used.
    void shrink_if_sparse() noexcept {
        const size_t have = bytes(), n = used();
        if (have >= 256 && n <= have / 4) reallocate(have / 2);
    }

    // The Extension, made on first use (the IPv4 records move up to make room for its pointer:
    // both families have fewer than kIndexFrom records then, or one would have made it already).
    Extension* ensure_ext() noexcept {
        if (Extension* x = ext()) return x;
        if (!room(sizeof(Extension*))) return nullptr;
        auto* x = static_cast<Extension*>(std::calloc(1, sizeof(Extension)));
        if (!x) return nullptr;
        std::memmove(block_ + kHeaderEnd + sizeof x, block_ + kHeaderEnd, part_bytes(0));
        std::memcpy(block_ + kHeaderEnd, &x, sizeof x);
        set_word(0, word(0) | kHasExt);
        return x;
    }
    // Frees the Extension once neither family has an index (both are small then).
    void drop_ext_if_unused() noexcept {
        Extension* x = ext();
        if (!x || x->slots[0] || x->slots[1]) return;
        std::free(x);
        set_word(0, word(0) & ~kHasExt);
        std::memmove(block_ + kHeaderEnd, block_ + kHeaderEnd + sizeof x, part_bytes(0));
    }

    void destroy() noexcept {
        if (!block_) return;
        if (Extension* x = ext()) {
            std::free(x->slots[0]);
            std::free(x->slots[1]);
            std::free(x);
        }
        std::free(block_);
        block_ = nullptr;
    }

    char* block_ = nullptr;
};

// The peers of one family of a PeerBlock: a view (one pointer), made for each use. Order within
// the leechers and within the seeders is arbitrary (removal moves the last record into the hole).
template <class Peer, size_t Prefix>
class Family {
    using Block = PeerBlock<Prefix>;
    static constexpr unsigned f = Peer::family;
    static constexpr size_t eb = Peer::endpoint_bytes;
    static constexpr size_t kMaxStride = Block::stride_of(eb, Block::kKeys | Block::kCounters);

public:
    using peer_type = Peer;
    static constexpr uint32_t npos = UINT32_MAX;

    explicit Family(Block& block) noexcept : b_(&block) {}

    uint32_t size() const noexcept { return b_->count(f); }
    uint32_t leechers() const noexcept { return b_->leechers(f); }
    uint32_t seeders() const noexcept { return size() - leechers(); }
    bool is_seeder(uint32_t i) const noexcept { return i >= leechers(); }
    bool indexed() const noexcept {
        const auto* x = b_->ext();
        return x && x->slots[f];
    }

    // A reference into the block: good until the next change.
    Peer& operator[](uint32_t i) const noexcept { return *reinterpret_cast<Peer*>(span().at(i)); }

    bool has_keys() const noexcept { return (b_->flags(f) & Block::kKeys) != 0; }
    bool has_counters() const noexcept { return (b_->flags(f) & Block::kCounters) != 0; }
    // The BEP 7 key of record i; 0: the peer gave none (or the family keeps no keys).
    uint32_t key(uint32_t i) const noexcept {
        uint32_t k = 0;
        if (has_keys()) std::memcpy(&k, span().at(i) + eb + 3, 4);
        return k;
    }
    void set_key(uint32_t i, uint32_t k) noexcept {  // has_keys() must be true
        std::memcpy(span().at(i) + eb + 3, &k, 4);
    }
    Counters counters(uint32_t i) const noexcept {
        Counters c{0, 0};
        if (has_counters()) std::memcpy(&c, span().at(i) + counters_at(b_->flags(f)), sizeof c);
        return c;
    }
    void set_counters(uint32_t i, const Counters& c) noexcept {  // has_counters() must be true
        std::memcpy(span().at(i) + counters_at(b_->flags(f)), &c, sizeof c);
    }

    // O(1) through the index when there is one; else a scan of fewer than kIndexFrom records.
    uint32_t find(const uint8_t* endpoint) const noexcept {
        const Span s = span();
        if (const auto* x = b_->ext(); x && x->slots[f]) {
            for (uint32_t k = uint32_t(endpoint_hash<eb>(endpoint)) & x->mask[f];; k = (k + 1) & x->mask[f]) {
                const uint32_t v = x->slots[f][k];
                if (v == 0) return npos;
                if (std::memcmp(s.at(v - 1), endpoint, eb) == 0) return v - 1;
            }
        }
        const uint32_t n = size();
        for (uint32_t i = 0; i < n; ++i)
            if (std::memcmp(s.at(i), endpoint, eb) == 0) return i;
        return npos;
    }

    // Widen every record by the key or the counters, zeroed; false when out of memory (nothing
    // changed).
    bool enable_counters() noexcept { return enable(Block::kCounters); }
    bool enable_keys() noexcept { return enable(Block::kKeys); }

    // Adds a peer in its part, with no key and zero counters; returns its index, or npos when out
    // of memory (nothing changed).
    uint32_t insert(const Peer& peer, bool seeder) noexcept {
        // Room first, also for the Extension's pointer if this insert makes the first index: an
        // index built and then a failed insert would leave the family indexed with its peers
        // missing from the address table (address_counts.hpp), which counts indexed families.
        const bool first_index = size() + 1 >= kIndexFrom && !b_->ext();
        if (!b_->room(stride() + (first_index ? sizeof(void*) : 0))) return npos;
        if (!reserve_index(size() + 1)) return npos;  // may move the records: spans after it
        uint32_t at = size();
        b_->set_count(f, at + 1);
        const Span s = span();
        if (!seeder) {
            relocate(s, leechers(), at);  // the first seeder steps aside to the end
            at = leechers();
            b_->set_leechers(f, at + 1);
        }
        uint8_t* r = s.at(at);
        std::memcpy(r, &peer, sizeof peer);
        std::memset(r + sizeof peer, 0, s.stride - sizeof peer);
        index_add(s, at);
        return at;
    }

    // Removes the peer at i; returns memory when the family became small or the block sparse.
    void remove(uint32_t i) noexcept {
        remove_keep_room(span(), i);
        settle();
    }

    // Moves peer i across the leecher/seeder boundary; returns its new index.
    uint32_t make_seeder(uint32_t i) noexcept {
        const uint32_t l = leechers();
        swap(span(), i, l - 1);
        b_->set_leechers(f, l - 1);
        return l - 1;
    }
    uint32_t make_leecher(uint32_t i) noexcept {
        const uint32_t l = leechers();
        swap(span(), i, l);
        b_->set_leechers(f, l + 1);
        return l;
    }

    // Drops peers whose deadline is before now_s; returns the earliest surviving deadline
    // (UINT32_MAX when none survive). A whole pass: for families without an index. `gone` sees
    // each dropped peer's endpoint first.
    template <class Gone = IgnoreGone>
    uint32_t expire(uint32_t now_s, const Gone& gone = Gone{}) noexcept {
        const Span s = span();
        uint32_t earliest = UINT32_MAX;
        uint32_t i = 0;
        while (i < size()) {
            const Peer& p = *reinterpret_cast<const Peer*>(s.at(i));
            if (p.expired(now_s)) {
                gone(p.endpoint);
                remove_keep_room(s, i);  // an unvisited peer moved into i: look at i again
            } else {
                const uint32_t d = p.deadline(now_s);
                if (d < earliest) earliest = d;
                ++i;
            }
        }
        settle();
        return earliest;
    }

    // Incremental expiry of a big family: examines `budget` records from where the last call
    // stopped, so the work per touch is bounded whatever the swarm's size, and every record is
    // examined again after size() / budget calls.
    template <class Gone = IgnoreGone>
    void expire_some(uint32_t now_s, uint32_t budget, const Gone& gone = Gone{}) noexcept {
        if (!indexed()) {
            expire(now_s, gone);
            return;
        }
        const Span s = span();
        uint32_t& cursor = b_->ext()->cursor[f];
        for (uint32_t k = 0; k < budget && size() > 0; ++k) {
            if (cursor >= size()) cursor = 0;
            const Peer& p = *reinterpret_cast<const Peer*>(s.at(cursor));
            if (p.expired(now_s)) {
                gone(p.endpoint);
                remove_keep_room(s, cursor);
            } else {
                ++cursor;
            }
        }
        settle();
    }

    // Writes up to `want` compact endpoints of peers in [lo, hi), never index `skip`, into out.
    // Picks a random start and a random stride coprime with the range length: that walks a
    // random permutation of the range without allocating, so repeated announces see different
    // peers. Returns the number written.
    uint32_t write_random(uint32_t lo, uint32_t hi, uint32_t skip, uint32_t want, uint8_t* out,
                          Rng& rng) const noexcept {
        const uint32_t n = hi - lo;
        if (n == 0 || want == 0) return 0;
        const Span s = span();
        uint32_t written = 0;
        const uint32_t available = n - ((skip >= lo && skip < hi) ? 1 : 0);
        if (want >= available) {
            for (uint32_t i = lo; i < hi; ++i)
                if (i != skip) std::memcpy(out + eb * written++, s.at(i), eb);
            return written;
        }
        uint32_t pos = rng.below(n);
        uint32_t step = 1;
        if (n > 2) {
            step = 1 + rng.below(n - 1);
            while (gcd(step, n) != 1)
                if (++step == n) step = 1;
        }
        for (uint32_t k = 0; k < n && written < want; ++k) {
            const uint32_t i = lo + pos;
            if (i != skip) std::memcpy(out + eb * written++, s.at(i), eb);
            pos += step;
            if (pos >= n) pos -= n;
        }
        return written;
    }

private:
    // Where the family's records are now: record i at first + i * step. Good until the next
    // change that may move the block or the records (room, reallocate, the Extension's pointer).
    struct Span {
        uint8_t* first;
        ptrdiff_t step;
        size_t stride;
        uint8_t* at(uint32_t i) const noexcept { return first + ptrdiff_t(i) * step; }
    };
    Span span() const noexcept { return span_for(b_->stride(f)); }
    Span span_for(size_t stride) const noexcept {
        auto* base = reinterpret_cast<uint8_t*>(b_->block_);
        if constexpr (f == 0) return {base + b_->begin(), ptrdiff_t(stride), stride};
        else return {base + b_->bytes() - stride, -ptrdiff_t(stride), stride};
    }
    size_t stride() const noexcept { return b_->stride(f); }
    static constexpr size_t counters_at(uint32_t flags) noexcept {
        return eb + 3 + ((flags & Block::kKeys) ? 4 : 0);
    }

    bool enable(uint32_t flag) noexcept {
        const uint32_t before = b_->flags(f), after = before | flag;
        if (before == after) return true;
        const uint32_t n = size();
        const size_t from = Block::stride_of(eb, before), to = Block::stride_of(eb, after);
        if (!b_->room(size_t(n) * (to - from))) return false;
        // Each record moves away from the family's start (up for IPv4, down for IPv6), further
        // the later it is: rewriting the last first never overwrites a record not yet moved.
        const Span old_span = span_for(from), new_span = span_for(to);
        uint8_t record[kMaxStride];
        for (uint32_t i = n; i-- > 0;) {
            std::memcpy(record, old_span.at(i), from);
            uint8_t* d = new_span.at(i);
            std::memcpy(d, record, eb + 3);
            size_t src = eb + 3, dst = eb + 3;
            if (after & Block::kKeys) {
                if (before & Block::kKeys) std::memcpy(d + dst, record + src, 4), src += 4;
                else std::memset(d + dst, 0, 4);
                dst += 4;
            }
            if (after & Block::kCounters) {
                if (before & Block::kCounters) std::memcpy(d + dst, record + src, sizeof(Counters));
                else std::memset(d + dst, 0, sizeof(Counters));
            }
        }
        b_->set_word(f, b_->word(f) | flag);
        return true;
    }

    // After removals: a family that emptied forgets its keys and counters (its records start
    // narrow again), a small one drops its index, a sparse block shrinks.
    void settle() noexcept {
        if (size() == 0) b_->set_word(f, b_->word(f) & ~(Block::kKeys | Block::kCounters));
        if (indexed() && size() < kIndexFrom / 4) drop_index();
        b_->shrink_if_sparse();
    }

    // ---- the index: slot -> position + 1 --------------------------------------------------------

    uint32_t home(const Span& s, uint32_t position) const noexcept {
        return uint32_t(endpoint_hash<eb>(s.at(position))) & b_->ext()->mask[f];
    }
    // The slot that names `position` (it must have one).
    uint32_t slot_of(const Span& s, uint32_t position) const noexcept {
        const auto* x = b_->ext();
        uint32_t k = home(s, position);
        while (x->slots[f][k] != position + 1) k = (k + 1) & x->mask[f];
        return k;
    }
    // Indexes the record at `position`, which has no slot yet.
    void index_add(const Span& s, uint32_t position) noexcept {
        if (!indexed()) return;
        auto* x = b_->ext();
        uint32_t k = home(s, position);
        while (x->slots[f][k] != 0) k = (k + 1) & x->mask[f];
        x->slots[f][k] = position + 1;
    }
    // Removes the record at `position` from the index (backward-shift deletion: no tombstones,
    // so probe chains never grow with churn).
    void index_remove(const Span& s, uint32_t position) noexcept {
        if (!indexed()) return;
        auto* x = b_->ext();
        uint32_t* slots = x->slots[f];
        const uint32_t mask = x->mask[f];
        uint32_t hole = slot_of(s, position);
        for (uint32_t next = (hole + 1) & mask; slots[next] != 0; next = (next + 1) & mask) {
            const uint32_t want = home(s, slots[next] - 1);
            // The entry at `next` may move back into the hole unless its home lies cyclically
            // in (hole, next]: then the hole is not on its probe path.
            const bool stays = hole <= next ? (want > hole && want <= next) : (want > hole || want <= next);
            if (!stays) {
                slots[hole] = slots[next];
                hole = next;
            }
        }
        slots[hole] = 0;
    }

    // Makes the index fit `n` records at most half full: built when a family reaches kIndexFrom,
    // doubled as it grows. False when out of memory (nothing changed).
    bool reserve_index(uint32_t n) noexcept {
        if (n < kIndexFrom) return true;
        auto* x = b_->ensure_ext();
        if (!x) return false;
        if (x->slots[f] && n * 2 <= x->mask[f] + 1) return true;
        uint32_t slots = 2 * kIndexFrom;
        while (slots < n * 2) slots *= 2;
        auto* table = static_cast<uint32_t*>(std::calloc(slots, sizeof(uint32_t)));
        if (!table) return false;
        std::free(x->slots[f]);
        x->slots[f] = table;
        x->mask[f] = slots - 1;
        const Span s = span();
        for (uint32_t i = 0; i < size(); ++i) index_add(s, i);
        return true;
    }

    void drop_index() noexcept {
        auto* x = b_->ext();
        std::free(x->slots[f]);
        x->slots[f] = nullptr;
        x->mask[f] = 0;
        x->cursor[f] = 0;
        b_->drop_ext_if_unused();
    }

    // ---- moves, kept in step with the index ------------------------------------------------------

    // Moves the record at `from` to `to`, whose own record is gone (removed or moved away).
    void relocate(const Span& s, uint32_t from, uint32_t to) noexcept {
        if (from == to) return;
        const bool indexed = this->indexed();
        const uint32_t k = indexed ? slot_of(s, from) : 0;
        std::memcpy(s.at(to), s.at(from), s.stride);
        if (indexed) b_->ext()->slots[f][k] = to + 1;
    }
    void swap(const Span& s, uint32_t a, uint32_t b) noexcept {
        if (a == b) return;
        const bool indexed = this->indexed();
        const uint32_t ka = indexed ? slot_of(s, a) : 0, kb = indexed ? slot_of(s, b) : 0;
        uint8_t t[kMaxStride];
        std::memcpy(t, s.at(a), s.stride);
        std::memcpy(s.at(a), s.at(b), s.stride);
        std::memcpy(s.at(b), t, s.stride);
        if (indexed) {
            b_->ext()->slots[f][ka] = b + 1;
            b_->ext()->slots[f][kb] = a + 1;
        }
    }

    void remove_keep_room(const Span& s, uint32_t i) noexcept {
        index_remove(s, i);
        const uint32_t n = size(), l = leechers();
        if (i < l) {
            relocate(s, l - 1, i);      // the last leecher fills the hole
            relocate(s, n - 1, l - 1);  // the last seeder fills the last leecher's place
            b_->set_leechers(f, l - 1);
        } else {
            relocate(s, n - 1, i);
        }
        b_->set_count(f, n - 1);
    }

    Block* b_;
};

}  // namespace chihaya::memory
