// The process's metrics: one WorkerMetrics per worker thread plus collectors run at scrape time.
#pragma once

#include "metrics/exposition.hpp"
#include "metrics/worker_metrics.hpp"

#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace chihaya::metrics {

class Registry {
public:
    // A worker's counters; call before the worker starts (the address stays valid).
    WorkerMetrics& add_worker();
    // Writes more families at every scrape (gauges read from the drivers, the flusher, ...).
    // Runs on the admin thread; must be thread-safe against the workers.
    void add_collector(std::function<void(Exposition&)> collector);
    // The whole exposition: the workers' counters summed, then every collector's families.
    std::string render() const;

private:
    std::deque<WorkerMetrics> workers_;
    std::vector<std::function<void(Exposition&)>> collectors_;
    mutable std::mutex render_mutex_;  // one scrape at a time (collectors may cache)
};

// The request, latency, limit and inline driver-call families summed over `workers` and shared().
void write_worker_families(Exposition& out, const std::deque<WorkerMetrics>& workers);

}  // namespace chihaya::metrics
