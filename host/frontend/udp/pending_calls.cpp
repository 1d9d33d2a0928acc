// A doubly linked list over slot indices, in deadline order; the reasons are in the header.
#include "frontend/udp/pending_calls.hpp"

#include <algorithm>

namespace chihaya::udp {

PendingCalls::PendingCalls(uint32_t capacity) : links_(capacity) {}

void PendingCalls::add(uint32_t index, uint64_t deadline_ms) {
    Link& link = links_[index];
    if (link.listed) remove(index);  // not expected; keeps the list sound if it happens
    link.deadline_ms = tail_ == kNone ? deadline_ms : std::max(deadline_ms, links_[tail_].deadline_ms);
    link.prev = tail_;
    link.next = kNone;
    link.listed = true;
    if (tail_ == kNone) head_ = index;
    else links_[tail_].next = index;
    tail_ = index;
}

void PendingCalls::remove(uint32_t index) {
    Link& link = links_[index];
    if (!link.listed) return;
    if (link.prev == kNone) head_ = link.next;
    else links_[link.prev].next = link.next;
    if (link.next == kNone) tail_ = link.prev;
    else links_[link.next].prev = link.prev;
    link.prev = link.next = kNone;
    link.listed = false;
}

}  // namespace chihaya::udp
