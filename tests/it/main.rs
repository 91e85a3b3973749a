//! Every integration test in one binary: one compile and one link instead of one
//! per file, and one shared PostgreSQL cluster (`support::pg::shared`). Each
//! module is what used to be its own `tests/*.rs`.

#![allow(clippy::unwrap_used)] // a test that unwraps fails loudly, as it should

#[macro_use]
mod support;

mod alerts;
mod approver_alerts;
mod async_boundary;
mod automation;
mod backend_demo_exec;
mod backend_http;
mod backend_openbao;
mod backend_postgres;
mod backend_ssh_ca;
mod backend_vault;
mod broker;
mod broker_accounts;
mod broker_config;
mod broker_ssh;
mod checkpoints;
mod cli;
mod copied_credentials;
mod crash;
mod dist;
mod docs_examples;
mod docs_links;
mod drills;
mod engine_rules;
mod evidence;
mod exec_backend;
mod fuzz_seeds;
mod hostile_input;
mod incident_sources;
mod install_files;
mod layers;
mod lifecycle_props;
mod package;
mod routine_use;
mod signed_approvals;
mod ssh_forwarding;
mod store_postgres;
mod store_sqlite;
mod sweeper;
mod team;
mod tui_app;
mod tui_e2e;
mod tui_snapshots;
mod vendor;
