//! [`StandIn`]: a running stand-in model, for tests in the same process. Dropping it stops the
//! server: open streams end and held replies give up, so a failing test leaves nothing behind.
//! (Started with [`StandIn::start`], the listener closes on the runtime shortly after the drop;
//! started with [`StandIn::start_in_thread`], the drop returns once it is closed.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::{Knobs, Options, Shared, router};
use crate::config::OpencodeConfig;
use crate::error::StandInError;
use crate::record::{RecordedRequest, lock};
use crate::script::Script;

/// A running stand-in model.
///
/// ```no_run
/// # async fn demo() -> Result<(), openwork_testkit::StandInError> {
/// use openwork_testkit::{Options, StandIn};
/// let standin = StandIn::start(Options::default()).await?;
/// let config = standin.opencode_config("sk-test"); // for opencode's OPENCODE_CONFIG_CONTENT
/// // ... run opencode with `config.to_content()` ...
/// assert!(standin.chat_requests().iter().all(|r| r.authorization() == Some("Bearer sk-test")));
/// # Ok(()) }
/// ```
pub struct StandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The server task; taken by [`StandIn::start_in_thread`] to wait for it on drop.
    serve: Option<tokio::task::JoinHandle<()>>,
    /// Set when started with [`StandIn::start_in_thread`]: the runtime's thread and the signal
    /// that ends it.
    thread: Option<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
}

impl StandIn {
    /// Binds `options.listen` and serves on the current tokio runtime.
    pub async fn start(options: Options) -> Result<StandIn, StandInError> {
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| StandInError::Bind {
                    addr: options.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StandInError::Bind {
            addr: options.listen,
            source,
        })?;
        let shared = Arc::new(Shared::new(&options));
        let app = router(shared.clone());
        let mut closing = shared.closing.subscribe();
        let serve = tokio::spawn(async move {
            let stopped = async move {
                let _ = closing.wait_for(|c| *c).await;
            };
            // Errors here are per-connection accept failures; axum retries them itself.
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await;
        });
        Ok(StandIn {
            addr,
            shared,
            serve: Some(serve),
            thread: None,
        })
    }

    /// Starts on a runtime of its own in a background thread: for tests that are not async.
    pub fn start_in_thread(options: Options) -> Result<StandIn, StandInError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(StandInError::Runtime)?;
        let mut standin = runtime.block_on(StandIn::start(options))?;
        let serve = standin.serve.take();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("standin-model".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let _ = stopped.await;
                    // Streams end and held replies give up on `closing`, so the graceful
                    // shutdown is quick; the bound only guards against a stalled client.
                    if let Some(serve) = serve {
                        let _ = tokio::time::timeout(SHUTDOWN_LIMIT, serve).await;
                    }
                });
                runtime.shutdown_background();
            })
            .map_err(StandInError::Runtime)?;
        standin.thread = Some((stop, thread));
        Ok(standin)
    }

    /// The bound address (the real port when `listen` had port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`: where `/__standin/…` lives.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://ADDR/v1`: the `baseURL` of an OpenAI-compatible provider.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// An opencode config whose `standin` provider points here, with this API key.
    pub fn opencode_config(&self, api_key: &str) -> OpencodeConfig {
        OpencodeConfig::new(self.base_url(), api_key).with_model(&self.shared.model)
    }

    /// Every request so far (except `/__standin/…`), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.snapshot()
    }

    /// The chat-completions requests so far.
    pub fn chat_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(RecordedRequest::is_chat)
            .collect()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.shared.log.clear();
    }

    /// Replaces the script (requests already being answered keep their reply).
    pub fn set_script(&self, script: Script) {
        *lock(&self.shared.script) = script;
    }

    /// The current knobs.
    pub fn knobs(&self) -> Knobs {
        *self.shared.knobs.borrow()
    }

    /// Sets the pause before each chunk after the first.
    pub fn set_chunk_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.knobs.send_modify(|k| k.chunk_delay_ms = ms);
    }

    /// Holds every reply after its first chunk until [`StandIn::release`].
    pub fn hold(&self) {
        self.shared.knobs.send_modify(|k| k.hold = true);
    }

    /// Lets held replies continue (and new ones pass).
    pub fn release(&self) {
        self.shared.knobs.send_modify(|k| k.hold = false);
    }

    /// How many replies are held right now.
    pub fn held(&self) -> usize {
        *self.shared.held.borrow()
    }

    /// Waits until at least `n` replies are held: the turn is certainly in progress. Returns at
    /// once if they already are. Bound it with a timeout in tests.
    pub async fn wait_held(&self, n: usize) {
        let mut held = self.shared.held.subscribe();
        let _ = held.wait_for(|h| *h >= n).await;
    }
}

/// How long dropping a [`StandIn::start_in_thread`] stand-in waits for its connections.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);

impl Drop for StandIn {
    fn drop(&mut self) {
        self.shared.closing.send_replace(true);
        if let Some((stop, thread)) = self.thread.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}
