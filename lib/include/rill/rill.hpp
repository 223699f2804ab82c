// rill/rill.hpp: the umbrella header; includes every public header of the core library
// (rill::rill). rill::store and rill::gpio have their own headers.
#pragma once

#include "rill/codec.hpp"
#include "rill/crc32c.hpp"
#include "rill/csv_source.hpp"
#include "rill/dht.hpp"
#include "rill/endpoint.hpp"
#include "rill/iio_source.hpp"
#include "rill/log.hpp"
#include "rill/metrics.hpp"
#include "rill/outbox.hpp"
#include "rill/reading.hpp"
#include "rill/replay.hpp"
#include "rill/rpc.hpp"
#include "rill/security.hpp"
#include "rill/sim_source.hpp"
#include "rill/socket.hpp"
#include "rill/source.hpp"
#include "rill/stream.hpp"
#include "rill/stream_json.hpp"
#include "rill/version.hpp"
