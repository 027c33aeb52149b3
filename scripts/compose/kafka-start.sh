#!/usr/bin/env bash
# The compose stack's Kafka broker (docker-compose.yml, docs/security.md): KRaft, one node.
#   INTERNAL  kafka:9092  SASL_PLAINTEXT, SCRAM-SHA-512: the stack's own network
#   EXTERNAL  :9094       SASL_SSL, SCRAM-SHA-512 over TLS: clients beyond the host
#   CONTROLLER kafka:9093 SASL_PLAINTEXT, PLAIN: the broker to its own controller
# The KRaft StandardAuthorizer allows what ACLs grant (`tapeflow init` grants the flows' and
# subscribers'); tapeflow-admin, the broker and the controller are super users. The first
# SCRAM users are written when the storage is formatted (the only way into a new cluster).
# Every password comes from a compose secret file; the config written here is 0600.
# Paths and ports are variables so that the script can run outside its container too.
set -euo pipefail
KAFKA_HOME="${KAFKA_HOME:-/opt/kafka}"
SECRETS="${TAPEFLOW_SECRETS:-/run/secrets}"
DATA="${KAFKA_DATA:-/var/lib/kafka/data}"
CONFIG_DIR="${KAFKA_CONFIG_DIR:-/tmp/tapeflow-kafka}"
HOST="${KAFKA_HOST:-kafka}"
BIND="${KAFKA_BIND:-0.0.0.0}"
PORT="${KAFKA_PORT:-9092}"                          # INTERNAL; CONTROLLER +1; EXTERNAL +2
EXTERNAL_HOST="${KAFKA_EXTERNAL_HOST:-localhost}"   # the name clients beyond the host use
EXTERNAL_PORT="${KAFKA_EXTERNAL_PORT:-$((PORT + 2))}"

secret() { tr -d '\r\n' < "${SECRETS}/$1"; }
jaas_scram() {
  printf 'org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";' "$1" "$2"
}

umask 077
mkdir -p "${CONFIG_DIR}"
CONFIG="${CONFIG_DIR}/server.properties"
broker_pw="$(secret kafka_broker_password)"
controller_pw="$(secret kafka_controller_password)"
cat > "${CONFIG}" <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@${HOST}:$((PORT + 1))
listeners=INTERNAL://${BIND}:${PORT},CONTROLLER://${BIND}:$((PORT + 1)),EXTERNAL://${BIND}:${EXTERNAL_PORT}
advertised.listeners=INTERNAL://${HOST}:${PORT},EXTERNAL://${EXTERNAL_HOST}:${EXTERNAL_PORT}
listener.security.protocol.map=INTERNAL:SASL_PLAINTEXT,EXTERNAL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
sasl.mechanism.controller.protocol=PLAIN
listener.name.internal.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.internal.scram-sha-512.sasl.jaas.config=$(jaas_scram tapeflow-broker "${broker_pw}")
listener.name.external.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.external.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.external.ssl.keystore.type=PEM
listener.name.external.ssl.keystore.location=${SECRETS}/kafka_tls_keystore
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="${controller_pw}" user_controller="${controller_pw}";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:tapeflow-admin;User:tapeflow-broker;User:controller
allow.everyone.if.no.acl.found=false
log.dirs=${DATA}
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPERTIES

# The admin's client settings, for the health check and kafka-setup.sh (0600, like the above).
cat > "${CONFIG_DIR}/admin.properties" <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$(jaas_scram tapeflow-admin "$(secret kafka_admin_password)")
PROPERTIES

if [ ! -f "${DATA}/meta.properties" ]; then
  # Once, on the first start: the format command carries the first users' passwords on its
  # command line for its few seconds (inside the container; the host's root can see them).
  scram=(--add-scram "SCRAM-SHA-512=[name=tapeflow-broker,password=${broker_pw}]")
  for user in admin market trading; do
    scram+=(--add-scram "SCRAM-SHA-512=[name=tapeflow-${user},password=$(secret "kafka_${user}_password")]")
  done
  scram+=(--add-scram "SCRAM-SHA-512=[name=schema-registry,password=$(secret kafka_schema_registry_password)]")
  cluster_id="$("${KAFKA_HOME}/bin/kafka-storage.sh" random-uuid)"
  "${KAFKA_HOME}/bin/kafka-storage.sh" format --cluster-id "${cluster_id}" --config "${CONFIG}" \
    "${scram[@]}" > /dev/null
fi
exec "${KAFKA_HOME}/bin/kafka-server-start.sh" "${CONFIG}"
