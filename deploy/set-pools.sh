#!/bin/sh
# Per-pool concurrency limits of the Dagster instance in $DAGSTER_HOME.
#
# Pools are declared in code (`@dg.asset(pool="video_api")`); their limits live in Dagster's
# storage and are set here, idempotently. Compose runs this in the one-shot `migrate` service
# on every `docker compose up`, so the limits below are the deployed truth: a change made in
# the UI lasts until the next deploy. Pools not listed get `concurrency.pools.default_limit`
# from dagster.yaml.
#
#   docker compose run --rm migrate deploy/set-pools.sh     # production, by hand
#   DAGSTER_HOME=.waifugen/dagster_home deploy/set-pools.sh  # sandbox
#   dagster instance concurrency get --all                   # show the limits
set -eu

: "${DAGSTER_HOME:?DAGSTER_HOME must point at the Dagster instance directory}"
DAGSTER="${DAGSTER:-dagster}"

# pool       limit  why
POOLS="
tiktok     1      one publish flow at a time per app (rate caps, chunked uploads)
instagram  1      container create/publish, 24 h publishing limit
youtube    1      resumable uploads, daily quota units
video_api  2      A2E: 100 requests/h, a few concurrent jobs
llm        2      Ollama on the same host: more only queues inside Ollama
telegram   1      30 messages/s per bot
fanvue     1      100 requests/min
ffmpeg     2      branding encodes: one per core
"

echo "$POOLS" | while read -r pool limit _why; do
    [ -n "$pool" ] || continue
    "$DAGSTER" instance concurrency set "$pool" "$limit"
done
