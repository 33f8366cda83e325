//! Point files: the rows of numbers a user hands a model, one set of rules for the web app's
//! imports and `amortize eval --points`.
//!
//! - JSON (the text starts with `[` or `{`): an array of points, each an array of numbers (`[0.1, 2]`)
//!   or an object whose values are numbers (`{"x": 0.1, "y": 2}`, read in key order).
//! - CSV otherwise: one point a line, comma-separated numbers; a first line that is not all
//!   numbers is a header; blank lines and lines starting with `#` are skipped.
//!
//! Every point has the same number of coordinates, all finite; a file holds 1 to `max` points.

/// The points in `text`, each a row of coordinates, or a message naming the problem.
pub fn parse_rows(text: &str, max: usize) -> Result<Vec<Vec<f64>>, String> {
    let text = text.trim();
    let rows = if text.starts_with('[') || text.starts_with('{') {
        json_rows(text, max)?
    } else {
        csv_rows(text, max)?
    };
    if rows.is_empty() {
        return Err("no points in the file".to_string());
    }
    for (i, r) in rows.iter().enumerate() {
        if r.iter().any(|x| !x.is_finite()) {
            return Err(format!(
                "point {}: coordinates must be finite numbers",
                i + 1
            ));
        }
        if r.len() != rows[0].len() {
            return Err(format!(
                "point {} has {} coordinates, the first has {}",
                i + 1,
                r.len(),
                rows[0].len()
            ));
        }
    }
    Ok(rows)
}

fn too_many(n: usize, max: usize) -> String {
    format!("{n} points; at most {max}")
}

fn json_rows(text: &str, max: usize) -> Result<Vec<Vec<f64>>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the file is not valid JSON ({e})"))?;
    let items = value.as_array().ok_or("expected a JSON array of points")?;
    if items.len() > max {
        return Err(too_many(items.len(), max));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let values: Vec<&serde_json::Value> = match item {
                serde_json::Value::Array(a) => a.iter().collect(),
                serde_json::Value::Object(o) => o.values().collect(),
                _ => {
                    return Err(format!(
                        "point {}: expected [x, y] or {{\"x\": number, \"y\": number}}",
                        i + 1
                    ))
                }
            };
            values
                .iter()
                .map(|v| {
                    v.as_f64()
                        .ok_or_else(|| format!("point {}: {v} is not a number", i + 1))
                })
                .collect()
        })
        .collect()
}

fn csv_rows(text: &str, max: usize) -> Result<Vec<Vec<f64>>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("not a CSV file ({e})"))?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        let line = record.position().map_or(i + 1, |p| p.line() as usize);
        match record
            .iter()
            .map(str::parse::<f64>)
            .collect::<Result<Vec<f64>, _>>()
        {
            Ok(r) => rows.push(r),
            Err(_) if i == 0 => continue, // a header
            Err(_) => return Err(format!("line {line}: not all numbers")),
        }
        if rows.len() > max {
            return Err(format!("more than {max} points; at most {max}"));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_header_comments_and_blank_lines() {
        let rows = parse_rows("x, y\n# a comment\n0.5, 1\n\n-1,2.5\n", 10).unwrap();
        assert_eq!(rows, vec![vec![0.5, 1.0], vec![-1.0, 2.5]]);
        assert_eq!(
            parse_rows("\"0.5\",\"1\"", 10).unwrap(),
            vec![vec![0.5, 1.0]]
        );
    }

    #[test]
    fn json_arrays_and_objects() {
        let rows = parse_rows(r#"[[0.5, 1], {"y": 2, "x": -1}]"#, 10).unwrap();
        assert_eq!(rows, vec![vec![0.5, 1.0], vec![-1.0, 2.0]]);
    }

    #[test]
    fn bad_files_are_named() {
        let err = |text: &str, max: usize| parse_rows(text, max).unwrap_err();
        assert!(err("[1, 2", 10).contains("not valid JSON"));
        assert!(err("{\"x\": 1}", 10).contains("expected a JSON array"));
        assert!(err("[\"a\"]", 10).contains("point 1"));
        assert!(err("[[1, \"a\"]]", 10).contains("is not a number"));
        assert!(err("1,2\n3,x\n", 10).contains("line 2: not all numbers"));
        assert!(err("1,2\nnan,3\n", 10).contains("point 2: coordinates must be finite"));
        assert!(err("1,2\n3\n", 10).contains("point 2 has 1 coordinates, the first has 2"));
        assert!(err("", 10).contains("no points"));
        assert!(err("x,y\n", 10).contains("no points"));
        assert!(err("1,2\n3,4\n5,6\n", 2).contains("at most 2"));
        assert!(err("[[1,2],[3,4],[5,6]]", 2).contains("3 points; at most 2"));
    }
}
