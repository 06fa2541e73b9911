//! Printing what a benchmark measured, so `benches/run.sh` output can go into
//! `docs/PERFORMANCE.md` as it is: the machine, then one table per benchmark with each figure's
//! ratio to its same-process baseline.
//!
//! Why not criterion for the store benchmarks: a replay of 1,000,000 events or a 64-writer append
//! run takes seconds per sample, so a handful of timed runs (best and median) says as much as
//! criterion's hundred samples in a fraction of the time on a shared 2-core machine.

use std::time::{Duration, Instant};

/// Where the PostgreSQL benchmarks connect: `CHAT_TEST_POSTGRES_URL`, the variable the store's
/// tests read, with the CI default.
pub fn postgres_url() -> String {
    std::env::var("CHAT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// One line naming the machine and the moment: CPU model, cores, memory, load, UTC time.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default();
    let now = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {memory_gib:.0} GiB, load {load}, {now}")
}

/// Runs `f` `runs` times and returns every duration, sorted (best first).
pub fn time(runs: usize, mut f: impl FnMut()) -> Vec<Duration> {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times
}

/// `count` items in `elapsed`, per second.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// One measured line: a rate, and optionally the rate of its baseline.
#[derive(Clone, Debug)]
pub struct Row {
    /// What was measured.
    pub name: String,
    /// Items per second (events, or what the table's unit says).
    pub rate: f64,
    /// The baseline's rate, when this row has one.
    pub baseline: Option<f64>,
    /// Anything worth saying next to the figure (spread, flushes …).
    pub note: String,
}

/// A printed table of rows, in Markdown so it can be pasted into the docs.
#[derive(Debug)]
pub struct Table {
    title: String,
    unit: String,
    rows: Vec<Row>,
}

impl Table {
    /// An empty table; `unit` names what the rates count (e.g. "events/s").
    pub fn new(title: impl Into<String>, unit: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            unit: unit.into(),
            rows: Vec::new(),
        }
    }

    /// Adds a row and prints it at once (a long run shows progress).
    pub fn push(&mut self, row: Row) {
        eprintln!("  {}: {:.0} {} {}", row.name, row.rate, self.unit, row.note);
        self.rows.push(row);
    }

    /// The table as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "\n### {}\n\n| benchmark | {} | baseline | ratio | notes |\n| --- | ---: | ---: | ---: | --- |\n",
            self.title, self.unit
        );
        for row in &self.rows {
            let (baseline, ratio) = match row.baseline {
                Some(b) => (thousands(b), format!("{:.0} %", 100.0 * row.rate / b)),
                None => ("—".to_owned(), "—".to_owned()),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                row.name,
                thousands(row.rate),
                baseline,
                ratio,
                row.note
            ));
        }
        out
    }
}

/// `1234567.8` as `1,234,568`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_gives_each_row_its_ratio_to_the_baseline() {
        let mut table = Table::new("t", "events/s");
        table.push(Row {
            name: "store".into(),
            rate: 1_500_000.0,
            baseline: Some(2_000_000.0),
            note: String::new(),
        });
        let text = table.markdown();
        assert!(
            text.contains("| store | 1,500,000 | 2,000,000 | 75 % |"),
            "{text}"
        );
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
    }
}
