//! CPU time this process's threads have used, grouped by thread name
//! without its number (`compute-0` and `compute-1` are `compute`), read
//! from /proc (empty where there is none). Deterministic work costs the
//! same CPU run after run, so two runs that differ in one feature differ in
//! CPU by what that feature cost, on whichever threads it ran.

/// (group, CPU seconds) for the threads alive now, largest first.
pub fn thread_cpu_by_group() -> Vec<(String, f64)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut groups: Vec<(String, f64)> = Vec::new();
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        let Some((name, seconds)) = parse_stat(&stat, ticks) else {
            continue;
        };
        let group = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
        let group = if group.is_empty() { name } else { group };
        match groups.iter_mut().find(|(g, _)| g == group) {
            Some((_, s)) => *s += seconds,
            None => groups.push((group.to_string(), seconds)),
        }
    }
    groups.sort_by(|a, b| b.1.total_cmp(&a.1));
    groups
}

/// A thread's name and user + system CPU seconds from its `stat` line:
/// `tid (name) state ppid …`, user and system time being the 14th and 15th
/// fields in clock ticks (the name may hold spaces and parentheses, so the
/// fields are counted from the last `)`).
fn parse_stat(stat: &str, ticks_per_s: f64) -> Option<(&str, f64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let mut fields = stat.get(close + 1..)?.split_whitespace();
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((name, (utime + stime) / ticks_per_s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};
    use std::time::{Duration, Instant};

    #[test]
    fn a_stat_line_gives_the_name_and_cpu_seconds() {
        let line = "4242 (Compute Task Po) S 1 4242 4242 0 -1 4194368 10 0 0 0 250 30 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat(line, 100.0), Some(("Compute Task Po", 2.8)));
        let odd = "7 (a) b) R 1 2 3 4 5 6 7 8 9 10 1 2 3";
        assert_eq!(parse_stat(odd, 1.0), Some(("a) b", 3.0)));
        assert_eq!(parse_stat("7 (short) R 1 2", 100.0), None);
    }

    #[test]
    fn a_busy_thread_shows_in_its_group() {
        let (spun, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        let (s, r) = (spun.clone(), release.clone());
        let burner = std::thread::Builder::new()
            .name("pfburner-3".into())
            .spawn(move || {
                let started = Instant::now();
                let mut x = 1u64;
                while started.elapsed() < Duration::from_millis(300) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
                s.wait();
                r.wait();
            })
            .unwrap();
        spun.wait();
        let groups = thread_cpu_by_group();
        release.wait();
        burner.join().unwrap();
        let burner = groups.iter().find(|(g, _)| g == "pfburner");
        let seconds = burner.map(|b| b.1).unwrap_or(0.0);
        assert!(
            seconds >= 0.2,
            "the burner thread used {seconds} s: {groups:?}"
        );
        // Largest first.
        assert!(groups.windows(2).all(|w| w[0].1 >= w[1].1), "{groups:?}");
    }
}
