// Fuzz target: the bencode writers, round trip. Responses built from the input (counts, peers of
// either family, compact or dictionary model, warnings, failure reasons of any bytes, scrapes of
// many hashes) are written, then read back by a strict decoder written here (canonical integers,
// keys in byte order, nothing after the end) and compared with what went in. A buffer shorter than
// the bound must give 0 or a complete, valid document, never a torn one.
#include "frontend/http/bencode.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace chihaya;
using namespace chihaya::http;

namespace {

[[noreturn]] void fail() { std::abort(); }
void check(bool ok) {
    if (!ok) fail();
}

struct Value {
    enum Kind { Int, Str, List, Dict } kind = Int;
    int64_t i = 0;
    std::string s;
    std::vector<Value> list;
    std::map<std::string, Value> dict;
};

// Strict BEP 3 decoding; aborts on anything a conforming writer could not have produced.
struct Decoder {
    std::string_view in;
    size_t pos = 0;

    char peek() const { return pos < in.size() ? in[pos] : '\0'; }
    int64_t digits(char end) {
        const size_t start = pos;
        bool negative = peek() == '-';
        if (negative) ++pos;
        check(pos < in.size() && in[pos] >= '0' && in[pos] <= '9');
        check(!(in[pos] == '0' && pos + 1 < in.size() && in[pos + 1] != end));  // no leading zero
        check(!(negative && in[pos] == '0'));                                  // no -0
        int64_t v = 0;
        while (pos < in.size() && in[pos] >= '0' && in[pos] <= '9') {
            check(v < (int64_t(1) << 58));
            v = v * 10 + (in[pos++] - '0');
        }
        check(pos < in.size() && in[pos] == end && pos > start);
        ++pos;
        return negative ? -v : v;
    }
    Value value() {
        Value v;
        const char c = peek();
        if (c == 'i') {
            ++pos;
            v.kind = Value::Int;
            v.i = digits('e');
        } else if (c >= '0' && c <= '9') {
            v.kind = Value::Str;
            const int64_t n = digits(':');
            check(n >= 0 && size_t(n) <= in.size() - pos);
            v.s.assign(in.substr(pos, size_t(n)));
            pos += size_t(n);
        } else if (c == 'l') {
            ++pos;
            v.kind = Value::List;
            while (peek() != 'e') v.list.push_back(value());
            ++pos;
        } else if (c == 'd') {
            ++pos;
            v.kind = Value::Dict;
            std::string previous;
            bool first = true;
            while (peek() != 'e') {
                Value key = value();
                check(key.kind == Value::Str);
                check(first || key.s > previous);  // sorted, no duplicates
                first = false;
                previous = key.s;
                v.dict.emplace(key.s, value());
            }
            ++pos;
        } else {
            fail();
        }
        return v;
    }
};

Value decode(const char* p, size_t n) {
    Decoder d{std::string_view(p, n)};
    Value v = d.value();
    check(d.pos == n);  // nothing after the document
    check(v.kind == Value::Dict);
    return v;
}

const Value& at(const Value& dict, const char* key) {
    auto it = dict.dict.find(key);
    check(it != dict.dict.end());
    return it->second;
}

struct Input {
    const uint8_t* data;
    size_t size;
    uint8_t byte() { return size ? (--size, *data++) : 0; }
    uint32_t u32() { return uint32_t(byte()) | uint32_t(byte()) << 8 | uint32_t(byte()) << 16 | uint32_t(byte()) << 24; }
};

void announce(Input& in) {
    AnnounceResponse r;
    r.complete = in.u32();
    r.incomplete = in.u32();
    r.downloaded = in.u32();
    r.interval = in.u32();
    r.min_interval = in.u32();
    r.peer_count = in.byte() % 40;
    static const char* warnings[] = {nullptr, "", "a warning", "e:4:x"};
    r.warning = warnings[in.byte() % 4];
    const chihaya_family family = in.byte() % 2 ? CHIHAYA_IPV6 : CHIHAYA_IPV4;
    const bool compact = in.byte() % 2;
    const size_t entry = Endpoint::compact_size(family);
    std::vector<uint8_t> peers(entry * r.peer_count);
    for (auto& b : peers) b = in.byte();
    size_t cap = announce_bound(r.peer_count) + (r.warning ? warning_bound(std::strlen(r.warning)) : 0);
    const bool short_buffer = in.byte() % 4 == 0;
    if (short_buffer) cap = in.u32() % (cap + 1);
    auto buf = std::make_unique<char[]>(cap);  // exact size: ASan sees a write past cap
    const size_t n = write_announce(std::span<char>(buf.get(), cap), r, family, peers.data(), compact);
    if (n == 0) {
        check(short_buffer);  // the bound is a promise
        return;
    }
    check(n <= cap);
    const Value v = decode(buf.get(), n);
    check(at(v, "complete").i == r.complete && at(v, "incomplete").i == r.incomplete &&
          at(v, "downloaded").i == r.downloaded && at(v, "interval").i == r.interval &&
          at(v, "min interval").i == r.min_interval);
    if (r.warning) check(at(v, "warning message").s == r.warning);
    if (compact) {
        const Value& p = at(v, family == CHIHAYA_IPV4 ? "peers" : "peers6");
        check(p.kind == Value::Str && p.s == std::string(peers.begin(), peers.end()));
    } else {
        const Value& list = at(v, "peers");
        check(list.kind == Value::List && list.list.size() == r.peer_count);
        for (uint32_t i = 0; i < r.peer_count; ++i) {
            const uint8_t* e = peers.data() + i * entry;
            uint8_t addr[16];
            check(inet_pton(family == CHIHAYA_IPV4 ? AF_INET : AF_INET6, at(list.list[i], "ip").s.c_str(), addr) == 1);
            check(std::memcmp(addr, e, entry - 2) == 0);
            check(at(list.list[i], "port").i == (e[entry - 2] << 8 | e[entry - 1]));
        }
    }
}

void failure(Input& in) {
    std::string reason;
    for (uint8_t n = in.byte(); n > 0; --n) reason.push_back(char(in.byte()));
    size_t cap = failure_bound(reason.size());
    const bool short_buffer = in.byte() % 4 == 0;
    if (short_buffer) cap = in.u32() % (cap + 1);
    auto buf = std::make_unique<char[]>(cap);
    const size_t n = write_failure(std::span<char>(buf.get(), cap), reason);
    if (n == 0) {
        check(short_buffer);
        return;
    }
    const Value v = decode(buf.get(), n);
    check(v.dict.size() == 1 && at(v, "failure reason").s == reason);
}

void scrape(Input& in) {
    std::vector<chihaya_scrape_entry> entries(in.byte() % 64);
    for (auto& e : entries) {
        e.struct_size = sizeof e;
        for (auto& b : e.info_hash) b = in.byte() % 4;  // few distinct bytes: shared prefixes
        e.complete = in.u32();
        e.incomplete = in.u32();
        e.downloaded = in.u32();
    }
    // The writer's contract: sorted by info_hash, no duplicates.
    auto less = [](const chihaya_scrape_entry& a, const chihaya_scrape_entry& b) {
        return std::memcmp(a.info_hash, b.info_hash, 20) < 0;
    };
    std::sort(entries.begin(), entries.end(), less);
    entries.erase(std::unique(entries.begin(), entries.end(),
                              [](const auto& a, const auto& b) { return std::memcmp(a.info_hash, b.info_hash, 20) == 0; }),
                  entries.end());
    size_t cap = scrape_bound(entries.size());
    const bool short_buffer = in.byte() % 4 == 0;
    if (short_buffer) cap = in.u32() % (cap + 1);
    auto buf = std::make_unique<char[]>(cap);
    const size_t n = write_scrape(std::span<char>(buf.get(), cap), entries);
    if (n == 0) {
        check(short_buffer);
        return;
    }
    const Value v = decode(buf.get(), n);
    const Value& files = at(v, "files");
    check(files.kind == Value::Dict && files.dict.size() == entries.size());
    // at() takes a C string and hashes may hold NUL bytes: look them up in the map directly.
    for (const auto& e : entries) {
        auto it = files.dict.find(std::string(reinterpret_cast<const char*>(e.info_hash), 20));
        check(it != files.dict.end());
        check(at(it->second, "complete").i == e.complete && at(it->second, "incomplete").i == e.incomplete &&
              at(it->second, "downloaded").i == e.downloaded);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in{data, size};
    switch (in.byte() % 3) {
        case 0: announce(in); break;
        case 1: failure(in); break;
        default: scrape(in); break;
    }
    return 0;
}
