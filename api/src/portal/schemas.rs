//! Source schemas: JSON Schema documents payloads are validated against.

use hookplane_dataplane::schemas::{self, SourceSchema};
use hookplane_store::Schema;
use serde_json::Value;
use uuid::Uuid;

use super::{Portal, PortalError, PortalResult};

impl Portal {
    /// Store a JSON Schema (draft 2020-12) for a source entity; replaces one of that name.
    pub async fn import_schema(
        &self,
        organization: Uuid,
        name: &str,
        document: Value,
    ) -> PortalResult<Schema> {
        check_schema_name(name)?;
        SourceSchema::compile(name, &document)
            .map_err(|error| PortalError::invalid("INVALID_SCHEMA", error))?;
        let schema = self.store.put_schema(organization, name, document).await?;
        self.runtime.reload().await?;
        Ok(schema)
    }

    /// Infer a JSON Schema from a sample payload and store it under `name`. Inference walks
    /// the sample recursively, so a sample nested deeper than [`MAX_SAMPLE_DEPTH`] is refused
    /// (`SAMPLE_TOO_DEEP`) rather than risk the server's stack.
    pub async fn infer_schema(
        &self,
        organization: Uuid,
        name: &str,
        sample: &Value,
    ) -> PortalResult<Schema> {
        check_schema_name(name)?;
        if hookplane_mapping::nesting(sample, MAX_SAMPLE_DEPTH + 1) > MAX_SAMPLE_DEPTH {
            return Err(PortalError::invalid(
                "SAMPLE_TOO_DEEP",
                format!("the sample nests deeper than {MAX_SAMPLE_DEPTH} levels"),
            ));
        }
        let document = schemas::infer(name, sample);
        let schema = self.store.put_schema(organization, name, document).await?;
        self.runtime.reload().await?;
        Ok(schema)
    }

    /// Delete a schema no touchpoint uses (as a draft or as published).
    pub async fn delete_schema(&self, organization: Uuid, name: &str) -> PortalResult<()> {
        let theirs: std::collections::HashSet<Uuid> = self
            .store
            .connections()
            .await?
            .into_iter()
            .filter(|c| c.organization_id == Some(organization))
            .map(|c| c.id)
            .collect();
        let users: Vec<String> = self
            .store
            .touchpoints(None)
            .await?
            .into_iter()
            .filter(|t| theirs.contains(&t.connection_id))
            .filter(|t| {
                t.spec.source.schema.as_deref() == Some(name)
                    || t.published
                        .as_ref()
                        .and_then(|p| p.spec.source.schema.as_deref())
                        == Some(name)
            })
            .map(|t| t.spec.name)
            .collect();
        if !users.is_empty() {
            return Err(PortalError::invalid(
                "SCHEMA_IN_USE",
                format!("touchpoints use this schema: {}", users.join(", ")),
            ));
        }
        if !self.store.delete_schema(organization, name).await? {
            return Err(PortalError::invalid(
                "SCHEMA_NOT_FOUND",
                format!("no schema {name:?}"),
            ));
        }
        Ok(())
    }
}

/// Deepest sample `inferSchema` accepts: far beyond any real payload, far below what recursion
/// on a server thread's stack can take.
pub const MAX_SAMPLE_DEPTH: usize = 64;

fn check_schema_name(name: &str) -> PortalResult<()> {
    let valid = (1..=100).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(PortalError::invalid(
            "INVALID_SCHEMA",
            "a schema name is 1-100 characters of letters, digits, '_', '-' and '.'",
        ))
    }
}
