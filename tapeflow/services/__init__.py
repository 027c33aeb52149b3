"""Reaching the services: the Kafka cluster, ClickHouse and Postgres, one module each.

Every adapter (sources, sinks, jobs, flows) opens its clients through here, so a connection
error reads the same everywhere and names the service and its address without a password.
"""
