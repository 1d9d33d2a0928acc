// The flusher: one thread that seals the ledger into batches, spools each durably, and applies the
// spool to the storage in sequence order, retrying with backoff while the storage is unavailable.
//
// THREADS: start/stop on the main thread; everything else on the flusher's own thread. The
// storage's apply is called from that thread only, one batch at a time (abi.h).
// ORDER at shutdown: stop() after the frontends have drained (so every accepted announce is in
// the ledger) and before the storage driver is destroyed.
#pragma once

#include "accounting/ledger.hpp"
#include "config/config.hpp"
#include "flush/spool.hpp"

#include <chihaya/abi.h>

#include <chrono>
#include <array>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

namespace chihaya {

struct StorageHandle {
    const chihaya_storage_vtable* vtable = nullptr;  // with subscribe and apply
    chihaya_instance* instance = nullptr;
};

// What the flusher did, for /metrics and /readyz: written by the flusher's thread, read by the
// admin thread (relaxed atomics; off the request path).
struct FlushStats {
    static constexpr std::array<uint64_t, 8> kBatchBounds = {10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};
    std::array<std::atomic<uint64_t>, kBatchBounds.size() + 1> batch_deltas{};  // histogram buckets
    std::atomic<uint64_t> batch_deltas_sum{0};
    std::array<std::atomic<uint64_t>, 5> applies{};  // by chihaya_status
    std::atomic<uint64_t> apply_ns_sum{0};
    std::atomic<bool> failing{false};  // the last apply failed (storage unreachable or erroring)
};

class Flusher {
public:
    Flusher(Ledger& ledger, Spool& spool, StorageHandle storage, const AccountingConfig& config);
    ~Flusher();

    void start();
    // Seals what is pending, spools it, and applies the spool until it is empty or `grace` has
    // passed; what is left stays spooled for the next start. Joins the thread.
    void stop(std::chrono::milliseconds grace);

    // For tests and the log: batches spooled and not yet applied.
    size_t spool_depth() const;
    // Seconds since the oldest spooled batch was written (0 when none).
    uint64_t oldest_spooled_age_s() const;
    const FlushStats& stats() const { return stats_; }

private:
    void run();
    // Seals the ledger into the spool when there is something to seal. False on an I/O error
    // (the batch is kept in memory and written on the next try).
    bool seal();
    // Applies spooled batches in order; stops at the first failure. True when the spool is empty.
    bool drain(std::chrono::steady_clock::time_point deadline);
    // One batch through the storage; waits for its completion until `deadline`.
    chihaya_status apply(uint64_t sequence, const SealedBatch& batch, std::string& message,
                         std::chrono::steady_clock::time_point deadline);
    void log_failure(const std::string& text);

    Ledger& ledger_;
    Spool& spool_;
    StorageHandle storage_;
    AccountingConfig config_;
    std::optional<SealedBatch> unsealed_;  // taken from the ledger, not yet spooled (disk error)
    std::thread thread_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::chrono::milliseconds backoff_{0};
    std::chrono::steady_clock::time_point last_failure_log_{};
    size_t suppressed_failures_ = 0;
    FlushStats stats_;
};

}  // namespace chihaya
