//! A value per snapshot, stored only for the snapshots that hold an edge: the others are zero
//! (no edge, no degree, no child). A trace whose timestamps span years in a few datagrams has
//! billions of snapshots and only a few with edges, so nothing may cost per snapshot.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// Series of at most this many snapshots (36 h of 1 s snapshots) are written whole, one value
/// per snapshot, in report.json and the CSV tables; longer ones only at the snapshots with an
/// edge (docs/ANALYZE.md).
pub const DENSE_SNAPSHOTS: u64 = 1 << 17;

/// One value per snapshot of a grid of `len` snapshots: those given with [`Series::push`] (the
/// snapshots with an edge), zero elsewhere.
#[derive(Debug, Clone, PartialEq)]
pub struct Series<T> {
    len: u64,
    at: Vec<(u64, T)>,
}

impl<T: Copy + Default> Series<T> {
    pub fn new(len: u64) -> Series<T> {
        Series { len, at: Vec::new() }
    }

    /// Sets snapshot `k`'s value; `k` ascending from call to call, below the length.
    pub fn push(&mut self, k: u64, value: T) {
        debug_assert!(k < self.len && self.at.last().is_none_or(|&(j, _)| j < k), "snapshot {k} out of order");
        self.at.push((k, value));
    }

    /// Snapshots in the grid, with an edge or not.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The snapshots given a value (those with an edge), ascending.
    pub fn stored(&self) -> &[(u64, T)] {
        &self.at
    }

    /// Snapshot `k`'s value.
    pub fn get(&self, k: u64) -> T {
        self.at.binary_search_by_key(&k, |e| e.0).map_or_else(|_| T::default(), |i| self.at[i].1)
    }

    /// Whether tables and report.json list every snapshot ([`DENSE_SNAPSHOTS`]).
    pub fn dense(&self) -> bool {
        self.len <= DENSE_SNAPSHOTS
    }

    /// What a table lists: every snapshot when [`Series::dense`], else the stored ones.
    pub fn rows(&self) -> Box<dyn Iterator<Item = (u64, T)> + '_> {
        if self.dense() {
            let mut stored = self.at.iter().copied().peekable();
            Box::new((0..self.len).map(move |k| match stored.next_if(|&(j, _)| j == k) {
                Some((_, v)) => (k, v),
                None => (k, T::default()),
            }))
        } else {
            Box::new(self.at.iter().copied())
        }
    }

    /// The points of a line through every snapshot's value: all of them when
    /// [`Series::dense`]; else the stored ones, the zeros beside them and both ends (the line
    /// is flat at zero in between).
    pub fn outline(&self) -> Vec<(u64, T)> {
        if self.dense() {
            return self.rows().collect();
        }
        let mut ks: Vec<u64> = self.at.iter().flat_map(|&(k, _)| [k.saturating_sub(1), k, k + 1]).collect();
        ks.extend([0, self.len - 1]);
        ks.retain(|&k| k < self.len);
        ks.sort_unstable();
        ks.dedup();
        ks.into_iter().map(|k| (k, self.get(k))).collect()
    }
}

impl<T: Copy + Default + Serialize> Serialize for Series<T> {
    /// A dense series as an array of every snapshot's value (as report.json always had); a
    /// longer one as `{"snapshots": N, "with_edges": [[k, value], ...]}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.dense() {
            let mut seq = s.serialize_seq(Some(self.len as usize))?;
            for (_, v) in self.rows() {
                seq.serialize_element(&v)?;
            }
            seq.end()
        } else {
            let mut map = s.serialize_map(Some(2))?;
            map.serialize_entry("snapshots", &self.len)?;
            map.serialize_entry("with_edges", &self.at)?;
            map.end()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_sparse() {
        let mut s = Series::new(5);
        s.push(1, 3u64);
        s.push(3, 0);
        assert_eq!(s.rows().collect::<Vec<_>>(), vec![(0, 0), (1, 3), (2, 0), (3, 0), (4, 0)]);
        assert_eq!((s.get(1), s.get(2), s.len()), (3, 0, 5));
        assert_eq!(serde_json::to_string(&s).unwrap(), "[0,3,0,0,0]");
        let mut long = Series::new(DENSE_SNAPSHOTS + 1);
        long.push(7, 2.5f64);
        assert_eq!(long.rows().collect::<Vec<_>>(), vec![(7, 2.5)]);
        assert_eq!(serde_json::to_string(&long).unwrap(), r#"{"snapshots":131073,"with_edges":[[7,2.5]]}"#);
        let last = DENSE_SNAPSHOTS;
        assert_eq!(long.outline(), vec![(0, 0.0), (6, 0.0), (7, 2.5), (8, 0.0), (last, 0.0)]);
        assert_eq!(s.outline(), s.rows().collect::<Vec<_>>());
    }
}
