// The calls of one UDP worker that a driver holds past its own call, oldest first, with deadlines.
//
// Only calls that did not complete inline are listed (a networked driver's; the memory driver
// never gets here), so the inline hot path pays nothing. Single-threaded: the worker's thread
// only. Adding, removing and finding the next deadline are O(1): the list is kept in deadline
// order by giving each call at least the deadline of the one before it, which changes anything
// only after a reload shortened the timeout (new calls then wait as long as the older ones, at
// most the old timeout).
#pragma once

#include <cstdint>
#include <vector>

namespace chihaya::udp {

class PendingCalls {
public:
    // Calls are named by their slot index, 0 .. capacity - 1.
    explicit PendingCalls(uint32_t capacity);

    // Lists a call that went asynchronous; its deadline is `deadline_ms` or the newest's.
    void add(uint32_t index, uint64_t deadline_ms);
    // Its done came back: unlisted. Does nothing for a call not listed (expired already).
    void remove(uint32_t index);
    bool contains(uint32_t index) const { return links_[index].listed; }
    bool empty() const { return head_ == kNone; }
    // The oldest call's deadline; only when !empty().
    uint64_t next_deadline() const { return links_[head_].deadline_ms; }

    // Unlists every call whose deadline is at or before `now_ms`, oldest first, and hands each
    // to `expire(index)`.
    template <class Expire>
    void take_due(uint64_t now_ms, Expire&& expire) {
        while (head_ != kNone && links_[head_].deadline_ms <= now_ms) {
            const uint32_t index = head_;
            remove(index);
            expire(index);
        }
    }

private:
    static constexpr uint32_t kNone = UINT32_MAX;
    struct Link {
        uint32_t prev = kNone;
        uint32_t next = kNone;
        uint64_t deadline_ms = 0;
        bool listed = false;
    };
    std::vector<Link> links_;
    uint32_t head_ = kNone;  // oldest
    uint32_t tail_ = kNone;  // newest
};

}  // namespace chihaya::udp
