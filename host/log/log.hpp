// Logging for the host (backed by Poco::Logger); thread-safe.
#pragma once

#include <string_view>

namespace chihaya::log {

enum class Level { Debug, Info, Warning, Error };

// Configures the root channel once at start-up (console, formatted with time and source).
void init(Level min_level);
Level parse_level(std::string_view text, bool* ok);

void write(Level level, std::string_view source, std::string_view message);
inline void debug(std::string_view source, std::string_view m) { write(Level::Debug, source, m); }
inline void info(std::string_view source, std::string_view m) { write(Level::Info, source, m); }
inline void warning(std::string_view source, std::string_view m) { write(Level::Warning, source, m); }
inline void error(std::string_view source, std::string_view m) { write(Level::Error, source, m); }

}  // namespace chihaya::log
