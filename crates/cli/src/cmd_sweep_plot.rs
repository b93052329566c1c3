//! `wafernoc sweep plot`: a line chart (SVG) from a merged sweep CSV.
//!
//! Any numeric column against any other, one line per distinct value of the
//! `--series` columns (or per `--y` column), rows selected with `--where
//! COL=VALUE`. Empty cells (the figures of an unstable or failed point) are
//! left out and counted in the summary line; a cell that is neither empty
//! nor a finite number, a value a log axis cannot show, and two points of
//! one series at the same x (rows that `--series` or `--where` should tell
//! apart) are errors naming the row and column.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::cmd_moe::write_file;
use crate::cmd_sim::read_text;
use crate::plot::{line_chart_svg, LineChart, Series, SeriesStyle};
use crate::{CliError, CmdResult};

/// Most series a chart tells apart: its palette's colours (markers repeat
/// with them).
const MAX_SERIES: usize = 10;

/// Arguments of `wafernoc sweep plot`.
#[derive(Args, Debug)]
pub struct PlotArgs {
    /// Merged CSV (`sweep merge`'s output), or a sweep output directory
    /// (its `results.csv`).
    #[arg(value_name = "CSV|DIR")]
    pub input: PathBuf,
    /// Column for the x axis (numbers).
    #[arg(long, value_name = "COL")]
    pub x: String,
    /// Column(s) for the y axis (numbers), comma-separated; with several,
    /// each is a series of its own.
    #[arg(
        long,
        value_name = "COL[,COL...]",
        value_delimiter = ',',
        required = true
    )]
    pub y: Vec<String>,
    /// Columns whose values split the rows into series, comma-separated
    /// (one line per distinct combination).
    #[arg(long, value_name = "COL[,COL...]", value_delimiter = ',')]
    pub series: Vec<String>,
    /// Keep only rows whose column COL holds exactly VALUE (repeatable).
    #[arg(long = "where", value_name = "COL=VALUE")]
    pub filter: Vec<String>,
    /// Logarithmic x axis.
    #[arg(long = "log-x")]
    pub log_x: bool,
    /// Logarithmic y axis.
    #[arg(long = "log-y")]
    pub log_y: bool,
    /// Title (default: y against x).
    #[arg(long)]
    pub title: Option<String>,
    /// Label under the x axis (default: the x column).
    #[arg(long = "x-label")]
    pub x_label: Option<String>,
    /// Label beside the y axis (default: the y columns).
    #[arg(long = "y-label")]
    pub y_label: Option<String>,
    /// Rename a series label part (`routing=zipf:0`, or a `--y` column):
    /// `PART=>NEW` (repeatable), e.g. `routing=zipf:0=>uniform`.
    #[arg(long = "rename", value_name = "PART=>NEW")]
    pub rename: Vec<String>,
    /// A flat reference line at this y (repeatable), e.g. 1 for parity.
    #[arg(long = "hline", value_name = "Y", allow_hyphen_values = true)]
    pub hline: Vec<f64>,
    /// SVG file to write.
    #[arg(long, value_name = "FILE.svg")]
    pub out: PathBuf,
}

/// A CSV file: header and rows, RFC 4180 quoting (as `sweep merge` writes).
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Splits CSV text into records (quoted fields may hold commas, quotes
/// and line breaks).
fn parse_csv(text: &str, name: &str) -> Result<Table, CliError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records: Vec<Vec<String>> = Vec::new();
    let (mut rec, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => rec.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                rec.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut rec));
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err(CliError::new(format!(
            "{name}: a quoted field is not closed"
        )));
    }
    if !field.is_empty() || !rec.is_empty() {
        rec.push(field);
        records.push(rec);
    }
    let mut it = records.into_iter();
    let header = it
        .next()
        .ok_or_else(|| CliError::new(format!("{name}: empty file")))?;
    let rows: Vec<Vec<String>> = it.collect();
    for (i, r) in rows.iter().enumerate() {
        if r.len() != header.len() {
            return Err(CliError::new(format!(
                "{name}: row {} has {} fields, the header {}",
                i + 1,
                r.len(),
                header.len()
            )));
        }
    }
    Ok(Table { header, rows })
}

impl Table {
    /// Index of column `col`; an unknown name is an error listing the
    /// columns that contain it (or how many there are).
    fn column(&self, col: &str, flag: &str) -> Result<usize, CliError> {
        if col.is_empty() {
            return Err(CliError::new(format!(
                "invalid --{flag}: an empty column name"
            )));
        }
        if let Some(i) = self.header.iter().position(|h| h == col) {
            return Ok(i);
        }
        let near: Vec<&str> = self
            .header
            .iter()
            .filter(|h| h.contains(col) || col.contains(h.as_str()))
            .map(|h| h.as_str())
            .take(8)
            .collect();
        let hint = if near.is_empty() {
            format!("the CSV has {} columns", self.header.len())
        } else {
            format!("did you mean {}?", near.join(", "))
        };
        Err(CliError::new(format!(
            "invalid --{flag}: no column `{col}` ({hint})"
        )))
    }
}

/// A number of `row`'s column `col`: `None` for an empty cell.
fn number(t: &Table, row: usize, col: usize) -> Result<Option<f64>, CliError> {
    let cell = t.rows[row][col].trim();
    if cell.is_empty() {
        return Ok(None);
    }
    match cell.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(CliError::new(format!(
            "row {} column `{}`: `{cell}` is not a finite number",
            row + 1,
            t.header[col]
        ))),
    }
}

/// `wafernoc sweep plot`.
pub fn run(a: PlotArgs) -> CmdResult {
    // The chart is SVG whatever the name says (`p.png` held SVG text).
    if !a
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"))
    {
        return Err(CliError::new(format!(
            "invalid --out {}: sweep plot writes SVG; name the file *.svg (convert it with an SVG tool such as resvg for PNG)",
            a.out.display()
        )));
    }
    if let Some(y) = a.hline.iter().find(|&&y| a.log_y && y <= 0.0) {
        return Err(CliError::new(format!(
            "invalid --hline {y}: a log y axis cannot show it"
        )));
    }
    let path = if a.input.is_dir() {
        a.input.join("results.csv")
    } else {
        a.input.clone()
    };
    let name = path.display().to_string();
    let t = parse_csv(&read_text(&path)?, &name)?;
    let x = t.column(&a.x, "x")?;
    let ys =
        a.y.iter()
            .map(|c| t.column(c, "y"))
            .collect::<Result<Vec<_>, _>>()?;
    if let Some(dup) = a.y.iter().enumerate().find(|(i, c)| a.y[..*i].contains(c)) {
        return Err(CliError::new(format!(
            "invalid --y: column `{}` given twice",
            dup.1
        )));
    }
    let split = a
        .series
        .iter()
        .map(|c| t.column(c, "series"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut filters = Vec::new();
    for f in &a.filter {
        let (col, val) = f
            .split_once('=')
            .ok_or_else(|| CliError::new(format!("invalid --where `{f}`: expected COL=VALUE")))?;
        filters.push((t.column(col.trim(), "where")?, val.trim().to_string()));
    }
    let mut renames = Vec::new();
    for r in &a.rename {
        let (from, to) = r
            .split_once("=>")
            .ok_or_else(|| CliError::new(format!("invalid --rename `{r}`: expected PART=>NEW")))?;
        renames.push((from.trim().to_string(), to.trim().to_string()));
    }
    let rename = |part: String| -> String {
        renames
            .iter()
            .find(|(from, _)| *from == part)
            .map_or(part, |(_, to)| to.clone())
    };
    // Series in order of first appearance; points sorted by x.
    let mut order: Vec<String> = Vec::new();
    let mut points: BTreeMap<String, Vec<(f64, f64, usize)>> = BTreeMap::new();
    let (mut kept, mut empty) = (0usize, 0usize);
    for r in 0..t.rows.len() {
        if filters.iter().any(|(c, v)| t.rows[r][*c].trim() != *v) {
            continue;
        }
        kept += 1;
        let key: Vec<String> = split
            .iter()
            .map(|&c| rename(format!("{}={}", t.header[c], t.rows[r][c])))
            .collect();
        for &y in &ys {
            let mut label = key.clone();
            if ys.len() > 1 || label.is_empty() {
                label.insert(0, rename(t.header[y].clone()));
            }
            let label = label.join(", ");
            match (number(&t, r, x)?, number(&t, r, y)?) {
                (Some(px), Some(py)) => {
                    for (log, v, col) in [(a.log_x, px, x), (a.log_y, py, y)] {
                        if log && v <= 0.0 {
                            return Err(CliError::new(format!(
                                "row {} column `{}`: {v} cannot be shown on a log axis",
                                r + 1,
                                t.header[col]
                            )));
                        }
                    }
                    if !points.contains_key(&label) {
                        order.push(label.clone());
                    }
                    points.entry(label).or_default().push((px, py, r));
                }
                _ => empty += 1,
            }
        }
    }
    if t.rows.is_empty() {
        return Err(CliError::new(format!("{name}: no rows (a header only)")));
    }
    if kept == 0 {
        return Err(CliError::new(format!(
            "{name}: no row matches the --where filters ({} rows)",
            t.rows.len()
        )));
    }
    if order.is_empty() {
        return Err(CliError::new(format!(
            "{name}: no point to draw ({kept} rows, every x or y cell empty)"
        )));
    }
    if order.len() > MAX_SERIES {
        return Err(CliError::new(format!(
            "{} series: at most {MAX_SERIES} can be told apart (colours and markers); pick \
             rows with --where or fewer --series columns",
            order.len()
        )));
    }
    let mut series = Vec::with_capacity(order.len());
    for label in order {
        let mut pts = points.remove(&label).unwrap_or_default();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if let Some(w) = pts.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(CliError::new(format!(
                "series `{label}` has two points at {} = {} (rows {} and {}): tell them apart \
                 with --series or pick one with --where",
                a.x,
                w[0].0,
                w[0].2 + 1,
                w[1].2 + 1
            )));
        }
        series.push(Series {
            name: label,
            points: pts.into_iter().map(|(x, y, _)| (x, y)).collect(),
            style: SeriesStyle::LineMarkers,
        });
    }
    let drawn = series.len();
    for &y in &a.hline {
        if !y.is_finite() {
            return Err(CliError::new(format!(
                "invalid --hline {y}: not a finite number"
            )));
        }

        series.extend(Series::flat(format!("y = {y}"), y, &series[..drawn]));
    }
    let ys_named = a.y.join(", ");
    let chart = LineChart {
        title: a
            .title
            .clone()
            .unwrap_or_else(|| format!("{ys_named} against {}", a.x)),
        x_label: a.x_label.clone().unwrap_or_else(|| a.x.clone()),
        y_label: a.y_label.clone().unwrap_or(ys_named),
        series,
        y_max: None,
        log_y: a.log_y,
        log_x: a.log_x,
    };
    write_file(&a.out, &line_chart_svg(&chart))?;
    let skipped = if empty > 0 {
        format!(", {empty} empty cell(s) left out")
    } else {
        String::new()
    };
    println!(
        "sweep plot: {} series from {kept} of {} rows{skipped} -> {}",
        drawn,
        t.rows.len(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting_round_trips() {
        let t = parse_csv("a,b,c\n1,\"x,y\",\"say \"\"hi\"\"\"\n2,,\n", "t").unwrap();
        assert_eq!(t.header, ["a", "b", "c"]);
        assert_eq!(t.rows[0], ["1", "x,y", "say \"hi\""]);
        assert_eq!(t.rows[1], ["2", "", ""]);
        assert!(parse_csv("a,b\n1\n", "t").is_err());
        assert!(parse_csv("a\n\"open\n", "t").is_err());
        assert!(parse_csv("", "t").is_err());
        let e = t.column("d", "x").unwrap_err().to_string();
        assert!(
            e.contains("no column `d`") && e.contains("3 columns"),
            "{e}"
        );
    }
}
