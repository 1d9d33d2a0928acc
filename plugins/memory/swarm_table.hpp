// swarm_table.hpp: one shard's swarms by info_hash, one pointer and one hash a swarm.
#pragma once

#include "swarm.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace chihaya::memory {

// Open addressing with linear probing and backward-shift deletion (no tombstones, so probe runs
// never grow with churn), at most 4/5 full. Two parallel arrays: 32 bits of each swarm's keyed
// hash (0 = a free slot), which a probe scans 16 to a cache line, and the Swarms (one pointer to
// the swarm's allocation, which holds its info_hash), looked into only when the 32 bits agree.
// 12 bytes a slot; the table grows by half (not doubling: the slot count need not be a power of
// two, the home slot is the 32 bits scaled to it), so it is 53-80 % full and a swarm costs 15-23
// bytes of it. std::unordered_map cost a 64-byte node and a bucket pointer (some 75 bytes a swarm,
// swarm.hpp); doubling cost up to 30 (bench/README.md, memory).
//
// The hash is the cache's keyed SipHash (keyed_hash, memory_cache.hpp), so nobody can choose info_hashes that
// share a probe run. The slot takes the hash's low 32 bits; the shard was chosen by its bits 40
// and up. The table never shrinks (as std::unordered_map's buckets did not): a shard that once
// held many swarms keeps its slots, 12 bytes each.
//
// Not thread-safe: the shard's mutex guards it. Allocation failure is reported by return value.
class SwarmTable {
public:
    SwarmTable() noexcept = default;
    SwarmTable(const SwarmTable&) = delete;
    SwarmTable& operator=(const SwarmTable&) = delete;
    ~SwarmTable() { release(); }

    uint32_t size() const noexcept { return count_; }

    Swarm* find(uint64_t hash, const uint8_t* info_hash) noexcept {
        if (count_ == 0) return nullptr;
        const uint32_t tag = tag_of(hash);
        for (uint32_t i = home(tag, slots_);; i = next(i)) {
            const uint32_t t = tags_[i];
            if (t == 0) return nullptr;
            if (t == tag && std::memcmp(swarms_[i].info_hash(), info_hash, 20) == 0) return &swarms_[i];
        }
    }

    // Adds an empty swarm for `info_hash`, which the table must not hold yet; null when out of
    // memory (nothing changed). Pointers to swarms are good until the next emplace or erase.
    Swarm* emplace(uint64_t hash, const uint8_t* info_hash) noexcept {
        if ((uint64_t(count_) + 1) * 5 > uint64_t(slots_) * 4 && !rehash(slots_ ? slots_ + slots_ / 2 : 16))
            return nullptr;
        Swarm swarm(info_hash);
        if (!swarm.valid()) return nullptr;
        const uint32_t tag = tag_of(hash);
        uint32_t i = home(tag, slots_);
        while (tags_[i] != 0) i = next(i);
        tags_[i] = tag;
        swarms_[i] = std::move(swarm);
        ++count_;
        return &swarms_[i];
    }

    // Removes (and frees) a swarm this table holds.
    void erase(Swarm* swarm) noexcept { erase_at(uint32_t(swarm - swarms_)); }

    // Calls visit(const Swarm&) for each swarm.
    template <class Visit>
    void for_each(Visit&& visit) const {
        for (uint32_t i = 0; count_ != 0 && i < slots_; ++i)
            if (tags_[i] != 0) visit(static_cast<const Swarm&>(swarms_[i]));
    }

    // Calls keep(Swarm&) for each swarm and erases those for which it returns false. Erasing
    // shifts later slots back into the hole, so the hole is looked at again; a swarm from the
    // front of the table may shift behind the end of a wrapped run and be seen twice, so `keep`
    // must be safe to repeat (expiry is: a second visit may expire another slice of a big swarm,
    // and the counts are taken before and after each visit). None is missed.
    template <class Keep>
    void sweep(Keep&& keep) noexcept {
        for (uint32_t i = 0; count_ != 0 && i < slots_;) {
            if (tags_[i] != 0 && !keep(swarms_[i])) {
                erase_at(i);
                continue;
            }
            ++i;
        }
    }

    void clear() noexcept {
        release();
        tags_ = nullptr;
        swarms_ = nullptr;
        slots_ = 0;
        count_ = 0;
    }

private:
    static uint32_t tag_of(uint64_t hash) noexcept {
        const uint32_t t = uint32_t(hash);
        return t != 0 ? t : 1;  // 0 marks a free slot
    }
    // Scales the 32 bits to [0, slots): monotonic, so a run of neighbouring homes stays together.
    static uint32_t home(uint32_t tag, uint32_t slots) noexcept { return uint32_t((uint64_t(tag) * slots) >> 32); }
    uint32_t next(uint32_t i) const noexcept { return i + 1 == slots_ ? 0 : i + 1; }

    bool rehash(uint32_t slots) noexcept {
        auto* tags = static_cast<uint32_t*>(std::calloc(slots, sizeof(uint32_t)));
        if (!tags) return false;
        Swarm* swarms = new (std::nothrow) Swarm[slots];
        if (!swarms) {
            std::free(tags);
            return false;
        }
        for (uint32_t i = 0; count_ != 0 && i < slots_; ++i) {
            if (tags_[i] == 0) continue;
            uint32_t j = home(tags_[i], slots);
            while (tags[j] != 0) j = j + 1 == slots ? 0 : j + 1;
            tags[j] = tags_[i];
            swarms[j] = std::move(swarms_[i]);
        }
        release();
        tags_ = tags;
        swarms_ = swarms;
        slots_ = slots;
        return true;
    }

    void erase_at(uint32_t hole) noexcept {
        tags_[hole] = 0;
        swarms_[hole] = Swarm();
        --count_;
        for (uint32_t at = next(hole); tags_[at] != 0; at = next(at)) {
            const uint32_t want = home(tags_[at], slots_);
            // The entry at `at` may move back into the hole unless its home lies cyclically in
            // (hole, at]: then the hole is not on its probe path.
            const bool stays = hole <= at ? (want > hole && want <= at) : (want > hole || want <= at);
            if (!stays) {
                tags_[hole] = tags_[at];
                swarms_[hole] = std::move(swarms_[at]);
                tags_[at] = 0;
                hole = at;
            }
        }
    }

    void release() noexcept {
        std::free(tags_);
        delete[] swarms_;
    }

    uint32_t* tags_ = nullptr;
    Swarm* swarms_ = nullptr;
    uint32_t slots_ = 0;
    uint32_t count_ = 0;
};

}  // namespace chihaya::memory
