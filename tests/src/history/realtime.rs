//! Real-time precedence: "b started after a ended" is the only order between two processes' (or
//! one pipelining process's) operations that a history can prove. Both the send-order and the
//! committed-offset checks ask the same question of it: among the operations that ended before
//! this one started, which carried the highest offset? A sort and a sweep answer it for every
//! operation in n log n.

/// An operation on the sweep: when it ended (for `ended`) or started (for `probes`), the offset
/// it carried, and its index in the caller's table.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timed {
    pub(super) at_ms: f64,
    pub(super) offset: i64,
    pub(super) index: usize,
}

/// Calls `on_probe(probe, highest)` for every probe, where `highest` is the entry of `ended`
/// with the highest offset among those that ended strictly before the probe started (the
/// earliest-ending one on a tie). Equal times are not ordered: the clock cannot tell them apart.
pub(super) fn highest_ended_before(
    mut ended: Vec<Timed>,
    mut probes: Vec<Timed>,
    mut on_probe: impl FnMut(Timed, Option<Timed>),
) {
    // Stable sorts: on equal times, history order decides which example is reported.
    ended.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    probes.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    let mut highest: Option<Timed> = None;
    let mut next = 0;
    for probe in probes {
        while let Some(&candidate) = ended.get(next) {
            if candidate.at_ms >= probe.at_ms {
                break;
            }
            if highest.is_none_or(|highest| candidate.offset > highest.offset) {
                highest = Some(candidate);
            }
            next += 1;
        }
        on_probe(probe, highest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(at_ms: f64, offset: i64, index: usize) -> Timed {
        Timed {
            at_ms,
            offset,
            index,
        }
    }

    #[test]
    fn highest_counts_only_operations_that_ended_strictly_before() {
        let ended = vec![timed(5.0, 7, 0), timed(1.0, 3, 1), timed(3.0, 9, 2)];
        let probes = vec![timed(3.0, 0, 10), timed(0.5, 0, 11), timed(10.0, 0, 12)];
        let mut seen = Vec::new();
        highest_ended_before(ended, probes, |probe, highest| {
            seen.push((probe.index, highest.map(|highest| highest.index)));
        });
        assert_eq!(seen, vec![(11, None), (10, Some(1)), (12, Some(2))]);
    }
}
