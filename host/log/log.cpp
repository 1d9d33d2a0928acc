// Host logging over Poco::Logger: one console channel, a line per event, text or JSON lines.
#include "log/log.hpp"

#include <Poco/AutoPtr.h>
#include <Poco/ConsoleChannel.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/FormattingChannel.h>
#include <Poco/Formatter.h>
#include <Poco/Logger.h>
#include <Poco/Message.h>
#include <Poco/PatternFormatter.h>

#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

namespace chihaya::log {
namespace {

Poco::Message::Priority to_poco(Level level) {
    switch (level) {
        case Level::Debug: return Poco::Message::PRIO_DEBUG;
        case Level::Info: return Poco::Message::PRIO_INFORMATION;
        case Level::Warning: return Poco::Message::PRIO_WARNING;
        case Level::Error: return Poco::Message::PRIO_ERROR;
    }
    return Poco::Message::PRIO_ERROR;
}

const char* level_name(Poco::Message::Priority prio) {
    switch (prio) {
        case Poco::Message::PRIO_DEBUG: return "debug";
        case Poco::Message::PRIO_INFORMATION: return "info";
        case Poco::Message::PRIO_WARNING: return "warning";
        default: return "error";
    }
}

Poco::Logger& root() {
    // Poco::Logger::get takes a global mutex; resolve once.
    static Poco::Logger& logger = Poco::Logger::get("chihaya");
    return logger;
}

void append_json_string(std::string& out, std::string_view in) {
    out += '"';
    for (unsigned char c : in) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += char(c);  // UTF-8 passes through; invalid bytes are the collector's to judge
                }
        }
    }
    out += '"';
}

// {"time":"2026-...Z","level":"info","source":"main","message":"..."}: one object per line.
class JsonFormatter : public Poco::Formatter {
public:
    void format(const Poco::Message& msg, std::string& text) override {
        text += "{\"time\":\"";
        text += Poco::DateTimeFormatter::format(msg.getTime(), "%Y-%m-%dT%H:%M:%S.%iZ");
        text += "\",\"level\":\"";
        text += level_name(msg.getPriority());
        text += "\",\"source\":";
        append_json_string(text, msg.getSource());
        text += ",\"message\":";
        append_json_string(text, msg.getText());
        text += '}';
    }
};

std::shared_mutex g_secrets_mutex;  // written at start-up and reload, read per line
std::vector<std::string> g_secrets;

std::string redact(std::string message) {
    std::shared_lock lock(g_secrets_mutex);
    for (const std::string& secret : g_secrets)
        for (size_t at = message.find(secret); at != std::string::npos; at = message.find(secret, at))
            message.replace(at, secret.size(), "[redacted]");
    return message;
}

}  // namespace

void init(Level min_level, Format format) {
    Poco::AutoPtr<Poco::Formatter> formatter;
    if (format == Format::Json) formatter = new JsonFormatter;
    else formatter = new Poco::PatternFormatter("%Y-%m-%dT%H:%M:%S.%iZ %p %s: %t");
    Poco::AutoPtr<Poco::FormattingChannel> channel(
        new Poco::FormattingChannel(formatter, new Poco::ConsoleChannel));
    root().setChannel(channel);
    root().setLevel(to_poco(min_level));
}

void set_level(Level min_level) { root().setLevel(to_poco(min_level)); }

Level parse_level(std::string_view text, bool* ok) {
    *ok = true;
    if (text == "debug") return Level::Debug;
    if (text == "info") return Level::Info;
    if (text == "warning") return Level::Warning;
    if (text == "error") return Level::Error;
    *ok = false;
    return Level::Info;
}

Format parse_format(std::string_view text, bool* ok) {
    *ok = true;
    if (text == "text") return Format::Text;
    if (text == "json") return Format::Json;
    *ok = false;
    return Format::Text;
}

void add_secret(std::string_view secret) {
    if (secret.size() < 4) return;
    std::unique_lock lock(g_secrets_mutex);
    for (const auto& s : g_secrets)
        if (s == secret) return;
    g_secrets.emplace_back(secret);
}

void write(Level level, std::string_view source, std::string_view message) {
    auto prio = to_poco(level);
    if (!root().is(prio)) return;
    root().log(Poco::Message(std::string(source), redact(std::string(message)), prio));
}

}  // namespace chihaya::log
