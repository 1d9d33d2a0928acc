// An open-addressing hash table that keeps its memory when cleared: the ledger's per-batch maps,
// refilled every flush interval, so that recording a report allocates nothing in steady state
// (std::unordered_map allocated a node per new peer per batch: a malloc on most private
// announces, 15 % of the ledger's cost in a profile).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace chihaya {

// Linear probing over a separate array of one control byte per slot (0: empty, else 0x80 | seven
// bits of the hash that the slot index does not use): a probe reads the dense control bytes and
// touches a slot only when its tag matches, so a run costs one cache line, not one per slot, and
// the table can be 3/4 full. Slots of more than a cache line are aligned to cache lines, so a
// 128-byte slot spans exactly two. No erase (a batch only grows, then is cleared whole).
// `Hash` returns a 64-bit hash; `Eq` compares keys. Not thread-safe.
template <class Key, class Value, class Hash, class Eq>
class FlatTable {
public:
    // The value for `key`, default-constructed and inserted if absent; `inserted` says which.
    Value& find_or_insert(const Key& key, bool& inserted) {
        if ((size_ + 1) * 4 > capacity_ * 3) grow();
        const uint64_t h = Hash{}(key);
        const uint8_t tag = tag_of(h);
        for (size_t i = h & (capacity_ - 1);; i = (i + 1) & (capacity_ - 1)) {
            const uint8_t c = ctrl_[i];
            if (c == 0) {
                ctrl_[i] = tag;
                Slot& s = slots_[i];
                s.key = key;
                s.value = Value{};
                used_.push_back(uint32_t(i));
                ++size_;
                inserted = true;
                return s.value;
            }
            if (c == tag && Eq{}(slots_[i].key, key)) {
                inserted = false;
                return slots_[i].value;
            }
        }
    }

    size_t size() const { return size_; }

    // Where a probe for `hash` begins, for a prefetch from another thread (see Ledger::prefetch):
    // the addresses, not the contents, and only as good as the moment they were read.
    uintptr_t ctrl_address() const { return reinterpret_cast<uintptr_t>(ctrl_.get()); }
    uintptr_t slots_address() const { return reinterpret_cast<uintptr_t>(slots_.get()); }
    size_t mask() const { return capacity_ ? capacity_ - 1 : 0; }
    static constexpr size_t slot_bytes() { return sizeof(Slot); }

    template <class F>
    void for_each(F&& f) const {
        for (uint32_t i : used_) f(slots_[i].key, slots_[i].value);
    }

    // Empties the table; keeps its memory unless it is mostly idle (a burst, then quiet).
    void clear() {
        if (capacity_ > 1024 && size_ * 16 < capacity_) {
            allocate(capacity_ / 4);
        } else {
            for (uint32_t i : used_) ctrl_[i] = 0;
        }
        used_.clear();
        size_ = 0;
    }

private:
    static constexpr size_t kAlign = (sizeof(Key) + sizeof(Value)) > 64 ? 64 : alignof(Key) > alignof(Value) ? alignof(Key) : alignof(Value);
    struct alignas(kAlign) Slot {
        Key key;
        Value value;
    };

    static uint8_t tag_of(uint64_t h) { return uint8_t(0x80 | (h >> 57)); }

    void allocate(size_t n) {
        slots_.reset(new Slot[n]);
        ctrl_.reset(new uint8_t[n]());
        capacity_ = n;
    }

    void grow() {
        std::unique_ptr<Slot[]> old = std::move(slots_);
        std::unique_ptr<uint8_t[]> old_ctrl = std::move(ctrl_);
        allocate(capacity_ ? capacity_ * 2 : 64);
        std::vector<uint32_t> old_used;
        old_used.swap(used_);
        for (uint32_t o : old_used) {
            const uint64_t h = Hash{}(old[o].key);
            size_t j = h & (capacity_ - 1);
            while (ctrl_[j] != 0) j = (j + 1) & (capacity_ - 1);
            ctrl_[j] = tag_of(h);
            slots_[j] = std::move(old[o]);
            used_.push_back(uint32_t(j));
        }
    }

    std::unique_ptr<Slot[]> slots_;  // meaningful only where ctrl_ is not 0
    std::unique_ptr<uint8_t[]> ctrl_;
    size_t capacity_ = 0;
    std::vector<uint32_t> used_;  // occupied slots in insertion order, for for_each and clear
    size_t size_ = 0;
};

}  // namespace chihaya
