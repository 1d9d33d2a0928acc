// cluster.hpp: the Redis nodes the driver talks to, and which one owns each hash slot.
#pragma once

#include "connection.hpp"
#include "crc16.hpp"
#include "io_pool.hpp"

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace chihaya::redis {

// A single node (cluster = false) is the degenerate case: one node owns every slot and
// redirects are errors. In cluster mode the slot map starts from CLUSTER SLOTS of any seed,
// follows -MOVED at once (and refreshes the whole map in the background, since one moved slot
// usually means a resharding or failover moved many) and -ASK for one command.
//
// Threads: route() from any thread, lock-free (atomic slot -> node pointers); nodes are only
// ever added, under nodes_mutex_, and live until the Topology is destroyed, so a routed
// pointer never dangles.
class Topology {
public:
    Topology(IoPool& io, const ConnectionOptions& options, unsigned connections_per_node,
             bool cluster, const chihaya::Host& log);
    ~Topology();

    // Start-up, main thread. Single node: creates it (connects in the background, so a node
    // that is down at start only makes announces fail until it returns). Cluster: asks the seeds
    // for CLUSTER SLOTS with a blocking connect bounded by connect_timeout; throws when none
    // answers or the slots are not all covered.
    void bootstrap(const std::vector<Endpoint>& seeds);
    // Waits (bounded) until every connection is ready; returns how many are not.
    size_t wait_ready(std::chrono::milliseconds limit);
    void shutdown();  // main thread: closes every connection, fails what is pending

    // A ready connection of the node owning `slot` when there is one, else some connection of
    // it (which then fails the command fast), or nullptr when no node owns the slot.
    Connection* route(uint16_t slot) noexcept;
    // A redirect from Redis: "MOVED <slot> <host:port>" updates the map; "ASK" does not.
    Connection* redirect(uint16_t slot, std::string_view address, bool moved) noexcept;
    bool cluster() const noexcept { return cluster_; }
    // Any thread. Cluster only: something says the slot map may be stale (a node's connection
    // went down, a CLUSTERDOWN): CLUSTER SLOTS now, then every kPollInterval while a slot's
    // node has no ready connection. A failed-over master's slots thus move to the promoted
    // replica once the cluster has elected it; no MOVED ever comes from a dead node.
    void suspect_stale() noexcept;

private:
    struct Node {
        Endpoint endpoint;
        std::vector<std::unique_ptr<Connection>> connections;
        std::atomic<uint32_t> next{0};
    };
    class SlotsRefresh;

    Node* node_for(std::string_view address);  // finds or creates (and starts) it
    Node* add_node(const Endpoint& endpoint, bool start);
    void apply_slots(const redisReply* reply, const Endpoint& asked);
    void refresh_soon() noexcept;
    void poll();                          // on poll_timer_'s thread
    bool slot_owner_down() noexcept;      // a slot's node has no ready connection

    IoPool& io_;
    const ConnectionOptions& options_;
    const unsigned per_node_;
    const bool cluster_;
    chihaya::Host log_;

    std::mutex nodes_mutex_;
    std::vector<std::unique_ptr<Node>> nodes_;
    std::array<std::atomic<Node*>, kSlotCount> slots_{};
    std::atomic<bool> refreshing_{false};
    std::unique_ptr<SlotsRefresh> refresh_;
    bool started_ = false;
    asio::steady_timer poll_timer_;
    std::atomic<bool> polling_{false};
    std::atomic<bool> closing_{false};
};

}  // namespace chihaya::redis
