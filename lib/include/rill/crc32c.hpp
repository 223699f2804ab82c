// rill/crc32c.hpp: CRC-32C (Castagnoli), the checksum of the outbox log.
#pragma once

#include <cstdint>
#include <string_view>

namespace rill {

/// Returns the CRC-32C (polynomial 0x1EDC6F41, reflected 0x82F63B78, initial value and final
/// xor 0xFFFFFFFF; the checksum of iSCSI, ext4 and LevelDB) of `data`. Pass a previous result
/// as `crc` to extend it: crc32c(b, crc32c(a)) == crc32c(a + b). crc32c("123456789") is
/// 0xE3069283. Table-driven (slicing by 8), portable, does not throw.
[[nodiscard]] std::uint32_t crc32c(std::string_view data, std::uint32_t crc = 0) noexcept;

}  // namespace rill
