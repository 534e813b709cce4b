-- Till Ledger on PostgreSQL with least privilege: the database, the role that owns it, and the role
-- the service and the projection workers run as.
--
--   owner role (till_owner)  owns the database and the schema; `till db init` runs as it, once per
--                            install or upgrade, to create the tables, guard the event table and grant
--                            the app role what it uses (see infra/README.md)
--   app role   (till_app)    CONNECT, USAGE on the schema, and then only the table privileges that
--                            `till db init --app-role till_app` grants: never CREATE, DELETE or
--                            TRUNCATE on stored events
--
-- Run it with psql as a superuser (or a role with CREATEROLE and CREATEDB):
--
--   psql -X -v ON_ERROR_STOP=1 -v owner_password_file=/run/secrets/till_owner_password \
--        -v app_password_file=/run/secrets/till_app_password -f infra/postgres/create-database.sql
--
-- psql variables (-v name=value), all optional:
--   dbname (till)  schema (till)  owner_role (till_owner)  app_role (till_app)
--   owner_password_file / app_password_file   a file holding the role's password (read with `cat`)
--   owner_password / app_password             the password itself (it then shows in `ps`: prefer files)
--   no password given: the role has none (peer or certificate authentication, or set it later)
-- Note: the password travels in an ALTER ROLE statement; with log_statement = 'ddl' or 'all' the
-- server would log it. PostgreSQL stores only its SCRAM verifier.
--
-- Safe to run again: roles, database and schema are created only when missing; privileges are reset.

\set ON_ERROR_STOP 1
\if :{?dbname}
\else
  \set dbname till
\endif
\if :{?schema}
\else
  \set schema till
\endif
\if :{?owner_role}
\else
  \set owner_role till_owner
\endif
\if :{?app_role}
\else
  \set app_role till_app
\endif
\if :{?owner_password_file}
  \set owner_password `cat :'owner_password_file'`
\endif
\if :{?app_password_file}
  \set app_password `cat :'app_password_file'`
\endif

-- Roles: login, and nothing else (no superuser, no CREATEDB/CREATEROLE, no replication, no RLS bypass).
SELECT format('CREATE ROLE %I', :'owner_role')
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = :'owner_role') \gexec
SELECT format('CREATE ROLE %I', :'app_role')
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = :'app_role') \gexec
ALTER ROLE :"owner_role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT;
-- NOINHERIT: even if someone later grants the app role membership of another role, it does not
-- silently gain that role's privileges.
ALTER ROLE :"app_role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT;
\if :{?owner_password}
  ALTER ROLE :"owner_role" WITH PASSWORD :'owner_password';
\endif
\if :{?app_password}
  ALTER ROLE :"app_role" WITH PASSWORD :'app_password';
\endif

-- The database, owned by the owner role. UTF-8 whatever the cluster's default: merchant names are Chinese.
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', :'dbname', :'owner_role', 'UTF8')
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_database WHERE datname = :'dbname') \gexec
ALTER DATABASE :"dbname" OWNER TO :"owner_role";
-- Nobody else may connect or make temporary tables; the app role may only connect.
REVOKE ALL ON DATABASE :"dbname" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"dbname" TO :"app_role";

\connect :"dbname"
-- PostgreSQL 15 already keeps PUBLIC out of the public schema; older servers let anyone create there.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SELECT format('CREATE SCHEMA %I AUTHORIZATION %I', :'schema', :'owner_role')
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = :'schema') \gexec
ALTER SCHEMA :"schema" OWNER TO :"owner_role";
REVOKE ALL ON SCHEMA :"schema" FROM PUBLIC;
GRANT USAGE ON SCHEMA :"schema" TO :"app_role";
-- The service always names the schema; this is for people running psql as either role.
ALTER ROLE :"owner_role" IN DATABASE :"dbname" SET search_path = :"schema";
ALTER ROLE :"app_role" IN DATABASE :"dbname" SET search_path = :"schema";
