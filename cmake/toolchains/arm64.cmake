# Cross toolchain for Debian arm64 (Raspberry Pi OS 64-bit): Debian 12's
# crossbuild-essential-arm64 and the :arm64 -dev packages (./run cross arm64 installs them).
# Foreign test programs run under qemu-user through CMAKE_CROSSCOMPILING_EMULATOR, so ctest works
# in build-arm64 as it does natively.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(RILL_DEB_ARCH arm64)
set(RILL_TRIPLET aarch64-linux-gnu)
set(RILL_QEMU qemu-aarch64-static)

include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
