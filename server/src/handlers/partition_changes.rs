//! What ElectLeaders and AlterPartitionReassignments share: both are decided by the active
//! controller (forwarded from whichever node the client asked, as KIP-590 forwards), both are
//! answered per partition, and both wait until this node has applied the change, so that a
//! Metadata request right after the answer sees the new leaders or replicas.

use std::time::Duration;

use crate::broker::Broker;
use crate::cluster::rpc::{ControllerReplyBody, ControllerRequest, PartitionResult};
use crate::topics::controller_error_code;

use super::error_code;

/// A per-partition change the controller could not be asked about or could not answer: the
/// error code (the response's top-level one, and every partition's) and why.
pub(crate) type Refusal = (i16, String);

/// Sends `request` to the active controller and returns its per-partition results once this
/// node's metadata image includes the change (or `timeout` has passed: the change is made
/// either way, it only has not reached this node yet, which the log says).
pub(crate) async fn forward(
    broker: &Broker,
    request: ControllerRequest,
    timeout: Duration,
) -> Result<Vec<PartitionResult>, Refusal> {
    let started = tokio::time::Instant::now();
    let reply = broker
        .control
        .call(request, timeout)
        .await
        .map_err(|error| (controller_error_code(&error), error.to_string()))?;
    let remaining = timeout.saturating_sub(started.elapsed());
    if !broker
        .metadata
        .wait_for_offset(reply.offset, remaining)
        .await
    {
        tracing::warn!(
            offset = reply.offset,
            "a partition change was made but has not reached this node yet; Metadata from this node may lag behind it for a moment"
        );
    }
    match reply.body {
        ControllerReplyBody::PartitionResults(results) => Ok(results),
        other => {
            tracing::error!(reply = ?other, "the controller answered a partition change with the wrong message");
            Err((
                error_code::UNKNOWN_SERVER_ERROR,
                "the active controller answered with an unexpected message (see this node's log); retry, and report it if it persists".to_owned(),
            ))
        }
    }
}

/// `results` grouped by topic, topics in the order they first appear and partitions in the
/// order given.
pub(crate) fn by_topic(results: Vec<PartitionResult>) -> Vec<(String, Vec<PartitionResult>)> {
    let mut topics: Vec<(String, Vec<PartitionResult>)> = Vec::new();
    for result in results {
        match topics.iter_mut().find(|(name, _)| *name == result.topic) {
            Some((_, partitions)) => partitions.push(result),
            None => topics.push((result.topic.clone(), vec![result])),
        }
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(topic: &str, partition: i32) -> PartitionResult {
        PartitionResult {
            topic: topic.to_owned(),
            partition,
            error_code: error_code::NONE,
            message: None,
        }
    }

    #[test]
    fn results_are_grouped_by_topic_in_first_seen_order() {
        let grouped = by_topic(vec![
            result("b", 1),
            result("a", 0),
            result("b", 0),
            result("a", 2),
        ]);
        let shape: Vec<(String, Vec<i32>)> = grouped
            .into_iter()
            .map(|(name, ps)| (name, ps.iter().map(|p| p.partition).collect()))
            .collect();
        assert_eq!(
            shape,
            vec![("b".to_owned(), vec![1, 0]), ("a".to_owned(), vec![0, 2])]
        );
    }
}
