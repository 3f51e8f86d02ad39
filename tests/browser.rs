//! The report in a real browser: headless Chromium driven through ChromeDriver (WebDriver,
//! plain HTTP on loopback). `.ci/run` installs Debian's `chromium` and `chromium-driver`.
//!
//! The report is opened from disk. Checked: every image decoded (naturalWidth > 0), nothing
//! fetched from the network (resource timing, and a resolver that fails every host name, so a
//! request would also log an error), no console error, and the page reads at a desktop width
//! and at a phone width (no sideways scrolling; screenshots hold text and pictures). A copy of
//! the report with an image from the network is checked too, and must fail each check that
//! the fault touches: the checks can fail.
//!
//! Where Chromium or ChromeDriver is missing, the test fails when `CI=true` and otherwise says
//! loudly that it did not run.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// What one page load shows.
#[derive(Debug)]
struct Findings {
    images: usize,
    undecoded: Vec<String>,
    fetched: Vec<String>,
    console_errors: Vec<String>,
    scroll_width: f64,
    inner_width: f64,
    sections: usize,
    screenshot: image::RgbImage,
}

#[test]
fn the_report_opens_offline_in_chromium_at_desktop_and_phone_widths() {
    let Some((chromium, driver)) = browser() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // A folder name longer than a phone is wide: it must wrap, not widen the page.
    let faces = tmp
        .path()
        .join("a_folder_name_far_longer_than_a_phone_is_wide_to_show_that_titles_wrap");
    std::fs::create_dir(&faces).unwrap();
    for entry in std::fs::read_dir(common::demo_dir().join("faces")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), faces.join(entry.file_name())).unwrap();
    }
    let run = common::facenmf(
        &[
            "learn",
            faces.to_str().unwrap(),
            "-r",
            "12",
            "-o",
            out.to_str().unwrap(),
            "-q",
        ],
        tmp.path(),
    );
    assert!(run.status.success(), "{}", common::stderr(&run));
    let report = out.join("report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    for scheme in ["http:", "https:", "//"] {
        for attr in ["src=\"", "href=\""] {
            assert!(
                !html.contains(&format!("{attr}{scheme}")),
                "the page links to {attr}{scheme}..."
            );
        }
    }

    let driver = Driver::start(&driver, &chromium);
    for (width, height, label) in [(1280, 900, "desktop"), (390, 844, "phone")] {
        let seen = driver.inspect(&report, width, height);
        assert!(seen.images >= 10, "{label}: only {} images", seen.images);
        assert!(
            seen.undecoded.is_empty(),
            "{label}: not decoded: {:?}",
            seen.undecoded
        );
        assert!(
            seen.fetched.is_empty(),
            "{label}: fetched {:?}",
            seen.fetched
        );
        assert!(
            seen.console_errors.is_empty(),
            "{label}: console errors {:?}",
            seen.console_errors
        );
        assert!(
            seen.scroll_width <= seen.inner_width + 1.0,
            "{label}: the page is {} px wide in a {} px window",
            seen.scroll_width,
            seen.inner_width
        );
        assert!(seen.sections >= 9, "{label}: {} sections", seen.sections);
        let (ink, picture) = content(&seen.screenshot);
        assert!(
            ink > 0.005,
            "{label}: the screenshot is nearly blank ({ink})"
        );
        assert!(picture > 0.02, "{label}: no picture on screen ({picture})");
        seen.screenshot
            .save(out.join(format!("screenshot-{label}.png")))
            .unwrap();
    }

    // The page of a projection reads as well.
    let projected = common::facenmf(
        &[
            "project",
            out.to_str().unwrap(),
            common::demo_dir().join("faces").to_str().unwrap(),
            "-o",
            tmp.path().join("proj").to_str().unwrap(),
            "-q",
        ],
        tmp.path(),
    );
    assert!(projected.status.success(), "{}", common::stderr(&projected));
    let seen = driver.inspect(&tmp.path().join("proj/report.html"), 390, 844);
    assert!(seen.images >= 1 && seen.undecoded.is_empty() && seen.fetched.is_empty());
    assert!(seen.console_errors.is_empty(), "{:?}", seen.console_errors);
    assert!(seen.scroll_width <= seen.inner_width + 1.0);

    // The control: the same page with one image from the network must fail the checks.
    let tampered = out.join("tampered.html");
    let bad = html.replacen(
        "<img src=\"data:",
        "<img src=\"https://example.invalid/face.png\"><img src=\"data:",
        1,
    );
    std::fs::write(&tampered, bad).unwrap();
    let seen = driver.inspect(&tampered, 1280, 900);
    assert_eq!(seen.undecoded.len(), 1, "{:?}", seen.undecoded);
    assert!(
        seen.fetched
            .iter()
            .any(|u| u.starts_with("https://example.invalid")),
        "{:?}",
        seen.fetched
    );
    assert!(
        !seen.console_errors.is_empty(),
        "the failed fetch is logged"
    );
}

/// The share of dark pixels (text, and the dark of pictures) and the share of picture pixels
/// (mid-grey or coloured: faces, parts, plots), which white page and black text never give.
fn content(shot: &image::RgbImage) -> (f64, f64) {
    let total = (shot.width() * shot.height()) as f64;
    let ink = shot
        .pixels()
        .filter(|p| p.0.iter().all(|&c| c < 100))
        .count() as f64;
    let picture = shot
        .pixels()
        .filter(|p| {
            let [r, g, b] = p.0;
            let grey_mid = r.abs_diff(g) < 12 && g.abs_diff(b) < 12 && (20..200).contains(&r);
            let coloured = r.abs_diff(g) > 60 || g.abs_diff(b) > 60;
            grey_mid || coloured
        })
        .count() as f64;
    (ink / total, picture / total)
}

/// Chromium and ChromeDriver, or None after saying why (a failure under CI).
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = std::env::var_os("CHROMIUM").map_or(PathBuf::from(CHROMIUM), PathBuf::from);
    let driver =
        std::env::var_os("CHROMEDRIVER").map_or(PathBuf::from(CHROMEDRIVER), PathBuf::from);
    if chromium.is_file() && driver.is_file() {
        return Some((chromium, driver));
    }
    let message = format!(
        "BROWSER TEST NOT RUN: {} or {} is missing; install Debian's chromium and \
         chromium-driver (.ci/run does), or set CHROMIUM and CHROMEDRIVER",
        chromium.display(),
        driver.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message} (CI=true, so this is a failure)");
    }
    eprintln!("\n!!!!!!!! {message} (skipped: CI is not set) !!!!!!!!\n");
    None
}

/// A ChromeDriver process and one headless Chromium session on it; both end on drop.
struct Driver {
    child: Child,
    port: u16,
    session: String,
}

impl Driver {
    fn start(driver: &Path, chromium: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut driver = Driver {
            child,
            port,
            session: String::new(),
        };
        let started = Instant::now();
        while http(port, "GET", "/status", None).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": chromium.to_str().unwrap(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--hide-scrollbars",
                    // Every host name fails to resolve: nothing can come from the network.
                    "--host-resolver-rules=MAP * ~NOTFOUND",
                ],
            },
        }}});
        let answer = http(port, "POST", "/session", Some(&capabilities)).expect("a session");
        driver.session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        driver
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let answer = http(self.port, method, &path, body).expect("chromedriver answers");
        if answer["value"].get("error").is_some() {
            panic!("{method} {path}: {answer}");
        }
        answer["value"].clone()
    }

    fn inspect(&self, page: &Path, width: u32, height: u32) -> Findings {
        self.call(
            "POST",
            "/window/rect",
            Some(&json!({"width": width, "height": height})),
        );
        // Drop any log of an earlier page.
        self.call("POST", "/se/log", Some(&json!({"type": "browser"})));
        let url = format!("file://{}", page.canonicalize().unwrap().display());
        self.call("POST", "/url", Some(&json!({"url": url})));
        let script = "document.querySelectorAll('details').forEach(d => d.open = true);
            const imgs = [...document.images];
            return {
              images: imgs.length,
              undecoded: imgs.filter(i => !(i.complete && i.naturalWidth > 0))
                             .map(i => i.src.slice(0, 60)),
              fetched: performance.getEntriesByType('resource').map(e => e.name)
                         .filter(n => !n.startsWith('data:')),
              scrollWidth: document.documentElement.scrollWidth,
              innerWidth: window.innerWidth,
              sections: document.querySelectorAll('h2').length,
            };";
        let seen = self.call(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": []})),
        );
        let logs = self.call("POST", "/se/log", Some(&json!({"type": "browser"})));
        let console_errors = logs
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["level"] == "SEVERE")
            .map(|l| l["message"].as_str().unwrap_or("").to_string())
            .collect();
        // The first screen, as a person opening the page sees it.
        self.call(
            "POST",
            "/execute/sync",
            Some(&json!({"script": "window.scrollTo(0, 0)", "args": []})),
        );
        let shot = self.call("GET", "/screenshot", None);
        let png = decode_base64(shot.as_str().unwrap());
        let screenshot = image::load_from_memory(&png).unwrap().to_rgb8();
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap_or("").to_string())
                .collect()
        };
        Findings {
            images: seen["images"].as_u64().unwrap() as usize,
            undecoded: strings(&seen["undecoded"]),
            fetched: strings(&seen["fetched"]),
            console_errors,
            scroll_width: seen["scrollWidth"].as_f64().unwrap(),
            inner_width: seen["innerWidth"].as_f64().unwrap(),
            sections: seen["sections"].as_u64().unwrap() as usize,
            screenshot,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http(
                self.port,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 exchange with a JSON body, on loopback.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<Value> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    // ChromeDriver keeps the connection open: read the header, then Content-Length bytes.
    let mut reply = Vec::new();
    let mut buf = [0u8; 65536];
    let split = loop {
        if let Some(at) = reply.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let got = stream.read(&mut buf)?;
        if got == 0 {
            return Err(std::io::Error::other(
                "the connection closed inside the header",
            ));
        }
        reply.extend_from_slice(&buf[..got]);
    };
    let head = String::from_utf8_lossy(&reply[..split]).to_lowercase();
    let mut content = reply[split + 4..].to_vec();
    let length = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    match length {
        Some(length) => {
            while content.len() < length {
                let got = stream.read(&mut buf)?;
                if got == 0 {
                    break;
                }
                content.extend_from_slice(&buf[..got]);
            }
        }
        None => {
            stream.read_to_end(&mut content)?;
            if head.contains("transfer-encoding: chunked") {
                content = unchunk(&content);
            }
        }
    }
    serde_json::from_slice(&content).map_err(std::io::Error::other)
}

fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
    out
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !matches!(c, b'=' | b'\n' | b'\r'))
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut v = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            v |= u32::from(value(c)) << (18 - 6 * i);
        }
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((v >> (16 - 8 * i)) as u8);
        }
    }
    out
}
