#!/usr/bin/env bash
# Builds rill's Debian packages with cpack from a built tree, checks their control fields and
# file lists, installs them for real with dpkg into a throwaway root (its own dpkg database;
# maintainer scripts run outside a chroot with DPKG_ROOT set, as dpkg does for
# --force-script-chrootless), runs every installed program's --help from there, checks that
# each env file sets only variables its program reads, verifies the installed units with
# `systemd-analyze verify --root`, and removes and purges the packages again.
#
#   package_test.sh BUILD_DIR [EMULATOR]
#
# A cross build's packages (BUILD_DIR configured with cmake/toolchains/ARCH.cmake) are checked
# the same way for their architecture: the throwaway root's dpkg gets that architecture added,
# and the installed programs run under EMULATOR ("qemu-aarch64-static -L /").
set -euo pipefail
build_dir="$(cd "$1" && pwd)"
read -r -a emulator <<<"${2:-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}
step() { printf '== %s\n' "$*"; }

for tool in cpack dpkg dpkg-deb dpkg-shlibdeps systemd-analyze; do
    command -v "$tool" >/dev/null || fail "$tool is missing (./run deps installs dpkg-dev and systemd)"
done
version="$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build_dir/CPackConfig.cmake")"
[ -n "$version" ] || fail "no CPACK_PACKAGE_VERSION in $build_dir/CPackConfig.cmake"
arch="$(sed -n 's/^set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE "\(.*\)")$/\1/p' "$build_dir/CPackConfig.cmake")"
[ -n "$arch" ] || arch="$(dpkg --print-architecture)"
multiarch="$(dpkg-architecture -a "$arch" -qDEB_HOST_MULTIARCH 2>/dev/null)"

step "cpack -G DEB (rill $version, $arch)"
cpack --config "$build_dir/CPackConfig.cmake" -G DEB -B "$work/cpack" \
    -D CPACK_OUTPUT_FILE_PREFIX="$work/debs" >"$work/cpack.log" 2>&1 ||
    { cat "$work/cpack.log" >&2; fail "cpack failed"; }

packages=(librill-dev rill-sensor-pub rill-store-sub rill-web-view rill-tools)
packages+=(rill-mqtt-bridge)  # issue 16: checked in its own section below
deb() { echo "$work/debs/${1}_${version}_${arch}.deb"; }
for p in "${packages[@]}"; do
    [ -f "$(deb "$p")" ] || fail "no $(basename "$(deb "$p")") in: $(ls "$work/debs")"
done
[ "$(find "$work/debs" -name '*.deb' | wc -l)" -eq "${#packages[@]}" ] ||
    fail "unexpected packages: $(ls "$work/debs")"

field() { dpkg-deb -f "$(deb "$1")" "$2"; }
# expect_field PACKAGE FIELD REGEX
expect_field() {
    local value
    value="$(field "$1" "$2")"
    [[ "$value" =~ $3 ]] || fail "$1: $2 is '$value', expected to match /$3/"
}

step "control fields"
for p in "${packages[@]}"; do
    expect_field "$p" Package "^$p\$"
    expect_field "$p" Version "^$version\$"
    expect_field "$p" Architecture "^$arch\$"
    expect_field "$p" Maintainer '^[^<]+ <[^@>]+@[^>]+>$'
    expect_field "$p" Source '^rill$'
    # A one-line synopsis, then an extended description.
    [ "$(field "$p" Description | wc -l)" -ge 3 ] || fail "$p: Description has no extended part"
    expect_field "$p" Description '^[a-z]'
done
# dpkg-shlibdeps found the shared libraries each program links.
expect_field rill-sensor-pub Depends 'libzmq5'
expect_field rill-sensor-pub Depends 'libgpiod'
expect_field rill-sensor-pub Depends 'libsystemd0'
expect_field rill-sensor-pub Depends 'libstdc\+\+6'
expect_field rill-store-sub Depends 'libzmq5'
expect_field rill-store-sub Depends 'libpq5'
expect_field rill-store-sub Depends 'libsystemd0'
expect_field rill-store-sub Recommends '^postgresql$'
expect_field rill-web-view Depends 'libpq5'
expect_field rill-web-view Depends 'libzmq5'
expect_field rill-web-view Depends 'libsystemd0'
expect_field rill-tools Depends 'libzmq5'
expect_field librill-dev Depends 'libzmq3-dev'
expect_field librill-dev Depends 'cppzmq-dev'
expect_field librill-dev Depends 'libpq-dev'
expect_field librill-dev Section '^libdevel$'
# The service packages do not pull each other in.
for p in rill-sensor-pub rill-store-sub rill-web-view rill-tools; do
    [[ "$(field "$p" Depends)" != *rill* ]] || fail "$p depends on another rill package"
done

step "file lists"
# files PACKAGE: the regular files and symlinks in the package, one path a line, sorted.
files() { dpkg-deb -c "$(deb "$1")" | awk '$1 !~ /^d/ {print $6}' | sed 's|^\./|/|' | sort; }
# expect_files PACKAGE PATH...: exactly these files.
expect_files() {
    local p="$1"
    shift
    local want
    want="$(printf '%s\n' "$@" | sort)"
    [ "$(files "$p")" = "$want" ] ||
        fail "$p holds:"$'\n'"$(files "$p")"$'\n'"expected:"$'\n'"$want"
}
expect_files rill-sensor-pub /usr/bin/sensor-pub /lib/systemd/system/rill-sensor-pub.service \
    /etc/rill/sensor-pub.env
expect_files rill-store-sub /usr/bin/store-sub /lib/systemd/system/rill-store-sub.service \
    /etc/rill/store-sub.env
expect_files rill-web-view /usr/bin/web-view /lib/systemd/system/rill-web-view.service \
    /etc/rill/web-view.env
expect_files rill-tools /usr/bin/tap /usr/bin/rill-keygen
dev_files="$(files librill-dev)"
for f in /usr/include/rill/rill.hpp /usr/lib/librill.a /usr/lib/librill_store.a \
    /usr/lib/librill_gpio.a /usr/lib/cmake/rill/rillConfig.cmake \
    /usr/lib/cmake/rill/rillConfigVersion.cmake /usr/lib/cmake/rill/rillTargets.cmake \
    /usr/lib/pkgconfig/rill.pc; do
    grep -qx "$f" <<<"$dev_files" || grep -qx "${f/\/usr\/lib\//\/usr\/lib\/$multiarch\/}" <<<"$dev_files" ||
        fail "librill-dev lacks $f; it holds:"$'\n'"$dev_files"
done
grep -v -E '^/usr/(include/rill/|lib/)' <<<"$dev_files" && fail "librill-dev holds files outside /usr/include/rill and /usr/lib (above)"
for s in sensor-pub store-sub web-view; do
    conffiles="$(dpkg-deb --ctrl-tarfile "$(deb "rill-$s")" | tar -xO ./conffiles)"
    [ "$conffiles" = "/etc/rill/$s.env" ] || fail "rill-$s conffiles: '$conffiles'"
done

step "dpkg --root: install into a throwaway root"
root="$work/root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
# --force-depends: the root's database knows none of the dependencies (libzmq5, ...); the
# programs run with the host's shared libraries. --force-script-chrootless: the root has no
# shell to chroot into; the scripts see DPKG_ROOT and leave the host's systemd alone.
dpkg_root() {
    dpkg --root="$root" --force-depends --force-script-chrootless --log=/dev/null "$@" \
        >>"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg $*"; }
}
debs=()
for p in "${packages[@]}"; do debs+=("$(deb "$p")"); done
if [ "$arch" != "$(dpkg --print-architecture)" ]; then dpkg_root --add-architecture "$arch"; fi
dpkg_root -i "${debs[@]}"
for p in "${packages[@]}"; do
    status="$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Status}' "$p")"
    [ "$status" = "install ok installed" ] || fail "$p: status '$status' after dpkg -i"
done

step "installed programs answer --help${emulator[0]:+ (under ${emulator[0]})}"
for prog in sensor-pub store-sub web-view tap rill-keygen; do
    exe="$root/usr/bin/$prog"
    [ -x "$exe" ] || fail "$exe is not installed"
    # Built for $arch: a cross build's programs are foreign here, run by the emulator.
    machine="$(LC_ALL=C readelf -h "$exe" | sed -n 's/^ *Machine: *//p')"
    case "$arch" in
        amd64) [[ "$machine" == *X86-64* ]] ;;
        arm64) [[ "$machine" == *AArch64* ]] ;;
        armhf) [[ "$machine" == ARM ]] ;;
        *) true ;;
    esac || fail "$prog is built for '$machine', not $arch"
    "${emulator[@]}" "$exe" --help >"$work/$prog.help" 2>&1 || { cat "$work/$prog.help" >&2; fail "$prog --help"; }
    grep -q "^$prog: " "$work/$prog.help" || fail "$prog --help does not describe $prog"
done

step "each env file sets only variables its program reads"
for s in sensor-pub store-sub web-view; do
    env_file="$root/etc/rill/$s.env"
    [ -f "$env_file" ] || fail "$env_file is not installed"
    names="$(sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/\1/p' "$env_file")"
    [ -n "$names" ] || fail "$env_file sets nothing"
    for n in $names; do
        grep -q "Env:$n\b" "$work/$s.help" || fail "$env_file sets $n, which $s --help does not list"
    done
    grep -qx "EnvironmentFile=/etc/rill/$s.env" "$root/lib/systemd/system/rill-$s.service" ||
        fail "rill-$s.service does not read /etc/rill/$s.env"
    grep -qx "Type=notify" "$root/lib/systemd/system/rill-$s.service" ||
        fail "rill-$s.service is not Type=notify"
done

step "rill-sensor-pub's postinst creates the gpio group its unit's SupplementaryGroups= needs"
# Run for real (groupadd, not a stand-in) against a copy of /etc, bind-mounted over /etc in a
# private mount namespace, so the host's groups are never touched. DPKG_ROOT unset: a normal
# install. No systemd runs here, so the script does nothing else.
etc_copy="$work/etc"
cp -a /etc "$etc_copy"
sed -i '/^gpio:/d' "$etc_copy/group" "$etc_copy/gshadow"
dpkg-deb --ctrl-tarfile "$(deb rill-sensor-pub)" | tar -xO ./postinst >"$work/postinst"
env -u DPKG_ROOT unshare --mount sh -c 'mount --bind "$1" /etc && sh "$2" configure' sh \
    "$etc_copy" "$work/postinst" || fail "rill-sensor-pub postinst configure"
grep -q '^gpio:x:' "$etc_copy/group" || fail "rill-sensor-pub postinst did not create the gpio group"
grep -q '^SupplementaryGroups=gpio$' "$root/lib/systemd/system/rill-sensor-pub.service" ||
    fail "rill-sensor-pub.service no longer asks for gpio: drop the group from the package too"
env -u DPKG_ROOT unshare --mount sh -c 'mount --bind "$1" /etc && sh "$2" configure 0.1.0' sh \
    "$etc_copy" "$work/postinst" || fail "rill-sensor-pub postinst is not idempotent"
[ "$(grep -c '^gpio:' "$etc_copy/group")" = 1 ] || fail "the gpio group was created twice"

step "systemd-analyze verify --root on the installed units"
# --root makes verify look for the ExecStart= binaries in the throwaway root, so the units are
# checked exactly as installed. The units' default dependencies (sysinit.target, system.slice
# ...) come with systemd, which the root lacks: the host's targets and slices stand in for it.
# The exit status alone misses some problems (an unknown setting is only logged), so any
# output counts as a failure.
mkdir -p "$root/usr/lib/systemd/system"
cp /lib/systemd/system/*.target /lib/systemd/system/*.slice "$root/usr/lib/systemd/system/"
units=()
for s in sensor-pub store-sub web-view; do units+=("$root/lib/systemd/system/rill-$s.service"); done
if ! SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --root="$root" --man=no \
    "${units[@]}" >"$work/verify.log" 2>&1 || [ -s "$work/verify.log" ]; then
    cat "$work/verify.log" >&2
    fail "systemd-analyze verify"
fi

step "rill-mqtt-bridge: files, --help, env file, unit, removal"
expect_field rill-mqtt-bridge Depends 'libmosquitto1'
expect_field rill-mqtt-bridge Depends 'libsystemd0'
expect_files rill-mqtt-bridge /usr/bin/mqtt-bridge /lib/systemd/system/rill-mqtt-bridge.service \
    /etc/rill/mqtt-bridge.env
conffiles="$(dpkg-deb --ctrl-tarfile "$(deb rill-mqtt-bridge)" | tar -xO ./conffiles)"
[ "$conffiles" = "/etc/rill/mqtt-bridge.env" ] || fail "rill-mqtt-bridge conffiles: '$conffiles'"
"${emulator[@]}" "$root/usr/bin/mqtt-bridge" --help >"$work/mqtt-bridge.help" 2>&1 ||
    { cat "$work/mqtt-bridge.help" >&2; fail "mqtt-bridge --help"; }
grep -q "^mqtt-bridge: " "$work/mqtt-bridge.help" || fail "mqtt-bridge --help does not describe it"
for n in $(sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/\1/p' "$root/etc/rill/mqtt-bridge.env"); do
    grep -q "Env:$n\b" "$work/mqtt-bridge.help" ||
        fail "mqtt-bridge.env sets $n, which mqtt-bridge --help does not list"
done
grep -qx "Type=notify" "$root/lib/systemd/system/rill-mqtt-bridge.service" ||
    fail "rill-mqtt-bridge.service is not Type=notify"
if ! SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --root="$root" --man=no \
    "$root/lib/systemd/system/rill-mqtt-bridge.service" >"$work/verify-mqtt.log" 2>&1 ||
    [ -s "$work/verify-mqtt.log" ]; then
    cat "$work/verify-mqtt.log" >&2
    fail "systemd-analyze verify rill-mqtt-bridge.service"
fi
dpkg_root --purge rill-mqtt-bridge
[ ! -e "$root/usr/bin/mqtt-bridge" ] || fail "dpkg --purge left /usr/bin/mqtt-bridge"
[ ! -e "$root/etc/rill/mqtt-bridge.env" ] || fail "dpkg --purge left /etc/rill/mqtt-bridge.env"

step "dpkg -r keeps the edited env files, dpkg --purge removes them"
echo "# edited" >>"$root/etc/rill/store-sub.env"
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -s /lib/systemd/system/rill-store-sub.service \
    "$root/etc/systemd/system/multi-user.target.wants/rill-store-sub.service"
dpkg_root -r rill-sensor-pub rill-store-sub rill-web-view rill-tools librill-dev
[ ! -e "$root/usr/bin/store-sub" ] || fail "dpkg -r left /usr/bin/store-sub"
grep -q '^# edited' "$root/etc/rill/store-sub.env" || fail "dpkg -r removed an edited conffile"
dpkg_root --purge rill-sensor-pub rill-store-sub rill-web-view
[ ! -e "$root/etc/rill/store-sub.env" ] || fail "dpkg --purge left /etc/rill/store-sub.env"
[ ! -L "$root/etc/systemd/system/multi-user.target.wants/rill-store-sub.service" ] ||
    fail "dpkg --purge left the enable link of rill-store-sub.service"

step "ok: $(cd "$work/debs" && ls -1 | tr '\n' ' ')"
