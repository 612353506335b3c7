//! Storage tests, each run on SQLite (a temp file) and on PostgreSQL (a fresh database, when
//! `HOOKPLANE_TEST_POSTGRES_URL` is set).

mod common;

mod attempts;
mod bucket;
mod cluster;
mod leases;
mod lifecycle;
mod logs;
mod ordering;
mod outcomes;
mod pause;
mod portal;
mod queue;
mod relay;
mod reports;
mod retention;
mod schemas;
