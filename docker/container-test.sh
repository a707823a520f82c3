#!/usr/bin/env bash
# A real build of the CPU image without a Docker daemon or an image registry (`make container-test`):
#
#   1. buildah and debootstrap from apt when missing;
#   2. a minimal Debian base with Python 3.11 (python3, python3-venv, python3-pip), made by
#      debootstrap into a cache folder and imported as the local image localhost/terrascale-base:SUITE;
#   3. `buildah bud --isolation chroot --target cpu` of docker/Dockerfile from that base
#      (CPU_BASE_IMAGE), pip inside the build reaching the same package index as this host: the
#      host's pip settings (index, extra indexes, find-links, certificate bundle, timeout) are written
#      to a pip.conf that is bind-mounted into the build and named by the PIP_CONFIG_FILE build argument;
#   4. `terrascale info` and the tiny end-to-end run of tests/helpers/run_configs.py inside the image
#      (`buildah run --isolation chroot`), then a PASS/FAIL summary; the working container is removed.
#
# Needs root (debootstrap, buildah's storage). Settings (environment, with their defaults):
#   SUITE=bookworm (Debian release with Python 3.11)   MIRROR=http://deb.debian.org/debian
#   BASE_CACHE=${TMPDIR:-/tmp}/terrascale-base          BASE_IMAGE=localhost/terrascale-base:$SUITE
#   IMAGE=localhost/terrascale:cpu                      REBUILD_BASE=0 (1: debootstrap again)
#   PYTHON=python3 (whose pip settings are passed on)   BUILDAH_LAYERS=true (reuse layers of a former build)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
BASE_CACHE=${BASE_CACHE:-${TMPDIR:-/tmp}/terrascale-base}
BASE_IMAGE=${BASE_IMAGE:-localhost/terrascale-base:${SUITE}}
IMAGE=${IMAGE:-localhost/terrascale:cpu}
REBUILD_BASE=${REBUILD_BASE:-0}
PYTHON=${PYTHON:-python3}
PY_WANTED=3.11
# where the generated pip.conf and certificate bundle appear inside the build
PIP_MOUNT=/run/terrascale-pip
export BUILDAH_ISOLATION=chroot
LAYERS=${BUILDAH_LAYERS:-true}

declare -a RESULTS=()
FAILED=0
CTR=""
WORK=""

log() { printf '\n==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
record() {  # record NAME STATUS [SECONDS]
    RESULTS+=("$(printf '%-4s  %-40s %s' "$2" "$1" "${3:+${3}s}")")
    if [[ $2 != PASS ]]; then FAILED=1; fi
}

summary() {
    local rc=$?
    if [[ -n $CTR ]]; then
        buildah rm "$CTR" >/dev/null 2>&1 || true
    fi
    if [[ -n $WORK ]]; then
        rm -rf "$WORK"
    fi
    if ((rc != 0)) && ((FAILED == 0)); then
        record "container-test (stopped: exit $rc)" FAIL
    fi
    printf '\n==================== container-test summary ====================\n'
    local line
    for line in "${RESULTS[@]}"; do printf '%s\n' "$line"; done
    printf 'total: %ss\n' "$SECONDS"
    if ((FAILED == 0)); then
        printf 'container-test: PASS (%s)\n' "$IMAGE"
    else
        printf 'container-test: FAIL\n'
        exit 1
    fi
}
trap summary EXIT

# --------------------------------------------------------------------------------------------
# 1. tools
if ((EUID != 0)); then
    echo "container-test: run as root (debootstrap and buildah's storage need it)" >&2
    exit 1
fi
missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
    log "installing ${missing[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
buildah --version

# --------------------------------------------------------------------------------------------
# 2. the local Debian base image
make_base() {
    local rootfs=$BASE_CACHE/rootfs ctr mnt version
    if [[ $REBUILD_BASE == 1 || ! -f $BASE_CACHE/rootfs.done ]]; then
        log "debootstrap $SUITE (minbase + python3 python3-venv python3-pip) into $rootfs"
        rm -rf "$rootfs" "$BASE_CACHE/rootfs.done"
        mkdir -p "$BASE_CACHE"
        debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
            "$SUITE" "$rootfs" "$MIRROR"
        # no package cache, no host files in the image
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        rm -f "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
        touch "$BASE_CACHE/rootfs.done"
    fi
    version=$(chroot "$rootfs" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [[ $version != "$PY_WANTED" ]]; then
        echo "container-test: $SUITE has Python $version, the image needs $PY_WANTED" >&2
        return 1
    fi
    log "importing $rootfs as $BASE_IMAGE (Python $version)"
    ctr=$(buildah from scratch)
    mnt=$(buildah mount "$ctr")
    tar -C "$rootfs" --numeric-owner -cf - . | tar -C "$mnt" --numeric-owner -xpf -
    buildah umount "$ctr" >/dev/null
    buildah config --env LANG=C.UTF-8 \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --cmd /bin/bash --label "org.opencontainers.image.title=Debian $SUITE minbase + python3 $version" "$ctr"
    buildah commit --rm --quiet "$ctr" "$BASE_IMAGE" >/dev/null
}

start=$SECONDS
if [[ $REBUILD_BASE != 1 ]] && buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base image $BASE_IMAGE is there"
    record "base image $BASE_IMAGE (cached)" PASS 0
elif make_base; then
    record "base image $BASE_IMAGE" PASS $((SECONDS - start))
else
    record "base image $BASE_IMAGE" FAIL $((SECONDS - start))
    exit 1
fi

# --------------------------------------------------------------------------------------------
# 3. the host's pip settings, for pip inside the build
WORK=$(mktemp -d "${TMPDIR:-/tmp}/terrascale-container-test.XXXXXX")
mkdir -p "$WORK/pip"
declare -A PIPCFG=()
VOLUMES=()

# pip's precedence: [global], then [install], then PIP_* variables (`pip config list` shows all three)
read_pip_config() {
    local section line key value
    local listing
    listing=$("$PYTHON" -m pip config list 2>/dev/null || true)
    for section in global install :env:; do
        while IFS= read -r line; do
            [[ $line == "$section".* ]] || continue
            key=${line%%=*}
            key=${key#"$section".}
            value=${line#*=}
            value=${value#\'}
            value=${value%\'}
            case $key in
                index-url | extra-index-url | find-links | trusted-host | cert | client-cert | proxy | retries)
                    PIPCFG[$key]=$value ;;
                timeout | default-timeout)
                    PIPCFG[timeout]=$value ;;
            esac
        done <<<"$listing"
    done
}

# A local folder named by a pip setting (find-links, a file:// index) is bind-mounted read-only
# under $PIP_MOUNT (numbered: nothing but empty mount points under $PIP_MOUNT stays in the image);
# REPLY is the setting as the build sees it.
declare -A MOUNTED=()
inside() {
    local value=$1 scheme="" path dir
    REPLY=$value
    if [[ $value == file://* ]]; then
        scheme=file://
        path=${value#file://}
    else
        path=$value
    fi
    [[ $path == /* && -e $path ]] || return 0
    dir=${path%/}
    [[ -d $dir ]] || dir=$(dirname "$dir")
    # a PEP 503 folder .../simple links its files as ../../files/...: mount the folder above it
    if [[ $dir == */simple ]]; then dir=$(dirname "$dir"); fi
    if [[ -z ${MOUNTED[$dir]:-} ]]; then
        MOUNTED[$dir]=$PIP_MOUNT/${#MOUNTED[@]}
        mkdir -p "$WORK/pip/${MOUNTED[$dir]##*/}"
        VOLUMES+=("$dir:${MOUNTED[$dir]}:ro")
    fi
    REPLY=$scheme${MOUNTED[$dir]}${path#"$dir"}
}
mapped() {  # mapped WORDS: each word through `inside`, joined by spaces into REPLY
    local word words out=()
    read -ra words <<<"$1"
    for word in "${words[@]}"; do
        inside "$word"
        out+=("$REPLY")
    done
    REPLY=${out[*]}
}

read_pip_config
# the pip.conf's own folder first: the folders above are mounted inside it
VOLUMES+=("$WORK/pip:$PIP_MOUNT:ro")
# the index pip uses here (PyPI when nothing is set); also an extra index, so that the packages
# torch needs still come from it where the Dockerfile names the PyTorch index with --index-url
mapped "${PIPCFG[index-url]:-https://pypi.org/simple}"
index=$REPLY
mapped "${PIPCFG[extra-index-url]:-}"
extra="$index${REPLY:+ $REPLY}"
{
    echo "[global]"
    echo "index-url = $index"
    echo "extra-index-url = $extra"
    if [[ -n ${PIPCFG[find-links]:-} ]]; then
        mapped "${PIPCFG[find-links]}"
        echo "find-links = $REPLY"
    fi
    for key in trusted-host proxy retries timeout; do
        if [[ -n ${PIPCFG[$key]:-} ]]; then echo "$key = ${PIPCFG[$key]}"; fi
    done
    for key in cert client-cert; do
        if [[ -n ${PIPCFG[$key]:-} && -f ${PIPCFG[$key]} ]]; then
            cp -L "${PIPCFG[$key]}" "$WORK/pip/$key.pem"
            echo "$key = $PIP_MOUNT/$key.pem"
        fi
    done
} >"$WORK/pip/pip.conf"
log "pip settings for the build ($PIP_MOUNT/pip.conf)"
sed 's/^/    /' "$WORK/pip/pip.conf"
printf '    --volume %s\n' "${VOLUMES[@]}"

# --------------------------------------------------------------------------------------------
# 4. the CPU image
git_commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
build=(buildah bud --isolation chroot --format docker --pull=never --layers="$LAYERS" --force-rm --target cpu -f docker/Dockerfile
    -t "$IMAGE"
    --build-arg "CPU_BASE_IMAGE=$BASE_IMAGE"
    --build-arg "PIP_CONFIG_FILE=$PIP_MOUNT/pip.conf"
    --build-arg "GIT_COMMIT=$git_commit"
    --build-arg "BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)")
for v in "${VOLUMES[@]}"; do build+=(--volume "$v"); done
build+=(.)
log "${build[*]}"
start=$SECONDS
if "${build[@]}"; then
    record "build $IMAGE (buildah bud --target cpu)" PASS $((SECONDS - start))
else
    record "build $IMAGE (buildah bud --target cpu)" FAIL $((SECONDS - start))
    exit 1
fi
buildah images "$IMAGE"

# --------------------------------------------------------------------------------------------
# 5. inside the image: terrascale info, the tiny run
CTR=$(buildah from --pull=never --name "terrascale-container-test-$$" "$IMAGE")
in_image() { buildah run --isolation chroot "$CTR" -- "$@"; }

step() {  # step NAME COMMAND...
    local name=$1 t0=$SECONDS
    shift
    log "$name"
    if "$@"; then
        record "$name" PASS $((SECONDS - t0))
    else
        record "$name" FAIL $((SECONDS - t0))
    fi
}

run_dir=/work/tiny/runs/tiny
check_outputs() {
    in_image python - "$run_dir" <<'EOF'
import json, pathlib, sys
run = pathlib.Path(sys.argv[1])
needed = ["manifest.json", "report.html", "predictions/lulc/lulc.zarr", "predictions/lai/lai.zarr",
          "metrics/lulc/metrics.csv", "metrics/lai/metrics.csv", "esm/lai_1deg.nc", "esm/lulc_fractions_N32.nc"]
missing = [p for p in needed if not (run / p).exists()]
stages = json.loads((run / "manifest.json").read_text())["stages"] if (run / "manifest.json").exists() else {}
incomplete = sorted(k for k, v in stages.items() if v.get("status") != "complete")
print("run directory:", run, "| stages:", len(stages), "| missing:", missing, "| incomplete:", incomplete)
sys.exit(1 if missing or incomplete or not stages else 0)
EOF
}

step "terrascale info (in the image)" in_image terrascale info
step "build-info.json (in the image)" in_image cat /opt/terrascale/build-info.json
buildah copy --chown 1000:1000 "$CTR" tests/helpers/run_configs.py /work/run_configs.py >/dev/null
step "tiny config written (in the image)" in_image python -c \
    'import pathlib, runpy; d = pathlib.Path("/work/tiny"); d.mkdir(); print(runpy.run_path("/work/run_configs.py")["write_tiny_config"](d))'
step "terrascale run tiny.yaml (in the image)" in_image terrascale run /work/tiny/tiny.yaml
step "tiny run outputs complete (in the image)" check_outputs
