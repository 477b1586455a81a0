//! The executors' cancel paths and their coverage of the catalogue.

use super::*;
use std::sync::atomic::{AtomicBool, Ordering};
use watcher_cloud::scenario::Scenario;
use watcher_cloud::simulated::SimulatedCloud;
use watcher_store::{DatabaseLocation, Durability};

/// A context on a database file: its reads do not go through the
/// writer (an in-memory database's do), so they answer while writes are held.
fn context() -> (ActionContext, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("watcher-applier-test-{}", Uuid::new_v4()));
    let location = DatabaseLocation::File(dir.join("watcher.db"));
    let ctx = ActionContext {
        plan: Uuid::new_v4(),
        action: Uuid::new_v4(),
        params: json!({}),
        cloud: Arc::new(SimulatedCloud::new(&Scenario::demo())),
        store: Store::open(&location, Durability::Normal).expect("store"),
        settings: ActionSettings::default(),
    };
    (ctx, dir)
}

/// Under load a write waits behind this process's queue for a second or
/// more; the abort must not wait for the operation id's write.
#[tokio::test]
async fn a_cancel_gets_the_operation_without_waiting_for_its_journal_write() {
    let (ctx, dir) = context();
    let cancel = CancellationToken::new();
    let held = std::sync::Mutex::new(None);
    let started = ctx.journaled(json!({"operation": "test"}), &cancel, || async {
        // The operation started; this process's writes are stuck and
        // the cancel comes now.
        *held.lock().unwrap() = Some(ctx.store.hold_writes());
        cancel.cancel();
        Ok("op-1".to_string())
    });
    let op = tokio::time::timeout(Duration::from_secs(30), started)
        .await
        .expect("the cancel waited for the journal write")
        .expect("started");
    assert_eq!(op, "op-1");
    assert_eq!(
        ctx.store
            .journal(ctx.action)
            .await
            .unwrap()
            .unwrap()
            .operation_id,
        None
    );
    // The write was not dropped: it lands once the writer moves again.
    drop(held.lock().unwrap().take());
    loop {
        let entry = ctx.store.journal(ctx.action).await.unwrap().unwrap();
        if entry.operation_id.as_deref() == Some("op-1") {
            break;
        }
        tokio::task::yield_now().await;
    }
    drop(ctx);
    let _ = std::fs::remove_dir_all(dir);
}

/// A cancel while the intent is still being written: the cloud is
/// never asked, and the action can end CANCELLED with nothing to undo.
#[tokio::test]
async fn a_cancel_before_the_intent_is_written_starts_nothing() {
    let (ctx, dir) = context();
    let cancel = CancellationToken::new();
    let held = ctx.store.hold_writes();
    let asked = AtomicBool::new(false);
    let started = ctx.journaled(json!({"operation": "test"}), &cancel, || async {
        asked.store(true, Ordering::SeqCst);
        Ok("op-1".to_string())
    });
    cancel.cancel();
    let e = tokio::time::timeout(Duration::from_secs(30), started)
        .await
        .expect("the cancel waited for the intent's write")
        .expect_err("must not start");
    assert!(matches!(e, ActionError::CancelledBeforeStart), "{e}");
    assert!(!asked.load(Ordering::SeqCst));
    assert!(matches!(not_started("migration", e), Outcome::Cancelled(_)));
    drop((held, ctx));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn there_is_an_executor_for_every_catalogued_action_type_and_no_other() {
    let r = ActionRegistry::default();
    let mut executors: Vec<_> = r.plugins.keys().copied().collect();
    executors.sort_unstable();
    assert_eq!(executors, watcher_core::actions::known_types());
}
