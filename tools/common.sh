# Shared by tools/demo.sh and tools/test.sh: install the Debian packages
# impexfs needs, then configure and build it. Sourced, not run.

IMPEX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Build tools and libraries, and the reference tools the tests and the demo
# check impexfs against (qemu-img, vhdiinfo, rsync).
IMPEX_PACKAGES=(
	gcc meson ninja-build pkg-config python3
	libfuse3-dev fuse3 libxml2-dev libcmocka-dev uuid-dev
	qemu-utils libvhdi-utils rsync e2fsprogs
)

# Install whatever of "$@" is missing (as root, or through sudo).
impex_install_packages() {
	local missing=() pkg
	for pkg in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
			missing+=("$pkg")
		fi
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "Installing: ${missing[*]}"
	local sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || {
			echo "error: packages ${missing[*]} are missing; install them as root" >&2
			return 1
		}
		sudo=(sudo)
	fi
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# impex_build DIR [MESON OPTIONS...]: configure DIR once, then build it.
impex_build() {
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$IMPEX_ROOT" "$@"
	fi
	ninja -C "$dir"
}
