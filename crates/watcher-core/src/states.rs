//! States of action plans, actions and audits, and the tables of allowed
//! transitions between them.
//!
//! The tables are data: the API, the applier, the decision engine and the
//! recovery code all ask [`plan_transition_allowed`] and friends, and a test
//! checks that `docs/state-machines.md` lists exactly these rows.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Who asks for a state change. Recorded in every history row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The REST API, on behalf of an operator.
    Api,
    /// The applier, while executing a plan.
    Applier,
    /// The decision engine (audits, planners, expiry).
    DecisionEngine,
    /// The applier's start-up reconciliation after a crash or shutdown.
    Recovery,
    /// Upstream Watcher, whose objects `watcherd db upgrade` took over in
    /// the state it left them.
    Upstream,
}

impl Actor {
    pub const ALL: [Actor; 5] = [
        Actor::Api,
        Actor::Applier,
        Actor::DecisionEngine,
        Actor::Recovery,
        Actor::Upstream,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Api => "api",
            Actor::Applier => "applier",
            Actor::DecisionEngine => "decision_engine",
            Actor::Recovery => "recovery",
            Actor::Upstream => "upstream",
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Actor {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Actor::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// A string that names no state of the entity it was parsed for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state '{0}'")]
pub struct UnknownState(pub String);

macro_rules! state_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownState(other.to_string())),
                }
            }
        }
    };
}

state_enum!(
    /// States of an action plan: upstream's names, and PAUSED, watcherd's
    /// own (a running plan an operator paused: nothing new starts).
    ActionPlanState {
        Recommended => "RECOMMENDED",
        Pending => "PENDING",
        Ongoing => "ONGOING",
        Paused => "PAUSED",
        Cancelling => "CANCELLING",
        Cancelled => "CANCELLED",
        Succeeded => "SUCCEEDED",
        Failed => "FAILED",
        Superseded => "SUPERSEDED",
        Deleted => "DELETED",
    }
);

state_enum!(
    /// States of an action, exactly upstream's names.
    ActionState {
        Pending => "PENDING",
        Ongoing => "ONGOING",
        Cancelling => "CANCELLING",
        Cancelled => "CANCELLED",
        Succeeded => "SUCCEEDED",
        Failed => "FAILED",
        Skipped => "SKIPPED",
        Deleted => "DELETED",
    }
);

state_enum!(
    /// States of an audit, exactly upstream's names.
    AuditState {
        Pending => "PENDING",
        Ongoing => "ONGOING",
        Succeeded => "SUCCEEDED",
        Failed => "FAILED",
        Cancelled => "CANCELLED",
        Suspended => "SUSPENDED",
        Deleted => "DELETED",
    }
);

state_enum!(
    /// Kinds of audit.
    AuditType {
        Oneshot => "ONESHOT",
        Continuous => "CONTINUOUS",
        Event => "EVENT",
    }
);

impl ActionPlanState {
    /// A plan in one of these states will never change again except by deletion.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            ActionPlanState::Cancelled
                | ActionPlanState::Succeeded
                | ActionPlanState::Failed
                | ActionPlanState::Superseded
                | ActionPlanState::Deleted
        )
    }

    /// States an operator may delete a plan from (upstream bug 1738360).
    pub fn is_deletable(self) -> bool {
        plan_transition_allowed(self, ActionPlanState::Deleted, Actor::Api)
    }
}

impl ActionState {
    /// An action in one of these states has settled: it will not run again.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            ActionState::Cancelled
                | ActionState::Succeeded
                | ActionState::Failed
                | ActionState::Skipped
                | ActionState::Deleted
        )
    }
}

impl AuditState {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            AuditState::Succeeded
                | AuditState::Failed
                | AuditState::Cancelled
                | AuditState::Deleted
        )
    }
}

/// One allowed state change and who may make it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition<S: 'static> {
    pub from: S,
    pub to: S,
    pub by: &'static [Actor],
}

const fn t<S>(from: S, to: S, by: &'static [Actor]) -> Transition<S> {
    Transition { from, to, by }
}

use ActionPlanState as P;
use Actor::{Api, Applier, DecisionEngine, Recovery};

/// Every allowed action plan transition. The API's PATCH accepts exactly
/// upstream's four pairs (RECOMMENDED->PENDING, RECOMMENDED->CANCELLED,
/// PENDING->CANCELLED, ONGOING->CANCELLING) plus deletion.
pub const PLAN_TRANSITIONS: &[Transition<ActionPlanState>] = &[
    t(P::Recommended, P::Pending, &[Api]),
    t(P::Recommended, P::Cancelled, &[Api, DecisionEngine]),
    t(P::Recommended, P::Ongoing, &[Applier]),
    t(P::Recommended, P::Superseded, &[DecisionEngine]),
    t(P::Pending, P::Cancelled, &[Api]),
    t(P::Pending, P::Ongoing, &[Applier]),
    t(P::Ongoing, P::Cancelling, &[Api]),
    // Pause and resume (watcherd's own): a paused plan starts nothing; its
    // resume hands it to whichever applier claims it first.
    t(P::Ongoing, P::Paused, &[Api]),
    t(P::Paused, P::Pending, &[Api]),
    t(P::Paused, P::Ongoing, &[Api]),
    t(P::Paused, P::Cancelling, &[Api]),
    t(P::Paused, P::Cancelled, &[Api]),
    t(P::Paused, P::Succeeded, &[Applier]),
    t(P::Paused, P::Failed, &[Applier, Recovery]),
    t(P::Ongoing, P::Succeeded, &[Applier]),
    t(P::Ongoing, P::Failed, &[Applier, Recovery]),
    t(P::Cancelling, P::Cancelled, &[Applier, Recovery]),
    t(P::Cancelling, P::Failed, &[Applier, Recovery]),
    t(P::Cancelling, P::Succeeded, &[Applier]),
    t(P::Recommended, P::Deleted, &[Api]),
    t(P::Succeeded, P::Deleted, &[Api]),
    t(P::Failed, P::Deleted, &[Api]),
    t(P::Superseded, P::Deleted, &[Api]),
    t(P::Cancelled, P::Deleted, &[Api]),
];

use ActionState as A;

/// Every allowed action transition.
pub const ACTION_TRANSITIONS: &[Transition<ActionState>] = &[
    t(A::Pending, A::Ongoing, &[Applier]),
    t(A::Pending, A::Skipped, &[Api, Applier]),
    t(A::Pending, A::Failed, &[Applier]),
    t(
        A::Pending,
        A::Cancelled,
        &[Api, Applier, DecisionEngine, Recovery],
    ),
    t(A::Ongoing, A::Succeeded, &[Applier, Recovery]),
    t(A::Ongoing, A::Failed, &[Applier, Recovery]),
    t(A::Ongoing, A::Cancelling, &[Applier]),
    // Recovery: no effect in the cloud, it runs again; the applier: aborted
    // by a pause that asked for it, it runs again on resume.
    t(A::Ongoing, A::Pending, &[Applier, Recovery]),
    t(A::Ongoing, A::Cancelled, &[Recovery]),
    t(A::Cancelling, A::Cancelled, &[Applier, Recovery]),
    t(A::Cancelling, A::Succeeded, &[Applier, Recovery]),
    t(A::Cancelling, A::Failed, &[Applier, Recovery]),
    // rollback_on_cancel: a finished action's effect undone, or the undo failed.
    t(A::Succeeded, A::Cancelled, &[Applier]),
    t(A::Succeeded, A::Failed, &[Applier]),
    t(A::Pending, A::Deleted, &[Api]),
    t(A::Succeeded, A::Deleted, &[Api]),
    t(A::Failed, A::Deleted, &[Api]),
    t(A::Skipped, A::Deleted, &[Api]),
    t(A::Cancelled, A::Deleted, &[Api]),
];

use AuditState as U;

/// Every allowed audit transition (upstream's `AuditStateTransitionManager`
/// table, which the API uses, plus the engine's own moves).
pub const AUDIT_TRANSITIONS: &[Transition<AuditState>] = &[
    t(U::Pending, U::Ongoing, &[Api, DecisionEngine]),
    t(U::Pending, U::Cancelled, &[Api, DecisionEngine]),
    t(U::Ongoing, U::Failed, &[Api, DecisionEngine, Recovery]),
    t(U::Ongoing, U::Succeeded, &[Api, DecisionEngine]),
    t(U::Ongoing, U::Cancelled, &[Api, DecisionEngine]),
    t(U::Ongoing, U::Suspended, &[Api]),
    // An EVENT audit runs again each time its webhook fires.
    t(U::Succeeded, U::Ongoing, &[DecisionEngine]),
    t(U::Failed, U::Deleted, &[Api]),
    t(U::Succeeded, U::Deleted, &[Api]),
    t(U::Cancelled, U::Deleted, &[Api]),
    t(U::Suspended, U::Ongoing, &[Api]),
    t(U::Suspended, U::Deleted, &[Api]),
];

fn allowed<S: PartialEq + Copy>(table: &[Transition<S>], from: S, to: S, actor: Actor) -> bool {
    table
        .iter()
        .any(|t| t.from == from && t.to == to && t.by.contains(&actor))
}

pub fn plan_transition_allowed(from: ActionPlanState, to: ActionPlanState, actor: Actor) -> bool {
    allowed(PLAN_TRANSITIONS, from, to, actor)
}

pub fn action_transition_allowed(from: ActionState, to: ActionState, actor: Actor) -> bool {
    allowed(ACTION_TRANSITIONS, from, to, actor)
}

pub fn audit_transition_allowed(from: AuditState, to: AuditState, actor: Actor) -> bool {
    allowed(AUDIT_TRANSITIONS, from, to, actor)
}

/// A state machine's state, and its transition table.
pub trait MachineState: Copy + PartialEq + 'static {
    const TRANSITIONS: &'static [Transition<Self>];
}

impl MachineState for ActionPlanState {
    const TRANSITIONS: &'static [Transition<Self>] = PLAN_TRANSITIONS;
}

impl MachineState for ActionState {
    const TRANSITIONS: &'static [Transition<Self>] = ACTION_TRANSITIONS;
}

impl MachineState for AuditState {
    const TRANSITIONS: &'static [Transition<Self>] = AUDIT_TRANSITIONS;
}

/// One change of a record's state as a caller asks for it and as its
/// history row keeps it: from, to, who, and why. The store writes it only
/// when the transition table allows it (`is_allowed`), by compare-and-set
/// on `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange<S> {
    pub from: S,
    pub to: S,
    pub actor: Actor,
    pub reason: String,
}

impl<S: MachineState> StateChange<S> {
    pub fn new(from: S, to: S, actor: Actor, reason: impl Into<String>) -> StateChange<S> {
        StateChange {
            from,
            to,
            actor,
            reason: reason.into(),
        }
    }

    /// Whether the transition table lets `actor` make this change.
    pub fn is_allowed(&self) -> bool {
        allowed(S::TRANSITIONS, self.from, self.to, self.actor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_patch_accepts_exactly_upstreams_four_plan_transitions() {
        // PAUSED is watcherd's own: reached and left through its own
        // operations (the PATCH refuses it), listed apart below.
        let (mut upstream, mut ours) = (vec![], vec![]);
        for &from in ActionPlanState::ALL {
            for &to in ActionPlanState::ALL {
                if to != P::Deleted && plan_transition_allowed(from, to, Api) {
                    if from == P::Paused || to == P::Paused {
                        ours.push((from, to));
                    } else {
                        upstream.push((from, to));
                    }
                }
            }
        }
        assert_eq!(
            upstream,
            vec![
                (P::Recommended, P::Pending),
                (P::Recommended, P::Cancelled),
                (P::Pending, P::Cancelled),
                (P::Ongoing, P::Cancelling),
            ]
        );
        assert_eq!(
            ours,
            vec![
                (P::Ongoing, P::Paused),
                (P::Paused, P::Pending),
                (P::Paused, P::Ongoing),
                (P::Paused, P::Cancelling),
                (P::Paused, P::Cancelled),
            ]
        );
    }

    #[test]
    fn plans_can_be_deleted_only_when_not_running() {
        let deletable: Vec<_> = ActionPlanState::ALL
            .iter()
            .filter(|s| s.is_deletable())
            .collect();
        assert_eq!(
            deletable,
            vec![
                &P::Recommended,
                &P::Cancelled,
                &P::Succeeded,
                &P::Failed,
                &P::Superseded
            ]
        );
    }

    #[test]
    fn finished_states_have_no_way_out_but_deletion() {
        for tr in PLAN_TRANSITIONS {
            if tr.from.is_finished() && tr.from != P::Recommended {
                assert_eq!(tr.to, P::Deleted, "{:?}", tr);
            }
        }
        for tr in ACTION_TRANSITIONS {
            // The only exception: rollback_on_cancel undoing a SUCCEEDED action.
            let rollback = tr.from == A::Succeeded && matches!(tr.to, A::Cancelled | A::Failed);
            if tr.from.is_finished() && !rollback {
                assert_eq!(tr.to, A::Deleted, "{:?}", tr);
            }
        }
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for s in ActionPlanState::ALL {
            assert_eq!(s.as_str().parse::<ActionPlanState>().unwrap(), *s);
        }
        for s in ActionState::ALL {
            assert_eq!(s.as_str().parse::<ActionState>().unwrap(), *s);
        }
        assert!("cancelled".parse::<ActionPlanState>().is_err());
    }

    #[test]
    fn only_recovery_and_a_pause_that_aborts_send_an_action_back_to_pending() {
        assert!(action_transition_allowed(A::Ongoing, A::Pending, Recovery));
        // The applier, for a pause that asked to abort running actions.
        assert!(action_transition_allowed(A::Ongoing, A::Pending, Applier));
        // Never the API: an operator cannot make a running action PENDING.
        assert!(!action_transition_allowed(A::Ongoing, A::Pending, Api));
        assert!(!action_transition_allowed(
            A::Cancelling,
            A::Pending,
            Applier
        ));
    }
}
