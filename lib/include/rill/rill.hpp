// rill/rill.hpp: the umbrella header; includes every public header of the core library
// (rill::rill). rill::store and rill::gpio have their own headers.
#pragma once

#include "rill/codec.hpp"
#include "rill/crc32c.hpp"
#include "rill/endpoint.hpp"
#include "rill/log.hpp"
#include "rill/outbox.hpp"
#include "rill/reading.hpp"
#include "rill/socket.hpp"
