//! Builds a missing engine image on demand by running `images/build.sh ENGINE VERSION AGENT`
//! (see `images/README.md`): the reconciler calls [`ImageBuilder::ensure`] when a broker's
//! image is absent, typically on its first CreateBroker.
//!
//! - The script does the caching (inputs-hash labels): an up-to-date image costs ~0.2 s, a
//!   missing one ~40–120 s (debootstrap). It needs root and the host's Debian mirror.
//! - Single flight per (engine, version) within the process: concurrent callers await the
//!   same build. The build runs in its own task, so a caller that gives up does not cancel
//!   it half-way (which would leave a rootfs behind). Across processes, the script's `flock`
//!   serialises builds of one image.
//! - The script's stderr (progress) goes to `tracing::info!` with the image name; its last
//!   stdout line is `<final tag> <image id>`. A failure carries the last stderr lines.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::future::{BoxFuture, FutureExt, Shared};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::Command;

/// Directory holding `build.sh` and the per-engine files; overrides the search.
pub const IMAGES_DIR_ENV: &str = "BERTH_IMAGES_DIR";
/// The agent binary to put into images; overrides the search.
pub const AGENT_BIN_ENV: &str = "BERTH_AGENT_BIN";
/// Image name prefix understood by `build.sh` (default `berth`).
pub const IMAGE_PREFIX_ENV: &str = "BERTH_IMAGE_PREFIX";

const SCRIPT_NAME: &str = "build.sh";
const AGENT_NAME: &str = "broker-agent";
/// A first build takes 1–2 minutes; a hung mirror must not block its callers forever.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Time the script gets to clean up (unmount, delete the rootfs) after SIGTERM.
const TERM_GRACE: Duration = Duration::from_secs(60);
/// Stderr lines kept for the error of a failed build.
const STDERR_TAIL: usize = 15;

type Key = (String, String);
/// Clone-able outcome shared by every caller waiting on one build.
type Outcome = Result<String, String>;
type Build = Shared<BoxFuture<'static, Outcome>>;

/// Runs `images/build.sh` for an engine version, at most one build per (engine, version)
/// at a time. Cheap to clone; clones share the in-flight builds.
#[derive(Clone)]
pub struct ImageBuilder {
    script: PathBuf,
    agent: PathBuf,
    prefix: Option<String>,
    timeout: Duration,
    inflight: Arc<Mutex<HashMap<Key, Build>>>,
}

impl fmt::Debug for ImageBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageBuilder")
            .field("script", &self.script)
            .field("agent", &self.agent)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ImageBuilder {
    /// A builder running `script` (`images/build.sh`) with `agent` as the agent binary.
    pub fn new(script: impl Into<PathBuf>, agent: impl Into<PathBuf>) -> Self {
        Self {
            script: script.into(),
            agent: agent.into(),
            prefix: None,
            timeout: DEFAULT_TIMEOUT,
            inflight: Arc::default(),
        }
    }

    /// Finds the script and the agent binary for this process:
    ///
    /// - script: `$BERTH_IMAGES_DIR/build.sh`; else `images/build.sh` in the repository the
    ///   running executable was built in (`target/{debug,release}[/deps]/…` → `../../images`);
    ///   else `$CARGO_MANIFEST_DIR/../images` (this source tree, as a last resort);
    /// - agent: `$BERTH_AGENT_BIN`; else `broker-agent` in the same target dir as the running
    ///   executable, the release build first, then the one next to the executable; else
    ///   `$CARGO_MANIFEST_DIR/../target/release/broker-agent`.
    ///
    /// The error says "cannot build images here: …" and what was tried.
    pub fn locate() -> anyhow::Result<Self> {
        let located = Locator::from_env().locate()?;
        Ok(Self::new(located.script, located.agent))
    }

    /// Builds images named `PREFIX/ENGINE:VERSION` (build.sh's `BERTH_IMAGE_PREFIX`) instead of
    /// the default `berth/…` (or whatever this process's environment says).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Gives up on a build after `timeout` (default 30 min): the script gets SIGTERM and
    /// cleans up.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn script(&self) -> &Path {
        &self.script
    }

    pub fn agent(&self) -> &Path {
        &self.agent
    }

    /// Builds `ENGINE:VERSION` unless it is up to date, and returns its final tag
    /// (e.g. `berth/rabbitmq:4.0`). Concurrent calls for the same engine version share one
    /// build; a later call runs the script again (a no-op of ~0.2 s when nothing changed).
    pub async fn ensure(&self, engine: &str, version: &str) -> anyhow::Result<String> {
        validate_args(engine, version)?;
        let key = (engine.to_owned(), version.to_owned());
        let build = {
            let mut inflight = lock(&self.inflight);
            match inflight.get(&key) {
                Some(build) => build.clone(),
                None => {
                    let build = self.spawn_build(key.clone());
                    inflight.insert(key, build.clone());
                    build
                }
            }
        };
        build.await.map_err(anyhow::Error::msg)
    }

    /// Starts the build in its own task (callers may be cancelled; the build is not) that
    /// drops its in-flight entry when done. The caller inserts the entry while it still holds
    /// the lock, so the task cannot remove it before it exists.
    fn spawn_build(&self, key: Key) -> Build {
        let job = Job {
            script: self.script.clone(),
            agent: self.agent.clone(),
            prefix: self.prefix.clone(),
            timeout: self.timeout,
            engine: key.0.clone(),
            version: key.1.clone(),
        };
        let inflight = Arc::clone(&self.inflight);
        let task = tokio::spawn(async move {
            let outcome = job.run().await.map_err(|e| format!("{e:#}"));
            lock(&inflight).remove(&key);
            outcome
        });
        async move {
            task.await
                .unwrap_or_else(|e| Err(format!("image build task failed: {e}")))
        }
        .boxed()
        .shared()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding it; a poisoned map is still consistent.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The same checks as build.sh, before anything is spawned.
fn validate_args(engine: &str, version: &str) -> anyhow::Result<()> {
    let engine_ok = engine.starts_with(|c: char| c.is_ascii_lowercase())
        && engine
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !engine_ok {
        bail!("bad engine name {engine:?}");
    }
    let version_ok = version.starts_with(|c: char| c.is_ascii_alphanumeric())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !version_ok {
        bail!("bad engine version {version:?}");
    }
    Ok(())
}

/// The final tag from build.sh's stdout: its last non-empty line is `<tag> <image id>`, and
/// the tag must be `…/ENGINE:VERSION`.
fn parse_build_output(stdout: &str, engine: &str, version: &str) -> anyhow::Result<String> {
    let line = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .ok_or_else(|| anyhow!("build.sh printed nothing on stdout"))?;
    let mut fields = line.split_whitespace();
    let (Some(tag), Some(id), None) = (fields.next(), fields.next(), fields.next()) else {
        bail!("unexpected last line from build.sh: {line:?}");
    };
    if !id.starts_with("sha256:") {
        bail!("unexpected image id from build.sh: {line:?}");
    }
    let suffix = format!("/{engine}:{version}");
    if !tag.ends_with(&suffix) || tag.len() == suffix.len() {
        bail!("build.sh built {tag}, expected an image named …{suffix}");
    }
    Ok(tag.to_owned())
}

/// One run of the script.
struct Job {
    script: PathBuf,
    agent: PathBuf,
    prefix: Option<String>,
    timeout: Duration,
    engine: String,
    version: String,
}

impl Job {
    async fn run(self) -> anyhow::Result<String> {
        let image = format!("{}:{}", self.engine, self.version);
        let started = Instant::now();
        tracing::info!(
            image = %image,
            script = %self.script.display(),
            agent = %self.agent.display(),
            "building the engine image if it is missing or out of date"
        );
        let mut cmd = Command::new("bash");
        cmd.arg(&self.script)
            .arg(&self.engine)
            .arg(&self.version)
            .arg(&self.agent)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that a timeout can stop debootstrap and docker too.
            .process_group(0);
        if let Some(prefix) = &self.prefix {
            cmd.env(IMAGE_PREFIX_ENV, prefix);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", self.script.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().context("build.sh stdout")?;
        let stderr = child.stderr.take().context("build.sh stderr")?;

        let mut tail = VecDeque::with_capacity(STDERR_TAIL);
        let finished = tokio::time::timeout(self.timeout, async {
            let (out, ()) =
                tokio::join!(read_all(stdout), forward_lines(stderr, &image, &mut tail));
            (out, child.wait().await)
        })
        .await;
        let (stdout, status) = match finished {
            Ok((out, status)) => (out, status.context("waiting for build.sh")?),
            Err(_) => {
                terminate(&mut child, pid).await;
                bail!(
                    "building image {image} timed out after {:?}{}",
                    self.timeout,
                    format_tail(&tail)
                );
            }
        };
        if !status.success() {
            bail!(
                "building image {image} failed ({}){}",
                describe(status),
                format_tail(&tail)
            );
        }
        let tag = parse_build_output(&stdout, &self.engine, &self.version)
            .with_context(|| format!("building image {image}"))?;
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(image = %image, tag = %tag, secs, "engine image ready");
        Ok(tag)
    }
}

async fn read_all(mut stream: impl AsyncRead + Unpin) -> String {
    let mut bytes = Vec::new();
    // A read error just truncates; the exit status and the parse catch the consequences.
    let _ = stream.read_to_end(&mut bytes).await;
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Logs each stderr line (without build.sh's `[images] ` prefix) and keeps the last few.
async fn forward_lines(stream: impl AsyncRead + Unpin, image: &str, tail: &mut VecDeque<String>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.strip_prefix("[images] ").unwrap_or(&line).to_owned();
        tracing::info!(image = %image, "{line}");
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// SIGTERM to the script's process group (its EXIT trap unmounts and deletes the rootfs),
/// then SIGKILL if it is still there after the grace period.
async fn terminate(child: &mut tokio::process::Child, pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{pid}")])
            .status()
            .await;
    }
    if tokio::time::timeout(TERM_GRACE, child.wait())
        .await
        .is_err()
    {
        let _ = child.start_kill();
    }
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit code {code}"),
        None => format!("{status}"),
    }
}

fn format_tail(tail: &VecDeque<String>) -> String {
    if tail.is_empty() {
        return String::new();
    }
    let lines: Vec<&str> = tail.iter().map(String::as_str).collect();
    format!("; last output:\n{}", lines.join("\n"))
}

// ------------------------------------------------------------------ locating the script and agent

#[derive(Debug, PartialEq)]
struct Located {
    script: PathBuf,
    agent: PathBuf,
}

/// The inputs of [`ImageBuilder::locate`], separated from the process environment for tests.
struct Locator {
    images_dir: Option<PathBuf>,
    agent: Option<PathBuf>,
    exe: Option<PathBuf>,
    manifest_dir: PathBuf,
}

impl Locator {
    fn from_env() -> Self {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            images_dir: var(IMAGES_DIR_ENV),
            agent: var(AGENT_BIN_ENV),
            exe: std::env::current_exe().ok(),
            manifest_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        }
    }

    fn locate(&self) -> anyhow::Result<Located> {
        let script = self
            .script()
            .map_err(|why| anyhow!("cannot build images here: {why}"))?;
        let agent = self
            .agent_bin()
            .map_err(|why| anyhow!("cannot build images here: {why}"))?;
        Ok(Located { script, agent })
    }

    fn script(&self) -> Result<PathBuf, String> {
        if let Some(dir) = &self.images_dir {
            let script = dir.join(SCRIPT_NAME);
            return if script.is_file() {
                Ok(script)
            } else {
                Err(format!(
                    "{IMAGES_DIR_ENV}={} has no {SCRIPT_NAME}",
                    dir.display()
                ))
            };
        }
        // target/release/berth → <repo>/images; test binaries sit one level deeper (deps/).
        let mut candidates: Vec<PathBuf> = self
            .exe
            .iter()
            .flat_map(|exe| {
                exe.parent()
                    .into_iter()
                    .flat_map(|dir| dir.ancestors().take(4))
            })
            .map(|dir| dir.join("images").join(SCRIPT_NAME))
            .collect();
        candidates.push(
            self.manifest_dir
                .join("..")
                .join("images")
                .join(SCRIPT_NAME),
        );
        first_existing(&candidates, |p| p.is_file()).ok_or_else(|| {
            format!(
                "no images/{SCRIPT_NAME} (tried {}; set {IMAGES_DIR_ENV})",
                list(&candidates)
            )
        })
    }

    fn agent_bin(&self) -> Result<PathBuf, String> {
        if let Some(agent) = &self.agent {
            return if is_executable(agent) {
                Ok(agent.clone())
            } else {
                Err(format!(
                    "{AGENT_BIN_ENV}={} is not an executable file",
                    agent.display()
                ))
            };
        }
        let mut candidates = Vec::new();
        if let Some(dir) = self.exe.as_deref().and_then(Path::parent) {
            // The profile dir (target/debug) of the executable, or of a test binary in deps/.
            let profile = match dir.file_name() {
                Some(name) if name == "deps" => dir.parent().unwrap_or(dir),
                _ => dir,
            };
            if let Some(target) = profile.parent() {
                candidates.push(target.join("release").join(AGENT_NAME));
            }
            candidates.push(profile.join(AGENT_NAME));
        }
        candidates.push(
            self.manifest_dir
                .join("..")
                .join("target")
                .join("release")
                .join(AGENT_NAME),
        );
        candidates.dedup();
        first_existing(&candidates, is_executable).ok_or_else(|| {
            format!(
                "no {AGENT_NAME} binary (tried {}; run `cargo build --release -p broker-agent` or set {AGENT_BIN_ENV})",
                list(&candidates)
            )
        })
    }
}

fn first_existing(candidates: &[PathBuf], ok: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    candidates.iter().find(|p| ok(p)).cloned()
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn list(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn touch(path: &Path, mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, "#!/bin/sh\n").unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A checkout in a temp dir: `images/build.sh` plus the given files under it.
    fn repo(files: &[(&str, u32)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("images/build.sh"), 0o755);
        for (file, mode) in files {
            touch(&dir.path().join(file), *mode);
        }
        dir
    }

    fn locator(exe: Option<PathBuf>) -> Locator {
        Locator {
            images_dir: None,
            agent: None,
            exe,
            manifest_dir: PathBuf::from("/nonexistent/control-plane"),
        }
    }

    #[test]
    fn finds_the_script_and_the_release_agent_from_a_release_executable() {
        let repo = repo(&[("target/release/broker-agent", 0o755)]);
        let root = repo.path();
        let found = locator(Some(root.join("target/release/berth")))
            .locate()
            .unwrap();
        assert_eq!(found.script, root.join("images/build.sh"));
        assert_eq!(found.agent, root.join("target/release/broker-agent"));
    }

    #[test]
    fn a_debug_executable_prefers_the_release_agent() {
        let repo = repo(&[
            ("target/release/broker-agent", 0o755),
            ("target/debug/broker-agent", 0o755),
        ]);
        let root = repo.path();
        let found = locator(Some(root.join("target/debug/berth")))
            .locate()
            .unwrap();
        assert_eq!(found.agent, root.join("target/release/broker-agent"));
        assert_eq!(found.script, root.join("images/build.sh"));
    }

    #[test]
    fn a_test_binary_in_deps_finds_the_debug_agent_when_there_is_no_release_one() {
        let repo = repo(&[
            ("target/debug/broker-agent", 0o755),
            ("target/release/broker-agent", 0o644),
        ]);
        let root = repo.path();
        let found = locator(Some(root.join("target/debug/deps/berth-0123abcd")))
            .locate()
            .unwrap();
        assert_eq!(
            found.agent,
            root.join("target/debug/broker-agent"),
            "the non-executable release file is skipped"
        );
        assert_eq!(found.script, root.join("images/build.sh"));
    }

    #[test]
    fn environment_overrides_win_and_must_be_valid() {
        let repo = repo(&[("bin/agent", 0o755), ("bin/not-exec", 0o644)]);
        let root = repo.path();
        let mut loc = locator(None);
        loc.images_dir = Some(root.join("images"));
        loc.agent = Some(root.join("bin/agent"));
        assert_eq!(
            loc.locate().unwrap(),
            Located {
                script: root.join("images/build.sh"),
                agent: root.join("bin/agent")
            }
        );

        loc.agent = Some(root.join("bin/not-exec"));
        let err = loc.locate().unwrap_err().to_string();
        assert!(
            err.starts_with("cannot build images here: BERTH_AGENT_BIN="),
            "{err}"
        );

        loc.images_dir = Some(root.join("bin"));
        let err = loc.locate().unwrap_err().to_string();
        assert!(
            err.starts_with("cannot build images here: BERTH_IMAGES_DIR="),
            "{err}"
        );
        assert!(err.contains("has no build.sh"), "{err}");
    }

    #[test]
    fn falls_back_to_the_source_tree_and_says_what_it_tried() {
        let repo = repo(&[
            ("target/release/broker-agent", 0o755),
            ("control-plane/Cargo.toml", 0o644),
        ]);
        let root = repo.path();
        let mut loc = locator(Some(PathBuf::from("/usr/local/bin/berth")));
        loc.manifest_dir = root.join("control-plane");
        let found = loc.locate().unwrap();
        assert_eq!(found.script, root.join("control-plane/../images/build.sh"));
        assert_eq!(
            found.agent,
            root.join("control-plane/../target/release/broker-agent")
        );

        let err = locator(Some(PathBuf::from("/usr/local/bin/berth")))
            .locate()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot build images here: no images/build.sh (tried /usr/local/bin/images/build.sh,"), "{err}");
        assert!(err.contains("set BERTH_IMAGES_DIR"), "{err}");
    }

    #[test]
    fn missing_agent_is_reported() {
        let repo = repo(&[]);
        let root = repo.path();
        let err = locator(Some(root.join("target/release/berth")))
            .locate()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot build images here: no broker-agent binary (tried "),
            "{err}"
        );
        assert!(
            err.contains(
                &root
                    .join("target/release/broker-agent")
                    .display()
                    .to_string()
            ),
            "{err}"
        );
    }

    #[test]
    fn parses_the_last_stdout_line() {
        let out = "noise\nberth/rabbitmq:4.0 sha256:05205932f561\n\n";
        assert_eq!(
            parse_build_output(out, "rabbitmq", "4.0").unwrap(),
            "berth/rabbitmq:4.0"
        );
        let out = "scratch/x/activemq:5.17 sha256:abc\n";
        assert_eq!(
            parse_build_output(out, "activemq", "5.17").unwrap(),
            "scratch/x/activemq:5.17"
        );

        for (out, why) in [
            ("", "printed nothing"),
            ("berth/rabbitmq:4.0\n", "unexpected last line"),
            (
                "berth/rabbitmq:4.0 sha256:a extra\n",
                "unexpected last line",
            ),
            ("berth/rabbitmq:4.0 05205932f561\n", "unexpected image id"),
            (
                "berth/rabbitmq:4.3 sha256:a\n",
                "expected an image named …/rabbitmq:4.0",
            ),
            ("berth/xrabbitmq:4.0 sha256:a\n", "expected an image named"),
        ] {
            let err = parse_build_output(out, "rabbitmq", "4.0")
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{out:?}: {err}");
        }
    }

    #[test]
    fn rejects_arguments_build_sh_would_reject() {
        for (engine, version) in [
            ("rabbitmq", "4.0"),
            ("activemq", "5.17"),
            ("rabbitmq", "3.10"),
            ("x-y_1", "1.2-rc_3"),
        ] {
            assert!(validate_args(engine, version).is_ok(), "{engine} {version}");
        }
        for (engine, version) in [
            ("", "4.0"),
            ("RabbitMQ", "4.0"),
            ("../x", "4.0"),
            ("rabbitmq", ""),
            ("rabbitmq", "-4.0"),
            ("rabbitmq", "4.0 "),
            ("rabbitmq", "4/0"),
        ] {
            assert!(
                validate_args(engine, version).is_err(),
                "{engine:?} {version:?}"
            );
        }
    }

    /// A stand-in for build.sh: counts its runs, sleeps, then prints like the real one.
    fn fake_script(dir: &Path, body: &str) -> PathBuf {
        let script = dir.join("build.sh");
        fs::write(&script, format!("set -eu\n{body}\n")).unwrap();
        script
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_run_of_the_script() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        let script = fake_script(
            dir.path(),
            &format!(
                "echo run >> {runs}\necho '[images] building' >&2\nsleep 0.3\necho \"${{BERTH_IMAGE_PREFIX:-berth}}/$1:$2 sha256:1234\"",
                runs = runs.display()
            ),
        );
        let builder = ImageBuilder::new(script, "/bin/true").with_prefix("scratch");
        let clone = builder.clone();
        let (a, b, c) = tokio::join!(
            builder.ensure("rabbitmq", "4.3"),
            clone.ensure("rabbitmq", "4.3"),
            builder.ensure("activemq", "5.17"),
        );
        assert_eq!(a.unwrap(), "scratch/rabbitmq:4.3");
        assert_eq!(b.unwrap(), "scratch/rabbitmq:4.3");
        assert_eq!(c.unwrap(), "scratch/activemq:5.17");
        assert_eq!(
            fs::read_to_string(&runs).unwrap().lines().count(),
            2,
            "one run per engine version"
        );
        assert!(
            lock(&builder.inflight).is_empty(),
            "finished builds leave the map"
        );

        // A later call runs the script again (it is the script that knows the image is up to date).
        builder.ensure("rabbitmq", "4.3").await.unwrap();
        assert_eq!(fs::read_to_string(&runs).unwrap().lines().count(), 3);
    }

    #[tokio::test]
    async fn a_failed_build_reports_its_last_stderr_lines_to_every_caller() {
        let dir = tempfile::tempdir().unwrap();
        let script = fake_script(
            dir.path(),
            "for i in $(seq 1 30); do echo \"[images] step $i\" >&2; done\necho '[images] ERROR: debootstrap failed' >&2\nsleep 0.2\nexit 3",
        );
        let builder = ImageBuilder::new(script, "/bin/true");
        let (a, b) = tokio::join!(
            builder.ensure("rabbitmq", "4.3"),
            builder.ensure("rabbitmq", "4.3")
        );
        for err in [a.unwrap_err().to_string(), b.unwrap_err().to_string()] {
            assert!(
                err.starts_with("building image rabbitmq:4.3 failed (exit code 3); last output:\n"),
                "{err}"
            );
            assert!(err.ends_with("step 30\nERROR: debootstrap failed"), "{err}");
            assert!(
                !err.contains("step 16\n"),
                "only the last {STDERR_TAIL} lines: {err}"
            );
        }
    }

    #[tokio::test]
    async fn a_hung_build_times_out_and_is_terminated() {
        let dir = tempfile::tempdir().unwrap();
        let script = fake_script(dir.path(), "echo '[images] debootstrap …' >&2\nsleep 30");
        let builder =
            ImageBuilder::new(script, "/bin/true").with_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let err = builder
            .ensure("rabbitmq", "4.3")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "building image rabbitmq:4.3 timed out after 300ms; last output:\ndebootstrap …"
            ),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the process group got SIGTERM"
        );
    }

    #[tokio::test]
    async fn bad_arguments_fail_before_spawning() {
        let builder = ImageBuilder::new("/nonexistent/build.sh", "/bin/true");
        let err = builder
            .ensure("rabbitmq", "4.0; rm")
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(err, "bad engine version \"4.0; rm\"");
        let err = builder
            .ensure("rabbitmq", "4.0")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("building image rabbitmq:4.0 failed (exit code 127)"),
            "{err}"
        );
    }
}
