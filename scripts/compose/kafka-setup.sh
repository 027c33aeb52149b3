#!/usr/bin/env bash
# One-shot, after the broker answers (docker-compose.yml): what the schema registry's own
# principal needs before it can start, granted as the admin. Tapeflow's principals get theirs
# from `tapeflow init` (docs/security.md); the registry starts before init, which reads it.
#   schema-registry: produce and consume _schemas (create it, too), read its configs, and
#   use its group (the registry's leader election).
set -euo pipefail
KAFKA_HOME="${KAFKA_HOME:-/opt/kafka}"
SECRETS="${TAPEFLOW_SECRETS:-/run/secrets}"
BOOTSTRAP="${KAFKA_BOOTSTRAP:-kafka:9092}"
umask 077
config="$(mktemp)"
trap 'rm -f "${config}"' EXIT
cat > "${config}" <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="tapeflow-admin" password="$(tr -d '\r\n' < "${SECRETS}/kafka_admin_password")";
PROPERTIES
acls=("${KAFKA_HOME}/bin/kafka-acls.sh" --bootstrap-server "${BOOTSTRAP}" --command-config "${config}")
"${acls[@]}" --add --allow-principal User:schema-registry --producer --consumer \
  --topic _schemas --group schema-registry
"${acls[@]}" --add --allow-principal User:schema-registry --operation DescribeConfigs \
  --topic _schemas
echo "schema-registry: ACLs on _schemas and its group granted"
