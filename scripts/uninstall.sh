#!/usr/bin/env bash
# Remove runpod-watchdog installed by scripts/install.sh.
#
#   sudo scripts/uninstall.sh            # stop and remove the service and the venv; KEEP config,
#                                        # credentials, the ledger and the system user
#   sudo scripts/uninstall.sh --purge    # also delete /etc/runpod-watchdog (config AND secrets),
#                                        # /var/lib/runpod-watchdog (the ledger) and the user/group
#
# The ledger is the only record of what was spent and what the watchdog did; it is kept by default so
# a reinstall picks up where it left off. With --root other than /, it never calls systemctl or userdel.
set -euo pipefail

NAME=runpod-watchdog
ROOT=/
PREFIX=/opt/$NAME
PURGE=0

usage() {
    cat <<EOF
usage: $0 [--root DIR] [--prefix DIR] [--purge]

  --root DIR    uninstall from below DIR instead of / (as given to install.sh). Default: /
  --prefix DIR  the --prefix given to install.sh. Default: /opt/$NAME
  --purge       also delete config, credentials, the ledger and the system user/group
EOF
}

die() { echo "uninstall.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
        --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
        --purge) PURGE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

case "$PREFIX" in /*) ;; *) die "--prefix must be an absolute path: $PREFIX" ;; esac
PREFIX=${PREFIX%/}
if [ "$ROOT" = / ]; then
    DEST=""
    [ "$(id -u)" -eq 0 ] || die "uninstalling from / needs root: sudo $0"
else
    [ -d "$ROOT" ] || die "--root: no such directory: $ROOT"
    DEST=$(cd "$ROOT" && pwd)
    case "$PREFIX/" in "$DEST"/*) ;; *) die "--prefix $PREFIX must be inside --root $DEST" ;; esac
fi
if [ "$PREFIX" = / ] || [ "$PREFIX" = "$DEST" ]; then die "refusing to use --prefix $PREFIX"; fi

unit=$DEST/etc/systemd/system/$NAME.service
if [ -z "$DEST" ] && [ -d /run/systemd/system ]; then
    # Stop first: the venv is about to disappear under a running daemon.
    systemctl disable --now "$NAME" 2>/dev/null || true
fi
rm -f "$unit"
rm -rf "$DEST/etc/systemd/system/$NAME.service.d"
if [ -z "$DEST" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl reset-failed "$NAME" 2>/dev/null || true
fi
echo "removed the unit $unit"

rm -rf "$PREFIX/venv" "$PREFIX/share"
rmdir "$PREFIX" 2>/dev/null || true
echo "removed $PREFIX/venv"

if [ "$PURGE" = 1 ]; then
    rm -rf "$DEST/etc/${NAME:?}" "$DEST/var/lib/${NAME:?}" "$DEST/run/${NAME:?}"
    echo "purged $DEST/etc/$NAME (config and credentials) and $DEST/var/lib/$NAME (the ledger)"
    if [ -z "$DEST" ]; then
        if getent passwd "$NAME" >/dev/null; then userdel "$NAME"; echo "removed system user $NAME"; fi
        if getent group "$NAME" >/dev/null; then groupdel "$NAME"; echo "removed system group $NAME"; fi
    fi
else
    echo "kept $DEST/etc/$NAME (config.toml and credentials/ - delete the secrets yourself if the key"
    echo "     should no longer live on this machine, or revoke it in the RunPod console)"
    echo "kept $DEST/var/lib/$NAME (the ledger)"
    [ -z "$DEST" ] && echo "kept the system user and group $NAME"
    echo "run again with --purge to delete them too"
fi
