// Logging for the host (backed by Poco::Logger); thread-safe.
#pragma once

#include <string_view>

namespace chihaya::log {

enum class Level { Debug, Info, Warning, Error };
// [log] format: a line for people at a terminal, or one JSON object per line for collectors.
enum class Format { Text, Json };

// Configures the root channel (console, stderr+stdout as before) with a level and a format.
// Call again to change either (live reload): later lines follow the new settings.
void init(Level min_level, Format format = Format::Text);
void set_level(Level min_level);
Level parse_level(std::string_view text, bool* ok);
Format parse_format(std::string_view text, bool* ok);

void write(Level level, std::string_view source, std::string_view message);
inline void debug(std::string_view source, std::string_view m) { write(Level::Debug, source, m); }
inline void info(std::string_view source, std::string_view m) { write(Level::Info, source, m); }
inline void warning(std::string_view source, std::string_view m) { write(Level::Warning, source, m); }
inline void error(std::string_view source, std::string_view m) { write(Level::Error, source, m); }

// Strings that must never reach the log (a Redis password, a database connection string, the
// passkeys the directory knows are not listed here: the tracker never writes them in a message).
// Every line is checked against this list before it is written and the matches replaced with
// "[redacted]". Registered at start-up and on reload; secrets shorter than 4 characters are
// ignored (they would redact ordinary words).
void add_secret(std::string_view secret);


}  // namespace chihaya::log
