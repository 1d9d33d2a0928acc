// Seal → spool → apply, on the flusher's thread.
#include "flush/flusher.hpp"

#include "log/log.hpp"

#include <unistd.h>

#include <memory>

namespace chihaya {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPoll = std::chrono::milliseconds(100);        // max_batch is checked this often
constexpr auto kBackoffMin = std::chrono::milliseconds(500);
constexpr auto kBackoffMax = std::chrono::milliseconds(30000);
constexpr auto kFailureLogEvery = std::chrono::seconds(10);

// One apply in flight. Shared with the completion: if the storage misses the deadline the
// flusher gives up waiting, and the late `done` must still find live memory.
struct ApplyCall {
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
    chihaya_status status = CHIHAYA_INTERNAL;
    chihaya_delta_batch batch{};
    chihaya_completion completion{};
    SealedBatch data;
    std::string host_id;

    static void complete(void* ctx, chihaya_status status) noexcept {
        auto* self = static_cast<std::shared_ptr<ApplyCall>*>(ctx);
        std::shared_ptr<ApplyCall> call = std::move(*self);
        delete self;
        std::lock_guard lock(call->mutex);
        call->done = true;
        call->status = status;
        call->cv.notify_all();
    }
};

}  // namespace

Flusher::Flusher(Ledger& ledger, Spool& spool, StorageHandle storage, const AccountingConfig& config)
    : ledger_(ledger), spool_(spool), storage_(storage), config_(config) {}

Flusher::~Flusher() {
    if (thread_.joinable()) stop(std::chrono::milliseconds(0));
}

void Flusher::start() {
    thread_ = std::thread([this] { run(); });
}

void Flusher::stop(std::chrono::milliseconds grace) {
    {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    // The frontends have drained: whatever the ledger holds now is everything that was accepted.
    const auto deadline = Clock::now() + grace;
    seal();
    bool empty = drain(deadline);
    const size_t left = spool_.pending().size();
    if (empty)
        log::info("flush", "all accounting applied to the storage");
    else
        log::warning("flush", std::to_string(left) + " batch(es) stay spooled in " + spool_.dir() +
                                  "; they are applied first at the next start");
}

size_t Flusher::spool_depth() const { return spool_.pending().size(); }

uint64_t Flusher::oldest_spooled_age_s() const { return spool_.oldest_age_s(); }

void Flusher::run() {
    // A restart applies what the last run spooled before anything new (sequence order).
    auto next_flush = Clock::now();
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            auto until = std::min(next_flush, Clock::now() + kPoll);
            wake_.wait_until(lock, until, [&] { return stopping_; });
            if (stopping_) return;
        }
        ledger_.prepare_spares();
        const auto now = Clock::now();
        if (now < next_flush && ledger_.pending() < config_.max_batch) continue;
        seal();
        if (drain(Clock::now() + std::chrono::seconds(60))) {
            backoff_ = std::chrono::milliseconds(0);
            next_flush = Clock::now() + std::chrono::milliseconds(config_.flush_interval_ms);
        } else {
            backoff_ = std::min(kBackoffMax, std::max(kBackoffMin, backoff_ * 2));
            next_flush = Clock::now() + std::min<std::chrono::milliseconds>(
                                            backoff_, std::chrono::milliseconds(config_.flush_interval_ms) * 4);
        }
    }
}

bool Flusher::seal() {
    try {
        if (!unsealed_) {
            SealedBatch batch = ledger_.take();
            if (batch.empty()) {
                for (const auto& file : batch.journal_files) ::unlink(file.c_str());
                return true;
            }
            unsealed_ = std::move(batch);
        }
        uint64_t sequence = spool_.write(*unsealed_);
        log::debug("flush", "sealed batch " + std::to_string(sequence) + ": " +
                                std::to_string(unsealed_->deltas.size()) + " peer deltas");
        // In the spool now, which names the generation: its journal files have done their job.
        for (const auto& file : unsealed_->journal_files) ::unlink(file.c_str());
        unsealed_.reset();
        return true;
    } catch (const std::exception& e) {
        // Kept in memory: the next seal writes it (merged order is kept, it has no sequence yet).
        log_failure(std::string("cannot spool a batch: ") + e.what());
        return false;
    }
}

bool Flusher::drain(Clock::time_point deadline) {
    for (uint64_t sequence : spool_.pending()) {
        // A storage that applies inline (postgres) never waits on the deadline inside apply():
        // check it between batches, so a shutdown's grace period holds.
        if (Clock::now() >= deadline) return false;
        SealedBatch batch;
        std::string why;
        if (!spool_.read(sequence, batch, why)) {
            log::error("flush", why);
            continue;
        }
        std::string message;
        const auto started = Clock::now();
        chihaya_status status = apply(sequence, batch, message, deadline);
        {
            const uint64_t deltas = batch.deltas.size();
            size_t b = 0;
            while (b < FlushStats::kBatchBounds.size() && deltas > FlushStats::kBatchBounds[b]) ++b;
            stats_.batch_deltas[b].fetch_add(1, std::memory_order_relaxed);
            stats_.batch_deltas_sum.fetch_add(deltas, std::memory_order_relaxed);
            stats_.applies[size_t(status) < 5 ? size_t(status) : size_t(CHIHAYA_INTERNAL)].fetch_add(1, std::memory_order_relaxed);
            stats_.apply_ns_sum.fetch_add(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - started).count()),
                                          std::memory_order_relaxed);
            stats_.failing.store(status != CHIHAYA_OK, std::memory_order_relaxed);
        }
        if (status != CHIHAYA_OK) {
            log_failure("batch " + std::to_string(sequence) + " not applied (" +
                        (status == CHIHAYA_UNAVAILABLE ? "storage unavailable" : "storage error") +
                        (message.empty() ? "" : ": " + message) + "); kept in the spool, retrying");
            return false;
        }
        try {
            spool_.applied(sequence, batch.journal_generation);
        } catch (const std::exception& e) {
            // Applied but not forgotten: the storage will skip it when it is sent again.
            log_failure(e.what());
            return false;
        }
        if (suppressed_failures_ > 0 || last_failure_log_ != Clock::time_point{}) {
            log::info("flush", "storage is applying batches again");
            suppressed_failures_ = 0;
            last_failure_log_ = {};
        }
    }
    return unsealed_ == std::nullopt;
}

chihaya_status Flusher::apply(uint64_t sequence, const SealedBatch& data, std::string& message,
                              Clock::time_point deadline) {
    auto call = std::make_shared<ApplyCall>();
    call->data = data;
    call->host_id = spool_.host_id();
    chihaya_delta_batch& b = call->batch;
    b.struct_size = sizeof b;
    b.delta_count = uint32_t(call->data.deltas.size());
    b.host_id = {call->host_id.data(), call->host_id.size()};
    b.sequence = sequence;
    b.deltas = call->data.deltas.data();
    b.torrent_count = uint32_t(call->data.torrents.size());
    b.torrents = call->data.torrents.data();
    b.message[0] = '\0';
    call->completion = {sizeof(chihaya_completion), 0, &ApplyCall::complete,
                        new std::shared_ptr<ApplyCall>(call)};
    storage_.vtable->apply(storage_.instance, &b, &call->completion);

    std::unique_lock lock(call->mutex);
    if (!call->cv.wait_until(lock, deadline, [&] { return call->done; })) {
        message = "no answer before the deadline";
        return CHIHAYA_UNAVAILABLE;
    }
    message = b.message;
    return call->status;
}

void Flusher::log_failure(const std::string& text) {
    const auto now = Clock::now();
    if (now - last_failure_log_ < kFailureLogEvery) {
        ++suppressed_failures_;
        return;
    }
    std::string suffix = suppressed_failures_ ? " (" + std::to_string(suppressed_failures_) + " more since)" : "";
    log::error("flush", text + suffix);
    last_failure_log_ = now;
    suppressed_failures_ = 0;
}

}  // namespace chihaya
