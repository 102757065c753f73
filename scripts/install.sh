#!/usr/bin/env bash
# Install or upgrade runpod-watchdog as a systemd service (Debian 12+/Ubuntu 24.04+, Python >= 3.11).
#
#   sudo scripts/install.sh                 # install, or upgrade in place (running it twice is an upgrade)
#   scripts/install.sh --root /tmp/stage --prefix /tmp/stage/opt/runpod-watchdog   # staging: no root needed
#
# What it does, in order:
#   - creates the system user and group `runpod-watchdog` (only when --root is /),
#   - creates (or reuses) an isolated venv at PREFIX/venv and pip-installs this package into it
#     (its pinned dependencies only; never the runpod SDK, never the system Python's site-packages),
#   - installs the unit to ROOT/etc/systemd/system/runpod-watchdog.service (paths rewritten to PREFIX),
#   - installs ROOT/etc/runpod-watchdog/config.toml only if there is none (an upgrade keeps yours; the
#     shipped default is refreshed at PREFIX/share/config.toml.example so you can diff),
#   - creates ROOT/etc/runpod-watchdog/credentials/ (0700 root) with a README; it never writes a key,
#   - runs `systemctl daemon-reload` (only when --root is / and systemd is PID 1). It does not enable
#     or start the service: the credentials have to be in place first. It prints the next steps.
#
# With --root other than /, it never calls useradd, groupadd, chgrp to the service group or systemctl.
set -euo pipefail

NAME=runpod-watchdog
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
DEFAULT_PREFIX=/opt/$NAME

ROOT=/
PREFIX=$DEFAULT_PREFIX
FROM=$REPO
PYTHON=python3
NO_DEPS=0

usage() {
    cat <<EOF
usage: $0 [--root DIR] [--prefix DIR] [--from PATH|WHEEL] [--python EXE] [--no-deps]

  --root DIR      install below DIR instead of / (staging, tests). Default: /
  --prefix DIR    where the venv lives (PREFIX/venv). Default: $DEFAULT_PREFIX.
                  Must be inside --root when --root is not / (a venv cannot be moved afterwards).
  --from SRC      source checkout or built wheel to pip-install. Default: this checkout ($REPO).
                  The unit and config.toml always come from this checkout.
  --python EXE    interpreter that creates the venv (>= 3.11). Default: python3
  --no-deps       pip-install this package without its dependencies. For tests and pre-seeded
                  venvs only: the daemon does not run without them.
EOF
}

die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
        --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
        --from) FROM=${2:?--from needs a path}; shift 2 ;;
        --python) PYTHON=${2:?--python needs an executable}; shift 2 ;;
        --no-deps) NO_DEPS=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

# The service user must be able to read the venv and the unit whatever umask the admin's shell has.
umask 022

[ -f "$REPO/systemd/$NAME.service" ] || die "missing $REPO/systemd/$NAME.service"
[ -f "$REPO/config.toml" ] || die "missing $REPO/config.toml"
[ -e "$FROM" ] || die "--from: no such file or directory: $FROM"
FROM=$(cd "$(dirname "$FROM")" && pwd)/$(basename "$FROM")
case "$PREFIX" in /*) ;; *) die "--prefix must be an absolute path: $PREFIX" ;; esac
PREFIX=${PREFIX%/}

if [ "$ROOT" = / ]; then
    DEST=""
    [ "$(id -u)" -eq 0 ] || die "installing to / needs root: sudo $0"
else
    mkdir -p "$ROOT"
    DEST=$(cd "$ROOT" && pwd)
    # A venv records its own absolute path (scripts' #! lines, pyvenv.cfg), so it is built where it will
    # run. Staged outside the root it would leak onto the real system.
    case "$PREFIX/" in "$DEST"/*) ;; *) die "--prefix $PREFIX must be inside --root $DEST" ;; esac
fi

command -v "$PYTHON" >/dev/null || die "no $PYTHON; on Debian/Ubuntu: apt install python3 python3-venv"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is $("$PYTHON" -V 2>&1); runpod-watchdog needs Python >= 3.11 (Debian 12, Ubuntu 24.04)"

# 1. System user and group (real system only). A fixed system account, not DynamicUser: TUI users join
#    the group to read the ledger and reach the control socket (see the unit's comments).
if [ -z "$DEST" ]; then
    if ! getent group "$NAME" >/dev/null; then
        groupadd --system "$NAME"
        echo "created system group $NAME"
    fi
    if ! getent passwd "$NAME" >/dev/null; then
        useradd --system --gid "$NAME" --no-create-home --home-dir "/var/lib/$NAME" \
            --shell /usr/sbin/nologin --comment "RunPod budget watchdog" "$NAME"
        echo "created system user $NAME"
    fi
fi

# 2. The venv. Reused on upgrade unless it was made by another Python minor version (a distribution
#    upgrade), in which case it is rebuilt: compiled wheels would not load.
VENV=$PREFIX/venv
want=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
have=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
if [ -n "$have" ] && [ "$have" != "$want" ]; then
    echo "rebuilding $VENV: it was made with Python $have, $PYTHON is $want"
    rm -rf "$VENV"
    have=""
fi
if [ -z "$have" ]; then
    mkdir -p "$PREFIX"
    "$PYTHON" -m venv "$VENV" \
        || die "could not create a venv with $PYTHON; on Debian/Ubuntu: apt install python3-venv"
fi

# Build from a scratch copy of a source checkout: pip/setuptools write build/ and *.egg-info into the
# tree they build, and a root-owned build/ left in the admin's own clone breaks their next checkout.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target=$FROM
if [ -d "$FROM" ]; then
    [ -f "$FROM/pyproject.toml" ] || die "--from $FROM is not a source checkout (no pyproject.toml)"
    mkdir "$work/src"
    tar -C "$FROM" --exclude=./.git --exclude=./.venv --exclude=./build --exclude='*.egg-info' \
        --exclude=.cache --exclude=.pytest_cache --exclude=.ruff_cache --exclude=__pycache__ -cf - . \
        | tar -C "$work/src" -xf -
    target=$work/src
fi
pip_args=(install --quiet --no-input --disable-pip-version-check)
[ "$NO_DEPS" = 1 ] && pip_args+=(--no-deps)
echo "installing $NAME from $FROM into $VENV ..."
# A local source or wheel is always rebuilt and reinstalled by pip, even at an unchanged version number,
# so running this after `git pull` really installs the new code.
"$VENV/bin/python" -m pip "${pip_args[@]}" "$target"
"$VENV/bin/$NAME" --version >/dev/null || die "$VENV/bin/$NAME does not run"

mkdir -p "$PREFIX/share"
install -m 0644 "$REPO/config.toml" "$PREFIX/share/config.toml.example"

# 3. The unit, with the venv path rewritten when PREFIX is not the default.
unit_dir=$DEST/etc/systemd/system
mkdir -p "$unit_dir"
sed "s#$DEFAULT_PREFIX/venv/#$PREFIX/venv/#g" "$REPO/systemd/$NAME.service" > "$work/$NAME.service"
install -m 0644 "$work/$NAME.service" "$unit_dir/$NAME.service"
echo "installed $unit_dir/$NAME.service"

# 4. Configuration: the admin's file is never overwritten. 0640 root:runpod-watchdog: the daemon and
#    TUI users (group members) read it, nobody else does.
etc=$DEST/etc/$NAME
install -d -m 0755 "$etc"
if [ -e "$etc/config.toml" ]; then
    echo "kept $etc/config.toml (the shipped default is $PREFIX/share/config.toml.example)"
else
    # The shipped defaults ("") resolve the ledger and socket from $STATE_DIRECTORY/$RUNTIME_DIRECTORY,
    # which only systemd sets. The TUI runs in the admin's shell, so the installed file names both
    # places explicitly; the daemon resolves them to the same files.
    awk -v ledger="/var/lib/$NAME/ledger.sqlite3" -v sock="/run/$NAME/control.sock" '
        /^\[/ { section = $0 }
        section == "[ledger]" && /^path = ""$/ {
            print "# Set by scripts/install.sh: the StateDirectory, so the TUI finds it outside systemd too."
            print "path = \"" ledger "\""; done_ledger = 1; next
        }
        section == "[control]" && /^socket_path = ""$/ {
            print "# Set by scripts/install.sh: the RuntimeDirectory, so the TUI finds it outside systemd too."
            print "socket_path = \"" sock "\""; done_sock = 1; next
        }
        { print }
        END { if (!done_ledger || !done_sock) print "install.sh: WARNING: config.toml has no empty [ledger] path or [control] socket_path to set; the TUI needs both pointing at /var/lib and /run" > "/dev/stderr" }
    ' "$REPO/config.toml" > "$work/config.toml"
    install -m 0640 "$work/config.toml" "$etc/config.toml"
    [ -z "$DEST" ] && chgrp "$NAME" "$etc/config.toml"
    echo "installed $etc/config.toml"
fi

# 5. Credentials: root-only. systemd reads them (LoadCredential=) and hands the service a private copy.
install -d -m 0700 "$etc/credentials"
chmod 0700 "$etc/credentials"  # install -d leaves an existing directory's mode alone
cat > "$work/README" <<'EOF'
Secrets for runpod-watchdog. This directory is 0700 root; keep every file in it 0600 root.
systemd passes them to the service (LoadCredential=); they never go in config.toml.

Required (the unit does not start while either file is missing):
  RUNPOD_API_KEY     your RunPod API key
  SLACK_WEBHOOK_URL  a Slack incoming-webhook URL (https://hooks.slack.com/...);
                     an EMPTY file means "no Slack alerts"

Write them without leaving the key in your shell history (paste, then Enter, then Ctrl-D):
  sudo install -m 0600 /dev/stdin /etc/runpod-watchdog/credentials/RUNPOD_API_KEY
  sudo install -m 0600 /dev/stdin /etc/runpod-watchdog/credentials/SLACK_WEBHOOK_URL
No Slack:
  sudo install -m 0600 /dev/null /etc/runpod-watchdog/credentials/SLACK_WEBHOOK_URL
Then: sudo systemctl restart runpod-watchdog
EOF
install -m 0600 "$work/README" "$etc/credentials/README"

# 6. Tell systemd (real system only).
if [ -z "$DEST" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    if systemctl is-active --quiet "$NAME"; then
        echo
        echo "$NAME is running the previous version: sudo systemctl restart $NAME"
    fi
fi

missing=""
for secret in RUNPOD_API_KEY SLACK_WEBHOOK_URL; do
    [ -e "$etc/credentials/$secret" ] || missing="$missing $secret"
done
cat <<EOF

Next steps:
EOF
[ -n "$DEST" ] && echo "  (staged below $DEST: nothing was registered with systemd, no user was created)"
if [ -n "$missing" ]; then
    echo "  1. Put the secrets in place (missing:$missing). Paste, Enter, Ctrl-D:"
    echo "       sudo install -m 0600 /dev/stdin /etc/$NAME/credentials/RUNPOD_API_KEY"
    echo "       sudo install -m 0600 /dev/stdin /etc/$NAME/credentials/SLACK_WEBHOOK_URL"
    echo "     (no Slack: sudo install -m 0600 /dev/null /etc/$NAME/credentials/SLACK_WEBHOOK_URL)"
else
    echo "  1. Secrets: both credential files are present."
fi
cat <<EOF
  2. Review /etc/$NAME/config.toml, then check it:
       sudo -u $NAME $VENV/bin/$NAME check-config /etc/$NAME/config.toml
  3. Start it, now and at every boot:
       sudo systemctl daemon-reload && sudo systemctl enable --now $NAME
  4. Follow the log:
       journalctl -u $NAME -f
  5. Use the dashboard as yourself (log out and in again after usermod):
       sudo usermod -aG $NAME \$USER
       $VENV/bin/$NAME tui --config /etc/$NAME/config.toml
EOF
