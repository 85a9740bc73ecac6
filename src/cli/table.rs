//! kubectl-like tables: upper-case headers, columns separated by three spaces, `<none>` for
//! missing values, ages like `45s`, `3m12s`, `5h`, `2d3h`.

use chrono::{DateTime, SecondsFormat, Utc};

use super::Output;
use origin_discovery_core::model::Origin;

/// Rows of text aligned under headers.
#[derive(Debug)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers.
    pub fn new<'h>(headers: impl IntoIterator<Item = &'h str>) -> Self {
        Self {
            rows: vec![headers.into_iter().map(str::to_string).collect()],
        }
    }

    /// Appends a row (as many cells as headers).
    pub fn row(&mut self, cells: impl IntoIterator<Item = String>) {
        self.rows.push(cells.into_iter().collect());
    }

    /// The aligned text, one line per row, newline-terminated.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if c + 1 < row.len() {
                    let pad = widths[c] - cell.chars().count() + 3;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `value` or `<none>`.
pub fn or_none(value: Option<&str>) -> String {
    value.unwrap_or("<none>").to_string()
}

/// `ip:port`, IPv6 in brackets.
pub fn address(o: &Origin) -> String {
    if o.ip.contains(':') {
        format!("[{}]:{}", o.ip, o.port)
    } else {
        format!("{}:{}", o.ip, o.port)
    }
}

/// kubectl's age format (its `HumanDuration`): `45s`, `3m12s` under 10 minutes, `42m`,
/// `5h12m` under 8 hours, `20h`, `2d3h` under 8 days, `15d`, `2y30d`. Negative ages
/// (clock skew) print as `0s`.
pub fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - since).num_seconds().max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{m}m{}s", s % 60),
        _ if h < 3 => format!("{m}m"),
        _ if h < 8 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if d < 8 => format!("{d}d{}h", h % 24),
        _ if d < 365 * 2 => format!("{d}d"),
        _ => format!("{}y{}d", d / 365, d % 365),
    }
}

/// A timestamp as the API writes it (`2026-11-22T01:02:03.123Z`).
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `get origins`: ID, STATE, ZONE, NODE, ADDRESS, URL, AGE (`wide`: + WEIGHT, LOAD, SINCE).
pub fn origins(origins: &[Origin], output: Output, now: DateTime<Utc>) -> String {
    let wide = output == Output::Wide;
    let mut headers = vec!["ID", "STATE", "ZONE", "NODE", "ADDRESS", "URL", "AGE"];
    if wide {
        headers.extend(WIDE);
    }
    let mut t = Table::new(headers);
    for o in origins {
        let mut row = vec![
            o.id.clone(),
            o.state.as_str().to_string(),
            or_none(o.zone.as_deref()),
            or_none(o.node.as_deref()),
            address(o),
            or_none(o.url.as_deref()),
            age(o.since, now),
        ];
        if wide {
            row.extend(wide_cells(o));
        }
        t.row(row);
    }
    t.render()
}

/// `pick`: RANK, ID, ZONE, NODE, ADDRESS, URL (`wide`: + AGE, WEIGHT, LOAD, SINCE).
pub fn targets(targets: &[Origin], output: Output, now: DateTime<Utc>) -> String {
    let wide = output == Output::Wide;
    let mut headers = vec!["RANK", "ID", "ZONE", "NODE", "ADDRESS", "URL"];
    if wide {
        headers.push("AGE");
        headers.extend(WIDE);
    }
    let mut t = Table::new(headers);
    for (i, o) in targets.iter().enumerate() {
        let mut row = vec![
            (i + 1).to_string(),
            o.id.clone(),
            or_none(o.zone.as_deref()),
            or_none(o.node.as_deref()),
            address(o),
            or_none(o.url.as_deref()),
        ];
        if wide {
            row.push(age(o.since, now));
            row.extend(wide_cells(o));
        }
        t.row(row);
    }
    t.render()
}

/// The columns `-o wide` adds to origin tables.
const WIDE: [&str; 3] = ["WEIGHT", "LOAD", "SINCE"];

/// WEIGHT (1 when the origin has none), LOAD (`<none>` when unknown) and SINCE.
fn wide_cells(o: &Origin) -> [String; 3] {
    [
        o.weight.to_string(),
        o.load
            .map_or_else(|| or_none(None), |l| format!("{:.2}", l.fraction())),
        timestamp(o.since),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use origin_discovery_core::fixtures::origin_in;
    use origin_discovery_core::model::OriginState;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn ages_read_like_kubectl() {
        let now = at("2026-11-22T12:00:00Z");
        let ago = |secs: i64| age(now - chrono::Duration::seconds(secs), now);
        assert_eq!(ago(0), "0s");
        assert_eq!(ago(-5), "0s");
        assert_eq!(ago(119), "119s");
        assert_eq!(ago(192), "3m12s");
        assert_eq!(ago(42 * 60), "42m");
        assert_eq!(ago(5 * 3600 + 12 * 60), "5h12m");
        assert_eq!(ago(20 * 3600), "20h");
        assert_eq!(ago(51 * 3600), "2d3h");
        assert_eq!(ago(15 * 86_400), "15d");
        assert_eq!(ago(800 * 86_400), "2y70d");
    }

    #[test]
    fn origin_tables_align_columns_and_mark_missing_values() {
        let origin = |id: &str, ip: &str, zone: Option<&str>| Origin {
            ip: ip.into(),
            node: Some("node-a".into()),
            since: at("2026-11-22T11:59:15Z"),
            ..origin_in(id, zone, OriginState::Ready)
        };
        let text = origins(
            &[
                origin("origin-0", "10.0.0.1", Some("zone-a")),
                origin("origin-long-name", "fd00::1", None),
            ],
            Output::Table,
            at("2026-11-22T12:00:00Z"),
        );
        let expected = "\
ID                 STATE   ZONE     NODE     ADDRESS          URL      AGE
origin-0           ready   zone-a   node-a   10.0.0.1:5080    <none>   45s
origin-long-name   ready   <none>   node-a   [fd00::1]:5080   <none>   45s
";
        assert_eq!(text, expected);
        let loaded = Origin {
            weight: 3,
            load: origin_discovery_core::model::Load::quantize(0.35),
            ..origin("b", "10.0.0.2", None)
        };
        let wide = origins(
            &[origin("a", "10.0.0.1", None), loaded],
            Output::Wide,
            at("2026-11-22T12:00:00Z"),
        );
        let expected = "\
ID   STATE   ZONE     NODE     ADDRESS         URL      AGE   WEIGHT   LOAD     SINCE
a    ready   <none>   node-a   10.0.0.1:5080   <none>   45s   1        <none>   2026-11-22T11:59:15.000Z
b    ready   <none>   node-a   10.0.0.2:5080   <none>   45s   3        0.35     2026-11-22T11:59:15.000Z
";
        assert_eq!(wide, expected);
    }
}
