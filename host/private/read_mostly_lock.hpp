// A reader-writer lock for data read on every announce and written a few times a second (the
// private-mode directory): a read is one compare-and-swap and one atomic decrement. glibc's
// pthread_rwlock (std::shared_mutex) cost about 135 instructions per read lock and unlock in a
// profile, three times per private announce.
#pragma once

#include <sched.h>

#include <atomic>
#include <cstdint>

namespace chihaya {

// Writers announce themselves first (kWriterWaiting), so that a steady stream of readers cannot
// starve the storage driver's thread; readers arriving then wait for the write to finish. Both
// sides spin: a writer holds the lock for one hash-map update, microseconds.
// Satisfies the SharedLockable and Lockable requirements (std::shared_lock, std::unique_lock).
class ReadMostlyLock {
public:
    void lock_shared() noexcept {
        for (;;) {
            int32_t s = state_.load(std::memory_order_relaxed);
            if (s >= 0 && (s & kWriterWaiting) == 0 &&
                state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire, std::memory_order_relaxed))
                return;
            pause();
        }
    }
    void unlock_shared() noexcept { state_.fetch_sub(1, std::memory_order_release); }

    void lock() noexcept {
        for (;;) {
            int32_t s = state_.load(std::memory_order_relaxed);
            if (s >= 0 && (s & kWriterWaiting) == 0 &&
                state_.compare_exchange_weak(s, s | kWriterWaiting, std::memory_order_relaxed))
                break;
            pause();  // another writer is waiting or writing
        }
        for (;;) {  // the readers in flight leave; new ones wait
            int32_t expected = kWriterWaiting;
            if (state_.compare_exchange_weak(expected, kWriting, std::memory_order_acquire,
                                             std::memory_order_relaxed))
                return;
            pause();
        }
    }
    void unlock() noexcept { state_.store(0, std::memory_order_release); }

private:
    static constexpr int32_t kWriterWaiting = 1 << 30;
    static constexpr int32_t kWriting = -1;
    // Spins a little, then yields: a writer preempted while holding the lock (a full reload
    // writes a million rows) must not have every worker spin through its scheduler quantum.
    static void pause() noexcept {
        thread_local unsigned spins = 0;
        if (++spins % 64 == 0) sched_yield();
        else __builtin_ia32_pause();
    }

    std::atomic<int32_t> state_{0};  // readers, | kWriterWaiting, or kWriting
};

}  // namespace chihaya
