//! The project's binaries as child processes, for tests and benches alike:
//! a worker or publisher (`sinkfleet run|publish`), an operator command,
//! and the mock-cluster host (`sinkfleet-mock-cluster`), plus what a test
//! reads from a process (`/proc` figures, its metrics endpoint).
//!
//! Binaries are found beside the running test or bench executable, where
//! cargo builds them for the package's integration tests and benches
//! (`target/<profile>/`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>/`: the directory of the running test executable's
/// `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let mut dir = exe.parent().expect("the executable's directory").to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// The path of binary `name` of this workspace, built by cargo for the
/// running test or bench.
pub fn binary(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.exists(),
        "{} not built: run through cargo test/bench of the sinkfleet package",
        path.display()
    );
    path
}

/// Where a process's config and log go: `target/tmp/`, beside the build,
/// so a failed test's worker log can be read after it.
pub fn scratch_dir() -> PathBuf {
    let dir = profile_dir()
        .parent()
        .map_or_else(std::env::temp_dir, |target| target.join("tmp"));
    std::fs::create_dir_all(&dir).expect("creating target/tmp");
    dir
}

/// Sends `signal` (`TERM`, `KILL`, `STOP`, `CONT`) through `kill(1)`,
/// which keeps the tests free of unsafe code.
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// User plus system CPU seconds of `process` (a pid or `self`), from
/// `/proc/<process>/stat`; 0 if unreadable.
pub fn cpu_secs(process: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{process}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are
    // the 14th and 15th fields overall, in clock ticks (100 per second).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A kB field of `/proc/<process>/status` (`process`: a pid or `self`),
/// e.g. `VmHWM:` (peak RSS) or `VmRSS:`; 0 if unreadable.
pub fn status_kib(process: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{process}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `GET path` from a server on 127.0.0.1:`port`: (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Runs `sinkfleet <args> --config <config>` to its end: (exit code,
/// stdout then stderr).
pub fn cli(args: &[&str], config: &Path) -> (i32, String) {
    let out = Command::new(binary("sinkfleet"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("running sinkfleet");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A long-running `sinkfleet` process (`run`, `publish`); killed on drop.
pub struct Worker {
    child: Child,
    config: PathBuf,
    /// Its stdout and stderr.
    pub log: PathBuf,
    /// Where it serves metrics (as its config says).
    pub metrics_port: u16,
}

impl Worker {
    /// `sinkfleet run` with `config`, files named after `name`.
    pub fn spawn(name: &str, config: &str, metrics_port: u16) -> Worker {
        Worker::start(name, "run", config, metrics_port)
    }

    /// `sinkfleet <subcommand> --config <config>`, logging at `info`
    /// (`SINKFLEET_TEST_WORKER_LOG` overrides `RUST_LOG`).
    pub fn start(name: &str, subcommand: &str, config: &str, metrics_port: u16) -> Worker {
        let log = std::env::var("SINKFLEET_TEST_WORKER_LOG")
            .unwrap_or_else(|_| "info,librdkafka=warn,rdkafka=warn".into());
        Worker::start_with(
            name,
            subcommand,
            config,
            metrics_port,
            &[("RUST_LOG", &log)],
        )
    }

    /// [`Worker::start`] with environment `env` added (settings such as
    /// `SINKFLEET__WORKER__WRITERS`, or `RUST_LOG`).
    pub fn start_with(
        name: &str,
        subcommand: &str,
        config: &str,
        metrics_port: u16,
        env: &[(&str, &str)],
    ) -> Worker {
        let dir = scratch_dir();
        let config_path = dir.join(format!("{name}.yaml"));
        std::fs::write(&config_path, config).expect("writing config");
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(binary("sinkfleet"))
            .args([subcommand, "--config"])
            .arg(&config_path)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("spawning sinkfleet");
        Worker {
            child,
            config: config_path,
            log,
            metrics_port,
        }
    }

    /// The process id, as `/proc` and `kill` want it.
    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker did not exit after SIGTERM; log: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, wait, and remove its config and log (a bench's worker).
    pub fn stop(mut self) {
        signal(self.child.id(), "TERM");
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
        let _ = std::fs::remove_file(&self.log);
    }

    /// SIGKILL: no drain, no commit, no leaving the group.
    pub fn kill9(&mut self) {
        signal(self.child.id(), "KILL");
        let _ = self.child.wait();
    }

    /// SIGSTOP: the process freezes (no polls, no heartbeats) with its
    /// connections and whatever it had in flight.
    pub fn freeze(&self) {
        signal(self.child.id(), "STOP");
    }

    /// SIGCONT after [`Worker::freeze`].
    pub fn thaw(&self) {
        signal(self.child.id(), "CONT");
    }

    /// Its output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET a path from the worker's metrics endpoint: (status, body).
    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.metrics_port, path)
    }

    /// Sum of a metric's samples whose line starts with `prefix`.
    pub fn metric(&self, prefix: &str) -> f64 {
        let Some((_, body)) = self.http_get("/metrics") else {
            return 0.0;
        };
        body.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// A per-partition gauge of `topic` (`sinkfleet_consumer_lag_records`
    /// and the like): partition → value, for the partitions it has a
    /// series of.
    pub fn partition_gauge(&self, name: &str, topic: &str) -> HashMap<i32, f64> {
        let Some((_, body)) = self.http_get("/metrics") else {
            return HashMap::new();
        };
        let topic_label = format!("topic=\"{topic}\"");
        body.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&topic_label))
            .filter_map(|l| {
                let partition = l.split("partition=\"").nth(1)?.split('"').next()?;
                let value = l.rsplit(' ').next()?.parse::<f64>().ok()?;
                Some((partition.parse().ok()?, value))
            })
            .collect()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// librdkafka's mock cluster, hosted by `sinkfleet-mock-cluster` in its own
/// process: a broker that evicts SIGKILLed group members (tansu does not)
/// and refuses requests on demand. It keeps ~5 MiB per partition. Dropping
/// it ends the host.
pub struct MockCluster {
    child: Child,
    answers: BufReader<ChildStdout>,
    /// `bootstrap.servers` of the cluster.
    pub bootstrap: String,
}

impl MockCluster {
    /// Starts a cluster with `(topic, partitions)`.
    pub fn start(topics: &[(&str, i32)]) -> MockCluster {
        let mut cmd = Command::new(binary("sinkfleet-mock-cluster"));
        for (topic, partitions) in topics {
            cmd.args(["--topic", &format!("{topic}:{partitions}")]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning the mock cluster");
        let mut answers = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        answers.read_line(&mut line).expect("bootstrap line");
        let bootstrap = line
            .trim()
            .strip_prefix("bootstrap=")
            .expect("bootstrap line")
            .to_owned();
        MockCluster {
            child,
            answers,
            bootstrap,
        }
    }

    /// Makes the next `count` requests of `api` fail with `error`
    /// (`fail OffsetCommit 5 REBALANCE_IN_PROGRESS`, see the binary).
    pub fn fail(&mut self, api: &str, count: usize, error: &str) {
        self.command(&format!("fail {api} {count} {error}"));
    }

    /// Drops the failures of `api` not used yet (see [`MockCluster::fail`]).
    pub fn clear(&mut self, api: &str) {
        self.command(&format!("clear {api}"));
    }

    /// Delays every broker response by `ms` (0: no delay), as a distant or
    /// loaded cluster would.
    pub fn rtt(&mut self, ms: u64) {
        self.command(&format!("rtt {ms}"));
    }

    fn command(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        writeln!(stdin, "{line}").expect("mock cluster stdin");
        stdin.flush().expect("mock cluster stdin");
        let mut answer = String::new();
        self.answers
            .read_line(&mut answer)
            .expect("mock cluster answer");
        assert_eq!(
            answer.trim(),
            "ok",
            "mock cluster refused {line:?}: {answer}"
        );
    }
}

impl Drop for MockCluster {
    fn drop(&mut self) {
        // Closing stdin ends it.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
