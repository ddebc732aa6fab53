//! What a task asks of the scheduler: the capability a worker needs to run
//! it, its priority, an optional affinity key, and a name for the metrics.

use std::fmt;

/// The four kinds of work in the game, one per system set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    Management,
    Physics,
    Rendering,
    Blockchain,
}

impl Capability {
    pub const ALL: [Capability; 4] = [
        Capability::Management,
        Capability::Physics,
        Capability::Rendering,
        Capability::Blockchain,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Capability::Management => "management",
            Capability::Physics => "physics",
            Capability::Rendering => "rendering",
            Capability::Blockchain => "blockchain",
        }
    }
}

/// A set of capabilities (what a worker can run).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Capabilities(u8);

impl Capabilities {
    pub const NONE: Capabilities = Capabilities(0);
    /// What a compute worker runs: everything but blocking chain I/O.
    pub const COMPUTE: Capabilities = Capabilities(0b0111);
    /// What the I/O worker runs.
    pub const IO: Capabilities = Capabilities(0b1000);

    pub fn of(caps: &[Capability]) -> Self {
        Capabilities(caps.iter().fold(0, |m, c| m | 1 << c.index()))
    }

    pub fn contains(self, c: Capability) -> bool {
        self.0 & (1 << c.index()) != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |&c| self.contains(c))
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.iter().map(Capability::name).collect();
        f.write_str(&names.join("+"))
    }
}

/// Higher priorities are always taken first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    /// Work the current frame waits for.
    FrameCritical = 0,
    #[default]
    Normal = 1,
    /// Work nobody waits for (compaction, statistics, flushing).
    Background = 2,
}

impl Priority {
    pub const COUNT: usize = 3;
    pub const ALL: [Priority; 3] = [
        Priority::FrameCritical,
        Priority::Normal,
        Priority::Background,
    ];

    pub fn index(self) -> usize {
        self as usize
    }
}

/// How a task is to be scheduled.
#[derive(Clone, Debug)]
pub struct TaskSpec {
    pub name: String,
    pub capability: Capability,
    pub priority: Priority,
    /// Tasks with the same key prefer the worker that last ran one of them
    /// (for example a particle chunk whose data is still in that core's cache).
    pub affinity: Option<u64>,
}

impl TaskSpec {
    pub fn new(name: impl Into<String>, capability: Capability) -> Self {
        Self {
            name: name.into(),
            capability,
            priority: Priority::Normal,
            affinity: None,
        }
    }

    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    pub fn affinity(mut self, key: u64) -> Self {
        self.affinity = Some(key);
        self
    }
}

/// Why a task produced no result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error("task `{task}` panicked: {message}")]
    Panicked { task: String, message: String },
    #[error("task `{task}` was cancelled because `{because}` failed")]
    Cancelled { task: String, because: String },
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-text panic payload)".to_string()
    }
}
