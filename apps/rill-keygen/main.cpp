// rill-keygen: writes a CURVE key pair as czmq zcert files NAME.key and NAME.key_secret.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "common/app_options.hpp"
#include "rill/security.hpp"

int main(int argc, char** argv) {
    CLI::App app{
        "rill-keygen: generate a CURVE key pair for rill.\n"
        "Writes DIR/NAME.key (the public key: copy it to the peers' allow-list directory)\n"
        "and DIR/NAME.key_secret (both keys, mode 0600: keep it on this host).\n"
        "The files use czmq's zcert format."};
    std::string name;
    std::string dir = ".";
    bool force = false;
    app.add_option("name", name, "key name: the files are NAME.key and NAME.key_secret")
        ->required();
    app.add_option("-d,--dir", dir, "directory to write the files to (created if missing)")
        ->envname("RILL_KEY_DIR")
        ->capture_default_str();
    app.add_flag("-f,--force", force, "replace existing key files")->envname("RILL_KEY_FORCE");
    // No ZeroMQ context and no log settings here: rill::app::run_main would bring both.
    if (const auto code = rill::app::parse_command_line(app, argc, argv, "rill-keygen")) {
        return *code;
    }

    try {
        std::filesystem::create_directories(dir);
        const auto files = rill::write_key_files(rill::generate_curve_keypair(), dir, name, force);
        std::cout << "public key: " << files.public_file.string() << "\n"
                  << "secret key: " << files.secret_file.string() << " (mode 0600)\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "rill-keygen: " << e.what() << "\n";
        return 1;
    }
}
