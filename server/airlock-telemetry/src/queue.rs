//! The bounded queue between the bus and the editor.
//!
//! Guarantee: memory stays bounded whatever the editor does. When the queue is full the oldest
//! event is dropped and counted; the count is reported with the next batch, so the editor knows
//! it missed events instead of silently seeing a gap.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::Event;

#[derive(Clone)]
pub struct EditorQueue {
    inner: Arc<(Mutex<State>, Condvar)>,
}

struct State {
    events: VecDeque<Event>,
    capacity: usize,
    dropped: u64,
    total_dropped: u64,
}

/// What a consumer takes out in one go.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<Event>,
    /// Events dropped since the previous batch because the consumer was too slow.
    pub dropped: u64,
}

impl EditorQueue {
    pub fn new(capacity: usize) -> EditorQueue {
        EditorQueue {
            inner: Arc::new((
                Mutex::new(State {
                    events: VecDeque::new(),
                    capacity: capacity.max(1),
                    dropped: 0,
                    total_dropped: 0,
                }),
                Condvar::new(),
            )),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, event: Event) {
        let mut state = self.state();
        if state.events.len() == state.capacity {
            state.events.pop_front();
            state.dropped += 1;
            state.total_dropped += 1;
        }
        state.events.push_back(event);
        drop(state);
        self.inner.1.notify_one();
    }

    /// Events dropped since the queue was created.
    pub fn total_dropped(&self) -> u64 {
        self.state().total_dropped
    }

    /// Events waiting to be taken.
    pub fn len(&self) -> usize {
        self.state().events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits up to `wait` for at least one event, then takes at most `max` events.
    pub fn take_batch(&self, max: usize, wait: Duration) -> Batch {
        self.take_batch_linger(max, wait, Duration::ZERO)
    }

    /// Batching by time or count: waits up to `wait` for a first event, then up to `linger`
    /// more for the batch to fill to `max`, then takes at most `max` events.
    pub fn take_batch_linger(&self, max: usize, wait: Duration, linger: Duration) -> Batch {
        let max = max.max(1);
        let cv = &self.inner.1;
        let guard = self.state();
        let (guard, _) = cv
            .wait_timeout_while(guard, wait, |s| s.events.is_empty() && s.dropped == 0)
            .unwrap_or_else(|p| p.into_inner());
        let mut state = if !guard.events.is_empty() && !linger.is_zero() {
            cv.wait_timeout_while(guard, linger, |s| s.events.len() < max)
                .unwrap_or_else(|p| p.into_inner())
                .0
        } else {
            guard
        };
        let n = state.events.len().min(max);
        let events = state.events.drain(..n).collect();
        let dropped = std::mem::take(&mut state.dropped);
        Batch { events, dropped }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::EventKind;

    #[test]
    fn full_queue_drops_oldest_and_counts() {
        let q = EditorQueue::new(3);
        for i in 0..10 {
            let mut e = Event::new(EventKind::FsRead, format!("f{i}"));
            e.seq = i;
            q.push(e);
        }
        let batch = q.take_batch(100, Duration::from_millis(1));
        assert_eq!(batch.dropped, 7);
        assert_eq!(q.total_dropped(), 7);
        let seqs: Vec<u64> = batch.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![7, 8, 9]);
        let empty = q.take_batch(100, Duration::from_millis(1));
        assert_eq!((empty.events.len(), empty.dropped), (0, 0));
    }

    #[test]
    fn linger_collects_a_burst_into_one_batch() {
        let q = EditorQueue::new(100);
        let producer = q.clone();
        let t = std::thread::spawn(move || {
            for i in 0..5 {
                producer.push(Event::new(EventKind::FsRead, format!("f{i}")));
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let batch = q.take_batch_linger(100, Duration::from_secs(5), Duration::from_secs(2));
        t.join().unwrap();
        // Time bound: the batch closes after the linger and holds the whole burst.
        assert_eq!(batch.events.len(), 5);
        // Count bound: a full batch is returned without waiting for the linger.
        for _ in 0..10 {
            q.push(Event::new(EventKind::FsRead, "x"));
        }
        let start = std::time::Instant::now();
        let batch = q.take_batch_linger(4, Duration::from_secs(5), Duration::from_secs(5));
        assert_eq!(batch.events.len(), 4);
        assert!(start.elapsed() < Duration::from_secs(4));
    }
}
