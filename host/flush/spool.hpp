// The spool: sealed accounting batches on local disk until the storage has applied them, so that a
// database outage, a SIGTERM or a crash loses nothing that was sealed.
//
// Layout of spool_dir:
//   host_id                  this host's name in the storage's batch ledger (made once, kept)
//   sequence                 "<sequence> <generation>": the highest sequence applied and forgotten
//                            here, and the highest journal generation it sealed
//   batch-<seq:020>.chb      one sealed batch (format in spool.cpp), written to a temporary name,
//                            fsync'd and renamed, so a file that exists is whole
//   batch-<seq:020>.corrupt  a batch that failed its checksum, set aside for an operator
//   lock                     flock'd by the one process using this spool
// Sequences only grow: the next one is above both `sequence` and every spooled file.
#pragma once

#include "accounting/ledger.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace chihaya {

class Spool {
public:
    // Creates the directory if needed and proves it usable: writable (a probe file is written,
    // fsync'd and removed), at least kMinFreeBytes free. Throws std::runtime_error naming the
    // path and the fix otherwise (start-up only).
    explicit Spool(std::string dir);
    ~Spool();
    Spool(const Spool&) = delete;
    Spool& operator=(const Spool&) = delete;

    static constexpr uint64_t kMinFreeBytes = 16ull << 20;

    const std::string& dir() const { return dir_; }
    const std::string& host_id() const { return host_id_; }

    // Writes `batch` durably as the next sequence and returns that sequence. Throws
    // std::runtime_error on an I/O error (disk full): the caller keeps the batch and retries.
    uint64_t write(const SealedBatch& batch);
    // Spooled sequences, oldest first.
    std::vector<uint64_t> pending() const;
    // Reads a spooled batch. A file that fails its checksum is renamed *.corrupt and `why` says
    // so; false then.
    bool read(uint64_t sequence, SealedBatch& out, std::string& why) const;
    // `sequence` (which sealed `journal_generation`) is applied: record it, then remove its file.
    void applied(uint64_t sequence, uint64_t journal_generation);
    // The highest journal generation sealed into a batch, applied or still spooled: journal files
    // of this generation or older are never replayed (accounting/journal.hpp).
    uint64_t sealed_generation() const { return sealed_generation_; }
    // Seconds since the oldest spooled batch was written (0 when none).
    uint64_t oldest_age_s() const;

private:
    std::string path(uint64_t sequence, const char* suffix) const;
    void read_state(uint64_t& sequence, uint64_t& generation) const;
    void write_file_durably(const std::string& path, const std::string& bytes) const;

    std::string dir_;
    std::string host_id_;
    uint64_t last_sequence_ = 0;      // highest sequence handed out
    uint64_t sealed_generation_ = 0;
    int lock_fd_ = -1;  // flock'd for the Spool's lifetime: one process per spool_dir
};

}  // namespace chihaya
