// crc16.hpp: Redis Cluster's key-slot function (CRC16/XMODEM of the hash tag, mod 16384).
#pragma once

#include <cstdint>
#include <string_view>

namespace chihaya::redis {

inline constexpr uint16_t kSlotCount = 16384;

uint16_t crc16(std::string_view bytes) noexcept;

// The slot Redis Cluster assigns to `key`: only the part between the first '{' and the next '}'
// is hashed when that part is non-empty, which is how all keys of one torrent share a slot.
uint16_t key_slot(std::string_view key) noexcept;

}  // namespace chihaya::redis
