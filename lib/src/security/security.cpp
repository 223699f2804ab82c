#include "rill/security.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <system_error>

#include <zmq_addon.hpp>

#include "core/actor.hpp"
#include "core/text.hpp"
#include "rill/log.hpp"
#include "rill/metrics.hpp"

namespace rill {

namespace {

constexpr std::size_t z85_key_chars = 40;
constexpr std::string_view zap_endpoint = "inproc://zeromq.zap.01";

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

std::string z85_encode_key(const void* key32) {
    std::array<char, z85_key_chars + 1> out{};
    if (!zmq_z85_encode(out.data(), static_cast<const std::uint8_t*>(key32), 32)) {
        throw std::runtime_error("cannot Z85-encode a CURVE key");
    }
    return std::string(out.data(), z85_key_chars);
}

std::string generated_banner() {
    std::array<char, 32> when{};
    const auto t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    std::strftime(when.data(), when.size(), "%Y-%m-%d %H:%M:%S", &tm);
    return std::string("#   ****  Generated on ") + when.data() + " by rill-keygen  ****\n";
}

// Writes `text` to `path` with exactly `mode`, creating it (O_EXCL unless `overwrite`).
void write_file(const std::filesystem::path& path, const std::string& text, mode_t mode,
                bool overwrite) {
    const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (overwrite ? O_TRUNC : O_EXCL);
    const int fd = ::open(path.c_str(), flags, mode);
    if (fd < 0) throw_errno("cannot create key file " + path.string());
    // Set the mode before any secret is written: the umask may not remove it but an existing
    // file may have had a wider one.
    if (::fchmod(fd, mode) != 0) {
        const int err = errno;
        ::close(fd);
        errno = err;
        throw_errno("cannot set the mode of key file " + path.string());
    }
    std::size_t done = 0;
    while (done < text.size()) {
        const auto n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            const int err = errno;
            ::close(fd);
            errno = err;
            throw_errno("cannot write key file " + path.string());
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) throw_errno("cannot write key file " + path.string());
}

using detail::trim;

// Parses the ZPL subset zcert files use: sections and `name = "value"` entries, nested by
// four-space indentation, `#` comments.
CurveKeyPair parse_zcert(const std::string& text, const std::filesystem::path& path) {
    CurveKeyPair keys;
    std::vector<std::string> stack;  // the names on the path to the current line
    std::istringstream in(text);
    std::string line;
    int lineno = 0;
    const auto bad = [&](const std::string& why) {
        return std::runtime_error("key file " + path.string() + " line " + std::to_string(lineno) +
                                  ": " + why);
    };
    while (std::getline(in, line)) {
        ++lineno;
        const auto body = trim(line);
        if (body.empty() || body.front() == '#') continue;
        std::size_t indent = 0;
        while (indent < line.size() && line[indent] == ' ')
            ++indent;
        if (indent % 4 != 0) throw bad("indentation is not a multiple of four spaces");
        const auto depth = indent / 4;
        if (depth > stack.size()) throw bad("indented more than one level below its parent");
        stack.resize(depth);
        std::string_view name = body;
        std::string_view value;
        bool has_value = false;
        if (const auto eq = body.find('='); eq != std::string_view::npos) {
            name = trim(body.substr(0, eq));
            value = trim(body.substr(eq + 1));
            has_value = true;
            if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
                value.back() == value.front()) {
                value = value.substr(1, value.size() - 2);
            }
        }
        if (name.empty()) throw bad("an entry has no name");
        if (depth == 1 && stack[0] == "curve" && has_value) {
            if (name == "public-key") keys.public_key.assign(value);
            if (name == "secret-key") keys.secret_key.assign(value);
        }
        stack.emplace_back(name);
    }
    if (keys.public_key.empty()) {
        throw std::runtime_error("key file " + path.string() + " has no curve public-key");
    }
    if (!is_z85_key(keys.public_key)) {
        throw std::runtime_error("key file " + path.string() + ": public-key is not a Z85 key");
    }
    if (!keys.secret_key.empty() && !is_z85_key(keys.secret_key)) {
        throw std::runtime_error("key file " + path.string() + ": secret-key is not a Z85 key");
    }
    return keys;
}

}  // namespace

bool curve_available() noexcept {
    return zmq_has("curve") == 1;
}

bool is_z85_key(std::string_view key) noexcept {
    if (key.size() != z85_key_chars) return false;
    std::array<char, z85_key_chars + 1> text{};
    std::copy(key.begin(), key.end(), text.begin());
    std::array<std::uint8_t, 32> raw{};
    return zmq_z85_decode(raw.data(), text.data()) != nullptr;
}

CurveKeyPair generate_curve_keypair() {
    if (!curve_available()) {
        throw std::runtime_error("cannot generate a CURVE key pair: libzmq has no CURVE support");
    }
    std::array<char, z85_key_chars + 1> pub{};
    std::array<char, z85_key_chars + 1> sec{};
    if (zmq_curve_keypair(pub.data(), sec.data()) != 0) {
        throw std::runtime_error(std::string("cannot generate a CURVE key pair: ") +
                                 zmq_strerror(zmq_errno()));
    }
    return {std::string(pub.data(), z85_key_chars), std::string(sec.data(), z85_key_chars)};
}

KeyFiles write_key_files(const CurveKeyPair& keys, const std::filesystem::path& dir,
                         std::string_view name, bool overwrite) {
    if (name.empty() || name.find('/') != std::string_view::npos || name == "." || name == "..") {
        throw std::invalid_argument("key name '" + std::string(name) +
                                    "' is not a plain file name");
    }
    if (!is_z85_key(keys.public_key) || !is_z85_key(keys.secret_key)) {
        throw std::invalid_argument("cannot write key files for " + std::string(name) +
                                    ": the keys are not Z85 CURVE keys");
    }
    KeyFiles files{dir / (std::string(name) + ".key"), dir / (std::string(name) + ".key_secret")};
    const auto banner = generated_banner();
    const std::string pub_text =
        banner +
        "#   ZeroMQ CURVE Public Certificate\n"
        "#   Exchange securely, or use a secure mechanism to verify the contents\n"
        "#   of this file after exchange. Store public certificates in your home\n"
        "#   directory, in the .curve subdirectory.\n"
        "\n"
        "metadata\n"
        "curve\n"
        "    public-key = \"" +
        keys.public_key + "\"\n";
    const std::string sec_text =
        banner +
        "#   ZeroMQ CURVE **Secret** Certificate\n"
        "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n"
        "\n"
        "metadata\n"
        "curve\n"
        "    public-key = \"" +
        keys.public_key + "\"\n    secret-key = \"" + keys.secret_key + "\"\n";
    write_file(files.secret_file, sec_text, 0600, overwrite);
    write_file(files.public_file, pub_text, 0644, overwrite);
    return files;
}

CurveKeyPair read_key_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw_errno("cannot open key file " + path.string());
    std::ostringstream text;
    text << in.rdbuf();
    if (text.str().size() > 64 * 1024) {
        throw std::runtime_error("key file " + path.string() + " is too large to be a key file");
    }
    auto keys = parse_zcert(text.str(), path);
    if (!keys.secret_key.empty()) {
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
            log_warn("security", "secret key file " + path.string() +
                                     " is readable by group or others; chmod 600 it");
        }
    }
    return keys;
}

CurveServerKeys curve_server_keys(const std::filesystem::path& secret_file) {
    auto keys = read_key_file(secret_file);
    if (keys.secret_key.empty()) {
        throw std::runtime_error("key file " + secret_file.string() +
                                 " has no secret-key (use NAME.key_secret, not NAME.key)");
    }
    return {std::move(keys.public_key), std::move(keys.secret_key)};
}

CurveClientKeys curve_client_keys(const std::filesystem::path& secret_file,
                                  const std::filesystem::path& server_public_file) {
    auto own = curve_server_keys(secret_file);
    auto server = read_key_file(server_public_file);
    return {std::move(own.public_key), std::move(own.secret_key), std::move(server.public_key)};
}

std::set<std::string> read_allow_list(const std::filesystem::path& dir) {
    std::set<std::string> keys;
    std::error_code ec;
    std::filesystem::directory_iterator it(dir, ec);
    if (ec) {
        throw std::system_error(ec, "cannot list the allow-list directory " + dir.string());
    }
    for (const auto& entry : it) {
        if (entry.path().extension() != ".key") continue;
        try {
            keys.insert(read_key_file(entry.path()).public_key);
        } catch (const std::exception& e) {
            log_warn("security", std::string("skipping allow-list entry: ") + e.what());
        }
    }
    return keys;
}

// -------------------------------------------------------------------------------------------
// ZapHandler

namespace {

// An empty allow-list admits nobody (docs/security.md): say so loudly, since it is what deleting
// the last key file produces and a server that refuses everyone looks like a network fault.
void warn_if_empty(const std::filesystem::path& dir, std::size_t keys) {
    if (keys != 0) return;
    log_warn("security", "allow-list " + (dir.empty() ? std::string("(explicit)") : dir.string()) +
                             " is empty: every CURVE client will be refused");
}

}  // namespace

struct ZapHandler::Impl {
    Impl(std::filesystem::path dir, std::string own_domain)
        : allow_dir(std::move(dir)), domain(std::move(own_domain)) {}

    void start(zmq::context_t& ctx);
    void run(detail::Actor::Context& thread) noexcept;
    void answer(std::vector<zmq::message_t>& request);
    void reject_logged(const std::string& who, const std::string& why);

    std::filesystem::path allow_dir;
    std::string domain;
    mutable std::mutex mutex;
    std::shared_ptr<const std::set<std::string>> allowed;    // replaced whole under `mutex`
    std::map<std::string, std::uint64_t> rejections_by_key;  // server thread only
    Socket socket;  // the server thread's between start() and stop()
    detail::Actor actor;
    std::atomic<std::uint64_t> accepted{0};
    std::atomic<std::uint64_t> rejected{0};
};

ZapHandler::ZapHandler(zmq::context_t& ctx, std::filesystem::path allow_dir, std::string domain)
    : impl_(std::make_unique<Impl>(std::move(allow_dir), std::move(domain))) {
    impl_->allowed =
        std::make_shared<const std::set<std::string>>(read_allow_list(impl_->allow_dir));
    log_info("security", "allow-list " + impl_->allow_dir.string() + ": " +
                             std::to_string(impl_->allowed->size()) + " public key(s)");
    warn_if_empty(impl_->allow_dir, impl_->allowed->size());
    impl_->start(ctx);
}

ZapHandler::ZapHandler(zmq::context_t& ctx, std::set<std::string> allowed, std::string domain)
    : impl_(std::make_unique<Impl>(std::filesystem::path(), std::move(domain))) {
    for (const auto& k : allowed) {
        if (!is_z85_key(k)) throw std::invalid_argument("allow-list entry is not a Z85 key");
    }
    impl_->allowed = std::make_shared<const std::set<std::string>>(std::move(allowed));
    warn_if_empty(impl_->allow_dir, impl_->allowed->size());
    impl_->start(ctx);
}

ZapHandler::~ZapHandler() {
    stop();
}

void ZapHandler::Impl::start(zmq::context_t& ctx) {
    if (!curve_available()) {
        throw std::runtime_error("cannot start the ZAP handler: libzmq has no CURVE support");
    }
    socket = Socket(ctx, zmq::socket_type::rep);
    try {
        socket.raw().bind(std::string(zap_endpoint));
    } catch (const zmq::error_t& e) {
        throw std::runtime_error("cannot bind the ZAP handler on " + std::string(zap_endpoint) +
                                 " (does this context already have one?): " + e.what());
    }
    actor.start("security", [this](detail::Actor::Context& context) {
        context.ready();
        run(context);
    });
}

void ZapHandler::stop() noexcept {
    if (!impl_->actor.running()) return;
    impl_->actor.stop();
    impl_->socket.close();
}

std::size_t ZapHandler::reload() {
    if (impl_->allow_dir.empty()) {
        throw std::logic_error("ZapHandler::reload: constructed without an allow-list directory");
    }
    auto keys = std::make_shared<const std::set<std::string>>(read_allow_list(impl_->allow_dir));
    const auto n = keys->size();
    {
        std::lock_guard lock(impl_->mutex);
        impl_->allowed = std::move(keys);
    }
    log_info("security", "reloaded allow-list " + impl_->allow_dir.string() + ": " +
                             std::to_string(n) + " public key(s)");
    warn_if_empty(impl_->allow_dir, n);
    return n;
}

void ZapHandler::allow(const std::string& public_key) {
    if (!is_z85_key(public_key)) {
        throw std::invalid_argument("cannot allow '" + public_key + "': not a Z85 CURVE key");
    }
    std::lock_guard lock(impl_->mutex);
    auto next = std::make_shared<std::set<std::string>>(*impl_->allowed);
    next->insert(public_key);
    impl_->allowed = std::move(next);
}

std::uint64_t ZapHandler::accepted() const noexcept {
    return impl_->accepted.load();
}

std::uint64_t ZapHandler::rejected() const noexcept {
    return impl_->rejected.load();
}

std::size_t ZapHandler::allowed_count() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->allowed->size();
}

void ZapHandler::Impl::run(detail::Actor::Context& thread) noexcept {
    std::vector<zmq::message_t> request;
    for (;;) {
        try {
            if (!thread.wait(socket.raw())) return;
            request.clear();
            if (!zmq::recv_multipart(socket.raw(), std::back_inserter(request),
                                     zmq::recv_flags::dontwait)) {
                continue;
            }
            answer(request);
        } catch (const zmq::error_t& e) {
            if (e.num() == EINTR) continue;
            log_error("security", std::string("ZAP handler failed, stopping: ") + e.what());
            return;
        } catch (const std::exception& e) {
            log_error("security", std::string("ZAP handler: ") + e.what());
        }
    }
}

void ZapHandler::Impl::reject_logged(const std::string& who, const std::string& why) {
    ++rejected;
    default_registry()
        .counter("rill_security_rejected_total",
                 "Clients the ZAP handler refused (unknown CURVE key, or no CURVE)")
        .inc();
    if (rejections_by_key.size() > 4096) rejections_by_key.clear();
    const auto n = ++rejections_by_key[who];
    // A client in a restart loop knocks again and again: log its 1st, 2nd, 4th, 8th ... try.
    if ((n & (n - 1)) == 0) {
        log_warn("security", "rejected " + why + " (" + std::to_string(n) + " time(s) so far)");
    }
}

void ZapHandler::Impl::answer(std::vector<zmq::message_t>& req) {
    // Request (RFC 27): version, request id, domain, address, identity, mechanism, credentials...
    // Reply: version, request id, status code, status text, user id, metadata.
    std::string request_id = req.size() > 1 ? req[1].to_string() : std::string();
    const auto reply = [&](std::string_view code, std::string_view text, std::string_view user) {
        std::array<zmq::const_buffer, 6> frames{zmq::str_buffer("1.0"), zmq::buffer(request_id),
                                                zmq::buffer(code),      zmq::buffer(text),
                                                zmq::buffer(user),      zmq::const_buffer()};
        (void)zmq::send_multipart(socket.raw(), frames);
    };
    if (req.size() < 6 || req[0].to_string_view() != "1.0") {
        reject_logged("(malformed)", "a malformed ZAP request");
        reply("500", "malformed ZAP request", "");
        return;
    }
    const auto asked_domain = req[2].to_string();
    const auto address = req[3].to_string();
    const auto mechanism = req[5].to_string();
    if (mechanism == "CURVE") {
        if (req.size() != 7 || req[6].size() != 32) {
            reject_logged("(malformed)",
                          "a CURVE client from " + address + " with malformed credentials");
            reply("400", "malformed credentials", "");
            return;
        }
        const auto key = z85_encode_key(req[6].data());
        std::shared_ptr<const std::set<std::string>> keys;
        {
            std::lock_guard lock(mutex);
            keys = allowed;
        }
        if (keys->count(key) != 0) {
            ++accepted;
            log_debug("security", "admitted CURVE client " + key + " from " + address);
            reply("200", "OK", key);
        } else {
            reject_logged(key, "CURVE client " + key + " from " + address + " (domain '" +
                                   asked_domain + "'): public key not in the allow-list");
            reply("400", "public key not allowed", "");
        }
        return;
    }
    if (asked_domain == domain) {
        reject_logged("(" + mechanism + ")", mechanism + " client from " + address +
                                                 " in domain '" + asked_domain +
                                                 "': only CURVE clients are admitted");
        reply("400", "CURVE required", "");
        return;
    }
    ++accepted;
    reply("200", "OK", "");
}

}  // namespace rill
