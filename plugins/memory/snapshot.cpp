// snapshot.cpp: the memory driver's swarms to a file on destroy, and back on create.
//
// File layout (little-endian, as written by this x86-64/aarch64 code; version 1):
//   header   magic "CHIHAYA-SWARMS\r\n" (16) | u32 version | u32 reserved | u64 written_unix_s
//   swarm*   u8 tag = 1 | info_hash[20] | u32 downloaded | family(v4) | family(v6)
//     family u32 leechers | u32 seeders | u8 has_counters |
//            (endpoint[6 or 18] | u32 seconds_left | u8 completed | [u64 uploaded, u64 downloaded])*
//   end      u8 tag = 0 | u64 torrents | u64 peers | BLAKE2b-256 of every byte before it (32)
// Deadlines are stored as seconds left at writing time, so the tracker clock of the next run
// (which starts at its own zero) does not matter; the time the tracker was down is subtracted
// on load and peers whose time ran out are dropped.
//
// Crash safety: the file is written as PATH.tmp, fsync'd, renamed over PATH and the directory
// fsync'd: a crash mid-write leaves the previous snapshot (or none), never a torn one. A file that
// is truncated, corrupt (hash), of another version or not a snapshot at all is refused whole:
// load_snapshot empties the cache again and throws, and the driver starts empty.
#include "memory_cache.hpp"

#include <sodium.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace chihaya::memory {
namespace {

constexpr char kMagic[16] = {'C', 'H', 'I', 'H', 'A', 'Y', 'A', '-', 'S', 'W', 'A', 'R', 'M', 'S', '\r', '\n'};
constexpr uint32_t kVersion = 1;
constexpr uint8_t kTagSwarm = 1, kTagEnd = 0;

uint64_t unix_now() {
    return uint64_t(std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch()).count());
}

std::string errno_text() { return std::strerror(errno); }

// Buffered writer that hashes what it writes.
class Writer {
public:
    explicit Writer(const std::string& path) : path_(path) {
        fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd_ < 0) throw std::runtime_error("cannot create " + path + ": " + errno_text());
        crypto_generichash_init(&hash_, nullptr, 0, 32);
        buffer_.reserve(1 << 20);
    }
    ~Writer() { if (fd_ >= 0) ::close(fd_); }

    void bytes(const void* p, size_t n) {
        const auto* b = static_cast<const uint8_t*>(p);
        buffer_.insert(buffer_.end(), b, b + n);
        if (buffer_.size() >= (1 << 20)) flush();
    }
    template <class T> void put(T v) { bytes(&v, sizeof v); }

    void finish_hash() {
        flush();
        uint8_t digest[32];
        crypto_generichash_final(&hash_, digest, sizeof digest);
        write_raw(digest, sizeof digest);
    }
    void sync_and_close() {
        if (::fsync(fd_) != 0) throw std::runtime_error("cannot fsync " + path_ + ": " + errno_text());
        if (::close(fd_) != 0) { fd_ = -1; throw std::runtime_error("cannot close " + path_ + ": " + errno_text()); }
        fd_ = -1;
    }

private:
    void flush() {
        crypto_generichash_update(&hash_, buffer_.data(), buffer_.size());
        write_raw(buffer_.data(), buffer_.size());
        buffer_.clear();
    }
    void write_raw(const uint8_t* p, size_t n) {
        while (n > 0) {
            ssize_t w = ::write(fd_, p, n);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) throw std::runtime_error("cannot write " + path_ + ": " + errno_text());
            p += w;
            n -= size_t(w);
        }
    }
    std::string path_;
    int fd_ = -1;
    crypto_generichash_state hash_;
    std::vector<uint8_t> buffer_;
};

// Buffered reader that hashes what it reads; every short read is "truncated".
class Reader {
public:
    explicit Reader(const std::string& path) : path_(path) {
        fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd_ < 0) throw std::runtime_error("cannot open " + path + ": " + errno_text());
        crypto_generichash_init(&hash_, nullptr, 0, 32);
        buffer_.resize(1 << 20);
    }
    ~Reader() { ::close(fd_); }

    void bytes(void* out, size_t n) {
        auto* o = static_cast<uint8_t*>(out);
        while (n > 0) {
            if (pos_ == len_) fill();
            size_t take = std::min(n, len_ - pos_);
            std::memcpy(o, buffer_.data() + pos_, take);
            crypto_generichash_update(&hash_, buffer_.data() + pos_, take);
            pos_ += take;
            o += take;
            n -= take;
        }
    }
    template <class T> T get() { T v; bytes(&v, sizeof v); return v; }

    // The hash of everything read so far, then the stored one; nothing may follow.
    bool hash_matches() {
        uint8_t digest[32], stored[32];
        crypto_generichash_final(&hash_, digest, sizeof digest);
        for (size_t i = 0; i < sizeof stored; ++i) {
            if (pos_ == len_) fill();
            stored[i] = buffer_[pos_++];
        }
        if (pos_ != len_ || ::read(fd_, buffer_.data(), 1) != 0) throw std::runtime_error("bytes after the end record");
        return sodium_memcmp(digest, stored, sizeof digest) == 0;
    }

private:
    void fill() {
        ssize_t r;
        do r = ::read(fd_, buffer_.data(), buffer_.size());
        while (r < 0 && errno == EINTR);
        if (r < 0) throw std::runtime_error("cannot read: " + errno_text());
        if (r == 0) throw std::runtime_error("truncated (ends before its end record)");
        pos_ = 0;
        len_ = size_t(r);
    }
    std::string path_;
    int fd_ = -1;
    crypto_generichash_state hash_;
    std::vector<uint8_t> buffer_;
    size_t pos_ = 0, len_ = 0;
};

template <class List>
void write_family(Writer& w, const List& list, uint32_t now_s, uint64_t& peers) {
    using Peer = typename List::peer_type;
    // Only live peers; count first so the family header is exact.
    uint32_t leechers = 0, seeders = 0;
    for (uint32_t i = 0; i < list.size(); ++i)
        if (!list[i].expired(now_s)) (list.is_seeder(i) ? seeders : leechers)++;
    w.put<uint32_t>(leechers);
    w.put<uint32_t>(seeders);
    const bool counters = list.has_counters();
    w.put<uint8_t>(counters ? 1 : 0);
    for (uint32_t i = 0; i < list.size(); ++i) {  // leechers first: the list keeps that order
        const Peer& p = list[i];
        if (p.expired(now_s)) continue;
        w.bytes(p.endpoint, Peer::endpoint_bytes);
        w.put<uint32_t>(p.deadline(now_s) - now_s);
        w.put<uint8_t>(p.completed() ? 1 : 0);
        if (counters) {
            const Counters c = list.counters(i);
            w.put<uint64_t>(c.uploaded);
            w.put<uint64_t>(c.downloaded);
        }
        ++peers;
    }
}

template <class Peer>
void read_family(Reader& r, Swarm& swarm, uint32_t now_s, uint64_t down_s, MemoryCache::SnapshotCounts& counts,
                 const AddressTally& tally) {
    const uint32_t leechers = r.get<uint32_t>();
    const uint32_t seeders = r.get<uint32_t>();
    const uint8_t has_counters = r.get<uint8_t>();
    if (has_counters > 1) throw std::runtime_error("corrupt (a family's counters flag)");
    for (uint64_t k = 0; k < uint64_t(leechers) + seeders; ++k) {
        Peer peer{};
        r.bytes(peer.endpoint, Peer::endpoint_bytes);
        const uint32_t left_s = r.get<uint32_t>();
        const uint8_t completed = r.get<uint8_t>();
        Counters c{};
        if (has_counters) {
            c.uploaded = r.get<uint64_t>();
            c.downloaded = r.get<uint64_t>();
        }
        if (left_s < down_s) {  // its lifetime ran out while the tracker was down
            ++counts.expired;
            continue;
        }
        // A saved peer lives at most peer_lifetime (7 days) longer; a corrupt file may say more,
        // and the deadline must stay within PackedPeer::reach of now.
        const uint64_t left = std::min<uint64_t>(left_s - down_s, PeerV4::reach - 1);
        peer.set(uint32_t(now_s + left), completed != 0);
        if (!swarm.restore(peer, now_s, k >= leechers, has_counters ? &c : nullptr, tally))
            throw std::runtime_error("out of memory while loading");
        ++counts.peers;
    }
}

}  // namespace

MemoryCache::SnapshotCounts MemoryCache::save_snapshot(const std::string& path, uint64_t now_ms) const {
    const uint32_t now_s = seconds(now_ms);
    const std::string tmp = path + ".tmp";
    SnapshotCounts counts;
    {
        Writer w(tmp);
        w.bytes(kMagic, sizeof kMagic);
        w.put<uint32_t>(kVersion);
        w.put<uint32_t>(0);
        w.put<uint64_t>(unix_now());
        for (uint32_t s = 0; s < count_; ++s) {
            std::lock_guard lock(shards_[s].mutex);
            shards_[s].swarms.for_each([&](const Swarm& swarm) {
                w.put<uint8_t>(kTagSwarm);
                w.bytes(swarm.info_hash(), 20);
                w.put<uint32_t>(swarm.downloaded());
                write_family(w, swarm.v4(), now_s, counts.peers);
                write_family(w, swarm.v6(), now_s, counts.peers);
                ++counts.torrents;
            });
        }
        w.put<uint8_t>(kTagEnd);
        w.put<uint64_t>(counts.torrents);
        w.put<uint64_t>(counts.peers);
        w.finish_hash();
        w.sync_and_close();
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string why = errno_text();
        ::unlink(tmp.c_str());
        throw std::runtime_error("cannot rename " + tmp + " to " + path + ": " + why);
    }
    // The rename itself must survive a power cut: fsync the directory.
    std::string dir = std::filesystem::path(path).parent_path().string();
    if (int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
    return counts;
}

MemoryCache::SnapshotCounts MemoryCache::load_snapshot(const std::string& path, uint64_t now_ms,
                                                       const std::function<void(uint64_t)>& progress) {
    SnapshotCounts counts;
    try {
        Reader r(path);
        char magic[sizeof kMagic];
        try {
            r.bytes(magic, sizeof magic);
        } catch (const std::exception&) {
            throw std::runtime_error("not a chihaya swarm snapshot (too short)");
        }
        if (std::memcmp(magic, kMagic, sizeof kMagic) != 0) throw std::runtime_error("not a chihaya swarm snapshot");
        const uint32_t version = r.get<uint32_t>();
        if (version != kVersion)
            throw std::runtime_error("snapshot version " + std::to_string(version) + ", this driver reads version " +
                                     std::to_string(kVersion));
        (void)r.get<uint32_t>();
        const uint64_t written = r.get<uint64_t>();
        const uint64_t now_unix = unix_now();
        const uint64_t down_s = now_unix > written ? now_unix - written : 0;
        const uint32_t now_s = seconds(now_ms);
        uint64_t next_report = 1'000'000;
        for (;;) {
            const uint8_t tag = r.get<uint8_t>();
            if (tag == kTagEnd) break;
            if (tag != kTagSwarm) throw std::runtime_error("corrupt (unknown record)");
            uint8_t info_hash[20];
            r.bytes(info_hash, 20);
            const uint32_t downloaded = r.get<uint32_t>();
            const uint64_t seed = seed_of(info_hash);
            Shard& shard = shard_of_seed(seed);
            std::lock_guard lock(shard.mutex);
            if (shard.swarms.find(seed, info_hash)) throw std::runtime_error("corrupt (a torrent listed twice)");
            Swarm* swarm = shard.swarms.emplace(seed, info_hash);
            if (!swarm) throw std::runtime_error("out of memory while loading");
            swarm->set_downloaded(downloaded);
            read_family<PeerV4>(r, *swarm, now_s, down_s, counts, tally_of(seed));
            read_family<PeerV6>(r, *swarm, now_s, down_s, counts, tally_of(seed));
            shard.tally.move({}, swarm->family_counts(), totals_);
            if (swarm->empty()) shard.swarms.erase(swarm);
            else ++counts.torrents;
            if (counts.peers + counts.expired >= next_report) {
                progress(counts.peers + counts.expired);
                next_report += 1'000'000;
            }
        }
        const uint64_t torrents = r.get<uint64_t>();
        const uint64_t peers = r.get<uint64_t>();
        if (!r.hash_matches()) throw std::runtime_error("corrupt (checksum mismatch)");
        if (peers != counts.peers + counts.expired) throw std::runtime_error("corrupt (peer count mismatch)");
        (void)torrents;
    } catch (...) {
        for (uint32_t s = 0; s < count_; ++s) {
            std::lock_guard lock(shards_[s].mutex);
            shards_[s].swarms.clear();
            shards_[s].tally.clear();
        }
        std::fill_n(address_counts_.get(), size_t(address_mask_) + 1, uint32_t(0));
        totals_.torrents.store(0, std::memory_order_relaxed);
        totals_.peers.store(0, std::memory_order_relaxed);
        throw;
    }
    return counts;
}

}  // namespace chihaya::memory
