#!/usr/bin/env bash
# Apache Kafka from Maven Central jars, run with this machine's Java: three combined
# broker+controller nodes in KRaft mode on 127.0.0.1 with a static controller quorum.
#
#   kafka.sh install          resolve the jars once into .cache/kafka/libs (needs java + mvn)
#   kafka.sh broker N         format node N's storage on first start, then exec the broker (foreground)
#   kafka.sh tool NAME ARGS   run one of Kafka's command-line tools (topics, consumer-groups, ...) as
#                             the admin principal (its client properties: .run/kafka/admin.properties)
#   kafka.sh ports N          print node N's client, controller and metrics ports
#   kafka.sh admin-properties write the admin's client properties file and print its path
#   kafka.sh scram-users      create, on the running cluster, the SCRAM users it lacks (idempotent)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LIBS="$REPO/.cache/kafka/libs"
# The Prometheus JMX exporter agent (pom.xml), kept off the brokers' classpath.
AGENT_DIR="$REPO/.cache/kafka/agent"
JMX_EXPORTER_CONFIG="$REPO/infra/kafka/jmx-exporter.yml"
RUN_DIR="${KAFKA_RUN_DIR:-$REPO/.run/kafka}"
# A fixed cluster id: the same on every machine, so the storage of a node can be checked against it.
CLUSTER_ID="${KAFKA_CLUSTER_ID:-4L6g3nShT-eMCtK--X86sw}"
BROKERS=3
# Node N listens for clients on PORT_BASE+2N and for controllers on PORT_BASE+2N+1 (9092/9093 ...);
# another base gives a second, throwaway cluster beside the running one (with its own KAFKA_RUN_DIR).
PORT_BASE="${KAFKA_PORT_BASE:-9090}"
HEAP="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
# The JVM flags besides the heap. TieredStopAtLevel=1 compiles with C1 only: on 2 shared cores the
# C2 compiler was 40 % of the brokers' CPU in the first 10 minutes after a start (13,000 methods,
# ~110 s of compilation per broker) and C1's code served the saga no slower (docs/numbers.md).
JVM_OPTS="${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:TieredStopAtLevel=1 -Djava.awt.headless=true}"

# Node N serves its metrics (the JMX exporter agent, /metrics) on METRICS_PORT_BASE+N (9201 ...);
# a second cluster beside the running one needs another base as well.
METRICS_PORT_BASE="${KAFKA_METRICS_PORT_BASE:-9200}"

client_port() { echo $((PORT_BASE + 2 * $1)); }
controller_port() { echo $((PORT_BASE + 1 + 2 * $1)); }
metrics_port() { echo $((METRICS_PORT_BASE + $1)); }
VOTERS="1@127.0.0.1:$(controller_port 1),2@127.0.0.1:$(controller_port 2),3@127.0.0.1:$(controller_port 3)"
BOOTSTRAP="127.0.0.1:$(client_port 1),127.0.0.1:$(client_port 2),127.0.0.1:$(client_port 3)"

# SASL identities (docs/security.md, "Kafka principals and ACLs"). The development passwords are
# fixed, "<principal>-kafka-dev", the same as the services' settings defaults and compose's; the
# services refuse them in production. `broker` (inter-broker, SCRAM) and `controller` (controller
# listener, PLAIN) are the brokers' own; `admin` provisions topics and ACLs and runs the tools;
# order, payment and inventory are the services'; `monitor` is the lag exporter's (describe only).
# A principal added here exists in clusters formatted from now on; `scram-users` adds it to a
# running cluster formatted before (make up runs it after the brokers are up).
SCRAM_PRINCIPALS=(broker admin order payment inventory monitor)
# Kafka Connect's principal exists only where the Debezium relay runs (RELAY=debezium; its ACLs are
# granted by infra/scripts/connectors.py provision): with the built-in relay no other principal may
# write the services' topics.
[ "${RELAY:-builtin}" = debezium ] && SCRAM_PRINCIPALS+=(connect)
password_of() {
  local var="KAFKA_$(echo "$1" | tr '[:lower:]' '[:upper:]')_PASSWORD"
  echo "${!var:-$1-kafka-dev}"
}
# Written when a node's storage is formatted with the SCRAM credentials: storage without it was
# formatted before Kafka authenticated its clients (see broker()).
SCRAM_MARKER=".formatted-with-scram"

installed() { [ -f "$LIBS/.complete" ] && [ "$LIBS/.complete" -nt "$REPO/infra/kafka/pom.xml" ]; }

install() {
  installed && return
  command -v java >/dev/null || { echo "java is missing: apt-get install -y openjdk-17-jre-headless" >&2; exit 1; }
  command -v mvn >/dev/null || { echo "mvn is missing: apt-get install -y maven" >&2; exit 1; }
  mkdir -p "$REPO/.cache/kafka"
  # One resolution at a time (every broker and tool calls install, and two would delete each other's
  # jars); in a subshell, so that the lock's descriptor does not pass on to the java this script execs.
  (
    flock 9
    installed && exit 0
    echo "kafka: resolving the broker, its tools and the JMX exporter agent from Maven Central into $LIBS"
    rm -rf "$LIBS" "$AGENT_DIR"
    copy=(mvn -q -B -f "$REPO/infra/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime)
    "${copy[@]}" -DoutputDirectory="$LIBS" -DexcludeArtifactIds=jmx_prometheus_javaagent
    "${copy[@]}" -DoutputDirectory="$AGENT_DIR" -DincludeArtifactIds=jmx_prometheus_javaagent
    touch "$LIBS/.complete"
  ) 9>"$REPO/.cache/kafka/.install.lock"
}

# -javaagent:<jar>=<host>:<port>:<config>: the agent serves /metrics on the loopback only.
jmx_exporter_agent() {
  local jar
  jar=$(ls "$AGENT_DIR"/jmx_prometheus_javaagent-*.jar)
  echo "-javaagent:$jar=127.0.0.1:$(metrics_port "$1"):$JMX_EXPORTER_CONFIG"
}

java_cmd() {
  exec java $HEAP $JVM_OPTS \
    -Dlog4j2.configurationFile="$REPO/infra/kafka/log4j2.yaml" \
    -cp "$LIBS/*" "$@"
}

write_config() {
  local n=$1 dir=$2
  mkdir -p "$dir/data"
  sed -e "s/@NODE_ID@/$n/g" \
      -e "s/@CLIENT_PORT@/$(client_port "$n")/g" \
      -e "s/@CONTROLLER_PORT@/$(controller_port "$n")/g" \
      -e "s/@VOTERS@/$VOTERS/g" \
      -e "s#@LOG_DIR@#$dir/data#g" \
      -e "s/@BROKER_PASSWORD@/$(password_of broker)/g" \
      -e "s/@CONTROLLER_PASSWORD@/$(password_of controller)/g" \
      "$REPO/infra/kafka/server.properties.template" > "$dir/server.properties"
}

broker() {
  local n=$1 dir="$RUN_DIR/broker-$1"
  install
  write_config "$n" "$dir"
  if [ -f "$dir/data/meta.properties" ] && [ ! -f "$dir/data/$SCRAM_MARKER" ]; then
    # Formatted before SASL: its metadata has no SCRAM users, so no broker could authenticate to
    # another. Adding them would need the old open listener one more time; this is local
    # development data, so it is reset instead (topics are recreated by make up; the services'
    # databases keep their state).
    echo "kafka: node $n's storage predates SASL/SCRAM; resetting the local Kafka data in $dir/data" >&2
    rm -rf "$dir/data"
    mkdir -p "$dir/data"
  fi
  if [ ! -f "$dir/data/meta.properties" ]; then
    echo "kafka: formatting storage of node $n, with the SCRAM users ${SCRAM_PRINCIPALS[*]}"
    local scram=() principal
    for principal in "${SCRAM_PRINCIPALS[@]}"; do
      scram+=(--add-scram "SCRAM-SHA-512=[name=$principal,password=$(password_of "$principal")]")
    done
    java $HEAP -Dlog4j2.configurationFile="$REPO/infra/kafka/log4j2.yaml" -cp "$LIBS/*" \
      kafka.tools.StorageTool format --cluster-id "$CLUSTER_ID" --config "$dir/server.properties" \
      --ignore-formatted "${scram[@]}" >/dev/null  # its output shows the credentials it writes
    touch "$dir/data/$SCRAM_MARKER"
  fi
  java_cmd "$(jmx_exporter_agent "$n")" kafka.Kafka "$dir/server.properties"
}

# The scripts Kafka ships (bin/kafka-*.sh) are thin wrappers around these classes.
tool() {
  local name=$1; shift
  local cls
  case "$name" in
    topics) cls=org.apache.kafka.tools.TopicCommand ;;
    consumer-groups) cls=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
    console-consumer) cls=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
    console-producer) cls=org.apache.kafka.tools.ConsoleProducer ;;
    producer-perf-test) cls=org.apache.kafka.tools.ProducerPerformance ;;
    consumer-perf-test) cls=org.apache.kafka.tools.ConsumerPerformance ;;
    configs) cls=org.apache.kafka.tools.ConfigCommand ;;
    metadata-quorum) cls=org.apache.kafka.tools.MetadataQuorumCommand ;;
    get-offsets) cls=org.apache.kafka.tools.GetOffsetShell ;;
    delete-records) cls=org.apache.kafka.tools.DeleteRecordsCommand ;;
    acls) cls=org.apache.kafka.tools.AclCommand ;;
    leader-election) cls=org.apache.kafka.tools.LeaderElectionCommand ;;
    reassign-partitions) cls=org.apache.kafka.tools.reassign.ReassignPartitionsCommand ;;
    *) echo "unknown tool '$name' (topics, consumer-groups, console-consumer, console-producer," \
            "producer-perf-test, consumer-perf-test, configs, metadata-quorum, get-offsets, delete-records, acls," \
            "leader-election, reassign-partitions)" >&2
       exit 2 ;;
  esac
  install
  # Every tool connects as the admin (Kafka 4's tools all read a client properties file given as
  # --command-config), unless the caller names another file.
  local config=()
  case " $* " in
    *" --command-config "*|*".config "*) ;;
    *) config=(--command-config "$(admin_properties)") ;;
  esac
  HEAP="-Xmx256m" java_cmd -Dlog4j2.configurationFile="$REPO/infra/kafka/log4j2-tools.yaml" "$cls" "$@" "${config[@]}"
}

# The admin principal's client properties, for the tools (kept under .run/, never committed).
admin_properties() {
  local file="$RUN_DIR/admin.properties"
  mkdir -p "$RUN_DIR"
  umask 077
  cat > "$file" <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(password_of admin)";
PROPERTIES
  echo "$file"
}

# Storage is formatted with the SCRAM users once; a principal added to SCRAM_PRINCIPALS later is
# created here on the running cluster, as the admin (the AlterUserScramCredentials request, through
# kafka-configs). Users that exist are left alone: their passwords may have been changed on purpose.
# The list last checked is kept in a marker, so an unchanged list costs no JVM start.
scram_users() {
  local marker="$RUN_DIR/.scram-users-checked" existing principal
  [ "$(cat "$marker" 2>/dev/null)" = "${SCRAM_PRINCIPALS[*]}" ] && return
  existing="$(tool configs --bootstrap-server "$BOOTSTRAP" --describe --entity-type users)"
  for principal in "${SCRAM_PRINCIPALS[@]}"; do
    if ! grep -q "user-principal '$principal' " <<<"$existing"; then
      echo "kafka: creating the SCRAM user $principal on the running cluster"
      tool configs --bootstrap-server "$BOOTSTRAP" --alter --entity-type users --entity-name "$principal" \
        --add-config "SCRAM-SHA-512=[password=$(password_of "$principal")]" >/dev/null
    fi
  done
  echo "${SCRAM_PRINCIPALS[*]}" > "$marker"
}

case "${1:-}" in
  install) install ;;
  broker) broker "${2:?node id 1..$BROKERS}" ;;
  tool) shift; tool "$@" ;;
  ports) echo "client=$(client_port "${2:?}") controller=$(controller_port "$2") metrics=$(metrics_port "$2")" ;;
  bootstrap) echo "$BOOTSTRAP" ;;
  admin-properties) admin_properties ;;
  scram-users) scram_users ;;
  *) sed -n '2,11p' "$0" >&2; exit 2 ;;
esac
