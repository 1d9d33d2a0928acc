// A cache driver that breaks the completion rules on request, chosen by the first byte of the
// (first) info_hash, for the host's per-call deadline and its double-`done` check:
//   0x01  never calls done;
//   0x02  calls done late_ms later from its own thread, after writing the result, the peers
//         buffer or the scrape counts (memory the host must keep valid until that done);
//   0x03  calls done inline, then again stray_ms later from its own thread (a stray second done,
//         arriving when the host has reused the call for the next request);
//   other completes inline with complete = 1, like a healthy in-memory store.
// Used by tests/integration/test_deadline.py; never installed. At destroy the late calls still
// held are completed (CHIHAYA_UNAVAILABLE) and the stray ones dropped: no done after destroy.
#include <chihaya/driver.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

class SlowCache {
public:
    static constexpr chihaya_config_key config_keys[] = {
        chihaya::config_int("late_ms", "1500", 0, 60000, "how much later info_hash 0x02.. completes"),
        chihaya::config_int("stray_ms", "300", 0, 60000, "how much later info_hash 0x03.. completes again"),
    };

    SlowCache(const chihaya::Host&, const chihaya::Config& config)
        : late_(config.integer("late_ms")), stray_(config.integer("stray_ms")),
          thread_([this] { run(); }) {}

    ~SlowCache() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        thread_.join();
    }

    void announce(const chihaya_announce_request& request, chihaya_announce_result& result,
                  chihaya::Completion done) {
        result.complete = 1;
        result.incomplete = result.downloaded = result.peer_count = 0;
        switch (request.info_hash[0]) {
            case 0x01: return;
            case 0x02: return later(late_, {done, &result, nullptr, 0, true});
            case 0x03:
                done(CHIHAYA_OK);
                return later(stray_, {done, nullptr, nullptr, 0, false});
            default: done(CHIHAYA_OK);
        }
    }

    void scrape(chihaya_scrape_request& request, chihaya::Completion done) {
        switch (CHIHAYA_AT(chihaya_scrape_entry, request.entries, 0)->info_hash[0]) {
            case 0x01: return;
            case 0x02: return later(late_, {done, nullptr, request.entries, request.count, true});
            case 0x03:
                done(CHIHAYA_OK);
                return later(stray_, {done, nullptr, nullptr, 0, false});
            default: done(CHIHAYA_OK);
        }
    }

private:
    struct Due {
        chihaya::Completion done;
        chihaya_announce_result* result;  // late announce: written just before done
        chihaya_scrape_entry* entries;    // late scrape: likewise
        uint32_t count;
        bool late;                        // false: a stray second done
        Clock::time_point at{};
    };

    void later(int64_t ms, Due due) {
        due.at = Clock::now() + std::chrono::milliseconds(ms);
        {
            std::lock_guard lock(mutex_);
            queue_.push_back(due);
        }
        wake_.notify_all();
    }

    // The host's memory, written the way a networked store's reply is: after the call returned,
    // from another thread, possibly after the host's deadline.
    static void write_result(const Due& due) {
        if (due.result) {
            due.result->complete = 7;
            due.result->incomplete = 8;
            if (due.result->peers_capacity > 0) {
                std::memset(due.result->peers, 0x5a, 6);
                due.result->peer_count = 1;
            }
        }
        for (uint32_t i = 0; i < due.count; ++i) CHIHAYA_AT(chihaya_scrape_entry, due.entries, i)->complete = 7;
    }

    void run() {
        std::unique_lock lock(mutex_);
        for (;;) {
            if (stopping_) {
                std::vector<Due> left;
                left.swap(queue_);
                lock.unlock();
                for (const Due& due : left)
                    if (due.late) due.done(CHIHAYA_UNAVAILABLE);
                return;
            }
            auto next = std::min_element(queue_.begin(), queue_.end(),
                                         [](const Due& a, const Due& b) { return a.at < b.at; });
            if (next == queue_.end()) {
                wake_.wait(lock);
                continue;
            }
            if (const Clock::time_point at = next->at; Clock::now() < at) {
                // A copy: the wait lets go of the lock, and an announce pushed meanwhile may
                // reallocate queue_ under `next` (ASan caught the read of the freed element).
                wake_.wait_until(lock, at);
                continue;
            }
            const Due due = *next;
            queue_.erase(next);
            lock.unlock();
            if (due.late) write_result(due);
            due.done(CHIHAYA_OK);
            lock.lock();
        }
    }

    const int64_t late_;
    const int64_t stray_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::vector<Due> queue_;
    bool stopping_ = false;
    std::thread thread_;  // last: started once everything it uses exists
};

}  // namespace

CHIHAYA_REGISTER_CACHE("slow", SlowCache)
