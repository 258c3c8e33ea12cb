//! `--shard K/N`: one of N machines' share of a batch, with no coordinator. Every copy plans the
//! same jobs from the same inputs, sorts them by input path and keeps every Nth from the Kth, so
//! N copies (a Kubernetes Indexed Job, a Slurm array, GNU parallel) do every photo exactly once.

use std::str::FromStr;

use super::Job;

/// Which share: `index` of `count` (0 ≤ index < count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This copy's share, from 0 (Kubernetes' `JOB_COMPLETION_INDEX`).
    pub index: usize,
    /// How many copies share the batch.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage =
            || format!("`{text}` is not a shard; write K/N with 0 ≤ K < N, for example 0/4 … 3/4");
        let (index, count) = text.split_once('/').ok_or_else(usage)?;
        let index: usize = index.trim().parse().map_err(|_| usage())?;
        let count: usize = count.trim().parse().map_err(|_| usage())?;
        if count == 0 || index >= count {
            return Err(usage());
        }
        Ok(Self { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// This share of `jobs`, in their planned order. The share depends only on the sorted input
    /// paths, not on the order the inputs were given or listed in.
    pub fn select(self, jobs: Vec<Job>) -> Vec<Job> {
        let mut by_path: Vec<usize> = (0..jobs.len()).collect();
        by_path.sort_by(|&a, &b| jobs[a].input.cmp(&jobs[b].input));
        let mut mine = vec![false; jobs.len()];
        for (rank, &at) in by_path.iter().enumerate() {
            mine[at] = rank % self.count == self.index;
        }
        jobs.into_iter()
            .zip(mine)
            .filter_map(|(job, mine)| mine.then_some(job))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::image_ops::Target;

    fn jobs(names: &[&str]) -> Vec<Job> {
        names
            .iter()
            .map(|n| Job::file(PathBuf::from(n), Target::exact(PathBuf::from("out"), None)))
            .collect()
    }

    #[test]
    fn every_job_is_in_exactly_one_share_for_any_count() {
        let names: Vec<String> = (0..37)
            .map(|i| format!("dir/{:03}.jpg", (i * 17) % 37))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        for count in 1..=12 {
            let mut seen: Vec<PathBuf> = (0..count)
                .flat_map(|index| Shard { index, count }.select(jobs(&names)))
                .map(|j| j.input)
                .collect();
            seen.sort();
            let mut all: Vec<PathBuf> = names.iter().map(PathBuf::from).collect();
            all.sort();
            assert_eq!(seen, all, "N={count}");
            // Shares differ in size by at most one.
            let sizes: Vec<usize> = (0..count)
                .map(|index| Shard { index, count }.select(jobs(&names)).len())
                .collect();
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(max - min <= 1, "{sizes:?}");
        }
    }

    #[test]
    fn the_share_does_not_depend_on_the_input_order() {
        let a = Shard { index: 1, count: 3 }.select(jobs(&["c", "a", "d", "b", "e"]));
        let b = Shard { index: 1, count: 3 }.select(jobs(&["e", "d", "c", "b", "a"]));
        let names = |j: Vec<Job>| {
            let mut n: Vec<_> = j.into_iter().map(|j| j.input).collect();
            n.sort();
            n
        };
        assert_eq!(names(a), names(b));
    }

    #[test]
    fn shards_parse_and_bad_ones_say_how() {
        assert_eq!("2/5".parse(), Ok(Shard { index: 2, count: 5 }));
        for bad in ["5/5", "1/0", "x/2", "3", "-1/2", ""] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.contains("K/N"), "{bad}: {err}");
        }
    }
}
