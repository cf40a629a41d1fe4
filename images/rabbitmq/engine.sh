# Per-engine settings for images/build.sh (sourced, bash). Everything in this file is
# part of the base image's inputs hash, so editing it rebuilds the base image.
#
# In:  VERSION (the Berth engine version asked for, e.g. "4.0"), die()
# Out: SUITE, ENGINE_FULL_VERSION, PACKAGES (array), VERSION_PACKAGE, engine_customize()

# The plugins every version enables: the management UI/API, MQTT, STOMP, Prometheus, Web-MQTT, Web-STOMP.
PLUGINS=(rabbitmq_management rabbitmq_mqtt rabbitmq_stomp rabbitmq_prometheus rabbitmq_web_mqtt rabbitmq_web_stomp)

case "$VERSION" in
  4.3)
    SUITE=forky                    # Debian 14 (testing): not yet a script in bookworm's debootstrap; build.sh copes
    ENGINE_FULL_VERSION=4.3.6      # upstream part of the Debian version must equal this
    ;;
  4.0)
    SUITE=trixie
    ENGINE_FULL_VERSION=4.0.5
    ;;
  3.10)
    SUITE=bookworm
    ENGINE_FULL_VERSION=3.10.8
    # AMQP 1.0 is built into 4.x; in 3.10 it is this plugin.
    PLUGINS+=(rabbitmq_amqp1_0)
    ;;
  *) die "rabbitmq: unsupported version '$VERSION' (supported: 4.3, 4.0, 3.10)" ;;
esac

PACKAGES=(rabbitmq-server ca-certificates procps)
# 4.x runs CLUSTER_MULTI_AZ brokers: their load balancer is a 4th container from this same image, running Debian's
# haproxy instead of the agent (the control plane overrides the entrypoint; control-plane/src/domain/haproxy.rs).
case "$VERSION" in 4.*) PACKAGES+=(haproxy) ;; esac
VERSION_PACKAGE=rabbitmq-server

# Called after the security upgrade and the generic trim; $1 = rootfs.
engine_customize() {
  local root=$1 plugins_dir p list
  # The postinst generated a cookie: every instance must get its own (the agent writes it).
  rm -f "$root/var/lib/rabbitmq/.erlang.cookie"
  # Every plugin to enable must ship with this version (a directory or an .ez named NAME-VERSION).
  plugins_dir="$root/usr/lib/rabbitmq/lib/rabbitmq_server-$ENGINE_FULL_VERSION/plugins"
  [ -d "$plugins_dir" ] || die "rabbitmq: no plugins dir ${plugins_dir#"$root"}"
  for p in "${PLUGINS[@]}"; do
    compgen -G "$plugins_dir/$p-[0-9]*" >/dev/null || die "rabbitmq $ENGINE_FULL_VERSION ships no plugin $p"
  done
  # rabbitmq-plugins --offline fails in a chroot (:plugins_dir_does_not_exist); writing the file works.
  list=$(IFS=,; echo "${PLUGINS[*]}")
  printf '[%s].\n' "$list" > "$root/etc/rabbitmq/enabled_plugins"
  chmod 0644 "$root/etc/rabbitmq/enabled_plugins"
  case "$VERSION" in
    4.*)
      [ -x "$root/usr/sbin/haproxy" ] || die "rabbitmq $VERSION: haproxy is not installed (/usr/sbin/haproxy)"
      # Debian's sample config is never used (the LB gets /etc/berth/haproxy.cfg); the directory the control plane
      # uploads into exists, so a single-file archive suffices.
      mkdir -p "$root/etc/berth"; chmod 0755 "$root/etc/berth"
      ;;
  esac
}
