// Which CURVE server key a ReliableSubscriber's replay client trusts (docs/security.md,
// "A server key per endpoint"). Internal.
#pragma once

#include <string_view>

#include "rill/reliable.hpp"

namespace rill::reliable_detail {

/// The options of the replay client socket to `endpoint` (an announced replay endpoint, after
/// resolve_announced): options.replay_socket with the server key it trusts chosen as
///  1. the key given for exactly `endpoint` (replay_socket's server_public_key_for, else the
///     stream socket's);
///  2. else the key of the configured stream endpoints (options.endpoints) on the same tcp host
///     (the same text, or a common address after name resolution: getaddrinfo, which may
///     block), when there is one or they all agree (each endpoint's own entry, else the
///     stream's default key);
///  3. else replay_socket's default server_public_key.
/// Without CURVE client keys in options.replay_socket it is returned unchanged. Does not throw
/// beyond allocation (options.endpoints was checked by the Subscriber).
[[nodiscard]] SocketOptions replay_socket_options(const ReliableSubscriberOptions& options,
                                                  std::string_view endpoint);

}  // namespace rill::reliable_detail
