// A small HTTP/1.x request-head parser: request line plus the few headers a tracker reads.
//
// Hand-written instead of Beast's request_parser<empty_body>: Beast's basic_fields allocates one
// node per header field, i.e. several heap allocations per request, while a tracker needs only
// the request line, Connection, and the configured real-IP header. This one returns views into
// the session's read buffer and allocates nothing.
#pragma once

#include <cstddef>
#include <string_view>

namespace chihaya::http {

struct RequestHead {
    std::string_view method;
    std::string_view target;
    bool http11 = true;
    bool keep_alive = true;    // after the Connection header, on top of the version's default
    bool has_body = false;     // Content-Length other than 0, or any Transfer-Encoding
    std::string_view real_ip;  // value of the last real-IP header, empty when absent
    size_t size = 0;           // bytes of the head, blank line included (next request starts here)
};

enum class HeadParse { Complete, Incomplete, Malformed };

// Finds where a request head ends, looking at each byte once however the head arrives: a head
// trickled one byte per segment costs what it costs in one segment. (Re-parsing the buffer from
// byte 0 after every read made an 8 KiB head sent byte by byte cost ~30 ms of CPU.) Mirrors
// parse_request_head's framing: leading empty lines are skipped, then the head ends at the first
// empty line ("\n\n" or "\n\r\n"). Reset it when the buffer's start moves (a request consumed).
class HeadScanner {
public:
    // Examines bytes[scanned()..] only; returns the head's size (blank line included) once it is
    // complete, else 0. `bytes` must start with the bytes seen by earlier calls.
    size_t feed(std::string_view bytes);
    size_t scanned() const { return scanned_; }
    void reset() { *this = HeadScanner{}; }

private:
    enum class At : unsigned char { Leading, Line, LineFeed, LineFeedReturn };
    At at_ = At::Leading;
    size_t scanned_ = 0;
};

// Views in `out` point into `bytes`. `real_ip_header` is matched case-insensitively; empty
// disables it.
HeadParse parse_request_head(std::string_view bytes, std::string_view real_ip_header, RequestHead& out);

}  // namespace chihaya::http
