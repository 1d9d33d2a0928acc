// A linear-probing hash table whose slots hold their key inline: the private directory's users
// and torrents, looked up on every private announce.
//
// Why not std::unordered_map: a lookup there walks bucket -> node -> heap key, three dependent
// cache misses in a table of a million rows, and the passkey lookup alone was 7-9 % of a private
// announce in perf. Here a hit is one slot, usually one cache line (users: exactly one, 64 B).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <utility>

namespace chihaya {

// `Slot` is trivially copyable and has `bool used() const`; a value-initialised Slot is empty.
// `HashOf{}(slot)` recomputes a stored slot's hash (to rehash and to shift runs on erase).
// The caller supplies each key's 64-bit hash and a predicate that recognises its slot, so one
// table serves lookups by key (readers) and by id (the writer's removals). At most 3/4 full, so
// that probes for absent keys (unknown passkeys are what an attacker sends) stay short. Erase
// shifts the following run back, so there are no tombstones to pile up under churn.
// Not thread-safe: the directory guards each table with its shard's lock.
template <class Slot, class HashOf>
class ProbeTable {
public:
    ProbeTable() = default;
    ProbeTable(const ProbeTable&) = delete;
    ProbeTable& operator=(const ProbeTable&) = delete;

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
    void clear(F&& release) {
        for_each(release);
        slots_.reset();
        mask_ = 0;
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
        std::unique_ptr<Slot[]> old = std::move(slots_);
        slots_.reset(new Slot[n]());
        mask_ = n - 1;
        for (size_t i = 0; i < old_capacity; ++i)
            if (old[i].used()) place(HashOf{}(old[i]), old[i]);
    }

    std::unique_ptr<Slot[]> slots_;
    size_t mask_ = 0;
    size_t size_ = 0;
};

}  // namespace chihaya
