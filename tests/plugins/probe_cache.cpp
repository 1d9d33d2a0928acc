// A cache driver that reports what the host does to it: how often it ticks, whether calls are
// still in flight when it is destroyed, and when its library is unloaded.
//
// Used by tests/integration/test_plugins.py in a live tracker (never installed in plugins/):
//   - every announce answers complete = the number of tick() calls so far, so a client sees
//     whether the host runs its housekeeping at all;
//   - with hold_ms > 0 an announce completes from the driver's own thread hold_ms later, so a
//     test can have a request in flight when SIGTERM arrives;
//   - destroy logs "probe: destroyed, N call(s) in flight, T tick(s)" and the library's unload
//     writes "probe: library unloaded" to stderr, so the log shows the shutdown order.
#include <chihaya/driver.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace {

class ProbeCache {
public:
    static constexpr chihaya_config_key config_keys[] = {
        chihaya::config_int("hold_ms", "0", 0, 10000,
                            "announces complete from the driver's thread this much later (0: inline)"),
    };

    ProbeCache(const chihaya::Host& host, const chihaya::Config& config)
        : host_(host), hold_(std::chrono::milliseconds(config.integer("hold_ms"))) {
        if (hold_.count() > 0) completer_ = std::thread([this] { complete_held(); });
    }

    ~ProbeCache() {
        size_t in_flight;
        {
            std::lock_guard lock(mutex_);
            in_flight = held_.size();
            stopping_ = true;
        }
        wake_.notify_all();
        if (completer_.joinable()) completer_.join();  // fails what is still held, exactly once
        host_.info("probe: destroyed, " + std::to_string(in_flight) + " call(s) in flight, " +
                   std::to_string(ticks_.load()) + " tick(s)");
    }

    void announce(const chihaya_announce_request&, chihaya_announce_result& result,
                  chihaya::Completion done) {
        result.complete = ticks_.load();
        result.incomplete = 0;
        result.downloaded = 0;
        result.peer_count = 0;
        if (hold_.count() == 0) {
            done(CHIHAYA_OK);
            return;
        }
        {
            std::lock_guard lock(mutex_);
            held_.push_back({std::chrono::steady_clock::now() + hold_, done});
        }
        wake_.notify_all();
        host_.info("probe: holding an announce for " + std::to_string(hold_.count()) + " ms");
    }

    void scrape(chihaya_scrape_request&, chihaya::Completion done) { done(CHIHAYA_OK); }

    void tick(uint64_t) { ticks_.fetch_add(1); }

private:
    struct Held {
        std::chrono::steady_clock::time_point due;
        chihaya::Completion done;
    };

    // Completes each held call when it is due; at destroy, fails the rest (the host must have
    // drained them before, which is what the in-flight count in the destroy line shows).
    void complete_held() {
        std::unique_lock lock(mutex_);
        for (;;) {
            if (stopping_) {
                std::deque<Held> left;
                left.swap(held_);
                lock.unlock();
                for (Held& h : left) h.done(CHIHAYA_UNAVAILABLE);
                return;
            }
            if (held_.empty()) {
                wake_.wait(lock);
                continue;
            }
            const auto due = held_.front().due;
            if (std::chrono::steady_clock::now() < due) {
                wake_.wait_until(lock, due);
                continue;
            }
            Held h = held_.front();
            held_.pop_front();
            lock.unlock();
            h.done(CHIHAYA_OK);
            lock.lock();
        }
    }

    chihaya::Host host_;
    std::chrono::milliseconds hold_;
    std::atomic<uint32_t> ticks_{0};
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Held> held_;
    bool stopping_ = false;
    std::thread completer_;
};

// Runs when the host unloads the library (or at exit, if it never does). stderr directly: the
// host's logger may be gone by then, and one write keeps the line whole.
__attribute__((destructor)) void on_unload() {
    static const char line[] = "probe: library unloaded\n";
    (void)!::write(2, line, sizeof line - 1);
}

}  // namespace

CHIHAYA_REGISTER_CACHE("probe", ProbeCache)
