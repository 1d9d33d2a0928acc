// Start-up recovery of private-mode accounting after a run that did not stop cleanly.
#pragma once

#include "flush/spool.hpp"

#include <cstdint>
#include <string>

namespace chihaya {

// Replays the journal generations in `journal_dir` that the spool does not know as sealed (the
// reports a killed run had accepted but not sealed) into one spooled batch, then deletes every
// journal file. Returns the generation the new run's journal starts at. Logs what it recovered.
// Throws std::runtime_error when the journal directory is unusable (start-up).
uint64_t recover_journal(Spool& spool, const std::string& journal_dir);

}  // namespace chihaya
