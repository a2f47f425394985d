-- Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d),
-- as POSTGRES_USER. Two databases on one server: the app database and Dagster's own storage
-- (runs, event logs, schedules), which are never mixed.
CREATE DATABASE waifugen;
CREATE DATABASE dagster;
