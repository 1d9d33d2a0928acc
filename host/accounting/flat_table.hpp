// An open-addressing hash table that keeps its memory when cleared: the ledger's per-batch maps,
// refilled every flush interval, so that recording a report allocates nothing in steady state
// (std::unordered_map allocated a node per new peer per batch: a malloc on most private
// announces, 15 % of the ledger's cost in a profile).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace chihaya {

// Linear probing, at most half full, no erase (a batch only grows, then is cleared whole).
// `Hash` returns a 64-bit hash; `Eq` compares keys. Not thread-safe.
template <class Key, class Value, class Hash, class Eq>
class FlatTable {
public:
    // The value for `key`, default-constructed and inserted if absent; `inserted` says which.
    Value& find_or_insert(const Key& key, bool& inserted) {
        if ((size_ + 1) * 2 > slots_.size()) grow();
        const size_t mask = slots_.size() - 1;
        for (size_t i = Hash{}(key) & mask;; i = (i + 1) & mask) {
            Slot& s = slots_[i];
            if (!s.used) {
                s.used = true;
                s.key = key;
                s.value = Value{};
                used_.push_back(uint32_t(i));
                ++size_;
                inserted = true;
                return s.value;
            }
            if (Eq{}(s.key, key)) {
                inserted = false;
                return s.value;
            }
        }
    }

    size_t size() const { return size_; }

    template <class F>
    void for_each(F&& f) const {
        for (uint32_t i : used_) f(slots_[i].key, slots_[i].value);
    }

    // Empties the table; keeps its memory unless it is mostly idle (a burst, then quiet).
    void clear() {
        if (slots_.size() > 1024 && size_ * 16 < slots_.size()) {
            std::vector<Slot>(slots_.size() / 4).swap(slots_);
        } else {
            for (uint32_t i : used_) slots_[i].used = false;
        }
        used_.clear();
        size_ = 0;
    }

private:
    struct Slot {
        Key key{};
        Value value{};
        bool used = false;
    };

    void grow() {
        std::vector<Slot> old(slots_.empty() ? 64 : slots_.size() * 2);
        old.swap(slots_);
        std::vector<uint32_t> old_used;
        old_used.swap(used_);
        size_ = 0;
        const size_t mask = slots_.size() - 1;
        for (uint32_t i : old_used) {
            size_t j = Hash{}(old[i].key) & mask;
            while (slots_[j].used) j = (j + 1) & mask;
            slots_[j] = std::move(old[i]);
            used_.push_back(uint32_t(j));
            ++size_;
        }
    }

    std::vector<Slot> slots_;
    std::vector<uint32_t> used_;  // occupied slots in insertion order, for for_each and clear
    size_t size_ = 0;
};

}  // namespace chihaya
