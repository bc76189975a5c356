//! A unit of an experiment's work, and what running it came to.

use std::path::PathBuf;

/// One unit of an experiment's work (a training run, a fit), finished once its result file
/// holds a readable result.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    /// Position in the plan.
    pub index: usize,
    pub label: String,
    /// The file that holds the unit's result once it finished.
    pub result: PathBuf,
    /// Relative cost: the most expensive units start first.
    pub cost: f64,
    /// Units with the same group may be run together, as one batch (a sweep's ensembles).
    pub group: Option<UnitGroup>,
}

/// Which units can share a batch, and how many at most.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitGroup {
    pub key: String,
    pub max_units: usize,
}

/// The pending units as batches: units of one group together (in plan order, at most its
/// `max_units` to a batch), every other unit alone; the most expensive batches first.
pub fn batches<'a>(pending: &[&'a Unit]) -> Vec<Vec<&'a Unit>> {
    let mut batches: Vec<Vec<&Unit>> = Vec::new();
    let mut open: Vec<(&str, usize)> = Vec::new();
    let mut in_order: Vec<&Unit> = pending.to_vec();
    in_order.sort_by_key(|u| u.index);
    for unit in in_order {
        let Some(group) = &unit.group else {
            batches.push(vec![unit]);
            continue;
        };
        let slot = open.iter().position(|(k, _)| *k == group.key);
        match slot.map(|s| open[s].1) {
            Some(b) if batches[b].len() < group.max_units.max(1) => batches[b].push(unit),
            _ => {
                batches.push(vec![unit]);
                let entry = (group.key.as_str(), batches.len() - 1);
                match slot {
                    Some(s) => open[s] = entry,
                    None => open.push(entry),
                }
            }
        }
    }
    let cost = |b: &Vec<&Unit>| b.iter().map(|u| u.cost).sum::<f64>();
    batches.sort_by(|a, b| cost(b).total_cmp(&cost(a)));
    batches
}

/// What running a unit came to.
#[derive(Debug, Clone, PartialEq)]
pub enum UnitOutcome {
    /// Finished and saved, with a one-line outcome.
    Finished(String),
    /// Stopped by the user before it finished; nothing was saved.
    Interrupted,
}

impl Unit {
    /// Units of equal cost, one per `(label, result file)`, in plan order.
    pub fn uniform(plan: impl IntoIterator<Item = (String, PathBuf)>) -> Vec<Unit> {
        plan.into_iter()
            .enumerate()
            .map(|(index, (label, result))| Unit {
                index,
                label,
                result,
                cost: 1.0,
                group: None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(index: usize, cost: f64, group: Option<&str>) -> Unit {
        Unit {
            index,
            label: format!("u{index}"),
            result: format!("u{index}.json").into(),
            cost,
            group: group.map(|key| UnitGroup {
                key: key.into(),
                max_units: 2,
            }),
        }
    }

    #[test]
    fn batches_hold_one_group_each_up_to_its_size_most_expensive_first() {
        let units = [
            unit(0, 1.0, Some("a")),
            unit(1, 5.0, None),
            unit(2, 1.0, Some("b")),
            unit(3, 1.0, Some("a")),
            unit(4, 1.0, Some("a")),
            unit(5, 1.5, Some("b")),
        ];
        let pending: Vec<&Unit> = units.iter().rev().collect();
        let got: Vec<Vec<usize>> = batches(&pending)
            .iter()
            .map(|b| b.iter().map(|u| u.index).collect())
            .collect();
        // Costs: [1] 5, [2, 5] 2.5, [0, 3] 2, [4] 1.
        assert_eq!(got, vec![vec![1], vec![2, 5], vec![0, 3], vec![4]]);
    }
}
