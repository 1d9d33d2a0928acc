// cluster.cpp: slot map from CLUSTER SLOTS, MOVED/ASK redirects, and the nodes' connections.
#include "cluster.hpp"

#include "resp.hpp"

#include <hiredis/hiredis.h>

#include <boost/asio/post.hpp>

#include <stdexcept>
#include <thread>

namespace chihaya::redis {

namespace {

// While a slot's node is unreachable, CLUSTER SLOTS this often: a failover shows up in the map
// within about this much of the cluster electing the replica (cluster-node-timeout + ~1 s).
constexpr std::chrono::milliseconds kPollInterval{50};

}  // namespace

// The background CLUSTER SLOTS query; at most one is in flight (refreshing_).
class Topology::SlotsRefresh final : public Command {
public:
    explicit SlotsRefresh(Topology& topology) : topology_(topology) {
        resp::array(wire, 2);
        resp::bulk(wire, "CLUSTER");
        resp::bulk(wire, "SLOTS");
    }
    void on_reply(Connection& from, redisReply* reply) noexcept override {
        if (reply->type == REDIS_REPLY_ARRAY) {
            try {
                topology_.apply_slots(reply, from.endpoint());
            } catch (...) {
                // A map we cannot apply keeps the old one; the next MOVED asks again.
            }
        }
        topology_.refreshing_.store(false, std::memory_order_release);
    }
    void on_failure(const char*) noexcept override {
        topology_.refreshing_.store(false, std::memory_order_release);
    }

private:
    Topology& topology_;
};

Topology::Topology(IoPool& io, const ConnectionOptions& options, unsigned connections_per_node,
                   bool cluster, const chihaya::Host& log)
    : io_(io), options_(options), per_node_(connections_per_node), cluster_(cluster), log_(log),
      poll_timer_(io.next()) {
    refresh_ = std::make_unique<SlotsRefresh>(*this);
}

Topology::~Topology() = default;

Topology::Node* Topology::add_node(const Endpoint& endpoint, bool start) {
    auto node = std::make_unique<Node>();
    node->endpoint = endpoint;
    for (unsigned i = 0; i < per_node_; ++i) {
        node->connections.push_back(std::make_unique<Connection>(io_.next(), endpoint, options_, log_));
        if (cluster_) node->connections.back()->on_down([this] { suspect_stale(); });
    }
    if (start)
        for (auto& c : node->connections) c->start();
    nodes_.push_back(std::move(node));
    return nodes_.back().get();
}

Topology::Node* Topology::node_for(std::string_view address) {
    std::lock_guard lock(nodes_mutex_);
    for (auto& n : nodes_)
        if (n->endpoint.text == address) return n.get();
    Endpoint e = parse_endpoint(address);
    if (started_) log_.info("cluster: new node " + e.text);
    return add_node(e, started_);
}

void Topology::apply_slots(const redisReply* reply, const Endpoint& asked) {
    for (size_t i = 0; i < reply->elements; ++i) {
        const redisReply* range = reply->element[i];
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3) continue;
        const redisReply* master = range->element[2];
        if (range->element[0]->type != REDIS_REPLY_INTEGER ||
            range->element[1]->type != REDIS_REPLY_INTEGER || master->type != REDIS_REPLY_ARRAY ||
            master->elements < 2 || master->element[0]->type != REDIS_REPLY_STRING ||
            master->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        long long first = range->element[0]->integer, last = range->element[1]->integer;
        if (first < 0 || last >= kSlotCount || first > last) continue;
        // An empty or "?" host means "the node you asked" (cluster-announce-hostname unset).
        std::string host(master->element[0]->str, master->element[0]->len);
        if (host.empty() || host == "?") host = asked.host;
        Node* node = node_for(host + ":" + std::to_string(master->element[1]->integer));
        for (long long s = first; s <= last; ++s) slots_[s].store(node, std::memory_order_release);
    }
}

void Topology::bootstrap(const std::vector<Endpoint>& seeds) {
    if (!cluster_) {
        if (seeds.size() != 1)
            throw std::invalid_argument("redis: addresses lists " + std::to_string(seeds.size()) +
                                        " nodes; set cluster = true for a Redis Cluster, or give one address");
        std::lock_guard lock(nodes_mutex_);
        Node* node = add_node(seeds[0], false);
        for (auto& s : slots_) s.store(node, std::memory_order_relaxed);
    } else {
        std::string last_error = "no seed address";
        bool mapped = false;
        timeval tv{options_.connect_timeout.count() / 1000,
                   static_cast<suseconds_t>(options_.connect_timeout.count() % 1000 * 1000)};
        for (const Endpoint& seed : seeds) {
            redisContext* c = seed.unix_path.empty() ? redisConnectWithTimeout(seed.host.c_str(), seed.port, tv)
                                                     : redisConnectUnixWithTimeout(seed.unix_path.c_str(), tv);
            if (!c || c->err) {
                last_error = seed.text + ": " + (c ? c->errstr : "out of memory");
                if (c) redisFree(c);
                continue;
            }
            redisSetTimeout(c, tv);
            bool ok = true;
            if (!options_.password.empty()) {
                auto* r = static_cast<redisReply*>(
                    options_.user.empty() ? redisCommand(c, "AUTH %s", options_.password.c_str())
                                          : redisCommand(c, "AUTH %s %s", options_.user.c_str(),
                                                         options_.password.c_str()));
                if (!r || r->type == REDIS_REPLY_ERROR) {
                    last_error = seed.text + ": AUTH: " + (r ? std::string(r->str, r->len) : c->errstr);
                    ok = false;
                }
                if (r) freeReplyObject(r);
            }
            if (ok) {
                auto* r = static_cast<redisReply*>(redisCommand(c, "CLUSTER SLOTS"));
                if (r && r->type == REDIS_REPLY_ARRAY) {
                    apply_slots(r, seed);
                    mapped = true;
                } else {
                    last_error = seed.text + ": CLUSTER SLOTS: " +
                                 (r ? (r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : "unexpected reply")
                                    : std::string(c->errstr));
                }
                if (r) freeReplyObject(r);
            }
            redisFree(c);
            if (mapped) break;
        }
        if (!mapped) throw std::runtime_error("redis cluster: no seed answered CLUSTER SLOTS (" + last_error + ")");
        size_t unowned = 0;
        for (auto& s : slots_)
            if (!s.load(std::memory_order_relaxed)) ++unowned;
        if (unowned)
            throw std::runtime_error("redis cluster: " + std::to_string(unowned) +
                                     " of 16384 slots have no node (cluster not ready?)");
    }
    std::lock_guard lock(nodes_mutex_);
    started_ = true;
    for (auto& n : nodes_)
        for (auto& c : n->connections) c->start();
}

size_t Topology::wait_ready(std::chrono::milliseconds limit) {
    auto deadline = Clock::now() + limit;
    for (;;) {
        size_t down = 0;
        {
            std::lock_guard lock(nodes_mutex_);
            for (auto& n : nodes_)
                for (auto& c : n->connections)
                    if (!c->ready()) ++down;
        }
        if (down == 0 || Clock::now() >= deadline) return down;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

void Topology::shutdown() {
    closing_.store(true, std::memory_order_release);
    asio::post(poll_timer_.get_executor(), [this] { poll_timer_.cancel(); });
    {
        std::lock_guard lock(nodes_mutex_);
        for (auto& n : nodes_)
            for (auto& c : n->connections) c->shutdown();
    }
    io_.join();
    std::lock_guard lock(nodes_mutex_);
    for (auto& n : nodes_)
        for (auto& c : n->connections) c->fail_unsent("the redis driver is shutting down");
}

namespace {

Connection* pick(std::vector<std::unique_ptr<Connection>>& connections, std::atomic<uint32_t>& next) noexcept {
    size_t n = connections.size();
    uint32_t first = next.fetch_add(1, std::memory_order_relaxed);
    for (size_t i = 0; i < n; ++i) {
        Connection* c = connections[(first + i) % n].get();
        if (c->ready()) return c;
    }
    return connections[first % n].get();
}

}  // namespace

Connection* Topology::route(uint16_t slot) noexcept {
    Node* node = slots_[slot & (kSlotCount - 1)].load(std::memory_order_acquire);
    return node ? pick(node->connections, node->next) : nullptr;
}

Connection* Topology::redirect(uint16_t slot, std::string_view address, bool moved) noexcept {
    if (!cluster_) return nullptr;
    Node* node = nullptr;
    try {
        node = node_for(address);
    } catch (...) {
        return nullptr;
    }
    if (moved) {
        slots_[slot & (kSlotCount - 1)].store(node, std::memory_order_release);
        refresh_soon();
    }
    return pick(node->connections, node->next);
}

void Topology::refresh_soon() noexcept {
    if (refreshing_.exchange(true, std::memory_order_acq_rel)) return;
    Connection* target = nullptr;
    {
        std::lock_guard lock(nodes_mutex_);
        for (auto& n : nodes_)
            for (auto& c : n->connections)
                if (!target && c->ready()) target = c.get();
    }
    if (!target) {
        refreshing_.store(false, std::memory_order_release);
        return;
    }
    target->submit(refresh_.get());
}

}  // namespace chihaya::redis

namespace chihaya::redis {

void Topology::suspect_stale() noexcept {
    if (!cluster_ || closing_.load(std::memory_order_acquire)) return;
    refresh_soon();
    if (polling_.exchange(true, std::memory_order_acq_rel)) return;
    try {
        asio::post(poll_timer_.get_executor(), [this] {
            poll_timer_.expires_after(kPollInterval);
            poll_timer_.async_wait([this](const boost::system::error_code& ec) {
                if (ec != asio::error::operation_aborted) poll();
                else polling_.store(false, std::memory_order_release);
            });
        });
    } catch (...) {
        polling_.store(false, std::memory_order_release);
    }
}

bool Topology::slot_owner_down() noexcept {
    // Nodes are few and live as long as the Topology; a node owns slots in long ranges.
    const Node* last = nullptr;
    for (auto& s : slots_) {
        const Node* n = s.load(std::memory_order_acquire);
        if (!n || n == last) continue;
        last = n;
        bool up = false;
        for (auto& c : n->connections) up = up || c->ready();
        if (!up) return true;
    }
    return false;
}

void Topology::poll() {
    if (closing_.load(std::memory_order_acquire) || !slot_owner_down()) {
        polling_.store(false, std::memory_order_release);
        return;
    }
    refresh_soon();
    poll_timer_.expires_after(kPollInterval);
    poll_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec != asio::error::operation_aborted) poll();
        else polling_.store(false, std::memory_order_release);
    });
}

}  // namespace chihaya::redis
