// Internal: the bounds RPC puts on whatever it parses (rill::rpc_limits in rpc.hpp) as Cursor
// limits, shared by the RPC envelope (rpc.cpp) and the replay request/reply (replay.cpp).
#pragma once

#include "codec/msgpack_cursor.hpp"
#include "rill/rpc.hpp"

namespace rill::detail {

/// Nesting over max_depth is worded as "<what> is nested deeper than N levels".
inline constexpr CursorLimits rpc_parse_limits{rpc_limits::max_array_elements,
                                               rpc_limits::max_map_pairs,
                                               static_cast<int>(rpc_limits::max_depth), true};

}  // namespace rill::detail
