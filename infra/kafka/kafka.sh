#!/usr/bin/env bash
# Apache Kafka from Maven Central jars, run with this machine's Java: three combined
# broker+controller nodes in KRaft mode on 127.0.0.1 with a static controller quorum.
#
#   kafka.sh install          resolve the jars once into .cache/kafka/libs (needs java + mvn)
#   kafka.sh broker N         format node N's storage on first start, then exec the broker (foreground)
#   kafka.sh tool NAME ARGS   run one of Kafka's command-line tools (topics, consumer-groups, ...)
#   kafka.sh ports N          print node N's client and controller ports
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LIBS="$REPO/.cache/kafka/libs"
RUN_DIR="${KAFKA_RUN_DIR:-$REPO/.run/kafka}"
# A fixed cluster id: the same on every machine, so the storage of a node can be checked against it.
CLUSTER_ID="${KAFKA_CLUSTER_ID:-4L6g3nShT-eMCtK--X86sw}"
BROKERS=3
VOTERS="1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
BOOTSTRAP="127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
HEAP="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"

client_port() { echo $((9090 + 2 * $1)); }
controller_port() { echo $((9091 + 2 * $1)); }

install() {
  if [ -f "$LIBS/.complete" ] && [ "$LIBS/.complete" -nt "$REPO/infra/kafka/pom.xml" ]; then return; fi
  command -v java >/dev/null || { echo "java is missing: apt-get install -y openjdk-17-jre-headless" >&2; exit 1; }
  command -v mvn >/dev/null || { echo "mvn is missing: apt-get install -y maven" >&2; exit 1; }
  echo "kafka: resolving the broker and its tools from Maven Central into $LIBS"
  rm -rf "$LIBS"
  mvn -q -B -f "$REPO/infra/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$LIBS" -DincludeScope=runtime
  touch "$LIBS/.complete"
}

java_cmd() {
  exec java $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
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
      "$REPO/infra/kafka/server.properties.template" > "$dir/server.properties"
}

broker() {
  local n=$1 dir="$RUN_DIR/broker-$1"
  install
  write_config "$n" "$dir"
  if [ ! -f "$dir/data/meta.properties" ]; then
    echo "kafka: formatting storage of node $n"
    java $HEAP -Dlog4j2.configurationFile="$REPO/infra/kafka/log4j2.yaml" -cp "$LIBS/*" \
      kafka.tools.StorageTool format --cluster-id "$CLUSTER_ID" --config "$dir/server.properties" \
      --ignore-formatted
  fi
  java_cmd kafka.Kafka "$dir/server.properties"
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
    *) echo "unknown tool '$name' (topics, consumer-groups, console-consumer, console-producer," \
            "producer-perf-test, consumer-perf-test, configs, metadata-quorum, get-offsets, delete-records)" >&2
       exit 2 ;;
  esac
  install
  HEAP="-Xmx256m" java_cmd -Dlog4j2.configurationFile="$REPO/infra/kafka/log4j2-tools.yaml" "$cls" "$@"
}

case "${1:-}" in
  install) install ;;
  broker) broker "${2:?node id 1..$BROKERS}" ;;
  tool) shift; tool "$@" ;;
  ports) echo "client=$(client_port "${2:?}") controller=$(controller_port "$2")" ;;
  bootstrap) echo "$BOOTSTRAP" ;;
  *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
