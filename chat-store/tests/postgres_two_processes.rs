//! R2 / E2: two store instances in separate processes race on the same streams of one database.
//! Exactly one wins each expected version, no event is lost or doubled, and both processes read
//! the same log.
//!
//! The test binary is its own helper: the parent re-runs this very test (`current_exe()`) twice
//! with [`ROLE_VAR`] set, and a run that finds the variable plays a racer instead. Parent and
//! racers talk over stdin/stdout, one `@@`-prefixed line per fact, so the parent can start both
//! races at the same moment and ask for the read-back only once both are done.

use chat_store::conformance::test_event;
use chat_store::{
    EventStore, ExpectedVersion, NewEvent, POSTGRES_TEST_URL_VAR, PostgresConfig, PostgresStore,
    PostgresTestDatabase, StreamAppend, StreamId,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// Set in a racer process: its name (`a` or `b`).
const ROLE_VAR: &str = "CHAT_PG_RACE_ROLE";
/// Set in a racer process: the schema both racers share.
const SCHEMA_VAR: &str = "CHAT_PG_RACE_SCHEMA";
/// This test's name, for re-running it.
const TEST_NAME: &str = "r2_two_processes_race_with_one_winner_per_expected_version";
/// Appends each racer attempts.
const ROUNDS: u64 = 60;
/// Streams the racers fight over.
const STREAMS: u64 = 3;
/// Marks the lines of the racers' protocol among the test harness's own output.
const MARK: &str = "@@ ";

fn stream(n: u64) -> StreamId {
    StreamId::new(format!("race-{n}")).expect("valid stream id")
}

#[test]
fn r2_two_processes_race_with_one_winner_per_expected_version() {
    if let Ok(role) = std::env::var(ROLE_VAR) {
        racer(&role);
        return;
    }
    let Some(db) = PostgresTestDatabase::from_env() else {
        return;
    };
    let schema = db.fresh_config().schema_name().to_owned();
    let mut racers: Vec<Racer> = ["a", "b"]
        .into_iter()
        .map(|role| Racer::spawn(role, &schema))
        .collect();
    // Both processes open the store (and race to migrate the fresh schema) before either races.
    for racer in &mut racers {
        racer.expect("READY");
    }
    for racer in &mut racers {
        racer.say("GO");
    }
    let mut outcomes = Vec::new();
    for racer in &mut racers {
        outcomes.extend(racer.collect_until("RACED"));
    }
    for racer in &mut racers {
        racer.say("READ");
    }
    let logs: Vec<Vec<String>> = racers
        .iter_mut()
        .map(|racer| racer.collect_until("DONE"))
        .collect();
    for racer in racers {
        racer.finish();
    }

    // Read-all is identical from both processes, and from a third instance here.
    assert_eq!(logs[0], logs[1], "both processes read the same log");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let own_log = runtime.block_on(async {
        let config = PostgresConfig::new(db.url()).schema(schema.clone());
        let store = PostgresStore::open(config).await.expect("open");
        read_log(&store).await
    });
    assert_eq!(own_log, logs[0], "the parent reads the same log too");

    // The log: positions 1..=n, each event once.
    let mut logged_ids = BTreeSet::new();
    let mut logged_versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (index, line) in own_log.iter().enumerate() {
        let [position, id, stream, version] = fields(line, "LOG");
        assert_eq!(
            position.parse::<usize>().expect("position"),
            index + 1,
            "gap-free"
        );
        assert!(logged_ids.insert(id.to_owned()), "event {id} stored twice");
        logged_versions
            .entry(stream.to_owned())
            .or_default()
            .push(version.parse().expect("version"));
    }
    for (stream, versions) in &logged_versions {
        assert_eq!(
            versions,
            &(1..=versions.len() as u64).collect::<Vec<_>>(),
            "stream {stream} has versions 1, 2, 3 … in log order"
        );
    }

    // One winner per (stream, expected version); winners' events stored, losers' not.
    let mut winners: BTreeMap<(String, u64), String> = BTreeMap::new();
    let mut won_ids = BTreeSet::new();
    let mut conflicts = 0;
    for line in &outcomes {
        let [verdict, role, claims, ids] = fields(line, "OUT");
        let ids: Vec<&str> = ids.split(',').collect();
        match verdict {
            "WIN" => {
                for claim in claims.split(',') {
                    let (stream, expected) = claim.split_once('@').expect("stream@version");
                    let key = (stream.to_owned(), expected.parse().expect("version"));
                    if let Some(other) = winners.insert(key.clone(), role.to_owned()) {
                        panic!("{key:?} won by both {other} and {role}");
                    }
                }
                won_ids.extend(ids.iter().map(|id| id.to_string()));
            }
            "LOSE" => {
                conflicts += 1;
                for id in ids {
                    assert!(
                        !logged_ids.contains(id),
                        "a refused append left {id} behind"
                    );
                }
            }
            other => panic!("unknown verdict {other}"),
        }
    }
    assert_eq!(
        won_ids, logged_ids,
        "exactly the acknowledged events are stored"
    );
    assert!(
        conflicts > 0,
        "the processes really raced (no conflict happened)"
    );
    assert!(winners.values().any(|r| r == "a") && winners.values().any(|r| r == "b"));
    eprintln!(
        "{} wins, {conflicts} conflicts, {} events",
        winners.len(),
        logged_ids.len()
    );

    runtime
        .block_on(db.drop_schema(&schema))
        .expect("drop schema");
}

/// Splits a protocol line `@@ KIND f1 f2 …` into its fields.
fn fields<'a, const N: usize>(line: &'a str, kind: &str) -> [&'a str; N] {
    let mut parts = line.split(' ');
    assert_eq!(parts.next(), Some(kind), "line {line:?}");
    let fields: Vec<&str> = parts.collect();
    fields
        .try_into()
        .unwrap_or_else(|_| panic!("{N} fields expected in {line:?}"))
}

/// One racer process, seen from the parent.
struct Racer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Racer {
    fn spawn(role: &str, schema: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("test binary path"))
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE_VAR, role)
            .env(SCHEMA_VAR, schema)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn a racer process");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn say(&mut self, word: &str) {
        writeln!(self.stdin, "{word}").expect("write to racer");
        self.stdin.flush().expect("flush");
    }

    /// The racer's protocol lines (without the mark) up to `end`, which is not included.
    fn collect_until(&mut self, end: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = self.stdout.read_line(&mut line).expect("read from racer");
            assert!(read > 0, "racer exited before saying {end}");
            let Some((_, said)) = line.trim_end().split_once(MARK) else {
                continue;
            };
            if said == end {
                return lines;
            }
            lines.push(said.to_owned());
        }
    }

    fn expect(&mut self, word: &str) {
        let before = self.collect_until(word);
        assert!(
            before.is_empty(),
            "unexpected lines before {word}: {before:?}"
        );
    }

    fn finish(mut self) {
        drop(self.stdin);
        let status = self.child.wait().expect("wait for racer");
        assert!(status.success(), "racer failed: {status}");
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n{MARK}{line}").expect("stdout");
    out.flush().expect("flush");
}

fn hear(expected: &str) {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("stdin");
    assert_eq!(line.trim(), expected, "racer protocol");
}

/// The racer's side: open, wait for GO, race, report, wait for READ, dump the log.
fn racer(role: &str) {
    let url = std::env::var(POSTGRES_TEST_URL_VAR).expect("the parent passes the URL on");
    let schema = std::env::var(SCHEMA_VAR).expect("the parent names the schema");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = PostgresStore::open(PostgresConfig::new(url).schema(schema))
            .await
            .expect("racer opens the store");
        say("READY");
        hear("GO");
        // Ids are unique per racer and round: racer a uses 1.., racer b 1_000_000...
        let base = if role == "a" { 1 } else { 1_000_000 };
        for round in 0..ROUNDS {
            let n = base + round * 4;
            let first = stream(round % STREAMS);
            // Every fifth round appends to two streams at once, named in opposite orders by the
            // two racers: the store's stable lock order must keep them from deadlocking.
            let mut targets = vec![first];
            if round % 5 == 4 {
                targets.push(stream((round + 1) % STREAMS));
                if role == "b" {
                    targets.reverse();
                }
            }
            let mut request = Vec::new();
            for (offset, target) in targets.iter().enumerate() {
                let version = store.stream_version(target).await.expect("version");
                let events: Vec<NewEvent> = (0..2)
                    .map(|k| test_event(n + offset as u64 * 2 + k))
                    .collect();
                request.push(StreamAppend {
                    stream_id: target.clone(),
                    expected: ExpectedVersion::Exact(version),
                    events,
                });
            }
            let claims: Vec<String> = request
                .iter()
                .map(|a| match a.expected {
                    ExpectedVersion::Exact(v) => format!("{}@{v}", a.stream_id),
                    _ => unreachable!("racers only use Exact"),
                })
                .collect();
            let ids: Vec<String> = request
                .iter()
                .flat_map(|a| a.events.iter().map(|e| e.event_id.to_string()))
                .collect();
            let verdict = match store.append_multi(request).await.expect("no backend error") {
                Ok(_) => "WIN",
                Err(_) => "LOSE",
            };
            say(&format!(
                "OUT {verdict} {role} {} {}",
                claims.join(","),
                ids.join(",")
            ));
        }
        say("RACED");
        hear("READ");
        for line in read_log(&store).await {
            say(&line);
        }
        say("DONE");
    });
}

/// The whole log as protocol lines `LOG position event_id stream version`.
async fn read_log(store: &PostgresStore) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let page = store
            .read_all(lines.len() as u64 + 1, 500)
            .await
            .expect("read_all");
        if page.is_empty() {
            return lines;
        }
        lines.extend(page.iter().map(|e| {
            format!(
                "LOG {} {} {} {}",
                e.global_position, e.event_id, e.stream_id, e.stream_version
            )
        }));
    }
}
