//! The embedded simulated cloud's saved state: rows the cloud alone reads,
//! kept here so that a restarted watcherd finds the cloud it left.

use crate::sql::args;
use crate::*;

/// One saved piece of the simulated cloud (`kind` and `id` name it, `body`
/// is the cloud's JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct SimCloudRow {
    pub kind: String,
    pub id: String,
    pub body: String,
}

impl Store {
    /// Every saved row of the simulated cloud.
    pub async fn sim_cloud_rows(&self) -> Result<Vec<SimCloudRow>, StoreError> {
        self.read(|conn| {
            conn.query_map(
                "SELECT kind, id, body FROM sim_cloud_rows ORDER BY kind, id",
                (),
                |row| {
                    Ok(SimCloudRow {
                        kind: row.get("kind")?,
                        id: row.get("id")?,
                        body: row.get("body")?,
                    })
                },
            )
        })
        .await
    }

    /// Inserts or replaces rows in one transaction; a stored row written by
    /// a later save (a higher `save_no`) is kept, so saves committing out of
    /// order never bring an older state back.
    pub async fn save_sim_cloud_rows(
        &self,
        save_no: u64,
        rows: Vec<SimCloudRow>,
    ) -> Result<(), StoreError> {
        let save_no = i64::try_from(save_no).unwrap_or(i64::MAX);
        self.write(move |conn, _| {
            for r in &rows {
                conn.execute(
                    if conn.dialect() == Dialect::Mysql {
                        // No WHERE on the update: each column keeps its
                        // value unless the save is later (body first, as
                        // it compares with the save_no before the update).
                        "INSERT INTO sim_cloud_rows (kind, id, save_no, body) VALUES (?1, ?2, ?3, ?4) \
                         ON DUPLICATE KEY UPDATE body = IF(VALUES(save_no) > save_no, VALUES(body), body), \
                         save_no = GREATEST(save_no, VALUES(save_no))"
                    } else {
                        "INSERT INTO sim_cloud_rows (kind, id, save_no, body) VALUES (?1, ?2, ?3, ?4) \
                         ON CONFLICT(kind, id) DO UPDATE SET save_no = excluded.save_no, body = excluded.body \
                         WHERE excluded.save_no > sim_cloud_rows.save_no"
                    },
                    args![r.kind, r.id, save_no, r.body],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// Forgets the simulated cloud's state: it starts again from its scenario.
    /// The number of rows removed.
    pub async fn clear_sim_cloud(&self) -> Result<usize, StoreError> {
        self.write(|conn, _| conn.execute("DELETE FROM sim_cloud_rows", ()))
            .await
    }
}
