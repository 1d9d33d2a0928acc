// /readyz's probe: one scrape through the cache driver, with a deadline, plus the storage driver's
// health and the flusher's state.
#include "health/readiness.hpp"

#include "flush/flusher.hpp"
#include "private/directory.hpp"

#include <chihaya/abi.h>

#include <condition_variable>
#include <cstring>
#include <memory>

namespace chihaya {
namespace {

// Shared with the completion: a driver that answers after the deadline still finds it alive.
struct Probe {
    chihaya_scrape_entry entry{};
    chihaya_scrape_request request{};
    chihaya_completion completion{};
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
    chihaya_status status = CHIHAYA_INTERNAL;

    static void complete(void* ctx, chihaya_status status) noexcept {
        auto* holder = static_cast<std::shared_ptr<Probe>*>(ctx);
        std::shared_ptr<Probe> probe = std::move(*holder);
        delete holder;
        std::lock_guard lock(probe->mutex);
        probe->status = status;
        probe->done = true;
        probe->cv.notify_all();
    }
};

}  // namespace

Readiness::Readiness(CacheHandle cache, const Flusher* flusher, const Directory* directory,
                     StorageHealth storage)
    : cache_(cache), storage_(std::move(storage)), flusher_(flusher), directory_(directory) {}

bool Readiness::storage_healthy(std::string& why) const {
    if (!storage_.vtable || !storage_.vtable->health) return true;  // a 2.0/2.1 driver: no word
    char message[CHIHAYA_MESSAGE_CAP] = {0};
    const chihaya_status status = storage_.vtable->health(storage_.instance, message, sizeof message);
    if (status == CHIHAYA_OK) return true;
    message[sizeof message - 1] = '\0';
    why = "storage driver \"" + storage_.name + "\" not ready: " + failure_reason(status) +
          (message[0] ? std::string(" (") + message + ")" : "");
    return false;
}

bool Readiness::probe_cache(std::string& why) const {
    auto probe = std::make_shared<Probe>();
    probe->entry.struct_size = sizeof probe->entry;
    std::memcpy(probe->entry.info_hash, "chihaya-readyz-probe", 20);
    probe->request.struct_size = sizeof probe->request;
    probe->request.count = 1;
    probe->request.entries = &probe->entry;
    probe->request.now_ms = now_ms();
    probe->completion = {sizeof(chihaya_completion), 0, &Probe::complete, new std::shared_ptr<Probe>(probe)};
    cache_.vtable->scrape(cache_.instance, &probe->request, &probe->completion);
    std::unique_lock lock(probe->mutex);
    if (!probe->cv.wait_for(lock, kProbeTimeout, [&] { return probe->done; })) {
        why = std::string("cache driver \"") + cache_.name + "\" did not answer within 2 s";
        return false;
    }
    if (probe->status != CHIHAYA_OK) {
        // The driver's own message may name hosts: fine for the operator's endpoint, and abi.h
        // keeps secrets out of it.
        probe->request.message[CHIHAYA_MESSAGE_CAP - 1] = '\0';
        why = std::string("cache driver \"") + cache_.name + "\" not ready: " + failure_reason(probe->status) +
              (probe->request.message[0] ? std::string(" (") + probe->request.message + ")" : "");
        return false;
    }
    return true;
}

bool Readiness::check(std::string& why) {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (checked_ != std::chrono::steady_clock::time_point{} && now - checked_ < kReuse) {
        why = why_;
        return ready_;
    }
    std::string reason = "ready";
    bool ready = probe_cache(reason);
    if (ready && directory_ && !directory_->loaded()) {
        ready = false;
        reason = "private mode: registry not loaded yet";
    }
    if (ready) ready = storage_healthy(reason);
    if (ready && flusher_ && flusher_->stats().failing.load(std::memory_order_relaxed)) {
        ready = false;
        reason = "storage driver: the last batch could not be applied (see the log); retrying";
    }
    checked_ = std::chrono::steady_clock::now();
    ready_ = ready;
    why_ = reason;
    why = reason;
    return ready;
}

}  // namespace chihaya
