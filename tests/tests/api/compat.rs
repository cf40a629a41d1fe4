//! Compatibility with the real clients: the aws CLI (v1) and boto3 from PyPI, pinned in
//! tests/compat/requirements.txt and installed into target/compat-venv by
//! scripts/compat-venv.sh (`make test` runs it). Each test starts the real `berth` binary on
//! a fresh database, points the client at the credentials and config files Berth wrote on
//! its first start, runs one script from tests/compat/ and streams its output.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use berth_tests::{
    fresh_database, port_range, require_image, start_berth_process, workspace_root,
    InstallationCleanup,
};

/// Upper bound for one script; each takes about a minute on an idle machine.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(900);

fn venv() -> PathBuf {
    let dir = std::env::var_os("BERTH_COMPAT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target").join("compat-venv"));
    for tool in ["python", "aws"] {
        let path = dir.join("bin").join(tool);
        assert!(
            path.exists(),
            "{} is missing: run `scripts/compat-venv.sh` (or `make test`, which runs it) to \
             install the aws CLI, boto3 and pika from tests/compat/requirements.txt",
            path.display()
        );
    }
    dir
}

/// Copies a child's output line by line to the test's stderr as it comes (prefixed, not
/// captured by the harness) and into `transcript` for the failure message.
fn forward(
    tag: &'static str,
    stream: impl AsyncRead + Unpin + Send + 'static,
    transcript: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use std::io::Write;
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = writeln!(std::io::stderr().lock(), "[compat {tag}] {line}");
            transcript.lock().unwrap().push(line);
        }
    })
}

/// Starts Berth, runs `program args` against it with the venv first on PATH, and panics
/// unless the script exits 0. Every Docker object of the installation is removed at the end.
async fn run_against_fresh_berth(tag: &'static str, program: &Path, args: &[PathBuf]) {
    let venv = venv();
    let docker = berth::runtime::docker::DockerRuntime::connect()
        .await
        .expect("Docker daemon")
        .client()
        .clone();
    require_image(&docker).await;
    let db = fresh_database().await;
    let data_dir = tempfile::tempdir().unwrap();
    let (mut berth, base) = start_berth_process(&db, data_dir.path(), port_range()).await;
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let installation: String = sqlx::query_scalar("SELECT id FROM installation")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    let _cleanup = InstallationCleanup(installation);

    let path = std::env::join_paths(std::iter::once(venv.join("bin")).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(workspace_root())
        .env("PATH", path)
        .env("BERTH_COMPAT_VENV", &venv)
        .env("BERTH_ENDPOINT", &base)
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            data_dir.path().join("credentials"),
        )
        .env("AWS_CONFIG_FILE", data_dir.path().join("config"))
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_MQ",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
    ] {
        cmd.env_remove(var);
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
    let transcript = Arc::new(Mutex::new(Vec::new()));
    let out = forward(tag, child.stdout.take().unwrap(), transcript.clone());
    let err = forward(tag, child.stderr.take().unwrap(), transcript.clone());
    let status = match tokio::time::timeout(SCRIPT_TIMEOUT, child.wait()).await {
        Ok(status) => Some(status.expect("wait for the script")),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    };
    let _ = tokio::join!(out, err);
    let _ = berth.kill().await;
    let tail = {
        let lines = transcript.lock().unwrap();
        lines[lines.len().saturating_sub(40)..]
            .iter()
            .map(|l| format!("  | {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!(
            "{tag} script {} failed ({s}) after {:?}; last lines:\n{tail}",
            args.last().unwrap_or(&program.to_path_buf()).display(),
            started.elapsed()
        ),
        None => panic!("{tag} script timed out after {SCRIPT_TIMEOUT:?}; last lines:\n{tail}"),
    }
}

#[tokio::test]
async fn aws_cli_runs_a_broker_lifecycle() {
    let script = workspace_root().join("tests/compat/cli_scenario.sh");
    run_against_fresh_berth("cli", Path::new("bash"), &[script]).await;
}

#[tokio::test]
async fn boto3_calls_all_25_operations() {
    let python = venv().join("bin").join("python");
    let script = workspace_root().join("tests/compat/boto3_all_ops.py");
    run_against_fresh_berth("boto3", &python, &[script]).await;
}
