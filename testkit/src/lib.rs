//! Test kit of openwork: real opencode turns without a real model.
//!
//! - [`StandIn`]: a small OpenAI-compatible chat-completions server that answers from a
//!   [`Script`] (e.g. "call `write` with these arguments", then "say done"), records every
//!   request (headers included, so a test sees the API key that arrived), and has knobs for slow
//!   or held turns. The `standin-model` binary serves the same thing from its own process or
//!   container.
//! - [`OpencodeConfig`]: the opencode config (`OPENCODE_CONFIG_CONTENT` or `opencode.json`)
//!   that points opencode's bundled `@ai-sdk/openai-compatible` provider at a stand-in.
//! - [`opencode`] (feature `opencode`, on by default): starts the real `opencode serve` with an
//!   isolated home and the offline switches, and drives sessions through its HTTP API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use openwork_testkit::{Options, StandIn};
//! use openwork_testkit::opencode::{IsolatedDirs, Opencode};
//!
//! let standin = StandIn::start(Options::default()).await?;
//! let dirs = IsolatedDirs::new()?;
//! let opencode = Opencode::builder(dirs.workspace(), dirs.home())
//!     .config(&standin.opencode_config("sk-test"))
//!     .spawn()
//!     .await?;
//! let client = opencode.client();
//! let session = client.create_session("demo").await?;
//! let reply = client.prompt(&session, "write the file").await?;
//! assert_eq!(reply.text(), "done");
//! # Ok(()) }
//! ```
//!
//! The contract (endpoints, script format, knobs) is in `testkit/README.md`.

pub mod chunks;
mod config;
mod error;
#[cfg(feature = "opencode")]
pub mod opencode;
mod record;
pub mod script;
mod server;

pub use config::{OpencodeConfig, PROVIDER_ID};
pub use error::StandInError;
pub use record::RecordedRequest;
pub use script::{Script, Step, ToolCall};
pub use server::{CHAT_PATH, DEFAULT_MODEL, Knobs, MODELS_PATH, Options, StandIn};
