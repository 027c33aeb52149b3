-- The compose stack's Postgres roles (docker-compose.yml, docs/security.md), run once by
-- scripts/compose/postgres-roles.sh when the server initialises, as the owner (POSTGRES_USER),
-- who also runs `tapeflow init`'s migrations. psql variables: owner, writer_pw, reader_pw.
-- The flows write as tapeflow_writer (no DDL, no DELETE: every sink upserts), queries read as
-- tapeflow_reader. Privileges on the tables the owner creates later come from the defaults.
CREATE ROLE tapeflow_writer LOGIN PASSWORD :'writer_pw';
CREATE ROLE tapeflow_reader LOGIN PASSWORD :'reader_pw';
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
CREATE SCHEMA IF NOT EXISTS tapeflow AUTHORIZATION :"owner";
GRANT USAGE ON SCHEMA tapeflow TO tapeflow_writer, tapeflow_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA tapeflow
    GRANT SELECT, INSERT, UPDATE ON TABLES TO tapeflow_writer;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA tapeflow
    GRANT USAGE, SELECT ON SEQUENCES TO tapeflow_writer;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA tapeflow
    GRANT SELECT ON TABLES TO tapeflow_reader;
