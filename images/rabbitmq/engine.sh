# Per-engine settings for images/build.sh (sourced, bash). Everything in this file is
# part of the base image's inputs hash, so editing it rebuilds the base image.
#
# In:  VERSION (the Berth engine version asked for, e.g. "4.0"), die()
# Out: SUITE, ENGINE_FULL_VERSION, PACKAGES (array), VERSION_PACKAGE, engine_customize()

case "$VERSION" in
  4.0)
    SUITE=trixie
    ENGINE_FULL_VERSION=4.0.5      # upstream part of the Debian version must equal this
    ;;
  *) die "rabbitmq: unsupported version '$VERSION' (supported: 4.0)" ;;
esac

PACKAGES=(rabbitmq-server ca-certificates procps)
VERSION_PACKAGE=rabbitmq-server

# Called after the security upgrade and the generic trim; $1 = rootfs.
engine_customize() {
  local root=$1
  # The postinst generated a cookie: every instance must get its own (the agent writes it).
  rm -f "$root/var/lib/rabbitmq/.erlang.cookie"
  # rabbitmq-plugins --offline fails in a chroot (:plugins_dir_does_not_exist); writing the file works.
  printf '%s\n' '[rabbitmq_management,rabbitmq_mqtt,rabbitmq_stomp,rabbitmq_prometheus,rabbitmq_web_mqtt,rabbitmq_web_stomp].' \
    > "$root/etc/rabbitmq/enabled_plugins"
  chmod 0644 "$root/etc/rabbitmq/enabled_plugins"
}
