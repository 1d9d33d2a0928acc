// The ledger shard's lock: held for one table update and one journal append, a few hundred
// nanoseconds, by whichever worker records a report.
//
// Why not std::mutex: its unlock is a locked instruction, a full fence that waits until the
// stores just made (the ledger slot, the journal's mmap'd record: cache misses) have drained.
// In a profile of private announces the unlock alone was 1.3-1.8 % of the worker's time. Here the
// unlock is a plain release store, which on x86 waits for nothing.
#pragma once

#include <sched.h>

#include <atomic>

namespace chihaya {

// Satisfies Lockable (std::lock_guard). Spins with a pause, yielding now and then, so that a
// holder preempted mid-update (or making the next journal segment, rarely: ~100 us) does not
// have the others burn their scheduler quantum.
class SpinLock {
public:
    void lock() noexcept {
        for (unsigned spins = 1;; ++spins) {
            if (!locked_.exchange(true, std::memory_order_acquire)) return;
            while (locked_.load(std::memory_order_relaxed)) {
                if (++spins % 64 == 0) sched_yield();
                else __builtin_ia32_pause();
            }
        }
    }
    bool try_lock() noexcept { return !locked_.exchange(true, std::memory_order_acquire); }
    void unlock() noexcept { locked_.store(false, std::memory_order_release); }

private:
    std::atomic<bool> locked_{false};
};

}  // namespace chihaya
