# Shared by the install-*.sh scripts (sourced, after setting INSTALLING to what they install):
# `die` stops with a message, `as_root` runs a command as root (directly, or through sudo).
die() { printf 'install-%s: ERROR: %s\n' "$INSTALLING" "$*" >&2; exit 1; }
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "installing $INSTALLING needs root (or sudo): $*"
  fi
}
export DEBIAN_FRONTEND=noninteractive
