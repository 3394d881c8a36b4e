//! The look-ahead of a partition read out of offset order (`ordering = "key"` or `"none"`):
//! the records taken but not done, which of them may go into the next batch, and the offset up
//! to which everything is done — what may be committed.
//!
//! Rules:
//! - Records of one [`Lane`] reach the function in offset order: a lane with a batch in flight
//!   gives no record to another batch, and a batch that leaves out a record of a lane leaves out
//!   that lane's later records too.
//! - The committable offset is the last one before the first record not done: a crash repeats
//!   at most the look-ahead, never skips a record.

use crate::batch::PolledRecord;
use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, Hasher};

/// Records that keep their order among themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Lane {
    /// Every record with this key hash (two keys with the same hash share a lane: stricter
    /// order, never a broken one).
    Key(u64),
    /// Records without a key: one lane per partition.
    NullKey,
    /// One record alone (`ordering = "none"`): no order to keep.
    Alone(i64),
}

/// How lanes are drawn.
#[derive(Debug, Clone)]
pub(crate) struct Lanes {
    /// Per key, or none at all.
    by_key: bool,
    hasher: std::collections::hash_map::RandomState,
}

impl Lanes {
    /// Lanes by key (`true`), or every record alone.
    pub(crate) fn new(by_key: bool) -> Self {
        Lanes {
            by_key,
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// The lane of a record with `key` at `offset`.
    pub(crate) fn of(&self, key: Option<&[u8]>, offset: i64) -> Lane {
        if !self.by_key {
            return Lane::Alone(offset);
        }
        match key {
            None => Lane::NullKey,
            Some(key) => {
                let mut h = self.hasher.build_hasher();
                h.write(key);
                Lane::Key(h.finish())
            }
        }
    }
}

/// What a batch being gathered says of the next record offered to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offered {
    /// It is in the batch.
    Taken,
    /// It does not fit: the batch is full.
    Full,
    /// It can never be in a batch (too large alone): it is handed back to be given up.
    Refused,
}

/// The look-ahead of one partition.
#[derive(Debug, Default)]
pub(crate) struct Window {
    /// Every record taken and not done, by offset, with its lane.
    open: BTreeMap<i64, Lane>,
    /// Of those, the ones in no batch yet.
    waiting: BTreeMap<i64, PolledRecord>,
    /// Lanes with a batch in flight.
    busy: HashSet<Lane>,
    /// The last offset taken or skipped.
    last: Option<i64>,
}

impl Window {
    /// The offsets from the first record not done to the last one taken: what a crash would
    /// deliver again, since the commit stops before the first record not done. Records done
    /// after a record that is not (another key's) count too, so a stuck record stops the
    /// partition's reading once the look-ahead is full instead of letting the redelivery grow.
    pub(crate) fn len(&self) -> usize {
        match (self.open.keys().next(), self.last) {
            (Some(first), Some(last)) => usize::try_from(last - first + 1).unwrap_or(0),
            _ => 0,
        }
    }

    /// Takes `record` (of `lane`) into the window: it waits for a batch.
    pub(crate) fn take(&mut self, record: PolledRecord, lane: Lane) {
        self.last = Some(record.offset);
        self.open.insert(record.offset, lane);
        self.waiting.insert(record.offset, record);
    }

    /// Notes that the record at `offset` was read and needs no batch (filtered, or given up
    /// before one).
    pub(crate) fn skip(&mut self, offset: i64) {
        self.last = Some(self.last.map_or(offset, |last| last.max(offset)));
    }

    /// Whether a batch could take a record now: one waits in a lane with no batch in flight.
    pub(crate) fn has_ready(&self) -> bool {
        self.waiting
            .keys()
            .any(|offset| !self.busy.contains(&self.open[offset]))
    }

    /// How many records a batch could take now: those waiting in lanes with no batch in flight.
    pub(crate) fn ready(&self) -> usize {
        self.waiting
            .keys()
            .filter(|offset| !self.busy.contains(&self.open[*offset]))
            .count()
    }

    /// Offers the waiting records, in offset order, to a batch through `offer`, keeping each
    /// lane's order (see the module's rules); the lanes of the records taken are busy until
    /// [`release`](Self::release). Returns the records taken, with their lanes, and those
    /// refused.
    pub(crate) fn next_batch(
        &mut self,
        mut offer: impl FnMut(&PolledRecord) -> Offered,
    ) -> (Vec<(Lane, PolledRecord)>, Vec<PolledRecord>) {
        let mut skipped: HashSet<Lane> = HashSet::new();
        let mut taken = Vec::new();
        let mut refused = Vec::new();
        let mut full = false;
        let offsets: Vec<i64> = self.waiting.keys().copied().collect();
        for offset in offsets {
            let lane = self.open[&offset];
            if full || self.busy.contains(&lane) || skipped.contains(&lane) {
                skipped.insert(lane);
                continue;
            }
            match offer(&self.waiting[&offset]) {
                Offered::Taken => {
                    if let Some(record) = self.waiting.remove(&offset) {
                        taken.push((lane, record));
                    }
                }
                Offered::Refused => {
                    // Given up by the caller and then done: the lane keeps its order, since
                    // the record before the lane's next ones is finished first.
                    if let Some(record) = self.waiting.remove(&offset) {
                        refused.push(record);
                    }
                    skipped.insert(lane);
                }
                Offered::Full => {
                    full = true;
                    skipped.insert(lane);
                }
            }
        }
        for (lane, _) in &taken {
            self.busy.insert(*lane);
        }
        for record in &refused {
            self.busy.insert(self.open[&record.offset]);
        }
        (taken, refused)
    }

    /// Marks the records at `offsets` done.
    pub(crate) fn done(&mut self, offsets: impl IntoIterator<Item = i64>) {
        for offset in offsets {
            self.open.remove(&offset);
        }
    }

    /// Lets `lane` give records to batches again (its batch in flight finished).
    pub(crate) fn release(&mut self, lane: Lane) {
        self.busy.remove(&lane);
    }

    /// The last offset before the first record not done: everything up to it is done and may
    /// be committed. `None` before anything was done.
    pub(crate) fn committable(&self) -> Option<i64> {
        match self.open.keys().next() {
            Some(first) => Some(first - 1),
            None => self.last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_lambda_events::TimestampType;

    fn record(offset: i64, key: &str) -> PolledRecord {
        PolledRecord {
            offset,
            timestamp: 0,
            timestamp_type: TimestampType::CreateTime,
            key: Some(key.as_bytes().to_vec()),
            value: None,
            headers: Vec::new(),
            original_value: None,
            original_key: None,
            key_schema_metadata: None,
            value_schema_metadata: None,
        }
    }

    /// A window holding `records` (offset, key) by key.
    fn window(records: &[(i64, &str)]) -> (Window, Lanes) {
        let lanes = Lanes::new(true);
        let mut w = Window::default();
        for (offset, key) in records {
            w.take(
                record(*offset, key),
                lanes.of(Some(key.as_bytes()), *offset),
            );
        }
        (w, lanes)
    }

    fn offsets(taken: &[(Lane, PolledRecord)]) -> Vec<i64> {
        taken.iter().map(|(_, r)| r.offset).collect()
    }

    /// A batch taking up to `n` records.
    fn up_to(n: usize) -> impl FnMut(&PolledRecord) -> Offered {
        let mut count = 0;
        move |_| {
            count += 1;
            if count <= n {
                Offered::Taken
            } else {
                Offered::Full
            }
        }
    }

    #[test]
    fn a_lane_in_flight_gives_no_record_to_the_next_batch() {
        let (mut w, _) = window(&[(0, "a"), (1, "b"), (2, "a"), (3, "c")]);
        let (first, _) = w.next_batch(up_to(2));
        assert_eq!(offsets(&first), [0, 1]);
        assert_eq!(w.ready(), 1, "only c's record: a and b are in flight");
        let (second, _) = w.next_batch(up_to(10));
        assert_eq!(offsets(&second), [3], "a and b are in flight");
        w.done([0]);
        w.release(first[0].0);
        let (third, _) = w.next_batch(up_to(10));
        assert_eq!(offsets(&third), [2], "a's next record once a is released");
    }

    #[test]
    fn a_full_batch_leaves_out_the_later_records_of_its_lanes_too() {
        let (mut w, _) = window(&[(0, "a"), (1, "b"), (2, "a"), (3, "b")]);
        let (first, _) = w.next_batch(up_to(1));
        assert_eq!(offsets(&first), [0]);
        let (second, _) = w.next_batch(up_to(10));
        assert_eq!(
            offsets(&second),
            [1, 3],
            "b's records in order; a's wait for a"
        );
    }

    #[test]
    fn the_committable_offset_stops_before_the_first_record_not_done() {
        let (mut w, _) = window(&[(10, "a"), (11, "b"), (12, "c")]);
        assert_eq!(w.committable(), Some(9));
        w.done([11, 12]);
        assert_eq!(w.committable(), Some(9), "10 is not done");
        w.done([10]);
        assert_eq!(w.committable(), Some(12));
        w.skip(15);
        assert_eq!(w.committable(), Some(15), "skipped records are done");
        assert_eq!(Window::default().committable(), None);
    }

    #[test]
    fn the_look_ahead_spans_from_the_first_record_not_done_to_the_last_taken() {
        let (mut w, _) = window(&[(10, "a"), (11, "b"), (12, "c")]);
        assert_eq!(w.len(), 3);
        w.done([11, 12]);
        assert_eq!(w.len(), 3, "10 is not done: a crash repeats 10..=12");
        w.skip(20);
        assert_eq!(w.len(), 11, "10..=20");
        w.done([10]);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn without_keys_every_record_is_its_own_lane_and_null_keys_share_one() {
        let alone = Lanes::new(false);
        assert_ne!(alone.of(Some(b"k"), 1), alone.of(Some(b"k"), 2));
        let by_key = Lanes::new(true);
        assert_eq!(by_key.of(Some(b"k"), 1), by_key.of(Some(b"k"), 2));
        assert_ne!(by_key.of(Some(b"k"), 1), by_key.of(Some(b"j"), 2));
        assert_eq!(by_key.of(None, 1), by_key.of(None, 9));
    }

    #[test]
    fn a_refused_record_holds_its_lane_until_released() {
        let (mut w, _) = window(&[(0, "a"), (1, "a"), (2, "b")]);
        let mut first = true;
        let (taken, refused) = w.next_batch(|_| {
            if std::mem::take(&mut first) {
                Offered::Refused
            } else {
                Offered::Taken
            }
        });
        assert_eq!(refused.iter().map(|r| r.offset).collect::<Vec<_>>(), [0]);
        assert_eq!(
            offsets(&taken),
            [2],
            "a's next record waits behind the refused one"
        );
        assert!(!w.has_ready());
    }

    #[test]
    fn random_batches_keep_every_lanes_order_and_commit_only_what_is_done() {
        // A model run: records of five keys, batches of random sizes finishing in random
        // order; every lane must see its offsets in order, and the committable offset must
        // never pass a record not done.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let keys = ["a", "b", "c", "d", "e"];
        let records: Vec<(i64, &str)> = (0..200).map(|o| (o, keys[random(5)])).collect();
        let (mut w, lanes) = window(&records);
        let mut in_flight: Vec<Vec<(Lane, PolledRecord)>> = Vec::new();
        let mut seen: std::collections::HashMap<Lane, Vec<i64>> = Default::default();
        let mut done = HashSet::new();
        while w.len() > 0 {
            if w.has_ready() && (in_flight.is_empty() || random(2) == 0) {
                let (batch, _) = w.next_batch(up_to(1 + random(8)));
                for (lane, r) in &batch {
                    seen.entry(*lane).or_default().push(r.offset);
                }
                in_flight.push(batch);
            } else if !in_flight.is_empty() {
                let batch = in_flight.swap_remove(random(in_flight.len()));
                w.done(batch.iter().map(|(_, r)| r.offset));
                for (lane, r) in &batch {
                    done.insert(r.offset);
                    w.release(*lane);
                }
            }
            if let Some(c) = w.committable() {
                assert!(
                    (0..=c).all(|o| done.contains(&o)),
                    "committable {c} passes a record not done"
                );
            }
        }
        for (key, offsets) in keys.iter().map(|k| {
            let lane = lanes.of(Some(k.as_bytes()), 0);
            (k, seen.get(&lane).cloned().unwrap_or_default())
        }) {
            let expected: Vec<i64> = records
                .iter()
                .filter(|(_, k)| k == key)
                .map(|(o, _)| *o)
                .collect();
            assert_eq!(offsets, expected, "lane {key} in offset order");
        }
        assert_eq!(w.committable(), Some(199));
    }
}
