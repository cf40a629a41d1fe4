# Per-engine settings for images/build.sh (sourced, bash). Everything in this file is
# part of the base image's inputs hash, so editing it rebuilds the base image.
#
# In:  VERSION (the Berth engine version asked for, e.g. "5.17"), die()
# Out: SUITE, ENGINE_FULL_VERSION, PACKAGES (array), VERSION_PACKAGE, engine_customize()
#
# Debian's ActiveMQ (libactivemq-java) is built without activemq-amqp, -http (ws/wss), -web-console,
# -runtime-config and Jolokia: such a broker offers OpenWire, STOMP and MQTT (+ssl/+nio, auto) only.

case "$VERSION" in
  5.17)
    SUITE=trixie
    ENGINE_FULL_VERSION=5.17.6     # upstream part of the Debian version must equal this
    ;;
  *) die "activemq: unsupported version '$VERSION' (supported: 5.17)" ;;
esac

# libmqtt-client-java: MQTT connections fail without mqtt-client.jar (NoClassDefFoundError PINGRESP).
# libxstream-java, libxpp3-java, libjettison-java: STOMP jms-map-xml/-json replies (statisticsBrokerPlugin over
# STOMP); they are Recommends, which debootstrap does not install.
PACKAGES=(activemq openjdk-21-jre-headless libmqtt-client-java libxstream-java libxpp3-java libjettison-java
          ca-certificates procps)
VERSION_PACKAGE=activemq

# The broker's uid:gid. Berth writes files into running containers (users.properties through the archive
# API) with these numeric ids, and a fresh named volume on /var/lib/activemq/data takes this ownership.
ACTIVEMQ_UID=100 ACTIVEMQ_GID=101

# The TLS warm-up agent (warmup/BerthTlsWarmup.java, compiled into /usr/share/berth/tls-warmup.jar with the
# JRE's own compiler module): its sha256 is pinned here, so editing the source changes this file and with it the
# base image's inputs hash. A source that does not match fails the build and says what to pin.
WARMUP_SHA256=2c77d18941da3395c558861d7eac903d6165b9ff7a1fdc27ab492817f21d8c3f
WARMUP_JAR=/usr/share/berth/tls-warmup.jar

# Called after the security upgrade and the generic trim; $1 = rootfs.
engine_customize() {
  local root=$1 j ids
  # Debian ships these jars in /usr/share/java but not on the broker's classpath: link them into lib/optional,
  # which the broker's extension class loader scans for every instance.
  for j in mqtt-client xstream jettison; do
    chroot "$root" test -f "/usr/share/java/$j.jar" || die "activemq: /usr/share/java/$j.jar missing"
    ln -sfn "../../../java/$j.jar" "$root/usr/share/activemq/lib/optional/$j.jar"
  done
  # lib/optional/xpp3.jar is Debian's own link; it resolves now that libxpp3-java is installed.
  for j in mqtt-client xstream jettison xpp3; do
    chroot "$root" test -f "/usr/share/activemq/lib/optional/$j.jar" \
      || die "activemq: lib/optional/$j.jar does not resolve"
  done
  ids=$(chroot "$root" id -u activemq):$(chroot "$root" id -g activemq)
  [ "$ids" = "$ACTIVEMQ_UID:$ACTIVEMQ_GID" ] || die "activemq: user is $ids in the rootfs, expected $ACTIVEMQ_UID:$ACTIVEMQ_GID"
  mkdir -p "$root/var/lib/activemq/data"
  chown "$ACTIVEMQ_UID:$ACTIVEMQ_GID" "$root/var/lib/activemq/data"
  build_warmup "$root"
}

# $1 = rootfs: compiles the TLS warm-up agent inside it (the JRE's jdk.compiler and jdk.jartool modules).
build_warmup() {
  local root=$1 src="$HERE/activemq/warmup/BerthTlsWarmup.java" sum java=/usr/lib/jvm/default-java/bin/java
  sum=$(sha256sum "$src" | cut -d' ' -f1)
  [ "$sum" = "$WARMUP_SHA256" ] || die "activemq: $src has sha256 $sum; set WARMUP_SHA256 in activemq/engine.sh to it"
  mkdir -p "$root/tmp/warmup/classes" "$root$(dirname "$WARMUP_JAR")"
  cp "$src" "$root/tmp/warmup/"
  printf 'Premain-Class: berth.BerthTlsWarmup\n' > "$root/tmp/warmup/MANIFEST.MF"
  mount -t proc proc "$root/proc"
  chroot "$root" "$java" --module jdk.compiler/com.sun.tools.javac.Main -nowarn -d /tmp/warmup/classes \
    /tmp/warmup/BerthTlsWarmup.java >&2 \
    && chroot "$root" "$java" --module jdk.jartool/sun.tools.jar.Main --create --file "$WARMUP_JAR" \
      --manifest /tmp/warmup/MANIFEST.MF -C /tmp/warmup/classes . >&2 \
    || { umount "$root/proc"; die "activemq: compiling the TLS warm-up agent failed"; }
  umount "$root/proc"
  rm -rf "$root/tmp/warmup"
  chmod 0644 "$root$WARMUP_JAR"
}
