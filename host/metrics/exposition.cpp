// Prometheus text exposition: escaping and number formatting.
#include "metrics/exposition.hpp"

#include <cmath>
#include <cstdio>

namespace chihaya::metrics {

std::string escape_label(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

void Exposition::family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;  // our own static text: no backslashes or newlines
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
}

void Exposition::labels(Labels labels, const std::pair<std::string_view, std::string_view>* extra) {
    if (labels.size() == 0 && !extra) return;
    out_ += '{';
    bool first = true;
    auto put = [&](std::string_view k, std::string_view v) {
        if (!first) out_ += ',';
        first = false;
        out_ += k;
        out_ += "=\"";
        out_ += escape_label(v);
        out_ += '"';
    };
    for (const auto& [k, v] : labels) put(k, v);
    if (extra) put(extra->first, extra->second);
    out_ += '}';
}

namespace {
void number(std::string& out, double value) {
    char buf[64];
    if (std::isinf(value)) {
        out += value > 0 ? "+Inf" : "-Inf";
        return;
    }
    if (value == std::floor(value) && std::fabs(value) < 1e15) std::snprintf(buf, sizeof buf, "%.0f", value);
    else std::snprintf(buf, sizeof buf, "%.9g", value);
    out += buf;
}
}  // namespace

void Exposition::sample(std::string_view name, Labels l, double value) {
    out_ += name;
    labels(l, nullptr);
    out_ += ' ';
    number(out_, value);
    out_ += '\n';
}

void Exposition::sample(std::string_view name, Labels l, std::pair<std::string_view, std::string_view> extra,
                        double value) {
    out_ += name;
    labels(l, &extra);
    out_ += ' ';
    number(out_, value);
    out_ += '\n';
}

}  // namespace chihaya::metrics
