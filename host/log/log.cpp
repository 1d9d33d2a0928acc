// Host logging over Poco::Logger: one console channel, a line per event with time and source.
#include "log/log.hpp"

#include <Poco/AutoPtr.h>
#include <Poco/ConsoleChannel.h>
#include <Poco/FormattingChannel.h>
#include <Poco/Logger.h>
#include <Poco/Message.h>
#include <Poco/PatternFormatter.h>

#include <string>

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

Poco::Logger& root() {
    // Poco::Logger::get takes a global mutex; resolve once.
    static Poco::Logger& logger = Poco::Logger::get("chihaya");
    return logger;
}

}  // namespace

void init(Level min_level) {
    Poco::AutoPtr<Poco::PatternFormatter> format(
        new Poco::PatternFormatter("%Y-%m-%dT%H:%M:%S.%iZ %p %s: %t"));
    Poco::AutoPtr<Poco::FormattingChannel> channel(
        new Poco::FormattingChannel(format, new Poco::ConsoleChannel));
    root().setChannel(channel);
    root().setLevel(to_poco(min_level));
}

Level parse_level(std::string_view text, bool* ok) {
    *ok = true;
    if (text == "debug") return Level::Debug;
    if (text == "info") return Level::Info;
    if (text == "warning") return Level::Warning;
    if (text == "error") return Level::Error;
    *ok = false;
    return Level::Info;
}

void write(Level level, std::string_view source, std::string_view message) {
    auto prio = to_poco(level);
    if (!root().is(prio)) return;
    root().log(Poco::Message(std::string(source), std::string(message), prio));
}

}  // namespace chihaya::log
