//! Call sites: where the memory system's allocations come from
//! (`#[track_caller]` locations), ranked by bytes and by count, and the two
//! kinds of leak: allocations still outstanding at a reset or at shutdown,
//! and sites whose live bytes grow epoch after epoch.
//!
//! Sites are recorded by the memory system's own APIs (pool buffers, tracked
//! vectors), never per heap allocation.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::{LazyLock, Mutex, MutexGuard};

pub type Site = &'static Location<'static>;

#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct SiteStats {
    pub live_bytes: i64,
    pub live_count: i64,
    pub total_bytes: u64,
    pub total_count: u64,
}

/// One site in a ranking.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Hotspot {
    pub site: String,
    pub stats: SiteStats,
}

/// A site whose live bytes grew in each of the last `epochs` epochs.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LeakWarning {
    pub site: String,
    pub live_bytes: i64,
    /// Average growth per epoch over the streak.
    pub bytes_per_epoch: f64,
    /// The epoch the growth streak began.
    pub since_epoch: u64,
}

/// What call sites are ranked by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortBy {
    /// Bytes allocated there in all.
    #[default]
    Bytes,
    /// Allocations made there.
    Count,
    /// Bytes allocated there and still live.
    Live,
}

/// Sites ranked by `by`, largest first (ties by name).
pub fn rank(mut sites: Vec<Hotspot>, by: SortBy) -> Vec<Hotspot> {
    let key = |h: &Hotspot| match by {
        SortBy::Bytes => h.stats.total_bytes as i128,
        SortBy::Count => h.stats.total_count as i128,
        SortBy::Live => h.stats.live_bytes as i128,
    };
    sites.sort_by(|a, b| key(b).cmp(&key(a)).then(a.site.cmp(&b.site)));
    sites
}

#[derive(Default)]
struct Inner {
    sites: HashMap<Site, SiteStats>,
    /// Live bytes per site at each epoch mark, oldest first (bounded).
    history: HashMap<Site, Vec<(u64, i64)>>,
    epoch: u64,
}

#[derive(Default)]
pub struct Sites {
    inner: Mutex<Inner>,
}

/// The process-wide site table.
pub static SITES: LazyLock<Sites> = LazyLock::new(Sites::default);

/// Epochs of history kept per site.
const HISTORY: usize = 64;

fn name(site: Site) -> String {
    format!("{}:{}", site.file(), site.line())
}

impl Sites {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn record_alloc(&self, site: Site, bytes: usize) {
        let mut g = self.lock();
        let s = g.sites.entry(site).or_default();
        s.live_bytes += bytes as i64;
        s.live_count += 1;
        s.total_bytes += bytes as u64;
        s.total_count += 1;
    }

    pub fn record_free(&self, site: Site, bytes: usize) {
        let mut g = self.lock();
        let s = g.sites.entry(site).or_default();
        s.live_bytes -= bytes as i64;
        s.live_count -= 1;
    }

    /// A block at `site` changed size from `old` to `new` bytes.
    pub fn record_resize(&self, site: Site, old: usize, new: usize) {
        let mut g = self.lock();
        let s = g.sites.entry(site).or_default();
        s.live_bytes += new as i64 - old as i64;
        if new > old {
            s.total_bytes += (new - old) as u64;
        }
    }

    pub fn stats(&self, site: Site) -> SiteStats {
        self.lock().sites.get(site).copied().unwrap_or_default()
    }

    fn all(&self, keep: impl Fn(&SiteStats) -> bool) -> Vec<Hotspot> {
        self.lock()
            .sites
            .iter()
            .filter(|(_, st)| keep(st))
            .map(|(s, st)| Hotspot {
                site: name(s),
                stats: *st,
            })
            .collect()
    }

    /// The top `n` sites by total bytes and by total count.
    pub fn hotspots(&self, n: usize) -> (Vec<Hotspot>, Vec<Hotspot>) {
        let all = self.all(|_| true);
        let mut by_bytes = rank(all.clone(), SortBy::Bytes);
        let mut by_count = rank(all, SortBy::Count);
        by_bytes.truncate(n);
        by_count.truncate(n);
        (by_bytes, by_count)
    }

    /// Sites with allocations still live (the report at reset or shutdown).
    pub fn outstanding(&self) -> Vec<Hotspot> {
        rank(self.all(|st| st.live_count > 0), SortBy::Live)
    }

    /// Marks an epoch; returns the sites whose live bytes grew in each of
    /// the last `window` epochs (a one-off allocation grows once and stops;
    /// a leak keeps growing).
    pub fn mark_epoch(&self, window: usize) -> Vec<LeakWarning> {
        let mut g = self.lock();
        g.epoch += 1;
        let epoch = g.epoch;
        let now: Vec<(Site, i64)> = g.sites.iter().map(|(s, st)| (*s, st.live_bytes)).collect();
        let mut warnings = Vec::new();
        for (site, live) in now {
            let h = g.history.entry(site).or_default();
            h.push((epoch, live));
            if h.len() > HISTORY {
                h.remove(0);
            }
            if window == 0 || h.len() <= window {
                continue;
            }
            let tail = &h[h.len() - window - 1..];
            if tail.windows(2).all(|w| w[1].1 > w[0].1) {
                // The streak may be longer than the window: find its start.
                let mut start = h.len() - window - 1;
                while start > 0 && h[start].1 > h[start - 1].1 {
                    start -= 1;
                }
                let (e0, b0) = h[start];
                warnings.push(LeakWarning {
                    site: name(site),
                    live_bytes: live,
                    bytes_per_epoch: (live - b0) as f64 / (epoch - e0).max(1) as f64,
                    since_epoch: e0,
                });
            }
        }
        warnings.sort_by(|a, b| a.site.cmp(&b.site));
        warnings
    }

    /// Live bytes per epoch mark of the site named `site` ("file:line").
    pub fn history_of(&self, site: &str) -> Vec<(u64, i64)> {
        let g = self.lock();
        g.history
            .iter()
            .find(|(s, _)| name(s) == site)
            .map(|(_, h)| h.clone())
            .unwrap_or_default()
    }

    /// Live bytes of every site now ("file:line" → bytes).
    pub fn live_by_site(&self) -> HashMap<String, i64> {
        self.lock()
            .sites
            .iter()
            .map(|(s, st)| (name(s), st.live_bytes))
            .collect()
    }

    pub fn epoch(&self) -> u64 {
        self.lock().epoch
    }
}
