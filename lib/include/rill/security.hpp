// rill/security.hpp: CURVE key pairs, key files in czmq's zcert format, and a ZAP handler that
// admits only clients whose public key is in an allow-list directory (docs/security.md).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <zmq.hpp>

#include "rill/socket.hpp"

namespace rill {

/// True when the linked libzmq supports CURVE (zmq_has("curve")). Does not throw.
[[nodiscard]] bool curve_available() noexcept;

/// A CURVE key pair in Z85 text (40 characters each). `secret_key` is empty when only the public
/// half is known (read from a public key file).
struct CurveKeyPair {
    /// The public key, safe to hand out.
    std::string public_key;
    /// The secret key; empty when only the public key is known.
    std::string secret_key;
    /// Member-wise equality.
    bool operator==(const CurveKeyPair&) const = default;
};

/// True when `key` is 40 characters of Z85 that decode to a 32-byte key. Does not throw.
[[nodiscard]] bool is_z85_key(std::string_view key) noexcept;

/// Generates a fresh key pair (zmq_curve_keypair). Throws std::runtime_error when libzmq has no
/// CURVE support.
[[nodiscard]] CurveKeyPair generate_curve_keypair();

/// The paths write_key_files wrote.
struct KeyFiles {
    std::filesystem::path public_file;  ///< DIR/NAME.key
    std::filesystem::path secret_file;  ///< DIR/NAME.key_secret
};

/// Writes `keys` as czmq zcert files: DIR/NAME.key holding the public key (mode 0644, safe to
/// hand out) and DIR/NAME.key_secret holding both keys (mode 0600). czmq's zcert_load and
/// pyzmq's zmq.auth.load_certificate read them. Refuses to replace existing files unless
/// `overwrite`. Throws std::invalid_argument for a bad name (empty, or containing '/') or
/// invalid keys, std::system_error naming the file on I/O errors or when a file exists.
KeyFiles write_key_files(const CurveKeyPair& keys, const std::filesystem::path& dir,
                         std::string_view name, bool overwrite = false);

/// Reads a zcert file (public or secret): the `curve` section's `public-key` and, when present,
/// `secret-key`. Logs a warning when a file holding a secret key is readable by group or others.
/// Throws std::system_error when the file cannot be read, std::runtime_error naming the file
/// when it is not a zcert file with valid keys.
[[nodiscard]] CurveKeyPair read_key_file(const std::filesystem::path& path);

/// CURVE server keys for SocketOptions::curve_server, from the server's secret key file.
/// Throws as read_key_file, or std::runtime_error when the file has no secret key.
[[nodiscard]] CurveServerKeys curve_server_keys(const std::filesystem::path& secret_file);

/// CURVE client keys for SocketOptions::curve_client: this client's secret key file and the
/// server's public key file (its NAME.key). Throws as curve_server_keys.
[[nodiscard]] CurveClientKeys curve_client_keys(const std::filesystem::path& secret_file,
                                                const std::filesystem::path& server_public_file);

/// The public keys of every `*.key` file in `dir` (not recursive; `*.key_secret` files are
/// ignored). A file that cannot be read or parsed is skipped with a warning. Throws
/// std::system_error when `dir` cannot be listed.
[[nodiscard]] std::set<std::string> read_allow_list(const std::filesystem::path& dir);

/// A ZAP handler (ZeroMQ RFC 27) for one context: admits CURVE clients whose public key is in
/// the allow-list, rejects every other CURVE client (an empty allow-list admits nobody, and a
/// warning says so at construction and at each reload that finds it empty), and rejects NULL/PLAIN
/// clients of sockets in its domain. Requests of other domains with other mechanisms are admitted
/// (those sockets did not ask rill for protection).
///
/// It must exist before CURVE server sockets of the context accept connections: without a ZAP
/// handler libzmq admits every CURVE client. One per context (the ZAP endpoint
/// inproc://zeromq.zap.01 can be bound once). Threading: the constructor binds and starts one
/// thread that answers requests until stop() or the destructor; reload(), allow() and the
/// counters may be called from any thread. Each rejection is logged (rate limited per key) and
/// counted; the count is the metric rill_security_rejected_total.
class ZapHandler {
  public:
    /// Loads the allow-list from `allow_dir` (see read_allow_list) and starts answering. Throws
    /// std::system_error when the directory cannot be listed, std::runtime_error when the
    /// context already has a ZAP handler.
    ZapHandler(zmq::context_t& ctx, std::filesystem::path allow_dir, std::string domain = "rill");
    /// Starts with an explicit list of Z85 public keys and no directory.
    ZapHandler(zmq::context_t& ctx, std::set<std::string> allowed, std::string domain = "rill");
    ~ZapHandler();
    ZapHandler(const ZapHandler&) = delete;
    ZapHandler& operator=(const ZapHandler&) = delete;

    /// Re-reads the allow-list directory and replaces the list; returns the number of keys. New
    /// connections see the new list; established ones stay. Throws as read_allow_list (the old
    /// list stays in force), std::logic_error when constructed without a directory.
    std::size_t reload();
    /// Adds one Z85 public key. Throws std::invalid_argument when it is not one.
    void allow(const std::string& public_key);
    /// Stops and joins the thread; idempotent. Afterwards libzmq admits every CURVE client of the
    /// context unchecked (libzmq 4.3 without ZMQ_ZAP_ENFORCE_DOMAIN): close the CURVE server
    /// sockets first.
    void stop() noexcept;

    /// Clients admitted so far.
    [[nodiscard]] std::uint64_t accepted() const noexcept;
    /// Clients rejected so far (also counted in rill_security_rejected_total).
    [[nodiscard]] std::uint64_t rejected() const noexcept;
    /// The number of public keys in the allow-list now.
    [[nodiscard]] std::size_t allowed_count() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace rill
