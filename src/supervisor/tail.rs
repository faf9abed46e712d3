//! Reading a service's output back from its log file, for services that write to a file
//! instead of a pipe (a dashboard run, so that detaching can leave them running).
//!
//! The file is read from the offset it had when the instance started (earlier instances'
//! lines are not replayed), line by line into [`ServiceEvent::Log`], until the instance's
//! process group is gone and the file holds nothing more. A line without its newline yet waits
//! for the rest.
//!
//! Threat addressed: losing the last lines of a crashing service (the ones that say why). The
//! group's liveness is checked *before* each read, so a read that follows a dead check sees
//! everything the group ever wrote. Left open: no back-pressure (a file does not slow its
//! writer), and the file grows for as long as the run lasts.

use std::io::SeekFrom;
use std::sync::Arc;
use std::time::Duration;

use camino::Utf8PathBuf;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::Notify;

use super::events::{EventBus, ServiceEvent};
use super::process;
use crate::logs::Stream;

/// How long to wait at the end of the file before looking again.
const POLL: Duration = Duration::from_millis(40);

/// One file to follow.
pub(crate) struct Follow {
    pub(crate) path: Utf8PathBuf,
    pub(crate) offset: u64,
    pub(crate) service: &'static str,
    /// The instance's process group: following ends when it is gone.
    pub(crate) pgid: u32,
    /// Notified on opencode's ready line.
    pub(crate) ready: Option<Arc<Notify>>,
}

/// Follows `f.path` until the group is gone, publishing each line.
pub(crate) async fn follow(f: Follow, bus: EventBus) {
    let Ok(mut file) = tokio::fs::File::open(f.path.as_std_path()).await else {
        return;
    };
    if file.seek(SeekFrom::Start(f.offset)).await.is_err() {
        return;
    }
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let alive = process::group_alive(f.pgid);
        let n = match file.read(&mut chunk).await {
            Ok(n) => n,
            Err(_) => break,
        };
        if n == 0 {
            if !alive {
                break;
            }
            tokio::time::sleep(POLL).await;
            continue;
        }
        pending.extend_from_slice(&chunk[..n]);
        while let Some(i) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            publish(&f, &bus, &line[..line.len() - 1]);
        }
    }
    if !pending.is_empty() {
        publish(&f, &bus, &pending);
    }
}

fn publish(f: &Follow, bus: &EventBus, bytes: &[u8]) {
    let line = String::from_utf8_lossy(bytes).into_owned();
    if let Some(r) = &f.ready
        && line.starts_with(super::OPENCODE_READY_PREFIX)
    {
        r.notify_one();
    }
    bus.emit(ServiceEvent::Log {
        service: f.service,
        // One file holds both pipes.
        stream: Stream::Stdout,
        pid: Some(f.pgid),
        line,
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::supervisor::Observer;
    use crate::supervisor::process::{OutputMode, ProcessSpec, spawn};

    struct Lines(Mutex<Vec<String>>);
    impl Observer for Lines {
        fn observe(&self, event: &ServiceEvent) {
            if let ServiceEvent::Log { line, .. } = event {
                self.0.lock().unwrap().push(line.clone());
            }
        }
    }

    #[tokio::test]
    async fn every_line_of_an_instance_arrives_including_the_last_unterminated_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::from_path_buf(dir.path().join("svc.log")).unwrap();
        std::fs::write(&path, "an earlier instance\n").unwrap();
        let offset = std::fs::metadata(&path).unwrap().len();
        let spec = ProcessSpec {
            program: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                "i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done; printf last".into(),
            ],
            env: vec![],
            env_remove: vec![],
            cwd: "/".into(),
        };
        let mut child = spawn(
            &spec,
            &OutputMode::Detached {
                log_file: path.clone(),
            },
        )
        .unwrap();
        let pgid = child.id().unwrap();
        let lines = Arc::new(Lines(Mutex::new(Vec::new())));
        let bus = EventBus::new(vec![lines.clone()]);
        let task = tokio::spawn(follow(
            Follow {
                path,
                offset,
                service: "svc",
                pgid,
                ready: None,
            },
            bus,
        ));
        child.wait().await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
        let got = lines.0.lock().unwrap();
        assert_eq!(got.len(), 2001);
        assert_eq!(got[0], "line 0");
        assert_eq!(got[1999], "line 1999");
        assert_eq!(got[2000], "last");
    }
}
