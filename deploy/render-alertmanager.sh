#!/bin/sh
# Render Alertmanager's config from deploy/alertmanager/ with the Telegram secrets, then
# (optionally) exec Alertmanager. docker-compose runs it as the alertmanager entrypoint:
#
#   render-alertmanager.sh SRC_DIR OUT_DIR [COMMAND [ARG...]]
#
# SRC_DIR holds alertmanager.yml.tmpl and telegram.tmpl; OUT_DIR gets alertmanager.yml
# (mode 0600: it holds the bot token) and telegram.tmpl. Values, checked before use:
#   TELEGRAM_BOT_TOKEN      (or TELEGRAM_BOT_TOKEN_FILE, the Docker secret)  123456:ABC-def_...
#   TELEGRAM_ALERT_CHAT_ID  (or TELEGRAM_ALERT_CHAT_ID_FILE)  the operators' chat, e.g. -100123...
#   TELEGRAM_API_URL        default https://api.telegram.org
# Why not bot_token_file: Debian's Alertmanager 0.25 rejects it (added in 0.26). On a host
# with gettext, the unchecked equivalent is:
#   envsubst '${TELEGRAM_BOT_TOKEN} ${TELEGRAM_ALERT_CHAT_ID} ${TELEGRAM_API_URL}' \
#     < alertmanager.yml.tmpl > alertmanager.yml
# POSIX sh + sed + grep only: it runs in the busybox-based prom/alertmanager image.
set -eu

die() { echo "render-alertmanager: $*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: render-alertmanager.sh SRC_DIR OUT_DIR [COMMAND [ARG...]]"
src=$1
out=$2
shift 2
[ -r "$src/alertmanager.yml.tmpl" ] || die "$src/alertmanager.yml.tmpl: cannot read"
[ -r "$src/telegram.tmpl" ] || die "$src/telegram.tmpl: cannot read"

setting() {  # NAME -> $NAME, else the contents of $NAME_FILE (trailing newlines dropped)
    eval "value=\${$1:-}"
    eval "file=\${$1_FILE:-}"
    if [ -z "$value" ] && [ -n "$file" ]; then
        [ -r "$file" ] || die "$1_FILE=$file: cannot read"
        value=$(cat "$file")
    fi
    printf '%s' "$value"
}

nl='
'
check() {  # NAME VALUE ERE DESCRIPTION: one line, the whole value matching; never echo it
    [ -n "$2" ] || die "$1 is not set (nor $1_FILE)"
    case $2 in *"$nl"*) die "$1 has several lines, one value expected" ;; esac
    printf '%s\n' "$2" | grep -Eqx -e "$3" || die "$1 is not $4"
}

token=$(setting TELEGRAM_BOT_TOKEN)
chat_id=$(setting TELEGRAM_ALERT_CHAT_ID)
api_url=$(setting TELEGRAM_API_URL)
api_url=${api_url:-https://api.telegram.org}
api_url=${api_url%/}
# These character sets also keep the values safe inside sed's replacement and YAML quotes.
check TELEGRAM_BOT_TOKEN "$token" '[0-9]+:[A-Za-z0-9_-]+' "a Telegram bot token (digits:letters)"
check TELEGRAM_ALERT_CHAT_ID "$chat_id" '-?[0-9]+' "a numeric Telegram chat id"
check TELEGRAM_API_URL "$api_url" 'https?://[A-Za-z0-9.:/_~%-]+' "an http(s) URL"

umask 077
mkdir -p "$out"
tmp=$(mktemp "$out/.alertmanager.yml.XXXXXX")
trap 'rm -f "$tmp"' EXIT
sed -e "s|[\$]{TELEGRAM_BOT_TOKEN}|$token|g" \
    -e "s|[\$]{TELEGRAM_ALERT_CHAT_ID}|$chat_id|g" \
    -e "s|[\$]{TELEGRAM_API_URL}|$api_url|g" \
    "$src/alertmanager.yml.tmpl" > "$tmp"
if grep -q '[$]{' "$tmp"; then
    die "$src/alertmanager.yml.tmpl: a \${...} placeholder this script does not know"
fi
cp "$src/telegram.tmpl" "$out/telegram.tmpl"
mv "$tmp" "$out/alertmanager.yml"
trap - EXIT
echo "render-alertmanager: wrote $out/alertmanager.yml" >&2

[ $# -eq 0 ] || exec "$@"
