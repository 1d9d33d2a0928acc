// The ledger's journal: every report the ledger takes is also appended to a memory-mapped file
// before the client is answered, so that a tracker killed at any moment (SIGKILL, OOM killer,
// a crash) loses nothing it accepted. Stores into a MAP_SHARED mapping are in the kernel's page
// cache at once and outlive the process without a system call per announce; they are not
// fsync'd, so a power loss can lose the reports since the last seal (the spool, which is
// fsync'd, holds everything sealed).
//
// Files, in <spool_dir>/journal/:
//   g<generation:020>-s<shard:03>-p<part:04>.jnl   fixed-size 128-byte slots, zero-filled when
//                                                    created; slot 0 names the format (magic,
//                                                    record size), records follow
// Supported filesystems: those where posix_fallocate reserves the blocks (ext4, xfs). On a
// copy-on-write filesystem (btrfs, ZFS) a full disk can still fault a worker's store into the
// mapping (SIGBUS): do not put spool_dir there.
// One generation is what one sealed batch covers: Ledger::take() moves every shard to the next
// generation under the shard's lock, the flusher spools the batch with that generation in its
// header, and only then deletes the generation's files. At start-up, generations above the
// highest one the spool knows as sealed are replayed into a batch of their own.
#pragma once

#include "accounting/ledger.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace chihaya {

// One shard's append-only file. Not thread-safe: the ledger calls it under the shard's lock.
class JournalSegment {
public:
    // Creates and maps the file; throws std::runtime_error (start-up, or the flusher's seal).
    // `prefault`: make every page writable now (MADV_POPULATE_WRITE), a millisecond or two here
    // instead of a write fault per 32 appends; for segments made off the announce path.
    JournalSegment(const std::string& dir, uint64_t generation, uint32_t shard, uint32_t part,
                   bool prefault = false);
    ~JournalSegment();
    JournalSegment(const JournalSegment&) = delete;
    JournalSegment& operator=(const JournalSegment&) = delete;

    // False when the segment is full (the caller opens the next part).
    bool append(const PeerReport& report) noexcept;
    const std::string& path() const { return path_; }
    uint64_t generation() const { return generation_; }
    uint32_t shard() const { return shard_; }
    uint32_t part() const { return part_; }

    static constexpr size_t kRecordSize = 128;
    static constexpr size_t kRecords = 16384;  // 2 MiB a segment, the header slot included

private:
    std::string path_;
    uint64_t generation_;
    uint32_t shard_, part_;
    int fd_ = -1;
    uint8_t* map_ = nullptr;
    size_t used_ = 0;
};

// What an earlier run left in the journal.
struct JournalLeftovers {
    std::vector<PeerReport> reports;     // in append order per shard
    std::vector<std::string> files;      // every journal file found (all generations)
    uint64_t highest_generation = 0;     // of any file found
};

// Reads every journal file in `dir` of a generation above `sealed`; files at or below it were
// sealed into the spool before the last run ended and are only listed for deletion.
JournalLeftovers read_journal(const std::string& dir, uint64_t sealed);

}  // namespace chihaya
