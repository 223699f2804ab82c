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
