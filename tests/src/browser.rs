//! Headless Chromium for the console tests: starts `chromedriver` on a free port,
//! connects a WebDriver client (fantoccini) with headless capabilities, and kills the
//! driver and its browser when dropped. Also fetches axe-core (from PyPI's `axe-core-python` wheel, into
//! `target/`) for the accessibility checks.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};

/// A running chromedriver and a browser session on it.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium 1280×900.
    pub async fn start() -> Self {
        let port = free_port();
        // A process group of its own, which the Chromium it starts inherits: killing the
        // driver alone left every test's browser running (re-parented to init, ~60 per
        // suite run, still there at the next run on the same machine).
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (scripts/prereqs.sh installs chromium-driver)");
        let mut browser = Self {
            client: connect(port).await,
            driver,
        };
        browser
            .client
            .set_window_size(1280, 900)
            .await
            .expect("window size");
        browser.driver_alive();
        browser
    }

    fn driver_alive(&mut self) {
        assert!(
            matches!(self.driver.try_wait(), Ok(None)),
            "chromedriver exited"
        );
    }

    /// Writes a screenshot to `target/console-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let dir = crate::workspace_root().join("target/console-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// Runs axe-core in the current page; the `serious` and `critical` violations (id and
    /// the first offending element).
    pub async fn axe_violations(&self) -> Vec<String> {
        let axe = axe_source();
        self.client
            .execute(&axe, vec![])
            .await
            .expect("inject axe-core");
        let v = self
            .client
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                   axe.run(document).then(r => done(r.violations
                     .filter(v => v.impact === "serious" || v.impact === "critical")
                     .map(v => v.id + ": " + v.help + " at " + (v.nodes[0] ? v.nodes[0].html : ""))))
                   .catch(e => done(["axe failed: " + e]));"#,
                vec![],
            )
            .await
            .expect("run axe-core");
        serde_json::from_value(v).expect("violations")
    }
}

async fn connect(port: u16) -> Client {
    let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(
        serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900", "--disable-dev-shm-usage", "--disable-crash-reporter", "--disable-breakpad"],
            }
        }),
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => return c,
            Err(e) if std::time::Instant::now() > deadline => {
                panic!("could not start a browser session: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and the browser processes it started.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// axe-core's `axe.min.js`, from `target/axe/axe.min.js`; fetched on first use from the
/// `axe-core-python` wheel on PyPI (never committed).
pub fn axe_source() -> String {
    let dir = crate::workspace_root().join("target/axe");
    let file = dir.join("axe.min.js");
    if !file.exists() {
        fetch_axe(&dir);
    }
    std::fs::read_to_string(&file).expect("axe.min.js")
}

fn fetch_axe(dir: &PathBuf) {
    std::fs::create_dir_all(dir).expect("axe dir");
    let script = r#"
set -euo pipefail
cd "$1"
python3 -m pip download --no-deps --only-binary=:all: -d wheel axe-core-python >/dev/null
python3 - <<'PY'
import glob, zipfile
whl = glob.glob("wheel/*.whl")[0]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith("axe.min.js"))
    open("axe.min.js", "wb").write(z.read(name))
PY
"#;
    let status = Command::new("bash")
        .args(["-c", script, "fetch-axe"])
        .arg(dir)
        .status()
        .expect("bash");
    assert!(status.success(), "fetching axe-core from PyPI failed");
}
