// io_pool.hpp: the driver's own I/O threads, one io_context each; nothing Asio leaves the plugin.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

namespace chihaya::redis {

// One io_context per thread (not one shared by all): a connection's hiredis context, timers and
// submissions then never need a lock, and threads share nothing but the submission queues.
class IoPool {
public:
    explicit IoPool(unsigned threads) {
        for (unsigned i = 0; i < threads; ++i) {
            contexts_.push_back(std::make_unique<boost::asio::io_context>(1));
            guards_.emplace_back(contexts_.back()->get_executor());
        }
    }
    ~IoPool() { join(); }

    void start() {
        for (auto& io : contexts_) threads_.emplace_back([ctx = io.get()] { ctx->run(); });
    }

    // Lets each loop finish what is queued (shutdown handlers, cancelled waits) and return.
    void join() {
        guards_.clear();
        for (auto& t : threads_)
            if (t.joinable()) t.join();
        threads_.clear();
    }

    // Round-robin, so connections spread over the threads.
    boost::asio::io_context& next() {
        return *contexts_[next_.fetch_add(1, std::memory_order_relaxed) % contexts_.size()];
    }

private:
    std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
    std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards_;
    std::vector<std::thread> threads_;
    std::atomic<unsigned> next_{0};
};

}  // namespace chihaya::redis
