// Journal replay: reports of a killed run become the first batch of this one.
#include "flush/recovery.hpp"

#include "accounting/journal.hpp"
#include "log/log.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>

namespace chihaya {

uint64_t recover_journal(Spool& spool, const std::string& journal_dir) {
    std::error_code error;
    std::filesystem::create_directories(journal_dir, error);
    if (error) throw std::runtime_error("journal " + journal_dir + ": cannot be created: " + error.message());
    const uint64_t sealed = spool.sealed_generation();
    JournalLeftovers left = read_journal(journal_dir, sealed);
    if (!left.reports.empty()) {
        // Replayed through a ledger of its own (no journal): the same crediting rules, and the
        // batch carries the highest generation it covers, so a crash from here on replays
        // nothing twice: either the batch is in the spool or the files are still unsealed.
        Ledger replay;
        for (const PeerReport& report : left.reports) replay.record(report);
        SealedBatch batch = replay.take();
        batch.journal_generation = left.highest_generation;
        const uint64_t sequence = spool.write(batch);
        log::warning("flush", "the last run did not stop cleanly: " + std::to_string(left.reports.size()) +
                                  " accepted announce(s) recovered from the journal into batch " +
                                  std::to_string(sequence));
    }
    for (const std::string& file : left.files) ::unlink(file.c_str());
    return std::max(left.highest_generation, sealed) + 1;
}

}  // namespace chihaya
