//! `sift-tui plot` on the committed runs directory `tests/fixtures/runs` (made by
//! `scripts/make_runs_fixture.py`: standard, SMART and SiFT × two seeds, two stages). The SVG is
//! read back: one series per method in every panel, one panel per stage and curve, and the forest
//! plot's markers and numbers where the results table puts them.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sift_tui::experiment::table::{collect, summarize, Cell};
use sift_tui::method::MethodName;
use sift_tui::metrics::Split;
use sift_tui::plot::scale::Scale;
use sift_tui::plot::svg::method_color;
use sift_tui::plot::write_figures;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs")
}

/// One element of an SVG file as plotters writes it: a tag, its attributes and, for `<text>`,
/// its content.
#[derive(Debug)]
struct Element {
    tag: String,
    attrs: HashMap<String, String>,
    text: String,
}

impl Element {
    fn attr(&self, name: &str) -> &str {
        self.attrs.get(name).map_or("", String::as_str)
    }

    fn number(&self, name: &str) -> f64 {
        self.attr(name).parse().unwrap_or_else(|_| panic!("{name} of {self:?}"))
    }

    /// The `points` of a polyline or polygon.
    fn points(&self) -> Vec<(f64, f64)> {
        self.attr("points")
            .split_whitespace()
            .map(|pair| {
                let (x, y) = pair.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }
}

fn elements(svg: &str) -> Vec<Element> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let end = start + rest[start..].find('>').unwrap();
        let tag_text = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag_text.starts_with('/') || tag_text.starts_with('?') {
            continue;
        }
        let name = tag_text.split_whitespace().next().unwrap().trim_end_matches('/').to_string();
        let mut attrs = HashMap::new();
        let mut attr_text = &tag_text[name.len()..];
        while let Some(eq) = attr_text.find("=\"") {
            let key = attr_text[..eq].trim().to_string();
            let value_end = eq + 2 + attr_text[eq + 2..].find('"').unwrap();
            attrs.insert(key, attr_text[eq + 2..value_end].to_string());
            attr_text = &attr_text[value_end + 1..];
        }
        let mut text = String::new();
        if name == "text" {
            let close = rest.find("</text>").unwrap();
            text = rest[..close].trim().replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
            rest = &rest[close..];
        }
        out.push(Element { tag: name, attrs, text });
    }
    out
}

fn figures(scale: Scale) -> (tempfile::TempDir, HashMap<String, Vec<Element>>) {
    let out = tempfile::tempdir().unwrap();
    let written = write_figures(&fixture(), out.path(), scale).unwrap();
    assert!(written.warnings.is_empty(), "{:?}", written.warnings);
    let mut by_kind = HashMap::new();
    for file in &written.files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        assert!(name.starts_with("tiny__tiny-model__"), "{name}");
        let kind = name.trim_start_matches("tiny__tiny-model__").trim_end_matches(".svg").to_string();
        by_kind.insert(kind, elements(&std::fs::read_to_string(file).unwrap()));
    }
    (out, by_kind)
}

fn texts_starting<'a>(elements: &'a [Element], prefix: &str) -> Vec<&'a str> {
    elements.iter().filter(|e| e.tag == "text" && e.text.starts_with(prefix)).map(|e| e.text.as_str()).collect()
}

/// The polylines drawn in a method's colour: its lines (one per panel) and its legend sample.
fn method_lines(elements: &[Element], method: MethodName) -> Vec<&Element> {
    elements.iter().filter(|e| e.tag == "polyline" && e.attr("stroke") == method_color(method)).collect()
}

const METHODS: [MethodName; 3] = [MethodName::Standard, MethodName::Smart, MethodName::Sift];

#[test]
fn training_curves_have_a_panel_per_stage_and_a_line_per_method() {
    let (_dir, figures) = figures(Scale::LINEAR);
    assert_eq!(figures.len(), 3, "training, evaluation and forest: {:?}", figures.keys());
    let training = &figures["training"];
    assert_eq!(texts_starting(training, "training loss · "), ["training loss · source", "training loss · target-10%"]);
    assert_eq!(texts_starting(training, "adversarial KL · ").len(), 2);
    for method in METHODS {
        // Standard has no adversarial term: loss panels only.
        let panels = if method == MethodName::Standard { 2 } else { 4 };
        let lines = method_lines(training, method);
        assert_eq!(lines.len(), panels + 1, "{method}: one line per panel and the legend's");
        let legend = lines.iter().filter(|l| l.points().len() == 2).count();
        assert_eq!(legend, 1, "{method}");
        // Every update of the stage is a point of the mean line (20 and 8 updates).
        let mut lengths: Vec<usize> = lines.iter().map(|l| l.points().len()).filter(|&n| n > 2).collect();
        lengths.sort();
        lengths.dedup();
        assert_eq!(lengths, [8, 20], "{method}");
        // Two seeds that differ: a band around each line.
        let bands = training.iter().filter(|e| e.tag == "polygon" && e.attr("fill") == method_color(method));
        assert!(bands.filter(|b| b.attr("opacity") != "1").count() >= panels, "{method}");
    }
}

#[test]
fn evaluation_curves_follow_the_source_dev_and_each_target_stage() {
    let (_dir, figures) = figures(Scale::LINEAR);
    let evaluation = &figures["evaluation"];
    assert_eq!(texts_starting(evaluation, "source dev · "), ["source dev · source"]);
    assert_eq!(texts_starting(evaluation, "target test · "), ["target test · target-10%"]);
    for method in METHODS {
        let lines = method_lines(evaluation, method);
        assert_eq!(lines.len(), 3, "{method}: two panels and the legend");
        assert!(lines.iter().all(|l| l.points().len() == 2), "two evaluations per stage: {method}");
    }
    assert!(texts_starting(evaluation, "accuracy").len() >= 2, "the metric labels the y axes");
}

#[test]
fn smoothing_and_log_scale_are_the_consoles() {
    let (_dir, figures) = figures(Scale { log_y: true, smoothing: 0.9 });
    let training = &figures["training"];
    assert!(texts_starting(training, "training loss · source (smoothing 0.9)").len() == 1);
    assert!(texts_starting(training, "loss (nats, log scale)").len() == 2);
}

/// The x pixel of the centre of a method's marker in each forest panel (SiFT draws squares).
fn square_centres(elements: &[Element], method: MethodName) -> Vec<f64> {
    let squares = elements.iter().filter(|e| e.tag == "rect" && e.attr("fill") == method_color(method));
    squares.map(|r| r.number("x") + r.number("width") / 2.0).collect()
}

#[test]
fn the_forest_plot_shows_the_tables_differences() {
    let summary = summarize(&collect(&fixture()).unwrap());
    let cell = |method: MethodName, column: f64| -> &Cell {
        let found = summary.cells.iter().find(|c| c.method == method && c.column == Split::Fraction(column));
        found.unwrap()
    };
    let (_dir, figures) = figures(Scale::LINEAR);
    let forest = &figures["forest"];
    let titles: Vec<&str> = texts_starting(forest, "Δ ").into_iter().filter(|t| t.ends_with("(accuracy)")).collect();
    assert_eq!(titles, ["Δ 0% (accuracy)", "Δ 10% (accuracy)"]);
    for method in [MethodName::Smart, MethodName::Sift] {
        for column in [0.0, 0.1] {
            let label = cell(method, column).format_difference();
            assert_eq!(forest.iter().filter(|e| e.tag == "text" && e.text == label).count(), 1, "{label}");
        }
    }
    // SiFT's marker sits at Δ on the line from the interval's low to its high end.
    let whiskers = method_lines(forest, MethodName::Sift);
    let centres = square_centres(forest, MethodName::Sift);
    assert_eq!((whiskers.len(), centres.len()), (2, 2), "one interval and one marker per column");
    // The majority-class line: short dashes at the baseline's Δ from standard.
    let dashes: Vec<f64> = forest
        .iter()
        .filter(|e| e.tag == "polyline" && e.attr("stroke") == "#808080")
        .map(|e| e.points()[0].0)
        .collect();
    for ((whisker, centre), column) in whiskers.iter().zip(&centres).zip([0.0, 0.1]) {
        let d = cell(MethodName::Sift, column).vs_standard.unwrap();
        let ends = whisker.points();
        let (lo_px, hi_px) = (ends[0].0, ends[1].0);
        let pixel = |value: f64| lo_px + (value - d.lo) / (d.hi - d.lo) * (hi_px - lo_px);
        assert!((centre - pixel(d.diff)).abs() <= 1.5, "column {column}: marker at {centre}, Δ at {}", pixel(d.diff));
        let baseline = summary.baseline("tiny", &Split::Fraction(column)).unwrap().value;
        let delta = baseline - cell(MethodName::Standard, column).mean;
        let at = pixel(delta);
        let drawn = dashes.iter().filter(|&&x| (x - at).abs() <= 1.5).count();
        // A baseline further from the intervals than their width is named at the edge instead.
        let note = format!("{} baseline {delta:+.3}", if delta < 0.0 { "←" } else { "→" });
        let named = forest.iter().filter(|e| e.tag == "text" && e.text == note).count();
        if column == 0.0 {
            assert_eq!((drawn, named), (10, 0), "column {column}: two rows of five dashes at {at}, got {dashes:?}");
        } else {
            assert_eq!((drawn, named), (0, 1), "column {column}: off scale, named as `{note}`");
        }
    }
    // Standard labels every 0 % example alike: its cell is flagged.
    assert_eq!(cell(MethodName::Standard, 0.0).single_class_runs, 2);
}

#[test]
fn the_plot_command_writes_svg_files() {
    let out = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sift-tui"))
        .arg("plot")
        .arg(fixture())
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8(output.stdout).unwrap();
    assert_eq!(printed.lines().count(), 3, "{printed}");
    assert!(printed.lines().all(|p| Path::new(p).is_file() && p.ends_with(".svg")), "{printed}");

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_sift-tui"))
        .args(["plot", "--format", "png"])
        .arg(fixture())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let odd_smoothing = std::process::Command::new(env!("CARGO_BIN_EXE_sift-tui"))
        .args(["plot", "--smoothing", "0.5"])
        .arg(fixture())
        .output()
        .unwrap();
    assert_eq!(odd_smoothing.status.code(), Some(2), "only the console's smoothing steps");
    assert!(String::from_utf8_lossy(&odd_smoothing.stderr).contains("0.95"));
    let empty = tempfile::tempdir().unwrap();
    let none =
        std::process::Command::new(env!("CARGO_BIN_EXE_sift-tui")).arg("plot").arg(empty.path()).output().unwrap();
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no runs to plot"));
}

#[test]
fn a_sweep_of_one_method_gets_curves_and_says_why_it_has_no_forest_plot() {
    let runs = tempfile::tempdir().unwrap();
    for seed in [1, 2] {
        let name = format!("tiny__tiny-model__standard__s{seed}");
        std::fs::create_dir(runs.path().join(&name)).unwrap();
        for file in ["config.toml", "metrics.jsonl", "results.json"] {
            std::fs::copy(fixture().join(&name).join(file), runs.path().join(&name).join(file)).unwrap();
        }
    }
    let out = tempfile::tempdir().unwrap();
    let written = write_figures(runs.path(), out.path(), Scale::LINEAR).unwrap();
    let names: Vec<String> = written.files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into()).collect();
    assert_eq!(names, ["tiny__tiny-model__training.svg", "tiny__tiny-model__evaluation.svg"]);
    assert_eq!(written.warnings.len(), 1, "{:?}", written.warnings);
    assert!(written.warnings[0].contains("no forest plot"), "{:?}", written.warnings);
}
