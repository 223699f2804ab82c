# Debian packages with CPack (./run package, or `cpack -G DEB` in the build directory).
#
#   librill-dev      headers, static libraries, CMake config and rill.pc    (component dev)
#   rill-sensor-pub  /usr/bin/sensor-pub + rill-sensor-pub.service + /etc/rill/sensor-pub.env
#   rill-store-sub   /usr/bin/store-sub  + rill-store-sub.service  + /etc/rill/store-sub.env
#   rill-web-view    /usr/bin/web-view   + rill-web-view.service   + /etc/rill/web-view.env
#   rill-mqtt-bridge /usr/bin/mqtt-bridge + rill-mqtt-bridge.service + /etc/rill/mqtt-bridge.env
#   rill-tools       /usr/bin/tap and /usr/bin/rill-keygen: operator tools wanted on any host
#                    (watch a stream from a laptop, make CURVE keys for publishers and
#                    subscribers alike), so neither rides along with one service
#
# The programs' install() rules live next to them (apps/*/CMakeLists.txt, lib/CMakeLists.txt);
# this file adds what only a package carries: the systemd units (/lib/systemd/system, where
# Debian 12 packages put them) and the env files (/etc/rill, conffiles: an upgrade keeps the
# administrator's edits). Those paths are absolute, so their install() rules are
# EXCLUDE_FROM_ALL: `cmake --install build --prefix DIR` never writes to the host's /etc or
# /lib; only a component install (which CPack does) includes them.
#
# Runtime dependencies come from dpkg-shlibdeps (Debian package dpkg-dev) over the ELF files.

set(RILL_PACKAGE_MAINTAINER "rill maintainers <rill-maintainers@example.org>"
    CACHE STRING "The Maintainer field of the Debian packages")
set(RILL_PACKAGE_DIR "${PROJECT_BINARY_DIR}/packages" CACHE PATH "Where cpack writes the .deb files")

set(RILL_SYSTEMD_UNIT_DIR "/lib/systemd/system")
set(RILL_CONFIG_DIR "/etc/rill")

# rill_package_service(<component> <package> <unit> <env file> [group...]): the unit and env
# file of one service, and its maintainer scripts (deploy/debian/*.in) with the names filled in.
# The groups are the unit's SupplementaryGroups=: postinst creates those missing as system groups.
function(rill_package_service component package unit env)
  install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/${unit}
          DESTINATION ${RILL_SYSTEMD_UNIT_DIR} COMPONENT ${component} EXCLUDE_FROM_ALL)
  install(FILES ${PROJECT_SOURCE_DIR}/deploy/env/${env}
          DESTINATION ${RILL_CONFIG_DIR} COMPONENT ${component} EXCLUDE_FROM_ALL)
  set(dir ${PROJECT_BINARY_DIR}/debian/${package})
  file(MAKE_DIRECTORY ${dir})
  set(RILL_DEB_PACKAGE ${package})
  set(RILL_DEB_UNIT ${unit})
  set(RILL_DEB_ENV ${env})
  string(JOIN " " RILL_DEB_GROUPS ${ARGN})
  set(extra "")
  foreach(script postinst prerm postrm)
    configure_file(${PROJECT_SOURCE_DIR}/deploy/debian/${script}.in ${dir}/${script} @ONLY
                   FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
                                    GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
    list(APPEND extra ${dir}/${script})
  endforeach()
  file(WRITE ${dir}/conffiles "${RILL_CONFIG_DIR}/${env}\n")
  list(APPEND extra ${dir}/conffiles)
  string(TOUPPER ${component} c)
  set(CPACK_DEBIAN_${c}_PACKAGE_CONTROL_EXTRA "${extra}" PARENT_SCOPE)
endfunction()

if(TARGET sensor-pub)
  rill_package_service(sensor-pub rill-sensor-pub rill-sensor-pub.service sensor-pub.env gpio)
endif()
if(TARGET store-sub)
  rill_package_service(store-sub rill-store-sub rill-store-sub.service store-sub.env)
endif()
if(TARGET web-view)
  rill_package_service(web-view rill-web-view rill-web-view.service web-view.env)
endif()

# --- CPack ------------------------------------------------------------------------------------
set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "rill")
set(CPACK_PACKAGE_VENDOR "rill")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "${RILL_PACKAGE_MAINTAINER}")
# Empty on purpose: each package's description (below) has its own first line, and CMake 3.25's
# CPackDeb would put this summary in front of it. CPackDeb indents the lines after the first.
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_OUTPUT_FILE_PREFIX "${RILL_PACKAGE_DIR}")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME "DEB-DEFAULT")  # NAME_VERSION_ARCH.deb
set(CPACK_DEBIAN_PACKAGE_SOURCE "rill")
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# A cross build (cmake/toolchains/ARCH.cmake sets RILL_DEB_ARCH) packages for its target, not for
# the build machine CPackDeb would ask (dpkg --print-architecture). dpkg-shlibdeps reads each ELF
# file's architecture itself and takes the target's shlibs and symbols files from the :ARCH
# packages of its libraries (./run cross installs them), with the cross objdump.
if(CMAKE_CROSSCOMPILING AND RILL_DEB_ARCH)
  set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE ${RILL_DEB_ARCH})
endif()
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_COMPONENTS_ALL dev)
foreach(component sensor-pub store-sub web-view)
  if(TARGET ${component})
    list(APPEND CPACK_COMPONENTS_ALL ${component})
  endif()
endforeach()
if(TARGET tap OR TARGET rill-keygen)
  list(APPEND CPACK_COMPONENTS_ALL tools)
endif()

# librill-dev: static libraries carry no shared-library dependencies of their own; what a
# consumer's link and find_package(rill) / pkg-config need is listed by hand.
set(CPACK_DEBIAN_DEV_PACKAGE_NAME "librill-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION "libdevel")
set(CPACK_DEBIAN_DEV_PACKAGE_SHLIBDEPS OFF)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "libzmq3-dev, cppzmq-dev, libmsgpack-cxx-dev, libpq-dev, libgpiod-dev, pkg-config, libmosquitto-dev, nlohmann-json3-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_RECOMMENDS "cmake")
set(CPACK_COMPONENT_DEV_DESCRIPTION
    "rill: brokerless sensor telemetry on ZeroMQ (development files)
The rill C++20 library as static libraries with its headers: readings and their
msgpack codec, PUB/SUB streams with heartbeats and gap detection, a durable
outbox with replay, CURVE security, Prometheus metrics (rill::rill), the
exactly-once PostgreSQL batch writer (rill::store) and the libgpiod DHT11/DHT22
source (rill::gpio). Use it with find_package(rill) or pkg-config rill.")

set(CPACK_DEBIAN_SENSOR-PUB_PACKAGE_NAME "rill-sensor-pub")
set(CPACK_DEBIAN_SENSOR-PUB_PACKAGE_SUGGESTS "rill-tools")
set(CPACK_COMPONENT_SENSOR-PUB_DESCRIPTION
    "rill sensor publisher for DHT11/DHT22, IIO, CSV or simulated sensors
sensor-pub reads a DHT11/DHT22 (libgpiod or the kernel IIO driver), a CSV file
or a simulator and publishes the readings on ZeroMQ without a broker. Every
reading is written to an on-disk outbox first, and a replay service answers
subscribers that missed some, so nothing is lost while they are down.
Runs as the systemd service rill-sensor-pub, configured in
/etc/rill/sensor-pub.env.")

set(CPACK_DEBIAN_STORE-SUB_PACKAGE_NAME "rill-store-sub")
set(CPACK_DEBIAN_STORE-SUB_PACKAGE_RECOMMENDS "postgresql")
set(CPACK_DEBIAN_STORE-SUB_PACKAGE_SUGGESTS "rill-web-view, rill-tools")
set(CPACK_COMPONENT_STORE-SUB_DESCRIPTION
    "rill subscriber that stores sensor readings in PostgreSQL exactly once
store-sub subscribes to rill sensor-pub streams and writes every reading to
PostgreSQL once, with binary COPY batches, asking the publishers to replay
whatever it missed while it or the database was down. The database may run on
another host. Runs as the systemd service rill-store-sub, configured in
/etc/rill/store-sub.env.")

set(CPACK_DEBIAN_WEB-VIEW_PACKAGE_NAME "rill-web-view")
set(CPACK_DEBIAN_WEB-VIEW_PACKAGE_SUGGESTS "rill-store-sub")
set(CPACK_COMPONENT_WEB-VIEW_DESCRIPTION
    "rill dashboard and JSON/CSV API over stored sensor readings
web-view serves a live dashboard of rill's readings table, a JSON and CSV API
and Server-Sent Events fed by the sensor-pub streams. Its page assets are built
in: it needs nothing from another origin. Runs as the systemd service
rill-web-view, configured in /etc/rill/web-view.env.")

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME "rill-tools")
set(CPACK_COMPONENT_TOOLS_DESCRIPTION
    "rill command-line tools: tap and rill-keygen
tap prints a live rill stream as JSON lines (like mosquitto_sub or kcat);
rill-keygen writes CURVE key pairs for encrypting and authenticating rill
streams.")

# rill-mqtt-bridge (issue 16): only when rill::mqtt is built.
if(TARGET mqtt-bridge)
  rill_package_service(mqtt-bridge rill-mqtt-bridge rill-mqtt-bridge.service mqtt-bridge.env)
  list(APPEND CPACK_COMPONENTS_ALL mqtt-bridge)
  set(CPACK_DEBIAN_MQTT-BRIDGE_PACKAGE_NAME "rill-mqtt-bridge")
  set(CPACK_DEBIAN_MQTT-BRIDGE_PACKAGE_SUGGESTS "mosquitto, rill-store-sub, rill-tools")
  set(CPACK_COMPONENT_MQTT-BRIDGE_DESCRIPTION
      "rill bridge from MQTT devices (Tasmota, ESPHome, Zigbee2MQTT) to rill streams
mqtt-bridge subscribes to an MQTT broker such as Mosquitto and publishes the
readings of Tasmota, ESPHome, Zigbee2MQTT and plain-number devices on ZeroMQ
like sensor-pub, so that store-sub and web-view take them unchanged. Each
message is written to an on-disk outbox before the broker's QoS 1 message is
acknowledged, and a redelivery is not stored twice. Runs as the systemd service
rill-mqtt-bridge, configured in /etc/rill/mqtt-bridge.env.")
endif()

include(CPack)
