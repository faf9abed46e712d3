//! The openwork orchestrator as a library: the binary (`src/main.rs`) is a thin multi-call
//! front end over these modules, and the end-to-end tests use them directly.
//!
//! The flow of a run: [`cli`] parses into a [`plan::RunPlan`] → [`sidecars`] resolves the
//! binaries → [`services`] builds each service's spec → the [`supervisor`] runs them → [`output`]
//! prints pairing details, and [`check`] verifies a run end to end.

pub mod check;
pub mod cli;
pub mod client;
pub mod doctor;
pub mod egress;
pub mod git_shim;
pub mod init;
pub mod isolation;
pub mod logs;
pub mod output;
pub mod plan;
pub mod policy;
pub mod ports;
pub mod run;
pub mod runs;
pub mod sandbox;
pub mod secrets;
pub mod services;
pub mod sidecars;
pub mod supervisor;
pub mod tui;
pub mod watchdog;
