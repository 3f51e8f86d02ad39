//! The report's page: plain HTML with its style inlined and its pictures as `data:` addresses,
//! no script, nothing fetched, readable from a phone's width to a desktop's.

use std::fmt::Write;

use super::report::{RunSummary, seconds};

/// The style: one column, pictures shrink to the width, tables scroll sideways on their own.
const STYLE: &str = "\
:root{color-scheme:light}
body{font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;\
max-width:1100px;padding:0 16px 48px;color:#1b1b1b;background:#fff}
h1,h2,p,li,figcaption,summary,a{overflow-wrap:anywhere}
h1{font-size:1.6em;margin:24px 0 4px}h2{font-size:1.3em;margin:36px 0 8px;\
border-bottom:1px solid #ddd;padding-bottom:4px}
nav{font-size:.9em;line-height:2}nav a{margin-right:12px;white-space:nowrap}
img{max-width:100%;height:auto;image-rendering:pixelated;display:block;margin:8px 0}
figure{margin:8px 0;flex:1 1 300px;min-width:0}figcaption{font-weight:600}
.row{display:flex;flex-wrap:wrap;gap:16px}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:8px 0;font-size:.92em}
caption{text-align:left;font-weight:600;padding:4px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top;\
overflow-wrap:anywhere}
th{background:#f4f4f6}
details{margin:6px 0;border:1px solid #e4e4e8;border-radius:4px;padding:4px 8px}
summary{cursor:pointer;font-weight:600}
.warn{color:#8a3b00}
footer{margin-top:40px;font-size:.85em;color:#555}
";

/// A page being written, section by section.
pub(crate) struct Page {
    body: String,
    nav: Vec<(String, String)>,
    title: String,
}

impl Page {
    /// A page about `run`, opening with its summary.
    pub(crate) fn new(run: &RunSummary) -> Page {
        let mut page = Page::titled(format!("facenmf: {} at rank {}", run.folder, run.rank));
        page.summary(run);
        page
    }

    /// An empty page with a title.
    pub(crate) fn titled(title: String) -> Page {
        Page {
            body: String::new(),
            nav: Vec::new(),
            title,
        }
    }

    /// A summary section: a table of names and plain-text values (escaped).
    pub(crate) fn summary_table(&mut self, rows: &[(&str, String)]) {
        self.section("summary", "Summary");
        self.body.push_str("<div class=scroll><table>");
        for (name, value) in rows {
            let _ = write!(
                self.body,
                "<tr><th>{}</th><td>{}</td></tr>",
                escape(name),
                escape(value)
            );
        }
        self.body.push_str("</table></div>\n");
    }

    fn summary(&mut self, run: &RunSummary) {
        self.section("summary", "Summary");
        let mut rows = vec![
            ("folder", escape(&run.folder)),
            (
                "images",
                match run.skipped.len() {
                    0 => run.images.to_string(),
                    s => format!("{} ({s} files left out, listed below)", run.images),
                },
            ),
            ("size", format!("{}x{} pixels", run.width, run.height)),
            ("rank", run.rank.to_string()),
            (
                "solver",
                format!(
                    "{} ({} loss, {})",
                    escape(&run.solver),
                    escape(&run.loss),
                    run.precision
                ),
            ),
            ("start", escape(&run.init)),
            ("iterations", run.iterations.to_string()),
            ("time", seconds(run.seconds)),
            ("relative error", format!("{:.5}", run.rel_error)),
            (
                "stopped",
                format!(
                    "{}{}",
                    escape(&run.stop),
                    if run.converged {
                        ""
                    } else {
                        " (not converged)"
                    }
                ),
            ),
        ];
        if let Some(d) = run.divergence {
            rows.push(("divergence", format!("{d:.6}")));
        }
        if let Some(e) = run.hidden_error {
            rows.push(("error on hidden pixels", format!("{e:.5}")));
        }
        if run.restarts > 0 {
            rows.push(("components restarted", run.restarts.to_string()));
        }
        rows.push((
            "sparseness (Hoyer)",
            format!("W {:.3}, H {:.3}", run.sparseness_w, run.sparseness_h),
        ));
        rows.push(("seed", run.seed.to_string()));
        self.body.push_str("<div class=scroll><table>");
        for (name, value) in rows {
            let _ = write!(self.body, "<tr><th>{name}</th><td>{value}</td></tr>");
        }
        self.body.push_str("</table></div>\n");
        if run.warnings.is_empty() {
            self.body.push_str("<p>No warnings.</p>\n");
        } else {
            self.body
                .push_str("<p class=warn>Warnings:</p><ul class=warn>");
            for w in &run.warnings {
                let _ = write!(self.body, "<li>{}</li>", escape(w));
            }
            self.body.push_str("</ul>\n");
        }
        if !run.skipped.is_empty() {
            let rows: Vec<Vec<String>> = run
                .skipped
                .iter()
                .map(|s| vec![s.file.clone(), s.reason.clone()])
                .collect();
            self.table(&["file left out", "why"], &rows, "Files left out");
        }
    }

    /// Opens a section with a heading, listed in the page's contents.
    pub(crate) fn section(&mut self, id: &str, heading: &str) {
        self.nav.push((id.to_string(), heading.to_string()));
        let _ = writeln!(self.body, "<h2 id={id}>{}</h2>", escape(heading));
    }

    /// A paragraph of trusted HTML (the report's own words; file names escaped by the caller).
    pub(crate) fn paragraph(&mut self, html: &str) {
        let _ = writeln!(self.body, "<p>{html}</p>");
    }

    /// A picture inlined, with its alternative text and the file it is also written to.
    pub(crate) fn picture(&mut self, file: &str, png: &[u8], alt: &str) {
        let _ = writeln!(
            self.body,
            "<img src=\"data:image/png;base64,{}\" alt=\"{}\" title=\"{file}\">",
            base64(png),
            escape(alt)
        );
    }

    /// Pictures side by side (one under another on a narrow screen), each with a caption.
    pub(crate) fn figures(&mut self, figures: &[(&str, &[u8])]) {
        self.body.push_str("<div class=row>");
        for (caption, png) in figures {
            let _ = write!(
                self.body,
                "<figure><figcaption>{0}</figcaption><img src=\"data:image/png;base64,{1}\" \
                 alt=\"{0}\"></figure>",
                escape(caption),
                base64(png)
            );
        }
        self.body.push_str("</div>\n");
    }

    /// A folded detail: a heading line, a text and a picture shown when opened.
    pub(crate) fn detail(&mut self, heading: &str, text: &str, png: &[u8]) {
        let _ = writeln!(
            self.body,
            "<details><summary>{}</summary><p>{}</p><img src=\"data:image/png;base64,{}\" \
             alt=\"{}\"></details>",
            escape(heading),
            escape(text),
            base64(png),
            escape(heading)
        );
    }

    /// A table of plain-text cells, escaped.
    pub(crate) fn table(&mut self, head: &[&str], rows: &[Vec<String>], caption: &str) {
        let _ = write!(
            self.body,
            "<div class=scroll><table><caption>{}</caption><tr>",
            escape(caption)
        );
        for h in head {
            let _ = write!(self.body, "<th>{}</th>", escape(h));
        }
        self.body.push_str("</tr>");
        for row in rows {
            self.body.push_str("<tr>");
            for cell in row {
                let _ = write!(self.body, "<td>{}</td>", escape(cell));
            }
            self.body.push_str("</tr>");
        }
        self.body.push_str("</table></div>\n");
    }

    /// The whole page.
    pub(crate) fn finish(self) -> String {
        let mut page = String::with_capacity(self.body.len() + 4096);
        let _ = write!(
            page,
            "<!DOCTYPE html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n<meta \
             name=viewport content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n\
             <style>\n{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n<nav>",
            escape(&self.title),
            escape(&self.title)
        );
        for (id, heading) in &self.nav {
            let _ = write!(page, "<a href=\"#{id}\">{}</a> ", escape(heading));
        }
        page.push_str("</nav>\n");
        page.push_str(&self.body);
        let _ = write!(
            page,
            "<footer>Written by facenmf {}. Rebuild it with <code>facenmf report \
             OUTPUT_FOLDER</code>; every picture is also a PNG file beside this page.</footer>\n\
             </body>\n</html>\n",
            env!("CARGO_PKG_VERSION")
        );
        page
    }
}

/// Text made safe inside HTML elements and quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Standard base64 (RFC 4648, with padding).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((v >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn markup_in_names_is_escaped() {
        assert_eq!(
            escape(r#"<img src="x" onerror='y'>&"#),
            "&lt;img src=&quot;x&quot; onerror=&#39;y&#39;&gt;&amp;"
        );
    }
}
