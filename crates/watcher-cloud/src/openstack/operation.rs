//! Operation ids (`<kind>/<resource>/<id>`) and the state of an operation
//! read from what Nova and Cinder show: the classification of a live
//! migration, a resize, a volume move, and of Nova's answers to an abort.

use super::*;

/// The parts of an operation id.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Op {
    Live { server: String, migration: i64 },
    Cold { server: String, migration: i64 },
    Resize { server: String, migration: i64 },
    Volume { volume: String, pool: String },
    Retype { volume: String, new_type: String },
}

impl Op {
    pub(super) fn parse(op: &str) -> Result<Op, CloudError> {
        let bad = || CloudError::NotFound {
            kind: "operation",
            id: op.to_string(),
        };
        let mut parts = op.splitn(3, '/');
        let (kind, resource, rest) = (
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?.to_string(),
            parts.next().ok_or_else(bad)?,
        );
        let mid = || rest.parse::<i64>().map_err(|_| bad());
        Ok(match kind {
            "live-migration" => Op::Live {
                server: resource,
                migration: mid()?,
            },
            "migration" => Op::Cold {
                server: resource,
                migration: mid()?,
            },
            "resize" => Op::Resize {
                server: resource,
                migration: mid()?,
            },
            "volume-migration" => Op::Volume {
                volume: resource,
                pool: rest.to_string(),
            },
            "volume-retype" => Op::Retype {
                volume: resource,
                new_type: rest.to_string(),
            },
            _ => return Err(bad()),
        })
    }
}

/// Where a live migration is, from Nova's migration record, the server, and
/// (while running) the progress figures. A migration is settled only once
/// the server has no task left.
pub(super) fn live_state(m: &Value, server: &Value, progress: Option<Value>) -> OperationState {
    let status = m["status"].as_str().unwrap_or_default();
    let host = server["OS-EXT-SRV-ATTR:host"].as_str().unwrap_or_default();
    let busy = !server["OS-EXT-STS:task_state"].is_null();
    let source = m["source_compute"].as_str().unwrap_or_default();
    let dest = m["dest_compute"].as_str().unwrap_or_default();
    if server["status"] == "ERROR" && !busy {
        return OperationState::Failed(server_fault(server, host));
    }
    match status {
        "completed" if !busy && host == dest => OperationState::Completed,
        "completed" if !busy => OperationState::Failed(format!(
            "Nova reports the live migration completed, but the instance is on {host}, not {dest}"
        )),
        "completed" => OperationState::Running {
            progress: 1.0,
            detail: format!("finishing on {dest}"),
        },
        "cancelled" if !busy && host == source => OperationState::Aborted,
        "cancelled" if !busy => OperationState::Failed(format!(
            "the live migration was cancelled but the instance is on {host}, not back on {source}"
        )),
        "cancelled" | "cancelling" => OperationState::Aborting,
        "error" | "failed" if !busy => OperationState::Failed(format!(
            "Nova reports the live migration {status}; the instance is {} on {host}{}",
            server["status"].as_str().unwrap_or("?"),
            server["fault"]["message"]
                .as_str()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default()
        )),
        "running" => {
            let p = progress.unwrap_or(Value::Null);
            let num = |k: &str| p[k].as_f64();
            match (num("memory_processed_bytes"), num("memory_total_bytes")) {
                (Some(done), Some(total)) if total > 0.0 => {
                    let disk = match (num("disk_processed_bytes"), num("disk_total_bytes")) {
                        (Some(d), Some(t)) if t > 0.0 => format!(", disk {:.0}%", 100.0 * d / t),
                        _ => String::new(),
                    };
                    OperationState::Running {
                        progress: (done / total).clamp(0.0, 1.0),
                        detail: format!(
                            "memory {:.0} of {:.0} MiB copied{disk}",
                            done / 1048576.0,
                            total / 1048576.0
                        ),
                    }
                }
                _ => OperationState::Running {
                    progress: 0.0,
                    detail: format!(
                        "running {source} -> {dest} (the hypervisor reports no progress figures)"
                    ),
                },
            }
        }
        other => OperationState::Running {
            progress: 0.0,
            detail: format!("{other} {source} -> {dest}"),
        },
    }
}

pub(super) fn server_fault(server: &Value, host: &str) -> String {
    format!(
        "the instance is in ERROR on {host}{}",
        server["fault"]["message"]
            .as_str()
            .map(|f| format!(": {f}"))
            .unwrap_or_default()
    )
}

/// Where a cold migration or resize is: Nova's `finished` waits for a
/// confirm or a revert (the server is VERIFY_RESIZE).
pub(super) fn resize_state(m: &Value, server: &Value) -> OperationState {
    let status = m["status"].as_str().unwrap_or_default();
    let busy = !server["OS-EXT-STS:task_state"].is_null();
    let host = server["OS-EXT-SRV-ATTR:host"].as_str().unwrap_or_default();
    if server["status"] == "ERROR" && !busy {
        return OperationState::Failed(server_fault(server, host));
    }
    match status {
        "finished" if server["status"] == "VERIFY_RESIZE" => OperationState::AwaitingConfirmation,
        "confirmed" if !busy => OperationState::Completed,
        "reverted" if !busy => OperationState::Aborted,
        "reverting" | "reverted" => OperationState::Aborting,
        "error" | "failed" if !busy => OperationState::Failed(format!(
            "Nova reports the migration {status}; the instance is {} on {host}",
            server["status"].as_str().unwrap_or("?")
        )),
        other => OperationState::Running {
            progress: 0.0,
            detail: other.to_string(),
        },
    }
}

pub(super) fn volume_state(v: &Value, pool: &str) -> OperationState {
    let host = v["os-vol-host-attr:host"].as_str().unwrap_or_default();
    match v["migration_status"].as_str() {
        Some("error") => {
            OperationState::Failed(format!("Cinder reports the migration to {pool} failed"))
        }
        Some("success") | None if host == pool => OperationState::Completed,
        Some("success") | None => OperationState::Failed(format!(
            "the volume migration ended with the volume on {host}, not {pool}"
        )),
        Some(other) => OperationState::Running {
            progress: 0.0,
            detail: format!("{other} to {pool}"),
        },
    }
}

/// Where a retype is: done once the volume has the new type and is no
/// longer retyping (nor migrating for it).
pub(super) fn retype_state(v: &Value, new_type: &str) -> OperationState {
    let status = v["status"].as_str().unwrap_or_default();
    let migration = v["migration_status"].as_str();
    let host = v["os-vol-host-attr:host"].as_str().unwrap_or_default();
    match (status, migration) {
        (_, Some("error")) | ("error", _) => OperationState::Failed(format!(
            "Cinder reports the retype to {new_type} failed (the volume is on {host})"
        )),
        ("retyping", _) | (_, Some("starting" | "migrating" | "completing")) => {
            OperationState::Running {
                progress: 0.0,
                detail: format!(
                    "retyping to {new_type} (migration {})",
                    migration.unwrap_or("none")
                ),
            }
        }
        _ if v["volume_type"] == new_type => OperationState::Completed,
        _ => OperationState::Failed(format!(
            "the retype ended with the volume of type {}, not {new_type}",
            v["volume_type"].as_str().unwrap_or("none")
        )),
    }
}

/// Before asking Nova: states in which an abort cannot work.
pub(super) fn abort_precheck(status: &str, max: Microversion) -> Option<CloudError> {
    match status {
        "completed" | "cancelled" | "error" | "failed" => Some(CloudError::AlreadyFinished(
            format!("live migration ({status})"),
        )),
        "post-migrating" => Some(CloudError::PastPointOfNoReturn(
            "the live migration is past its point of no return (post-migrating)".into(),
        )),
        "accepted" | "queued" | "preparing" if max < Microversion(2, 65) => {
            Some(CloudError::Conflict(format!(
                "the live migration is {status}, and this cloud's compute API ({max}) can abort \
                 only running ones (queued ones need 2.65)"
            )))
        }
        _ => None,
    }
}

/// Nova refused the abort (400, 404 or 409): read with the migration's
/// state after the refusal, it either lost the race to the migration's end
/// or is a real refusal.
pub(super) fn abort_refusal(code: u16, message: &str, now: &Value) -> CloudError {
    match now["status"].as_str().unwrap_or_default() {
        s @ ("completed" | "cancelled" | "error" | "failed") => {
            CloudError::AlreadyFinished(format!("live migration ({s})"))
        }
        "post-migrating" => CloudError::PastPointOfNoReturn(
            "the live migration is past its point of no return (post-migrating)".into(),
        ),
        s => CloudError::Conflict(format!(
            "Nova answered {code} while the migration was {s}: {message}"
        )),
    }
}
