#!/bin/sh
# Example breakglass exec plugin (protocol breakglass.exec/v1).
#
# breakglass runs this with a cleared environment, writes one JSON request line
# on stdin and reads one JSON reply from stdout. A non-zero exit is an error and
# stderr becomes the message shown to the operator. See the plugin protocol in
# docs/src/backends/exec-protocol.md.
#
# This example simulates a target system: each grant is a file in the state
# directory (passed as `--state DIR` in the backend's `args`), so you can watch
# access appear and disappear. A real plugin would call your IAM, database or
# cloud API here. It never writes the credential anywhere but stdout.
set -eu

state=/tmp/breakglass-example-plugin
if [ "${1:-}" = "--state" ] && [ -n "${2:-}" ]; then state=$2; fi
umask 077
mkdir -p "$state"

IFS= read -r line || true

# Good enough for the flat string fields this example needs; a real plugin
# should use a JSON parser.
field() { printf '%s' "$line" | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

op=$(field op)
request_id=$(field request_id)

case "$op" in
grant)
    lease="lease-$request_id-$$"
    user="bg_$(printf '%s' "$request_id" | tr 'A-Z-' 'a-z_')"
    password=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)
    printf '%s\n' "$request_id" >"$state/$lease"
    printf '{"ok":true,"lease_id":"%s","credential":{"username":"%s","password":"%s"}}\n' \
        "$lease" "$user" "$password"
    ;;
revoke)
    lease=$(field lease_id)
    if [ -n "$lease" ]; then
        rm -f "$state/$lease"
    else
        # Revoke by request id: recovery after a grant whose outcome was lost.
        for f in "$state"/lease-"$request_id"-*; do
            [ -e "$f" ] && rm -f "$f"
        done
    fi
    printf '{"ok":true}\n'
    ;;
probe)
    # A drill: does the target accept this credential now? The simulated
    # target accepts the user issued for the request while its lease exists.
    lease=$(field lease_id)
    user=$(field username)
    expected="bg_$(printf '%s' "$request_id" | tr 'A-Z-' 'a-z_')"
    if [ -n "$lease" ] && [ -e "$state/$lease" ] && [ "$user" = "$expected" ]; then
        printf '{"ok":true,"message":"example target: %s logged in"}\n' "$user"
    else
        printf '{"ok":false,"error":"example target: login refused for %s"}\n' "$user"
    fi
    ;;
extend | rotate)
    printf '{"ok":true}\n'
    ;;
check)
    n=$(find "$state" -name 'lease-*' | wc -l)
    printf '{"ok":true,"message":"example target %s: %s active lease(s)"}\n' "$state" "$n"
    ;;
*)
    echo "unknown op: $op" >&2
    exit 2
    ;;
esac
