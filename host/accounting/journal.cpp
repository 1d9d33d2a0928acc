// Memory-mapped journal segments: create, append, read back.
#include "accounting/journal.hpp"

#include "log/log.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <filesystem>
#include <stdexcept>

namespace fs = std::filesystem;

namespace chihaya {
namespace {

// A record is the report followed by a commit word, stored last: the file is zero-filled, so a
// record whose commit word is not kCommitted was never finished (the process died inside the
// memcpy) and is ignored, and so is everything after it in that segment.
constexpr uint32_t kCommitted = 0x4A524E4Cu;  // "JRNL"
struct Record {
    PeerReport report;
    uint32_t commit;
};
static_assert(sizeof(Record) <= JournalSegment::kRecordSize);

// Slot 0 of every file: what wrote it. A journal left by another chihaya version (a crash, then
// an upgrade) whose PeerReport differs is refused whole, never misread.
constexpr char kFileMagic[8] = {'c', 'h', 'j', 'r', 'n', 'l', 0, 1};
struct FileHeader {
    char magic[8];
    uint32_t record_bytes;  // sizeof(PeerReport) in the writer
    uint32_t slot_bytes;    // JournalSegment::kRecordSize
};
static_assert(sizeof(FileHeader) <= JournalSegment::kRecordSize);
static_assert(std::is_trivially_copyable_v<PeerReport>);

std::string name(uint64_t generation, uint32_t shard, uint32_t part) {
    char text[64];
    std::snprintf(text, sizeof text, "g%020llu-s%03u-p%04u.jnl", static_cast<unsigned long long>(generation),
                  shard, part);
    return text;
}

bool parse_name(const std::string& file, uint64_t& generation) {
    unsigned long long g;
    unsigned s, p;
    char tail;
    if (std::sscanf(file.c_str(), "g%20llu-s%3u-p%4u.jnl%c", &g, &s, &p, &tail) != 3) return false;
    generation = g;
    return file.size() == 36;
}

}  // namespace

JournalSegment::JournalSegment(const std::string& dir, uint64_t generation, uint32_t shard, uint32_t part,
                               bool prefault)
    : path_(dir + "/" + name(generation, shard, part)), generation_(generation), shard_(shard), part_(part) {
    const size_t bytes = kRecordSize * kRecords;
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd_ < 0) throw std::runtime_error("journal " + path_ + ": " + std::strerror(errno));
    // posix_fallocate, not ftruncate: the blocks exist now, so a full disk fails here, at a
    // seal, rather than as a SIGBUS in a worker's store into a sparse page.
    if (int rc = ::posix_fallocate(fd_, 0, off_t(bytes)); rc != 0) {
        ::close(fd_);
        ::unlink(path_.c_str());
        throw std::runtime_error("journal " + path_ + ": cannot allocate: " + std::strerror(rc));
    }
    // MAP_POPULATE: the segment's pages are mapped now, in one pass, instead of one page fault
    // per 32 records on the announce path (page faults were 4-5 % of a private announce). On
    // ext4/xfs a shared mapping's pages come in read-only, so the first store to each still takes
    // a (cheaper: no allocation, no read) write fault, and a follow-on segment made under the
    // shard's lock pays the populate there, once per 16,384 records of the shard.
    void* map = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_, 0);
    if (map == MAP_FAILED) {
        int e = errno;
        ::close(fd_);
        ::unlink(path_.c_str());
        throw std::runtime_error("journal " + path_ + ": mmap: " + std::strerror(e));
    }
    map_ = static_cast<uint8_t*>(map);
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older kernels refuse it, and the faults stay
#endif
    if (prefault) ::madvise(map, bytes, MADV_POPULATE_WRITE);
    FileHeader header{};
    std::memcpy(header.magic, kFileMagic, sizeof kFileMagic);
    header.record_bytes = sizeof(PeerReport);
    header.slot_bytes = kRecordSize;
    std::memcpy(map_, &header, sizeof header);
    used_ = 1;  // slot 0 is the header
}

JournalSegment::~JournalSegment() {
    if (map_) ::munmap(map_, kRecordSize * kRecords);
    if (fd_ >= 0) ::close(fd_);
}

bool JournalSegment::append(const PeerReport& report) noexcept {
    if (used_ == kRecords) return false;
    uint8_t* slot = map_ + used_ * kRecordSize;
    // The record is assembled here, then streamed to the mapping with non-temporal stores: nothing
    // reads it again unless the process dies, so plain stores only cost a read of each fresh line
    // (RFO) and push live data (the ledger, the directory, the swarms) out of the cache.
    alignas(16) uint8_t record[kRecordSize] = {};
    std::memcpy(record + offsetof(Record, report), &report, sizeof report);
    std::memcpy(record + offsetof(Record, commit), &kCommitted, sizeof kCommitted);
    // Streaming stores reach memory in no promised order, so a record can be torn only by a
    // machine crash, which loses the unsynced page cache anyway; a killed process leaves every
    // store it made. The reader checks the commit word either way.
#if defined(__SSE2__)
    for (size_t i = 0; i < kRecordSize; i += 16)
        _mm_stream_si128(reinterpret_cast<__m128i*>(slot + i),
                         _mm_load_si128(reinterpret_cast<const __m128i*>(record + i)));
#else
    std::memcpy(slot, record, kRecordSize);
#endif
    ++used_;
    return true;
}

JournalLeftovers read_journal(const std::string& dir, uint64_t sealed) {
    JournalLeftovers out;
    std::vector<std::pair<std::string, uint64_t>> files;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(dir, error)) {
        uint64_t generation;
        const std::string file = entry.path().filename().string();
        if (!parse_name(file, generation)) continue;
        files.emplace_back(entry.path().string(), generation);
        out.files.push_back(entry.path().string());
        out.highest_generation = std::max(out.highest_generation, generation);
    }
    std::sort(files.begin(), files.end());  // generation, shard, part: the names sort so
    for (const auto& [path, generation] : files) {
        if (generation <= sealed) continue;
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        uint8_t first[JournalSegment::kRecordSize];
        FileHeader header{};
        if (::read(fd, first, sizeof first) != ssize_t(sizeof first) ||
            (std::memcpy(&header, first, sizeof header), std::memcmp(header.magic, kFileMagic, sizeof kFileMagic) != 0) ||
            header.record_bytes != sizeof(PeerReport) || header.slot_bytes != JournalSegment::kRecordSize) {
            log::error("journal", path + ": written by another chihaya version; its reports cannot be "
                                         "read and are dropped");
            ::close(fd);
            continue;
        }
        Record record;
        while (::read(fd, &record, sizeof record) == ssize_t(sizeof record)) {
            if (record.commit != kCommitted) break;
            out.reports.push_back(record.report);
            if (::lseek(fd, off_t(JournalSegment::kRecordSize - sizeof record), SEEK_CUR) < 0) break;
        }
        ::close(fd);
    }
    return out;
}

}  // namespace chihaya
