# Shared by tools/demo.sh and tools/test.sh: install the Debian packages
# impexfs needs, then configure and build it. Sourced, not run.

IMPEX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Build tools and libraries, and the reference tools the tests and the demo
# check impexfs against (qemu-img, vhdiinfo, rsync, sfdisk of fdisk, debugfs of
# e2fsprogs); bash-completion, whose folder meson installs impex's completion
# into (the tests load it from there).
IMPEX_PACKAGES=(
	gcc meson ninja-build pkg-config python3
	libfuse3-dev fuse3 libxml2-dev libcmocka-dev uuid-dev libjansson-dev
	qemu-utils libvhdi-utils rsync e2fsprogs fdisk bash-completion
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

# impex_tsan_ready PROGRAM: make ThreadSanitizer's programs runnable here, with
# PROGRAM (one of them) as the probe. Sets IMPEX_TSAN_RUN to the command prefix
# that runs them (empty, or setarch without address space randomization) and
# returns 0; or says why they cannot run and returns 1.
#
# ThreadSanitizer keeps its shadow memory at fixed addresses. Kernels that
# randomize mmap with more than 28 bits (vm.mmap_rnd_bits = 32 on many 6.x
# kernels) may place libraries there, and every program then dies with "FATAL:
# ThreadSanitizer: unexpected memory mapping" (GCC 12's runtime does not retry).
# Running the tests under `setarch -R` (personality ADDR_NO_RANDOMIZE, which
# meson, Python, impexfs and impex inherit) avoids it without changing the
# machine. Where a seccomp filter refuses that personality (containers), root
# lowers vm.mmap_rnd_bits to 28 for the run, and impex_tsan_done puts it back.
impex_tsan_ready() {
	local probe=$1 arch out
	IMPEX_TSAN_RUN=()
	if out=$("$probe" --version 2>&1); then
		return 0
	fi
	arch=$(uname -m)
	if setarch "$arch" -R "$probe" --version >/dev/null 2>&1; then
		IMPEX_TSAN_RUN=(setarch "$arch" -R)
		return 0
	fi
	if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/vm/mmap_rnd_bits ]; then
		IMPEX_MMAP_RND_BITS=$(cat /proc/sys/vm/mmap_rnd_bits)
		if echo 28 >/proc/sys/vm/mmap_rnd_bits 2>/dev/null && "$probe" --version >/dev/null 2>&1; then
			echo "vm.mmap_rnd_bits lowered from $IMPEX_MMAP_RND_BITS to 28 for ThreadSanitizer"
			return 0
		fi
		impex_tsan_done
	fi
	echo "error: ThreadSanitizer's programs cannot run here: ${out:0:300}" >&2
	return 1
}

# Undo what impex_tsan_ready changed on the machine, if anything.
impex_tsan_done() {
	if [ -n "${IMPEX_MMAP_RND_BITS:-}" ]; then
		echo "$IMPEX_MMAP_RND_BITS" >/proc/sys/vm/mmap_rnd_bits
		IMPEX_MMAP_RND_BITS=
	fi
}
