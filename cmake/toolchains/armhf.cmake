# Cross toolchain for Debian armhf (Raspberry Pi OS 32-bit): Debian 12's
# crossbuild-essential-armhf and the :armhf -dev packages (./run cross armhf installs them).
# Foreign test programs run under qemu-user through CMAKE_CROSSCOMPILING_EMULATOR, so ctest works
# in build-armhf as it does natively.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(RILL_DEB_ARCH armhf)
set(RILL_TRIPLET arm-linux-gnueabihf)
set(RILL_QEMU qemu-arm-static)

include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)

# GCC's notes "parameter passing for argument of type ... changed in GCC 7.1" (-Wpsabi, printed
# for std::vector iterators of small structs on 32-bit ARM): they matter only when linking with
# code built by GCC older than 7.1, which nothing in Debian 12 is. Silenced, not a warning we act on.
set(CMAKE_CXX_FLAGS_INIT "-Wno-psabi")
