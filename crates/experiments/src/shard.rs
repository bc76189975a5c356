//! Shards of an experiment's plan for `--shard I/N`: a deterministic partition, balanced by the
//! units' estimated cost so the shards of a Slurm array finish at about the same time.

use std::fmt;
use std::str::FromStr;

use crate::unit::Unit;

/// Shard `index` of `count` (numbered from 0, as `SLURM_ARRAY_TASK_ID` with `--array=0-(N-1)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("--shard {s}: expected I/N with 0 <= I < N, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard of every unit (by position in `units`): the most expensive first, each to the
/// shard with the least cost so far (ties: the lower shard). Depends only on the plan.
pub fn assign(units: &[Unit], count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..units.len()).collect();
    order.sort_by(|&a, &b| units[b].cost.total_cmp(&units[a].cost).then(a.cmp(&b)));
    let mut load = vec![0.0f64; count.max(1)];
    let mut shard = vec![0; units.len()];
    for i in order {
        let lightest = (0..load.len())
            .min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b)))
            .unwrap_or(0);
        load[lightest] += units[i].cost.max(0.0);
        shard[i] = lightest;
    }
    shard
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn units(costs: &[f64]) -> Vec<Unit> {
        costs
            .iter()
            .enumerate()
            .map(|(index, &cost)| Unit {
                group: None,
                index,
                label: format!("u{index}"),
                result: format!("u{index}.json").into(),
                cost,
            })
            .collect()
    }

    #[test]
    fn shard_arguments_are_checked() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/0", "4/4", "5/4", "1", "a/2", "-1/2", "1/-2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn costs_are_balanced() {
        // 8, 7, 6, 5, 4, 3, 2, 1 over 2 shards: 8+5+4+1 = 18 against 7+6+3+2 = 18.
        let u = units(&[8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]);
        let s = assign(&u, 2);
        let load = |k| {
            (0..8)
                .filter(|&i| s[i] == k)
                .map(|i| u[i].cost)
                .sum::<f64>()
        };
        assert_eq!((load(0), load(1)), (18.0, 18.0));
    }

    proptest! {
        #[test]
        fn every_unit_is_in_exactly_one_shard(
            costs in proptest::collection::vec(0.0f64..1e6, 0..60),
            count in 1usize..9,
        ) {
            let u = units(&costs);
            let s = assign(&u, count);
            prop_assert_eq!(s.len(), u.len());
            prop_assert!(s.iter().all(|&k| k < count));
            // The union of the shards' plans is the plan, each unit once.
            let mut seen = vec![0; u.len()];
            for k in 0..count {
                for i in (0..u.len()).filter(|&i| s[i] == k) {
                    seen[i] += 1;
                }
            }
            prop_assert!(seen.iter().all(|&n| n == 1));
            // Deterministic.
            prop_assert_eq!(assign(&u, count), s);
        }
    }
}
