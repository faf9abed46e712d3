//! 32 clients doing read-modify-write with `ifMatchRevision` on shared and private files:
//! every successful write is counted in the file, so a lost update would show as a counter
//! lower than the number of successes; no file is ever truncated or torn.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::CLIENT;
use common::files::{read, session, unb64, workspace, write};
use openwork_server::ApprovalMode;

const CLIENTS: usize = 32;
const INCREMENTS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_update_is_lost_and_no_file_is_torn() {
    let w = std::sync::Arc::new(workspace(ApprovalMode::Auto).await);
    let sid = session(&w, CLIENT).await;
    // A shared counter padded to a fixed width, so same-size rewrites are the common case.
    write(&w, &sid, "shared.txt", format!("{:08}", 0).as_bytes(), None).await;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (w, sid) = (w.clone(), sid.clone());
        tasks.push(tokio::spawn(async move {
            let mine = format!("own-{c}.txt");
            let mut wins = 0;
            let mut conflicts = 0;
            while wins < INCREMENTS {
                let (_, body) = read(&w, &sid, &["shared.txt"]).await;
                let item = &body["items"][0];
                let text = String::from_utf8(unb64(&item["contentBase64"])).unwrap();
                assert_eq!(text.len(), 8, "torn or truncated read: {text:?}");
                let n: usize = text.parse().unwrap();
                let rev = item["revision"].as_str().unwrap().to_owned();
                let (_, body) = write(
                    &w,
                    &sid,
                    "shared.txt",
                    format!("{:08}", n + 1).as_bytes(),
                    Some(&rev),
                )
                .await;
                let item = &body["items"][0];
                if item["ok"] == true {
                    wins += 1;
                } else {
                    assert_eq!(item["code"], "conflict", "{item}");
                    conflicts += 1;
                }
                let (_, body) =
                    write(&w, &sid, &mine, format!("{c}:{wins}").as_bytes(), None).await;
                assert_eq!(body["items"][0]["ok"], true);
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let final_text = std::fs::read_to_string(w.root().join("shared.txt")).unwrap();
    assert_eq!(
        final_text,
        format!("{:08}", CLIENTS * INCREMENTS),
        "conflicts seen: {conflicts}"
    );
    for c in 0..CLIENTS {
        let own = std::fs::read_to_string(w.root().join(format!("own-{c}.txt"))).unwrap();
        assert_eq!(own, format!("{c}:{INCREMENTS}"));
    }
    let leftovers = std::fs::read_dir(w.root())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("openwork-tmp")
        })
        .count();
    assert_eq!(leftovers, 0);
}
