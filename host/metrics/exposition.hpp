// Prometheus text exposition format 0.0.4: HELP/TYPE once per family, then its samples.
#pragma once

#include <string>
#include <string_view>
#include <initializer_list>
#include <utility>

namespace chihaya::metrics {

using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

class Exposition {
public:
    // Starts a family: `type` is counter, gauge or histogram. Names follow Prometheus
    // conventions: chihaya_ prefix, base units (seconds, bytes), _total on counters.
    void family(std::string_view name, std::string_view type, std::string_view help);
    void sample(std::string_view name, Labels labels, double value);
    // `extra` is one more label appended to `labels` (histogram buckets' le).
    void sample(std::string_view name, Labels labels, std::pair<std::string_view, std::string_view> extra,
                double value);

    const std::string& text() const { return out_; }

private:
    void labels(Labels labels, const std::pair<std::string_view, std::string_view>* extra);
    std::string out_;
};

// A label value with \, " and newline escaped as the format requires.
std::string escape_label(std::string_view value);

}  // namespace chihaya::metrics
