//! "Did you mean ...?" for names and choices.

/// The closest candidate to `input`, if it is close enough to be a likely typo.
pub fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let input_lower = input.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::osa_distance(&input_lower, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(distance, c)| *distance <= (c.len().max(input.len()) / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn finds_typos_but_not_strangers() {
        let names = ["image", "fleet", "stack"];
        assert_eq!(closest("imgae", names), Some("image"));
        assert_eq!(closest("fleets", names), Some("fleet"));
        assert_eq!(closest("Stack", names), Some("stack"));
        assert_eq!(closest("database", names), None);
    }
}
