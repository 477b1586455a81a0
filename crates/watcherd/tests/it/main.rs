//! The black-box suites of watcherd, one module each, in one test binary
//! (linked once, not once per suite). They start the real `watcherd`
//! (`watcher_testkit`), talk HTTP to it, and use real SQLite files,
//! PostgreSQL, RabbitMQ and the local OpenStack control plane.

mod actions;
mod api;
mod api_fuzz;
mod architecture;
mod cancel;
mod cancel_race;
mod continuous;
mod dashboard;
mod database_file;
mod deployment;
mod failover;
mod fault_matrix;
mod galera;
mod keystone;
mod limits;
mod mariadb;
mod notifications;
mod openapi;
mod openstack;
mod pause;
mod pg_failover;
mod postgres;
mod prometheus;
mod purge;
mod recovery;
mod same_origin;
mod split_services;
mod state_machine_doc;
mod strategies;
mod upstream_conf;
mod upstream_takeover;
