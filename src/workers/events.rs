//! The event bus: notifications about the pool for whoever subscribes (the
//! overlay, logs, tests). Publishing never blocks; a subscriber that went
//! away is dropped.

use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};

#[derive(Clone, Debug, PartialEq)]
pub enum WorkerEvent {
    WorkerJoined {
        worker: String,
    },
    WorkerLeft {
        worker: String,
    },
    TaskFailed {
        task: String,
        worker: String,
        message: String,
    },
    TaskCancelled {
        task: String,
        because: String,
    },
    /// A component's memory budget moved (published by the memory system).
    BudgetChanged {
        component: String,
        bytes: u64,
    },
}

#[derive(Default)]
pub struct EventBus {
    subscribers: Mutex<Vec<Sender<WorkerEvent>>>,
}

impl EventBus {
    pub fn subscribe(&self) -> Receiver<WorkerEvent> {
        let (tx, rx) = channel();
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
    }

    pub fn publish(&self, event: WorkerEvent) {
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|s| s.send(event.clone()).is_ok());
    }
}
