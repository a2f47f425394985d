#!/usr/bin/env bash
# Deploy the newest images of the docker-compose project, with migrations, health checks and an
# automatic rollback. GitHub Actions runs it after CI passes on main (.github/workflows/
# deploy.yml); it works the same by hand:
#
#   deploy/deploy.sh                                    # the compose project around this script
#   deploy/deploy.sh --dir /opt/waifugen                # the compose project in that directory
#   deploy/deploy.sh --host deploy@vps --dir /opt/waifugen --sync   # over SSH, same steps there
#   deploy/deploy.sh --rollback [--host ...] [--dir ...]            # back to the images before
#                                                                   # the last deploy
# Steps (on the host):
#   1. with --sync: the checkout's docker-compose.yml and deploy/ (never deploy/secrets) replace
#      the host's, the previous copies kept for the rollback
#   2. record the image id behind every image the project uses (.deploy/previous-images)
#   3. docker compose pull                       new images
#   4. drain: stop the daemon (no new runs, no sensor ticks) and wait until the webserver's
#      GraphQL API counts no run in progress: restarting the code server kills the runs in it
#      (DefaultRunLauncher, docs/deploy.md section 7)
#   5. docker compose run --rm -T migrate        app migrations, Dagster schema, pool limits
#   6. docker compose up -d                      restart what changed (the daemon too)
#   7. health: every URL answers 2xx before the deadline (webserver /server_info, webhooks
#      /healthz, metrics /healthz: the loopback ports docker-compose publishes)
# If 3-7 fail: the recorded ids are tagged back onto their image names, the previous files are
# restored, `docker compose up -d` again, health checked again, and the script exits 1.
# Migrations are not reverted: they must stay compatible with the previous release
# (expand/contract); a backup exists from the 6-hourly schedule (docs/runbooks/).
#
# SSH: key only. BatchMode (never a password prompt), PasswordAuthentication=no, and
# StrictHostKeyChecking=yes against a known_hosts file (--known-hosts, else ~/.ssh/known_hosts).
#
# Options (environment variable in brackets):
#   --host USER@HOST        run on that host over SSH                   [DEPLOY_HOST]
#   --dir DIR               compose project directory                   [DEPLOY_DIR]
#   --sync                  ship docker-compose.yml + deploy/ first (with --host)
#   --ssh-key FILE          private key for SSH                         [DEPLOY_SSH_KEY_FILE]
#   --known-hosts FILE      known_hosts for SSH                         [DEPLOY_KNOWN_HOSTS_FILE]
#   --port N                SSH port                                    [DEPLOY_SSH_PORT]
#   --health-url URL        a URL that must answer 2xx (repeatable; replaces the defaults)
#                                                          [DEPLOY_HEALTH_URLS, space-separated]
#   --health-timeout SEC    deadline for all health URLs (default 180)  [DEPLOY_HEALTH_TIMEOUT]
#   --drain-timeout SEC     wait at most this long for runs in progress to end (default 1800;
#                           0: do not drain)                            [DEPLOY_DRAIN_TIMEOUT]
#   --graphql-url URL       the webserver's GraphQL endpoint (default
#                           http://127.0.0.1:3000/graphql)              [DEPLOY_GRAPHQL_URL]
#   --rollback              only roll back to the images recorded by the last deploy
set -euo pipefail

# Runs that a code server restart would kill (validated against Dagster's schema in
# tests/test_deploy_ops.py).
readonly RUNS_IN_PROGRESS_QUERY='{ runsOrError(filter: {statuses: [STARTING, STARTED, CANCELING]}) { __typename ... on Runs { count } } }'
readonly DEFAULT_HEALTH_URLS="http://127.0.0.1:3000/server_info http://127.0.0.1:8788/healthz http://127.0.0.1:9464/healthz"

log() { printf 'deploy: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

script_path=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
host=${DEPLOY_HOST:-}
dir=${DEPLOY_DIR:-}
sync=0
rollback_only=0
ssh_key=${DEPLOY_SSH_KEY_FILE:-}
known_hosts=${DEPLOY_KNOWN_HOSTS_FILE:-}
ssh_port=${DEPLOY_SSH_PORT:-}
from=""
health_urls=()
health_timeout=${DEPLOY_HEALTH_TIMEOUT:-180}
health_interval=${DEPLOY_HEALTH_INTERVAL:-3}
drain_timeout=${DEPLOY_DRAIN_TIMEOUT:-1800}
drain_interval=${DEPLOY_DRAIN_INTERVAL:-10}
graphql_url=${DEPLOY_GRAPHQL_URL:-http://127.0.0.1:3000/graphql}

need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --host) need_value "$@"; host=$2; shift 2 ;;
        --dir) need_value "$@"; dir=$2; shift 2 ;;
        --sync) sync=1; shift ;;
        --ssh-key) need_value "$@"; ssh_key=$2; shift 2 ;;
        --known-hosts) need_value "$@"; known_hosts=$2; shift 2 ;;
        --port) need_value "$@"; ssh_port=$2; shift 2 ;;
        --health-url) need_value "$@"; health_urls+=("$2"); shift 2 ;;
        --health-timeout) need_value "$@"; health_timeout=$2; shift 2 ;;
        --drain-timeout) need_value "$@"; drain_timeout=$2; shift 2 ;;
        --graphql-url) need_value "$@"; graphql_url=$2; shift 2 ;;
        --rollback) rollback_only=1; shift ;;
        --from) need_value "$@"; from=$2; shift 2 ;;  # internal: files shipped by --sync
        -h|--help) sed -n '2,/^set -euo/p' "$script_path" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
if [[ ${#health_urls[@]} -eq 0 ]]; then
    read -r -a health_urls <<< "${DEPLOY_HEALTH_URLS:-$DEFAULT_HEALTH_URLS}"
fi
[[ $health_timeout =~ ^[0-9]+$ ]] || die "--health-timeout must be a whole number of seconds"
[[ $drain_timeout =~ ^[0-9]+$ ]] || die "--drain-timeout must be a whole number of seconds"

# --- over SSH --------------------------------------------------------------------------------

ssh_options() {
    local -n out=$1
    out=(-o BatchMode=yes -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no
         -o StrictHostKeyChecking=yes -o ConnectTimeout=20 -o ServerAliveInterval=30)
    if [[ -n $ssh_key ]]; then
        [[ -r $ssh_key ]] || die "--ssh-key $ssh_key: cannot read"
        out+=(-i "$ssh_key" -o IdentitiesOnly=yes)
    fi
    if [[ -n $known_hosts ]]; then
        [[ -r $known_hosts ]] || die "--known-hosts $known_hosts: cannot read"
        out+=(-o "UserKnownHostsFile=$known_hosts")
    fi
    if [[ -n $ssh_port ]]; then
        out+=(-p "$ssh_port")
    fi
}

# SC2029: the remote commands are built here on purpose, every value quoted with %q.
# shellcheck disable=SC2029
run_remote() {
    local opts=() remote_dir=${dir:-/opt/waifugen} project
    ssh_options opts
    project=$(dirname "$(dirname "$script_path")")
    local q_incoming
    printf -v q_incoming '%q' "$remote_dir/.deploy/incoming"
    # Ship this script (and with --sync the deployment files) into DIR/.deploy/incoming.
    local files=(deploy/deploy.sh)
    if [[ $sync -eq 1 ]]; then
        files=(docker-compose.yml deploy)
    fi
    log "shipping ${files[*]} to $host:$remote_dir/.deploy/incoming"
    tar -C "$project" --exclude=deploy/secrets --exclude='deploy/secrets/*' -cf - "${files[@]}" \
        | ssh "${opts[@]}" "$host" \
            "set -e; rm -rf $q_incoming; mkdir -p $q_incoming; tar -C $q_incoming -xf -"
    local args=(--dir "$remote_dir" --health-timeout "$health_timeout"
                --drain-timeout "$drain_timeout" --graphql-url "$graphql_url")
    local url
    for url in "${health_urls[@]}"; do
        args+=(--health-url "$url")
    done
    if [[ $sync -eq 1 ]]; then
        args+=(--from "$remote_dir/.deploy/incoming")
    fi
    if [[ $rollback_only -eq 1 ]]; then
        args+=(--rollback)
    fi
    local q_args
    printf -v q_args ' %q' "${args[@]}"
    log "running deploy.sh on $host"
    ssh "${opts[@]}" "$host" "bash $q_incoming/deploy/deploy.sh$q_args" < /dev/null
}

if [[ -n $host ]]; then
    run_remote
    exit 0
fi

# --- on the host -----------------------------------------------------------------------------

dir=${dir:-$(dirname "$(dirname "$script_path")")}
[[ -d $dir ]] || die "--dir $dir: no such directory"
cd "$dir"
[[ -f docker-compose.yml ]] || die "$dir/docker-compose.yml is missing"
command -v docker > /dev/null || die "docker is not installed on this host"
command -v curl > /dev/null || die "curl is not installed on this host (health checks)"
docker compose version > /dev/null 2>&1 || die "the docker compose plugin is missing"

state=.deploy
mkdir -p "$state"
if command -v flock > /dev/null; then
    exec 9> "$state/lock"
    flock -n 9 || die "another deploy is running in $dir"
fi
images_file=$state/previous-images
previous_files=$state/previous-files

install_files() {  # --sync: keep the current files, then take the shipped ones
    [[ -d $from && -f $from/docker-compose.yml ]] || die "--from $from: no docker-compose.yml"
    rm -rf "$previous_files"
    mkdir -p "$previous_files"
    cp -a docker-compose.yml "$previous_files/"
    if [[ -d deploy ]]; then
        tar --exclude=deploy/secrets -cf - deploy | tar -C "$previous_files" -xf -
    fi
    tar -C "$from" --exclude=deploy/secrets -cf - docker-compose.yml deploy | tar -xf -
    log "installed docker-compose.yml and deploy/ from $from (previous copies in $previous_files)"
}

restore_files() {
    if [[ -f $previous_files/docker-compose.yml ]]; then
        tar -C "$previous_files" -cf - . | tar -xf -
        log "restored docker-compose.yml and deploy/ from $previous_files"
    fi
}

record_images() {
    local image id images
    images=$(docker compose config --images) \
        || { restore_files; die "docker compose config --images failed"; }
    : > "$images_file.tmp"
    while read -r image; do
        [[ -n $image ]] || continue
        if id=$(docker image inspect --format '{{.Id}}' "$image" 2> /dev/null) && [[ -n $id ]]; then
            printf '%s %s\n' "$image" "$id" >> "$images_file.tmp"
        else
            log "no local image $image yet: it cannot be rolled back"
        fi
    done <<< "$images"
    mv "$images_file.tmp" "$images_file"
    log "recorded $(wc -l < "$images_file") image id(s) in $dir/$images_file"
}

check_health() {  # every URL 2xx before the deadline
    local deadline=$((SECONDS + health_timeout)) url pending
    pending=("${health_urls[@]}")
    while true; do
        local still=()
        for url in "${pending[@]}"; do
            if ! curl -fsS -o /dev/null --max-time 5 "$url" 2> /dev/null; then
                still+=("$url")
            fi
        done
        if [[ ${#still[@]} -eq 0 ]]; then
            log "healthy: ${health_urls[*]}"
            return 0
        fi
        if ((SECONDS >= deadline)); then
            log "unhealthy after ${health_timeout}s: ${still[*]}"
            return 1
        fi
        pending=("${still[@]}")
        sleep "$health_interval"
    done
}

runs_in_progress() {  # prints the count, or fails when the webserver does not tell
    local body payload
    payload=$(printf '{"query": "%s"}' "$RUNS_IN_PROGRESS_QUERY")
    body=$(curl -fsS --max-time 10 -H 'content-type: application/json' --data "$payload" \
        "$graphql_url" 2> /dev/null) || return 1
    [[ $body =~ \"count\":\ *([0-9]+) ]] || return 1
    printf '%s\n' "${BASH_REMATCH[1]}"
}

drain() {
    if [[ $drain_timeout -eq 0 ]]; then
        log "not draining (--drain-timeout 0): runs in progress in the code server may be killed"
        return 0
    fi
    if [[ -z $(docker compose ps --status running -q webserver < /dev/null) ]]; then
        log "the webserver is not running: nothing to drain"
        return 0
    fi
    docker compose stop daemon < /dev/null || return 1
    local deadline=$((SECONDS + drain_timeout)) count
    while true; do
        count=$(runs_in_progress) || count="?"
        if [[ $count == 0 ]]; then
            log "no run in progress"
            return 0
        fi
        if ((SECONDS >= deadline)); then
            log "$count run(s) still in progress after ${drain_timeout}s (or $graphql_url" \
                "does not answer); the daemon is started again by the rollback"
            return 1
        fi
        sleep "$drain_interval"
    done
}

rollback() {
    [[ -s $images_file ]] || die "nothing to roll back to: $dir/$images_file is empty or missing"
    log "rolling back to the images recorded before the deploy"
    restore_files
    local image id
    while read -r image id; do
        if docker tag "$id" "$image"; then
            log "tagged $id as $image"
        else
            log "could not tag $id as $image (image removed?)"
        fi
    done < "$images_file"
    docker compose up -d --no-build --pull never < /dev/null \
        || { log "docker compose up -d failed during the rollback"; return 1; }
    if check_health; then
        log "rollback done: the previous release is up and healthy"
    else
        log "rollback done but the previous release is not healthy either"
        return 1
    fi
}

if [[ $rollback_only -eq 1 ]]; then
    rollback || die "rollback finished unhealthy"
    exit 0
fi

if [[ -n $from ]]; then
    install_files
else
    rm -rf "$previous_files"  # the files in place are the ones a rollback keeps
fi
docker compose config -q || { restore_files; die "docker compose config rejects the project"; }
record_images

step() {  # NAME COMMAND...: on failure roll back and exit 1
    local name=$1
    shift
    log "$name"
    if ! "$@" < /dev/null; then
        log "failed: $name"
        rollback || true
        die "deploy failed ($name); rolled back to the previous images"
    fi
}

step "pull: docker compose pull" docker compose pull
step "drain: stop the daemon, wait for runs in progress to end" drain
step "migrate: docker compose run --rm -T migrate" docker compose run --rm -T migrate
step "up: docker compose up -d" docker compose up -d --no-build
step "health: ${health_urls[*]}" check_health
log "deployed"
