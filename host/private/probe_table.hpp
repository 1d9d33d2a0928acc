// A linear-probing hash table whose slots hold their key inline: the private directory's users
// and torrents, looked up on every private announce.
//
// Why not std::unordered_map: a lookup there walks bucket -> node -> heap key, three dependent
// cache misses in a table of a million rows, and the passkey lookup alone was 7-9 % of a private
// announce in perf. Here a hit is one slot, usually one cache line (users: exactly one, 64 B).
#pragma once

#include <sys/mman.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace chihaya {

// `Slot` is trivially copyable and has `bool used() const`; an all-zero Slot is empty.
// `HashOf{}(slot)` recomputes a stored slot's hash (to rehash and to shift runs on erase).
// The caller supplies each key's 64-bit hash and a predicate that recognises its slot, so one
// table serves lookups by key (readers) and by id (the writer's removals). At most 3/4 full, so
// that probes for absent keys (unknown passkeys are what an attacker sends) stay short. Erase
// shifts the following run back, so there are no tombstones to pile up under churn.
// Not thread-safe: the directory guards each table with its shard's lock.
template <class Slot, class HashOf>
class ProbeTable {
    static_assert(std::is_trivially_copyable_v<Slot>);

public:
    ProbeTable() = default;
    ProbeTable(const ProbeTable&) = delete;
    ProbeTable& operator=(const ProbeTable&) = delete;
    ~ProbeTable() { release(slots_, capacity()); }

    template <class Match>
    const Slot* find(uint64_t hash, Match&& match) const {
        if (size_ == 0) return nullptr;
        for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
            const Slot& s = slots_[i];
            if (!s.used()) return nullptr;
            if (match(s)) return &s;
        }
    }
    template <class Match>
    Slot* find(uint64_t hash, Match&& match) {
        return const_cast<Slot*>(std::as_const(*this).find(hash, match));
    }

    // Asks the CPU to start loading the slot where a probe for `hash` begins, so that the
    // caller can overlap this table's cache miss with another (see Directory::admission).
    void prefetch(uint64_t hash) const {
        if (size_ != 0) __builtin_prefetch(&slots_[hash & mask_]);
    }
    // The same without the caller's lock, from addresses published at each growth: a frontend
    // calls it as soon as it has a key, so that the miss overlaps its parsing. A stale pair (the
    // table just grew) names memory that may be gone; a prefetch of it is a wasted hint, never a
    // fault.
    void prefetch_unlocked(uint64_t hash) const {
        const uintptr_t slots = hint_slots_.load(std::memory_order_relaxed);
        if (slots != 0)
            __builtin_prefetch(reinterpret_cast<const void*>(
                slots + (hash & hint_mask_.load(std::memory_order_relaxed)) * sizeof(Slot)));
    }

    // Stores `slot` (whose key must be absent) and returns where it went, valid until the next
    // insert or erase.
    Slot* insert(uint64_t hash, const Slot& slot) {
        if ((size_ + 1) * 4 > capacity() * 3) grow();
        Slot* s = place(hash, slot);
        ++size_;
        return s;
    }

    // Removes the slot `match` recognises and copies it to `removed` (for the caller to release
    // what it owns). False when there is none.
    template <class Match>
    bool erase(uint64_t hash, Match&& match, Slot& removed) {
        if (size_ == 0) return false;
        size_t i = hash & mask_;
        for (;; i = (i + 1) & mask_) {
            if (!slots_[i].used()) return false;
            if (match(slots_[i])) break;
        }
        removed = slots_[i];
        // Backward shift: move each later slot of the run into the hole when its home position
        // does not lie (cyclically) between the hole and itself.
        for (size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
            if (!slots_[j].used()) break;
            const size_t home = HashOf{}(slots_[j]) & mask_;
            const bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
            if (stays) continue;
            slots_[i] = slots_[j];
            i = j;
        }
        slots_[i] = Slot{};
        --size_;
        return true;
    }

    size_t size() const { return size_; }
    size_t capacity() const { return slots_ ? mask_ + 1 : 0; }
    size_t bytes() const { return capacity() * sizeof(Slot); }

    template <class F>
    void for_each(F&& f) const {
        for (size_t i = 0; i < capacity(); ++i)
            if (slots_[i].used()) f(slots_[i]);
    }

    // Calls f(slot) for every slot; the slots must be released by the caller before the table
    // forgets them.
    template <class F>
    void clear(F&& release_slot) {
        for_each(release_slot);
        release(slots_, capacity());
        slots_ = nullptr;
        mask_ = 0;
        hint_slots_.store(0, std::memory_order_relaxed);
        size_ = 0;
    }

private:
    Slot* place(uint64_t hash, const Slot& slot) {
        size_t i = hash & mask_;
        while (slots_[i].used()) i = (i + 1) & mask_;
        slots_[i] = slot;
        return &slots_[i];
    }

    void grow() {
        const size_t old_capacity = capacity();
        const size_t n = old_capacity ? old_capacity * 2 : 16;
        Slot* fresh = allocate(n);
        if (!fresh) throw std::bad_alloc();
        Slot* old = slots_;
        slots_ = fresh;
        mask_ = n - 1;
        hint_mask_.store(mask_, std::memory_order_relaxed);
        hint_slots_.store(reinterpret_cast<uintptr_t>(slots_), std::memory_order_relaxed);
        for (size_t i = 0; i < old_capacity; ++i)
            if (old[i].used()) place(HashOf{}(old[i]), old[i]);
        release(old, old_capacity);
    }

    // Tables of a megabyte or more come straight from mmap, so that the memory of the table a
    // growth replaces goes back to the system at once: from malloc it stayed in the heap, and a
    // million-user load left 100 MB of freed tables resident. Both ways the memory is zeroed.
    static constexpr size_t kMapFrom = 1 << 20;
    static Slot* allocate(size_t n) {
        const size_t bytes = n * sizeof(Slot);
        if (bytes < kMapFrom) {
            constexpr size_t align = alignof(Slot) < alignof(std::max_align_t) ? alignof(std::max_align_t) : alignof(Slot);
            void* p = std::aligned_alloc(align, (bytes + align - 1) / align * align);
            if (p) std::memset(p, 0, bytes);
            return static_cast<Slot*>(p);
        }
        void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? nullptr : static_cast<Slot*>(p);
    }
    static void release(Slot* p, size_t n) {
        if (!p) return;
        if (n * sizeof(Slot) < kMapFrom) std::free(p);
        else ::munmap(p, n * sizeof(Slot));
    }

    Slot* slots_ = nullptr;
    size_t mask_ = 0;
    std::atomic<uintptr_t> hint_slots_{0};  // slots_ and mask_ for prefetch_unlocked
    std::atomic<size_t> hint_mask_{0};
    size_t size_ = 0;
};

}  // namespace chihaya
