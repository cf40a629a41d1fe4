//! Server-rendered line charts for the console: a time range, one or more lines of
//! `(time, value)` points and an optional limit line become one accessible inline SVG
//! (`web/templates/chart.html`), no script and no build step.
//!
//! Everything numeric is computed here (scales, tick labels, polyline coordinates), so
//! the template only places numbers and escaped text. A chart without points says so
//! instead of drawing an empty frame.

use askama::Template;
use chrono::{DateTime, Utc};

/// The ranges a broker page offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Hour,
    Day,
    Week,
}

impl Range {
    pub const ALL: [Range; 3] = [Range::Hour, Range::Day, Range::Week];

    pub fn parse(s: Option<&str>) -> Range {
        match s {
            Some("1d") => Range::Day,
            Some("1w") => Range::Week,
            _ => Range::Hour,
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::Day => "1d",
            Range::Week => "1w",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Range::Hour => "1 hour",
            Range::Day => "1 day",
            Range::Week => "1 week",
        }
    }

    pub fn duration(self) -> chrono::Duration {
        match self {
            Range::Hour => chrono::Duration::hours(1),
            Range::Day => chrono::Duration::days(1),
            Range::Week => chrono::Duration::weeks(1),
        }
    }

    /// The period (seconds) to ask the history for: about 60–170 points per line.
    pub fn period_secs(self) -> i64 {
        match self {
            Range::Hour => 60,
            Range::Day => 600,
            Range::Week => 3600,
        }
    }
}

/// How values are shown on the axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Count,
    Percent,
    Bytes,
    PerSecond,
}

impl Scale {
    pub fn format(self, v: f64) -> String {
        match self {
            Scale::Percent => format!("{v:.0} %"),
            Scale::PerSecond => format!("{}/s", short(v)),
            Scale::Count => short(v),
            Scale::Bytes => bytes(v),
        }
    }
}

fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 10.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = v;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 || v >= 10.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Points of one line, oldest first.
type Points = Vec<(DateTime<Utc>, f64)>;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    pub points: Vec<(DateTime<Utc>, f64)>,
}

/// What the caller knows about a chart.
#[derive(Debug, Clone)]
pub struct ChartInput {
    pub title: String,
    pub scale: Scale,
    pub lines: Vec<Line>,
    /// A horizontal limit (memory limit, 100 %), drawn dashed and included in the scale.
    pub limit: Option<(String, f64)>,
}

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// A tick on an axis.
pub struct Tick {
    pub pos: String,
    pub label: String,
}

/// A line ready to draw.
pub struct DrawnLine {
    pub label: String,
    /// `x,y x,y …` in SVG user units.
    pub points: String,
    /// CSS class (`l0`, `l1`, …) for its colour.
    pub class: String,
    /// The newest value, formatted.
    pub last: String,
}

#[derive(Template)]
#[template(path = "chart.html")]
pub struct Chart {
    pub id: String,
    pub title: String,
    pub empty: bool,
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right_edge: f64,
    pub top: f64,
    pub baseline: f64,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    pub lines: Vec<DrawnLine>,
    /// (label, y position) of the limit line.
    pub limit: Option<(String, String)>,
    /// A text summary for screen readers.
    pub summary: String,
}

fn coord(v: f64) -> String {
    format!("{v:.1}")
}

/// Lays out `input` over `[end - range, end]`.
pub fn chart(id: &str, input: ChartInput, range: Range, end: DateTime<Utc>) -> Chart {
    let start = end - range.duration();
    let span = (end - start).num_milliseconds().max(1) as f64;
    // Only points inside the range and finite count, for the scale too.
    let inside: Vec<(String, Points)> = input
        .lines
        .iter()
        .map(|l| {
            let mut pts: Points = l
                .points
                .iter()
                .copied()
                .filter(|(t, v)| *t >= start && *t <= end && v.is_finite())
                .collect();
            pts.sort_by_key(|p| p.0);
            (l.label.clone(), pts)
        })
        .collect();
    let max_value = inside
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .chain(input.limit.iter().map(|l| l.1).filter(|v| v.is_finite()))
        .fold(0.0_f64, f64::max);
    let top_value = nice_ceiling(max_value);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |t: DateTime<Utc>| LEFT + plot_w * ((t - start).num_milliseconds() as f64 / span);
    let y = |v: f64| TOP + plot_h * (1.0 - (v / top_value).clamp(0.0, 1.0));
    let lines: Vec<DrawnLine> = inside
        .into_iter()
        .enumerate()
        .filter(|(_, (_, pts))| !pts.is_empty())
        .map(|(i, (label, pts))| DrawnLine {
            label,
            points: pts
                .iter()
                .map(|(t, v)| format!("{},{}", coord(x(*t)), coord(y(*v))))
                .collect::<Vec<_>>()
                .join(" "),
            class: format!("l{}", i % 4),
            last: pts
                .last()
                .map(|p| input.scale.format(p.1))
                .unwrap_or_default(),
        })
        .collect();
    let y_ticks = (0..=4)
        .map(|i| {
            let v = top_value * i as f64 / 4.0;
            Tick {
                pos: coord(y(v)),
                label: input.scale.format(v),
            }
        })
        .collect();
    let fmt = match range {
        Range::Hour | Range::Day => "%H:%M",
        Range::Week => "%a %d",
    };
    let x_ticks = (0..=4)
        .map(|i| {
            let t = start + (end - start) * i / 4;
            Tick {
                pos: coord(x(t)),
                label: t.format(fmt).to_string(),
            }
        })
        .collect();
    let summary = if lines.is_empty() {
        format!("{}: no data in the last {}.", input.title, range.label())
    } else {
        let parts: Vec<String> = lines
            .iter()
            .map(|l| format!("{} now {}", l.label, l.last))
            .collect();
        format!(
            "{} over the last {}: {}.",
            input.title,
            range.label(),
            parts.join(", ")
        )
    };
    Chart {
        id: id.to_owned(),
        title: input.title,
        empty: lines.is_empty(),
        width: WIDTH,
        height: HEIGHT,
        left: LEFT,
        right_edge: WIDTH - RIGHT,
        top: TOP,
        baseline: TOP + plot_h,
        x_ticks,
        y_ticks,
        limit: input
            .limit
            .filter(|l| l.1.is_finite())
            .map(|(label, v)| (format!("{label} {}", input.scale.format(v)), coord(y(v)))),
        lines,
        summary,
    }
}

/// The smallest 1/2/5 × 10ⁿ at or above `v` (1 for nothing or zero).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= v {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(end: DateTime<Utc>, mins_ago: i64) -> DateTime<Utc> {
        end - chrono::Duration::minutes(mins_ago)
    }

    #[test]
    fn scales_round_up_to_nice_values() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(30.0), 50.0);
        assert_eq!(nice_ceiling(101.0), 200.0);
        assert_eq!(Scale::Bytes.format(3.5 * 1024.0 * 1024.0), "3.5 MiB");
        assert_eq!(Scale::Count.format(12_345.0), "12k");
        assert_eq!(Scale::Percent.format(42.4), "42 %");
    }

    #[test]
    fn points_map_into_the_plot_and_outside_points_are_dropped() {
        let end = Utc::now();
        let c = chart(
            "depth",
            ChartInput {
                title: "Queue depth".into(),
                scale: Scale::Count,
                lines: vec![Line {
                    label: "ready".into(),
                    points: vec![(at(end, 90), 5.0), (at(end, 60), 0.0), (end, 30.0)],
                }],
                limit: None,
            },
            Range::Hour,
            end,
        );
        assert!(!c.empty);
        // start of the hour → left edge at the baseline; now → right edge at 30 of 50.
        assert_eq!(c.lines[0].points, "64.0,156.0 552.0,68.4");
        assert_eq!(c.lines[0].last, "30");
        assert_eq!(c.y_ticks.last().unwrap().label, "50");
        assert!(c.summary.contains("ready now 30"), "{}", c.summary);
        let html = c.render().unwrap();
        assert!(html.contains("<svg"), "{html}");
        assert!(html.contains("Queue depth"));
    }

    #[test]
    fn no_points_is_said_and_labels_are_escaped() {
        let c = chart(
            "x",
            ChartInput {
                title: "<b>mem</b>".into(),
                scale: Scale::Bytes,
                lines: vec![Line {
                    label: "used".into(),
                    points: vec![],
                }],
                limit: Some(("limit".into(), 1024.0)),
            },
            Range::Week,
            Utc::now(),
        );
        assert!(c.empty);
        let html = c.render().unwrap();
        assert!(html.contains("no data"), "{html}");
        assert!(!html.contains("<b>mem"), "{html}");
    }
}
