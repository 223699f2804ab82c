# What arm64.cmake and armhf.cmake share: a Debian 12 cross toolchain for RILL_TRIPLET, with the
# target's libraries from its multiarch directories and qemu-user (RILL_QEMU) to run its programs.
# Included by them after they set CMAKE_SYSTEM_PROCESSOR, RILL_DEB_ARCH, RILL_TRIPLET, RILL_QEMU.

set(CMAKE_C_COMPILER ${RILL_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${RILL_TRIPLET}-g++)
set(CMAKE_LIBRARY_ARCHITECTURE ${RILL_TRIPLET})

# Headers and libraries of the target only; programs (protoc-like tools, pkg-config) of the host.
set(CMAKE_FIND_ROOT_PATH /usr/${RILL_TRIPLET} /usr/lib/${RILL_TRIPLET})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# pkg-config answers for the target: its .pc files, never the host's.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/${RILL_TRIPLET}/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")

# The target's dynamic loader and libraries are the multiarch ones on / (libc6:ARCH, libzmq5:ARCH
# ... installed by ./run cross), hence -L /. Not /usr/${RILL_TRIPLET}: its loader comes from
# the cross toolchain's libc6-ARCH-cross (2.36-8cross1), which does not match the multiarch
# libc.so.6 (2.36-9+deb12u*) a program then loads from /lib/${RILL_TRIPLET}: with that mix the
# first pthread_create spins forever under qemu-user (arm64) or crashes (armhf).
set(CMAKE_CROSSCOMPILING_EMULATOR ${RILL_QEMU};-L;/)

# libpq-dev is not Multi-Arch: same (installing libpq-dev:ARCH removes the build machine's), so
# ./run cross unpacks the target's libpq-dev into a private folder, RILL_CROSS_SYSROOT, and the
# target's libpq5 (which is Multi-Arch: same) is installed as usual.
if(DEFINED ENV{RILL_CROSS_SYSROOT} AND NOT RILL_CROSS_SYSROOT)
  set(RILL_CROSS_SYSROOT $ENV{RILL_CROSS_SYSROOT})
endif()
if(RILL_CROSS_SYSROOT)
  set(PostgreSQL_INCLUDE_DIR ${RILL_CROSS_SYSROOT}/usr/include/postgresql CACHE PATH "")
  set(PostgreSQL_TYPE_INCLUDE_DIR ${RILL_CROSS_SYSROOT}/usr/include/postgresql CACHE PATH "")
  set(PostgreSQL_LIBRARY /usr/lib/${RILL_TRIPLET}/libpq.so.5 CACHE FILEPATH "")
endif()
