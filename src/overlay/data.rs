//! The overlay's data shaping, kept apart from drawing so it can be tested:
//! bounded histories, hotspot ranking, the leak badge, the bottleneck pick,
//! the "mark epoch" comparison, the job caches' line and the timeline's
//! bars.

use crate::memory::{CacheStats, Component, LeakWarning};
use crate::workers::Capability;
use std::collections::{HashMap, VecDeque};

/// A time series that forgets samples older than `span_s`.
#[derive(Debug, Default, Clone)]
pub struct History<T> {
    pub span_s: f64,
    pub samples: VecDeque<(f64, T)>,
}

impl<T> History<T> {
    pub fn new(span_s: f64) -> Self {
        Self {
            span_s,
            samples: VecDeque::new(),
        }
    }

    /// Adds a sample at `t` seconds; drops those older than `t - span_s`.
    pub fn push(&mut self, t: f64, v: T) {
        self.samples.push_back((t, v));
        while self
            .samples
            .front()
            .is_some_and(|(t0, _)| *t0 < t - self.span_s)
        {
            self.samples.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// Stacked series: for each component (in `Component::ALL` order) the
/// points `(t, sum of this and every earlier component)`, in MiB.
pub fn stacked(h: &History<[i64; Component::COUNT]>) -> Vec<Vec<[f64; 2]>> {
    (0..Component::COUNT)
        .map(|c| {
            h.samples
                .iter()
                .map(|(t, v)| {
                    let sum: i64 = v[..=c].iter().map(|&b| b.max(0)).sum();
                    [*t, sum as f64 / 1048576.0]
                })
                .collect()
        })
        .collect()
}

/// At most `max` points of `points` for a plot: consecutive points are
/// grouped into buckets and each bucket keeps its highest point (at the
/// bucket's last x), so a one-frame spike still shows. A plot's cost grows
/// with its points; a 300-pixel-wide plot gains nothing from more than
/// about one point per two pixels.
pub fn decimate(points: &[[f64; 2]], max: usize) -> Vec<[f64; 2]> {
    if points.len() <= max || max == 0 {
        return points.to_vec();
    }
    let per = points.len().div_ceil(max);
    points
        .chunks(per)
        .map(|bucket| {
            let top = bucket
                .iter()
                .map(|p| p[1])
                .fold(f64::NEG_INFINITY, f64::max);
            [bucket[bucket.len() - 1][0], top]
        })
        .collect()
}

pub use crate::memory::sites::{SortBy, rank};

/// The text on the overlay button while a leak is suspected.
pub fn leak_badge(leaks: &[LeakWarning]) -> Option<String> {
    match leaks.len() {
        0 => None,
        1 => Some("1 leak?".to_string()),
        n => Some(format!("{n} leaks?")),
    }
}

/// The slowest of the frame's stages and one plain sentence about it.
/// `stages` are (name, ms); `phases` are the physics phases (name, ms).
pub fn bottleneck(stages: &[(&str, f64)], phases: &[(&str, f64)]) -> Option<(usize, String)> {
    let total: f64 = stages.iter().map(|s| s.1).sum();
    let (i, &(name, ms)) = stages
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.1.total_cmp(&b.1.1))?;
    if total <= 0.0 {
        return None;
    }
    let share = 100.0 * ms / total;
    let mut hint = format!("{name} takes {share:.0}% of the frame's systems ({ms:.1} ms)");
    if name == "physics" {
        let sum: f64 = phases.iter().map(|p| p.1).sum();
        if let Some(&(p, pms)) = phases.iter().max_by(|a, b| a.1.total_cmp(&b.1))
            && sum > 0.0
        {
            hint.push_str(&format!(
                "; within it {p} is {:.0}% — fewer particles or substeps help most",
                100.0 * pms / sum
            ));
        }
    }
    Some((i, hint))
}

/// Sites whose live bytes grew since a mark, largest growth first.
pub fn since_mark(mark: &HashMap<String, i64>, now: &HashMap<String, i64>) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = now
        .iter()
        .map(|(s, &b)| (s.clone(), b - mark.get(s).copied().unwrap_or(0)))
        .filter(|(_, d)| *d != 0)
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// Whether a component's live bytes exceed its budget (a budget of 0 means
/// none was set).
pub fn over_budget(live: i64, budget: u64) -> bool {
    budget > 0 && live > 0 && live as u64 > budget
}

/// Workers listed one by one in the job caches' line; past this many the
/// line sums them up (with 16 workers the list took seven lines).
pub const CACHES_LISTED: usize = 4;

/// The job caches' line of the Memory window: each worker's hit rate and
/// pages, or for many workers the range of hit rates over those in use.
pub fn job_cache_line(caches: &[CacheStats]) -> String {
    if caches.len() <= CACHES_LISTED {
        let rates: Vec<String> = caches
            .iter()
            .enumerate()
            .map(|(w, c)| format!("#{w} {:.1}% ({} pages)", c.hit_rate() * 100.0, c.pages))
            .collect();
        return format!("job caches (slab, per worker): {}", rates.join(" · "));
    }
    let used: Vec<(usize, &CacheStats)> = caches
        .iter()
        .enumerate()
        .filter(|(_, c)| c.hits + c.misses > 0)
        .collect();
    let pages: i64 = caches.iter().map(|c| c.pages).sum();
    let lowest = used
        .iter()
        .min_by(|a, b| a.1.hit_rate().total_cmp(&b.1.hit_rate()));
    let highest = used.iter().map(|(_, c)| c.hit_rate()).fold(0.0, f64::max);
    match lowest {
        Some((w, c)) => format!(
            "job caches (slab): {} of {} workers in use, hit rate {:.1}% (#{w}) to {:.1}%, {pages} pages",
            used.len(),
            caches.len(),
            c.hit_rate() * 100.0,
            highest * 100.0,
        ),
        None => format!(
            "job caches (slab): none of {} workers in use yet",
            caches.len()
        ),
    }
}

/// A bar of the worker timeline: worker, kind of work, left and right
/// edge in pixels from the timeline's left.
pub type TimelineBar = (usize, Capability, f32, f32);

/// The worker timeline's bars for task spans `(worker, capability, start
/// ns, end ns)` drawn over `width` pixels from `since` to `now`: every
/// span at least a pixel wide, and a worker's consecutive spans of the
/// same kind of work that overlap or lie less than a pixel apart drawn as
/// one bar. A 200k step's hundreds of chunk tasks are mostly a pixel or
/// less wide; drawn one by one they were a fifth of the overlay's
/// triangles for the same picture.
pub fn timeline_bars(
    spans: &[(usize, Capability, u64, u64)],
    since: u64,
    now: u64,
    width: f32,
) -> Vec<TimelineBar> {
    let per_ns = width / now.saturating_sub(since).max(1) as f32;
    let mut bars: Vec<TimelineBar> = spans
        .iter()
        .map(|&(worker, capability, start, end)| {
            let x0 = start.saturating_sub(since) as f32 * per_ns;
            let x1 = end.saturating_sub(since) as f32 * per_ns;
            (worker, capability, x0, x1.max(x0 + 1.0))
        })
        .collect();
    bars.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.total_cmp(&b.2)));
    let mut merged: Vec<TimelineBar> = Vec::with_capacity(bars.len());
    for bar in bars {
        match merged.last_mut() {
            Some(last) if last.0 == bar.0 && last.1 == bar.1 && bar.2 - last.3 < 1.0 => {
                last.3 = last.3.max(bar.3);
            }
            _ => merged.push(bar),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    #[test]
    fn timeline_spans_closer_than_a_pixel_are_one_bar() {
        use crate::workers::Capability::{Physics, Rendering};
        // 1,000 ns over 100 px: 10 ns a pixel. Newest first, as the pool
        // lists them, both workers interleaved.
        let spans = [
            (1, Physics, 500, 520),
            (0, Physics, 405, 600),
            (0, Physics, 300, 398),
            (0, Physics, 200, 290),
            (0, Rendering, 150, 190),
            (0, Physics, 100, 140),
            (1, Physics, 100, 101),
        ];
        let bars = super::timeline_bars(&spans, 0, 1000, 100.0);
        assert_eq!(
            bars,
            vec![
                // 10..14 px, then a render span: not merged across it.
                (0, Physics, 10.0, 14.0),
                (0, Rendering, 15.0, 19.0),
                // 20..29, 30..39.8, 40.5..60: gaps of 1 px and 0.7 px. The
                // first stays apart, the second joins.
                (0, Physics, 20.0, 29.0),
                (0, Physics, 30.0, 60.0),
                // A span under a pixel is drawn one pixel wide.
                (1, Physics, 10.0, 11.0),
                (1, Physics, 50.0, 52.0),
            ]
        );
        // Spans begun before the window start at its left edge.
        let early = super::timeline_bars(&[(0, Physics, 0, 300)], 100, 1100, 100.0);
        assert_eq!(early, vec![(0, Physics, 0.0, 20.0)]);
    }

    #[test]
    fn decimation_keeps_spikes_and_bounds_the_point_count() {
        let mut points: Vec<[f64; 2]> = (0..300).map(|i| [i as f64, 10.0]).collect();
        points[137][1] = 95.0;
        let d = super::decimate(&points, 150);
        assert!(d.len() <= 150, "{} points", d.len());
        assert!(d.iter().any(|p| p[1] == 95.0), "the spike is gone");
        assert_eq!(d.last().unwrap()[0], 299.0, "the newest sample stays");
        assert!(d.windows(2).all(|w| w[0][0] < w[1][0]), "x order kept");
        // Few points pass through untouched.
        assert_eq!(super::decimate(&points[..10], 150), points[..10].to_vec());
    }

    use super::*;
    use crate::memory::Hotspot;
    use crate::memory::sites::SiteStats;

    fn site(name: &str, total: u64, count: u64, live: i64) -> Hotspot {
        Hotspot {
            site: name.into(),
            stats: SiteStats {
                live_bytes: live,
                live_count: 1,
                total_bytes: total,
                total_count: count,
            },
        }
    }

    #[test]
    fn history_forgets_what_is_older_than_its_span() {
        let mut h = History::new(60.0);
        for i in 0..1000 {
            h.push(i as f64 * 0.1, i);
        }
        // The last sample is at 99.9 s; everything kept is within 60 s of it.
        let first = h.samples.front().unwrap().0;
        assert!((first - 39.9).abs() < 1e-9, "{first}");
        assert!(h.samples.iter().all(|(t, _)| *t >= 39.9 - 1e-9));
        assert_eq!(h.len(), 601);
    }

    #[test]
    fn stacked_series_add_up_in_component_order() {
        let mut h = History::new(10.0);
        let mut v = [0i64; Component::COUNT];
        v[0] = 1 << 20;
        v[1] = 2 << 20;
        v[5] = -5; // a component below zero counts as none
        h.push(1.0, v);
        let s = stacked(&h);
        assert_eq!(s.len(), Component::COUNT);
        assert_eq!(s[0][0], [1.0, 1.0]);
        assert_eq!(s[1][0], [1.0, 3.0]);
        assert_eq!(s[Component::COUNT - 1][0], [1.0, 3.0]);
    }

    #[test]
    fn hotspots_rank_by_the_chosen_column() {
        let sites = vec![
            site("a", 100, 1, 5),
            site("b", 10, 50, 90),
            site("c", 50, 5, 0),
        ];
        let names = |v: Vec<Hotspot>| v.into_iter().map(|h| h.site).collect::<Vec<_>>();
        assert_eq!(names(rank(sites.clone(), SortBy::Bytes)), ["a", "c", "b"]);
        assert_eq!(names(rank(sites.clone(), SortBy::Count)), ["b", "c", "a"]);
        assert_eq!(names(rank(sites, SortBy::Live)), ["b", "a", "c"]);
    }

    #[test]
    fn the_badge_shows_only_while_a_leak_is_suspected() {
        assert_eq!(leak_badge(&[]), None);
        let w = LeakWarning {
            site: "x".into(),
            live_bytes: 1,
            bytes_per_epoch: 1.0,
            since_epoch: 1,
        };
        assert_eq!(
            leak_badge(std::slice::from_ref(&w)).as_deref(),
            Some("1 leak?")
        );
        assert_eq!(leak_badge(&[w.clone(), w]).as_deref(), Some("2 leaks?"));
    }

    #[test]
    fn the_bottleneck_is_the_slowest_stage_with_a_hint() {
        let stages = [("management", 1.0), ("physics", 12.0), ("rendering", 3.0)];
        let phases = [("integrate", 1.0), ("grid", 2.0), ("contacts", 9.0)];
        let (i, hint) = bottleneck(&stages, &phases).unwrap();
        assert_eq!(i, 1);
        assert!(hint.starts_with("physics takes 75%"), "{hint}");
        assert!(hint.contains("contacts is 75%"), "{hint}");
        let (i, hint) = bottleneck(&[("management", 5.0), ("physics", 1.0)], &phases).unwrap();
        assert_eq!(i, 0);
        assert!(!hint.contains("within"));
        assert!(bottleneck(&[], &[]).is_none());
    }

    #[test]
    fn a_mark_shows_what_grew_since() {
        let mark = HashMap::from([("a".to_string(), 100), ("b".to_string(), 50)]);
        let now = HashMap::from([
            ("a".to_string(), 100),
            ("b".to_string(), 80),
            ("c".to_string(), 10),
        ]);
        assert_eq!(
            since_mark(&mark, &now),
            vec![("b".to_string(), 30), ("c".to_string(), 10)]
        );
    }

    #[test]
    fn the_job_cache_line_lists_few_workers_and_sums_up_many() {
        let cache = |hits: u64, misses: u64, pages: i64| CacheStats {
            hits,
            misses,
            pages,
            ..Default::default()
        };
        let few = job_cache_line(&[cache(99, 1, 2), cache(0, 0, 0)]);
        assert_eq!(
            few,
            "job caches (slab, per worker): #0 99.0% (2 pages) · #1 0.0% (0 pages)"
        );
        let mut many: Vec<CacheStats> = (0..16).map(|_| cache(995, 5, 2)).collect();
        many[7] = cache(90, 10, 3);
        many.push(cache(0, 0, 0));
        many.push(cache(0, 0, 0));
        let line = job_cache_line(&many);
        assert_eq!(
            line,
            "job caches (slab): 16 of 18 workers in use, hit rate 90.0% (#7) to 99.5%, 33 pages"
        );
        let idle = job_cache_line(&[cache(0, 0, 0); 6]);
        assert_eq!(idle, "job caches (slab): none of 6 workers in use yet");
    }

    #[test]
    fn a_component_is_over_budget_only_past_a_set_budget() {
        assert!(over_budget(2 << 20, 1 << 20));
        assert!(!over_budget(1 << 20, 1 << 20));
        assert!(!over_budget(5 << 20, 0));
        assert!(!over_budget(-1, 1 << 20));
    }
}
