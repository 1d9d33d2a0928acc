// A small HTTP/1.x request-head parser: request line plus the few headers a tracker reads.
#include "frontend/http/request_head.hpp"

namespace chihaya::http {
namespace {

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Connection is a comma-separated token list ("keep-alive, Upgrade"); the last close/keep-alive
// token wins.
void apply_connection(std::string_view value, bool& keep_alive) {
    while (!value.empty()) {
        const size_t comma = value.find(',');
        std::string_view token = trim(value.substr(0, comma));
        value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
        if (iequals(token, "close")) keep_alive = false;
        else if (iequals(token, "keep-alive")) keep_alive = true;
    }
}

}  // namespace

size_t HeadScanner::feed(std::string_view bytes) {
    for (; scanned_ < bytes.size(); ++scanned_) {
        const char c = bytes[scanned_];
        switch (at_) {
            case At::Leading:
                if (c != '\r' && c != '\n') at_ = At::Line;
                break;
            case At::Line:
                if (c == '\n') at_ = At::LineFeed;
                break;
            case At::LineFeed:
                if (c == '\n') return ++scanned_;
                at_ = c == '\r' ? At::LineFeedReturn : At::Line;
                break;
            case At::LineFeedReturn:
                if (c == '\n') return ++scanned_;
                // "\n\r\r": a line that is not empty (parse_request_head refuses it later).
                at_ = At::Line;
                break;
        }
    }
    return 0;
}

HeadParse parse_request_head(std::string_view bytes, std::string_view real_ip_header, RequestHead& out) {
    out = RequestHead{};
    size_t pos = 0;
    // RFC 9112 2.2: ignore empty lines before a request line (some clients end a body-less
    // request with an extra CRLF, which then leads the next pipelined request).
    while (pos < bytes.size() && (bytes[pos] == '\r' || bytes[pos] == '\n')) ++pos;

    bool request_line = true;
    bool keep_alive_set = false, keep_alive = true;
    while (true) {
        const size_t nl = bytes.find('\n', pos);
        if (nl == std::string_view::npos) return HeadParse::Incomplete;
        std::string_view line = bytes.substr(pos, nl - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        pos = nl + 1;

        if (request_line) {
            request_line = false;
            const size_t sp1 = line.find(' ');
            const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
            if (sp2 == std::string_view::npos || sp1 == 0 || sp2 == sp1 + 1) return HeadParse::Malformed;
            out.method = line.substr(0, sp1);
            out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
            const std::string_view version = line.substr(sp2 + 1);
            if (version == "HTTP/1.1") out.http11 = true;
            else if (version == "HTTP/1.0") out.http11 = false;
            else return HeadParse::Malformed;
            continue;
        }
        if (line.empty()) break;

        const size_t colon = line.find(':');
        // Obsolete line folding (leading whitespace) and names with spaces are refused: both are
        // request-smuggling vectors and no tracker client sends them.
        if (colon == std::string_view::npos || colon == 0 || line[0] == ' ' || line[0] == '\t')
            return HeadParse::Malformed;
        const std::string_view name = line.substr(0, colon);
        if (name.find_first_of(" \t") != std::string_view::npos) return HeadParse::Malformed;
        const std::string_view value = trim(line.substr(colon + 1));

        if (iequals(name, "connection")) {
            bool ka = out.http11;
            if (keep_alive_set) ka = keep_alive;
            apply_connection(value, ka);
            keep_alive = ka;
            keep_alive_set = true;
        } else if (iequals(name, "content-length")) {
            if (value.empty() || value.find_first_not_of("0123456789") != std::string_view::npos)
                return HeadParse::Malformed;
            if (value.find_first_not_of('0') != std::string_view::npos) out.has_body = true;
        } else if (iequals(name, "transfer-encoding")) {
            out.has_body = true;
        } else if (!real_ip_header.empty() && iequals(name, real_ip_header)) {
            out.real_ip = value;
        }
    }
    out.keep_alive = keep_alive_set ? keep_alive : out.http11;
    out.size = pos;
    return HeadParse::Complete;
}

}  // namespace chihaya::http
