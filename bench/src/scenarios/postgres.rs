//! Scenario 6: ingest and end-to-end again on PostgreSQL, each on a fresh database, as the
//! Kubernetes data plane runs them: one `hookplane receiver` and two `hookplane worker`
//! processes, configured by the operator's rendered configuration file.

use anyhow::Result;
use serde_json::{Value, json};

use super::{Database, Run, deploy::Topology};

const TOPOLOGY: Topology = Topology::DataPlane { workers: 2 };

impl Run {
    pub async fn postgres(&mut self) -> Result<Vec<Value>> {
        let Some(admin_url) = self.settings.postgres_url.clone() else {
            return Ok(vec![json!({
                "scenario": "postgres",
                "skipped": "no PostgreSQL server: pass --postgres-url or set HOOKPLANE_BENCH_POSTGRES_URL",
            })]);
        };
        let mut lines = Vec::new();
        for which in ["ingest", "e2e"] {
            let database = Database::postgres(&admin_url).await?;
            let line = if which == "ingest" {
                self.ingest_on(&database, TOPOLOGY).await
            } else {
                self.e2e_on(&database, TOPOLOGY).await
            };
            database.remove().await;
            lines.push(line?);
        }
        Ok(lines)
    }
}
