//! What a commit announces: `StoreEvent`s for every listener, and a lane of
//! their own for cancels (`Announcer`). Events only wake a listener up; it
//! re-reads the database.

use tokio::sync::broadcast;
use uuid::Uuid;
use watcher_core::{ActionPlanState, ActionState, AuditState};

/// A committed change, published after the commit. Carries just enough for
/// a listener to decide whether to re-read the database.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreEvent {
    PlanState {
        uuid: Uuid,
        state: ActionPlanState,
    },
    ActionState {
        plan: Uuid,
        uuid: Uuid,
        state: ActionState,
    },
    /// Many actions of one plan moved to `state` at once (a cancel, a delete).
    ActionsMoved {
        plan: Uuid,
        state: ActionState,
        count: usize,
    },
    AuditState {
        uuid: Uuid,
        state: AuditState,
    },
}

/// The PostgreSQL channel a commit that changed a state notifies; every
/// process listens on it and re-reads the history.
pub(crate) const HISTORY_CHANNEL: &str = "watcher_history";
/// PostgreSQL: the uuid of each plan that became CANCELLING, sent with the
/// commit, so that other processes hear of a cancel at once even while
/// their history tail is thousands of rows behind under load.
pub(crate) const CANCEL_CHANNEL: &str = "watcher_cancel";

/// Where committed changes are announced: every change on one channel, and
/// each plan's CANCELLING again on a lane of its own. Under heavy load the
/// first overflows (every action's change is an event) and a receiver
/// must re-read the database; a cancel must not wait for that.
#[derive(Clone)]
pub(crate) struct Announcer {
    pub(crate) all: broadcast::Sender<StoreEvent>,
    pub(crate) cancels: broadcast::Sender<Uuid>,
}

impl Announcer {
    pub(crate) fn new() -> Announcer {
        Announcer {
            all: broadcast::channel(4096).0,
            cancels: broadcast::channel(1024).0,
        }
    }

    pub(crate) fn announce(&self, ev: StoreEvent) {
        if let StoreEvent::PlanState {
            uuid,
            state: ActionPlanState::Cancelling,
        } = ev
        {
            let _ = self.cancels.send(uuid);
        }
        let _ = self.all.send(ev);
    }
}
