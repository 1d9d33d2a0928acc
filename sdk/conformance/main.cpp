// chihaya-conformance: the cache-driver contract of abi.h as a program for driver authors.
//
//   chihaya-conformance --plugin ./chihaya_mycache.so --driver mycache [--config FILE]
//                       [--set KEY=VALUE]... [--provides scrape_all,tick,stats,limits] [doctest options]
//
// Loads the plugin as the host does (dlopen RTLD_NOW|RTLD_LOCAL, entry symbol, ABI major), creates
// the driver with its declared defaults plus the given config, and runs every semantic check the
// bundled drivers pass (cache_conformance.cpp). The report names each rule, and for each failed
// check the expectation, the values seen and what the check was about. Exit status 0 when every
// rule holds. Checks run in one process against one instance per rule; a crash in the driver ends
// the run there (the report says which rule was running).
#define DOCTEST_CONFIG_IMPLEMENT
#include "kit.hpp"

#include <chihaya/abi.h>
#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string_view>

namespace chihaya::conformance {
namespace {

Options g_options;

constexpr const char* kUsage =
    "usage: chihaya-conformance --plugin PATH.so --driver NAME [--config FILE] [--set KEY=VALUE]...\n"
    "                           [--provides scrape_all,tick,stats,limits] [doctest options, e.g. -tc=\"*expire*\"]\n"
    "\n"
    "Runs the cache-driver contract of chihaya/abi.h against one driver and reports each rule.\n"
    "  --plugin PATH.so   the plugin to load\n"
    "  --driver NAME      the cache driver in it to test\n"
    "  --config FILE      the driver's table: `key = value` lines (TOML scalars); in a chihaya.toml\n"
    "                     only the [cache.NAME] table is read\n"
    "  --set KEY=VALUE    one key of the table (after --config; repeatable)\n"
    "  --provides LIST    optional members the driver must have: scrape_all, tick, stats;\n"
    "                     limits: it enforces the ABI 2.3 budgets ([limits])\n"
    "Every key not given keeps the default the driver declares. Exit status 0 when every rule holds.\n";

std::string trim(std::string_view s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    return std::string(s);
}

// A `#` outside quotes starts a comment.
std::string strip_comment(const std::string& line) {
    bool quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
        if (line[i] == '"' && (i == 0 || line[i - 1] != '\\')) quoted = !quoted;
        if (line[i] == '#' && !quoted) return line.substr(0, i);
    }
    return line;
}

bool add_pair(const std::string& text, const std::string& where, std::string& error) {
    size_t eq = text.find('=');
    if (eq == std::string::npos || trim(text.substr(0, eq)).empty()) {
        error = where + ": expected key = value, got: " + text;
        return false;
    }
    g_options.config.emplace_back(trim(text.substr(0, eq)), trim(text.substr(eq + 1)));
    return true;
}

// The [cache.<driver>] table when the file has one (a whole chihaya.toml works), else the lines
// before any [table] header (a plain key = value file).
bool read_config(const std::string& path, std::string& error) {
    std::ifstream in(path);
    if (!in) {
        error = path + ": cannot be read";
        return false;
    }
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(trim(strip_comment(line)));
    const std::string wanted = "cache." + g_options.driver;
    auto table_name = [](const std::string& text) { return trim(text.substr(1, text.find(']') - 1)); };
    bool has_table = false;
    for (const auto& text : lines)
        if (!text.empty() && text.front() == '[' && table_name(text) == wanted) has_table = true;
    bool in_table = !has_table;  // the top level counts only without a [cache.<driver>] table
    for (size_t n = 0; n < lines.size(); ++n) {
        const std::string& text = lines[n];
        if (text.empty()) continue;
        if (text.front() == '[') {
            in_table = table_name(text) == wanted;
            continue;
        }
        if (in_table && !add_pair(text, path + ":" + std::to_string(n + 1), error)) return false;
    }
    return true;
}

// The report: one line per rule, and under a failed one each failed check with its expectation.
class Report : public doctest::IReporter {
public:
    explicit Report(const doctest::ContextOptions& options) : out_(*options.cout) {}

    void report_query(const doctest::QueryData&) override {}
    void test_run_start() override {
        out_ << "chihaya-conformance: cache driver \"" << g_options.driver << "\" in "
             << g_options.plugin << " (kit ABI " << CHIHAYA_ABI_MAJOR << "." << CHIHAYA_ABI_MINOR
             << ")\n\n";
    }
    void test_run_end(const doctest::TestRunStats& stats) override {
        unsigned run = stats.numTestCasesPassingFilters;
        out_ << "\n" << (run - stats.numTestCasesFailed) << " of " << run << " rules hold";
        if (stats.numTestCasesFailed)
            out_ << "; " << stats.numTestCasesFailed << " broken (" << stats.numAssertsFailed
                 << " failed checks). The rules are written in chihaya/abi.h.";
        out_ << "\n";
    }
    void test_case_start(const doctest::TestCaseData& data) override {
        name_ = data.m_name;
        details_.clear();
        failed_ = false;
    }
    void test_case_reenter(const doctest::TestCaseData&) override {}
    void test_case_end(const doctest::CurrentTestCaseStats& stats) override {
        bool failed = failed_ || stats.failure_flags != 0;
        out_ << (failed ? "FAIL  " : "ok    ") << name_ << "\n" << details_;
        if (failed && details_.empty()) out_ << "      (failed without a check: see the log above)\n";
        out_.flush();
    }
    void test_case_exception(const doctest::TestCaseException& e) override {
        std::lock_guard lock(mutex_);
        failed_ = true;
        details_ += std::string("      the check itself stopped: ") + e.error_string.c_str() + "\n";
    }
    void subcase_start(const doctest::SubcaseSignature&) override {}
    void subcase_end() override {}
    void log_assert(const doctest::AssertData& a) override {
        if (!a.m_failed) return;
        std::lock_guard lock(mutex_);
        failed_ = true;
        std::ostringstream line;
        line << "      line " << a.m_line << ": expected " << a.m_expr;
        if (a.m_threw) line << ", but it threw: " << a.m_exception.c_str();
        else if (a.m_decomp.size() && std::string_view(a.m_decomp.c_str()) != a.m_expr)
            line << ", got " << a.m_decomp.c_str();
        line << "\n";
        int n = doctest::IReporter::get_num_active_contexts();
        auto contexts = doctest::IReporter::get_active_contexts();
        for (int i = 0; i < n; ++i) {
            std::ostringstream what;
            contexts[i]->stringify(&what);
            line << "        " << what.str() << "\n";
        }
        details_ += line.str();
    }
    void log_message(const doctest::MessageData&) override {}
    void test_case_skipped(const doctest::TestCaseData&) override {}

private:
    std::ostream& out_;
    std::mutex mutex_;
    std::string name_;
    std::string details_;
    bool failed_ = false;
};

}  // namespace

const Options& options() { return g_options; }

}  // namespace chihaya::conformance

DOCTEST_REGISTER_REPORTER("conformance", 0, chihaya::conformance::Report);

int main(int argc, char** argv) {
    using chihaya::conformance::g_options;
    std::vector<const char*> doctest_args = {argv[0], "--reporters=conformance"};
    std::string config_file;
    std::vector<std::string> sets;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        auto value = [&](std::string& out) {
            if (i + 1 >= argc) {
                std::cerr << "chihaya-conformance: " << arg << " needs a value\n" << chihaya::conformance::kUsage;
                std::exit(2);
            }
            out = argv[++i];
        };
        if (arg == "-h" || arg == "--help") {
            std::cout << chihaya::conformance::kUsage;
            return 0;
        } else if (arg == "--plugin") {
            value(g_options.plugin);
        } else if (arg == "--driver") {
            value(g_options.driver);
        } else if (arg == "--config") {
            value(config_file);
        } else if (arg == "--set") {
            value(sets.emplace_back());
        } else if (arg == "--provides") {
            value(g_options.provides);
        } else {
            doctest_args.push_back(argv[i]);  // filters and the like, for doctest
        }
    }
    if (g_options.plugin.empty() || g_options.driver.empty()) {
        std::cerr << "chihaya-conformance: --plugin and --driver are required\n" << chihaya::conformance::kUsage;
        return 2;
    }
    std::string error;
    if (!config_file.empty() && !chihaya::conformance::read_config(config_file, error)) {
        std::cerr << "chihaya-conformance: " << error << "\n";
        return 2;
    }
    for (const auto& set : sets)
        if (!chihaya::conformance::add_pair(set, "--set", error)) {
            std::cerr << "chihaya-conformance: " << error << "\n";
            return 2;
        }
    doctest::Context context(int(doctest_args.size()), doctest_args.data());
    return context.run() == 0 ? 0 : 1;
}
