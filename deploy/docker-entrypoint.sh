#!/bin/sh
# Entrypoint of the waifugen image (every compose service: migrate, codeserver, webserver,
# daemon). Runs the command given by compose after one preparation step:
#
# Dagster instance config (`{env: DAGSTER_PG_PASSWORD}`) and the dbt profile
# (`env_var('DBT_PG_PASSWORD')`) can only read environment variables, not files. For those two,
# and only those, a Docker secret named by NAME_FILE is read into NAME. The app's own settings
# (DATABASE_URL_FILE, WAIFUGEN_SECRET_KEY_FILE, ...) are read from their files by the app and
# are deliberately not exported here.
set -eu

for name in DAGSTER_PG_PASSWORD DBT_PG_PASSWORD; do
    eval "file=\${${name}_FILE:-}"
    eval "value=\${${name}:-}"
    if [ -n "$file" ] && [ -z "$value" ]; then
        if [ ! -r "$file" ]; then
            echo "docker-entrypoint: ${name}_FILE=$file is not readable" >&2
            exit 1
        fi
        value=$(cat "$file")
        export "$name=$value"
    fi
done
unset file value

exec "$@"
