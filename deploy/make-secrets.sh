#!/bin/sh
# Create the Docker secrets docker-compose.yml expects, with random values, unless they exist:
#   deploy/secrets/postgres_password  password of the `waifugen` PostgreSQL role
#   deploy/secrets/database_url       app database URL (same password)
#   deploy/secrets/secret_key         Fernet key that encrypts platform tokens at rest
#   deploy/secrets/telegram_webhook_secret  our secret_token for Telegram's setWebhook
#   deploy/secrets/fanvue_webhook_secret    replace with Fanvue's signing secret
#   deploy/secrets/grafana_admin_password, grafana_analyst_password  Grafana's admin, and the
#                                      read-only analyst login its marts data source uses
#   deploy/secrets/telegram_bot_token  empty: fill in from BotFather (alerts are recorded,
#                                      not sent, and Alertmanager waits, until it is set)
# The folder is 0700 (other host users cannot reach the files); the files are 0444 because
# Compose bind-mounts file secrets with their host permissions and the containers run as
# non-root users (postgres uid 999, waifugen uid 10001) that must be able to read them.
set -eu

dir="$(cd "$(dirname "$0")" && pwd)/secrets"
mkdir -p "$dir"
chmod 0700 "$dir"

write() {  # name value
    if [ -e "$dir/$1" ]; then
        echo "keep   $dir/$1"
    else
        printf '%s\n' "$2" > "$dir/$1"
        chmod 0444 "$dir/$1"
        echo "create $dir/$1"
    fi
}

if [ -e "$dir/postgres_password" ]; then
    password=$(cat "$dir/postgres_password")
else
    # hex: nothing to URL-encode in database_url
    password=$(openssl rand -hex 24)
fi
write postgres_password "$password"
write database_url "postgresql://waifugen:${password}@postgres:5432/waifugen"
# Fernet key = URL-safe base64 of 32 random bytes.
write secret_key "$(openssl rand -base64 32 | tr '+/' '-_')"
write telegram_webhook_secret "$(openssl rand -hex 32)"
write fanvue_webhook_secret "$(openssl rand -hex 32)"
write grafana_admin_password "$(openssl rand -hex 16)"
write grafana_analyst_password "$(openssl rand -hex 24)"
write telegram_bot_token ""
