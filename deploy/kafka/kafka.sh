#!/usr/bin/env bash
# A real Apache Kafka broker for Vigil's demo, integration tests and benchmarks:
# one KRaft node (broker and controller) on 127.0.0.1. No Docker.
#
#   deploy/kafka/kafka.sh fetch                 fetch Kafka with Maven into the cache (idempotent)
#   deploy/kafka/kafka.sh start PORT DATA_DIR   format (first time) and start; wait until it serves
#   deploy/kafka/kafka.sh stop DATA_DIR         stop cleanly (SIGTERM, then wait)
#   deploy/kafka/kafka.sh status DATA_DIR       exit 0 when running
#   deploy/kafka/kafka.sh topic DATA_DIR NAME PARTITIONS [KEY=VALUE ...]
#                                               create a topic with this configuration (Kafka's TopicCommand)
#   deploy/kafka/kafka.sh delete-topic DATA_DIR NAME
#
# Kafka 4.1.1 (pom.xml): Debian 12's librdkafka 2.0.2 speaks the protocol
# versions Kafka 4 kept (KIP-896 dropped only those older than Kafka 2.1).
# Cache: $VIGIL_CACHE (default ~/.cache/vigil). Needs Java 17 and Maven.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${VIGIL_CACHE:-$HOME/.cache/vigil}
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
libs=$cache/kafka-$version/libs

need_tools() {
  if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
    echo "kafka.sh: installing Java 17 and Maven" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless maven >&2
  fi
}

fetch() {
  [ -f "$libs/.complete" ] && return 0
  need_tools
  echo "kafka.sh: fetching Apache Kafka $version from Maven Central into $libs" >&2
  mkdir -p "$libs"
  mvn -q -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$libs" -DincludeScope=runtime >&2
  touch "$libs/.complete"
}

run_java() {  # run_java DATA_DIR MAIN_CLASS ARGS...
  local data=$1; shift
  java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$here/log4j2.properties" -Dkafka.logs.dir="$data" \
    -cp "$libs/*" "$@"
}

running() {  # running DATA_DIR
  [ -f "$1/broker.pid" ] && kill -0 "$(cat "$1/broker.pid")" 2>/dev/null
}

start() {
  local port=$1 data=$2
  fetch
  mkdir -p "$data"
  data=$(cd "$data" && pwd)
  if running "$data"; then echo "kafka.sh: already running on $(cat "$data/port")" >&2; return 0; fi
  local controller=$((port + 1))
  cat >"$data/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$data/log
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
PROPS
  if [ ! -f "$data/log/meta.properties" ]; then
    run_java "$data" kafka.tools.StorageTool format --standalone -t "$(run_java "$data" kafka.tools.StorageTool random-uuid)" \
      -c "$data/server.properties" >"$data/format.log" 2>&1
  fi
  echo "$port" >"$data/port"
  # A restart: the last run's log must not answer "started" for this one.
  if [ -f "$data/broker.log" ]; then mv -f "$data/broker.log" "$data/broker.log.previous"; fi
  nohup bash -c "exec java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile='$here/log4j2.properties' -Dkafka.logs.dir='$data' \
    -cp '$libs/*' kafka.Kafka '$data/server.properties'" >"$data/stdout.log" 2>&1 &
  echo $! >"$data/broker.pid"
  # Serving when the port accepts connections and the broker has registered.
  for _ in $(seq 1 120); do
    if ! running "$data"; then
      echo "kafka.sh: broker exited; see $data/stdout.log and $data/broker.log" >&2
      tail -20 "$data/stdout.log" >&2 || true
      return 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && grep -qs "Kafka Server started" "$data/broker.log"; then
      echo "kafka.sh: Apache Kafka $version serving on 127.0.0.1:$port (data: $data)" >&2
      return 0
    fi
    sleep 0.5
  done
  echo "kafka.sh: broker did not start within 60s; see $data/stdout.log" >&2
  return 1
}

stop() {
  local data=$1
  running "$data" || { rm -f "$data/broker.pid"; return 0; }
  local pid; pid=$(cat "$data/broker.pid")
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$data/broker.pid"; return 0; }
    sleep 0.5
  done
  echo "kafka.sh: broker did not stop in 30s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$data/broker.pid"
}

topic() {  # topic DATA_DIR NAME PARTITIONS [KEY=VALUE ...]
  local data=$1 name=$2 partitions=$3; shift 3
  local configs=()
  for kv in "$@"; do configs+=(--config "$kv"); done
  run_java "$data" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$(cat "$data/port")" \
    --create --topic "$name" --partitions "$partitions" --replication-factor 1 "${configs[@]}" >&2
}

delete_topic() {  # delete_topic DATA_DIR NAME
  run_java "$1" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$(cat "$1/port")" \
    --delete --topic "$2" >&2
}

case "${1:-}" in
  fetch) fetch ;;
  start) [ $# -eq 3 ] || { echo "usage: $0 start PORT DATA_DIR" >&2; exit 2; }; start "$2" "$3" ;;
  stop) [ $# -eq 2 ] || { echo "usage: $0 stop DATA_DIR" >&2; exit 2; }; stop "$2" ;;
  topic) [ $# -ge 4 ] || { echo "usage: $0 topic DATA_DIR NAME PARTITIONS [KEY=VALUE ...]" >&2; exit 2; }
    shift; topic "$@" ;;
  delete-topic) [ $# -eq 3 ] || { echo "usage: $0 delete-topic DATA_DIR NAME" >&2; exit 2; }; delete_topic "$2" "$3" ;;
  status) [ $# -eq 2 ] || { echo "usage: $0 status DATA_DIR" >&2; exit 2; }; running "$2" ;;
  *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac
