#!/bin/sh
# breakglass exec plugin (protocol breakglass.exec/v1): Kubernetes RoleBindings.
#
# grant   binds the requester's own Kubernetes identity to a ClusterRole in one
#         namespace:  kubectl create rolebinding bg-<request id>
#                       --clusterrole=<scope.cluster_role> --user=<requester>
#                       -n <scope.namespace>
# revoke  deletes that RoleBinding (idempotent: --ignore-not-found).
# extend  nothing to do: RBAC has no expiry, breakglass revokes on time.
# probe   (a drill) the RoleBinding exists and binds the credential's user:
#         what the API server authorizes them by. It does not act as the user
#         (that would need impersonation rights this plugin should not hold).
# check   asks the API server whether this plugin may manage RoleBindings.
#
# Role scope:   scope = { cluster_role = "edit", namespace = "payments" }
# Backend:      [backends.k8s]
#               kind = "exec"
#               command = "/usr/local/libexec/breakglass/k8s-rolebinding-plugin.sh"
#               args = ["--kubeconfig", "/etc/breakglass/kubeconfig", "--context", "prod"]
# Every argument is passed to kubectl as is. Needs kubectl and jq on PATH
# (/usr/local/bin, /usr/bin or /bin: breakglass clears the environment).
set -eu

die() {
    printf '%s\n' "$*" >&2
    exit 1
}

command -v jq >/dev/null 2>&1 || die "jq is not installed (needed to read the request)"
command -v kubectl >/dev/null 2>&1 || die "kubectl is not installed"

request=$(cat)
# A field of the request, or "" when absent or null.
field() { printf '%s' "$request" | jq -r "$1 // empty"; }

k() { kubectl "$@" --request-timeout=20s; }

# Kubernetes object names: lower-case letters, digits and '-'.
dns_label() {
    case $1 in
    '' | -* | *[!a-z0-9-]*) return 1 ;;
    *) return 0 ;;
    esac
}

op=$(field .op)
request_id=$(field .request_id)
namespace=$(field .scope.namespace)
binding="bg-$(printf '%s' "$request_id" | tr 'A-Z_' 'a-z-')"

case "$op" in
grant | revoke | extend)
    dns_label "$namespace" || die "the role's scope needs namespace = \"<namespace>\" (got \"$namespace\")"
    dns_label "$binding" || die "request id \"$request_id\" does not make a valid RoleBinding name"
    ;;
esac

case "$op" in
grant)
    cluster_role=$(field .scope.cluster_role)
    requester=$(field .requester)
    case $cluster_role in
    '' | *[!a-z0-9:.-]*) die "the role's scope needs cluster_role = \"<ClusterRole>\" (got \"$cluster_role\")" ;;
    esac
    [ -n "$requester" ] || die "the request names no requester"
    # A grant retried after a crash finds its own binding: that is success.
    if ! out=$(k "$@" create rolebinding "$binding" \
        --clusterrole="$cluster_role" --user="$requester" -n "$namespace" 2>&1); then
        case $out in
        *AlreadyExists* | *"already exists"*) ;;
        *) die "kubectl create rolebinding failed: $out" ;;
        esac
    fi
    # The credential is the requester's own identity, now bound; nothing secret.
    jq -cn --arg lease "$namespace/$binding" --arg user "$requester" \
        --arg ns "$namespace" --arg role "$cluster_role" \
        '{ok: true, lease_id: $lease,
          credential: {kubernetes_user: $user, namespace: $ns, cluster_role: $role}}'
    ;;
revoke)
    # lease_id is "<namespace>/<binding>"; null means "whatever this request got",
    # which is the same binding: its name comes from the request id.
    lease=$(field .lease_id)
    if [ -n "$lease" ]; then
        namespace=${lease%%/*}
        binding=${lease#*/}
        dns_label "$namespace" && dns_label "$binding" || die "lease \"$lease\" is not <namespace>/<binding>"
    fi
    out=$(k "$@" delete rolebinding "$binding" -n "$namespace" --ignore-not-found 2>&1) ||
        die "kubectl delete rolebinding failed: $out"
    printf '{"ok":true}\n'
    ;;
probe)
    lease=$(field .lease_id)
    user=$(field .credential.kubernetes_user)
    namespace=${lease%%/*}
    binding=${lease#*/}
    dns_label "$namespace" && dns_label "$binding" || die "lease \"$lease\" is not <namespace>/<binding>"
    if ! out=$(k "$@" get rolebinding "$binding" -n "$namespace" -o json 2>&1); then
        jq -cn --arg e "RoleBinding $lease is not there: $out" '{ok: false, error: $e}'
        exit 0
    fi
    bound=$(printf '%s' "$out" | jq -r --arg u "$user" \
        '[.subjects[]? | select(.kind == "User" and .name == $u)] | length')
    if [ "$bound" -gt 0 ]; then
        jq -cn --arg m "RoleBinding $lease binds $user" '{ok: true, message: $m}'
    else
        jq -cn --arg e "RoleBinding $lease does not bind $user" '{ok: false, error: $e}'
    fi
    ;;
extend)
    printf '{"ok":true}\n'
    ;;
check)
    answer=$(k "$@" auth can-i create rolebindings --all-namespaces 2>&1) || true
    [ "$answer" = "yes" ] || die "kubectl may not create RoleBindings: $answer"
    jq -cn --arg m "kubectl can create and delete RoleBindings" '{ok: true, message: $m}'
    ;;
*)
    die "unsupported op: $op"
    ;;
esac
