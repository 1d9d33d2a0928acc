// Durable batch files: write to a temporary name, fsync, rename, fsync the directory.
#include "flush/spool.hpp"

#include <Poco/Checksum.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace chihaya {
namespace {

// File format, little-endian as the host writes it (the spool never leaves its machine):
//   16 bytes magic | u32 version | u32 sizeof(chihaya_peer_delta) | u32 sizeof(stats) | u32 0 |
//   u64 sequence | u64 journal generation | u64 delta count | u64 torrent count | deltas | stats |
//   u32 CRC-32 of all before
// The struct sizes let a host of another ABI minor refuse a file it would misread.
constexpr char kMagic[16] = {'c', 'h', 'i', 'h', 'a', 'y', 'a', '-', 'b', 'a', 't', 'c', 'h', 0, 0, 0};
constexpr uint32_t kVersion = 1;
// The record sizes of ABI 2.1, where these structs first appeared.
constexpr uint32_t kMinDeltaSize = sizeof(chihaya_peer_delta);
constexpr uint32_t kMinStatsSize = sizeof(chihaya_torrent_stats);

std::string errno_text() { return std::strerror(errno); }

template <class T>
void put(std::string& out, const T& value) {
    out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

template <class T>
bool get(const std::string& in, size_t& at, T& value) {
    if (in.size() - at < sizeof value) return false;
    std::memcpy(&value, in.data() + at, sizeof value);
    at += sizeof value;
    return true;
}

uint32_t crc32(const char* data, size_t size) {
    Poco::Checksum sum(Poco::Checksum::TYPE_CRC32);
    sum.update(data, static_cast<unsigned>(size));
    return sum.checksum();
}

void fsync_dir(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd < 0) throw std::runtime_error("spool_dir " + dir + ": " + errno_text());
    int rc = ::fsync(fd);
    ::close(fd);
    if (rc != 0) throw std::runtime_error("spool_dir " + dir + ": fsync: " + errno_text());
}

bool parse_sequence(const std::string& name, uint64_t& out) {
    if (!name.starts_with("batch-") || !name.ends_with(".chb")) return false;
    std::string digits = name.substr(6, name.size() - 10);
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) return false;
    out = std::stoull(digits);
    return true;
}

std::string read_small_file(const std::string& path) {
    std::ifstream in(path);
    std::string text;
    std::getline(in, text);
    return text;
}

}  // namespace

Spool::Spool(std::string dir) : dir_(std::move(dir)) {
    std::error_code error;
    fs::create_directories(dir_, error);
    if (error)
        throw std::runtime_error("spool_dir " + dir_ + ": cannot be created: " + error.message() +
                                 " (create it writable by the tracker's user, or set [storage] spool_dir)");
    const std::string probe = dir_ + "/.probe";
    try {
        write_file_durably(probe, "probe\n");
    } catch (const std::exception& e) {
        throw std::runtime_error(std::string(e.what()) + " (the spool must be writable by the tracker's user)");
    }
    ::unlink(probe.c_str());
    // One tracker per spool: a second one (a manual run beside the service; SO_REUSEPORT lets it
    // bind the same ports) would replay the first one's live journal, unlink its files and reuse
    // its sequences. The lock goes with the process, however it ends.
    lock_fd_ = ::open((dir_ + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd_ < 0 || ::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0)
        throw std::runtime_error("spool_dir " + dir_ + " is in use by another chihaya process (" +
                                 errno_text() + "); give each tracker host its own spool_dir");
    struct statvfs vfs {};
    if (::statvfs(dir_.c_str(), &vfs) == 0) {
        const uint64_t free_bytes = uint64_t(vfs.f_bavail) * vfs.f_frsize;
        if (free_bytes < kMinFreeBytes)
            throw std::runtime_error("spool_dir " + dir_ + ": only " + std::to_string(free_bytes >> 20) +
                                     " MiB free, at least " + std::to_string(kMinFreeBytes >> 20) +
                                     " MiB needed (free disk space or move spool_dir)");
    }

    host_id_ = read_small_file(dir_ + "/host_id");
    if (host_id_.empty()) {
        std::random_device random;
        std::ostringstream id;
        id << std::hex;
        for (int i = 0; i < 4; ++i) id << random();
        host_id_ = id.str();
        write_file_durably(dir_ + "/host_id", host_id_ + "\n");
    }
    read_state(last_sequence_, sealed_generation_);
    for (uint64_t s : pending()) {
        last_sequence_ = std::max(last_sequence_, s);
        SealedBatch batch;
        std::string why;
        if (read(s, batch, why)) sealed_generation_ = std::max(sealed_generation_, batch.journal_generation);
    }
}

Spool::~Spool() {
    if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

std::string Spool::path(uint64_t sequence, const char* suffix) const {
    char name[64];
    std::snprintf(name, sizeof name, "/batch-%020llu%s", static_cast<unsigned long long>(sequence), suffix);
    return dir_ + name;
}

void Spool::write_file_durably(const std::string& path, const std::string& bytes) const {
    const std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("spool_dir " + dir_ + ": cannot write " + tmp + ": " + errno_text());
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            std::string why = errno_text();
            ::close(fd);
            ::unlink(tmp.c_str());
            throw std::runtime_error("spool_dir " + dir_ + ": writing " + tmp + ": " + why);
        }
        done += size_t(n);
    }
    if (::fsync(fd) != 0) {
        std::string why = errno_text();
        ::close(fd);
        ::unlink(tmp.c_str());
        throw std::runtime_error("spool_dir " + dir_ + ": fsync " + tmp + ": " + why);
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        std::string why = errno_text();
        ::unlink(tmp.c_str());
        throw std::runtime_error("spool_dir " + dir_ + ": rename " + tmp + ": " + why);
    }
    fsync_dir(dir_);
}

uint64_t Spool::write(const SealedBatch& batch) {
    const uint64_t sequence = last_sequence_ + 1;
    std::string bytes;
    bytes.reserve(64 + batch.deltas.size() * sizeof(chihaya_peer_delta) +
                  batch.torrents.size() * sizeof(chihaya_torrent_stats));
    bytes.append(kMagic, sizeof kMagic);
    put(bytes, kVersion);
    put(bytes, uint32_t(sizeof(chihaya_peer_delta)));
    put(bytes, uint32_t(sizeof(chihaya_torrent_stats)));
    put(bytes, uint32_t(0));
    put(bytes, sequence);
    put(bytes, batch.journal_generation);
    put(bytes, uint64_t(batch.deltas.size()));
    put(bytes, uint64_t(batch.torrents.size()));
    bytes.append(reinterpret_cast<const char*>(batch.deltas.data()), batch.deltas.size() * sizeof(chihaya_peer_delta));
    bytes.append(reinterpret_cast<const char*>(batch.torrents.data()),
                 batch.torrents.size() * sizeof(chihaya_torrent_stats));
    put(bytes, crc32(bytes.data(), bytes.size()));
    write_file_durably(path(sequence, ".chb"), bytes);
    last_sequence_ = sequence;
    sealed_generation_ = std::max(sealed_generation_, batch.journal_generation);
    return sequence;
}

std::vector<uint64_t> Spool::pending() const {
    std::vector<uint64_t> out;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(dir_, error)) {
        uint64_t s;
        if (parse_sequence(entry.path().filename().string(), s)) out.push_back(s);
    }
    std::sort(out.begin(), out.end());
    return out;
}

bool Spool::read(uint64_t sequence, SealedBatch& out, std::string& why) const {
    const std::string file = path(sequence, ".chb");
    std::ifstream in(file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    const std::string bytes = text.str();
    auto corrupt = [&](const std::string& what) {
        why = file + ": " + what + "; set aside as " + path(sequence, ".corrupt");
        ::rename(file.c_str(), path(sequence, ".corrupt").c_str());
        return false;
    };
    if (!in && bytes.empty()) return corrupt("cannot be read");
    if (bytes.size() < sizeof kMagic + 56 || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
        return corrupt("not a chihaya batch file");
    uint32_t stored_crc;
    std::memcpy(&stored_crc, bytes.data() + bytes.size() - 4, 4);
    if (crc32(bytes.data(), bytes.size() - 4) != stored_crc) return corrupt("checksum mismatch");
    size_t at = sizeof kMagic;
    uint32_t version = 0, delta_size = 0, stats_size = 0, zero = 0;
    uint64_t seq = 0, deltas = 0, torrents = 0;
    get(bytes, at, version), get(bytes, at, delta_size), get(bytes, at, stats_size), get(bytes, at, zero);
    get(bytes, at, seq), get(bytes, at, out.journal_generation), get(bytes, at, deltas), get(bytes, at, torrents);
    // Records are read with the writer's sizes: a host of a newer ABI minor reads a batch an older
    // one spooled (its members zero-filled), so an upgrade with batches waiting loses none.
    if (version != kVersion || delta_size < kMinDeltaSize || stats_size < kMinStatsSize || seq != sequence)
        return corrupt("written by an incompatible chihaya version or for another sequence");
    if (bytes.size() - 4 - at != deltas * delta_size + torrents * stats_size) return corrupt("truncated");
    out.deltas.assign(deltas, chihaya_peer_delta{});
    out.torrents.assign(torrents, chihaya_torrent_stats{});
    for (uint64_t i = 0; i < deltas; ++i) {
        std::memcpy(&out.deltas[i], bytes.data() + at + i * delta_size, std::min<size_t>(delta_size, sizeof(chihaya_peer_delta)));
        out.deltas[i].struct_size = sizeof(chihaya_peer_delta);
    }
    at += deltas * delta_size;
    for (uint64_t i = 0; i < torrents; ++i) {
        std::memcpy(&out.torrents[i], bytes.data() + at + i * stats_size, std::min<size_t>(stats_size, sizeof(chihaya_torrent_stats)));
        out.torrents[i].struct_size = sizeof(chihaya_torrent_stats);
    }
    return true;
}

void Spool::read_state(uint64_t& sequence, uint64_t& generation) const {
    std::istringstream state(read_small_file(dir_ + "/sequence"));
    sequence = generation = 0;
    state >> sequence >> generation;
}

void Spool::applied(uint64_t sequence, uint64_t journal_generation) {
    // Recorded before the file goes, so a crash between the two leaves a file the storage will
    // recognise as applied (its ledger has the same sequence) rather than a gap, and the journal
    // generation it sealed is never replayed.
    uint64_t previous = 0, generation = 0;
    read_state(previous, generation);
    if (sequence > previous || journal_generation > generation)
        write_file_durably(dir_ + "/sequence", std::to_string(std::max(sequence, previous)) + " " +
                                                   std::to_string(std::max(journal_generation, generation)) + "\n");
    ::unlink(path(sequence, ".chb").c_str());
}

uint64_t Spool::oldest_age_s() const {
    auto list = pending();
    if (list.empty()) return 0;
    struct stat st {};
    if (::stat(path(list.front(), ".chb").c_str(), &st) != 0) return 0;
    const int64_t age = int64_t(::time(nullptr)) - int64_t(st.st_mtime);
    return age > 0 ? uint64_t(age) : 0;
}

}  // namespace chihaya
