//! `BENCHMARKS.svg`: one panel per scenario, a bar per peer's median (log scale), hand-written SVG text.

use super::{Med, RunInfo, PEERS, SCENARIOS};
use std::fmt::Write as _;

/// Escapes text for SVG.
fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart: one panel per scenario, one horizontal bar per peer (median ns per block, log scale
/// 1..1000 ns), the value at the end of each bar.
pub(super) fn chart(med: Med, info: &RunInfo) -> String {
    const W: f64 = 860.0;
    const LEFT: f64 = 130.0;
    const RIGHT: f64 = 70.0;
    const BAR: f64 = 16.0;
    const GAP: f64 = 4.0;
    const PANEL_TOP: f64 = 26.0;
    const COLORS: [&str; 7] = [
        "#d62728", "#7f7f7f", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#ff7f0e",
    ];
    let (lo, hi) = (1.0f64, 1000.0f64);
    let plot_w = W - LEFT - RIGHT;
    let x =
        |v: f64| LEFT + plot_w * (v.clamp(lo, hi).log10() - lo.log10()) / (hi.log10() - lo.log10());
    let panel_h = PANEL_TOP + PEERS.len() as f64 * (BAR + GAP) + 24.0;
    let head = 48.0;
    let h = head + SCENARIOS.len() as f64 * panel_h;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" viewBox=\"0 0 {W} {h}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"20\" font-size=\"15\" font-weight=\"bold\">mdlpool: median ns per block (log scale), lower is better</text>"
    );
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"38\" fill=\"#555\">{} | {} | load {} -&gt; {} | written by cargo xtask bench</text>",
        esc(&info.date),
        esc(&info.machine),
        esc(&info.load_before),
        esc(&info.load_after)
    );
    for (i, (g, what, _)) in SCENARIOS.iter().enumerate() {
        let top = head + i as f64 * panel_h;
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"{:.1}\" font-weight=\"bold\">{}</text>",
            top + 18.0,
            esc(what)
        );
        let y0 = top + PANEL_TOP;
        let y1 = y0 + PEERS.len() as f64 * (BAR + GAP);
        for t in [1.0, 10.0, 100.0, 1000.0] {
            let tx = x(t);
            let _ = writeln!(
                s,
                "<line x1=\"{tx:.1}\" y1=\"{y0:.1}\" x2=\"{tx:.1}\" y2=\"{y1:.1}\" stroke=\"#ddd\"/><text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#777\" font-size=\"10\">{t} ns</text>",
                y1 + 12.0
            );
        }
        for (j, p) in PEERS.iter().enumerate() {
            let y = y0 + j as f64 * (BAR + GAP);
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{p}</text>",
                LEFT - 6.0,
                y + BAR - 4.0
            );
            match med(g, p) {
                Some(v) => {
                    let w = (x(v) - LEFT).max(1.0);
                    let _ = writeln!(
                        s,
                        "<rect x=\"{LEFT}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{BAR}\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{v:.2}</text>",
                        COLORS[j],
                        LEFT + w + 4.0,
                        y + BAR - 4.0
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#777\">n/a</text>",
                        LEFT + 4.0,
                        y + BAR - 4.0
                    );
                }
            }
        }
    }
    let _ = writeln!(s, "</svg>");
    s
}
