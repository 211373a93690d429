//! A small W3C WebDriver client over `reqwest` for Debian's `chromium` and `chromedriver`
//! (`apt-get install chromium chromium-driver`; `.ci/run` installs them), and the demo service the
//! browser tests run against (`ia-rct demo --serve` on `127.0.0.1:0`).
//!
//! WebDriver is plain JSON over HTTP, so the tests need no browser crate: a session, navigation,
//! elements, scripts, screenshots and the browser's console log (`goog:loggingPrefs`, read from
//! ChromeDriver's `se/log` endpoint).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads a child's stdout line by line until `done` says stop, within `timeout`; the lines read.
fn read_until(
    child: &mut Child,
    timeout: Duration,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> Vec<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut lines = Vec::new();
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let stop = done(&line);
                lines.push(line);
                if stop {
                    return lines;
                }
            }
            Err(_) => panic!(
                "{what} did not get ready within {timeout:?}; it printed:\n{}",
                lines.join("\n")
            ),
        }
    }
}

/// `ia-rct demo --serve`: the demo trial served on a free port, with a token per role.
pub struct Demo {
    _process: Killed,
    _dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The report page's address.
    pub report: String,
    /// The direktorat token.
    pub direktorat: String,
    /// The forsker token.
    pub forsker: String,
    /// The fylke token's fylke and secret.
    pub fylke: (String, String),
}

impl Demo {
    /// Runs the demo on `firms` simulated firms and waits until it serves.
    pub fn start(firms: usize) -> Demo {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(crate::helpers::BIN)
            .args(["demo", "--serve", "--firms", &firms.to_string(), "--dir"])
            .arg(dir.path())
            .env_remove("IA_RCT_DATABASE_URL")
            .stdout(Stdio::piped())
            // The demo's progress and any error go to the test log, for a failure's diagnosis.
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ia-rct demo");
        let lines = read_until(&mut child, Duration::from_secs(600), "ia-rct demo", |l| {
            l == "ready"
        });
        let process = Killed(child);
        let field = |key: &str| -> String {
            lines
                .iter()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("the demo printed no `{key}` line"))
                .trim()
                .to_owned()
        };
        let fylke_line = field("token fylke:");
        let (code, secret) = fylke_line.split_once(' ').expect("token fylke:NN SECRET");
        Demo {
            base: field("serving "),
            report: field("report "),
            direktorat: field("token direktorat "),
            forsker: field("token forsker "),
            fylke: (code.to_owned(), secret.to_owned()),
            _process: process,
            _dir: dir,
        }
    }

    /// `GET path` over the API with `token`: the JSON body (panics unless 200).
    pub async fn api(&self, token: &str, path: &str) -> Value {
        let resp = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("api request");
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.expect("json")
    }
}

/// A headless Chromium session driven through ChromeDriver.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: Killed,
    _profile: tempfile::TempDir,
}

/// Where a program is: `$var`, else the Debian path.
fn program(var: &str, debian: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(debian), PathBuf::from);
    assert!(
        path.exists(),
        "{} is not installed: the browser tests need Debian's chromium and chromium-driver \
         (`apt-get install chromium chromium-driver`, as .ci/run does), or ${var}",
        path.display()
    );
    path
}

impl Browser {
    /// Starts ChromeDriver on a free port and a headless Chromium with a fresh profile, its
    /// window `width` x `height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        Browser::open(width, height, None).await
    }

    /// A browser as a phone shows pages: a 390 x 844 viewport at 3x (Chromium's mobile
    /// emulation; a headless window is never narrower than 500 pixels).
    pub async fn phone() -> Browser {
        let metrics = json!({"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 3.0, "mobile": true, "touch": true}});
        Browser::open(390, 844, Some(metrics)).await
    }

    async fn open(width: u32, height: u32, mobile: Option<Value>) -> Browser {
        let driver = program("IA_RCT_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = program("IA_RCT_CHROMIUM", "/usr/bin/chromium");
        let mut child = Command::new(driver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let lines = read_until(&mut child, Duration::from_secs(30), "chromedriver", |l| {
            l.contains("started successfully on port")
        });
        let driver = Killed(child);
        let port: u16 = lines
            .last()
            .and_then(|l| l.rsplit(' ').next())
            .map(|p| p.trim_end_matches('.'))
            .and_then(|p| p.parse().ok())
            .expect("chromedriver's port");
        let profile = tempfile::tempdir().expect("profile dir");
        let http = reqwest::Client::new();
        // The flags the machine's notes give for a closed network, run as root.
        let mut caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        if let Some(mobile) = mobile {
            caps["capabilities"]["alwaysMatch"]["goog:chromeOptions"]["mobileEmulation"] = mobile;
        }
        let url = format!("http://127.0.0.1:{port}");
        let resp: Value = http
            .post(format!("{url}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session json");
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {resp}"))
            .to_owned();
        Browser {
            http,
            session: format!("{url}/session/{session}"),
            _driver: driver,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp: Value = req
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("webdriver json");
        if resp["value"].get("error").is_some() {
            panic!("WebDriver {method} {path}: {}", resp["value"]);
        }
        resp["value"].clone()
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page: what it returns.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// The element `css` selects (panics if none).
    pub async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: no element in {v}"))
            .to_owned()
    }

    /// Types `text` into the element `css` selects (a file input takes a path).
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Clicks the element `css` selects, and waits for the page it leads to.
    pub async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Waits up to 20 s for `condition` (a script returning a boolean) to hold; whether it did.
    pub async fn wait_for(&self, condition: &str) -> bool {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if self.run(condition, json!([])).await == json!(true) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Clicks the submit button `css` selects and waits until the page it posts to has loaded
    /// (a new document: the old one's marker is gone).
    pub async fn submit(&self, css: &str) {
        self.run("window.__iaBefore = true; return true;", json!([]))
            .await;
        self.click(css).await;
        let loaded = self
            .wait_for(
                "return window.__iaBefore === undefined && document.readyState === 'complete';",
            )
            .await;
        assert!(loaded, "submitting {css} loaded no new page");
    }

    /// The page's `<h1>`.
    pub async fn heading(&self) -> String {
        self.run(
            "const h = document.querySelector('h1'); return h ? h.textContent.trim() : '';",
            json!([]),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// The browser's console entries since the last call: (level, message).
    pub async fn console(&self) -> Vec<(String, String)> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/se/log",
                Some(json!({"type": "browser"})),
            )
            .await;
        v.as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["level"].as_str().unwrap_or_default().to_owned(),
                    e["message"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Panics if the console has errors or warnings since the last call.
    pub async fn assert_clean_console(&self, page: &str) {
        let bad: Vec<(String, String)> = self
            .console()
            .await
            .into_iter()
            .filter(|(level, _)| matches!(level.as_str(), "SEVERE" | "WARNING"))
            .collect();
        assert!(bad.is_empty(), "{page}: console errors {bad:?}");
    }

    /// `GET url` outside the page with the browser's cookies (the page's CSP allows it no
    /// `fetch`): status and body, as a download from a link gets them.
    pub async fn download(&self, url: &str) -> (u16, String) {
        let cookies = self.call(reqwest::Method::GET, "/cookie", None).await;
        let header: Vec<String> = cookies
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{}={}",
                    c["name"].as_str().unwrap_or_default(),
                    c["value"].as_str().unwrap_or_default()
                )
            })
            .collect();
        let resp = self
            .http
            .get(url)
            .header(reqwest::header::COOKIE, header.join("; "))
            .send()
            .await
            .expect("download");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }

    /// Saves a PNG of the whole page, beyond the viewport (DevTools' `Page.captureScreenshot`
    /// through ChromeDriver), to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let size = self
            .run(
                "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight];",
                json!([]),
            )
            .await;
        let (width, height) = (
            size[0].as_f64().unwrap_or(1280.0),
            size[1].as_f64().unwrap_or(900.0).min(20_000.0),
        );
        let png = self
            .call(
                reqwest::Method::POST,
                "/goog/cdp/execute",
                Some(json!({"cmd": "Page.captureScreenshot", "params": {
                    "format": "png", "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
                }})),
            )
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png["data"].as_str().expect("base64 PNG"))
            .expect("PNG bytes");
        assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("artifact dir");
        }
        std::fs::write(path, bytes).expect("write screenshot");
    }

    /// Signs in through the sign-in form with `token` and lands on the front page.
    pub async fn sign_in(&self, base: &str, token: &str) {
        self.goto(&format!("{base}/logg-inn")).await;
        self.assert_clean_console("/logg-inn").await;
        self.type_into("input[name=token]", token).await;
        self.submit("form[action='/logg-inn'] button[type=submit]")
            .await;
        let landed = self
            .wait_for("return location.pathname === '/' && document.readyState === 'complete';")
            .await;
        let text = self
            .run(
                "return location.pathname + ': ' + document.body.innerText;",
                json!([]),
            )
            .await;
        assert!(
            landed,
            "signed in, the browser is on the front page, not {text}"
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (and the browser) before ChromeDriver is killed.
        let url = self.session.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    let _ = reqwest::Client::new().delete(url).send().await;
                });
            }
        })
        .join()
        .ok();
    }
}

/// Where the tests' screenshots go: `$CARGO_TARGET_TMPDIR/screenshots` (under `target/`),
/// kept after the run as test artifacts.
pub fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
}
