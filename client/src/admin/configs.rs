//! DescribeConfigs and IncrementalAlterConfigs.

use spate_protocol::ErrorCode;
use spate_protocol::messages::describe_configs_request::DescribeConfigsResource;
use spate_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use spate_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};

use super::Admin;
use crate::error::{Error, error_code};

/// What a config belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
}

impl ConfigResource {
    /// Kafka's `ConfigResource.Type` ids.
    fn wire(&self) -> (i8, String) {
        match self {
            ConfigResource::Topic(name) => (2, name.clone()),
            ConfigResource::Broker(id) => (4, id.to_string()),
        }
    }

    fn label(&self) -> String {
        match self {
            ConfigResource::Topic(name) => format!("topic {name}"),
            ConfigResource::Broker(id) => format!("broker {id}"),
        }
    }
}

/// One config value as the broker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` for sensitive values.
    pub value: Option<String>,
    pub read_only: bool,
    pub is_sensitive: bool,
    /// Kafka's `ConfigSource` id: 1 topic, 4 static broker, 5 default, …
    pub source: i8,
}

impl ConfigEntry {
    /// Whether the value was set on this resource rather than inherited.
    pub fn is_explicit(&self) -> bool {
        self.source == 1 || self.source == 2
    }
}

/// One change for IncrementalAlterConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterConfigOp {
    Set(String, String),
    /// Back to the inherited default.
    Delete(String),
    Append(String, String),
    Subtract(String, String),
}

impl AlterConfigOp {
    fn wire(&self) -> AlterableConfig {
        let (name, operation, value) = match self {
            AlterConfigOp::Set(n, v) => (n, 0, Some(v.clone())),
            AlterConfigOp::Delete(n) => (n, 1, None),
            AlterConfigOp::Append(n, v) => (n, 2, Some(v.clone())),
            AlterConfigOp::Subtract(n, v) => (n, 3, Some(v.clone())),
        };
        AlterableConfig {
            name: name.clone(),
            config_operation: operation,
            value,
            ..Default::default()
        }
    }
}

impl Admin {
    /// Every config of `resource`, with values and where they come from.
    pub async fn describe_configs(
        &self,
        resource: &ConfigResource,
    ) -> Result<Vec<ConfigEntry>, Error> {
        let (resource_type, resource_name) = resource.wire();
        let request = DescribeConfigsRequest {
            resources: vec![DescribeConfigsResource {
                resource_type,
                resource_name: resource_name.clone(),
                configuration_keys: None,
                ..Default::default()
            }],
            include_synonyms: false,
            include_documentation: false,
            ..Default::default()
        };
        let (broker, response) = self.client.send_any_labeled(&request).await?;
        let Some(result) = response
            .results
            .into_iter()
            .find(|r| r.resource_type == resource_type && r.resource_name == resource_name)
        else {
            return Err(Error::Protocol {
                broker,
                reason: format!("DescribeConfigs response left out {}", resource.label()),
            });
        };
        let code = error_code(result.error_code);
        if code != ErrorCode::None {
            return Err(Error::Broker {
                broker,
                what: format!("describing configs of {}", resource.label()),
                code,
                message: result.error_message,
            });
        }
        let mut entries: Vec<ConfigEntry> = result
            .configs
            .into_iter()
            .map(|c| ConfigEntry {
                name: c.name,
                value: c.value,
                read_only: c.read_only,
                is_sensitive: c.is_sensitive,
                source: c.config_source,
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Applies `changes` to `resource`, leaving its other configs as they are.
    pub async fn incremental_alter_configs(
        &self,
        resource: &ConfigResource,
        changes: &[AlterConfigOp],
    ) -> Result<(), Error> {
        let (resource_type, resource_name) = resource.wire();
        let request = IncrementalAlterConfigsRequest {
            resources: vec![AlterConfigsResource {
                resource_type,
                resource_name: resource_name.clone(),
                configs: changes.iter().map(AlterConfigOp::wire).collect(),
                ..Default::default()
            }],
            validate_only: false,
            ..Default::default()
        };
        let (broker, response) = self.client.send_any_labeled(&request).await?;
        let Some(result) = response
            .responses
            .into_iter()
            .find(|r| r.resource_type == resource_type && r.resource_name == resource_name)
        else {
            return Err(Error::Protocol {
                broker,
                reason: format!(
                    "IncrementalAlterConfigs response left out {}",
                    resource.label()
                ),
            });
        };
        match error_code(result.error_code) {
            ErrorCode::None => Ok(()),
            code => Err(Error::Broker {
                broker,
                what: format!("altering configs of {}", resource.label()),
                code,
                message: result.error_message,
            }),
        }
    }
}
