//! Numbers typed into the docs cannot drift from the data. Every decimal number in the
//! README's claims table, in the book's claims table and in the "Result" and "Answer"
//! sections of `experiments/*/README.md` must be a value of the committed tables (`*.csv`,
//! and the `*.md` that `realbias plot` writes, which the golden test keeps equal to what the
//! code computes), at the rounding it is printed with. A `mean ± spread` must be one pair of
//! the same statistic; a table row that names a width H is checked against that width's rows.
//!
//! Integers (widths, seeds, run counts), numbers in `code` and scientific notation are not
//! checked. Percentages and points are read as 100x the tables' fractions as well.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A decimal number as printed: its value and its count of decimals, and the spread printed
/// after it (`6.71 ± 0.24`), if any.
#[derive(Debug, Clone, PartialEq)]
struct Printed {
    text: String,
    value: f64,
    decimals: i32,
    spread: Option<(f64, i32)>,
}

/// Values, and (mean, spread) pairs.
type Sources = (Vec<f64>, Vec<(f64, f64)>);

/// The values a number may come from: every value, every (mean, spread) pair, and both again
/// per width H, for table rows that name one.
#[derive(Default)]
struct Pool {
    values: Vec<f64>,
    pairs: Vec<(f64, f64)>,
    by_width: BTreeMap<u64, Sources>,
}

impl Pool {
    fn add(&mut self, value: f64, width: &[u64]) {
        for v in [value, 100.0 * value] {
            self.values.push(v);
            for h in width {
                self.by_width.entry(*h).or_default().0.push(v);
            }
        }
    }

    fn add_pair(&mut self, mean: f64, spread: f64, width: &[u64]) {
        for scale in [1.0, 100.0] {
            let pair = (scale * mean, scale * spread);
            self.pairs.push(pair);
            for h in width {
                self.by_width.entry(*h).or_default().1.push(pair);
            }
        }
    }
}

/// One CSV line's fields (quoted fields may hold commas).
fn csv_fields(line: &str) -> Vec<String> {
    let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// A CSV's values; `per_width` files also index them by the width each row names (not the
/// weight-decay grid, whose rows are one λ each: a table row naming H alone is not one of them).
fn add_csv(pool: &mut Pool, text: &str, per_width: bool) {
    let mut lines = text.lines();
    let header = csv_fields(lines.next().unwrap_or(""));
    for line in lines {
        let cells: BTreeMap<&str, f64> = header
            .iter()
            .map(String::as_str)
            .zip(csv_fields(line))
            .filter_map(|(h, c)| Some((h, c.parse::<f64>().ok()?)))
            .collect();
        let width: Vec<u64> = ["hidden", "from_hidden", "to_hidden"]
            .iter()
            .filter(|_| per_width)
            .filter_map(|k| cells.get(k).map(|v| *v as u64))
            .collect();
        for (name, value) in &cells {
            pool.add(*value, &width);
            let Some(stem) = name.strip_suffix("_mean") else {
                continue;
            };
            for spread in ["_std", "_ci95"] {
                if let Some(s) = cells.get(format!("{stem}{spread}").as_str()) {
                    pool.add_pair(*value, *s, &width);
                }
            }
        }
    }
}

/// Every decimal number of `text` outside `code`, with the spread printed after it.
fn printed_numbers(text: &str) -> Vec<Printed> {
    let text: String = text
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(" ");
    let chars: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match number_at(&chars, i) {
            Some((number, end)) => {
                found.push(number);
                i = end;
            }
            None => i += 1,
        }
    }
    found
}

/// The decimal number starting at `i` (with its sign and spread), and where it ends.
fn number_at(chars: &[char], i: usize) -> Option<(Printed, usize)> {
    let before = i.checked_sub(1).map(|j| chars[j]);
    if before.is_some_and(|c| c.is_alphanumeric() || c == '.' || c == '_' || c == '/') {
        return None;
    }
    let (negative, start) = match chars[i] {
        '−' | '-' => (true, i + 1),
        '+' => (false, i + 1),
        _ => (false, i),
    };
    let (value, decimals, end) = decimal_at(chars, start)?;
    let mut printed = Printed {
        text: chars[i..end].iter().collect(),
        value: if negative { -value } else { value },
        decimals,
        spread: None,
    };
    let rest: String = chars[end..chars.len().min(end + 3)].iter().collect();
    if let (" ± ", Some((spread, d, e))) = (rest.as_str(), decimal_at(chars, end + 3)) {
        printed.spread = Some((spread, d));
        printed.text = chars[i..e].iter().collect();
        return Some((printed, e));
    }
    Some((printed, end))
}

/// Digits (thousands separated by commas), a point and digits at `i`, not followed by a
/// letter, a digit or an exponent: the value, its decimals and where it ends.
fn decimal_at(chars: &[char], i: usize) -> Option<(f64, i32, usize)> {
    let mut j = i;
    let mut digits = String::new();
    while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == ',') {
        if chars[j] == ',' && !chars.get(j + 1).is_some_and(|c| c.is_ascii_digit()) {
            break;
        }
        if chars[j] != ',' {
            digits.push(chars[j]);
        }
        j += 1;
    }
    if digits.is_empty() || chars.get(j) != Some(&'.') {
        return None;
    }
    let point = j;
    j += 1;
    while j < chars.len() && chars[j].is_ascii_digit() {
        j += 1;
    }
    let decimals = (j - point - 1) as i32;
    let after = chars.get(j);
    if decimals == 0 || after.is_some_and(|c| c.is_alphanumeric() || *c == '.') {
        return None;
    }
    let fraction: String = chars[point + 1..j].iter().collect();
    let value = format!("{digits}.{fraction}").parse().ok()?;
    Some((value, decimals, j))
}

/// Whether `value` prints as `printed` at `decimals` (signs aside: the docs say "falls by").
fn rounds_to(value: f64, printed: f64, decimals: i32) -> bool {
    (value.abs() - printed.abs()).abs() <= 0.5 * 10f64.powi(-decimals) + 1e-9
}

fn found_in(n: &Printed, values: &[f64], pairs: &[(f64, f64)]) -> bool {
    match n.spread {
        Some((s, d)) => pairs
            .iter()
            .any(|(m, sp)| rounds_to(*m, n.value, n.decimals) && rounds_to(*sp, s, d)),
        None => values.iter().any(|v| rounds_to(*v, n.value, n.decimals)),
    }
}

/// The widths a table row names in its first two cells: a cell that is a number (`| 256 |`)
/// or a word and a number (`| plain, 16 |`).
fn row_widths(line: &str) -> Vec<u64> {
    let cells: Vec<&str> = line.split('|').skip(1).take(2).map(str::trim).collect();
    cells
        .iter()
        .filter_map(|c| {
            let number = match c.split_once(", ") {
                Some((word, n)) if !word.contains(' ') => n,
                Some(_) => return None,
                None => c,
            };
            number.parse::<u64>().ok()
        })
        .collect()
}

/// The numbers of `text` that no value of `pool` prints as.
fn unsourced(text: &str, pool: &Pool) -> Vec<String> {
    let mut problems = Vec::new();
    for line in text.lines() {
        let widths = match line.starts_with('|') {
            true => row_widths(line),
            false => Vec::new(),
        };
        let of_width: Vec<&Sources> = widths.iter().filter_map(|h| pool.by_width.get(h)).collect();
        for n in printed_numbers(line) {
            let ok = match of_width.is_empty() {
                true => found_in(&n, &pool.values, &pool.pairs),
                false => of_width.iter().any(|(v, p)| found_in(&n, v, p)),
            };
            if !ok {
                let context: String = line.chars().take(70).collect();
                problems.push(format!("{} (in \"{context}…\")", n.text));
            }
        }
    }
    problems
}

/// Every number a generated text holds, scientific notation (`+2.0e-5`) included.
fn any_numbers(text: &str) -> Vec<f64> {
    let text = text.replace('−', "-");
    let number_char = |c: char| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+');
    text.split(|c: char| !number_char(c))
        .filter_map(|t| t.trim_matches(['.', '+']).parse::<f64>().ok())
        .collect()
}

/// An experiment's tables, the numbers of the generated `*.md`, its config and its censoring
/// networks' reports (`censor/*/censor.json`).
fn add_experiment(pool: &mut Pool, dir: &Path) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    if let Ok(censors) = std::fs::read_dir(dir.join("censor")) {
        files.extend(censors.map(|e| e.unwrap().path().join("censor.json")));
    }
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = || std::fs::read_to_string(&path).unwrap();
        if name.ends_with(".csv") {
            add_csv(pool, &text(), name != "weight-decay-grid.csv");
        } else if name == "censor.json" && path.is_file() {
            let json: serde_json::Value = serde_json::from_str(&text()).unwrap();
            let numbers = json.as_object().into_iter().flatten();
            for v in numbers.filter_map(|(_, v)| v.as_f64()) {
                pool.add(v, &[]);
            }
        } else if (name.ends_with(".md") && name != "README.md") || name == "experiment.toml" {
            let text = text();
            pool.values.extend(any_numbers(&text));
            for n in printed_numbers(&text) {
                if let Some((s, _)) = n.spread {
                    pool.pairs.push((n.value, s));
                }
            }
        }
    }
}

fn experiments() -> BTreeSet<String> {
    std::fs::read_dir(root().join("experiments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn pool_of(names: &BTreeSet<String>) -> Pool {
    let mut pool = Pool::default();
    for name in names {
        add_experiment(&mut pool, &root().join("experiments").join(name));
    }
    pool
}

/// The sections of a Markdown page whose `##` heading starts with one of `headings`.
fn sections(text: &str, headings: &[&str]) -> String {
    let mut keep = false;
    let mut out = String::new();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            keep = headings.iter().any(|w| h.starts_with(w));
        } else if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn every_number_of_the_claims_tables_comes_from_the_committed_data() {
    let pool = pool_of(&experiments());
    let mut problems = Vec::new();
    for (page, heading) in [
        ("README.md", "The paper's claims"),
        ("docs/src/reproductions.md", "The paper's claims"),
    ] {
        let text = std::fs::read_to_string(root().join(page)).unwrap();
        let claims = sections(&text, &[heading]);
        assert!(claims.lines().count() > 5, "{page}: no claims section");
        problems.extend(
            unsourced(&claims, &pool)
                .into_iter()
                .map(|p| format!("{page}: {p}")),
        );
    }
    assert!(
        problems.is_empty(),
        "not in the data:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_number_of_an_experiments_result_and_answer_comes_from_its_data() {
    let all = experiments();
    let mut problems = Vec::new();
    let mut checked = 0;
    for name in &all {
        let Ok(text) =
            std::fs::read_to_string(root().join("experiments").join(name).join("README.md"))
        else {
            continue;
        };
        let body = sections(&text, &["Result", "Answer"]);
        // Its own data, and that of the experiments it names (`fig2-mnist`).
        let mut sources: BTreeSet<String> = BTreeSet::from([name.clone()]);
        sources.extend(
            all.iter()
                .filter(|e| body.contains(&format!("`{e}`")))
                .cloned(),
        );
        checked += printed_numbers(&body).len();
        let pool = pool_of(&sources);
        problems.extend(
            unsourced(&body, &pool)
                .into_iter()
                .map(|p| format!("{name}: {p}")),
        );
    }
    assert!(checked > 200, "only {checked} numbers found");
    assert!(
        problems.is_empty(),
        "not in the data:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_printed_number_is_read_with_its_sign_rounding_and_spread() {
    let found = printed_numbers(
        "falls −0.40 ± 0.10 points to 6.31% (H = 2048, `0.99`, 1e-4, 2.5e-4, 0.1x)",
    );
    let texts: Vec<&str> = found.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(texts, ["−0.40 ± 0.10", "6.31"]);
    assert_eq!(found[0].value, -0.40);
    assert_eq!(found[0].spread, Some((0.10, 2)));
    assert_eq!(found[1].decimals, 2);
    assert_eq!(printed_numbers("1,339.5 and 12,000.25")[1].value, 12000.25);
    assert!(rounds_to(0.06708, 6.708 / 100.0, 5) && rounds_to(6.708, 6.71, 2));
    assert!(!rounds_to(6.708, 6.70, 2), "a stale cell is caught");
    assert_eq!(
        any_numbers("| +2.0e-5 | −0.31 ± 0.27 * | 12."),
        [2.0e-5, -0.31, 0.27, 12.0]
    );
    assert_eq!(row_widths("| plain, 16 | 9.61 ± 0.53 |"), [16]);
    assert_eq!(row_widths("| 64 | 0.1 | 7.32 |"), [64]);
    assert!(row_widths("| Weight decay (Figure 2, top) | yes |").is_empty());
}

#[test]
fn a_stale_cell_of_a_width_is_caught_though_another_width_has_its_value() {
    let mut pool = Pool::default();
    add_csv(
        &mut pool,
        "condition,hidden,test_error_mean,test_error_std\nplain,256,0.067080,0.0024\nplain,512,0.0670,0.0024\n",
        true,
    );
    assert!(unsourced("| 256 | 6.71 ± 0.24 |", &pool).is_empty());
    assert_eq!(unsourced("| 256 | 6.70 ± 0.24 |", &pool).len(), 1);
    assert!(unsourced("6.70 ± 0.24 somewhere in prose", &pool).is_empty());
    assert_eq!(
        unsourced("| 1024 | 6.70 |", &pool).len(),
        0,
        "no rows of that width: all"
    );
}
