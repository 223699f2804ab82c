// rill/stream_json.hpp: stream values as one-line JSON objects (what `tap` prints).
#pragma once

#include <string>

#include "rill/reading.hpp"
#include "rill/stream.hpp"

namespace rill {

/// Appends `r` as one JSON object, without a newline:
///   {"sensor":"kitchen","seq":1,"ts":"2026-11-21T10:00:00.000000Z","temperature":21.5,
///    "humidity":40.2,"extras":{"pressure":1013.25}}
/// "extras" appears only when the reading has extras. Temperature and humidity use the
/// shortest text that reads back as the same float (21.5, not 21.500000); extras the shortest
/// for a double. A quantity not measured (rill::not_measured) is written as null, as is any other
/// non-finite number (which valid readings never hold).
void append_json(std::string& out, const Reading& r);

/// {"event":"gap","sensor":"kitchen","from":7,"to":8}
void append_json(std::string& out, const Gap& gap);

/// {"event":"heartbeat","publisher":"pi","peer":"127.0.0.1","replay":"tcp://127.0.0.1:5557",
///  "interval_ms":1000,"sent_at":"...","newest":{"kitchen":7}}
void append_json(std::string& out, const HeartbeatSeen& hb);

/// {"event":"silent","publisher":"pi","silent_for_ms":3000}
void append_json(std::string& out, const PublisherSilent& s);

/// {"event":"back","publisher":"pi"}
void append_json(std::string& out, const PublisherBack& b);

}  // namespace rill
